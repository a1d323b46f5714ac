"""Shape coverage on the state server: what the live worker's commit writes, read back.

The commit script (commit.lua) counts each production event's shape in the same atomic
call that makes its verdict durable, so a retried or repeated commit counts it once, and
a SIGKILLed worker loses no count. Three keys (WorkerKeys, docs/coverage.md):

- `shapes`, a hash `<entity>|<shape id>` -> the shape's parts (a msgpack array of
  strings), written once per shape; at most `max_shapes` shapes per entity;
- `shape_counts`, a hash of counters: `<entity>|<shape id>|<status>` (status: match,
  mismatch, unverified), `<entity>|+overflow|<status>` for the events of shapes past the
  cap, `<entity>|+undecodable|unverified` for production events with no shape, and
  `<entity>|+shapes`, the entity's shapes so far;
- `shape_wide`, a set of msgpack [entity, path]: the paths the workers found wide
  (core/shape.py). A worker loads them when its session starts, and a reader takes
  their values out of the shapes stored before the path went wide.

Entity names never hold `|` (core/breakdown.py); shape ids are hex.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import msgpack

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.coverage import CoverageReport, CoverageTally, ShapeCounts
from cdc_verify.core.outcome import EVENT_COVERAGE_VALUES, Outcome, coverage_status
from cdc_verify.core.shape import (
    ENUM_VALUES,
    MAX_SHAPES,
    Shape,
    ShapeRules,
    part_fields,
)
from cdc_verify.pipeline.redis.connection import AsyncClient

# Counters that are no shape (the commit script writes the same names).
OVERFLOW = "+overflow"
UNDECODABLE = "+undecodable"
# How many shape keys a writer remembers an entity: past it, it names them afresh.
_MAX_REMEMBERED = 8 * MAX_SHAPES
_HMGET_CHUNK = 500

NO_SHAPE = ("", "", b"")  # an outcome that says nothing of a production event


def _pack(value: Any) -> bytes:
    # A consumer's map keys may hold lone surrogates: keep them, do not fail.
    return msgpack.packb(value, use_bin_type=True, unicode_errors="surrogatepass")


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, unicode_errors="surrogatepass")


class ShapeWrites:
    """What the commit script is told of each outcome's shape; one per committer."""

    def __init__(self, rules: ShapeRules, max_shapes: int = MAX_SHAPES) -> None:
        self._rules = rules
        self._max_shapes = max_shapes
        self._keys: dict[str, dict[Shape, str]] = {}  # entity -> shape -> its key
        # Per entity, the shape keys whose parts a commit carried. Once max_shapes, the
        # state server holds max_shapes of them or was full when it got one: it is full.
        self._sent: dict[str, set[str]] = {}
        self._wide_sent: set[tuple[str, str]] = set()
        self._widened_sent = -1

    def fields(self, outcome: Outcome) -> tuple[str, str, bytes]:
        """(shape key, status, parts): key '' with a status is an undecodable production
        event; the parts go only with the first outcomes of a shape, until sent."""
        status = coverage_status(outcome)
        if status is None:
            return NO_SHAPE
        shape = outcome.shape
        entity = outcome.entity_op[0]
        if shape is None:
            return "", status, b""
        keys = self._keys.get(entity)
        if keys is None:
            keys = self._keys[entity] = {}
        key = keys.get(shape)
        if key is None:
            if len(keys) >= _MAX_REMEMBERED:
                keys.clear()
            key = keys[shape] = f"{entity}|{storage_id(shape)}"
        sent = self._sent.get(entity)
        if sent is None:
            sent = self._sent[entity] = set()
        if key in sent or len(sent) >= self._max_shapes:
            return key, status, b""  # sent, or the server is full (overflow unless held)
        # Sent once: the script stores the parts of any outcome that carries them, made
        # durable or not, and a failed commit ends the session and its committer.
        sent.add(key)
        return key, status, _pack(sorted(shape))

    def wide_to_send(self) -> list[bytes]:
        """The wide paths no commit of this writer carried yet (mostly none)."""
        if self._rules.widened == self._widened_sent:
            return []
        self._widened_sent = self._rules.widened
        new = [
            (entity, path)
            for entity, paths in self._rules.wide.items()
            for path in paths
            if (entity, path) not in self._wide_sent
        ]
        self._wide_sent.update(new)
        return [_pack(list(pair)) for pair in new]


def storage_id(shape: Shape) -> str:
    """16 hex digits naming a shape as taken, on the state server: the same in every
    process, and cheaper than `tally.shape_id` (the name reports give a shape once wide
    paths are taken out), which the live worker would compute for nearly every event of a
    rich model."""
    text = "\n".join(sorted(shape)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=8).hexdigest()


async def load_wide(client: AsyncClient, keys: WorkerKeys, rules: ShapeRules) -> int:
    """Takes the wide paths the state server holds into `rules`; how many it holds."""
    members = await client.smembers(keys.shape_wide)
    held = 0
    for member in members:
        pair = _wide_pair(member)
        if pair is not None:
            rules.add_wide(*pair)
            held += 1
    return held


def _wide_pair(member: bytes | str) -> tuple[str, str] | None:
    pair = _strings(member)
    return (pair[0], pair[1]) if pair is not None and len(pair) == 2 else None


def _strings(raw: bytes | str) -> list[str] | None:
    """A msgpack array of strings as we wrote it; None for anything else (ignored)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    try:
        value = _unpack(data)
    except (ValueError, msgpack.UnpackException):
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


class ShapeReader:
    """Reads the coverage the live workers wrote; keeps the parts it read (they never
    change once written), so reading again costs the counters and the new shapes only."""

    def __init__(self, client: AsyncClient, keys: WorkerKeys) -> None:
        self._client = client
        self._keys = keys
        self._parts: dict[str, Shape] = {}
        self._last: tuple[float, CoverageTally] | None = None
        # (tally, with pairs or not) -> the report made of it, for the last tally only
        self._reports: dict[bool, tuple[CoverageTally, CoverageReport]] = {}

    async def tally(self, max_age_s: float = 0.0) -> CoverageTally:
        """Every shape's counts, with the values of paths gone wide taken out; the last
        one read if it is at most `max_age_s` old (a page that polls)."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] <= max_age_s:
            return self._last[1]
        tally = await self._read()
        self._last = (now, tally)
        return tally

    async def report(self, max_age_s: float = 0.0, pairs: bool = True) -> CoverageReport:
        """The tally's figures, shapes, parts and (`pairs`) pairs, made once per tally
        read: for thousands of shapes that takes tens of milliseconds of the event loop."""
        tally = await self.tally(max_age_s)
        made = self._reports.get(pairs)
        if made is None or made[0] is not tally:
            made = self._reports[pairs] = (tally, CoverageReport.of_tally(tally, pairs))
        return made[1]

    async def _read(self) -> CoverageTally:
        keys = self._keys
        # HSCAN, not HGETALL: a big hash is read in steps that keep Redis responsive. A
        # field HSCAN returns twice lands in the dict once.
        raw_counts: dict[Any, Any] = {}
        async for field, value in self._client.hscan_iter(keys.shape_counts, count=1000):
            raw_counts[field] = value
        rules = ShapeRules()
        await load_wide(self._client, keys, rules)
        counted: list[Counted] = []
        for raw_field, raw_n in raw_counts.items():
            parsed = _count_field(raw_field, raw_n)
            if parsed is not None:
                counted.append(parsed)
        shapes = {(e, s) for e, s, _, _ in counted if not s.startswith("+")}  # no marker
        await self._read_parts({f"{e}|{s}" for e, s in shapes})
        self._widen(rules, shapes)
        tally = CoverageTally(rules, max_shapes=len(self._parts) + 1)
        for entity, name, status, n in sorted(counted):
            counts = ShapeCounts.one(status, n)
            if name == OVERFLOW:
                tally.add_overflow(entity, counts)
            elif name == UNDECODABLE:
                tally.add(entity, None, counts)
            else:
                shape = self._parts.get(f"{entity}|{name}")
                if shape is None:  # counted but its parts are gone (a key deleted by hand)
                    tally.add_overflow(entity, counts)
                else:
                    tally.add(entity, shape, counts)
        return tally

    def _widen(self, rules: ShapeRules, counted: set[tuple[str, str]]) -> None:
        """Takes as wide, too, the paths with more than ENUM_VALUES values in the stored
        shapes: each worker saw fewer (a SIGKILL forgets what a worker learnt), but
        together they saw what one run over every event would have."""
        values: dict[tuple[str, str], set[str]] = {}
        for entity, name in counted:
            for part in self._parts.get(f"{entity}|{name}", ()):
                path, _, value = part_fields(part)
                if value is not None:
                    values.setdefault((entity, path), set()).add(value)
        for (entity, path), seen in values.items():
            if len(seen) > ENUM_VALUES:
                rules.add_wide(entity, path)

    async def _read_parts(self, wanted: set[str]) -> None:
        missing = sorted(wanted - self._parts.keys())
        for start in range(0, len(missing), _HMGET_CHUNK):
            chunk = missing[start : start + _HMGET_CHUNK]
            values: Sequence[Any] = await self._client.hmget(self._keys.shapes, chunk)
            for key, raw in zip(chunk, values, strict=True):
                shape = _shape_of(raw)
                if shape is not None:
                    self._parts[key] = shape


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


Counted = tuple[str, str, str, int]  # entity, shape id or marker, status, events


def _count_field(raw_field: bytes | str, raw_n: bytes | str | int) -> Counted | None:
    """(entity, shape id or marker, status, count) of a counter; None for `+shapes` and
    for anything not written by us."""
    parts = _text(raw_field).rsplit("|", 2)
    if len(parts) != 3 or parts[2] not in EVENT_COVERAGE_VALUES or not parts[0]:
        return None
    try:
        n = int(raw_n)
    except ValueError:
        return None
    return (parts[0], parts[1], parts[2], n) if n > 0 else None


def _shape_of(raw: bytes | str | None) -> Shape | None:
    parts = None if raw is None else _strings(raw)
    return None if parts is None else frozenset(parts)
