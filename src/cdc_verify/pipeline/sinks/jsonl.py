"""verdicts.jsonl: one verdict record per line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from cdc_verify.pipeline.core.outcome import Outcome, record_to_json


class JsonlVerdictWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def write(self, outcomes: Iterable[Outcome]) -> None:
        lines = [record_to_json(o.record) + "\n" for o in outcomes if o.record is not None]
        if lines:
            self._file.writelines(lines)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlVerdictWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
