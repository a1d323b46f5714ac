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


# A side's short forms, one table each way. Its letters: a remembered decision's `sides`
# (core/outcome.py) and the API's `sides_seen`. Its code, bits (BOTH = PRODUCTION |
# SISTER): Faust's messages and join-table keys, the commit's stream numbers (the
# `<1|2>` of marker keys) and packed decisions (docs/reports.md).
SIDE_LETTERS: dict[Side, str] = {Side.PRODUCTION: "p", Side.SISTER: "s", Side.BOTH: "ps"}
SIDE_OF_LETTERS: dict[str, Side] = {letters: side for side, letters in SIDE_LETTERS.items()}
SIDE_CODE: dict[Side, int] = {Side.PRODUCTION: 1, Side.SISTER: 2, Side.BOTH: 3}
SIDE_OF_CODE: dict[int, Side] = {code: side for side, code in SIDE_CODE.items()}
# The two streams, in the order they are listed everywhere, and each one's partner.
STREAM_SIDES: tuple[Side, Side] = (Side.PRODUCTION, Side.SISTER)
OTHER_SIDE: dict[Side, Side] = {Side.PRODUCTION: Side.SISTER, Side.SISTER: Side.PRODUCTION}


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
# twin did not come, an entry that stands for no change (a Debezium tombstone), and a
# twin that came after its event's decision.
OUT_OF_SCOPE = "out_of_scope"
TOMBSTONE = "tombstone"
LATE = "late"
# Every name an outcome is counted under, by entity and op (core.outcome.counted_as): the
# state server's per-minute counters (commit.py's script), summary.json's by_entity_op
# (no `late`) and the metrics (a verdict by its label, the others by their own).
COUNTED_NAMES: tuple[str, ...] = (*(v.value for v in Verdict), OUT_OF_SCOPE, TOMBSTONE, LATE)


class DifferenceKind(StrEnum):
    VALUE = "value"
    TYPE = "type"
    MISSING = "missing"  # absent on the sister side
    EXTRA = "extra"  # absent on the production side
