"""The byte bounds of what the verifier keeps per event (core/bounds.py): any value is
kept whole or cut to a marker within its bound, on its encoded size, and the marker keeps
the value's full size and hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cdc_verify.core.bounds import (
    CUT,
    LATE_BOUNDS,
    MINIMAL_BOUNDS,
    RECORD_BOUNDS,
    cut_text,
    cut_value,
    is_cut,
)
from cdc_verify.core.diff import Difference
from cdc_verify.core.jsonvalue import to_json_value
from cdc_verify.core.outcome import VerdictRecord, record_to_json
from cdc_verify.schemas.models import VerdictRecordModel
from cdc_verify.schemas.verdicts import DifferenceKind, Verdict

from .. import strategies as fz

LIMIT, HEAD = 2048, 256
# As tests/unit/test_fuzz.py runs: the same examples every run, no deadline on a loaded CI.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def encoded(value: Any) -> bytes:
    """A value's compact JSON as a record line writes it, by json.dumps alone."""
    text = json.dumps(
        to_json_value(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8", "backslashreplace")


def size(value: Any) -> int:
    return len(encoded(value))


# Text that grows in JSON: control characters (6 bytes), quotes, non-ASCII, lone surrogates.
_growing_text = st.text(
    st.one_of(
        st.sampled_from('\x00\x01\x1f"\\\n'),
        st.characters(codec="utf-8"),
        st.characters(categories=["Cs"]),
    ),
    max_size=3000,
)
_long_text = st.builds(lambda text, n: text * n, _growing_text.filter(bool), st.integers(1, 400))
_values = st.one_of(
    fz.decoded_values,
    _growing_text,
    _long_text,
    st.lists(_long_text, max_size=3),
    st.binary(max_size=3000),
    st.lists(_growing_text, max_size=20),
    st.dictionaries(_growing_text, st.integers() | _growing_text, max_size=10),
)


@FUZZ
@given(value=_values)
def test_any_value_is_kept_whole_or_cut_within_its_bound_and_the_marker_keeps_size_and_hash(
    value: Any,
) -> None:
    out = cut_value(value, LIMIT, HEAD)
    assert size(out) <= LIMIT
    full = encoded(value)
    event("cut" if is_cut(out) else "whole")
    if not is_cut(out):
        assert out is value and len(full) <= LIMIT
        return
    facts = out[CUT]
    assert len(full) > LIMIT
    assert facts["bytes"] == len(full)
    assert facts["sha256"] == hashlib.sha256(full).hexdigest()
    converted = to_json_value(value)
    assert facts["type"] == {str: "string", list: "array", dict: "object"}[type(converted)]
    # A string's head is its start; another value's, the start of its JSON text.
    text = converted if isinstance(converted, str) else encoded(value).decode("utf-8")
    assert text.startswith(facts["head"])
    assert size(facts["head"]) <= HEAD


@FUZZ
@given(text=st.one_of(_growing_text, _long_text))
def test_a_cut_text_stays_a_string_within_its_bound_and_names_size_and_hash(text: str) -> None:
    out = cut_text(text, 300)
    assert size(out) <= 300
    if out != text:
        full = encoded(text)
        head, _, tail = out.partition("…[cut: ")
        assert text.startswith(head)
        assert tail == f"{len(full)} bytes, sha256:{hashlib.sha256(full).hexdigest()}]"


def test_a_control_character_counts_as_the_six_bytes_json_writes() -> None:
    body = "\x01" * 20_000  # 20 KB of text, 120 KB of JSON
    assert is_cut(cut_value(body, 64 * 1024, 1024))
    assert cut_value("a" * 20_000, 64 * 1024, 1024) == "a" * 20_000


def test_a_marker_cut_again_keeps_the_size_and_hash_of_the_value() -> None:
    first = cut_value("\x02" * 100_000, RECORD_BOUNDS.value, RECORD_BOUNDS.head)
    again = cut_value(first, MINIMAL_BOUNDS.value, MINIMAL_BOUNDS.head)
    assert size(again) <= MINIMAL_BOUNDS.value
    assert {k: v for k, v in again[CUT].items() if k != "head"} == {
        k: v for k, v in first[CUT].items() if k != "head"
    }
    assert first[CUT]["head"].startswith(again[CUT]["head"])


def _record(differences: list[Difference]) -> VerdictRecord:
    return VerdictRecord("01HF7YAYW98R3BZJKW12EFYJXJ", Verdict.MISMATCH, differences=differences)


def test_a_record_lists_the_differences_its_bound_holds_and_counts_the_rest() -> None:
    many = [Difference(f"/k{i}", DifferenceKind.VALUE, "\x03" * 5000, i) for i in range(1000)]
    record = _record(many)
    text = record_to_json(record)
    assert len(text.encode()) <= RECORD_BOUNDS.record
    loaded = json.loads(text)
    VerdictRecordModel.model_validate(loaded)
    listed = len(loaded["differences"])
    assert 0 < listed < 1000 and loaded["more_differences"] == 1000 - listed
    assert [d["path"] for d in loaded["differences"]] == [f"/k{i}" for i in range(listed)]


def test_one_huge_difference_makes_a_small_record() -> None:
    body = "a\x01" * 2_000_000
    record = _record([Difference("/body", DifferenceKind.VALUE, body, body[:-1] + "b")])
    text = record_to_json(record)
    assert len(text.encode()) < 4 * RECORD_BOUNDS.head
    production = json.loads(text)["differences"][0]["production"][CUT]
    assert production["bytes"] == 2_000_000 * 7 + 2  # "a" and "\u0001", and the quotes


def test_paths_errors_and_reduced_records_are_bounded_too() -> None:
    key = "k" * 1_000_000
    record = _record([Difference(f"/{key}", DifferenceKind.MISSING, 1, None)])
    assert len(record.differences[0].path.encode()) <= RECORD_BOUNDS.path  # type: ignore[index]
    error = VerdictRecord("E", Verdict.UNDECODABLE, error="\x00" * 100_000)
    assert size(error.error) <= RECORD_BOUNDS.text
    many = _record([Difference(f"/k{i}", DifferenceKind.VALUE, "v" * 9000, i) for i in range(500)])
    for bounds in (LATE_BOUNDS, MINIMAL_BOUNDS):
        reduced = many.bounded(bounds, "why" * 10_000)
        text = record_to_json(reduced)
        assert len(text.encode()) <= bounds.record
        loaded = json.loads(text)
        VerdictRecordModel.model_validate(loaded)
        assert loaded["more_differences"] + len(loaded["differences"]) == 500
        assert loaded["reduced"].startswith("why")
