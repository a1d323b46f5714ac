"""The skew between the two streams' entry-id clocks (docs/topology.md, "Clock skew").

With the streams on two servers, entry ids come from two clocks. Each stream's clock is
estimated against this process's own, from two samples taken every second: the server's
TIME (what XADD * uses) and the newest entry id (which a writer giving explicit ids may
set from its own clock). A stream's offset is the largest of those over the last
WINDOW_S: an idle stream's newest id is old and a read takes time, both only ever make a
sample smaller. The skew is sister's offset minus production's.

A sample is off by at most half its round trip, so one that took longer than
MAX_SAMPLE_RTT_MS is dropped: a worker frozen (SIGSTOP, a long GC or VM pause) or a
connection stalled between the TIME and the local reading once gave a 900 ms "skew" on a
single server, and the verdicts it shifted were false gaps. So is one across which this
machine's wall clock stepped.
"""

from __future__ import annotations

import time
from collections import deque
from typing import cast

from cdc_verify.core.entry import PRODUCTION, SISTER, entry_id_ms
from cdc_verify.pipeline.redis.connection import server_time_ms
from cdc_verify.pipeline.redis.stream_reads import as_text
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.schemas.verdicts import Side

WINDOW_S = 30.0
# Skews below this are noise (the RTT of a sample): verdicts are not shifted for them.
SIGNIFICANT_MS = 100
MAX_SAMPLE_RTT_MS = 100  # the most a kept sample can be off is half of this


class ClockSkew:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: dict[Side, deque[tuple[float, float]]] = {
            PRODUCTION: deque(), SISTER: deque()
        }  # fmt: skip

    def add(self, side: Side, offset_ms: float, at: float | None = None) -> None:
        """One sample of `side`'s clock minus ours, taken at monotonic time `at`."""
        now = time.monotonic() if at is None else at
        samples = self._samples[side]
        samples.append((now, offset_ms))
        while samples and samples[0][0] < now - self._window_s:
            samples.popleft()

    def offset_ms(self, side: Side) -> float | None:
        samples = self._samples[side]
        return max(offset for _, offset in samples) if samples else None

    @property
    def skew_ms(self) -> float:
        """Sister's clock minus production's (0 until both have been sampled)."""
        prod, sister = self.offset_ms(PRODUCTION), self.offset_ms(SISTER)
        return 0.0 if prod is None or sister is None else sister - prod

    def correction_ms(self) -> int:
        """What the core should shift sister times by: the skew, when it is significant."""
        skew = self.skew_ms
        return round(skew) if abs(skew) >= SIGNIFICANT_MS else 0

    async def sample(self, streams: StreamPair) -> None:
        """One sample per stream: its server's TIME and its newest entry id."""
        for side, reader in streams.readers.items():
            started, before = time.monotonic(), time.time() * 1000
            server_ms = await server_time_ms(reader.client, reader.key)
            newest = cast(list[tuple[bytes, object]], await reader.client.xrevrange(
                reader.key, "+", "-", count=1))  # fmt: skip
            after = time.time() * 1000
            took_ms = (time.monotonic() - started) * 1000
            if took_ms > MAX_SAMPLE_RTT_MS or abs((after - before) - took_ms) > SIGNIFICANT_MS:
                continue  # too slow to trust, or the wall clock stepped
            local_ms = (before + after) / 2  # the middle of the round trips
            offset = server_ms - local_ms
            if newest:
                offset = max(offset, entry_id_ms(as_text(newest[0][0])) - local_ms)
            self.add(side, offset)
