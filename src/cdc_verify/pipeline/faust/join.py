"""The shared core for one Kafka partition, with the state a rebalance must carry over.

Entries reach a partition from several forwarders, each in its own order, so the
core is told how far each stream has been read only by watermarks: per side, the
lowest mark among the forwarders still alive. An event then becomes a gap only
once no forwarder can still send its partner in time, as in the single worker.

No I/O: the agent persists what `changes` reports in a changelog-backed table
and restores a join from it after a rebalance. The state includes the offset of
the next message the join expects, written with the state it describes, so a
restored join knows exactly which messages it has applied, whatever offsets the
Kafka consumer group committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgpack

from cdc_verify.core.decoder import Consumer
from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.outcome import Decision, Outcome
from cdc_verify.core.position import ReadPosition
from cdc_verify.core.shape import ShapeRules
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.faust.messages import SIDE_OF, Retire, Watermark
from cdc_verify.schemas.verdicts import SIDE_CODE, STREAM_SIDES, Side

# Table keys: b"<partition>|w|<side>|<entry id>" -> a waiting entry,
#             b"<partition>|m|<side>|<forwarder>" -> a forwarder's watermark,
#             b"<partition>|o|0|next"              -> the next offset to apply.
WAITING, MARK, POSITION = b"w", b"m", b"o"


def waiting_key(partition: int, entry: StreamEntry) -> bytes:
    return b"%d|w|%d|%s" % (partition, SIDE_CODE[entry.side], entry.entry_id.encode())


def mark_key(partition: int, forwarder: str, side: Side) -> bytes:
    return b"%d|m|%d|%s" % (partition, SIDE_CODE[side], forwarder.encode())


def position_key(partition: int) -> bytes:
    return b"%d|o|0|next" % partition


def partition_prefix(partition: int) -> bytes:
    return b"%d|" % partition


class PartitionJoin:
    def __init__(
        self,
        partition: int,
        consumer: Consumer,
        config: VerifierConfig,
        shape_rules: ShapeRules | None = None,
    ) -> None:
        self.partition = partition
        self.verifier = Verifier(consumer, config, shape_rules=shape_rules)
        self._marks: dict[tuple[str, Side], int] = {}
        self.next_offset: int | None = None  # None: nothing applied yet
        self._stored: set[bytes] = set()  # waiting keys now in the table
        self._puts: dict[bytes, bytes | None] = {}  # table changes since `changes()`

    # -- state -----------------------------------------------------------------

    def restore(self, items: Iterable[tuple[bytes, bytes]], horizon_ms: int) -> None:
        """Rebuild from the table's keys of this partition (after a rebalance)."""
        self.verifier.reset(horizon_ms)
        waiting: list[StreamEntry] = []
        for key, value in items:
            _, kind, side, rest = key.split(b"|", 3)
            if kind == WAITING:
                entry_id, fields = msgpack.unpackb(value, raw=True, strict_map_key=False)
                waiting.append(StreamEntry.from_redis(SIDE_OF[int(side)], entry_id, fields))
                self._stored.add(key)
            elif kind == MARK:
                self._marks[(rest.decode(), SIDE_OF[int(side)])] = int(msgpack.unpackb(value))
            elif kind == POSITION:
                self.next_offset = int(msgpack.unpackb(value))
        waiting.sort(key=lambda e: (e.arrival_ms, e.entry_id))
        outcomes = self.verifier.ingest(waiting)
        assert not outcomes, "waiting entries restored from the table settle nothing"
        self._advance()

    def changes(self) -> dict[bytes, bytes | None]:
        """Table writes (None: delete) that bring the table up to this join's state."""
        puts, self._puts = self._puts, {}
        key = position_key(self.partition)
        if key in puts:  # last: a position never claims state that did not reach the table
            puts[key] = puts.pop(key)
        return puts

    def applied(self, offset: int) -> None:
        """Messages up to `offset` are in this state."""
        self.next_offset = offset + 1
        self._puts[position_key(self.partition)] = msgpack.packb(self.next_offset)

    # -- input -----------------------------------------------------------------

    def lookup_needed(self, entries: list[StreamEntry]) -> dict[str, int]:
        return self.verifier.lookup_needed(entries)

    def ingest(
        self, entries: list[StreamEntry], prior: Mapping[str, Decision] | None
    ) -> list[Outcome]:
        outcomes = self.verifier.ingest(entries, prior)
        self._settle(outcomes)
        for entry in entries:
            if self.verifier.is_waiting(entry):
                key = waiting_key(self.partition, entry)
                if key not in self._stored:
                    self._stored.add(key)
                    self._puts[key] = msgpack.packb([entry.entry_id, entry.fields])
        return outcomes

    def watermark(self, mark: Watermark) -> None:
        key = (mark.forwarder, mark.side)
        known = self._marks.get(key)
        # A first mark may be -1 ("nothing sent yet"): it must still hold the others back.
        if known is None or mark.ms > known:
            self._marks[key] = mark.ms
            self._puts[mark_key(self.partition, mark.forwarder, mark.side)] = msgpack.packb(mark.ms)
        self._advance()

    def retire(self, retire: Retire) -> None:
        for forwarder, side in list(self._marks):
            if forwarder in retire.forwarders:
                del self._marks[(forwarder, side)]
                self._puts[mark_key(self.partition, forwarder, side)] = None
        self._advance()

    def expire(self) -> list[Outcome]:
        outcomes = self.verifier.expire()
        self._settle(outcomes)
        return outcomes

    def waiting_count(self, side: Side) -> int:
        return self.verifier.waiting_count(side)

    # -- internals -------------------------------------------------------------

    def _advance(self) -> None:
        for side in STREAM_SIDES:
            marks = [ms for (_, s), ms in self._marks.items() if s is side]
            if marks:
                self.verifier.advance(side, ReadPosition(min(marks)))

    def _settle(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for entry in outcome.settles:
                key = waiting_key(self.partition, entry)
                if key in self._stored:
                    self._stored.discard(key)
                    self._puts[key] = None
