"""Load the legacy consumer the verifier decodes through (``--consumer module:callable``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REFERENCE_CONSUMER", "Consumer", "ConsumerLoadError", "load_consumer"]

#: The shipped reference consumer for the documented wire format.
REFERENCE_CONSUMER = "cdc_verify.consumers.reference:decode_event"

#: A consumer takes one Redis stream entry (bytes -> bytes) and returns the decoded comment,
#: or raises when the legacy code would reject the event.
Consumer = Callable[[Mapping[bytes, bytes]], Mapping[str, Any]]


class ConsumerLoadError(ValueError):
    """The ``--consumer`` spec cannot be resolved to a callable."""


def load_consumer(spec: str) -> Consumer:
    """Resolve ``"package.module:attr[.attr...]"`` to the consumer callable.

    Raises :class:`ConsumerLoadError` with a message saying what is wrong: no colon,
    module not importable (with the underlying error), attribute missing, not callable.
    """
    module_name, sep, attr_path = spec.partition(":")
    module_name = module_name.strip()
    attr_path = attr_path.strip()
    if not sep:
        raise ConsumerLoadError(
            f"consumer {spec!r}: expected 'module:callable' (e.g. {REFERENCE_CONSUMER!r}), "
            "no ':' found"
        )
    if not module_name or not attr_path:
        raise ConsumerLoadError(
            f"consumer {spec!r}: expected 'module:callable' with both parts non-empty"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConsumerLoadError(
            f"consumer {spec!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:  # the module itself failed while importing
        raise ConsumerLoadError(
            f"consumer {spec!r}: importing module {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    target: Any = module
    walked = module_name
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConsumerLoadError(
                f"consumer {spec!r}: {walked!r} has no attribute {part!r}"
            ) from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    if not callable(target):
        raise ConsumerLoadError(
            f"consumer {spec!r}: {walked!r} is not callable (type {type(target).__name__})"
        )
    return target
