"""Output that shows stream data shows it as text: terminal tables (no rich markup, no
emoji codes, no terminal escapes), summary.md (no Markdown or HTML) and text logs (one
line a message), whatever producers wrote (docs/reports.md, "Stream data in output")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from markdown_it import MarkdownIt

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, run_worker_until_done, settings

# Event ids are printable without spaces (anything else is `malformed`): markup and emoji.
MARKUP_IDS = ["[/]", "[link=https://evil.example/]click[/link]", "[bold]loud[/bold]", "x:fire:y"]
# An entity_id may hold anything: a colour, a terminal hyperlink, a bidi override, a newline.
ESCAPES = "t1_\x1b[31mred\x1b]8;;https://evil.example/\x07link\u202eevil\nforged"
ESCAPES_SHOWN = "t1_\\x1b[31mred\\x1b]8;;https://evil.example/\\x07link\\u202eevil\\nforged"

# A consumer whose error texts and payload keys are hostile.
CONSUMER = """
import json

def decode(fields):
    payload = fields[b"payload"]
    if payload.startswith(b"boom"):
        raise ValueError(payload[4:].decode())
    return json.loads(payload)
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=env or cli_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def consumer_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a command that loads CONSUMER as hostile:decode."""
    (tmp_path / "hostile.py").write_text(CONSUMER)
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return env


def assert_no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text


def test_alerts_show_markup_emoji_and_escapes_in_ids_as_text(redis_url, redis_client):
    for event_id in MARKUP_IDS:
        redis_client.xadd(PROD, {"event_id": event_id, "entity_id": ESCAPES, "payload": "x"})
    run_worker_until_done(settings(redis_url, grace=0.2), redis_client, len(MARKUP_IDS))
    table = cli("alerts", "--redis", redis_url)
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    for event_id in MARKUP_IDS:
        assert event_id in table.stdout  # not read as markup, nor as an emoji code
    assert table.stdout.count(ESCAPES_SHOWN) == len(MARKUP_IDS)
    assert_no_raw_controls(table.stdout)
    assert f"{len(MARKUP_IDS)} open alerts" in table.stdout
    # The JSON keeps the values themselves, escaped as JSON.
    listed = json.loads(cli("alerts", "--redis", redis_url, "--json").stdout)
    assert {a["entity_id"] for a in listed} == {ESCAPES}


def test_coverage_shows_markup_and_escapes_in_payload_keys_and_values_as_text(
    redis_url, redis_client, tmp_path
):
    env = consumer_env(tmp_path)
    payload = json.dumps({"[bold]key": "[/]", "[link=https://evil.example/]k": "\x1b[2Jwipe"})
    for n in range(3):
        fields = {"event_id": f"E{n}", "entity": "comment", "payload": payload}
        redis_client.xadd(PROD, fields)
        redis_client.xadd(SIS, fields)
    out = tmp_path / "report"
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--consumer", "hostile:decode", "--out", str(out), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = cli("coverage", "--report", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr
    assert "/[bold]key str=[/]" in shown.stdout
    assert "/[link=https:~1~1evil.example~1]k str=\\x1b[2Jwipe" in shown.stdout
    assert_no_raw_controls(shown.stdout)
    as_json = cli("coverage", "--report", str(out), "--json")
    assert_no_raw_controls(as_json.stdout)
    parts = {p["part"] for p in json.loads(as_json.stdout)["parts"]}
    assert "/[link=https:~1~1evil.example~1]k str=\x1b[2Jwipe" in parts  # the value itself


# An error text that would render as HTML, a link, a heading and a new table row.
HOSTILE_ERROR = (
    "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    "| forged | cell |\n# heading &lt;b&gt; `code` *em*"
)


def test_summary_md_shows_error_texts_and_ids_as_text(redis_url, redis_client, tmp_path):
    env = consumer_env(tmp_path)
    event_id = "E`<b>|x</b>`[a](javascript:alert(4))"
    payload = "boom" + HOSTILE_ERROR + "\u202e\x1b[2J"  # a bidi override and an ESC too
    for stream in (PROD, SIS):
        redis_client.xadd(stream, {"event_id": event_id, "entity": "comment", "payload": payload})
    out = tmp_path / "report"
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--consumer", "hostile:decode", "--out", str(out), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    markdown = (out / "summary.md").read_text()
    [row] = [line for line in markdown.splitlines() if line.startswith("| 1 | `undecodable`")]
    # Rendered as a GitHub-like renderer would, raw HTML on: nothing but text comes out.
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    for tag in ("<script", "<img", "<a ", "<h1", "<em", "<b>"):
        assert tag not in html, tag
    [cells] = [r for r in html.split("<tr>") if "ValueError" in r]
    assert cells.count("<td") == 5, cells  # count, verdict, entity/op, what, example: no more
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cells
    assert "javascript:alert(3)" in cells and "\\n# heading &amp;lt;b&amp;gt;" in cells
    assert "<code>E`&lt;b&gt;|x&lt;/b&gt;`[a](javascript:alert(4))</code>" in cells
    assert row.count("\n") == 0
    # report.html: the same id and error as text, its bidi override and ESC made visible.
    page = (out / "report.html").read_text()
    assert "\u202e" not in page and "\x1b" not in page
    assert "*em*\\u202e\\x1b[2J" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_text_logs_keep_a_consumer_error_on_one_line(redis_url, redis_client, tmp_path):
    env = consumer_env(tmp_path)
    forged = "2026-01-01 00:00:00,000 CRITICAL cdc_verify: forged line"
    for stream in (PROD, SIS):
        redis_client.xadd(stream, {"event_id": "E1", "payload": f"boomfirst\n{forged}\x1b[2J"})
    proc = subprocess.Popen(
        cli_command("run", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                    "--grace", "0.2", "--start-id", "0", "--http-port", "0",
                    "--consumer", "hostile:decode"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while redis_client.xlen("cdc-verify:verdicts") < 1:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    [line] = [line for line in err.splitlines() if "undecodable E1" in line]
    assert line.endswith(f"first\\n{forged}\\x1b[2J")
    assert not any(line.startswith(forged) for line in err.splitlines())
    assert_no_raw_controls(err)


def test_markdown_and_terminal_escapes(tmp_path: Path):
    from rich.console import Console

    from cdc_verify.escaping import json_visible, markdown_code, terminal_text, visible

    assert visible("a\x1b[1mb\u202ec\n\U000e0041") == "a\\x1b[1mb\\u202ec\\n\\U000e0041"
    assert visible("plain ü 漢 🔥") == "plain ü 漢 🔥"
    assert markdown_code("a``b|c") == "```a``b\\|c```" and markdown_code("`x") == "`` `x ``"
    assert json.loads(json_visible(json.dumps({"k": "\u202e\x85🔥"}, ensure_ascii=False))) == {
        "k": "\u202e\x85🔥"
    }
    console = Console(file=(tmp_path / "out").open("w"), width=80)
    console.print(terminal_text("[/] [link=x]y :fire:"))
    console.file.close()
    assert (tmp_path / "out").read_text() == "[/] [link=x]y :fire:\n"
