"""The compiled hot path (cdc_verify._native, built from native/) against the pure one.

A native function must give exactly what its pure-Python function gives, for every
value a consumer may return; these compare them on generated values, caps included.
They run whenever the module is built, also under CDC_VERIFY_PURE=1 (which only makes
the package take the pure path). On CI the module must be built and in use.
"""

from __future__ import annotations

import collections
import copy
import importlib
import math
import os
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_verify import native
from cdc_verify.core import diff, entry, shape, wire
from cdc_verify.pipeline.redis import decisions
from cdc_verify.schemas.verdicts import Side

try:
    NATIVE_MODULE: Any = importlib.import_module("cdc_verify._native")
except ImportError:
    NATIVE_MODULE = None
ON_CI = bool(os.environ.get("CI"))
needs_native = pytest.mark.skipif(
    NATIVE_MODULE is None and not ON_CI,
    reason="cdc_verify._native is not built (pip install -e . with cargo on PATH)",
)


def test_on_ci_the_native_module_is_built_and_in_use():
    """A broken build must not fall back to the pure path unnoticed on CI."""
    if not ON_CI:
        pytest.skip("only on CI (CI set): elsewhere the pure path is a valid install")
    assert NATIVE_MODULE is not None, native.HOT_PATH
    if os.environ.get(native.PURE_ENV):
        assert native.NATIVE is None and shape._WALKER is None, native.HOT_PATH
    else:
        assert native.NATIVE is NATIVE_MODULE and shape._WALKER is not None, native.HOT_PATH
        assert decisions.filing is not decisions.pure_filing


def test_the_hot_path_line_says_which_path_runs():
    if native.NATIVE is None:
        assert native.HOT_PATH.startswith("pure Python")
    else:
        assert native.HOT_PATH.startswith("native")


class Mapping(dict):  # subclasses are leaves, named by their type
    pass


class Items(list):
    pass


class Text(str):
    def __str__(self) -> str:
        return "not " + str.__str__(self)


class Unknown:
    def __init__(self, n: int = 0) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown)

    def __str__(self) -> str:
        raise ValueError("no name")


KEYS = (
    st.text(max_size=6)
    | st.sampled_from(["a", "b", "a/b", "~x", "\x00", "k" * 101, "é" * 101])
    | st.integers(-2, 2)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=True)
    | st.binary(max_size=3)
    | st.builds(Text, st.sampled_from(["a", "b"]))
    | st.builds(Unknown)
    | st.tuples(st.integers(0, 2))
    | st.frozensets(st.integers(0, 2), max_size=2)
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=45)
    | st.text(st.characters(exclude_categories=()), max_size=8)  # lone surrogates too
    | st.sampled_from(["x" * 40, "x" * 41, "approved", "removed"])
    | st.binary(max_size=4)
    | st.decimals(allow_nan=True)
    | st.datetimes()
    | st.datetimes(timezones=st.just(UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
    | st.builds(Text, st.text(max_size=3))
    | st.builds(Unknown, st.integers(0, 3))
    | st.just(math.nan)
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(KEYS, inner, max_size=5)
        | st.dictionaries(st.sampled_from("abcdefgh"), inner, min_size=6, max_size=8)
        | st.builds(Mapping, st.dictionaries(st.text(max_size=2), inner, max_size=2))
        | st.builds(Items, st.lists(inner, max_size=2))
        | st.sets(st.integers(0, 3), max_size=2)
        | st.frozensets(st.text(max_size=2), max_size=2)
    ),
    max_leaves=30,
)
WIDE = st.sets(st.sampled_from(["", "/a", "/b", "/*", "/a/*", "/*/a", "/0", "/True", "/1"]))


@pytest.fixture(scope="module")
def walker() -> Any:
    if NATIVE_MODULE is None:
        pytest.fail(f"on CI the native module must be built: {native.HOT_PATH}")
    return shape.native_walker(NATIVE_MODULE)


def same(walker: Any, value: Any, wide: set[str] | frozenset[str]) -> None:
    parts, valued = shape._walk(value, wide)
    native_parts, native_valued = walker.walk(value, wide)
    assert type(native_parts) is frozenset
    assert native_parts == parts
    assert native_valued == valued  # the same order: it decides which values go wide


@needs_native
@given(st.lists(VALUES, min_size=1, max_size=4), WIDE)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_native_walk_gives_what_the_pure_walk_gives(walker, values, wide):
    for value in [*values, *values]:  # the second time, from the caches
        same(walker, value, wide)
        same(walker, value, frozenset(wide))


@needs_native
@given(
    VALUES,
    st.integers(0, 4),  # depth
    st.integers(1, 20),  # parts
    st.integers(1, 30),  # nodes
    st.integers(0, 5),  # value chars
)
@settings(max_examples=200, deadline=None)
def test_the_native_walk_stops_where_the_pure_walk_stops(value, depth, parts, nodes, chars):
    caps = {
        "MAX_SHAPE_DEPTH": depth,
        "MAX_SHAPE_PARTS": parts,
        "MAX_SHAPE_NODES": nodes,
        "SHAPE_VALUE_CHARS": chars,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, cap in caps.items():
            patch.setattr(shape, name, cap)
        same(shape.native_walker(NATIVE_MODULE), value, set())


@needs_native
@given(st.lists(VALUES, min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_shape_rules_learn_the_same_with_either_walk(values):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shape, "_WALKER", None)
        pure = shape.ShapeRules(enum_values=2)
        pure_shapes = [pure.shape("e", value) for value in values]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shape, "_WALKER", shape.native_walker(NATIVE_MODULE))
        compiled = shape.ShapeRules(enum_values=2)
        assert [compiled.shape("e", value) for value in values] == pure_shapes
    assert compiled.wide == pure.wide


@needs_native
def test_edge_cases(walker):
    deep: Any = "leaf"
    for _ in range(sys.getrecursionlimit() * 3):  # deeper than Python could recurse
        deep = [deep]
    wide_map = {f"k{i}": i for i in range(shape.MAX_SHAPE_NODES + 50)}
    many_parts = {f"k{i}": {"x": i} for i in range(shape.MAX_SHAPE_PARTS * 2)}
    keys_alike = [{1: "a"}, {True: "a"}, {1.0: "a"}, {Decimal(1): "a"}, {Text("a"): 1}, {"a": 1}]
    odd = [
        collections.OrderedDict(a=1),
        Mapping(a=1),
        Items([1]),
        Text("x"),
        (1, "x"),
        {1, 2},
        frozenset({"a"}),
        b"\x00",
        uuid.UUID(int=1),
        Decimal("NaN"),
        datetime(2024, 1, 1, tzinfo=UTC),
        date(2024, 1, 1),
        time(1),
        timedelta(1),
        math.nan,
        -(10**100),
        "\ud800",
        {"\ud800": "\udfff", "a\x00b": None, "x" * 200: 1},
        {Unknown(): 1, None: 2, (1,): 3, b"k": 4, math.nan: 5},
        Unknown(),
    ]
    for value in [deep, wide_map, many_parts, *keys_alike, *odd, keys_alike, odd]:
        for wide in (set(), {"", "/*", "/a", "/1", "/k1"}):
            same(walker, value, wide)


@needs_native
def test_the_caches_stay_bounded_and_give_the_same_after_a_fresh_start():
    walker = NATIVE_MODULE.ShapeWalker(
        shape._child, shape._part, shape.SEP, shape.MAX_SHAPE_DEPTH, shape.MAX_SHAPE_PARTS,
        shape.MAX_SHAPE_NODES, shape.SHAPE_VALUE_CHARS, 50,
    )  # fmt: skip
    for i in range(500):
        same(walker, {f"id{i}": {"a": i, "b": [True]}, "c": "x"}, set())


class Hostile:
    """A key whose name changes the map being walked."""

    def __init__(self, target: dict[Any, Any]) -> None:
        self.target = target

    def __str__(self) -> str:
        self.target[len(self.target)] = 0
        return "hostile"


@needs_native
def test_a_value_the_native_walk_gives_up_on_goes_to_the_pure_walk(walker, monkeypatch):
    value: dict[Any, Any] = {}
    value[Hostile(value)] = 1
    with pytest.raises(RuntimeError):
        walker.walk(value, set())
    monkeypatch.setattr(shape, "_WALKER", walker)
    assert shape._native_walk(value, set()) is None  # so the pure walk says what happens
    assert shape._native_walk({"a": 1}, ["not a set"]) is None  # type: ignore[arg-type]
    assert shape.shape_of({"a": 1}) == frozenset({"\x00map", "/a\x00int"})


def twins(value: Any) -> Any:
    """An equal copy of `value`, with some numbers of another type (1 == 1.0 == True)."""
    if type(value) is dict:
        return {key: twins(item) for key, item in value.items()}
    if type(value) is list or type(value) is tuple:
        return type(value)(twins(item) for item in value)
    if type(value) is int and value in (0, 1):
        return float(value)
    if type(value) is bool:
        return int(value)
    return value


@needs_native
@given(VALUES, st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_native_type_check_gives_what_the_pure_one_gives(value, retype):
    other = twins(value) if retype else copy.deepcopy(value)
    for a, b in ((value, other), (other, value), (value, value), ({"k": value}, {"k": other})):
        try:
            expected: Any = diff._same_types(a, b)
        except Exception as exc:
            expected = type(exc)
        try:
            got: Any = NATIVE_MODULE.same_types(a, b)
        except Exception:
            continue  # the caller runs the pure function then (below)
        assert got == expected
    for a, b in ((value, other), ({"k": value}, {"k": other})):
        try:
            expected = diff._same_types(a, b)
        except Exception as exc:
            with pytest.raises(type(exc)):
                diff._same_types_native(a, b)
        else:
            assert diff._same_types_native(a, b) == expected


@needs_native
def test_the_native_type_check_edge_cases():
    deep: Any = [1]
    twin: Any = [1]
    for _ in range(2000):  # past its depth: the pure function decides (and may raise)
        deep, twin = [deep], [twin]
    with pytest.raises(RuntimeError):
        NATIVE_MODULE.same_types(deep, twin)
    assert NATIVE_MODULE.same_types({1: [True]}, {1.0: [True]}) is True  # key types: never
    assert NATIVE_MODULE.same_types({"a": (1, 2)}, {"a": (1, 2.0)}) is False
    assert NATIVE_MODULE.same_types([Decimal(1)], [1]) is False
    assert NATIVE_MODULE.same_types([math.nan], [math.nan]) is True
    for odd_a, odd_b in ((Mapping(a=1), Mapping(a=1)), (1, 1), ("a", "a")):
        with pytest.raises(RuntimeError):  # not a dict, list or tuple: the pure function
            NATIVE_MODULE.same_types(odd_a, odd_b)
        assert diff._same_types_native(odd_a, odd_b) == diff._same_types(odd_a, odd_b)
    with pytest.raises(KeyError):  # as the pure function raises, through the fallback
        diff._same_types_native({"a": 1}, {"b": 1})


class Reentrant:
    """A key whose name walks another value with the same walker (as another thread
    would while this one runs Python code)."""

    def __init__(self, walker: Any) -> None:
        self.walker = walker
        self.inner: list[str] = []

    def __str__(self) -> str:
        try:
            self.walker.walk({"a": 1}, set())
            self.inner.append("walked")
        except RuntimeError:
            self.inner.append("busy")
        return "reentrant"


@needs_native
def test_a_busy_walker_is_never_waited_for(walker):
    key = Reentrant(walker)
    parts, _ = walker.walk({key: 1}, set())
    assert key.inner == ["busy"]  # never waited for: the GIL is held
    assert parts == frozenset({"\x00map", "/reentrant\x00int"})
    assert walker.walk({"a": 1}, set())[0] == frozenset({"\x00map", "/a\x00int"})


# -- entries as read (core/entry.py's from_redis, read_entries) ---------------------------

ENTRY_IDS = st.one_of(
    st.builds(lambda ms, seq: b"%d-%d" % (ms, seq), st.integers(0, 10**19), st.integers(0, 99)),
    st.sampled_from([
        b"1-0", b"0-0", b"-1", b"12", b"1_0-1", b" 1-0", b"+1-0", b"\xff-1", b"\xd9\xa1-0",
        b"999999999999999999-1", b"1000000000000000000-1", "123-4", "x-1",
    ]),
)  # fmt: skip
EVENT_IDS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30).map(
        str.encode
    ),
    st.sampled_from([
        b"", b" ", b"a b", b"a\x00", b"\x7f", b"\tA", b"A\n", b"x" * 256, b"x" * 257,
        "é".encode(), "\u00a0a".encode(), "\u2028".encode(), b"\xff\xfe", b"\xed\xa0\x80",
    ]),
    st.binary(max_size=8),
)  # fmt: skip
FIELDS = st.one_of(
    st.none(),
    st.just({}),
    st.builds(
        lambda event_id, other, with_id: ({b"event_id": event_id} if with_id else {}) | other,
        EVENT_IDS,
        st.dictionaries(st.binary(max_size=6), st.binary(max_size=40), max_size=4),
        st.booleans(),
    ),
    st.just({b"event_id": "text"}),
    st.just({"event_id": b"A1"}),
    st.just({b"event_id": b"A1", b"payload": 7}),
)


# Redis' own form of an item, [id, [name, value, ...]] (UnparsedReads): the same
# fields flat, and lists no dict could come from.
FLAT = st.one_of(
    FIELDS.map(lambda f: f if f is None else [x for pair in f.items() for x in pair]),
    st.sampled_from([
        [], [b"event_id"], [b"event_id", b"A", b"event_id", b"B"], [b"event_id", b"A", b"x"],
        ["event_id", b"A"], [b"event_id", "A"], [b"event_id", None], (b"event_id", b"A"),
    ]),
)  # fmt: skip
ITEMS = st.one_of(st.tuples(ENTRY_IDS, FIELDS), st.lists(ENTRY_IDS, min_size=1, max_size=1).flatmap(
    lambda ids: FLAT.map(lambda flat: [ids[0], flat])
))  # fmt: skip


@pytest.fixture(scope="module")
def reader() -> Any:
    if NATIVE_MODULE is None:
        pytest.fail(f"on CI the native module must be built: {native.HOT_PATH}")
    return entry.native_reader(NATIVE_MODULE)


def built(build: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", build(*args)
    except Exception as exc:
        return "raised", type(exc)


@needs_native
@given(st.lists(ITEMS, max_size=6), st.sampled_from(list(Side)))
@settings(max_examples=800, deadline=None)
def test_the_native_reader_builds_what_from_reply_builds(reader, items, side):
    pure = built(lambda: [entry.from_reply(side, i, f) for i, f in items])
    native_ = built(lambda: reader.read(side, items))
    assert native_[0] == pure[0], (native_, pure)
    if pure[0] == "raised":
        assert native_[1] is pure[1]
        return
    assert native_[1] == pure[1]
    for a, b, (_, fields) in zip(native_[1], pure[1], items, strict=True):
        assert type(a) is entry.StreamEntry
        assert (a.event_id, a.problem, a.arrival_ms) == (b.event_id, b.problem, b.arrival_ms)
        assert built(entry.entry_bytes, a) == built(entry.entry_bytes, b)
        assert a.fields == b.fields and type(a.fields) is dict
        if isinstance(fields, dict) and fields:
            assert a.fields is fields  # the read's own dict, not a copy


@needs_native
def test_the_native_reader_builds_the_common_entry_itself(reader):
    """Only odd items go to from_reply: the common one is built in Rust."""
    handed = []
    spy = entry.native_reader(NATIVE_MODULE, lambda *a: handed.append(a) or entry.from_reply(*a))
    common = (b"1700000000000-1", {b"event_id": b"01HF7YAVYG", b"payload": b"x"})
    tombstone_like = (b"1700000000000-2", {b"payload": b"x"})
    got = spy.read(Side.SISTER, [common, tombstone_like])
    assert [a[1] for a in handed] == [b"1700000000000-2"]
    assert got[0].event_id == "01HF7YAVYG" and got[0].arrival_ms == 1700000000000
    assert got[0].size == entry.ENTRY_OVERHEAD_BYTES + 8 + 10 + 7 + 1
    assert got[1].problem == "no event_id field"


@needs_native
def test_a_flat_reply_is_read_natively_and_a_later_repeated_name_wins(reader):
    handed = []
    spy = entry.native_reader(NATIVE_MODULE, lambda *a: handed.append(a) or entry.from_reply(*a))
    flat = [b"1700000000000-1", [b"event_id", b"A", b"payload", b"x", b"event_id", b"B"]]
    [got] = spy.read(Side.PRODUCTION, [flat])
    assert not handed and got.event_id == "B"
    assert got.fields == {b"event_id": b"B", b"payload": b"x"}
    assert got.size == entry.ENTRY_OVERHEAD_BYTES + 8 + 1 + 7 + 1
    [deleted] = spy.read(Side.PRODUCTION, [[b"2-0", None]])
    assert deleted.problem == "entry was deleted from the stream before it was verified"
    with pytest.raises(ValueError):  # as fields_dict raises: Redis never sends it
        reader.read(Side.PRODUCTION, [[b"3-0", [b"event_id"]]])


def test_read_entries_gives_from_redis_on_either_path():
    items = [(b"5-0", {b"event_id": b"A"}), (b"6-0", None), (b"7-0", {b"event_id": b" "})]
    got = entry.read_entries(Side.PRODUCTION, items)
    assert got == [entry.StreamEntry.from_redis(Side.PRODUCTION, i, f) for i, f in items]
    assert [e.problem for e in got] == [
        None,
        "entry was deleted from the stream before it was verified",
        "event_id has whitespace or control characters",
    ]


ULID_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EVENT_IDS = st.one_of(
    st.text(max_size=80),
    # ULIDs, their lower case, a first digit past "7", and letters Crockford leaves out
    st.builds(
        str.__add__,
        st.sampled_from("0178Zz"),
        st.text(ULID_DIGITS + ULID_DIGITS.lower() + "ILOUilou", min_size=24, max_size=26),
    ),
    st.text("xé", min_size=30, max_size=70),  # about LISTPACK_MAX_VALUE bytes
)


@pytest.fixture(scope="module")
def filing() -> Any:
    if NATIVE_MODULE is None:
        pytest.fail(f"on CI the native module must be built: {native.HOT_PATH}")
    return decisions.native_filing(NATIVE_MODULE)


@needs_native
@given(st.sampled_from(["", "cdc-verify:decisions:", "é{x}:"]), EVENT_IDS)
@settings(max_examples=500, deadline=None)
def test_the_native_filing_gives_what_the_pure_one_gives(filing, prefix, event_id):
    got = filing(prefix, event_id)
    assert got == decisions.pure_filing(prefix, event_id)
    assert [type(v) for v in got] == [str, int, int]


@needs_native
def test_the_native_filing_edge_cases(filing):
    ulid = "01HF7YAVYGZZZZZZZZZZZZZZZZ"
    bucket, end_ms, shard = filing("p:", ulid)
    ms = decisions.ulid_ms(ulid)
    assert ms is not None
    assert (bucket.startswith(f"p:{ms // 1000}:"), end_ms, shard) == (
        True,
        ms // 1000 * 1000 + 1000,
        -1,
    )
    lower = filing("p:", ulid.lower())  # Crockford reads either case (the shard differs)
    assert (lower[0].rsplit(":", 1)[0], lower[1:]) == (bucket.rsplit(":", 1)[0], (end_ms, -1))
    assert filing("p:", "8" + ulid[1:])[0] == ""  # past the largest ULID time
    assert filing("p:", "x" * 65) == ("", 0, decisions.OWN_KEY)
    assert filing("p:", "x" * 64)[2] >= 0
    for surrogate in (
        "\ud800",
        "01HF7YAVYG\udfffZZZZZZZZZZZZZZ",
    ):  # no UTF-8: raised as pure raises
        with pytest.raises(UnicodeEncodeError):
            decisions.pure_filing("p:", surrogate)
        with pytest.raises(UnicodeEncodeError):
            filing("p:", surrogate)


MSGPACK_LEAVES = st.one_of(
    st.floats(allow_nan=True),
    st.floats(width=32),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text("\u02a0xé", max_size=40),  # 0xCA inside a str
    st.binary(max_size=40),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**33), st.integers(0, 999_999_999)),
    st.booleans(),
    st.none(),
)
MSGPACK_VALUES = st.recursive(
    MSGPACK_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=3) | st.integers(-3, 3), inner, max_size=5)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def module() -> Any:
    if NATIVE_MODULE is None:
        pytest.fail(f"on CI the native module must be built: {native.HOT_PATH}")
    return NATIVE_MODULE


@st.composite
def msgpack_payloads(draw: Any) -> bytes:
    """msgpack of a value, its floats as float32 or float64, then maybe cut, lengthened or
    with a byte changed (0xca or 0xc1 among them): payloads msgpack reads and refuses."""
    value = draw(MSGPACK_VALUES)
    try:
        payload = msgpack.packb(value, use_single_float=draw(st.booleans()))
    except OverflowError:  # a float past float32's range
        payload = msgpack.packb(value)
    change = draw(st.sampled_from(["none", "none", "cut", "extra", "byte"]))
    if change == "cut" and payload:
        payload = payload[: draw(st.integers(0, len(payload) - 1))]
    elif change == "extra":
        payload += draw(st.binary(min_size=1, max_size=3))
    elif change == "byte" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        byte = draw(st.sampled_from([0xCA, 0xCB, 0xC1, 0xDD, 0xFF, 0x00]))
        payload = payload[:at] + bytes([byte]) + payload[at + 1 :]
    return payload


@needs_native
@given(msgpack_payloads())
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_native_float32_scan_answers_as_the_pure_one(module, payload):
    answer = module.may_hold_float32(payload)
    if answer is None:  # left to the pure function: a timestamp, or deep nesting
        assert b"\xff" in payload or len(payload) > 500
    else:
        assert answer == wire.pure_may_hold_float32(payload) or wire.FLOAT32_MARKER not in payload
    assert wire.may_hold_float32(payload) == wire.pure_may_hold_float32(payload)


@needs_native
def test_the_native_float32_scan_edge_cases():
    scan = NATIVE_MODULE.may_hold_float32
    assert scan(b"\xca\x3f\x80\x00\x00") is True  # 1.0 as a float32
    assert scan(msgpack.packb([0.1, "\u02a0"])) is False  # 0.1 is no float32; 0xCA in a str
    assert scan(msgpack.packb(0.5)) is True  # a float64 a float32 holds exactly
    assert scan(msgpack.packb(float("nan"))) is True
    assert scan(msgpack.packb(float("inf"))) is True  # struct packs inf as a float32
    assert scan(msgpack.packb(1e300)) is False  # past float32's range: struct refuses it
    assert scan(msgpack.packb([1, 2]) + b"\x01") is True  # extra bytes: msgpack refuses
    assert scan(b"\x92\x01") is True  # cut short
    assert scan(b"\xc1") is True  # never used
    assert scan(b"\xd4\xca\x00") is True  # ext code -54: msgpack's ExtType refuses it
    assert scan(msgpack.packb(msgpack.Timestamp(1, 0))) is None  # ext -1: msgpack checks it
    deep = b"\x91" * 600 + b"\xca\x3f\x80\x00\x00"
    assert scan(deep) is None and wire.may_hold_float32(deep) is True


def wire_types(walk: Any, payload: bytes) -> Any:
    try:
        return list(walk(payload).items())  # in order: a report lists them so
    except wire.WireError:
        return "refused"


@needs_native
@given(msgpack_payloads())
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_native_wire_walk_gives_what_the_pure_one_gives(module, payload):
    pure = wire_types(wire.pure_msgpack_wire_types, payload)
    found = module.msgpack_wire_types(payload)
    assert (list(found.items()) if found is not None else "refused") == pure
    assert wire_types(wire.msgpack_wire_types, payload) == pure


@needs_native
def test_the_native_wire_walk_edge_cases():
    walk = NATIVE_MODULE.msgpack_wire_types
    keys = msgpack.packb({"a/b~c": 1, "é": [1.5, None], "a": {"x": b"\x00"}})
    assert walk(keys) == wire.pure_msgpack_wire_types(keys)
    assert "/a~1b~0c" in walk(keys) and walk(keys)["/\u00e9/0"] == "float64"
    bad_key = b"\x81\xa2\xff\xfe\x01"  # a key that is no UTF-8: decoded with "replace"
    assert walk(bad_key) == {"": "map", "/\ufffd\ufffd": "int"}
    repeated = b"\x82\xa1a\xca\x3f\x00\x00\x00\xa1a\x01"  # "a" twice: first place, last type
    assert list(walk(repeated).items()) == [("", "map"), ("/a", "int")]
    deep = b"\x91" * 3000 + b"\xd4\x05\x00"  # deeper than Python recurses; an ext type
    assert walk(deep) == wire.pure_msgpack_wire_types(deep) and walk(deep)["/0" * 3000] == "ext5"
    for refused in (b"", b"\x92\x01", b"\x01\x02", b"\xc1", b"\x81\x01\x02", b"\xa5ab"):
        assert walk(refused) is None
        with pytest.raises(wire.WireError):
            wire.pure_msgpack_wire_types(refused)
