"""Runs the legacy consumer and turns anything it raises into data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Consumer = Callable[[Mapping[bytes, bytes]], Any]

MAX_ERROR_CHARS = 500


class LegacyDecoder:
    """Decodes one stream entry through the consumer downstream systems run.

    Whatever the consumer raises makes the event `undecodable`: every Exception, and
    also BaseException subclasses such as GeneratorExit or a consumer's own, since a
    downstream system would fail on the event all the same. Only KeyboardInterrupt and
    SystemExit pass: they ask this process to stop.
    """

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def decode(self, fields: Mapping[bytes, bytes]) -> tuple[Any, str | None]:
        try:
            return self._consumer(fields), None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the consumer's failure is the finding, not our crash
            return None, describe_error(exc)


def describe_error(exc: BaseException) -> str:
    """`TypeName: message`, cut to MAX_ERROR_CHARS; never raises, even if str(exc) does."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except BaseException as inner:  # a hostile __str__ must not take the event down
        if isinstance(inner, KeyboardInterrupt | SystemExit):
            raise
        message = f"<str() raised {type(inner).__name__}>"
    text = f"{name}: {message}" if isinstance(message, str) else f"{name}: <str() gave no text>"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    # Lone surrogates cannot be written as UTF-8 (Redis, files): escape them.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
