"""What people read in the terminal: summaries and alert tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdc_verify.escaping import terminal_text
from cdc_verify.pipeline.reports.files import REPORT_FILES
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import Verdict


def verdict_table(
    counts: dict[Verdict, int], expected: dict[Verdict, int] | None = None, done: bool = True
) -> Table:
    """Records per verdict; against `expected`, ok or ≠ per row, or while the run is not
    `done` how far each row has come (only a count past what was injected is ≠ then)."""
    table = Table(show_edge=False)
    table.add_column("verdict")
    table.add_column("records", justify="right")
    if expected is not None:
        table.add_column("injected", justify="right")
        table.add_column("", justify="right")
    for verdict in Verdict:
        have = counts.get(verdict, 0)
        row = [verdict.value, f"{have:,}"]
        if expected is not None:
            want = expected.get(verdict, 0)
            if have == want:
                mark = "[green]ok[/]"
            elif done or have > want:
                mark = "[red]≠[/]"
            else:
                mark = f"[dim]{have / want:.0%}[/]"
            row += [f"{want:,}", mark]
        table.add_row(*row)
    return table


def print_summary(summary: Summary, out_dir: Path, grace: float) -> None:
    """The verdict table, the grace window the verdicts depend on, and every file written."""
    Console().print(verdict_table(summary.verdicts))
    if summary.out_of_scope:
        print(f"{summary.out_of_scope:,} out of scope: production events outside --scope "
              "whose twin never came (no verdict)")  # fmt: skip
    for pattern, count in summary.ignored.items():
        print(f"--ignore-path {pattern} suppressed {count:,} differences")
    print(f"{summary.events:,} events, grace window {grace:g} s; wrote:")
    for name in REPORT_FILES:
        path = out_dir / name
        if path.is_file():  # plain print: a long path must stay whole, not wrap
            print(f"  {path} ({path.stat().st_size:,} bytes)")


def print_alerts(
    alerts: list[dict], as_json: bool, state: str = "open", more: bool = False
) -> None:
    if as_json:
        print(json.dumps(alerts, indent=2))
        return
    # Piped output must keep whole event ids (grep, cut): no terminal width to fit then.
    console = Console(width=None if sys.stdout.isatty() else 250)
    if not alerts:
        console.print(f"no {state} missing-event alerts")
        return
    resolved = state == "resolved"
    table = Table(show_edge=False)
    columns = ["opened_at", "verdict", "event_id", "entity_id", "entry_id"]
    if resolved:
        columns += ["resolved_at", "late by", "late pair"]
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap, never elide, an id
    for a in alerts:
        row = [a["opened_at"], a["verdict"], a["event_id"], a.get("entity_id", ""),
               a.get("entry_id", "")]  # fmt: skip
        if resolved:
            late = a.get("late_comparison") or {}
            row += [
                a.get("resolved_at", ""),
                f"{a.get('late_by_ms', 0) / 1000:.1f}s",
                late.get("verdict", "not compared (twin trimmed)"),
            ]
        table.add_row(*map(terminal_text, row))  # stream data: no markup, controls visible
    console.print(table)
    tail = " (more match: raise --limit or narrow --since)" if more else ""
    console.print(f"{len(alerts)} {state} alerts{tail}")
