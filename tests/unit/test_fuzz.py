"""Fuzzing with hypothesis (issue 14): garbage of every kind, through every layer.

The inputs are the strategies of tests/strategies.py: any bytes in any field, arbitrary
msgpack (deep, bin keys, NaN, float32 on the wire, 64-bit edges, ext types, timestamps),
msgpack the packer cannot write, and real payloads with bytes flipped or cut. What each
layer must do with them:

- the consumers return a dict that keeps their documented rules, or raise their
  documented error (`LegacyDecodeError`, `AccountDecodeError` for accounts), nothing else;
- `StructuralDiff` never raises, gives the same answer twice, finds nothing between a
  value and itself or a copy, agrees with `deep_same`, and is symmetric;
- the wire walk names every value of a payload or raises `WireError`, and
  `with_wire_types` never raises and never drops a difference;
- `record_to_json` writes one line of strict, valid UTF-8 JSON whatever a record holds;
- the Verifier, fed pairs, singletons and duplicates in any batching: nothing escapes,
  every entry is settled once, every usable event_id gets exactly one primary verdict
  (or is out of scope), malformed entries get malformed records, and the batching does
  not change a single outcome.

Examples are derandomized (the same on every run, no example database) and few enough
for the file to run in well under a minute; `CDC_FUZZ_SCALE=10` runs ten times as many.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_verify.consumers import account, reference
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.consumers.reference import LegacyDecodeError
from cdc_verify.core.bounds import RECORD_BOUNDS, cut_text
from cdc_verify.core.decoder import MAX_ERROR_CHARS, describe_error
from cdc_verify.core.diff import MAX_WALK_DEPTH, Difference, StructuralDiff, deep_same
from cdc_verify.core.entry import StreamEntry, entry_sort_key
from cdc_verify.core.jsonvalue import dumps
from cdc_verify.core.outcome import Outcome, OutcomeKind, VerdictRecord, record_to_json
from cdc_verify.core.position import ReadPosition
from cdc_verify.core.scope import Scope
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.core.wire import WireError, msgpack_wire_types, resolve, with_wire_types
from cdc_verify.schemas.models import VerdictRecordModel
from cdc_verify.schemas.verdicts import DifferenceKind, Side, Verdict
from cdc_verify.simulate.legacy_writer import sample_comment
from cdc_verify.simulate.models import sample_account

from .. import strategies as fz

_SCALE = float(os.environ.get("CDC_FUZZ_SCALE", "1"))
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def examples(count: int) -> settings:
    return settings(FUZZ, max_examples=max(1, round(count * _SCALE)))


#: CPython's default, which the worker runs with (it never raises it).
PYTHON_RECURSION_LIMIT = 1000
P = ParamSpec("P")


def at_python_recursion_limit(test: Callable[P, None]) -> Callable[P, None]:
    """Runs `test` at CPython's default recursion limit. While a test runs, hypothesis
    raises the limit by 2,000 frames, and that would hide every RecursionError the worker
    meets (msgpack nests 1,024 levels deep)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        raised = sys.getrecursionlimit()
        sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)
        try:
            test(*args, **kwargs)
        finally:
            sys.setrecursionlimit(raised)

    return run


def strict_json(text: str) -> Any:
    """`json.loads` that refuses NaN and Infinity literals, as strict parsers do."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"not strict JSON: {name}")


def walk(value: Any) -> Iterator[Any]:
    """Every value inside `value` (itself included), without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) in (list, tuple):
            stack.extend(item)


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


# --------------------------------------------------------------------------- consumers

_COMMENT_STR_KEYS = ("id", "link_id", "parent_id", "subreddit_id", "author_id", "body",
                     "approval_state", "distinguished")  # fmt: skip
_COMMENT_ITEMS = {  # list -> (required keys, documented str keys)
    "awards": (("award_id", "count"), ("award_id",)),
    "rich_text": (("e", "t"), ("e", "t", "u")),
    "media": (("type", "url", "width", "height", "content_type"), ("type", "url", "content_type")),
}


def assert_comment_rules(comment: Any) -> None:
    """What docs/wire-format.md promises of a comment the reference consumer returned."""
    assert type(comment) is dict
    assert sorted(comment) == sorted(reference.KNOWN_KEYS)  # unknown top-level keys dropped
    for key in _COMMENT_STR_KEYS:
        assert type(comment[key]) is not bytes, key
    assert comment["awards"] is not None
    assert comment["edited"] is False or is_number(comment["edited"])
    for name, (required, str_keys) in _COMMENT_ITEMS.items():
        if type(comment[name]) is list:
            for item in comment[name]:
                assert type(item) is dict and set(required) <= item.keys(), name
                assert all(type(k) is str for k in item), name
                assert all(type(item.get(k)) is not bytes for k in str_keys), name
    for value in walk(comment):  # no ext type anywhere, no text that was not UTF-8
        assert type(value) not in (msgpack.ExtType, msgpack.Timestamp)
        if type(value) is str:
            value.encode("utf-8")
    dumps(comment)


_ACCOUNT_TYPES: dict[str, Callable[[Any], bool]] = {
    "id": lambda v: type(v) is str,
    "name": lambda v: type(v) is str,
    "icon_url": lambda v: v is None or type(v) is str,
    "created_utc": is_number,
    "link_karma": lambda v: type(v) is int,
    "comment_karma": lambda v: type(v) is int,
    "is_suspended": lambda v: type(v) is bool,
    "suspended_until": lambda v: v is None or is_number(v),
    "email_verified": lambda v: type(v) is bool,
    "has_premium": lambda v: type(v) is bool,
    "trophies": lambda v: type(v) is list,
}


def assert_account_rules(value: Any) -> None:
    """What docs/wire-format.md ("Accounts") promises of a decoded account."""
    assert type(value) is dict
    assert list(value) == list(account.KNOWN_KEYS)
    for key, check in _ACCOUNT_TYPES.items():
        assert check(value[key]), key
    for trophy in value["trophies"]:
        assert list(trophy) == list(account.TROPHY_KEYS)  # unknown keys dropped
        assert type(trophy["trophy_id"]) is str and is_number(trophy["granted_utc"])
    dumps(value)


def assert_decode_error(exc: BaseException) -> None:
    assert str(exc)  # says what is wrong
    described = describe_error(exc)
    assert len(described) <= MAX_ERROR_CHARS
    described.encode("utf-8")


def decode_or_error(consumer: Callable[[Mapping[bytes, bytes]], Any], fields: Any) -> Any:
    """The consumer's result, or the LegacyDecodeError it raised; anything else escapes."""
    try:
        return consumer(fields)
    except LegacyDecodeError as exc:
        return exc


def check_comment_consumer(fields: Mapping[bytes, bytes]) -> None:
    result = decode_or_error(reference.decode_event, fields)
    if isinstance(result, LegacyDecodeError):
        assert_decode_error(result)
    else:
        assert_comment_rules(result)


def check_account_consumer(fields: Mapping[bytes, bytes]) -> None:
    result = decode_or_error(account.decode_event, fields)
    if isinstance(result, LegacyDecodeError):
        assert type(result) is account.AccountDecodeError
        assert_decode_error(result)
    else:
        assert_account_rules(result)


@examples(300)
@given(fields=fz.entry_fields(), encoding=st.sampled_from((b"msgpack", b"protobuf")),
       payload=fz.payloads)  # fmt: skip
@at_python_recursion_limit
def test_reference_consumer_on_any_entry(
    fields: dict[bytes, bytes], encoding: bytes, payload: bytes
) -> None:
    check_comment_consumer(fields)
    check_comment_consumer({**fields, b"encoding": encoding, b"payload": payload})


@examples(300)
@given(payload=fz.shaped_payloads("comment"))
@at_python_recursion_limit
def test_reference_consumer_on_comment_shaped_payloads(payload: bytes) -> None:
    check_comment_consumer({b"encoding": b"msgpack", b"payload": payload})


@examples(200)
@given(fields=fz.entry_fields(), payload=fz.msgpack_payloads)
@at_python_recursion_limit
def test_account_consumer_on_any_entry(fields: dict[bytes, bytes], payload: bytes) -> None:
    check_account_consumer(fields)
    check_account_consumer({**fields, b"encoding": b"msgpack", b"payload": payload})


@examples(300)
@given(payload=fz.shaped_payloads("account"))
@at_python_recursion_limit
def test_account_consumer_on_account_shaped_payloads(payload: bytes) -> None:
    check_account_consumer({b"encoding": b"msgpack", b"payload": payload})


_DISPATCH = load_consumers(DEFAULT_CONSUMERS)


@examples(200)
@given(fields=fz.entry_fields())
@at_python_recursion_limit
def test_dispatch_by_entity_gives_what_the_entity_s_consumer_gives(
    fields: dict[bytes, bytes],
) -> None:
    own = account.decode_event if fields.get(b"entity") == b"account" else reference.decode_event
    got, expected = decode_or_error(_DISPATCH, fields), decode_or_error(own, fields)
    if isinstance(expected, LegacyDecodeError):
        assert type(got) is type(expected) and str(got) == str(expected)
    else:
        assert deep_same(got, expected)


def test_a_value_nested_too_deep_for_repr_is_still_a_legacy_decode_error() -> None:
    # Found by the fuzzer: the error message showed the value with repr(), which raises
    # RecursionError at about 1,000 levels, and msgpack nests 1,024 deep.
    comment = sample_comment(random.Random(1), "t1_deep")
    comment["edited"] = fz.nest(1000, 1000)
    fields = {b"encoding": b"msgpack", b"payload": fz.pack(comment)}
    with pytest.raises(LegacyDecodeError, match=r"^edited: list .* where false or a number"):
        reference.decode_event(fields)
    acct = sample_account(random.Random(1), "t2_deep")
    acct["link_karma"] = fz.nest(1, 1000, as_map=True)
    fields = {b"encoding": b"msgpack", b"payload": fz.pack(acct)}
    with pytest.raises(account.AccountDecodeError, match=r"^link_karma: map .* where an int"):
        account.decode_event(fields)


# --------------------------------------------------------------------------- diff

_SWAPPED = {
    DifferenceKind.MISSING: DifferenceKind.EXTRA,
    DifferenceKind.EXTRA: DifferenceKind.MISSING,
    DifferenceKind.VALUE: DifferenceKind.VALUE,
    DifferenceKind.TYPE: DifferenceKind.TYPE,
}
_DIFF = StructuralDiff()


def signature(differences: list[Difference]) -> list[tuple[Any, ...]]:
    """A difference list as comparable data: the values by identity (they may be deep)."""
    return [(d.path, d.kind, id(d.production), id(d.sister), d.production_wire,
             d.sister_wire) for d in differences]  # fmt: skip


@examples(300)
@given(production=fz.decoded_values, sister=fz.decoded_values)
@at_python_recursion_limit
def test_diff_never_raises_is_deterministic_symmetric_and_agrees_with_deep_same(
    production: Any, sister: Any
) -> None:
    differences = _DIFF(production, sister)
    assert signature(_DIFF(production, sister)) == signature(differences)
    assert (not differences) == deep_same(production, sister)
    for d in differences:
        assert isinstance(d.kind, DifferenceKind)
        assert d.path == "" or d.path.startswith("/")
        assert d.kind is not DifferenceKind.MISSING or d.sister is None
        assert d.kind is not DifferenceKind.EXTRA or d.production is None
    backwards = Counter((d.path, _SWAPPED[d.kind]) for d in _DIFF(sister, production))
    assert backwards == Counter((d.path, d.kind) for d in differences)
    if differences:  # and the record that carries them is strict JSON
        record = VerdictRecord("E1", Verdict.MISMATCH, differences=differences)
        loaded = strict_json(record_to_json(record))
        # A path past the record's bound is cut (core/bounds.py), the rest kept as they are.
        paths = [cut_text(d.path, RECORD_BOUNDS.path) for d in differences]
        assert [d["path"] for d in loaded["differences"]] == paths


@examples(200)
@given(value=fz.decoded_values)
@at_python_recursion_limit
def test_a_value_has_no_difference_with_itself_or_with_a_copy(value: Any) -> None:
    copy = fz.clone(value)
    assert _DIFF(value, value) == []
    assert _DIFF(value, copy) == []
    assert deep_same(value, copy)


@examples(300)
@given(twins=fz.retyped_twins)
@at_python_recursion_limit
def test_a_leaf_of_another_type_is_a_difference_even_when_python_says_equal(
    twins: tuple[Any, Any, bool],
) -> None:
    value, twin, changed = twins
    differences = _DIFF(value, twin)
    assert bool(differences) == changed
    for d in differences:  # equal values: only types differ (or the subtree below the cut)
        cut = d.kind is DifferenceKind.VALUE and d.path.count("/") == MAX_WALK_DEPTH
        assert d.kind is DifferenceKind.TYPE or cut, d.path


@pytest.mark.parametrize(
    ("production", "sister"),
    [((0,), (False,)), ({"a": (1, 2.0)}, {"a": (1, 2)}), ([(1,)], [(True,)])],
)
def test_a_type_difference_inside_a_tuple_is_found(production: Any, sister: Any) -> None:
    # Found by the fuzzer: the quick path (== and a type check) did not look into tuples,
    # which a consumer that unpacks with use_list=False returns.
    [difference] = _DIFF(production, sister)
    assert difference.kind is DifferenceKind.TYPE


# --------------------------------------------------------------------------- wire walk

_WIRE_NAMES = {"int", "float32", "float64", "str", "bin", "nil", "bool", "array", "map"}
_PYTHON_TYPES = {"int": int, "float32": float, "float64": float, "str": str, "bin": bytes,
                 "nil": type(None), "bool": bool, "array": list, "map": dict}  # fmt: skip


def is_wire_name(name: str | None) -> bool:
    return name in _WIRE_NAMES or (name is not None and name.startswith("ext"))


@examples(400)
@given(payload=st.one_of(fz.payloads, fz.raw_msgpack(), fz.field_bytes))
@at_python_recursion_limit
def test_the_wire_walk_names_every_value_or_raises_wire_error(payload: bytes) -> None:
    try:
        wire = msgpack_wire_types(payload)
    except WireError:
        return
    assert wire and all(type(path) is str and is_wire_name(name) for path, name in wire.items())


@pytest.mark.parametrize(
    "payload",
    [b"\xc7", b"\xd4", b"\xc8\x00", b"\xc9\x00\x00", b"\x91\xd4", b"\x81\xa1k\xc7\x01"],
)
def test_a_truncated_ext_header_is_a_wire_error(payload: bytes) -> None:
    # Found by the fuzzer: struct.error escaped where an ext header was cut short.
    with pytest.raises(WireError):
        msgpack_wire_types(payload)


@examples(200)
@given(value=st.one_of(fz.msgpack_values, fz.deep_values), single_float=st.booleans())
@at_python_recursion_limit
def test_the_wire_types_of_a_packed_value_are_the_types_it_decodes_to(
    value: Any, single_float: bool
) -> None:
    payload = fz.pack(value, single_float)
    decoded = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if any(type(v) is dict and any(type(k) is not str for k in v) for v in walk(decoded)):
        with pytest.raises(WireError):  # a bin key: the walk cannot name the paths
            msgpack_wire_types(payload)
        return
    wire = msgpack_wire_types(payload)
    nodes = sum(1 for v in walk(decoded)) - sum(len(v) for v in walk(decoded) if type(v) is dict)
    assert len(wire) == nodes  # one path per value (map keys are not values)
    for path, name in wire.items():
        found = resolve(decoded, path)
        if name.startswith("ext"):
            assert type(found) in (msgpack.ExtType, msgpack.Timestamp)
        else:
            assert type(found) is _PYTHON_TYPES[name], path
        if type(found) is float:
            assert name == ("float32" if single_float else "float64")


_msgpack_fields = st.builds(
    lambda payload: {b"encoding": b"msgpack", b"payload": payload},
    st.one_of(fz.msgpack_payloads, fz.raw_msgpack()),
)


@examples(200)
@given(
    production=_msgpack_fields,
    sister=_msgpack_fields,
    decoded=st.tuples(fz.decoded_values, fz.decoded_values),
    ignored=st.sets(st.sampled_from(("", "/a", "/0", "/created_utc"))),
)
@at_python_recursion_limit
def test_with_wire_types_never_raises_and_keeps_every_difference(
    production: dict[bytes, bytes],
    sister: dict[bytes, bytes],
    decoded: tuple[Any, Any],
    ignored: set[str],
) -> None:
    differences = _DIFF(*decoded)
    out = with_wire_types(differences, production, sister, decoded, ignored.__contains__)
    assert len(out) >= len(differences)
    for before, after in zip(differences, out, strict=False):
        assert (after.path, after.kind) == (before.path, before.kind)
        assert after.production is before.production and after.sister is before.sister
    for added in out[len(differences) :]:
        assert added.kind is DifferenceKind.TYPE and added.path not in ignored
        assert {added.production_wire, added.sister_wire} == {"float32", "float64"}
    for d in out:
        assert d.production_wire is None or is_wire_name(d.production_wire)
        assert d.sister_wire is None or is_wire_name(d.sister_wire)


def test_a_pointer_token_that_is_a_unicode_digit_is_no_list_index() -> None:
    # Found by review while writing the fuzzers (no example hit it): "²".isdigit() is
    # True but int("²") raises, so such a map key met where a consumer returned a list
    # made with_wire_types raise.
    assert resolve(["a", "b", "c"], "/²") not in ("a", "b", "c")
    assert resolve({"²": 1.5}, "/²") == 1.5
    p, s = fz.pack({"²": 1.5}), fz.pack({"²": 1.5}, single_float=True)
    production = {b"encoding": b"msgpack", b"payload": p}
    sister = {b"encoding": b"msgpack", b"payload": s}
    assert with_wire_types([], production, sister, ([1.5], [1.5]), lambda path: False) == []


@st.composite
def float_comments(draw: st.DrawFn) -> dict[str, Any]:
    """A valid comment whose floats (top level and inside list items) are drawn."""
    comment = sample_comment(random.Random(draw(st.integers(0, 2**16))), "t1_f32")
    comment["created_utc"] = draw(fz.floats)
    comment["edited"] = draw(st.one_of(st.just(False), fz.floats))
    comment["awards"].append({"award_id": "x", "count": 1, "ratio": draw(fz.floats)})
    return comment


@examples(100)
@given(comment=float_comments())
@at_python_recursion_limit
def test_a_float32_against_a_float64_is_always_a_difference_with_its_wire_types(
    comment: dict[str, Any],
) -> None:
    production = {b"encoding": b"msgpack", b"payload": fz.pack(comment)}
    sister = {b"encoding": b"msgpack", b"payload": fz.pack(comment, single_float=True)}
    decoded = reference.decode_event(production), reference.decode_event(sister)
    out = with_wire_types(_DIFF(*decoded), production, sister, decoded, lambda path: False)
    by_path = {d.path: d for d in out}
    for path in ("/created_utc", "/awards/" + str(len(comment["awards"]) - 1) + "/ratio"):
        d = by_path[path]  # equal values or not, the wire types tell them apart
        assert (d.production_wire, d.sister_wire) == ("float64", "float32")
    assert ("/edited" in by_path) == (comment["edited"] is not False)


# --------------------------------------------------------------------------- records


def _cyclic(value: Any) -> list[Any]:
    out: list[Any] = [value]
    out.append(out)
    return out


_surrogate_text = st.text(
    st.one_of(st.characters(codec="utf-8"), st.characters(categories=["Cs"])), max_size=30
)
_hostile_values = st.one_of(
    fz.decoded_values,
    st.sets(st.integers() | st.text(max_size=5), max_size=4),
    st.frozensets(st.binary(max_size=4), max_size=3),
    st.builds(_cyclic, fz.decoded_values),
    st.integers(1000, 3000).map(lambda bits: (1 << bits) - 1),
    st.builds(bytearray, st.binary(max_size=8)),
    st.sampled_from([object(), Verdict.MATCH, Side.BOTH, math.nan, -math.inf, ...]),
    _surrogate_text,
)
_differences = st.builds(
    Difference,
    path=st.one_of(st.just(""), _surrogate_text.map(lambda t: "/" + t)),
    kind=st.sampled_from(DifferenceKind),
    production=_hostile_values,
    sister=_hostile_values,
    production_wire=st.one_of(st.none(), st.sampled_from(sorted(_WIRE_NAMES))),
    sister_wire=st.one_of(st.none(), st.sampled_from(sorted(_WIRE_NAMES))),
)
_usable_event_ids = st.one_of(
    st.sampled_from(fz.EVENT_IDS),
    st.text(st.characters(codec="utf-8", exclude_categories=["Z", "C"]), min_size=1, max_size=20),
)
_records = st.builds(
    VerdictRecord,
    event_id=st.one_of(st.none(), _usable_event_ids),
    verdict=st.sampled_from(Verdict),
    side=st.one_of(st.none(), st.sampled_from(Side)),
    entry_id=st.one_of(st.none(), st.just("1700000000000-0")),
    error=st.one_of(st.none(), _surrogate_text),
    differences=st.one_of(st.none(), st.lists(_differences, max_size=3)),
)


@examples(300)
@given(record=_records)
@at_python_recursion_limit
def test_a_record_is_one_line_of_strict_utf8_json_whatever_it_holds(record: VerdictRecord) -> None:
    text = record_to_json(record)
    assert "\n" not in text
    text.encode("utf-8")  # no lone surrogate left raw
    loaded = strict_json(text)
    assert loaded["event_id"] == record.event_id and loaded["verdict"] == record.verdict.value
    assert loaded.get("error") == record.error  # escaped, never lost
    if record.differences is None:
        assert "differences" not in loaded
    else:
        assert [d["path"] for d in loaded["differences"]] == [d.path for d in record.differences]
        for d, original in zip(loaded["differences"], record.differences, strict=True):
            assert d["kind"] == original.kind.value
            wires = original.production_wire is not None or original.sister_wire is not None
            assert ("production_wire" in d) == ("sister_wire" in d) == wires  # both or neither


# --------------------------------------------------------------------------- Verifier

_CONSUMER = load_consumers(DEFAULT_CONSUMERS)
CONFIGS = {
    "defaults": VerifierConfig(),
    "sample:50": VerifierConfig(scope=Scope.parse("sample:50")),
}


def build_entries(copies: list[fz.PlannedCopy]) -> dict[Side, list[StreamEntry]]:
    """Each side's entries in stream order, with the ids Redis would give them."""
    out: dict[Side, list[StreamEntry]] = {Side.PRODUCTION: [], Side.SISTER: []}
    for side, entries in out.items():
        last_ms, seq = -1, 0
        for copy in sorted((c for c in copies if c.side is side), key=lambda c: c.ms):
            seq = seq + 1 if copy.ms == last_ms else 0
            last_ms = copy.ms
            entries.append(StreamEntry(side, f"{copy.ms}-{seq}", dict(copy.fields)))
    return out


def run_in_one_batch(
    config: VerifierConfig, entries: dict[Side, list[StreamEntry]]
) -> list[Outcome]:
    """As a bounded run does it: everything in entry-id order, then the end of input."""
    verifier = Verifier(_CONSUMER, config)
    ordered = sorted([*entries[Side.PRODUCTION], *entries[Side.SISTER]], key=entry_sort_key)
    return verifier.ingest(ordered) + verifier.flush()


def run_in_batches(
    config: VerifierConfig,
    entries: dict[Side, list[StreamEntry]],
    feeding: tuple[list[bool], list[int], list[str]],
) -> list[Outcome]:
    """The sides interleaved as `picks` says, cut into batches at `cuts`; after each
    batch nothing, an expiry, or both read positions moved to the next unread entry."""
    picks, cuts, actions = feeding
    queues = {side: list(side_entries) for side, side_entries in entries.items()}
    order: list[StreamEntry] = []
    for pick in picks:
        side = Side.PRODUCTION if pick else Side.SISTER
        if not queues[side]:
            side = Side.SISTER if pick else Side.PRODUCTION
        order.append(queues[side].pop(0))
    verifier = Verifier(_CONSUMER, config)
    out: list[Outcome] = []
    read = {Side.PRODUCTION: 0, Side.SISTER: 0}
    for start, end, action in zip([0, *cuts], [*cuts, len(order)], actions, strict=True):
        batch = order[start:end]
        out += verifier.ingest(batch)
        for entry in batch:
            read[entry.side] += 1
        if action == "expire":
            out += verifier.expire()
        elif action == "advance":
            for side, side_entries in entries.items():
                if not side_entries:
                    continue
                rest = side_entries[read[side] :]
                # Every entry before the next unread one's millisecond has been read.
                before = rest[0].arrival_ms if rest else side_entries[-1].arrival_ms + 1
                verifier.advance(side, ReadPosition(before))
            out += verifier.expire()
    return out + verifier.flush()


def canonical(outcomes: list[Outcome]) -> list[tuple[Any, ...]]:
    """The outcomes as sortable data, independent of the order they came in."""
    rows: list[tuple[Any, ...]] = []
    for o in outcomes:
        rows.append((
            o.kind.value,
            record_to_json(o.record) if o.record is not None else "",
            tuple(sorted((e.side.value, e.entry_id) for e in o.settles)),
            record_to_json(o.late_record) if o.late_record is not None else "",
            o.late_by_ms if o.late_by_ms is not None else -1,
        ))  # fmt: skip
    return sorted(rows)


def check_outcomes(
    config: VerifierConfig, entries: dict[Side, list[StreamEntry]], outcomes: list[Outcome]
) -> None:
    everything = [*entries[Side.PRODUCTION], *entries[Side.SISTER]]
    # Every entry settled exactly once: nothing lost, nothing acked twice.
    settled = Counter((e.side, e.entry_id) for o in outcomes for e in o.settles)
    assert settled == Counter((e.side, e.entry_id) for e in everything)
    # Every usable event_id: exactly one primary verdict, or out of scope.
    usable = {e.event_id for e in everything if e.event_id is not None}
    decided = Counter(
        o.event_id for o in outcomes if o.kind in (OutcomeKind.PRIMARY, OutcomeKind.OUT_OF_SCOPE)
    )
    assert decided == Counter(usable)
    for o in outcomes:
        assert o.kind is not OutcomeKind.SKIP  # no start horizon here
        if o.kind is OutcomeKind.OUT_OF_SCOPE:
            [present] = o.settles
            assert present.side is Side.PRODUCTION and not config.scope.expects(present.fields)
        for record in (o.record, o.late_record):
            if record is not None:
                text = record_to_json(record)
                text.encode("utf-8")
                VerdictRecordModel.model_validate(strict_json(text))
        if o.kind is OutcomeKind.PRIMARY and len(o.settles) == 2:
            check_pair_verdict(o)
        if o.kind is OutcomeKind.PRIMARY and len(o.settles) == 1:
            [present] = o.settles
            assert o.record is not None and o.record.entry_id == present.entry_id
            missing_on = Side.SISTER if present.side is Side.PRODUCTION else Side.PRODUCTION
            assert o.record.verdict is Verdict(f"missing_in_{missing_on.value}")
    # Malformed entries: one malformed record each, saying why.
    malformed = sorted(
        (o.record.side, o.record.entry_id, o.record.error)
        for o in outcomes
        if o.record is not None and o.record.verdict is Verdict.MALFORMED
    )
    assert malformed == sorted((e.side, e.entry_id, e.problem) for e in everything if e.problem)


def check_pair_verdict(outcome: Outcome) -> None:
    """undecodable exactly when, and on the side where, the consumer raises."""
    production, sister = sorted(outcome.settles, key=lambda e: e.side is not Side.PRODUCTION)
    fails = [
        side
        for side, entry in ((Side.PRODUCTION, production), (Side.SISTER, sister))
        if isinstance(decode_or_error(_CONSUMER, entry.fields), LegacyDecodeError)
    ]
    record = outcome.record
    assert record is not None
    if not fails:
        assert record.verdict in (Verdict.MATCH, Verdict.MISMATCH, Verdict.RACE)
    else:
        assert record.verdict is Verdict.UNDECODABLE
        assert record.side is (fails[0] if len(fails) == 1 else Side.BOTH)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
@examples(400)
@given(copies=fz.stream_inputs(), data=st.data())
@at_python_recursion_limit
def test_the_verifier_gives_every_event_one_verdict_whatever_the_batching(
    config: VerifierConfig, copies: list[fz.PlannedCopy], data: st.DataObject
) -> None:
    entries = build_entries(copies)
    feeding = data.draw(fz.interleavings(len(copies)))
    one_batch = run_in_one_batch(config, entries)
    check_outcomes(config, entries, one_batch)
    batched = run_in_batches(config, build_entries(copies), feeding)
    check_outcomes(config, entries, batched)
    assert canonical(batched) == canonical(one_batch)


def test_fuzz_inputs_reach_every_verdict() -> None:
    """The stream strategy is no blunt tool: over a fixed set of its examples, every verdict
    and every outcome kind but SKIP and TOMBSTONE occurs."""
    seen_verdicts: set[Verdict] = set()
    seen_kinds: set[OutcomeKind] = set()

    # 400: 60 examples missed `race` in a full CI run, where other tests ran first in the
    # process (alone it reached it); it is rare in these inputs, so take plenty.
    @settings(FUZZ, max_examples=400)
    @given(copies=fz.stream_inputs())
    def collect(copies: list[fz.PlannedCopy]) -> None:
        for o in run_in_one_batch(CONFIGS["sample:50"], build_entries(copies)):
            seen_kinds.add(o.kind)
            if o.record is not None:
                seen_verdicts.add(o.record.verdict)

    collect()
    assert seen_verdicts == set(Verdict)
    # SKIP needs a start horizon, TOMBSTONE an envelope that says so (test_debezium_envelope).
    assert seen_kinds == set(OutcomeKind) - {OutcomeKind.SKIP, OutcomeKind.TOMBSTONE}
