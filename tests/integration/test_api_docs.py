"""/docs and the status page in headless Chromium with no network: Swagger UI comes from the
worker itself, the page uses the window's width and rounds its percentages sensibly."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .browser import DevTools, wait_until
from .support import PROD, SIS, ServedWorker, primary_count, settings, wait_for

TOKEN = "docs-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[ServedWorker, DevTools]]:
    """A worker that verified comments and accounts, and a 1,600 px wide Chromium."""
    tmp = tmp_path_factory.mktemp("docs")
    with EmbeddedRedis(data_dir=tmp / "redis") as server:
        client = redis.Redis.from_url(server.url)
        corpus = generate(400, seed=31, grace_ms=500, entities={"comment": 0.5, "account": 0.5})
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        cfg = settings(server.url, grace=0.5, http_token=TOKEN)
        with ServedWorker(cfg) as worker, DevTools(tmp / "profile", 1600, 1000) as chrome:
            wait_for(lambda: primary_count(client) >= len(corpus.expected), what="all verdicts")
            yield worker, chrome
        client.close()


def test_docs_render_offline_from_the_workers_own_swagger_ui(served):
    worker, chrome = served
    operations = chrome.evaluate(f"{worker.url}/docs", wait_until(
        "document.querySelectorAll('.opblock').length > 0",
        "[...document.querySelectorAll('.opblock-summary-path')]"
        ".map((e) => e.textContent.replace(/\\u200b/g, ''))",
    ))  # fmt: skip
    document = httpx.get(f"{worker.url}/openapi.json").json()
    assert sorted(operations) == sorted(document["paths"])
    page = httpx.get(f"{worker.url}/docs").text
    assert "cdn" not in page and "docs/swagger-ui-bundle.js" in page
    assert httpx.get(f"{worker.url}/docs/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(f"{worker.url}/docs/LICENSE").status_code == 404  # only the three


def test_the_status_page_uses_the_whole_width_and_rounds_percentages(served):
    worker, chrome = served
    layout = chrome.evaluate(f"{worker.url}/#token={TOKEN}", wait_until(
        "document.body.dataset.refreshes",
        "{body: document.body.clientWidth,"
        " table: document.getElementById('by-entity-op').scrollWidth,"
        " box: document.getElementById('by-entity-op').parentElement.clientWidth,"
        " matchRate: document.getElementById('match-rate').textContent}",
    ))  # fmt: skip
    assert layout["body"] > 1400, layout  # 1,600 px less the margins: no cap
    assert layout["table"] <= layout["box"], layout  # no sideways scrolling
    assert len(layout["matchRate"].removesuffix("%").partition(".")[2]) <= 1, layout
    # The page's own percent(): one decimal, never 100.0 for less than all, nor 0.0 for
    # more than none.
    cases = [0.827938, 0.99999, 0.9995, 1, 0, 0.0004, 0.001, 0.5, 0.00001234]
    shown = chrome.evaluate(f"{worker.url}/#token={TOKEN}", f"{json.dumps(cases)}.map(percent)")
    assert shown == ["82.8%", "99.9%", "99.9%", "100%", "0%", "0.04%", "0.1%", "50.0%",
                     "0.0012%"]  # fmt: skip
