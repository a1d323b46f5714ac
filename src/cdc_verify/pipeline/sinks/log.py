"""One log line per outcome an operator acts on, with the event id as a field."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.verdicts import Verdict

log = logging.getLogger("cdc_verify.verdicts")

# Gaps and undecodable events are logged at INFO; the rest, which can run at
# thousands a second, only at DEBUG.
NOTABLE = frozenset({Verdict.MISSING_IN_SISTER, Verdict.MISSING_IN_PRODUCTION, Verdict.UNDECODABLE})


class LogSink(Sink):
    def add(self, outcomes: Sequence[Outcome]) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        if not (debug or log.isEnabledFor(logging.INFO)):
            return
        for o in outcomes:
            record = o.record
            if record is None:
                if o.kind is OutcomeKind.LATE:
                    entry = o.settles[0]
                    log.info(
                        "late arrival of %s on %s, %d ms after its twin", entry.event_id,
                        entry.side.value, o.late_by_ms,
                        extra={"event_id": entry.event_id, "verdict": "late",
                               "side": entry.side.value, "entry_id": entry.entry_id},
                    )  # fmt: skip
                continue
            if record.verdict in NOTABLE or (debug and record.verdict is not Verdict.MATCH):
                log.log(
                    logging.INFO if record.verdict in NOTABLE else logging.DEBUG,
                    "%s %s%s", record.verdict.value, record.event_id or "(no event_id)",
                    f": {record.error}" if record.error else "",
                    extra={"event_id": record.event_id, "verdict": record.verdict.value,
                           "side": record.side.value if record.side else None,
                           "entry_id": record.entry_id},
                )  # fmt: skip
