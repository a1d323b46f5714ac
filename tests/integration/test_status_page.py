"""The status page at / as an operator sees it: a live worker, rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import redis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import PROD, SIS, ServedWorker, primary_count, settings, wait_for
from .test_report_html import CHROMIUM_FLAGS

TOKEN = "page-token"


def render(url: str, tmp_path: Path) -> str:
    """The DOM after ~7 s of (virtual) time: the page has fetched and refreshed by then."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (scripts/setup installs it)"
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=7000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def percent(fraction: float) -> str:
    """The page's percentages: one decimal; never 100.0 for less than all, nor 0.0 for
    more than none (two significant digits under 0.1 %)."""
    p = fraction * 100
    if p in (0, 100):
        return f"{p:g}%"
    if p < 0.1:
        return f"{float(f'{p:.2g}'):g}%"
    return f"{min(round(p * 10), 999) / 10:.1f}%"


class Page(HTMLParser):
    """Text by element id, table rows by table id, and the body's data attributes."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.hidden: set[str] = set()
        self.body: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str]] = {}  # by element id
        self._open: list[tuple[str, str | None]] = []  # (tag, id)
        self._table: str | None = None
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        if tag == "table":
            self._table = a.get("id")
        if tag == "tr" and self._table and a:
            self.rows.setdefault(self._table, []).append({k: v or "" for k, v in a.items()})
        if a.get("id"):
            self.attrs[a["id"] or ""] = {k: v or "" for k, v in a.items()}
        if "hidden" in a and a.get("id"):
            self.hidden.add(a["id"] or "")
        self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] = self.text.get(element_id, "") + data


def test_status_page_shows_totals_alerts_and_groups_and_refreshes_itself(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        corpus = generate(1500, seed=23, grace_ms=500)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        with ServedWorker(settings(server.url, grace=0.5, http_token=TOKEN)) as served:
            wait_for(lambda: primary_count(client) >= len(corpus.expected), what="all verdicts")
            status = httpx.get(
                f"{served.url}/api/status", headers={"Authorization": f"Bearer {TOKEN}"}
            ).json()
            dom = render(f"{served.url}/#token={TOKEN}", tmp_path)
            page = Page(dom)
            example = status["top_groups"][0]["examples"][0]
            event = httpx.get(f"{served.url}/api/events/{example}",
                              headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            without_token = Page(render(f"{served.url}/", tmp_path))
        client.close()

    assert "error" in page.hidden, page.text.get("error")
    assert int(page.body["data-refreshes"]) >= 2  # it refreshed by itself
    assert page.text["ready"] == "verifying"
    assert page.text["worker"] == "test-worker"
    want = corpus.expected_counts()
    open_gaps = sum(
        1 for e in corpus.expected.values() if e.verdict.value.startswith("missing") and not e.late
    )
    assert status["open_alerts"] == open_gaps > 0
    assert page.text["open-alerts"] == f"{open_gaps:,}"
    shown = {row["data-verdict"] for row in page.rows["totals"] if "data-verdict" in row}
    assert shown == {v.value for v, n in want.items() if n}
    totals_text = page.text["totals"]
    assert f"{want[next(v for v in want if v.value == 'match')]:,}" in totals_text
    alert_rows = [r["data-event-id"] for r in page.rows["alerts"] if "data-event-id" in r]
    assert alert_rows == [a["event_id"] for a in status["recent_open_alerts"]]
    assert len(alert_rows) == min(10, open_gaps)
    group_rows = [r["data-verdict"] for r in page.rows["groups"] if "data-verdict" in r]
    assert group_rows == [g["verdict"] for g in status["top_groups"]] and group_rows
    # Each group's entity/op is on its row: one bug on two endpoints is two rows.
    endpoints = [r["data-entity-op"] for r in page.rows["groups"] if "data-verdict" in r]
    assert endpoints == [f"{g['entity']}/{g['op']}" for g in status["top_groups"]]
    assert {"comment/update", "comment/create"} & set(endpoints)
    # One bar per minute of the last ten.
    assert len(status["rate"]) == int(page.attrs["rate"]["data-points"]) == 10
    # The banner: the worker's criteria over the durable counters.
    assert page.attrs["gate"]["data-decision"] == status["gate"]["decision"] == "no_go"
    assert page.text["gate-decision"] == "NO-GO"
    assert page.text["gate-reason"] == status["gate"]["reason"]
    criteria = [r["data-criterion"] for r in page.rows["gate-criteria"] if "data-criterion" in r]
    assert criteria == ["max_mismatch_rate", "max_undecodable", "max_gaps", "min_events"]
    # The table by entity and op, one row per endpoint the counters hold.
    rows = [r["data-entity-op"] for r in page.rows["by-entity-op"] if "data-entity-op" in r]
    assert rows == list(status["by_entity_op"]) and "comment/update" in rows
    assert page.text["out-of-scope"] == "0"
    assert page.text["late"] == f"{status['late_arrivals']:,}" != "0"
    assert f"from {status['counts_window']['since']}" in page.text["counts-window"]
    # Events and match %, pending joins, alerts by the side they are missing on.
    assert page.text["events"] == f"{status['events']:,}"
    share = status["totals"].get("match", 0) / status["events"]
    assert page.text["match-rate"] == percent(share) and "." in page.text["match-rate"]
    assert len(page.text["match-rate"].partition(".")[2]) == 2  # "82.8%": one decimal
    assert page.text["pending"] == ", ".join(
        f"{side} {n:,}" for side, n in status["pending_joins"].items()
    )
    sides = [r["data-side"] for r in page.rows["alerts"] if "data-side" in r]
    assert sides == [a["verdict"].removeprefix("missing_in_") for a in status["recent_open_alerts"]]
    assert page.text["alerts-by-side"] == (
        f"of the {len(sides)} newest: {sides.count('sister')} missing on the sister, "
        f"{sides.count('production')} missing on production"
    )
    # Every event id links to its record (the page fetches it with the token on a click).
    links = re.findall(r'<a href="api/events/([^"]+)" class="event-link">', dom)
    assert links == alert_rows + [g["examples"][0] for g in status["top_groups"] if g["examples"]]
    assert event.status_code == 200 and event.json()["event_id"] == example
    # The rate chart's axes: verdicts per minute and minutes of UTC.
    assert dom.count('class="y-tick"') == 2 and dom.count('class="x-tick"') >= 4
    assert "UTC; the highest bar has" in page.text["rate-caption"]
    # Shape coverage: the card, the headline and the parts to look at first.
    c = status["coverage"]
    assert c["shapes"] == c["verified"] + c["mismatched"] + c["never_verified"] > 10
    assert page.text["coverage"] == percent(c["ratio"])
    assert page.text["coverage-headline"].startswith(
        f"{c['shapes']:,} shapes of production event: {c['verified']:,} verified, "
        f"{c['mismatched']:,} mismatched, {c['never_verified']:,} never verified"
    )
    statuses = [r["data-status"] for r in page.rows["parts-to-verify"] if "data-status" in r]
    assert statuses == [p["status"] for p in status["parts_to_verify"]] and statuses
    assert "verified" not in statuses and statuses == sorted(statuses, reverse=True)
    # Without the token the page says why it shows nothing.
    assert "error" not in without_token.hidden
    assert "401" in without_token.text["error"]


def hincrby(client: redis.Redis, minute: int, counts: dict[str, int]) -> None:
    """Counters as the worker's commit writes them (another worker's, earlier)."""
    keys = WorkerKeys.from_settings(Settings())
    for field, n in counts.items():
        client.hincrby(f"{keys.counts_prefix}{minute}", field, n)


def test_the_banner_and_the_table_come_from_the_durable_counters(tmp_path):
    """GO on clean traffic; after a restart, the same counts, judged again (CANNOT DECIDE
    on stricter criteria): nothing of it lived in the first worker's memory."""
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        corpus = generate(1200, seed=24, grace_ms=500, mix={"clean": 1.0}, malformed=0)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        earlier = int(time.time() * 1000) // 60_000 - 20
        hincrby(client, earlier, {"match|account|create": 40, "out_of_scope|account|create": 7})
        cfg = settings(server.url, grace=0.5, gate_since=3600, gate_min_events=1000)
        with ServedWorker(cfg) as served:
            wait_for(lambda: primary_count(client) >= len(corpus.expected), what="all verdicts")
            first = httpx.get(f"{served.url}/api/status").json()
            go = Page(render(f"{served.url}/", tmp_path))
        with ServedWorker(cfg.model_copy(update={"gate_min_events": 5000})) as served:
            second = httpx.get(f"{served.url}/api/status").json()
            undecided = Page(render(f"{served.url}/", tmp_path))
        client.close()

    assert go.attrs["gate"]["data-decision"] == "go" and go.text["gate-decision"] == "GO"
    assert go.text["gate-reason"] == "every criterion passed on 1,240 events"
    assert go.text["out-of-scope"] == "7"
    rows = {r["data-entity-op"] for r in go.rows["by-entity-op"] if "data-entity-op" in r}
    assert rows == set(first["by_entity_op"]) >= {"account/create", "comment/update"}
    assert first["by_entity_op"]["account/create"] == {"match": 40, "out_of_scope": 7}
    assert "1,240" in go.text["totals"]

    assert second["totals"] == first["totals"] == {"match": 1240}
    assert second["by_entity_op"] == first["by_entity_op"]
    assert undecided.attrs["gate"]["data-decision"] == "cannot_decide"
    assert undecided.text["gate-decision"] == "CANNOT DECIDE"
    assert undecided.text["gate-reason"] == "1,240 events, fewer than --min-events 5,000"
    shown = {
        r["data-criterion"]: r for r in undecided.rows["gate-criteria"] if "data-criterion" in r
    }
    assert set(shown) == {"max_mismatch_rate", "max_undecodable", "max_gaps", "min_events"}
    assert "≥ 5,000" in undecided.text["gate-criteria"]
