"""`cdc-verify cases`: the fewest real production events that cover every shape and every
mismatch group of a capture, redacted, as test vectors any language can load
(docs/coverage.md, "Test cases from production").

Two passes over the captures. The first runs the verifier (as `replay` does, shapes
on) and notes each production event's shape and group; the shapes are then projected by
the enum-like paths learnt over the whole run. A greedy set cover picks events: first
those that bring a new shape and a new group, then those that bring one of either. The
second pass reads the chosen events' entries again and writes them out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from cdc_verify import __version__
from cdc_verify.capture.format import CaptureReader
from cdc_verify.coverage.tally import describe, shape_id
from cdc_verify.pipeline.core.decoder import Consumer
from cdc_verify.pipeline.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.pipeline.core.jsonvalue import to_json_value
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.core.shape import Shape, project
from cdc_verify.pipeline.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_bounded
from cdc_verify.pipeline.runners.replay import read_capture
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.pipeline.sinks.groups import Fingerprint, fingerprint_of
from cdc_verify.pipeline.sinks.groups import describe as describe_group
from cdc_verify.schemas.settings import Settings

CASES_FILE = "cases.json"
REDACTED = "<redacted>"


@dataclass(slots=True)
class Seen:
    """What the first pass keeps of a production event (shapes and groups by number)."""

    entity: str
    shape: int  # index into Notes.shapes, as taken (before the final projection)
    group: int | None  # index into Notes.groups; None for a match
    verdict: str


class Notes(Sink):
    """The first pass: each production event's shape and group."""

    def __init__(self) -> None:
        self.shapes: list[tuple[str, Shape]] = []
        self._shape_ids: dict[tuple[str, Shape], int] = {}
        self.groups: list[Fingerprint] = []
        self._group_ids: dict[Fingerprint, int] = {}
        self.events: dict[str, Seen] = {}

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.kind not in (OutcomeKind.PRIMARY, OutcomeKind.OUT_OF_SCOPE):
                continue
            production = next((e for e in outcome.settles if e.side is PRODUCTION), None)
            if production is None or production.event_id is None or outcome.shape is None:
                continue  # missing in production, or production undecodable: no shape
            entity = outcome.entity_op[0]
            key = (entity, outcome.shape)
            shape = self._shape_ids.setdefault(key, len(self.shapes))
            if shape == len(self.shapes):
                self.shapes.append(key)
            fingerprint = fingerprint_of(outcome)
            group = None
            if fingerprint is not None:
                group = self._group_ids.setdefault(fingerprint, len(self.groups))
                if group == len(self.groups):
                    self.groups.append(fingerprint)
            verdict = outcome.record.verdict.value if outcome.record else "out_of_scope"
            self.events[production.event_id] = Seen(entity, shape, group, verdict)


def choose(events: dict[str, Seen], final_shape: Sequence[int]) -> list[str]:
    """A greedy cover of every final shape and every group, in stream order."""
    shapes_left = {final_shape[s.shape] for s in events.values()}
    groups_left = {s.group for s in events.values() if s.group is not None}
    chosen: list[str] = []
    for wanted in (2, 1):  # events that bring two new things first, then one
        for event_id, seen in events.items():
            shape = final_shape[seen.shape]
            new = (shape in shapes_left) + (seen.group in groups_left)
            if new >= wanted:
                chosen.append(event_id)
                shapes_left.discard(shape)
                groups_left.discard(seen.group)
    return chosen


def redact(value: Any, pointers: Iterable[str]) -> Any:
    """`value` with what each JSON pointer (`*` for any list item or key) names replaced by
    a placeholder of its kind: a string by "<redacted>", a number by 0, a container emptied."""
    for pointer in pointers:
        value = _redact(value, pointer.split("/")[1:])
    return value


def _redact(value: Any, tokens: list[str]) -> Any:
    if not tokens:
        return _placeholder(value)
    head, rest = tokens[0].replace("~1", "/").replace("~0", "~"), tokens[1:]
    if isinstance(value, dict):
        return {k: _redact(v, rest) if head in ("*", str(k)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, rest) if head in ("*", str(i)) else v for i, v in enumerate(value)]
    return value


def _placeholder(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, bytes):
        return REDACTED.encode()
    if isinstance(value, int | float):
        return type(value)(0)
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return REDACTED


def vector(entry: StreamEntry, seen: Seen, shape: tuple[str, ...], group: str | None,
           consumer: Consumer, pointers: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """One test vector: the entry's fields (payload redacted), what the consumer decodes."""
    fields = dict(entry.fields)
    note = None
    if pointers and b"payload" in fields:
        try:
            if fields.get(b"encoding") != b"msgpack":
                raise ValueError("only msgpack payloads are re-encoded after redaction")
            raw = msgpack.unpackb(fields[b"payload"], raw=False, strict_map_key=False)
            fields[b"payload"] = msgpack.packb(redact(raw, pointers), use_bin_type=True)
            note = "payload re-encoded after redaction (msgpack float32 values become float64)"
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            fields.pop(b"payload")
            note = f"payload left out: {exc}"
    decoded = redact(consumer(entry.fields), pointers)
    out: dict[str, Any] = {
        "event_id": entry.event_id,
        "entity": seen.entity,
        "shape": shape_id(shape),
        "parts": [describe(p) for p in sorted(shape)],
        "group": group,
        "verdict_seen": seen.verdict,
        "expected_verdict": "match",  # what a correct sister writer must get
        "fields": {
            k.decode("utf-8", "backslashreplace"): base64.b64encode(v).decode()
            for k, v in fields.items()
        },
        "decoded": to_json_value(decoded),
    }
    if note:
        out["note"] = note
    return out


def write_cases(
    settings: Settings,
    consumer: Consumer,
    production: Path,
    sister: Path | None,
    out_dir: Path,
    redact_pointers: Sequence[str] = (),
) -> dict[str, int]:
    """Writes DIR/cases.json; returns the counts it says how much it covers with."""
    for pointer in redact_pointers:
        if not pointer.startswith("/"):
            raise ValueError(f"--redact {pointer!r} is not a JSON pointer (starts with /)")
    verifier = Verifier(consumer, VerifierConfig.from_settings(settings, shapes=True))
    rules = verifier.shape_rules
    assert rules is not None
    notes = Notes()
    with CaptureReader(production) as prod:
        sis = _sister(sister)
        verify_bounded(verifier, read_capture(prod, PRODUCTION), sis, notes)
    # Shapes as they are once every wide path is known; their final numbers.
    final: dict[tuple[str, Shape], int] = {}
    final_shape = []
    for entity, taken in notes.shapes:
        key = (entity, project(taken, rules.wide.get(entity, set())))
        final_shape.append(final.setdefault(key, len(final)))
    shapes_by_number = {n: key[1] for key, n in final.items()}
    chosen = set(choose(notes.events, final_shape))
    cases = []
    with CaptureReader(production) as prod:
        for entry in read_capture(prod, PRODUCTION):
            if entry.event_id in chosen:
                chosen.discard(entry.event_id)  # the first copy only
                seen = notes.events[entry.event_id]
                shape = tuple(shapes_by_number[final_shape[seen.shape]])
                group = None if seen.group is None else describe_group(notes.groups[seen.group])
                cases.append(vector(entry, seen, shape, group, consumer, redact_pointers))
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "events": len(notes.events),
        "shapes": len(final),
        "groups": len(notes.groups),
        "cases": len(cases),
    }
    document = {"cdc_verify": __version__, **figures, "redacted": list(redact_pointers),
                "cases": cases}  # fmt: skip
    path = out_dir / CASES_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return figures


def _sister(path: Path | None) -> Iterator[StreamEntry]:
    if path is None:
        return
    with CaptureReader(path) as reader:
        yield from read_capture(reader, SISTER)


__all__ = ["choose", "redact", "write_cases"]
