"""What `gate` prints: a table a person reads, or the JSON object a pipeline parses."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cdc_verify.escaping import terminal_text
from cdc_verify.gate.criteria import Answer, GateDecision, Result, percent
from cdc_verify.schemas.verdicts import COUNTED_NAMES

STYLE = {
    GateDecision.GO: "bold green",
    GateDecision.NO_GO: "bold red",
    GateDecision.CANNOT_DECIDE: "bold yellow",
}


def print_json(answer: Answer) -> None:
    print(json.dumps(answer.as_json(), indent=2))


def where(answer: Answer) -> str:
    s = answer.source
    if s["kind"] == "report":
        return f"report {s['dir']}"
    window = f"{s['since']} to {s['until']}"
    return f"state server {s['server']}, group {s['group']}, counters from {window}"


def _shown(result: Result) -> tuple[str, str]:
    """(measured, threshold) as a person reads them."""
    if result.name == "max_mismatch_rate":
        return percent(result.measured), f"≤ {percent(result.threshold)}"
    if result.name == "min_coverage":
        return percent(result.measured), f"≥ {percent(result.threshold)}"
    measured = "n/a" if result.measured is None else f"{result.measured:,}"
    bound = "≥" if result.name == "min_events" else "≤"
    return measured, f"{bound} {result.threshold:,}"


def print_table(answer: Answer) -> None:
    # Piped output keeps whole lines (a CI log): no terminal width to fit then.
    console = Console(width=None if sys.stdout.isatty() else 250, highlight=False)
    # The group, server and reason are the operator's and the state server's words.
    console.print(terminal_text(f"gate on {where(answer)}; {answer.scope.describe()}"))
    table = Table(show_edge=False)
    for column, justify in (("criterion", "left"), ("measured", "right"),
                            ("threshold", "right"), ("result", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in answer.criteria:
        measured, threshold = _shown(result)
        passed = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "n/a"}[result.passed]
        table.add_row(result.flag, measured, threshold, passed)
    console.print(table)
    if answer.counts is not None:
        counts = ", ".join(
            f"{name} {answer.counts[name]:,}" for name in COUNTED_NAMES if answer.counts.get(name)
        )
        console.print(f"{answer.events:,} events; {counts or 'nothing counted'}", markup=False)
    label = (answer.decision.label, STYLE[answer.decision])
    console.print(Text.assemble(label, ": ", terminal_text(answer.reason)))
