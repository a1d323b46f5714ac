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
from typing import Any, Generic, TypeVar

import msgpack

from cdc_verify import __version__
from cdc_verify.config.settings import Settings
from cdc_verify.core.coverage import describe, shape_id
from cdc_verify.core.decoder import Consumer
from cdc_verify.core.diff import unescape_token
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.jsonvalue import to_json_value
from cdc_verify.core.outcome import Outcome, counted_as
from cdc_verify.core.shape import SEP, Part, Shape, part_fields, project
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.capture.format import CaptureReader
from cdc_verify.pipeline.runners.bounded import verify_bounded
from cdc_verify.pipeline.runners.replay import read_capture
from cdc_verify.pipeline.runners.wiring import side_envelopes, verifier_config
from cdc_verify.pipeline.sinks.base import Sink, replace_file
from cdc_verify.pipeline.sinks.coverage import counts_of
from cdc_verify.pipeline.sinks.groups import Fingerprint, fingerprint_of
from cdc_verify.pipeline.sinks.groups import describe as describe_group

K = TypeVar("K")
CASES_FILE = "cases.json"
REDACTED = "<redacted>"


class Numbered(Generic[K]):
    """Keys numbered in the order they were first seen."""

    def __init__(self) -> None:
        self.keys: list[K] = []
        self._numbers: dict[K, int] = {}

    def number(self, key: K) -> int:
        n = self._numbers.get(key)
        if n is None:
            n = self._numbers[key] = len(self.keys)
            self.keys.append(key)
        return n


@dataclass(slots=True)
class Seen:
    """What the first pass keeps of a production event (shapes and groups by number)."""

    entity: str
    shape: int  # number in Notes.shapes, as taken (before the final projection)
    group: int | None  # number in Notes.groups; None for a match
    verdict: str


class Notes(Sink):
    """The first pass: each production event's shape and group."""

    def __init__(self) -> None:
        self.shapes: Numbered[tuple[str, Shape]] = Numbered()
        self.groups: Numbered[Fingerprint] = Numbered()
        self.events: dict[str, Seen] = {}

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            # The production events coverage counts, those with a shape (decodable).
            if counts_of(outcome) is None or outcome.shape is None:
                continue
            production = next(e for e in outcome.settles if e.side is PRODUCTION)
            assert production.event_id is not None
            entity = outcome.entity_op[0]
            shape = self.shapes.number((entity, outcome.shape))
            fingerprint = fingerprint_of(outcome)
            group = None if fingerprint is None else self.groups.number(fingerprint)
            verdict = counted_as(outcome)  # a verdict, or out_of_scope
            assert verdict is not None
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
    head, rest = unescape_token(tokens[0]), tokens[1:]
    if isinstance(value, dict):
        return {k: _redact(v, rest) if head in ("*", str(k)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, rest) if head in ("*", str(i)) else v for i, v in enumerate(value)]
    return value


def named_depth(path: str, pointers: Iterable[str]) -> int | None:
    """How many segments of `path` (a shape part's or a difference's, `*` for any list
    item) the shortest pointer that names it or a place above it has; None when no
    pointer does. `*` on either side matches any segment."""
    tokens = path.split("/")[1:] if path else []
    depths = [
        len(want)
        for want in (pointer.split("/")[1:] for pointer in pointers)
        if len(want) <= len(tokens)
        and all(w == t or "*" in (w, t) for w, t in zip(want, tokens, strict=False))
    ]
    return min(depths, default=None)


def redact_parts(shape: Iterable[Part], pointers: Sequence[str]) -> list[Part]:
    """The parts of a redacted event: a part a pointer names loses its value (a bool keeps
    it, as `redact` keeps bools); a part below one goes, as its path holds what the
    pointer redacts (map keys)."""
    parts = []
    for part in shape:
        path, kind, value = part_fields(part)
        depth = named_depth(path, pointers)
        if depth is None:
            parts.append(part)
        elif depth == path.count("/"):  # a pointer names this very part
            keep = value is None or kind == "bool"
            parts.append(part if keep else SEP.join((path, kind, REDACTED)))
    return parts


def redact_group(fingerprint: Fingerprint, pointers: Sequence[str]) -> Fingerprint:
    """A group with its paths cut at the pointers that name a place above them, and its
    error text, which may quote any value (of either side), replaced."""
    if not pointers:
        return fingerprint
    differences = []
    for path, kind, production_wire, sister_wire in fingerprint.differences:
        depth = named_depth(path, pointers)
        if depth is not None and depth < path.count("/"):
            path = "/".join(path.split("/")[: depth + 1]) + "/" + REDACTED
        differences.append((path, kind, production_wire, sister_wire))
    error = REDACTED if fingerprint.error else None
    return fingerprint._replace(differences=tuple(differences), error=error)


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


def vector(entry: StreamEntry, seen: Seen, shape: Shape, group: Fingerprint | None,
           consumer: Consumer, pointers: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """One test vector: the entry's fields (payload redacted), what the consumer decodes,
    its shape's parts and its group (redacted too)."""
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
    parts = redact_parts(shape, pointers) if pointers else list(shape)
    out: dict[str, Any] = {
        "event_id": entry.event_id,
        "entity": seen.entity,
        # Redacted parts give their own id: the original's would name the redacted values.
        "shape": shape_id(parts),
        "parts": [describe(p) for p in sorted(parts)],
        "group": None if group is None else describe_group(redact_group(group, pointers)),
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
    verifier = Verifier(consumer, verifier_config(settings, shapes=True))
    envelopes = side_envelopes(settings)
    rules = verifier.shape_rules
    assert rules is not None
    notes = Notes()
    with CaptureReader(production) as prod:
        sis = _sister(sister, envelopes[SISTER])
        verify_bounded(verifier, read_capture(prod, PRODUCTION, envelopes[PRODUCTION]), sis, notes)
    # Shapes as they are once every wide path is known; their final numbers.
    final: Numbered[tuple[str, Shape]] = Numbered()
    final_shape = [
        final.number((entity, project(taken, rules.wide.get(entity, set()))))
        for entity, taken in notes.shapes.keys
    ]
    chosen = set(choose(notes.events, final_shape))
    cases = []
    with CaptureReader(production) as prod:
        for entry in read_capture(prod, PRODUCTION, envelopes[PRODUCTION]):
            if entry.event_id in chosen:
                chosen.discard(entry.event_id)  # the first copy only
                seen = notes.events[entry.event_id]
                shape = final.keys[final_shape[seen.shape]][1]
                group = None if seen.group is None else notes.groups.keys[seen.group]
                cases.append(vector(entry, seen, shape, group, consumer, redact_pointers))
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "events": len(notes.events),
        "shapes": len(final.keys),
        "groups": len(notes.groups.keys),
        "cases": len(cases),
    }
    document = {"cdc_verify": __version__, **figures, "redacted": list(redact_pointers),
                "cases": cases}  # fmt: skip
    replace_file(out_dir / CASES_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return figures


def _sister(path: Path | None, envelope: Envelope | None) -> Iterator[StreamEntry]:
    if path is None:
        return
    with CaptureReader(path) as reader:
        yield from read_capture(reader, SISTER, envelope)


__all__ = ["choose", "redact", "redact_group", "redact_parts", "write_cases"]
