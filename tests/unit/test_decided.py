import gc

from cdc_verify.core import decided as decided_module
from cdc_verify.core.decided import RecentDecisions
from cdc_verify.core.outcome import Decision
from cdc_verify.schemas.verdicts import Verdict


def match(ms: int) -> Decision:
    return Decision(Verdict.MATCH, "ps", ms)


def test_decisions_are_kept_for_the_window_and_at_most_a_bucket_longer(monkeypatch):
    monkeypatch.setattr(decided_module, "BUCKET", 10)
    memory = RecentDecisions()
    for ms in range(100):
        memory.remember(f"E{ms}", match(ms))
    memory.forget_older_than(55)
    kept = [ms for ms in range(100) if f"E{ms}" in memory]
    assert kept == list(range(50, 100))  # buckets of ten: 50..59 holds 55..59
    assert memory.get("E70") == match(70) and memory.get("E10") is None
    memory.forget_older_than(1000)
    assert len(memory) == 0


def test_a_later_decision_keeps_its_place_and_a_looked_up_one_does_not_win():
    memory = RecentDecisions()
    memory.remember("E", Decision(Verdict.MISSING_IN_SISTER, "p", 5))
    memory.remember("E", Decision(Verdict.MISSING_IN_SISTER, "ps", 5))  # its twin, late
    memory.remember_if_new("E", match(1))
    memory.remember_if_new("F", Decision(None, "p", 7))
    assert memory.get("E") == Decision(Verdict.MISSING_IN_SISTER, "ps", 5)
    assert memory.get("F") == Decision(None, "p", 7) and len(memory) == 2
    memory.forget_older_than(8)  # the open bucket's newest (7) is past the window too
    assert len(memory) == 0


def test_a_decision_first_seen_within_the_window_outlives_its_bucket_mates(monkeypatch):
    monkeypatch.setattr(decided_module, "BUCKET", 3)
    memory = RecentDecisions()
    memory.remember("old", match(1))
    memory.remember("new", match(90))  # a gap decided late: first seen long after
    memory.remember("old2", match(2))
    memory.forget_older_than(50)
    assert "new" in memory  # the bucket's newest (90) is inside the window
    memory.forget_older_than(95)
    assert len(memory) == 0


def test_the_garbage_collector_does_not_walk_the_decisions():
    memory = RecentDecisions()
    for ms in range(20_000):
        memory.remember(f"E{ms}", match(ms))
    gc.collect()
    assert not gc.is_tracked(memory._packed)  # only strings and ints: CPython untracks it
    assert all(not gc.is_tracked(event_ids) for _, event_ids in memory._closed)
