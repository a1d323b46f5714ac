"""Poison inputs: each gets a verdict and a strict-JSON record, and takes no neighbour down."""

from __future__ import annotations

import json
import math
import random

import msgpack
import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.decoder import LegacyDecoder, describe_error
from cdc_verify.core.diff import MAX_WALK_DEPTH, StructuralDiff, deep_same
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.jsonvalue import MAX_DEPTH, dumps, to_json_value
from cdc_verify.core.outcome import VerdictRecord, record_to_json
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.core.wire import msgpack_wire_types
from cdc_verify.schemas.models import VerdictRecordModel
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment


def strict_loads(text: str):
    """json.loads that rejects NaN/Infinity, as strict parsers do."""

    def no_constant(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=no_constant)


def nested(depth: int, leaf):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def entry(side, ms, event_id, payload: bytes):
    fields = {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": b"t1_abc", b"version": b"1", b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack", b"payload": payload,
    }  # fmt: skip
    return StreamEntry(side, f"{ms}-0", fields)


def payload(**overrides) -> bytes:
    comment = sample_comment(random.Random(3), "t1_abc")
    comment.update(overrides)
    return msgpack.packb(comment, use_bin_type=True)


def verdicts_of(production: list[bytes], sister: list[bytes]) -> list[dict]:
    """Pairs i of production[i]/sister[i] through the core; each record as strict JSON."""
    v = Verifier(decode_event, VerifierConfig(grace_ms=1000))
    outcomes = []
    for i, (p, s) in enumerate(zip(production, sister, strict=True)):
        outcomes += v.ingest([entry(PRODUCTION, 1000 + i, f"E{i}", p)])
        outcomes += v.ingest([entry(SISTER, 1000 + i, f"E{i}", s)])
    out = []
    for o in outcomes:
        record = strict_loads(record_to_json(o.record))
        VerdictRecordModel.model_validate(record)
        out.append(record)
    return out


@pytest.mark.parametrize("depth", [500, 1000, 1020])
def test_deeply_nested_difference_is_a_mismatch_and_its_neighbours_still_match(depth):
    good = payload()
    p_deep, s_deep = payload(score=nested(depth, 1)), payload(score=nested(depth, 2))
    records = verdicts_of([good, p_deep, good], [good, s_deep, good])
    assert [r["verdict"] for r in records] == ["match", "mismatch", "match"]
    [difference] = records[1]["differences"]
    assert difference["kind"] == "value"
    # Cut where the walk stops: /score then MAX_WALK_DEPTH - 1 list levels.
    assert difference["path"] == "/score" + "/0" * (MAX_WALK_DEPTH - 1)
    # What lies below the cut is too deep for a record: both sides show where it stops.
    cut = nested(MAX_DEPTH, {"$deep": f"nested deeper than {MAX_DEPTH} levels"})
    assert difference["production"] == difference["sister"] == cut


def test_deeply_nested_equal_values_match():
    deep = payload(score=nested(1000, 1))
    assert [r["verdict"] for r in verdicts_of([deep], [deep])] == ["match"]


def test_deep_difference_in_type_only_is_found_below_the_walk_depth():
    # 1 == 1.0 at level 900: Python's == says equal, the verifier must not.
    records = verdicts_of([payload(score=nested(900, 1))], [payload(score=nested(900, 1.0))])
    assert records[0]["verdict"] == "mismatch"


def test_wire_walk_handles_the_deepest_msgpack():
    raw = msgpack.packb({"a": nested(1020, 1.5)}, use_bin_type=True)
    wire = msgpack_wire_types(raw)
    assert wire["/a" + "/0" * 1020] == "float64"
    assert wire["/a"] == "array"


def test_bin_keys_inside_a_decoded_value_give_a_valid_record():
    # The reference consumer returns nested maps as they are, bytes keys included.
    records = verdicts_of([payload(score=1)], [payload(score={b"k": 1})])
    [difference] = records[0]["differences"]
    assert difference["kind"] == "type"
    assert difference["sister"] == {"$map": [[{"$bytes": "6b"}, 1]]}


def test_nan_on_one_side_is_written_as_strict_json():
    records = verdicts_of([payload(created_utc=1.5)], [payload(created_utc=math.nan)])
    [difference] = records[0]["differences"]
    assert difference["path"] == "/created_utc"
    assert difference["sister"] == {"$float": "NaN"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.inf, {"$float": "Infinity"}),
        (-math.inf, {"$float": "-Infinity"}),
        (b"\x00\xff", {"$bytes": "00ff"}),
        ({(1, 2): "x"}, {"$map": [[[1, 2], "x"]]}),
        ((1, "a"), [1, "a"]),
        ({3, 1, 2}, {"$set": [1, 2, 3]}),
        (2**1100, {"$int": hex(2**1100)}),
        (2**63, 2**63),
        (object, {"$repr": "<class 'object'>"}),
    ],
)
def test_values_json_cannot_hold_become_tagged_objects(value, expected):
    assert to_json_value(value) == expected
    strict_loads(dumps(value))


def test_cycles_and_hostile_objects_are_encoded():
    cyclic: list = [1]
    cyclic.append(cyclic)
    assert to_json_value(cyclic) == [1, {"$cycle": ""}]
    looped: dict = {"a": {}}
    looped["a"]["up"] = looped
    assert to_json_value(looped) == {"a": {"up": {"$cycle": ""}}}

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert to_json_value(Hostile()) == {"$repr": "<Hostile: repr() raised RuntimeError>"}
    assert to_json_value(nested(200, 1)) == nested(
        MAX_DEPTH, {"$deep": "nested deeper than 64 levels"}
    )


def test_a_record_of_any_difference_values_is_strict_json():
    from cdc_verify.core.diff import Difference
    from cdc_verify.schemas.verdicts import DifferenceKind

    odd = [{b"k": {1, 2}}, math.nan, "\udcff", nested(2000, None)]
    record = VerdictRecord(
        "E", Verdict.MISMATCH,
        differences=[Difference("/x", DifferenceKind.VALUE, odd, {(1,): math.inf})],
    )  # fmt: skip
    text = record_to_json(record)
    text.encode("utf-8")  # writable to Redis and files
    strict_loads(text)


def test_cyclic_values_returned_by_a_consumer_are_compared_without_hanging():
    a: dict = {"x": 1}
    a["self"] = a
    b: dict = {"x": 2}
    b["self"] = b
    differences = StructuralDiff()(a, b)
    assert [d.path for d in differences] == ["/x"]
    assert deep_same(a, a)


def test_values_that_cannot_be_compared_make_the_event_undecodable():
    class Incomparable:
        def __eq__(self, other):
            raise TypeError("cannot compare")

        __hash__ = object.__hash__

    def consumer(fields):
        return {"v": Incomparable()}

    v = Verifier(consumer, VerifierConfig(grace_ms=1000))
    v.ingest([entry(PRODUCTION, 1000, "E", b"")])
    # 1 ms later: other ts_ms bytes, so both sides are decoded and compared.
    [outcome] = v.ingest([entry(SISTER, 1001, "E", b"")])
    assert outcome.record.verdict is Verdict.UNDECODABLE
    assert "cannot be compared" in outcome.record.error
    assert "TypeError: cannot compare" in outcome.record.error


def test_an_exception_whose_str_raises_is_described():
    class Nasty(ValueError):
        def __str__(self):
            raise RuntimeError("boom")

    assert describe_error(Nasty()) == "Nasty: <str() raised RuntimeError>"

    def consumer(fields):
        raise Nasty()

    value, error = LegacyDecoder(consumer).decode({})
    assert value is None and error == "Nasty: <str() raised RuntimeError>"


class ConsumerAbort(BaseException):
    pass


@pytest.mark.parametrize("exc", [GeneratorExit("gen"), ConsumerAbort("own")])
def test_base_exceptions_from_a_consumer_make_the_event_undecodable(exc):
    def consumer(fields):
        raise exc

    value, error = LegacyDecoder(consumer).decode({})
    assert value is None and error == f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_not_swallowed(exc):
    def consumer(fields):
        raise exc()

    with pytest.raises(exc):
        LegacyDecoder(consumer).decode({})


def test_encode_msgpack_of_the_simulator_still_round_trips():
    # Guard: the helpers above use plain msgpack, the writer's encoder must agree.
    comment = sample_comment(random.Random(3), "t1_abc")
    assert msgpack.unpackb(encode_msgpack(comment), raw=False) == comment
