"""summary.md: totals and the largest mismatch groups, to paste into a pull request or chat.

Every id, path and error text in it is stream data, written escaped (cdc_verify.escaping):
a renderer, HTML on or not, shows it as text."""

from __future__ import annotations

from cdc_verify.escaping import markdown_code, markdown_text
from cdc_verify.pipeline.sinks.groups import Fingerprint, Group, describe
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import OUT_OF_SCOPE, PRIMARY_VERDICTS, TOMBSTONE, Verdict

_NOT_OTHER_VERDICTS = (Verdict.MATCH.value, OUT_OF_SCOPE, TOMBSTONE)

TOP_GROUPS = 10


def render_markdown(summary: Summary, groups: list[Group], title: str = "cdc-verify") -> str:
    events = summary.events
    matched = summary.verdicts.get(Verdict.MATCH, 0)
    rate = f"{100 * matched / events:.2f}%" if events else "n/a"
    lines = [
        f"### {title}: {events:,} events, {rate} match",
        "",
        "| verdict | records |",
        "| --- | ---: |",
    ]
    for verdict in Verdict:
        count = summary.verdicts.get(verdict, 0)
        if count or verdict in PRIMARY_VERDICTS:
            lines.append(f"| `{verdict.value}` | {count:,} |")
    if summary.out_of_scope:
        lines.append(f"| out of scope (no verdict) | {summary.out_of_scope:,} |")
    if summary.tombstones:
        lines.append(f"| tombstones (no change, no verdict) | {summary.tombstones:,} |")
    if summary.by_entity_op:
        lines += ["", "| entity/op | events | match | other verdicts | out of scope |",
                  "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for key, counts in sorted(summary.by_entity_op.items()):
            primary = sum(counts.get(v.value, 0) for v in PRIMARY_VERDICTS)
            match = counts.get(Verdict.MATCH.value, 0)
            others = sum(n for v, n in counts.items() if v not in _NOT_OTHER_VERDICTS)
            lines.append(f"| {markdown_text(key)} | {primary:,} | {match:,} | {others:,} "
                         f"| {counts.get(OUT_OF_SCOPE, 0):,} |")  # fmt: skip
    if summary.ignored:
        lines += ["", "| --ignore-path | differences suppressed |", "| --- | ---: |"]
        lines += [f"| {markdown_code(path)} | {n:,} |" for path, n in summary.ignored.items()]
    if summary.coverage is not None:
        c = summary.coverage
        ratio = "n/a" if c.ratio is None else f"{c.ratio:.1%}"
        lines += ["", f"**Coverage:** {c.shapes:,} shapes of production event, "
                  f"{c.verified:,} verified, {c.mismatched:,} mismatched, "
                  f"{c.never_verified:,} never verified ({ratio})"]  # fmt: skip
    if groups:
        lines += ["", f"**Top {min(len(groups), TOP_GROUPS)} of {len(groups)} groups**", ""]
        lines += [
            "| count | verdict | entity/op | what | example |",
            "| ---: | --- | --- | --- | --- |",
        ]
        for group in groups[:TOP_GROUPS]:
            group_verdict, _, _, _, entity, op = group.fingerprint
            lines.append(
                f"| {group.count:,} | `{group_verdict}` | {markdown_text(f'{entity}/{op}')} "
                f"| {_what(group.fingerprint)} | {markdown_code(group.examples[0], 100)} |"
            )
    return "\n".join(lines) + "\n"


MAX_DIFFERENCES = 5  # listed in a group's "what"; the rest are counted


def _what(fingerprint: Fingerprint) -> str:
    """A group's "what" as one table cell: its paths and error text are stream data,
    escaped (and cut) so that neither Markdown nor HTML in them is rendered."""
    differences = fingerprint.differences
    shown = fingerprint._replace(differences=differences[:MAX_DIFFERENCES])
    what = describe(
        shown, lambda path: markdown_code(path, 80), lambda text: markdown_text(text, 200)
    )
    more = len(differences) - MAX_DIFFERENCES
    return what + (f"; and {more} more" if more > 0 else "")
