"""verdicts.jsonl: one verdict record per line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cdc_verify.core.outcome import Outcome, record_to_json
from cdc_verify.pipeline.sinks.base import Sink


class JsonlVerdictWriter(Sink):
    """Appends records to a file; `flush_each` for a live copy that `tail -f` can follow."""

    def __init__(self, path: Path, flush_each: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._flush_each = flush_each
        self._file = path.open("a", encoding="utf-8")

    def add(self, outcomes: Sequence[Outcome]) -> None:
        lines = [record_to_json(o.record) + "\n" for o in outcomes if o.record is not None]
        if lines:
            self._file.writelines(lines)
            if self._flush_each:
                self._file.flush()

    def close(self) -> None:
        self._file.close()
