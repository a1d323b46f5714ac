"""--scope end to end: the live worker, backfill and replay agree event by event.

The corpus has a known split (tests/scoped_corpus.py): in-scope gaps must be found,
out-of-scope production events without a twin get no verdict but are counted (summary,
metric, durable counters), out-of-scope events whose twin comes are verified.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import Verdict

from ..conftest import cli_command, cli_env
from ..scoped_corpus import write_scoped_corpus
from .support import PROD, SIS, assert_records_match, run_worker_until_done, settings
from .support import verdict_records as durable_records


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def counters(client) -> Counter[str]:
    """The durable per-minute counters, summed over minutes: "<name>|<entity>|<op>" -> n."""
    total: Counter[str] = Counter()
    for key in client.scan_iter(match="*:counts:*"):
        for field, value in client.hgetall(key).items():
            total[field.decode()] += int(value)
    return total


def records_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("scope", "read_only"),
    [("sample:5", False), ("field:region=eu", False), ("sister", False), ("sample:5", True)],
)
def test_live_worker_backfill_and_replay_agree_under_a_scope(
    redis_url, redis_client, tmp_path, scope, read_only
):
    written = write_scoped_corpus(redis_client, scope, 2000, keys=(PROD, SIS))
    expected, want, primaries = written.expected, written.counts, written.primaries
    assert want["out_of_scope"] > 100 and want["late"] > 0 and want[Verdict.MATCH] > 50

    cfg = settings(redis_url, scope=scope, production_read_only=read_only)
    worker = run_worker_until_done(cfg, redis_client, primaries)
    live = durable_records(redis_client)
    verdicts = {r["event_id"]: r["verdict"] for r in live}
    assert verdicts == {e: v.value for e, v in expected.items() if isinstance(v, Verdict)}
    # Out-of-scope entries are settled too: acked, or (read-only) out of the waiting set.
    assert redis_client.xpending(SIS, cfg.group)["pending"] == 0
    if read_only:
        assert redis_client.zcard(WorkerKeys.from_settings(cfg).production_waiting) == 0
    else:
        assert redis_client.xpending(PROD, cfg.group)["pending"] == 0
    quiet = want["out_of_scope"] + want["late"]
    durable = counters(redis_client)
    assert durable["out_of_scope|comment|update"] == quiet
    assert durable["late|comment|update"] == want["late"]
    assert durable["match|comment|update"] == want[Verdict.MATCH]
    assert durable["missing_in_sister|comment|update"] == want[Verdict.MISSING_IN_SISTER]
    metric = worker.metrics.registry.get_sample_value(
        "cdc_verify_out_of_scope_total", {"entity": "comment", "op": "update"}
    )
    assert metric == quiet

    scope_flags = ("--scope", scope, "--grace", "1")
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               *scope_flags, "--out", str(tmp_path / "backfill"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{quiet:,} out of scope" in done.stdout
    for key, name in ((PROD, "p.cap"), (SIS, "s.cap")):
        done = cli("capture", "--redis", redis_url, "--stream", key, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
    captures = ("--production", str(tmp_path / "p.cap"), "--sister", str(tmp_path / "s.cap"))
    done = cli("replay", *captures, *scope_flags, "--out", str(tmp_path / "replay"))
    assert done.returncode == 0, done.stderr

    for run in ("backfill", "replay"):
        assert_records_match(records_of(tmp_path / run / "verdicts.jsonl"), live)
        summary = Summary.model_validate_json((tmp_path / run / "summary.json").read_text())
        assert summary.out_of_scope == quiet
        assert summary.by_entity_op["comment/update"]["out_of_scope"] == quiet
        assert summary.events == primaries


def test_a_bad_scope_is_a_usage_error_naming_the_flag(redis_url, tmp_path):
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--scope", "sample:150", "--out", str(tmp_path / "x"))  # fmt: skip
    assert done.returncode == 2
    assert "--scope: 'sample:150': PCT is a percentage, from 0 to 100" in done.stderr


def test_sigkills_under_a_scope_lose_nothing_and_count_everything_once(
    redis_url, redis_client, tmp_path
):
    """Durable counters are written in the verdicts' atomic commit: SIGKILLs at random
    moments leave every count exact, out-of-scope ones included."""
    import random
    import signal
    import time

    from .support import primary_count

    written = write_scoped_corpus(redis_client, "sample:20", 30_000, 300_000, (PROD, SIS))
    expected, want, primaries = written.expected, written.counts, written.primaries
    args = cli_command(
        "run", "--redis", redis_url, "--production", PROD, "--sister", SIS, "--grace", "1",
        "--start-id", "0", "--lock-ttl", "1", "--http-port", "0", "--batch-size", "200",
        "--scope", "sample:20",
    )  # fmt: skip
    log = (tmp_path / "worker.log").open("w")
    rng = random.Random(8)
    worker = subprocess.Popen(args, env=cli_env(), stdout=log, stderr=log)
    try:
        at_kills = [0]
        for _ in range(5):
            # Kill once this worker has committed something (a loaded machine starts it
            # slowly), at a random moment after: mid-batch, mid-commit, mid-ack.
            started = time.monotonic()
            while primary_count(redis_client) <= at_kills[-1] < primaries:
                assert time.monotonic() - started < 30, "the worker made no progress"
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.3))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            at_kills.append(primary_count(redis_client))
            worker = subprocess.Popen(args, env=cli_env(), stdout=log, stderr=log)
        assert any(0 < n < primaries for n in at_kills), f"no kill mid-run: {at_kills}"
        deadline = time.monotonic() + 120
        while (
            primary_count(redis_client) < primaries
            or redis_client.xpending(PROD, "cdc-verify")["pending"]
        ):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"{primary_count(redis_client)}/{primaries}"
            time.sleep(0.1)
        time.sleep(1.5)  # a wrong extra verdict would land now
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    verdicts = {r["event_id"]: r["verdict"] for r in durable_records(redis_client)}
    assert verdicts == {e: v.value for e, v in expected.items() if isinstance(v, Verdict)}
    durable = counters(redis_client)
    assert durable["out_of_scope|comment|update"] == want["out_of_scope"] + want["late"]
    assert durable["late|comment|update"] == want["late"]
    for verdict in (Verdict.MATCH, Verdict.MISSING_IN_SISTER, Verdict.MISSING_IN_PRODUCTION):
        assert durable[f"{verdict.value}|comment|update"] == want[verdict], verdict
