"""report.html: one self-contained page (no scripts, no fetches) a person reads first.

Totals, shape coverage, a chart of verdicts over event time, the mismatch groups, and
for each group one example's decoded production and sister events side by side with
the differing paths highlighted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cdc_verify import __version__
from cdc_verify.core.coverage import (
    COUNT_COLUMNS,
    CoverageReport,
    combination_gaps,
    parts_to_verify,
)
from cdc_verify.core.decoder import LegacyDecoder
from cdc_verify.core.diff import escape_token
from cdc_verify.core.entry import PRODUCTION
from cdc_verify.core.jsonvalue import to_json_value
from cdc_verify.escaping import html_text as escape  # stream data: controls shown, HTML escaped
from cdc_verify.pipeline.sinks.groups import Group, describe
from cdc_verify.pipeline.sinks.timeline import VerdictTimeline
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import OUT_OF_SCOPE, STREAM_SIDES, TOMBSTONE, Verdict

COLORS = {
    Verdict.MATCH: "#4caf50", Verdict.MISMATCH: "#f44336", Verdict.RACE: "#ff9800",
    Verdict.UNDECODABLE: "#9c27b0", Verdict.MISSING_IN_SISTER: "#2196f3",
    Verdict.MISSING_IN_PRODUCTION: "#00bcd4", Verdict.DUPLICATE: "#795548",
    Verdict.MALFORMED: "#607d8b",
}  # fmt: skip
MAX_GROUPS = 50

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f5f5f5;text-align:left}td.n{text-align:right}
.sides{display:flex;gap:1em}.sides>div{flex:1;min-width:0}
pre{background:#fafafa;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}
.diff{background:#ffe0e0;font-weight:bold}.swatch{display:inline-block;width:10px;height:10px}
details{margin:.5em 0}summary{cursor:pointer}
"""


def render_html(
    summary: Summary,
    groups: list[Group],
    timeline: VerdictTimeline,
    decoder: LegacyDecoder,
    title: str = "cdc-verify report",
    coverage: CoverageReport | None = None,
    provenance: Provenance = (),
) -> str:
    """`coverage`: the shapes, parts and pairs, when the run counted shapes; `provenance`:
    (name, value) rows saying where the input came from and how it was verified."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _provenance(provenance, timeline),
        _totals(summary),
        _by_entity_op(summary),
        _ignored(summary),
        _coverage(summary, coverage),
        "<h2>Verdicts over event time</h2>",
        _chart(timeline),
        f"<h2 id='groups'>Mismatch groups ({len(groups)})</h2>",
        _groups_table(groups),
    ]
    for number, group in enumerate(groups[:MAX_GROUPS], 1):
        parts.append(_group_detail(number, group, decoder))
    parts.append("</body></html>")
    return "".join(parts)


# (name, value) rows: the servers (passwords redacted) or files, the streams, the settings.
Provenance = Sequence[tuple[str, str]]


def _provenance(rows: Provenance, timeline: VerdictTimeline) -> str:
    """Where the report came from: what a reader needs to trust it, or to run it again."""
    span = timeline.span_ms()
    seen = [("event time", f"{_iso(span[0])} to {_iso(span[1])} (entry ids)")] if span else []
    made = [
        ("tool", f"cdc-verify {__version__}"),
        ("generated at", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    cells = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>"
        for name, value in (*rows, *seen, *made)
    )
    return f"<table id='provenance'>{cells}</table>"


def _totals(summary: Summary) -> str:
    events = summary.events
    matched = summary.verdicts.get(Verdict.MATCH, 0)
    rate = f"{100 * matched / events:.2f}%" if events else "n/a"
    rows = "".join(
        f"<tr><td><span class='swatch' style='background:{COLORS[v]}'></span> {v.value}</td>"
        f"<td class='n'>{summary.verdicts.get(v, 0):,}</td></tr>"
        for v in Verdict
    )
    scope = (
        f"<p id='out-of-scope'><b>{summary.out_of_scope:,}</b> production events outside "
        "--scope had no twin: no verdict</p>"
        if summary.out_of_scope
        else ""
    )
    tombstones = (
        f"<p id='tombstones'><b>{summary.tombstones:,}</b> tombstones (no change): no verdict</p>"
        if summary.tombstones
        else ""
    )
    return (
        f"<p id='headline'><b>{events:,}</b> events, <b>{rate}</b> match</p>"
        f"<table id='totals'><tr><th>verdict</th><th>records</th></tr>{rows}</table>{scope}"
        f"{tombstones}"
    )


def _by_entity_op(summary: Summary) -> str:
    """One row per write endpoint (entity/op), one column per verdict seen."""
    if not summary.by_entity_op:
        return ""
    seen = {name for counts in summary.by_entity_op.values() for name in counts}
    columns: list[str] = [v.value for v in Verdict if v.value in seen]
    columns += [name for name in (OUT_OF_SCOPE, TOMBSTONE) if name in seen]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{escape(key)}</td>"
        + "".join(f"<td class='n'>{counts.get(c, 0):,}</td>" for c in columns)
        + "</tr>"
        for key, counts in sorted(summary.by_entity_op.items())
    )
    return (
        "<h2>By entity and op</h2>"
        f"<table id='by-entity-op'><tr><th>entity/op</th>{head}</tr>{rows}</table>"
    )


def _ignored(summary: Summary) -> str:
    """What each --ignore-path hid: a normalisation must not hide a class of bugs unseen."""
    if not summary.ignored:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(path)}</code></td><td class='n'>{count:,}</td></tr>"
        for path, count in summary.ignored.items()
    )
    return (
        "<h2>Ignored paths</h2><table id='ignored'><tr><th>--ignore-path</th>"
        f"<th>differences suppressed</th></tr>{rows}</table>"
    )


MAX_COVERAGE_PARTS = 50
MAX_COVERAGE_PAIRS = 20


def _coverage(summary: Summary, coverage: CoverageReport | None) -> str:
    """How many shapes were verified, the parts to look at first, and the combinations
    never verified though each part was (docs/coverage.md)."""
    c = summary.coverage
    if c is None or coverage is None:
        return ""
    ratio = "n/a" if c.ratio is None else f"{c.ratio:.1%}"
    headline = (
        f"<p id='coverage-headline'><b>{c.shapes:,}</b> shapes of production event: "
        f"<b>{c.verified:,}</b> verified, <b>{c.mismatched:,}</b> mismatched, "
        f"<b>{c.never_verified:,}</b> never verified (coverage <b>{ratio}</b>)</p>"
    )
    worst = parts_to_verify(coverage.parts)[:MAX_COVERAGE_PARTS]
    table = (
        _counts_table(
            "coverage-parts", "part", [(p, f"<code>{escape(p['part'])}</code>") for p in worst]
        )
        if worst
        else "<p>Every part of every shape was verified.</p>"
    )
    gaps = combination_gaps(coverage.pairs)
    shown = [
        (p, f"<code>{escape(p['parts'][0])}</code> with <code>{escape(p['parts'][1])}</code>")
        for p in gaps[:MAX_COVERAGE_PAIRS]
    ]
    combinations = (
        f"<p id='coverage-gaps'>{len(gaps):,} combinations of two parts never matched "
        "together, although each part matched in other shapes; the first of them:</p>"
        + _counts_table("coverage-pairs", "parts", shown)
        if gaps
        else "<p id='coverage-gaps'>Every combination of two parts that matched on their own "
        "matched together too.</p>"
    )
    return (
        "<h2 id='coverage'>Coverage</h2>" + headline
        + "<p>Parts never verified first, then those most often in a mismatch; "
        "<code>coverage.json</code> and <code>cdc-verify coverage</code> list them all.</p>"
        + table + combinations
    )  # fmt: skip


def _counts_table(table_id: str, what: str, rows: list[tuple[dict[str, Any], str]]) -> str:
    """Rows of parts or pairs (each with its cell of HTML) with their status and counts."""
    body = "".join(
        f"<tr><td>{escape(row['entity'])}</td><td>{cell}</td><td>{row['status']}</td>"
        + "".join(f"<td class='n'>{int(row[k]):,}</td>" for k in COUNT_COLUMNS)
        + "</tr>"
        for row, cell in rows
    )
    head = "".join(f"<th>{k}</th>" for k in ("entity", what, "status", *COUNT_COLUMNS))
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


CHART_LEFT, CHART_BOTTOM = 70, 34  # room for the axes' labels


def _chart(timeline: VerdictTimeline, width: int = 900, height: int = 200) -> str:
    """Stacked bars of records per verdict over event time, with both axes labelled."""
    step_ms, buckets = timeline.buckets()
    if not buckets:
        return "<p>No verdicts.</p>"
    peak = max(sum(c.values()) for _, c in buckets) or 1
    # Bars sit at their bucket's place in time: a bucket with no records leaves a gap.
    slots = (buckets[-1][0] - buckets[0][0]) // step_ms + 1
    bar = (width - CHART_LEFT) / slots
    rects = []
    for start_ms, counts in buckets:
        x = CHART_LEFT + (start_ms - buckets[0][0]) // step_ms * bar
        y = float(height)
        for verdict in Verdict:
            n = counts.get(verdict, 0)
            if not n:
                continue
            h = n / peak * height
            y -= h
            tip = f"{_iso(start_ms)} UTC {verdict.value}: {n:,}"
            rects.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(bar - 1, 1):.1f}' "
                f"height='{h:.1f}' fill='{COLORS[verdict]}'><title>{tip}</title></rect>"
            )
    axes = [
        f"<line x1='{CHART_LEFT - 4}' y1='{height}' x2='{width}' y2='{height}' stroke='#888'/>",
        f"<line x1='{CHART_LEFT - 4}' y1='0' x2='{CHART_LEFT - 4}' y2='{height}' stroke='#888'/>",
    ]
    for fraction in (0.0, 0.5, 1.0):  # records per bar
        y = height - fraction * height
        axes.append(
            f"<text class='y-tick' x='{CHART_LEFT - 8}' y='{min(max(y, 10), height):.0f}' "
            f"text-anchor='end' font-size='11'>{round(fraction * peak):,}</text>"
        )
    ticks = min(6, slots)
    for k in range(ticks):  # times of day, UTC, under evenly spaced bars
        slot = round(k * (slots - 1) / max(ticks - 1, 1))
        x = CHART_LEFT + slot * bar
        label = datetime.fromtimestamp((buckets[0][0] + slot * step_ms) / 1000, UTC)
        axes.append(
            f"<text class='x-tick' x='{x:.0f}' y='{height + 16}' font-size='11'>"
            f"{label:%H:%M:%S}</text>"
        )
    legend = " ".join(
        f"<span class='swatch' style='background:{COLORS[v]}'></span> {v.value}" for v in Verdict
    )
    first, last = _iso(buckets[0][0]), _iso(buckets[-1][0] + step_ms)
    return (
        f"<svg id='chart' width='{width}' height='{height + CHART_BOTTOM}' role='img' "
        f"aria-label='verdicts over event time'>{''.join(axes)}{''.join(rects)}</svg>"
        f"<p id='chart-caption'>Records per {step_ms / 1000:g} s of event time (entry ids), "
        f"from {first} to {last} UTC; the highest bar has {peak:,} records.</p>"
        f"<p>{legend}</p>"
    )


def _describe(group: Group) -> str:
    return describe(group.fingerprint)


def _groups_table(groups: list[Group]) -> str:
    if not groups:
        return "<p>No mismatches: every event matched.</p>"
    rows = "".join(
        f"<tr><td class='n'>{g.count:,}</td><td>{escape(g.fingerprint.verdict)}</td>"
        f"<td>{escape(g.fingerprint.entity)}/{escape(g.fingerprint.op)}</td>"
        f"<td>{escape(_describe(g))}</td><td>{escape(_iso(g.first_seen_ms))}</td>"
        f"<td>{escape(_iso(g.last_seen_ms))}</td>"
        f"<td><a href='#g{n}'>{escape(g.examples[0])}</a></td></tr>"
        for n, g in enumerate(groups[:MAX_GROUPS], 1)
    )
    more = f"<p>… and {len(groups) - MAX_GROUPS} smaller groups (see groups.json).</p>"
    return (
        "<table id='group-table'><tr><th>count</th><th>verdict</th><th>entity/op</th>"
        "<th>what</th>"
        f"<th>first seen</th><th>last seen</th><th>example</th></tr>{rows}</table>"
        + (more if len(groups) > MAX_GROUPS else "")
    )


def _group_detail(number: int, group: Group, decoder: LegacyDecoder) -> str:
    paths = {path for path, *_ in group.fingerprint.differences}
    sides = []
    reference: Any = None  # the sister is shown in production's key order, line by line
    for side in STREAM_SIDES:
        entry = next((e for e in group.example_entries if e.side is side), None)
        if entry is None:
            body = "<p><i>no event on this side</i></p>"
        else:
            value, error = decoder.decode(entry.fields)
            value = to_json_value(value)  # what the record shows: bounded depth, JSON types
            value = _ordered_like(value, reference) if reference is not None else value
            if side is PRODUCTION and error is None:
                reference = value
            body = (
                f"<p class='error'>{escape(error)}</p>"
                if error
                else f"<pre>{_json_lines(value, paths)}</pre>"
            )
            body = f"<p>entry {escape(entry.entry_id)}</p>{body}"
        sides.append(f"<div class='side {side.value}'><h4>{side.value}</h4>{body}</div>")
    return (
        f"<details id='g{number}'{' open' if number <= 3 else ''}><summary>"
        f"<b>{group.count:,}</b> &times; {escape(group.fingerprint.verdict)} "
        f"({escape(group.fingerprint.entity)}/{escape(group.fingerprint.op)}): "
        f"{escape(_describe(group))} (example {escape(group.examples[0])})</summary>"
        f"<div class='sides'>{''.join(sides)}</div></details>"
    )


def _ordered_like(value: Any, reference: Any) -> Any:
    """`value` with its mapping keys in `reference`'s order (extra keys last)."""
    if isinstance(value, dict) and isinstance(reference, dict):
        keys = [k for k in reference if k in value] + [k for k in value if k not in reference]
        return {k: _ordered_like(value[k], reference.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(reference, list):
        return [_ordered_like(v, reference[i] if i < len(reference) else None)
                for i, v in enumerate(value)]  # fmt: skip
    return value


def _json_lines(value: Any, paths: set[str]) -> str:
    """Pretty JSON of a decoded event, valid as it stands (a reader copies it); lines at
    a differing path (list index as *) marked."""
    lines: list[str] = []
    _emit(value, "", "", 0, lines, paths, _star, "")
    return "\n".join(lines)


def _star(path: str) -> str:
    return "/".join("*" if token.isdigit() else token for token in path.split("/"))


def _emit(value: Any, path: str, label: str, depth: int, lines: list[str], paths: set[str],
          norm: Callable[[str], str], comma: str) -> None:  # fmt: skip
    """Appends `value`'s lines; `comma` ends its last line unless it is the last item."""
    pad = "  " * depth
    hit = norm(path) in paths and path != ""
    mark = (lambda s: f"<span class='diff'>{s}</span>") if hit else (lambda s: s)
    if isinstance(value, dict) and value:
        lines.append(mark(f"{pad}{label}{{"))
        last = len(value) - 1
        for i, (key, item) in enumerate(value.items()):
            _emit(item, f"{path}/{escape_token(key)}", f"{escape(json.dumps(str(key)))}: ",
                  depth + 1, lines, paths, norm, "" if i == last else ",")  # fmt: skip
        lines.append(f"{pad}}}{comma}")
    elif isinstance(value, list) and value:
        lines.append(mark(f"{pad}{label}["))
        last = len(value) - 1
        for i, item in enumerate(value):
            _emit(item, f"{path}/{i}", "", depth + 1, lines, paths, norm,
                  "" if i == last else ",")  # fmt: skip
        lines.append(f"{pad}]{comma}")
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr)
        lines.append(mark(f"{pad}{label}{escape(text)}{comma}"))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
