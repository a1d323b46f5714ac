"""Reads the worker's durable per-minute counters (docs/rollouts.md, "Go / no-go").

In the atomic commit that writes the verdicts, the worker's script HINCRBYs the hash
`WorkerKeys.counts_prefix + str(minute)` (minute = commit ms // 60000), field
`<name>|<entity>|<op>`, where name is a verdict, `out_of_scope`, `tombstone` or `late`. Each hash
expires `counter_retention` after its minute ends. So the counts survive a restart, and a
window is read as whole minutes: one HGETALL a minute, pipelined (the keys share the
state keys' hash tag, so on a Cluster they sit in one slot, on one node).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.schemas.verdicts import COUNTED_NAMES, PRIMARY_VERDICTS

MINUTE_MS = 60_000


def counts_key(keys: WorkerKeys, at_ms: int) -> str:
    """The hash of verdict counters of the minute holding `at_ms` (docs/rollouts.md)."""
    return f"{keys.counts_prefix}{at_ms // MINUTE_MS}"


PRIMARY = frozenset(v.value for v in PRIMARY_VERDICTS)
# HGETALLs per pipeline round trip: bounds one reply's size on a long window.
CHUNK = 1_000

Label = tuple[str, str, str]  # (name, entity, op)
RawHash = Mapping[bytes | str, bytes | str | int]  # a minute's HGETALL reply, or a sum


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts by (name, entity, op), summed over some minutes."""

    by_label: Mapping[Label, int] = field(default_factory=dict)

    def only(self, entity: str | None = None, op: str | None = None) -> Counts:
        """The counts of one entity, one op, or both (None: any)."""
        return Counts({
            (name, e, o): n for (name, e, o), n in self.by_label.items()
            if (entity is None or e == entity) and (op is None or o == op)
        })  # fmt: skip

    def totals(self) -> dict[str, int]:
        """Count per name; every name of COUNTED_NAMES present, zeros included."""
        out = dict.fromkeys(COUNTED_NAMES, 0)
        for (name, _, _), count in self.by_label.items():
            out[name] = out.get(name, 0) + count
        return out

    @property
    def events(self) -> int:
        """Events with a primary verdict (one per event_id)."""
        return sum(n for (name, _, _), n in self.by_label.items() if name in PRIMARY)

    def by_entity_op(self) -> dict[str, dict[str, int]]:
        """`entity/op` -> {name: count}, as summary.json's by_entity_op (non-zero only);
        sorted by entity/op, names in the order of COUNTED_NAMES."""
        order = {name: i for i, name in enumerate(COUNTED_NAMES)}
        labels = sorted(self.by_label.items(), key=lambda x: (x[0][1:], order.get(x[0][0], 99)))
        out: dict[str, dict[str, int]] = {}
        for (name, entity, op), count in labels:
            if count:
                out.setdefault(f"{entity}/{op}", {})[name] = count
        return out


def sum_hashes(hashes: Iterable[RawHash]) -> Counter[bytes | str]:
    """Raw field -> summed count. Summed by raw field and split later, once: a day has
    1,440 hashes but few distinct fields."""
    summed: Counter[bytes | str] = Counter()
    for fields in hashes:
        for raw_field, raw_count in fields.items():
            summed[raw_field] += int(raw_count)
    return summed


def parse_hashes(hashes: Iterable[RawHash]) -> Counts:
    """The sum of hashes as labels; a field of another shape is no label of ours: skipped."""
    labels: Counter[Label] = Counter()
    for raw_field, count in sum_hashes(hashes).items():
        text = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        parts = text.split("|")
        if len(parts) == 3:
            labels[parts[0], parts[1], parts[2]] += count
    return Counts(dict(labels))


def minute_of(ms: int) -> int:
    return ms // MINUTE_MS


async def read_hashes(
    client: AsyncClient, keys: WorkerKeys, minutes: Sequence[int]
) -> dict[int, RawHash]:
    """minute -> its hash (empty when it has none, or it expired)."""
    out: dict[int, RawHash] = {}
    for start in range(0, len(minutes), CHUNK):
        chunk = minutes[start : start + CHUNK]
        async with client.pipeline(transaction=False) as pipe:
            for minute in chunk:
                pipe.hgetall(counts_key(keys, minute * MINUTE_MS))
            replies = await pipe.execute()
        out.update(zip(chunk, replies, strict=True))
    return out


@dataclass(frozen=True, slots=True)
class Window:
    """Whole minutes: from the start of the minute `since_ms` falls in to `until_ms`."""

    since_ms: int
    until_ms: int

    @classmethod
    def last(cls, seconds: float, now_ms: int | None = None) -> Window:
        until = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(max(0, until - round(seconds * 1000)), until)  # no minute before 1970

    @property
    def first_minute(self) -> int:
        return minute_of(self.since_ms)

    @property
    def last_minute(self) -> int:
        return minute_of(self.until_ms)

    @property
    def start_ms(self) -> int:
        """Where the counted minutes begin (at or before since_ms)."""
        return self.first_minute * MINUTE_MS

    def minutes(self) -> range:
        return range(self.first_minute, self.last_minute + 1)


async def read_window(client: AsyncClient, keys: WorkerKeys, window: Window) -> Counts:
    """The counts summed over the window's minutes."""
    return parse_hashes((await read_hashes(client, keys, window.minutes())).values())


HOUR = 60  # minutes
# A minute this many minutes past takes no more writes: a commit in flight, or a worker
# whose clock is a little behind ours, still lands in a recent one.
SETTLED_AFTER = 3


class CounterReader:
    """Reads windows ending now for a long-lived process (the API), which reads the
    same day every few seconds: it keeps the sums of whole hours that are over, and
    reads only the minutes at the window's ends. A refresh then costs a few hundred
    small HGETALLs, not 1,440, and little of the worker's event loop."""

    def __init__(self, client: AsyncClient, keys: WorkerKeys, retention_s: float) -> None:
        self._client, self._keys = client, keys
        self._retention_minutes = int(retention_s // 60)
        self._hours: dict[int, Counter[bytes | str]] = {}  # hour -> its 60 minutes summed

    async def read(
        self, window: Window, recent: int = 0
    ) -> tuple[Counts, list[tuple[int, Counts]]]:
        """The window's counts, and each of the last `recent` minutes' (oldest first)."""
        first, last = window.first_minute, window.last_minute
        settled = last - SETTLED_AFTER  # minutes before this one are final
        hours = range(-(-first // HOUR), min(last + 1, settled) // HOUR)
        in_hours = range(hours.start * HOUR, hours.stop * HOUR) if hours else range(0)
        lone = [m for m in window.minutes() if m not in in_hours]
        series = range(last - recent + 1, last + 1)
        missing = [h for h in hours if h not in self._hours]
        wanted = {*lone, *series, *(m for h in missing for m in range(h * HOUR, (h + 1) * HOUR))}
        fetched = await read_hashes(self._client, self._keys, sorted(wanted))
        for h in missing:
            self._hours[h] = sum_hashes(fetched[m] for m in range(h * HOUR, (h + 1) * HOUR))
        # Hours the server has expired are dropped here too.
        for h in [h for h in self._hours if (h + 1) * HOUR < last - self._retention_minutes]:
            del self._hours[h]
        total = parse_hashes([*(self._hours[h] for h in hours), *(fetched[m] for m in lone)])
        return total, [(m, parse_hashes([fetched[m]])) for m in series]


def events_per_second(series: list[tuple[int, Counts]], now_ms: int, minutes: int) -> float:
    """Events a second over the last `minutes` whole minutes and the current one so far."""
    current = minute_of(now_ms)
    events = sum(c.events for m, c in series if current - minutes <= m <= current)
    seconds = minutes * 60 + (now_ms - current * MINUTE_MS) / 1000
    return events / seconds if seconds > 0 else 0.0
