from cdc_verify.pipeline.core.entry import PRODUCTION, StreamEntry
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind, VerdictRecord
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import Verdict


def outcome(verdict: Verdict, error: str | None = None) -> Outcome:
    entry = StreamEntry(PRODUCTION, "1000-0", {b"event_id": b"E"})
    return Outcome(OutcomeKind.PRIMARY, VerdictRecord("E", verdict, error=error), (entry,))


def test_totals_and_a_rate_per_ten_seconds_with_empty_buckets():
    now = [1_000_000.0]
    board = StatusBoard(clock=lambda: now[0])
    board.add([outcome(Verdict.MATCH)] * 30 + [outcome(Verdict.MISMATCH)] * 10)
    now[0] += 25  # two buckets later
    board.add([outcome(Verdict.MATCH)] * 5)
    assert board.totals == {"match": 35, "mismatch": 10}
    rate = board.rate()
    assert [p["at"] for p in rate] == [1_000_000, 1_000_010, 1_000_020]
    assert rate[0]["per_second"] == {"match": 3.0, "mismatch": 1.0}
    assert rate[1]["per_second"] == {} and rate[2]["per_second"] == {"match": 0.5}
    now[0] += 3600  # an hour on: only the last ten minutes are shown
    assert len(board.rate()) == 60 and all(not p["per_second"] for p in board.rate())


def test_groups_are_capped_and_the_rest_counted():
    board = StatusBoard()
    board.groups._max_groups = 3
    board.add([outcome(Verdict.UNDECODABLE, error=f"error {i}") for i in range(5)])
    assert len(board.groups.sorted()) == 3 and board.groups.ungrouped == 2
