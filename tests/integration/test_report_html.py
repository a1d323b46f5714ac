"""report.html as a reader sees it: rendered by headless Chromium (Debian's chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cdc_verify import __version__
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.coverage import combination_gaps
from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.backfill import run_backfill
from cdc_verify.pipeline.runners.bounded import verify_to_reports
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import PROD, SIS, settings

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    corpus = generate(3000, seed=71, grace_ms=1000)
    out = tmp_path_factory.mktemp("report")

    def entries(side: Side) -> list[StreamEntry]:
        ids = corpus.entry_ids(side, 1_790_000_000_000)
        return [StreamEntry(side, i, e.fields) for e, i in zip(corpus.side(side), ids, strict=True)]

    verifier = Verifier(decode_event, VerifierConfig(grace_ms=1000, shapes=True))
    verify_to_reports(verifier, entries(Side.PRODUCTION), entries(Side.SISTER), out)
    return out, json.loads((out / "summary.json").read_text())


def rendered_dom(page: Path, tmp_path: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (scripts/setup installs it)"
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Text(HTMLParser):
    """Visible text by element id and by class, as a reader would see it."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.highlighted: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._stack.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if "diff" in self._stack:
            self.highlighted.append(data)


def test_the_report_shows_totals_chart_groups_and_highlighted_examples(report, tmp_path):
    out, summary = report
    html = (out / "report.html").read_text()
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html

    dom = rendered_dom(out / "report.html", tmp_path)
    text = Text()
    text.feed(dom)
    visible = re.sub(r"\s+", " ", "".join(text.text))
    events = summary["events"]
    assert f"{events:,} events" in visible
    for verdict, count in summary["verdicts"].items():
        assert re.search(rf"\b{verdict} ?{count:,}(?![\d,])", visible), verdict
    assert dom.count("<rect") >= 8  # the chart: bars per verdict over event time
    # Its axes: records (0 to the highest bar) and times of day, with scale and time zone.
    assert dom.count('class="y-tick"') == 3 and dom.count('class="x-tick"') >= 2
    caption = re.search(r"Records per ([\d.]+) s of event time \(entry ids\), from "
                        r"(\S+ \S+) to (\S+ \S+) UTC; the highest bar has ([\d,]+) records",
                        visible)  # fmt: skip
    assert caption, visible[:500]
    assert re.search(rf">{caption[4]}</text>", dom)  # the top of the y axis is that bar
    groups = json.loads((out / "groups.json").read_text())
    assert dom.count("<tr>") >= len(groups) + 9  # the totals table and one row per group
    # The side-by-side example of the int-for-float group highlights created_utc, both sides.
    assert sum("created_utc" in h for h in text.highlighted) >= 2
    assert any("/awards/*/count" in t for t in text.text)
    # Every side-by-side example is valid JSON as shown (a reader copies it), and every
    # group's example can be opened.
    examples = re.findall(r"<pre>(.*?)</pre>", dom, re.DOTALL)
    assert len(examples) > 20  # decoded sides (an undecodable side shows its error)
    for shown in examples:
        parsed = json.loads(unescape(re.sub(r"<[^>]+>", "", shown)))
        assert isinstance(parsed, dict) and parsed
    assert dom.count("<details") == min(len(groups), 50)
    # Coverage: the figures of summary.json, and the parts to look at first.
    c = summary["coverage"]
    assert (
        f"{c['shapes']:,} shapes of production event: {c['verified']:,} verified, "
        f"{c['mismatched']:,} mismatched, {c['never_verified']:,} never verified "
        f"(coverage {c['ratio']:.1%})"
    ) in visible
    parts = json.loads((out / "coverage.json").read_text())["parts"]
    mismatched = [p for p in parts if p["status"] == "mismatched"]
    most = max(mismatched, key=lambda p: p["mismatch"] / p["production"])
    assert most["part"] in visible
    # The combinations to test next: how many, and the first of them, pair by pair.
    gaps = combination_gaps(json.loads((out / "coverage.json").read_text())["pairs"])
    assert gaps and f"{len(gaps):,} combinations of two parts never matched together" in visible
    first = gaps[0]["parts"]
    assert f"{first[0]} with {first[1]}" in visible


def test_the_report_says_where_it_came_from_and_what_every_group_is(
    redis_url, redis_client, tmp_path
):
    corpus = generate(600, seed=5, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    out = tmp_path / "out"
    run_backfill(settings(redis_url, scope="sample:50", ignore_paths=["/edited"]), decode_event,
                 out)  # fmt: skip
    text = Text()
    text.feed(rendered_dom(out / "report.html", tmp_path))
    visible = re.sub(r"\s+", " ", "".join(text.text))
    last = {key: redis_client.xrevrange(key, count=1)[0][0].decode() for key in (PROD, SIS)}
    for role, key in (("production", PROD), ("sister", SIS)):
        assert f"{role}{key} on {redis_url}, up to {last[key]}" in visible
    for shown in ("grace1 s", "scopesample:50 (by entity_id)", "ignored paths/edited",
                  f"toolcdc-verify {__version__}", "generated at", "event time"):  # fmt: skip
        assert shown in visible, shown
    assert "consumerscdc_verify.consumers.reference:decode_event" in visible
    # Every group says what it is: gaps have no differences and no error.
    groups = json.loads((out / "groups.json").read_text())
    verdicts = {g["verdict"] for g in groups}
    assert {"missing_in_sister", "missing_in_production", "duplicate"} <= verdicts
    assert "only on the sister: no production event within the grace window" in visible
    assert "only on production: no sister event within the grace window" in visible
    assert "another copy of an event on" in visible
