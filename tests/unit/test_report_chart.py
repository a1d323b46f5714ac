"""report.html's chart: bars as wide as their bucket, wherever the records are in time."""

from __future__ import annotations

import re
from itertools import pairwise

from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.outcome import Outcome, OutcomeKind, VerdictRecord
from cdc_verify.pipeline.sinks.html import _chart
from cdc_verify.pipeline.sinks.timeline import VerdictTimeline
from cdc_verify.schemas.verdicts import Side, Verdict

BASE_MS = 1_790_000_000_000


def _timeline(seconds: list[int]) -> VerdictTimeline:
    timeline = VerdictTimeline()
    for n, second in enumerate(seconds):
        entry = StreamEntry(Side.PRODUCTION, f"{BASE_MS + second * 1000}-{n}",
                            {b"event_id": f"e{n}".encode()})  # fmt: skip
        record = VerdictRecord(f"e{n}", Verdict.MATCH, None, None)
        timeline.add([Outcome(OutcomeKind.PRIMARY, record, (entry,))])
    return timeline


def _bars(html: str) -> list[tuple[float, float]]:
    """(x, width) of each bar, left to right."""
    found = re.findall(r"<rect x='([\d.]+)' y='[\d.]+' width='([\d.]+)'", html)
    return sorted((float(x), float(w)) for x, w in found)


def test_a_gap_in_time_leaves_a_gap_in_the_chart_not_wider_overlapping_bars():
    # One record, nothing for 24 s, then one a second: 1 s buckets (31 s < 120 buckets).
    html = _chart(_timeline([0, 25, 26, 27, 28, 29, 30]))
    assert "Records per 1 s of event time" in html
    bars = _bars(html)
    assert len(bars) == 7
    for (x, width), (next_x, _) in pairwise(bars):
        assert x + width <= next_x, bars  # no bar over the next
    slot = (bars[-1][0] - bars[0][0]) / 30  # the chart spans 31 one-second slots
    assert abs(bars[1][0] - bars[0][0] - 25 * slot) < 0.5, bars  # 25 s apart, to scale
    assert abs(bars[2][0] - bars[1][0] - slot) < 0.5, bars  # 25 and 26: next to each other
    assert all(abs(width - (slot - 1)) < 0.2 for _, width in bars), bars


def test_buckets_of_several_seconds_are_named_and_drawn_by_their_size():
    # 600 s of data: 5 s buckets; records in the first and in the last few only.
    html = _chart(_timeline([0, 3, 590, 595, 599]))
    assert "Records per 5 s of event time" in html
    bars = _bars(html)
    assert len(bars) == 3  # 0-4, 590-594, 595-599
    slot = (bars[2][0] - bars[0][0]) / 119  # 120 five-second slots
    assert abs(bars[1][0] - bars[0][0] - 118 * slot) < 0.5, bars
    assert all(abs(width - (slot - 1)) < 0.2 for _, width in bars), bars
