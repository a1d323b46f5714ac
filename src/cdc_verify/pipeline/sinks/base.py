"""The one interface every runner drives its sinks through.

A sink is told about outcomes once they are durable (after the commit for the live
engines, as they are produced for the bounded runs), in order, and closed at the end.
Each runner builds its sinks in one place (`live.live_sinks`, `bounded.ReportSinks`), so
no engine can forget one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from cdc_verify.core.outcome import Outcome

OutcomeCallback = Callable[[Sequence[Outcome]], None]


class Sink:
    def add(self, outcomes: Sequence[Outcome]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink holds (files); the default holds nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CallbackSink(Sink):
    """A caller's function (demo, benchmarks, tests)."""

    def __init__(self, callback: OutcomeCallback) -> None:
        self._callback = callback

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self._callback(outcomes)


class Sinks(Sink):
    """Several sinks, fed the same outcomes in the order they were given."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.members: list[Sink] = list(sinks)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            for sink in self.members:
                sink.add(outcomes)

    def close(self) -> None:
        for sink in self.members:
            sink.close()


def replace_file(path: Path, text: str) -> None:
    """Writes `path` whole or not at all: a reader never sees half a report file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
