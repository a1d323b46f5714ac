"""Helpers for tests that run the worker against a real Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.models import VerdictRecordModel
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS
from cdc_verify.simulate.corpus import Corpus
from cdc_verify.simulate.faults import Expected

PROD, SIS, VERDICTS = "t:production", "t:sister", "cdc-verify:verdicts"
PRIMARY = {v.value for v in PRIMARY_VERDICTS}


def settings(url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        redis_url=url, production=PROD, sister=SIS, grace=1.0, start_id="0",
        consumer_name="test-worker", lock_ttl=1, http_port=0, block_ms=20, create_streams=True,
    )  # fmt: skip
    base.update(overrides)
    return Settings(**base)


def verdict_records(client: redis.Redis, stream: str = VERDICTS) -> list[dict[str, Any]]:
    out = []
    for _, fields in client.xrange(stream):
        if b"event_ids" in fields:  # --compact-matches: one entry for a commit's matches
            assert fields[b"verdict"] == b"match"
            ids = fields[b"event_ids"].decode().split(" ")
            assert int(fields[b"count"]) == len(ids)
            out += [{"event_id": event_id, "verdict": "match"} for event_id in ids]
            continue
        record = json.loads(fields[b"record"])
        VerdictRecordModel.model_validate(record)  # the promised shape
        assert fields[b"verdict"].decode() == record["verdict"]
        assert fields[b"event_id"].decode() == (record["event_id"] or "")
        out.append(record)
    return out


def primaries_in(fields: dict[bytes, bytes]) -> int:
    """Primary verdicts one verdict-stream entry holds (--compact-matches: many matches)."""
    if fields[b"verdict"].decode() not in PRIMARY:
        return 0
    return int(fields[b"count"]) if b"event_ids" in fields else 1


def primary_count(client: redis.Redis, stream: str = VERDICTS) -> int:
    return sum(primaries_in(f) for _, f in client.xrange(stream))


class PrimaryCounter:
    """Primary verdicts in the stream so far, reading only what is new at each call
    (polling a whole stream of 50k records would take a core from the workers)."""

    def __init__(self, client: redis.Redis, stream: str = VERDICTS) -> None:
        self._client, self._stream = client, stream
        self._after, self.count = "-", 0

    def __call__(self) -> int:
        while entries := self._client.xrange(self._stream, self._after, "+", count=10_000):
            self.count += sum(primaries_in(f) for _, f in entries)
            self._after = "(" + entries[-1][0].decode()  # exclusive start (Redis >= 6.2)
        return self.count


def key(record: dict[str, Any], with_entry_ids: bool) -> tuple:
    diffs = tuple((d["path"], d["kind"]) for d in record.get("differences") or ())
    base = (record["event_id"], record["verdict"], record.get("side"), diffs)
    return (*base, record.get("entry_id")) if with_entry_ids else base


def assert_records_match(actual: list[dict], expected: list[dict], with_entry_ids=True) -> None:
    got = Counter(key(r, with_entry_ids) for r in actual)
    want = Counter(key(r, with_entry_ids) for r in expected)
    missing, extra = want - got, got - want
    assert not missing and not extra, f"missing {list(missing)[:5]}, unexpected {list(extra)[:5]}"


def assert_exactly_one_primary(
    records: list[dict], corpus: Corpus, expected: Mapping[str, Expected] | None = None
) -> None:
    """One primary verdict per event, the one `expected` says (default: the plan; a
    paced writer's `PacedWrite.expected` for what it really wrote)."""
    expected = corpus.expected if expected is None else expected
    primaries = Counter(r["event_id"] for r in records if r["verdict"] in PRIMARY)
    assert set(primaries) == set(expected)
    assert set(primaries.values()) == {1}, [e for e, n in primaries.items() if n > 1][:5]
    for r in records:
        if r["verdict"] in PRIMARY:
            assert r["verdict"] == expected[r["event_id"]].verdict.value, r


def run_worker_until_done(cfg: Settings, client: redis.Redis, primaries: int,
                          timeout: float = 60.0, worker: StreamWorker | None = None,
                          during=None) -> StreamWorker:  # fmt: skip
    """Run an in-process worker until `primaries` primary verdicts are in the stream."""
    worker = worker or StreamWorker(cfg, decode_event)

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + timeout
        if during is not None:
            await during(worker)
        while primary_count(client, cfg.verdict_stream) < primaries:
            if task.done():
                await task
                raise AssertionError("worker stopped early")
            assert time.monotonic() < deadline, (
                f"{primary_count(client, cfg.verdict_stream)}/{primaries} primary verdicts"
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(cfg.grace + 0.3)  # anything extra would show up now
        worker.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    return worker


class ServedWorker:
    """A worker and its HTTP server running in a background thread, as `run` starts them."""

    def __init__(self, cfg: Settings, *, wait_ready: bool = True) -> None:
        """`wait_ready`: entering waits until the worker is ready (else until it runs)."""
        from cdc_verify.api.service import WorkerService

        self.wait_ready = wait_ready
        self.worker = StreamWorker(cfg, decode_event)
        self.service = WorkerService(self.worker)
        self.url = self.service.bind_http()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self.service.run()

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced in __exit__
            self._error = exc

    def __enter__(self) -> ServedWorker:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self.worker.ready.is_set() or (not self.wait_ready and self.worker.running)):
            assert self._thread.is_alive(), f"worker died: {self._error!r}"
            assert time.monotonic() < deadline, "worker not ready within 30 s"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.service.stop)
        self._thread.join(20)
        assert not self._thread.is_alive(), "worker did not stop"
        if self._error is not None:
            raise self._error


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def verdicts_metric(registry: Any, verdict: str) -> float:
    """cdc_verify_verdicts_total of one verdict, summed over its entity and op labels."""
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "cdc_verify_verdicts_total" and sample.labels["verdict"] == verdict
    )


def coverage_env() -> dict[str, str]:
    """The CLI's environment with room for every shape: the simulator's comments come in
    thousands, and the live count and a backfill's are compared shape by shape."""
    from ..conftest import cli_env

    return cli_env() | {"CDC_VERIFY_COVERAGE_MAX_SHAPES": "20000"}


def coverage_rows(shapes: list[dict]) -> Counter:
    keys = ("entity", "status", "production", "match", "mismatch", "unverified")
    return Counter((tuple(sorted(s["parts"])), *(s[k] for k in keys)) for s in shapes)


def assert_live_coverage_is_a_backfills(url: str, out: Path, group: str = "cdc-verify") -> int:
    """`cdc-verify coverage` of the live workers' counts equals, shape by shape, the
    coverage.json of a backfill of the same streams; how many shapes."""
    from ..conftest import cli_command

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(cli_command(*args), env=coverage_env(), capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    live = json.loads(cli("coverage", "--redis", url, "--group", group, "--json").stdout)
    cli("backfill", "--redis", url, "--production", PROD, "--sister", SIS, "--grace", "1",
        "--out", str(out))  # fmt: skip
    bounded = json.loads((out / "coverage.json").read_text())["shapes"]
    assert coverage_rows(live["shapes"]) == coverage_rows(bounded)
    return len(bounded)
