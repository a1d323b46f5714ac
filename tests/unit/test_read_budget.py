from cdc_verify.core.entry import PRODUCTION, StreamEntry, entry_bytes
from cdc_verify.pipeline.redis.read_budget import ReadBudget

MiB = 2**20


def entry(size: int) -> StreamEntry:
    return StreamEntry(PRODUCTION, "1-0", {b"event_id": b"E", b"payload": b"x" * size})


def test_a_first_read_asks_for_one_entry_then_the_count_doubles_up_to_what_fits():
    budget = ReadBudget(64 * MiB, streams=2)
    counts = []
    for _ in range(8):
        counts.append(budget.count(500))
        budget.saw([entry(4 * MiB - 200)] * counts[-1])
    assert counts == [1, 2, 4, 8, 8, 8, 8, 8]  # 64 MiB over two streams of 4 MiB entries


def test_small_entries_read_the_full_batch_and_a_big_one_slows_reads_for_a_while():
    budget = ReadBudget(64 * MiB)
    for _ in range(12):
        budget.saw([entry(500)] * budget.count(500))
    assert budget.count(500) == 500
    budget.saw([entry(16 * MiB - 200)])
    assert budget.count(500) == 2
    counts = []
    for _ in range(30):
        counts.append(budget.count(500))
        budget.saw([entry(500)] * counts[-1])
    assert counts[0] == 2 and counts == sorted(counts) and counts[-1] == 500


def test_an_empty_read_teaches_nothing_and_a_huge_entry_still_gets_read():
    budget = ReadBudget(1 * MiB)
    budget.saw([])
    assert budget.count(500) == 1
    budget.saw([entry(10 * MiB)])
    assert budget.count(500) == 1
    assert entry_bytes(entry(0)) > 0


def test_a_seeded_budget_reads_what_fits_the_newest_entries_at_once():
    budget = ReadBudget(64 * MiB)
    budget.seed([entry(500), entry(300)])
    assert budget.count(500) == 500
    big = ReadBudget(64 * MiB)
    big.seed([entry(4 * MiB - 200)])
    assert big.count(500) == 8
    empty = ReadBudget(64 * MiB)
    empty.seed([])  # empty streams: nothing to go by
    assert empty.count(500) == 1
