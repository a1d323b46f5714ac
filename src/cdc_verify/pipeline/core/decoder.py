"""Runs the legacy consumer and turns anything it raises into data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Consumer = Callable[[Mapping[bytes, bytes]], Any]

MAX_ERROR_CHARS = 500


class LegacyDecoder:
    """Decodes one stream entry through the consumer downstream systems run.

    A consumer that raises is the verdict `undecodable`, so every Exception is
    caught and kept as text; BaseException (KeyboardInterrupt, SystemExit) is not.
    """

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def decode(self, fields: Mapping[bytes, bytes]) -> tuple[Any, str | None]:
        try:
            return self._consumer(fields), None
        except Exception as exc:  # the consumer's failure is the finding, not our crash
            return None, describe_error(exc)


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text
