"""How far a stream has been read: the one rule that makes verdicts a function of the data.

An event waiting on one side becomes a gap only once the other side's stream has
been read past `arrival + grace`. Every runner learns how far it has read in its own
way (a caught-up read at a Redis TIME, the last entry of a batch, a forwarder's
watermark); each says it with a `ReadPosition`, and only the core compares it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class ReadPosition:
    """Every entry with an entry-id time before `before_ms` has been read.

    Entries of the millisecond `before_ms` itself may still come: another entry in
    that millisecond (a higher sequence number), or one sent by another forwarder.
    """

    before_ms: int

    @classmethod
    def caught_up(cls, server_ms: int) -> ReadPosition:
        """A read at Redis time `server_ms` found nothing new: the stream holds all
        entries of earlier milliseconds, and has handed them out."""
        return cls(server_ms)

    @classmethod
    def at_entry(cls, arrival_ms: int) -> ReadPosition:
        """An entry of `arrival_ms` was read, in stream order."""
        return cls(arrival_ms)

    def covers(self, latest_partner_ms: int) -> bool:
        """Whether a partner at `latest_partner_ms` would have been read by now."""
        return latest_partner_ms < self.before_ms


START = ReadPosition(0)
