"""The demo's live table: progress while the run goes on, ok or ≠ once it is done."""

from __future__ import annotations

from rich.console import Console

from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.terminal import verdict_table


def rows(counts, expected, done) -> dict[str, str]:
    console = Console(record=True, width=120, color_system=None)
    console.print(verdict_table(counts, expected, done=done))
    out = {}
    for line in console.export_text().splitlines():
        cells = line.split()
        if cells and cells[0] in {v.value for v in Verdict}:
            out[cells[0]] = cells[-1]
    return out


def test_a_row_under_way_shows_how_far_it_has_come_and_only_a_surplus_is_wrong():
    expected = {Verdict.MATCH: 200, Verdict.MISMATCH: 10, Verdict.DUPLICATE: 4}
    counts = {Verdict.MATCH: 50, Verdict.MISMATCH: 10, Verdict.DUPLICATE: 5}
    running = rows(counts, expected, done=False)
    assert running["match"] == "25%" and running["mismatch"] == "ok"
    assert running["duplicate"] == "≠"  # more than injected: wrong already
    assert running["race"] == "ok"  # 0 of 0
    finished = rows(counts, expected, done=True)
    assert finished["match"] == "≠" and finished["mismatch"] == "ok"
