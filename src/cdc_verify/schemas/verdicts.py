"""Verdict and side names: the vocabulary promised to users (docs/verdicts.md)."""

from enum import StrEnum


class Verdict(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    RACE = "race"
    UNDECODABLE = "undecodable"
    MISSING_IN_SISTER = "missing_in_sister"
    MISSING_IN_PRODUCTION = "missing_in_production"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"


class Side(StrEnum):
    PRODUCTION = "production"
    SISTER = "sister"
    BOTH = "both"


PRIMARY_VERDICTS: tuple[Verdict, ...] = (
    Verdict.MATCH,
    Verdict.MISMATCH,
    Verdict.RACE,
    Verdict.UNDECODABLE,
    Verdict.MISSING_IN_SISTER,
    Verdict.MISSING_IN_PRODUCTION,
)
EXTRA_VERDICTS: tuple[Verdict, ...] = (Verdict.DUPLICATE, Verdict.MALFORMED)
GAP_VERDICTS: frozenset[Verdict] = frozenset(
    {Verdict.MISSING_IN_SISTER, Verdict.MISSING_IN_PRODUCTION}
)


# Counted beside the verdicts, never a verdict: a production event outside --scope whose
# twin did not come, and a twin that came after its event's decision.
OUT_OF_SCOPE = "out_of_scope"
LATE = "late"


class DifferenceKind(StrEnum):
    VALUE = "value"
    TYPE = "type"
    MISSING = "missing"  # absent on the sister side
    EXTRA = "extra"  # absent on the production side
