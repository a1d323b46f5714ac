"""Coverage reports: what taking shapes costs per event, and what a report of them costs.

Decodes the production events of a generated corpus with the reference consumer, takes
their shapes (`ShapeRules`, as the verifier does) and counts them in a `CoverageTally` at
most --max-shapes an entity. Prints the shape's cost per event (the walk on its own, and
with the enum-like bookkeeping), then the cost of each part of a report: the shapes
named and sorted (first read, and again, as a live reader does every few seconds), the
parts, the pairs of parts and the totals. Prints figures; asserts nothing.

    .venv/bin/python bench/coverage.py [--events 8000] [--max-shapes 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import src_digest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.coverage import CoverageTally, ShapeCounts
from cdc_verify.core.shape import ShapeRules, _walk
from cdc_verify.simulate.corpus import generate


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=8000, help="changes generated")
    parser.add_argument("--max-shapes", type=int, default=2000, help="coverage_max_shapes")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}; cdc_verify sources {src_digest()}")
    corpus = generate(args.events, seed=args.seed, grace_ms=1000)
    values = []
    for entry in corpus.production:
        try:
            values.append(decode_event(entry.fields))
        except Exception:  # an injected undecodable payload: no shape
            continue
    rules = ShapeRules()
    t = time.perf_counter()
    shapes = [rules.shape("comment", v) for v in values]
    shape_s = time.perf_counter() - t
    wide = rules.wide.get("comment", set())
    t = time.perf_counter()
    for value in values:
        _walk(value, wide)
    walk_s = time.perf_counter() - t
    n = len(values)
    print(
        f"{n:,} decoded production events: a shape takes {shape_s / n * 1e6:.1f} µs "
        f"({walk_s / n * 1e6:.1f} µs of it the walk), {sum(map(len, shapes)) / n:.1f} parts"
    )

    tally = CoverageTally(rules, args.max_shapes)
    for i, shape in enumerate(shapes):  # two in three match, the rest unverified
        tally.add("comment", shape, ShapeCounts.one("match" if i % 3 else "unverified"))
    t = time.perf_counter()
    rows = tally.rows()
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    rows = tally.rows()
    again_s = time.perf_counter() - t
    t = time.perf_counter()
    parts = tally.parts(rows)
    parts_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = tally.pairs(rows, parts)
    pairs_s = time.perf_counter() - t
    t = time.perf_counter()
    totals = tally.totals()
    totals_s = time.perf_counter() - t
    overflow = tally.entities["comment"].overflow.production
    print(
        f"{len(rows):,} shapes (cap {args.max_shapes:,}; {overflow:,} events past it), "
        f"coverage {totals.ratio}: named and sorted in {ms(first_s)} (again: {ms(again_s)}); "
        f"{len(parts):,} parts in {ms(parts_s)}; {len(pairs):,} pairs in {ms(pairs_s)}; "
        f"totals in {ms(totals_s)}"
    )


if __name__ == "__main__":
    main()
