"""Load the legacy consumer the verifier decodes through (``--consumer module:callable``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ACCOUNT_CONSUMER",
    "DEFAULT_CONSUMERS",
    "REFERENCE_CONSUMER",
    "ROW_CONSUMER",
    "Consumer",
    "ConsumerLoadError",
    "ConsumersByEntity",
    "NoConsumerForEntity",
    "load_consumer",
    "load_consumers",
]  # fmt: skip

#: The shipped reference consumer for the documented wire format.
REFERENCE_CONSUMER = "cdc_verify.consumers.reference:decode_event"
#: The reference consumer of the second model, accounts (docs/wire-format.md).
ACCOUNT_CONSUMER = "cdc_verify.consumers.account:decode_event"
#: The reference row consumer: Debezium's row images (docs/consumers.md); without
#: --consumer, the consumer of every entity when an envelope is debezium.
ROW_CONSUMER = "cdc_verify.consumers.row:decode_row"
#: Without --consumer: comments (and any other entity) through the reference consumer,
#: accounts through theirs.
DEFAULT_CONSUMERS = (REFERENCE_CONSUMER, f"account={ACCOUNT_CONSUMER}")

#: A consumer takes one Redis stream entry (bytes -> bytes) and returns the decoded comment,
#: or raises when the legacy code would reject the event.
Consumer = Callable[[Mapping[bytes, bytes]], Mapping[str, Any]]


class ConsumerLoadError(ValueError):
    """The ``--consumer`` spec cannot be resolved to a callable."""


def load_consumer(spec: str, what: str = "consumer") -> Any:
    """Resolve ``"package.module:attr[.attr...]"`` to the consumer callable.

    `what` names it in messages (an envelope is loaded the same way).
    Raises :class:`ConsumerLoadError` with a message saying what is wrong: no colon,
    module not importable (with the underlying error), attribute missing, not callable.
    """
    module_name, sep, attr_path = spec.partition(":")
    module_name = module_name.strip()
    attr_path = attr_path.strip()
    if not sep:
        raise ConsumerLoadError(
            f"{what} {spec!r}: expected 'module:callable' (e.g. {REFERENCE_CONSUMER!r}), "
            "no ':' found"
        )
    if not module_name or not attr_path:
        raise ConsumerLoadError(
            f"{what} {spec!r}: expected 'module:callable' with both parts non-empty"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConsumerLoadError(
            f"{what} {spec!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:  # the module itself failed while importing
        raise ConsumerLoadError(
            f"{what} {spec!r}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc

    target: Any = module
    walked = module_name
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConsumerLoadError(
                f"{what} {spec!r}: {walked!r} has no attribute {part!r}"
            ) from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    if not callable(target):
        raise ConsumerLoadError(
            f"{what} {spec!r}: {walked!r} is not callable (type {type(target).__name__})"
        )
    return target


class NoConsumerForEntity(LookupError):
    """An entry's `entity` has no consumer, and no default consumer was given."""


class ConsumersByEntity:
    """One consumer per entity, chosen by the entry's `entity` field, and a default.

    It is itself a consumer: the core decodes through it without knowing there are
    several, and an entity without one raises, which makes the event `undecodable`.
    """

    def __init__(self, default: Consumer | None, by_entity: Mapping[str, Consumer]) -> None:
        self.default = default
        self.by_entity = {name.encode(): c for name, c in by_entity.items()}

    def __call__(self, fields: Mapping[bytes, bytes]) -> Mapping[str, Any]:
        entity = fields.get(b"entity")
        consumer = self.by_entity.get(entity, self.default) if entity else self.default
        if consumer is None:
            shown = "no entity field" if entity is None else f"entity {_shown(entity)}"
            known = ", ".join(sorted(e.decode() for e in self.by_entity))
            raise NoConsumerForEntity(
                f"no consumer for {shown}: consumers are given for {known} only "
                "(--consumer ENTITY=module:callable, or a plain module:callable for all)"
            )
        return consumer(fields)


def _shown(entity: bytes) -> str:
    text = entity[:40].decode("utf-8", "backslashreplace")
    return repr(text + ("…" if len(entity) > 40 else ""))


def load_consumers(specs: Sequence[str]) -> Consumer:
    """The consumer the verifier decodes through, from the --consumer specs.

    Each spec is ``module:callable`` (the default, for every entity without its own)
    or ``ENTITY=module:callable``. One plain spec alone gives that callable itself.
    """
    default: Consumer | None = None
    by_entity: dict[str, Consumer] = {}
    for spec in specs:
        entity, sep, target = spec.partition("=")
        if not sep or ":" in entity:  # module paths have no '=': a plain default
            if default is not None:
                raise ConsumerLoadError(
                    f"consumer {spec!r}: a default consumer is given twice; name the entity "
                    "of all but one (ENTITY=module:callable)"
                )
            default = load_consumer(spec)
            continue
        entity = entity.strip()
        if not entity:
            raise ConsumerLoadError(f"consumer {spec!r}: expected ENTITY=module:callable")
        if entity in by_entity:
            raise ConsumerLoadError(f"consumer {spec!r}: entity {entity!r} is given twice")
        by_entity[entity] = load_consumer(target)
    if default is not None and not by_entity:
        return default
    return ConsumersByEntity(default, by_entity)
