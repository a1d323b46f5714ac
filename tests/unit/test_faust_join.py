"""PartitionJoin: the per-partition core of the Faust engine and the state a rebalance carries.

The table is modelled by applying `changes()` to a dict, which is what the agent does
to the Faust table (and its changelog) before a restore reads it back.
"""

from __future__ import annotations

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER
from cdc_verify.core.verifier import VerifierConfig
from cdc_verify.pipeline.faust.join import PartitionJoin, partition_prefix, position_key
from cdc_verify.pipeline.faust.messages import Retire, Watermark

from .test_verifier import GRACE, entry

CONFIG = VerifierConfig(grace_ms=GRACE, ordered_sides=False)


def new_join(partition: int = 3) -> PartitionJoin:
    return PartitionJoin(partition, decode_event, CONFIG)


def persist(join: PartitionJoin, table: dict[bytes, bytes]) -> list[bytes]:
    """Applies the join's pending changes to `table`; returns the keys in write order."""
    changes = join.changes()
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return list(changes)


def restored(table: dict[bytes, bytes], partition: int = 3) -> PartitionJoin:
    join = new_join(partition)
    prefix = partition_prefix(partition)
    join.restore([(k, v) for k, v in table.items() if k.startswith(prefix)], horizon_ms=0)
    return join


def both_sides(join: PartitionJoin, forwarder: str, ms: int) -> None:
    for side in (PRODUCTION, SISTER):
        join.watermark(Watermark(forwarder, side, ms))


def test_a_restored_join_keeps_waiting_entries_marks_and_position():
    table: dict[bytes, bytes] = {}
    join = new_join()
    both_sides(join, "f0", 500)
    assert join.ingest([entry(PRODUCTION, 1000, "E1"), entry(SISTER, 1100, "E2")], None) == []
    join.applied(41)
    persist(join, table)

    again = restored(table)
    assert again.next_offset == 42
    assert again.waiting_count(PRODUCTION) == again.waiting_count(SISTER) == 1
    # The partners arrive after the rebalance and pair with the restored entries.
    outcomes = again.ingest([entry(SISTER, 1200, "E1"), entry(PRODUCTION, 1300, "E2")], None)
    assert sorted(o.record.verdict.value for o in outcomes) == ["match", "match"]
    persist(again, table)
    assert not [k for k in table if b"|w|" in k], "settled entries leave the table"


def test_restored_marks_hold_gaps_back_until_every_forwarder_has_passed():
    table: dict[bytes, bytes] = {}
    join = new_join()
    both_sides(join, "f0", 0)
    both_sides(join, "f1", 0)
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    both_sides(join, "f0", 1000 + GRACE + 50)
    assert join.expire() == [], "f1 may still send the partner"
    persist(join, table)

    again = restored(table)
    assert again.expire() == []
    both_sides(again, "f1", 1000 + GRACE + 50)
    [gap] = again.expire()
    assert gap.record.verdict.value == "missing_in_sister"


def test_a_first_mark_of_minus_one_holds_the_others_back():
    join = new_join()
    both_sides(join, "f0", 500)
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    both_sides(join, "f1", -1)  # a forwarder that joined and has sent nothing yet
    both_sides(join, "f0", 9000)
    assert join.expire() == []
    both_sides(join, "f1", 2100)
    [gap] = join.expire()
    assert gap.record.verdict.value == "missing_in_sister"


def test_retiring_a_forwarder_drops_its_marks_from_the_table_and_the_minimum():
    table: dict[bytes, bytes] = {}
    join = new_join()
    both_sides(join, "f0", 0)
    both_sides(join, "f1", 9000)
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    assert join.expire() == []
    join.retire(Retire(("f0",)))
    [gap] = join.expire()
    assert gap.record.verdict.value == "missing_in_sister"
    persist(join, table)
    assert not [k for k in table if b"f0" in k]
    assert restored(table).expire() == []  # the gap was settled, nothing waits


def test_marks_never_move_back():
    join = new_join()
    both_sides(join, "f0", 9000)
    both_sides(join, "f0", 100)  # a replayed older mark
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    [gap] = join.expire()
    assert gap.record.verdict.value == "missing_in_sister"


def test_the_position_is_written_last_so_it_never_claims_state_that_was_not_written():
    join = new_join()
    join.applied(7)
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    both_sides(join, "f0", 10)
    keys = persist(join, {})
    assert keys[-1] == position_key(3)
    assert len(keys) == 4  # the waiting entry, two marks, the position


def test_a_join_with_nothing_applied_has_no_position():
    assert new_join().next_offset is None
    assert restored({}).next_offset is None


def test_joins_of_other_partitions_are_not_restored():
    table: dict[bytes, bytes] = {}
    join = new_join(partition=1)
    join.ingest([entry(PRODUCTION, 1000, "E1")], None)
    join.applied(3)
    persist(join, table)
    other = restored(table, partition=11)  # b"1|" must not match b"11|" keys, nor the reverse
    assert other.next_offset is None and other.waiting_count(PRODUCTION) == 0
    assert restored(table, partition=1).next_offset == 4
