"""Wire types: named on type differences, and float32/float64 found where decoding hides it."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.core.wire import WireError, may_hold_float32, msgpack_wire_types
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment


def test_every_msgpack_type_is_named_by_pointer():
    payload = msgpack.packb(
        {"i": -3, "u": 2**40, "f": 1.5, "s": "é" * 40, "b": b"x", "n": None, "t": True,
         "a": [1, {"k/~": "v"}], "ts": msgpack.Timestamp(1, 0), "e": msgpack.ExtType(5, b"1"),
         "long": "x" * 70_000},
        use_bin_type=True,
    )  # fmt: skip
    assert msgpack_wire_types(payload) == {
        "": "map", "/i": "int", "/u": "int", "/f": "float64", "/s": "str", "/b": "bin",
        "/n": "nil", "/t": "bool", "/a": "array", "/a/0": "int", "/a/1": "map",
        "/a/1/k~1~0": "str", "/ts": "ext-1", "/e": "ext5", "/long": "str",
    }  # fmt: skip
    assert msgpack_wire_types(msgpack.packb(0.5, use_single_float=True)) == {"": "float32"}


@pytest.mark.parametrize("bad", [b"", b"\x81\xa1", b"\xc1", b"\x81\x01\x01", b"\x01\x02"])
def test_malformed_bytes_are_a_wire_error(bad):
    with pytest.raises(WireError):
        msgpack_wire_types(bad)


def comment():
    return sample_comment(random.Random(4), "t1_w")


def judge(production_payload: bytes, sister_payload: bytes) -> dict:
    def entry(side, ms, payload):
        fields = {b"event_id": b"W", b"version": b"1", b"encoding": b"msgpack", b"payload": payload}
        return StreamEntry(side, f"{ms}-0", fields)

    v = Verifier(decode_event, VerifierConfig(grace_ms=1000))
    [outcome] = v.ingest(
        [entry(PRODUCTION, 1, production_payload), entry(SISTER, 2, sister_payload)]
    )
    return outcome.record.as_json()


def test_int_for_float_names_both_wire_types():
    c = comment()
    record = judge(encode_msgpack(c), encode_msgpack({**c, "created_utc": int(c["created_utc"])}))
    [diff] = record["differences"]
    assert (diff["path"], diff["kind"], diff["production_wire"], diff["sister_wire"]) == (
        "/created_utc",
        "type",
        "float64",
        "int",
    )


def test_float32_of_equal_value_is_a_type_difference():
    c = {**comment(), "created_utc": 1_700_000_000.0, "edited": False}
    sister = msgpack.packb(c, use_bin_type=True, use_single_float=True)
    record = judge(encode_msgpack(c), sister)
    assert record["verdict"] == "mismatch"
    [diff] = record["differences"]
    assert diff == {"path": "/created_utc", "kind": "type", "production": 1_700_000_000.0,
                    "sister": 1_700_000_000.0, "production_wire": "float64",
                    "sister_wire": "float32"}  # fmt: skip


def test_float32_that_loses_precision_is_a_value_difference_with_wire_types():
    c = {**comment(), "created_utc": 1_700_000_000.25, "edited": False}
    record = judge(encode_msgpack(c), msgpack.packb(c, use_bin_type=True, use_single_float=True))
    [diff] = record["differences"]
    assert (diff["kind"], diff["production_wire"], diff["sister_wire"]) == (
        "value",
        "float64",
        "float32",
    )


def test_identical_payloads_walk_nothing_and_match():
    c = comment()
    assert judge(encode_msgpack(c), encode_msgpack(c)) == {"event_id": "W", "verdict": "match"}


def test_the_float32_pre_check_never_misses_one():
    # The walk runs only when may_hold_float32 says so: it must say so for every payload
    # the walk finds a float32 in (the marker byte alone is mostly some other value's).
    rng = random.Random(3)

    def value(depth: int = 0) -> Any:
        if depth > 3 or rng.random() < 0.5:
            leaves = [rng.random(), rng.randint(-1000, 1000), "\u02a0" * rng.randint(0, 3),
                      1e30, True, None, float("inf"), -0.0, float("nan")]  # fmt: skip
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {str(i): value(depth + 1) for i in range(rng.randint(0, 4))}

    said = 0
    for _ in range(3000):
        try:
            payload = msgpack.packb(value(), use_single_float=rng.random() < 0.5)
        except OverflowError:  # 1e30 as a float32
            continue
        maybe = may_hold_float32(payload)
        said += maybe
        assert maybe or "float32" not in msgpack_wire_types(payload).values(), payload
    assert 0 < said < 3000
    assert not may_hold_float32(msgpack.packb({"a": 0.1, "b": "\u02a0"}))  # 0xCA, no float32
    duplicate = b"\x82\xa1a\xca\x3f\x00\x00\x00\xa1a\x01"  # {"a": float32, "a": 1}
    assert may_hold_float32(duplicate)
