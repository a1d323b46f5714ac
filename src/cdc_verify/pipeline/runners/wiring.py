"""`Settings`, the user's flat contract, turned into the core's `VerifierConfig`: the core
never reads settings itself (state_writers.py does the same for the state server's
writers; this module imports no Redis, so an offline replay stays offline)."""

from __future__ import annotations

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.loader import load_consumer
from cdc_verify.core.debezium import DebeziumEnvelope
from cdc_verify.core.envelope import (
    CDC_VERIFY,
    DEBEZIUM,
    JSON,
    Envelope,
    JsonEnvelope,
    JsonPointers,
    VersionKeyed,
    read_canonical,
)
from cdc_verify.core.scope import Scope
from cdc_verify.core.verifier import DECIDED_IN_MEMORY_MS, VerifierConfig
from cdc_verify.schemas.verdicts import Side


def verifier_config(
    settings: Settings, durable_decisions: bool = False, shapes: bool = False
) -> VerifierConfig:
    """The core's rules from a command's settings.

    `durable_decisions`: the runner keeps decisions in Redis and looks older
    event_ids up there, so memory holds only a short window of them. `shapes`: the
    runner counts coverage (when `settings.coverage` allows it).
    """
    return VerifierConfig(
        grace_ms=settings.grace_ms,
        decided_retention_ms=round(settings.decided_retention * 1000),
        decided_in_memory_ms=(
            max(2 * settings.grace_ms, DECIDED_IN_MEMORY_MS) if durable_decisions else None
        ),
        ignored_paths=tuple(settings.ignore_paths),
        float_tolerance=settings.float_tolerance,
        decode_each_side=settings.decode_each_side,
        shapes=shapes and settings.coverage,
        max_shapes=settings.coverage_max_shapes,
        scope=Scope.parse(settings.scope, settings.scope_key),
        waiting_max_bytes=int(settings.waiting_max_bytes) or None,
    )


def side_envelopes(settings: Settings) -> dict[Side, Envelope | None]:
    """Each side's envelope (None: cdc-verify, read as is); a user's own is imported here.

    Raises ConsumerLoadError for a `module:callable` that cannot be loaded.
    """
    production, sister = settings.side_envelopes
    specs = {Side.PRODUCTION: production, Side.SISTER: sister}
    return {side: _envelope(spec, settings) for side, spec in specs.items()}


def _envelope(spec: str, settings: Settings) -> Envelope | None:
    if spec == DEBEZIUM:  # its key is the row version already
        return DebeziumEnvelope(settings.version_column)
    if settings.joins_by_version:
        return VersionKeyed(_by_event_id(spec, settings) or read_canonical)
    return _by_event_id(spec, settings)


def _by_event_id(spec: str, settings: Settings) -> Envelope | None:
    if spec == CDC_VERIFY:
        return None
    if spec == JSON:
        pointers = JsonPointers(
            settings.json_event_id, settings.json_entity, settings.json_op,
            settings.json_entity_id, settings.json_version, settings.json_payload,
            settings.json_encoding,
        )  # fmt: skip
        return JsonEnvelope(settings.json_field, settings.json_format, pointers)
    envelope: Envelope = load_consumer(spec, what="envelope")
    return envelope
