from cdc_verify.core.entry import PRODUCTION, StreamEntry
from cdc_verify.core.outcome import Outcome, OutcomeKind, VerdictRecord
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import Verdict


def outcome(verdict: Verdict, error: str | None = None) -> Outcome:
    entry = StreamEntry(PRODUCTION, "1000-0", {b"event_id": b"E"})
    return Outcome(OutcomeKind.PRIMARY, VerdictRecord("E", verdict, error=error), (entry,))


def test_groups_are_capped_and_the_rest_counted():
    board = StatusBoard()
    board.groups._max_groups = 3
    board.add([outcome(Verdict.UNDECODABLE, error=f"error {i}") for i in range(5)])
    assert len(board.groups.sorted()) == 3 and board.groups.ungrouped == 2
