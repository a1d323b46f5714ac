"""The row CDC plan (tests/rowcdc/plan.py) on many seeds, without a database: what the
writers and the end-to-end test rely on holds for any plan, not only the two the
Postgres test writes."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from tests.rowcdc.plan import BENIGN, FAULTS, Change, Plan, make_plan


@pytest.mark.parametrize("seed", range(30))
def test_every_plan_keeps_its_promises(seed: int, tmp_path: Path) -> None:
    plan = make_plan(seed=seed, size=300)
    assert make_plan(seed=seed, size=300) == plan  # the seed decides it all
    # Every fault and variant placed; each join key made once.
    assert {c.fault for c in plan.changes} - {None} == set(FAULTS)
    assert {c.benign for c in plan.changes} - {None} == set(BENIGN)
    keys = [c.join_key for c in plan.changes]
    assert len(keys) == len(set(keys)) == len(plan.expected())
    assert 300 <= len(plan.production_order()) <= 301
    # A delete removes a version both sides stored alike: never a fault's, a skipped
    # one's or a swapped race's (the delete's `before` is compared).
    last: dict[tuple[str, tuple[int, ...]], Change] = {}
    for c in plan.production_order():
        if c.op == "delete" and c.fault != "skip":
            before = last[c.row]
            assert before.fault is None and before.race != "swapped", c.join_key
            assert before.values == c.values and before.version == c.version
        last[c.row] = c
    # Versions go 1, 2, 3... per row on production; on the sister a row's versions go
    # down only inside a swapped pair.
    rows: dict[str, dict[tuple[str, tuple[int, ...]], list[Change]]] = {}
    for side, order in (("production", plan.production_order()), ("sister", plan.sister_order())):
        for c in order:
            if c.op != "delete":
                rows.setdefault(side, {}).setdefault(c.row, []).append(c)
    for changes in rows["production"].values():
        assert [c.version for c in changes] == list(range(1, len(changes) + 1))
    for changes in rows["sister"].values():
        for a, b in pairwise(changes):
            if b.version < a.version:
                assert a.race == b.race == "swapped" and a.version == b.version + 1
    assert [c.sister_seq for c in plan.sister_order()] == list(range(len(plan.sister_order())))
    # Mismatches are exactly the mismatch faults, each with its one difference.
    mismatched = {k for k, v in plan.expected().items() if v == "mismatch"}
    assert set(plan.differences()) == mismatched
    assert Plan.load(plan.write(tmp_path / "plan.json")) == plan


def test_swapped_races_reverse_on_the_sister_only() -> None:
    plan = make_plan(seed=24)
    swapped = [c for c in plan.changes if c.race == "swapped"]
    assert len(swapped) >= 4
    for first, second in zip(swapped[::2], swapped[1::2], strict=True):
        assert first.row == second.row and second.version == first.version + 1
        assert first.seq is not None and second.seq == first.seq + 1
        assert second.sister_seq is not None and first.sister_seq == second.sister_seq + 1


def test_a_skip_or_a_rogue_change_moves_the_sisters_final_versions() -> None:
    plan = make_plan(seed=24)
    production, sister = plan.final_versions("production"), plan.final_versions("sister")
    for c in plan.changes:
        key = ",".join(map(str, c.key))
        if c.fault == "rogue_insert":
            assert key not in production[c.table] and sister[c.table][key] == 1
        elif c.fault == "rogue_update":
            assert sister[c.table][key] == production[c.table][key] + 1
        elif c.fault == "rogue_delete":
            assert key in production[c.table] and key not in sister[c.table]
        elif c.fault == "skip" and c.op == "delete":
            assert key not in production[c.table] and sister[c.table][key] == c.version
