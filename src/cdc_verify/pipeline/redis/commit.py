"""Makes outcomes durable: verdict, decision, alert and XACK in one atomic script.

Each outcome is written exactly once even if a commit is retried after a lost
reply, or two workers overlap: a primary verdict is guarded by `HSETNX` (`SET NX`) on the
event's decision key, a duplicate/malformed record or a late arrival by the
XACK of its own entry (XACK answers 0 for an entry already acked).

The script's body is commit.lua, a section per key family. Each family's other half
lives with its reader: the alerts' JSON in alerts.py, the decisions' layout in
decisions.py, the counters in counters.py, the shapes in shapes.py, read-only
production's `Checkpoint` in readonly_stream.py; retention.py trims what does not expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any

import msgpack
from redis import exceptions as redis_errors
from redis.exceptions import ResponseError

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.bounds import MINIMAL_BOUNDS, MiB
from cdc_verify.core.entry import PRODUCTION, StreamEntry
from cdc_verify.core.outcome import Decision, Outcome, OutcomeKind, record_to_json
from cdc_verify.core.shape import MAX_SHAPES, ShapeRules
from cdc_verify.pipeline.redis.alerts import gap_alert, late_resolution
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.counters import MINUTE_MS, counts_key
from cdc_verify.pipeline.redis.decisions import GENERATIONS_LUA, DecisionStore, Filing, filing
from cdc_verify.pipeline.redis.errors import REDIS_DOWN, LockLost
from cdc_verify.pipeline.redis.readonly_stream import Checkpoint
from cdc_verify.pipeline.redis.script import ScriptContract
from cdc_verify.pipeline.redis.settle_mode import SettleMode
from cdc_verify.pipeline.redis.shapes import NO_SHAPE, ShapeWrites
from cdc_verify.schemas.verdicts import GAP_VERDICTS
from cdc_verify.timestamps import iso_now

log = logging.getLogger(__name__)

# An outcome as the script reads it (Lua: `B[o + ROW.kind]`, o the row's offset in the
# batch's one flat array), in the order `_row` packs it.
OUTCOME_FIELDS = (
    "kind",  # its OutcomeKind's value (Lua: KIND.PRIMARY, ...)
    "event_id", "verdict", "record", "decision", "alert",
    # the ids of the entries it settles, of production (Lua: stream 1) and of the sister
    # (stream 2): mostly one or none, else space separated (entry ids hold no space)
    "production_ids", "sister_ids",
    "entity", "op",  # what the counters count it under (core/breakdown.py)
    # where its decision is kept (decisions.py's filing): a ULID's hash and the end of
    # its second, or '' and the crc32 of the event_id for a generation's hash (the script
    # picks it from the decision's first-seen ms), or '' and -1 for a key of its own
    "bucket", "bucket_end_ms", "shard_hash", "first_seen_ms",
    # the production event's shape: its key ('' = none), its coverage status ('' = the
    # outcome says nothing of one) and its parts (sent with the first outcomes of a
    # shape only)
    "shape", "shape_status", "shape_parts",
)  # fmt: skip

COMMIT = ScriptContract(
    keys=(
        "verdicts", "production", "sister", "alerts_open", "alerts_resolved",
        "alerts_open_index", "alerts_resolved_index", "lock",
        "positions", "production_waiting",
        "counts",  # this minute's verdict counters (hash "<name>|<entity>|<op>" -> count)
        "shapes", "shape_counts", "shape_wide",  # shape coverage (shapes.py)
        "decision_generations",  # the generations' registry (decisions.lua)
    ),
    args=(
        "group",  # the consumer group whose entries are XACKed
        "decided_prefix", "decided_ttl_ms",  # + event_id: the remembered decision
        "decisions_prefix",  # + "g<start>:<shard>": a generation's hash
        "verdict_maxlen",  # approximate trim of the verdict stream, 0 = never
        # one flat msgpack array of OUTCOME_FIELDS rows, row after row (redis-py packs long
        # ARGVs slowly; a Lua table per row costs the script more than the rest of a row)
        "outcomes",
        "now_ms",
        "record_prefix", "record_ttl_ms",  # + event_id: records other than `match`
        # How each stream's entries are settled (settle_mode.py):
        "settle_production", "settle_sister",
        "settled_prefix",  # + "<1|2>:<entry id>": marker keys of the 'mark' mode
        # read-only production: the last entry id read ('' = unchanged) and the entries
        # that wait for a partner now (msgpack [[id, ms], ...]); see readonly_stream.py
        "production_position", "production_waiting_add",
        # '' for no lock; else the commit writes nothing unless K.lock holds this token
        "lock_token",
        "counts_expire_at_ms",  # K.counts lives until its minute ends plus the retention
        # '1': this call's matches are one verdict-stream entry (event_ids, count)
        "compact_matches",
        # shape coverage: the most shapes kept per entity, and the paths newly wide
        # (msgpack array of shapes.py's members)
        "max_shapes", "shape_wide_add",
    ),
    records={"ROW": OUTCOME_FIELDS},
    constants={
        "KIND": {kind.name: kind.value for kind in OutcomeKind},
        "SETTLE": {mode.name: mode.value for mode in SettleMode},
    },
)  # fmt: skip

# The script's body, a section per key family; COMMIT's preamble names what it reads.
COMMIT_SCRIPT = GENERATIONS_LUA + files(__package__).joinpath("commit.lua").read_text(
    encoding="utf-8"
)

# Outcomes per script call: keeps each call short, so Redis stays responsive.
CHUNK = 1000
# Bytes of outcomes per script call (docs/guarantees.md, "Bounds"): far below Redis'
# proto-max-bulk-len (512 MB) and client-query-buffer-limit (1 GB). One outcome takes
# at most a record (RECORD_BOUNDS.record), an alert (ALERT_MAX_BYTES) and its shape.
COMMIT_MAX_BYTES = 64 * MiB
# Redis' lowest settings of those two limits: a call no larger was not refused for its
# size, and a reset is an outage.
REFUSAL_MIN_BYTES = 1 * MiB
_packer = msgpack.Packer(use_bin_type=False)
_pack = _packer.pack
_ARRAY_HEADER = _packer.pack_array_header
# A row is packed as an array and sent without its header: the batch is one flat array.
_ROW_HEADER = _ARRAY_HEADER(len(OUTCOME_FIELDS))
_ROW_START = len(_ROW_HEADER)
_RECORD_FIELD = OUTCOME_FIELDS.index("record")
_SHAPE_PARTS_FIELD = OUTCOME_FIELDS.index("shape_parts")
_LATE = OutcomeKind.LATE
# The most filings a committer keeps from its lookups for the commits of those events
# (~210 bytes each: ~7 MB); past it they are dropped and made afresh, as are those of
# events looked up but never committed with a decision. At the default grace it holds
# what ~16k events/s keep in flight.
_MAX_FILED = 1 << 15


SettleModes = tuple[SettleMode, SettleMode]  # production's and sister's


class VerdictCommitter:
    def __init__(
        self,
        client: AsyncClient,
        keys: WorkerKeys,
        *,
        decided_retention_ms: int,
        verdict_maxlen: int,
        record_retention_ms: int,
        settle: SettleModes = (SettleMode.ACK, SettleMode.ACK),
        lock_token: str = "",
        counter_retention_ms: int = 8 * 86_400_000,
        compact_matches: bool = False,
        shapes: ShapeRules | None = None,
        max_shapes: int = MAX_SHAPES,
        server: str = "",
    ) -> None:
        """`shapes`: the rules of a verifier that takes shapes; its outcomes' shapes are
        counted (shapes.py), at most `max_shapes` per entity. `server`: the state
        server's redacted URL, for messages."""
        settle = (SettleMode(settle[0]), SettleMode(settle[1]))  # ValueError if not one
        self._client = client
        self._keys = keys
        self._server = server or "(state)"
        self._fixed = dict(
            settle_production=settle[0],
            settle_sister=settle[1],
            group=keys.group,
            decided_prefix=keys.decided_prefix,
            decided_ttl_ms=decided_retention_ms,
            decisions_prefix=keys.decisions_prefix,
            verdict_maxlen=verdict_maxlen,
            record_prefix=keys.record_prefix,
            record_ttl_ms=record_retention_ms,
            settled_prefix=keys.settled_prefix,
            lock_token=lock_token,
            compact_matches="1" if compact_matches else "0",
        )
        self._shapes = ShapeWrites(shapes, max_shapes) if shapes is not None else None
        self._max_shapes = max_shapes
        self._counter_retention_ms = counter_retention_ms
        self._decisions = DecisionStore(client, keys, decided_retention_ms)
        # event_id -> its filing, made by a lookup and taken by the commit of its decision
        # (filing twice per event cost ~1 µs an outcome).
        self._filed: dict[str, Filing] = {}
        # A stream is a key of the script only when the script acks it; otherwise the
        # lock (a state key, never touched as a stream) holds its place, so that on a
        # Cluster every key of the script is in the state keys' slot.
        production = keys.production if settle[0] is SettleMode.ACK else keys.lock
        sister = keys.sister if settle[1] is SettleMode.ACK else keys.lock
        self._script_keys = COMMIT.keys_of(
            verdicts=keys.verdicts, production=production, sister=sister,
            alerts_open=keys.alerts_open, alerts_resolved=keys.alerts_resolved,
            alerts_open_index=keys.alerts_open_index,
            alerts_resolved_index=keys.alerts_resolved_index, lock=keys.lock,
            positions=keys.positions, production_waiting=keys.production_waiting,
            counts=keys.lock,  # a placeholder: the key of the minute is set per call
            shapes=keys.shapes, shape_counts=keys.shape_counts, shape_wide=keys.shape_wide,
            decision_generations=keys.decision_generations,
        )  # fmt: skip
        self._counts_slot = COMMIT.keys.index("counts")
        self._script = COMMIT.register(client, COMMIT_SCRIPT)

    async def lookup(self, events: Mapping[str, int | None]) -> dict[str, Decision]:
        """Decisions Redis remembers for these event_ids (from earlier runs), each with
        the entry-id ms of an entry of it (None: at any time)."""
        if len(self._filed) >= _MAX_FILED:
            self._filed.clear()
        decisions = {}
        for event_id, found in (await self._decisions.lookup(events, self._filed)).items():
            if isinstance(found, ValueError):  # not written by us: the event_id is unknown
                log.warning("ignoring an unreadable decision for event %s: %s", event_id, found)
            else:
                decisions[event_id] = found
        return decisions

    async def commit(
        self, outcomes: Sequence[Outcome], checkpoint: Checkpoint | None = None
    ) -> list[Outcome]:
        """Makes the outcomes durable; returns those this call wrote (not a retry's repeats).

        One script call takes at most CHUNK outcomes and COMMIT_MAX_BYTES of them. With a
        `checkpoint` (read-only production), the read position and the waiting set move
        with the first chunk, which also lists as waiting the production entries the
        later chunks settle: a crash between chunks loses none of them.

        A call the state server drops for its size is split, down to one outcome, whose
        record is then reduced (`_commit_refused`): the rest of the batch gets its verdicts.

        Raises LockLost, having written nothing, when a lock token was given and
        another worker holds the lock.
        """
        if not outcomes and checkpoint is None:
            return []
        now = iso_now("milliseconds")
        rows = [self._row(o, now) for o in outcomes]
        shapes = self._shapes
        wide = shapes.wide_to_send() if shapes is not None else []
        fresh: list[Outcome] = []
        start = 0
        while True:  # once at least: a checkpoint alone is committed too
            end = _chunk_end(rows, start)
            carry = _NOTHING
            if start == 0:
                carry = _Carry(wide=wide)
                if checkpoint is not None:
                    carry = _Carry(
                        checkpoint.position,
                        [*checkpoint.waiting, *_production_entries(outcomes[end:])],
                        wide,
                    )
            fresh += await self._commit_rows(outcomes[start:end], rows[start:end], carry)
            start = end
            if start >= len(outcomes):
                return fresh

    async def _commit_rows(
        self,
        outcomes: Sequence[Outcome],
        rows: Sequence[bytes],
        carry: _Carry,
    ) -> list[Outcome]:
        try:
            flags = await self._call(rows, carry)
        # A dropped connection (or a protocol error) is how Redis refuses an argument
        # past its limits.
        except (redis_errors.ConnectionError, OSError, ResponseError) as exc:
            size = sum(map(len, rows))
            if not await self._refused_for_size(exc, size):
                raise
            if len(outcomes) == 1:
                return await self._commit_refused(outcomes[0], rows[0], size, exc, carry)
            half = len(outcomes) // 2
            log.warning(
                "the state server %s dropped a commit of %d outcomes (%d bytes): %s; "
                "committing it in two halves", self._server, len(outcomes), size, exc,
            )  # fmt: skip
            # The first half carries what the whole did, and lists the second's
            # production entries as waiting (as a first chunk does for later ones).
            first = replace(carry, waiting=[*carry.waiting, *_production_entries(outcomes[half:])])
            done = await self._commit_rows(outcomes[:half], rows[:half], first)
            return done + await self._commit_rows(outcomes[half:], rows[half:], _NOTHING)
        return [o for o, flag in zip(outcomes, flags, strict=True) if int(flag)]

    async def _commit_refused(
        self,
        outcome: Outcome,
        rows_of_one: bytes,
        size: int,
        exc: Exception,
        carry: _Carry,
    ) -> list[Outcome]:
        """One outcome the state server refused whole: its record reduced to
        MINIMAL_BOUNDS, which says so, is a finding about that event."""
        why = f"the state server refused the whole record ({size} bytes to commit): {exc}"
        record = outcome.record.bounded(MINIMAL_BOUNDS, why) if outcome.record else None
        reduced = replace(outcome, record=record)
        # The row as it was (its alert is bounded small), with the record reduced and
        # without the shape's parts (up to 256 paths): the shape is counted, not held.
        fields = msgpack.unpackb(_ROW_HEADER + rows_of_one, raw=True)
        fields[_RECORD_FIELD] = record_to_json(record) if record else ""
        fields[_SHAPE_PARTS_FIELD] = b""
        row = _pack(fields)[_ROW_START:]
        log.error(
            "the state server %s refused a commit of %d bytes for event %s (%s); its record "
            "is committed reduced (%d bytes); raise proto-max-bulk-len or "
            "client-query-buffer-limit on that server to keep such records whole",
            self._server, size, outcome.event_id, exc, len(row),
        )  # fmt: skip
        flags = await self._call([row], carry)
        return [reduced] if int(flags[0]) else []

    async def _refused_for_size(self, exc: Exception, size: int) -> bool:
        """Whether the server dropped a call for its size: a call Redis' lowest limits
        allow was not, nor one to a server that no longer answers (an outage)."""
        if isinstance(exc, ResponseError) and "Protocol error" not in str(exc):
            return False
        if size <= REFUSAL_MIN_BYTES:
            return False
        # Twice: the first may meet the connection Redis closed (it is then replaced).
        for _ in range(2):
            try:
                await self._client.ping()
                return True
            except REDIS_DOWN:
                continue
            except ResponseError:
                return False
        return False

    async def _call(self, rows: Sequence[bytes], carry: _Carry) -> list[Any]:
        now_ms = int(time.time() * 1000)
        keys = list(self._script_keys)
        keys[self._counts_slot] = counts_key(self._keys, now_ms)
        minute_end = (now_ms // MINUTE_MS + 1) * MINUTE_MS
        args = COMMIT.args_of(
            outcomes=_ARRAY_HEADER(len(rows) * len(OUTCOME_FIELDS)) + b"".join(rows),
            now_ms=now_ms,
            counts_expire_at_ms=minute_end + self._counter_retention_ms,
            production_position=carry.position,
            production_waiting_add=msgpack.packb(
                [[e.entry_id, e.arrival_ms] for e in carry.waiting]
            ),
            max_shapes=self._max_shapes,
            shape_wide_add=msgpack.packb(carry.wide, use_bin_type=False),
            **self._fixed,
        )
        try:
            flags: list[Any] = await self._script(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("LOCKLOST"):
                raise LockLost(f"commit refused: {exc}") from None
            raise
        return flags

    def _row(self, o: Outcome, now: str) -> bytes:
        """The outcome as the script reads it: its OUTCOME_FIELDS, msgpack, no array header."""
        record = o.record
        decision = o.decision
        bucket, end_ms, shard_hash, first_seen_ms = "", 0, -1, 0
        event_id = o.event_id
        if decision is not None and event_id:
            filed = self._filed.pop(event_id, None)
            if filed is None:
                filed = filing(self._keys.decisions_prefix, event_id)
            bucket, end_ms, shard_hash = filed
            first_seen_ms = decision.first_seen_ms
        alert = ""
        if o.kind is _LATE:
            alert = late_resolution(o, now)
        elif record is not None and record.verdict in GAP_VERDICTS:
            alert = gap_alert(o, now)
        shapes = self._shapes
        # Positional on the hot path (a dict per outcome costs as much as the rest of
        # the packing); OUTCOME_FIELDS pins the order to the contract's names.
        return _pack(
            (
                o.kind._value_,  # not .value: an Enum property, slow on Python 3.11
                event_id or "",
                record.verdict._value_ if record else "",
                record_to_json(record) if record else "",
                decision.encode() if decision else "",
                alert,
                *_settled_ids(o.settles),
                *o.entity_op,
                bucket,
                end_ms,
                shard_hash,
                first_seen_ms,
                *(shapes.fields(o) if shapes is not None else NO_SHAPE),
            )
        )[_ROW_START:]


@dataclass(frozen=True, slots=True)
class _Carry:
    """What the first script call of a commit carries besides its outcomes: read-only
    production's position and waiting entries, and the paths newly found wide."""

    position: str = ""
    waiting: Sequence[StreamEntry] = ()
    wide: Sequence[bytes] = ()


_NOTHING = _Carry()


def _chunk_end(rows: Sequence[bytes], start: int) -> int:
    """Where the chunk that begins at `start` ends: CHUNK rows or COMMIT_MAX_BYTES."""
    end, size = start, 0
    while end < len(rows) and end - start < CHUNK:
        size += len(rows[end])
        if size > COMMIT_MAX_BYTES and end > start:
            break
        end += 1
    return end


def _settled_ids(settles: Sequence[StreamEntry]) -> tuple[str, str]:
    """The ids of production's entries and of the sister's, each space separated."""
    production = sister = ""
    for e in settles:
        if e.side is PRODUCTION:
            production = f"{production} {e.entry_id}" if production else e.entry_id
        else:
            sister = f"{sister} {e.entry_id}" if sister else e.entry_id
    return production, sister


def _production_entries(outcomes: Iterable[Outcome]) -> list[StreamEntry]:
    return [e for o in outcomes for e in o.settles if e.side is PRODUCTION]
