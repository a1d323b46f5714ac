"""Hypothesis strategies for the fuzz tests (tests/unit/test_fuzz.py): what a stream can hold.

- `field_bytes`: any bytes a field can hold: empty, short, non-UTF-8, now and then large
  (up to 1 MiB).
- `msgpack_values`: Python values msgpack packs: nil, bools, ints at every width edge (and
  just past 64 bits, which the packer refuses: `pack` skips those examples), floats with
  NaN, infinities and -0.0, str, bin, ext types, ext -1 timestamps, lists and maps with
  str, bin and mixed keys; `deep_values` wraps one in up to 1,000 levels of nesting, built
  in one step (no recursion), so past Python's recursion limit but within msgpack's.
- `raw_msgpack`: msgpack written byte by byte, for what the packer cannot write: nesting
  past msgpack's limit, non-UTF-8 str, reserved ext codes, timestamps of a bad length,
  float32 markers, int map keys, truncated headers.
- `payloads`: packed values (float64 or float32 on the wire), raw msgpack, comment- and
  account-shaped maps with some values replaced, keys removed or turned into bin, or raw
  msgpack spliced in; real payloads (the simulated corpus, the legacy writer's protobuf)
  with bytes flipped, inserted, deleted or cut; any bytes.
- `entry_fields`: one stream entry: a real corpus entry with fields dropped, replaced by
  any bytes, swapped, extra fields added, and any `event_id` (usable or not, or absent).
- `decoded_values`: what a consumer may return, as comparable Python values (the decoded
  msgpack types, int map keys, tuples, nesting past Python's recursion limit);
  `clone` copies one, `retyped_twins` pairs one with a copy whose numeric leaves are
  equal but of another type (0, False, 0.0).
- `stream_inputs`: pairs, singletons and duplicates of corpus events on both sides (kept,
  re-encoded with one change, or changed field by field) and entries with any fields, at
  entry-id times within the grace window of each other or beyond it, for the Verifier;
  `interleavings` says how to feed them in batches.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
from hypothesis import reject
from hypothesis import strategies as st

from cdc_verify.consumers.account import KNOWN_KEYS as ACCOUNT_KEYS
from cdc_verify.consumers.account import TROPHY_KEYS
from cdc_verify.consumers.reference import KNOWN_KEYS as COMMENT_KEYS
from cdc_verify.core.waiting import STANDARD_FIELDS
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.legacy_writer import encode_protobuf, sample_comment
from cdc_verify.simulate.models import sample_account

T = TypeVar("T")

# --------------------------------------------------------------------------- bytes


def _large(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


#: Any bytes a field can hold; about one example in 14 is large (64 KiB to 1 MiB).
field_bytes: st.SearchStrategy[bytes] = st.one_of(
    *[st.binary(max_size=64)] * 12,
    st.sampled_from([b"", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b" ", b"\x00", b"msgpack"]),
    st.builds(_large, st.integers(64 * 1024, 1024 * 1024), st.integers(0, 2**16)),
)

# --------------------------------------------------------------------------- msgpack values

#: Ints at every msgpack width edge; 2**64 and -2**63 - 1 cannot be packed (skipped).
INT_EDGES = (
    0, 1, -1, 127, 128, -32, -33, 255, 256, -128, -129, 2**15, 2**16 - 1, 2**16,
    -(2**15), -(2**15) - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, -(2**31), -(2**31) - 1,
    2**63 - 1, 2**63, 2**64 - 1, -(2**63), 2**64, -(2**63) - 1,
)  # fmt: skip
_FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
FLOAT_EDGES = (
    math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
    _FLOAT32_MAX, 1.5, 0.1, 1_700_000_000.123456,
)  # fmt: skip
#: Keys that look like indices, JSON-pointer syntax, tags or documented keys.
TRICKY_KEYS = (
    "", "0", "1", "10", "²", "٣", "~", "/", "~1", "~0", "a/b", "$float", "$map", "\x00",
    "é", "日本", "🚀", *COMMENT_KEYS, *ACCOUNT_KEYS, *TROPHY_KEYS, "e", "t", "u",
)  # fmt: skip

ints = st.one_of(st.integers(-(2**63), 2**64 - 1), st.sampled_from(INT_EDGES))
floats = st.one_of(st.floats(), st.sampled_from(FLOAT_EDGES))
texts = st.one_of(st.text(st.characters(codec="utf-8"), max_size=24), st.sampled_from(TRICKY_KEYS))
timestamps = st.builds(msgpack.Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 999_999_999))
ext_types = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16))
map_keys: st.SearchStrategy[str | bytes] = st.one_of(texts, texts, texts, st.binary(max_size=6))

#: Leaves; one in twelve is an ext type (which every consumer refuses wherever it is).
msgpack_leaves = st.one_of(
    st.none(), st.booleans(), ints, ints, floats, floats, texts, texts, texts,
    st.binary(max_size=24), st.binary(max_size=24), timestamps | ext_types,
)  # fmt: skip


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(map_keys, children, max_size=4)


#: A value msgpack packs (but for the ints past 64 bits), at most a few levels deep.
msgpack_values: st.SearchStrategy[Any] = st.recursive(msgpack_leaves, _containers, max_leaves=10)


def nest(value: Any, depth: int, as_map: bool = False, key: str | bytes = "k") -> Any:
    """`value` inside `depth` lists (or one-key maps), built without recursion."""
    for _ in range(depth):
        value = {key: value} if as_map else [value]
    return value


#: Nesting depths: mostly shallow, sometimes near Python's and msgpack's limits.
depths = st.one_of(st.integers(0, 8), st.integers(90, 110), st.integers(900, 1000), st.just(1000))

#: A value nested up to 1,000 levels (packable: msgpack's packer stops at 1,024).
deep_values: st.SearchStrategy[Any] = st.builds(
    nest, msgpack_values, depths, st.booleans(), map_keys
)


def pack(value: Any, single_float: bool = False) -> bytes:
    """msgpack bytes of `value` (str as str, bytes as bin); skips values it cannot pack."""
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True, use_single_float=single_float)
    except OverflowError:  # an int past 64 bits: not a payload anyone can write
        reject()
    return packed


# --------------------------------------------------------------------------- raw msgpack

#: One-item container headers: array, array16, array32, map with a str key, a bin key.
_HEADERS = (b"\x91", b"\xdc\x00\x01", b"\xdd\x00\x00\x00\x01", b"\x81\xa1k", b"\x81\xc4\x01k",
            b"\xde\x00\x01\xa1k")  # fmt: skip
#: Values the packer will not write, and broken ones.
RAW_ODDITIES = (
    b"\xca\x7f\xc0\x00\x00",  # float32 NaN (first: what hypothesis draws most, decodes)
    b"\xca\xff\x80\x00\x00",  # float32 -inf
    b"\xd6\xff\x00\x00\x00\x01",  # a valid timestamp 32
    b"\xc7\x0c\xff" + bytes(12),  # a valid timestamp 96
    b"\xa2\xff\xfe",  # str, not UTF-8
    b"\xa3\xed\xa0\x80",  # str holding an encoded surrogate
    b"\xa2\xc0\x80",  # overlong encoding
    b"\xd4\xfe\x00",  # fixext 1, reserved code -2
    b"\xc7\x01\x80\x00",  # ext 8, code -128
    b"\xd4\xff\x00",  # ext -1 (timestamp) of length 1
    b"\xc7\x03\xff\x00\x00\x00",  # ext -1 of length 3
    b"\x81\x01\x02",  # int map key
    b"\x81\xc0\x02",  # nil map key
    b"\x81\x91\x01\x02",  # array map key
    b"\xc1",  # the byte msgpack never uses
    b"\xdc\x00",  # truncated header
    b"\xc7",  # ext 8 without its length
    b"\xd4",  # fixext 1 without its code
    b"\xdb\xff\xff\xff\xff",  # str32 longer than any payload
    b"\xdd\xff\xff\xff\xff",  # array32 of 4G items
)


@st.composite
def raw_msgpack(draw: st.DrawFn) -> bytes:
    """One msgpack value written byte by byte, nested up to 3,000 levels."""
    leaf = draw(st.one_of(st.sampled_from(RAW_ODDITIES), msgpack_values.map(pack)))
    depth = draw(st.one_of(st.integers(0, 4), st.integers(1000, 1030), st.integers(0, 3000)))
    return draw(st.sampled_from(_HEADERS)) * depth + leaf


# --------------------------------------------------------------------------- shaped maps

_SPLICE = b"\x00fuzz-splice\x00"
_ITEM_LISTS = {"comment": ("awards", "rich_text", "media"), "account": ("trophies",)}
#: The keys whose values a consumer checks (the comment consumer passes most through).
_CHECKED = {"comment": ("edited", "awards", "rich_text", "media", "body"), "account": ACCOUNT_KEYS}


@st.composite
def shaped_maps(draw: st.DrawFn, entity: str) -> dict[Any, Any]:
    """A valid comment or account map with up to four things changed in it."""
    rng = random.Random(draw(st.integers(0, 2**16)))
    value: dict[Any, Any] = (
        sample_comment(rng, "t1_fz") if entity == "comment" else sample_account(rng, "t2_fz")
    )
    keys = COMMENT_KEYS if entity == "comment" else ACCOUNT_KEYS
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(("set", "set", "deep", "deep", "delete", "bin_key", "extra", "item"))
        )
        key = draw(st.sampled_from(keys))
        if op == "set":
            value[key] = draw(msgpack_values)
        elif op == "deep":  # deep values where the consumer looks at them, mostly
            value[draw(st.sampled_from(_CHECKED[entity]) | st.just(key))] = draw(deep_values)
        elif op == "delete":
            value.pop(key, None)
        elif op == "bin_key" and key in value:
            value[key.encode()] = value.pop(key)
        elif op == "extra":
            value[draw(map_keys)] = draw(msgpack_values)
        elif op == "item":
            _change_item(draw, value, draw(st.sampled_from(_ITEM_LISTS[entity])))
    return value


def _change_item(draw: st.DrawFn, value: dict[Any, Any], name: str) -> None:
    items = value.get(name)
    if type(items) is not list:
        items = value[name] = []
    if not items:
        items.append({})
    index = draw(st.integers(0, len(items) - 1))
    item = items[index]
    if type(item) is dict and draw(st.booleans()):
        subkey = draw(st.one_of(st.sampled_from(sorted(item, key=repr) or ["x"]), map_keys))
        if draw(st.booleans()):
            item.pop(subkey, None)
        else:
            item[subkey] = draw(msgpack_values)
    else:
        items[index] = draw(msgpack_values)


@st.composite
def shaped_payloads(draw: st.DrawFn, entity: str) -> bytes:
    """A shaped map packed (float32 or float64 on the wire), raw msgpack spliced in maybe."""
    value = draw(shaped_maps(entity))
    splice = [k for k in value if type(k) is str] and draw(st.integers(0, 3)) == 3
    if splice:
        key = draw(st.sampled_from(sorted(k for k in value if type(k) is str)))
        value[key] = _SPLICE
    packed = pack(value, single_float=draw(st.booleans()))
    if splice:
        packed = packed.replace(pack(_SPLICE), draw(raw_msgpack()), 1)
    return packed


# --------------------------------------------------------------------------- real payloads

#: A small simulated corpus (both models, every fault) whose entries the fuzzers start from.
CORPUS = generate(240, seed=14, entities={"comment": 0.5, "account": 0.5}, malformed=4)
REAL_ENTRIES: tuple[dict[bytes, bytes], ...] = tuple(
    e.fields for e in (*CORPUS.production, *CORPUS.sister)
)
REAL_MSGPACK = tuple(sorted({f[b"payload"] for f in REAL_ENTRIES
                             if f.get(b"encoding") == b"msgpack" and b"payload" in f}))  # fmt: skip
REAL_PROTOBUF = tuple(
    encode_protobuf(sample_comment(random.Random(seed), "t1_pb")) for seed in range(16)
)
#: Each corpus event's entries on each side (one side is empty for a gap).
CORPUS_EVENTS: tuple[tuple[tuple[dict[bytes, bytes], ...], tuple[dict[bytes, bytes], ...]], ...]
CORPUS_EVENTS = tuple(
    (
        tuple(e.fields for e in CORPUS.production if e.event_id == event_id),
        tuple(e.fields for e in CORPUS.sister if e.event_id == event_id),
    )
    for event_id in sorted(CORPUS.expected)
)


def one_of_these(items: tuple[T, ...]) -> st.SearchStrategy[T]:
    """`st.sampled_from(items)`, but with a short repr (hypothesis prints strategies)."""
    return st.integers(0, len(items) - 1).map(items.__getitem__)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """`base` bytes with one to four bytes flipped, inserted, deleted or cut off."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "set")))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from((0x00, 0xC0, 0xC1, 0xCA, 0xD4, 0xDC, 0xFF)))
    return bytes(data)


msgpack_payloads: st.SearchStrategy[bytes] = st.one_of(
    msgpack_values.map(pack),
    st.builds(pack, deep_values, st.booleans()),
    raw_msgpack(),
    shaped_payloads("comment"),
    shaped_payloads("comment"),
    shaped_payloads("account"),
    shaped_payloads("account"),
    mutated(one_of_these(REAL_MSGPACK)),
    mutated(shaped_payloads("comment")),
)
protobuf_payloads: st.SearchStrategy[bytes] = st.one_of(
    one_of_these(REAL_PROTOBUF), mutated(one_of_these(REAL_PROTOBUF)), field_bytes
)
payloads: st.SearchStrategy[bytes] = st.one_of(
    msgpack_payloads, msgpack_payloads, protobuf_payloads, field_bytes
)

# --------------------------------------------------------------------------- entries

#: event_ids the fuzzers reuse, so that pairs and duplicates happen.
EVENT_IDS = (*(f"01HFUZZ{i:019d}" for i in range(6)), "x", "é", "a" * 256)
_event_id_values = st.one_of(
    *[st.sampled_from(EVENT_IDS).map(str.encode)] * 4,
    st.text(st.characters(codec="utf-8"), max_size=8).map(str.encode),
    st.sampled_from([b"", b" E1", b"E1\n", b"E\x001", b"a" * 257, b"\xff\xfe", b"\xed\xa0\x80"]),
    field_bytes,
)
_field_names = st.one_of(st.sampled_from(STANDARD_FIELDS), st.binary(max_size=10))


@st.composite
def entry_fields(draw: st.DrawFn, base: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    """A stream entry's fields: `base` (else a real corpus entry) with anything changed."""
    fields = dict(base if base is not None else draw(one_of_these(REAL_ENTRIES)))
    for name in STANDARD_FIELDS:
        change = draw(st.sampled_from(("keep",) * 8 + ("drop", "bytes")))
        if change == "drop":
            fields.pop(name, None)
        elif change == "bytes":
            fields[name] = draw(field_bytes)
    if draw(st.booleans()):
        fields[b"encoding"] = draw(st.sampled_from((b"msgpack", b"protobuf")))
        fields[b"entity"] = draw(st.sampled_from((b"comment", b"account", b"", b"user")))
    if draw(st.integers(0, 2)) == 2:
        fields[b"payload"] = draw(payloads)
    if draw(st.integers(0, 3)) == 3:
        fields.update(draw(st.dictionaries(_field_names, field_bytes, max_size=2)))
    if fields and draw(st.integers(0, 7)) == 7:  # two fields swap values
        a, b = draw(st.sampled_from(sorted(fields))), draw(st.sampled_from(sorted(fields)))
        fields[a], fields[b] = fields[b], fields[a]
    if base is None:
        event_id = draw(st.one_of(st.none(), _event_id_values))
        if event_id is None:
            fields.pop(b"event_id", None)
        else:
            fields[b"event_id"] = event_id
    return fields


# --------------------------------------------------------------------------- decoded values


def _comparable_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(map_keys, st.integers(-(2**63), 2**64 - 1), st.booleans(), st.none())
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
    )


_decoded_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), floats, texts, st.binary(max_size=16),
    timestamps, ext_types,
)  # fmt: skip
_decoded_shallow = st.recursive(_decoded_leaves, _comparable_containers, max_leaves=12)
#: What a consumer may return: decoded msgpack types, any ints and keys, tuples; some
#: nested up to 3,000 levels (past Python's recursion limit).
decoded_values: st.SearchStrategy[Any] = st.one_of(
    _decoded_shallow,
    _decoded_shallow,
    st.builds(
        nest,
        _decoded_shallow,
        st.one_of(depths, st.integers(1000, 3000)),
        st.booleans(),
        map_keys,
    ),
)


def clone(value: Any, leaf: Callable[[Any], Any] | None = None) -> Any:
    """An equal copy of `value` that shares no list, dict, tuple or float with it (NaN stays
    NaN, -0.0 stays -0.0); `leaf`, if given, replaces each leaf that is no float. Iterative
    (post-order on a stack), so any depth is fine."""
    done: list[Any] = []
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, expanded = stack.pop()
        kind = type(item)
        if kind is float:
            copied = struct.unpack("<d", struct.pack("<d", item))[0]
            done.append(leaf(copied) if leaf else copied)
        elif kind not in (list, dict, tuple):
            done.append(leaf(item) if leaf else item)
        elif not expanded:
            stack.append((item, True))
            children = list(item.values() if kind is dict else item)
            stack.extend((child, False) for child in reversed(children))
        else:
            start = len(done) - len(item)
            parts = done[start:]
            del done[start:]
            done.append(dict(zip(item, parts, strict=True)) if kind is dict else kind(parts))
    return done[0]


class Retyper:
    """Swaps some numeric leaves for an equal value of another type (0, False and 0.0;
    2 and 2.0): Python's == cannot tell the copy from the original, the diff must."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.changed = False

    def __call__(self, leaf: Any) -> Any:
        if self.rng.random() < 0.5:
            return leaf
        kind, out = type(leaf), leaf
        if kind is bool:
            out = self.rng.choice((int(leaf), float(leaf)))
        elif kind is int and leaf in (0, 1):
            out = self.rng.choice((bool(leaf), float(leaf)))
        elif kind is int and abs(leaf) <= 2**53:
            out = float(leaf)
        elif kind is float and leaf.is_integer() and abs(leaf) < 2**63:
            out = int(leaf)
        self.changed = self.changed or type(out) is not kind
        return out


def _retyped(value: Any, seed: int) -> tuple[Any, Any, bool]:
    retyper = Retyper(seed)
    return value, clone(value, retyper), retyper.changed


#: (value, a copy with some numeric leaves of another type but equal, whether any changed)
retyped_twins: st.SearchStrategy[tuple[Any, Any, bool]] = st.builds(
    _retyped, decoded_values, st.integers(0, 2**32)
)


# --------------------------------------------------------------------------- streams

#: Entry-id times: within and beyond the default grace window (5 s) of each other.
_times = st.one_of(st.integers(1, 12_000), st.integers(1, 40_000))


@dataclass(frozen=True)
class PlannedCopy:
    side: Side
    ms: int
    fields: dict[bytes, bytes]


@st.composite
def repacked(draw: st.DrawFn, fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """`fields` with its msgpack payload decoded, one value replaced (or none), packed
    again (float32 or float64), and perhaps another `version`: what a sister that gets one
    thing wrong writes."""
    try:
        value = msgpack.unpackb(fields.get(b"payload", b""), raw=False, strict_map_key=False)
    except Exception:
        return fields
    if type(value) is dict and value and draw(st.booleans()):
        value[draw(st.sampled_from(sorted(value, key=repr)))] = draw(msgpack_values)
    out = {**fields, b"payload": pack(value, single_float=draw(st.booleans()))}
    if draw(st.booleans()):
        out[b"version"] = str(draw(st.integers(1, 40))).encode()
    return out


#: How far a sister copy lands from its production twin: within the grace window or not.
_lags = st.one_of(st.integers(-1000, 1000), st.integers(-8000, 12_000))


@st.composite
def stream_inputs(draw: st.DrawFn) -> list[PlannedCopy]:
    """Entries on both sides: per event, copies of a corpus event (a pair, a singleton,
    duplicates), each kept, re-encoded with a change, or changed field by field; and
    entries with any fields at all."""
    copies: list[PlannedCopy] = []
    for index in range(draw(st.integers(0, 6))):
        event_id = EVENT_IDS[index % len(EVENT_IDS)].encode()
        production, sister = draw(one_of_these(CORPUS_EVENTS))
        at = draw(_times)
        shape = draw(st.sampled_from(("pair", "pair", "one", "copies")))
        sides = {"pair": [Side.PRODUCTION, Side.SISTER], "one": [draw(st.sampled_from(Side))]}
        for side in sides.get(shape) or draw(
            st.lists(st.sampled_from((Side.PRODUCTION, Side.SISTER)), min_size=1, max_size=4)
        ):
            if side is Side.BOTH:
                continue
            bases = (production if side is Side.PRODUCTION else sister) or production or sister
            fields = dict(draw(st.sampled_from(bases)))
            change = draw(st.sampled_from(("keep", "keep", "repack", "fields")))
            if change == "repack":
                fields = draw(repacked(fields))
            elif change == "fields":
                fields = draw(entry_fields(base=fields))
            fields[b"event_id"] = event_id
            ms = at if side is Side.PRODUCTION else max(1, at + draw(_lags))
            copies.append(PlannedCopy(side, ms, fields))
    for _ in range(draw(st.integers(0, 4))):
        side = draw(st.sampled_from((Side.PRODUCTION, Side.SISTER)))
        copies.append(PlannedCopy(side, draw(_times), draw(entry_fields())))
    return copies


@st.composite
def interleavings(draw: st.DrawFn, count: int) -> tuple[list[bool], list[int], list[str]]:
    """How to feed `count` entries: which side goes next at each step (each side stays in
    stream order), where the batches are cut, and what runs after each batch."""
    picks = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    cuts = sorted(set(draw(st.lists(st.integers(0, count), max_size=8))))
    actions = draw(
        st.lists(st.sampled_from(("none", "expire", "advance")), min_size=len(cuts) + 1,
                 max_size=len(cuts) + 1)
    )  # fmt: skip
    return picks, cuts, actions
