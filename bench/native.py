"""Micro-benchmark of the native hot path: each ported function, pure against native.

On the bench corpus' decoded production values (throughput.py's corpus: `generate`, the
reference consumer's decode), µs per call of the pure-Python function and of the
compiled one (src/cdc_verify/_native, built from native/), best of --repeat passes, and a
check that both give the same answers. End to end figures: throughput.py's native/pure
column. Needs the compiled module (pip install -e . with a Rust toolchain).
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import msgpack
from _common import src_digest
from redis._parsers.helpers import parse_stream_list

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core import diff, shape, wire
from cdc_verify.core.entry import StreamEntry, entry_bytes, native_reader
from cdc_verify.native import HOT_PATH, NATIVE
from cdc_verify.pipeline.redis import decisions
from cdc_verify.schemas.verdicts import STREAM_SIDES, Side
from cdc_verify.simulate.corpus import Corpus, PlannedEntry, generate


def best_us(call: Callable[[Any], object], values: list[Any], repeat: int) -> float:
    """µs per value of `call` on each value, best of `repeat` passes."""
    best = float("inf")
    gc.disable()  # the collector would walk the corpus' values, whichever path made garbage
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for value in values:
                call(value)  # the answer dropped at once, as the worker drops most
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best / len(values) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}; cdc_verify sources {src_digest()}")
    print(f"hot path: {HOT_PATH}")
    walker = shape._WALKER
    if walker is None:
        raise SystemExit("no native module: nothing to compare (see the hot path line)")
    values: list[Any] = []
    corpus = generate(args.events, seed=1)
    for entry in corpus.production:
        try:
            values.append(decode_event(entry.fields))
        except Exception:
            continue  # refused by the consumer: never shaped
    wide: set[str] = set()
    rules = shape.ShapeRules()  # learn the corpus' wide paths, as a running worker has
    for value in values:
        rules.shape("comment", value)
    wide = rules.wide["comment"]
    for value in values:
        pure, native = shape._walk(value, wide), walker.walk(value, wide)
        assert (set(pure[0]), pure[1]) == (set(native[0]), native[1]), value
    layouts: shape.Layouts = {}
    pure_us = best_us(lambda v: shape._walk(v, wide, layouts), values, args.repeat)
    native_us = best_us(lambda v: walker.walk(v, wide), values, args.repeat)
    print(f"{len(values)} decoded production values, the same parts and values from both")
    print(f"shape walk (_walk, with layouts): pure {pure_us:.2f} µs, native {native_us:.2f} µs "
          f"per value ({pure_us / native_us:.1f}x)")  # fmt: skip
    rules_pure, rules_native = shape.ShapeRules(), shape.ShapeRules()
    saved, shape._WALKER = shape._WALKER, None
    try:
        pure_us = best_us(lambda v: rules_pure.shape("comment", v), values, args.repeat)
    finally:
        shape._WALKER = saved
    native_us = best_us(lambda v: rules_native.shape("comment", v), values, args.repeat)
    print(f"ShapeRules.shape (what the verifier calls): pure {pure_us:.2f} µs, native "
          f"{native_us:.2f} µs per value ({pure_us / native_us:.1f}x)")  # fmt: skip
    pairs = equal_pairs(corpus)
    for a, b in pairs:
        assert diff._same_types(a, b) == NATIVE.same_types(a, b)
    pure_us = best_us(lambda p: p[0] == p[1] and diff._same_types(*p), pairs, args.repeat)
    native_us = best_us(lambda p: p[0] == p[1] and diff.same_types(*p), pairs, args.repeat)
    print(f"{len(pairs)} equal decoded pairs, the same answers from both")
    print(f"the diff's match check (== and _same_types): pure {pure_us:.2f} µs, native "
          f"{native_us:.2f} µs per pair ({pure_us / native_us:.1f}x)")  # fmt: skip
    compare_entry_readers(corpus, args.repeat)
    compare_filings(corpus, args.repeat)
    compare_float32_scans(corpus, args.repeat)
    compare_wire_walks(corpus, args.repeat)


def msgpack_payloads(entries: list[PlannedEntry]) -> list[bytes]:
    return [e.fields[b"payload"] for e in entries if e.fields.get(b"encoding") == b"msgpack"]


def float_payloads(count: int, single: bool = False) -> list[bytes]:
    """Events of a float-heavy model: 20 floats each, as float32 when `single`."""
    rng = random.Random(5)
    return [
        msgpack.packb(
            {"id": rng.randint(0, 10**9), "values": [rng.random() for _ in range(20)]},
            use_single_float=single,
        )
        for _ in range(count)
    ]


def compare_float32_scans(corpus: Corpus, repeat: int) -> None:
    """The wire types' pre-check of every msgpack payload (twice per pair): the corpus',
    and those of a float-heavy model (20 float64s an event), where the marker byte 0xCA
    turns up inside other values' bytes far more often."""
    both = msgpack_payloads(corpus.production + corpus.sister)
    for name, payloads in (("the corpus'", both), ("float-heavy", float_payloads(5_000))):
        for payload in payloads:
            assert wire.may_hold_float32(payload) == wire.pure_may_hold_float32(payload)
        marked = sum(wire.FLOAT32_MARKER in p for p in payloads)
        pure_us = best_us(wire.pure_may_hold_float32, payloads, repeat)
        native_us = best_us(wire.may_hold_float32, payloads, repeat)
        print(f"{len(payloads)} {name} msgpack payloads ({marked} with the marker byte), "
              f"the same answers from both")  # fmt: skip
        print(f"the float32 pre-check: pure {pure_us:.2f} µs, native {native_us:.2f} µs per "
              f"payload ({pure_us / native_us:.1f}x)")  # fmt: skip


def compare_wire_walks(corpus: Corpus, repeat: int) -> None:
    """The wire types of a payload (`msgpack_wire_types`), walked for both sides of a pair
    that holds a float32 or differs in a type: the corpus' production payloads, and those
    of a writer that packs its floats as float32 (as Go's msgpack libraries do)."""
    single = float_payloads(3_000, single=True)
    for name, payloads in (
        ("the corpus'", msgpack_payloads(corpus.production)),
        ("float32", single),
    ):
        walked = []
        for payload in payloads:
            try:
                pure = wire.pure_msgpack_wire_types(payload)
            except wire.WireError:
                continue  # a corrupt payload of the corpus: refused by both
            assert list(wire.msgpack_wire_types(payload).items()) == list(pure.items())
            walked.append(payload)
        pure_us = best_us(wire.pure_msgpack_wire_types, walked, repeat)
        native_us = best_us(wire.msgpack_wire_types, walked, repeat)
        print(f"{len(walked)} {name} msgpack payloads, the same wire types from both")
        print(f"the wire walk: pure {pure_us:.2f} µs, native {native_us:.2f} µs per payload "
              f"({pure_us / native_us:.1f}x)")  # fmt: skip


def compare_filings(corpus: Corpus, repeat: int) -> None:
    """Where each event's decision is kept (decisions.py's filing, once per event)."""
    event_ids = [e.event_id for e in corpus.production if e.event_id is not None]
    native = decisions.native_filing(NATIVE)
    prefix = "cdc-verify:decisions:"
    for event_id in event_ids:
        assert native(prefix, event_id) == decisions.pure_filing(prefix, event_id)
    pure_us = best_us(lambda e: decisions.pure_filing(prefix, e), event_ids, repeat)
    native_us = best_us(lambda e: native(prefix, e), event_ids, repeat)
    print(f"{len(event_ids)} event_ids, the same filings from both")
    print(f"a decision's filing: pure {pure_us:.2f} µs, native {native_us:.2f} µs per "
          f"event ({pure_us / native_us:.1f}x)")  # fmt: skip


def compare_entry_readers(corpus: Corpus, repeat: int) -> None:
    """A read's entries built (from_redis and entry_bytes, as the read path asks), in reads
    of 500 (entry_id, fields) items of one stream, as redis-py gives them."""
    reader = native_reader(NATIVE)
    reads: list[tuple[Side, list[tuple[bytes, dict[bytes, bytes]]]]] = []
    for side in STREAM_SIDES:
        items = [(b"%d-%d" % (1_700_000_000_000 + e.at_ms, i), dict(e.fields))
                 for i, e in enumerate(corpus.side(side))]  # fmt: skip
        reads += [(side, items[i : i + 500]) for i in range(0, len(items), 500)]

    def pure(read: tuple[Side, list[Any]]) -> None:
        side, items = read
        for built in [StreamEntry.from_redis(side, i, f) for i, f in items]:
            entry_bytes(built)

    def native(read: tuple[Side, list[Any]]) -> None:
        for built in reader.read(*read):
            entry_bytes(built)

    for side, items in reads:
        assert reader.read(side, items) == [StreamEntry.from_redis(side, *item) for item in items]
    count = sum(len(items) for _, items in reads)
    pure_us = best_us(pure, reads, repeat) * len(reads) / count
    native_us = best_us(native, reads, repeat) * len(reads) / count
    print(f"{count} stream entries, the same entries from both")
    print(f"a read's entries (from_redis and entry_bytes): pure {pure_us:.2f} µs, native "
          f"{native_us:.2f} µs per entry ({pure_us / native_us:.1f}x)")  # fmt: skip

    # As the group reads get them (UnparsedReads): [id, [name, value, ...]], against
    # redis-py's parsing of the same (its pairs_to_dict per entry) and then the native
    # reader, as before.
    flat_reads = [(side, [[i, [x for kv in f.items() for x in kv]] for i, f in items])
                  for side, items in reads]  # fmt: skip

    def parsed(read: tuple[Side, list[Any]]) -> None:
        side, flat = read
        for built in reader.read(side, parse_stream_list(flat)):
            entry_bytes(built)

    for (side, items), flat_read in zip(reads, flat_reads, strict=True):
        assert reader.read(*flat_read) == reader.read(side, items)
    parsed_us = best_us(parsed, flat_reads, repeat) * len(reads) / count
    flat_us = best_us(native, flat_reads, repeat) * len(reads) / count
    print(f"a read's entries from Redis' flat fields: redis-py's parsing then native "
          f"{parsed_us:.2f} µs, native from the flat lists {flat_us:.2f} µs per entry "
          f"({parsed_us / flat_us:.1f}x)")  # fmt: skip


def equal_pairs(corpus: Corpus) -> list[tuple[Any, Any]]:
    """(production, sister) decoded values of the events whose sides are equal."""
    sister = {entry.event_id: entry for entry in corpus.sister}
    pairs = []
    for entry in corpus.production:
        twin = sister.get(entry.event_id)
        if twin is None:
            continue
        try:
            a, b = decode_event(entry.fields), decode_event(twin.fields)
        except Exception:
            continue
        if a == b:
            pairs.append((a, b))
    return pairs


if __name__ == "__main__":
    main()
