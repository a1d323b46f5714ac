"""How many entries a read may ask for, so that one read's entries stay near a byte cap.

XREADGROUP and XREAD limit a read by entries (COUNT), not bytes: 500 entries of 25 MB
are 12 GB. So the count comes from the size of the entries read lately: the largest
one seen, decaying by DECAY per read so that one big entry among small ones does not
slow every later read. A session starts from the size of each stream's newest entry
(`seed`); with nothing to go by, its first read asks for one entry per stream. From
there the count at most doubles from one read to the next. A read still overshoots
when its entries are bigger than any seen lately: by up to its count times their size
(a stream of small entries turning into one of 25 MB ones), never past `count`.
"""

from __future__ import annotations

from collections.abc import Iterable

from cdc_verify.core.entry import StreamEntry, entry_bytes

DEFAULT_READ_MAX_BYTES = 64 * 2**20
DECAY = 0.8


class ReadBudget:
    """`count(wanted)` for the next read of `streams` streams; `saw()` what it gave."""

    def __init__(self, max_bytes: int, streams: int = 2) -> None:
        self.max_bytes = max_bytes
        self._streams = streams
        self._largest: float | None = None  # bytes of the largest entry lately
        self._last = 0  # the count of the last read

    def count(self, wanted: int) -> int:
        if self._largest is None:
            self._last = 1
        else:
            fits = int(self.max_bytes // (self._streams * self._largest))
            self._last = max(1, min(wanted, fits, 2 * self._last))
        return self._last

    def seed(self, samples: Iterable[StreamEntry]) -> None:
        """Entries like those to come (each stream's newest): the first count fits them."""
        self.saw(samples)
        if self._largest is not None:
            self._last = int(self.max_bytes // (self._streams * self._largest))

    def saw(self, entries: Iterable[StreamEntry]) -> None:
        largest = max(map(entry_bytes, entries), default=0)
        if largest:
            decayed = 0.0 if self._largest is None else self._largest * DECAY
            self._largest = max(float(largest), decayed)
