"""Other envelopes on real Redis streams (docs/envelopes.md): one corpus with every
verdict kind, written as `json` events (msgpack, key fields at pointers of their own)
or as a user's own entries (tests/own_envelope.py), gets from `run`, `backfill` and
`replay` of its captures the verdicts it gets as cdc-verify entries
(tests/integration/test_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.consumers.reference import decode_event
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import past_base_ms

from ..conftest import cli_command, cli_env
from ..own_envelope import own_fields
from .support import (
    PROD,
    SIS,
    VERDICTS,
    assert_exactly_one_primary,
    assert_records_match,
    run_worker_until_done,
    settings,
    verdict_records,
)
from .test_read_only import fields as ro_fields
from .test_read_only import run_for

REPO = Path(__file__).resolve().parents[2]
Fields = Mapping[bytes, bytes]
Shape = Callable[[Fields], Fields]  # a cdc-verify entry's fields in another envelope


def json_fields(fields: Fields) -> dict[bytes, bytes]:
    """A cdc-verify entry as a `change` field holding a msgpack event."""
    meta: dict[str, Any] = {}
    for name, key in (("event_id", "id"), ("entity", "table"), ("op", "kind"),
                      ("entity_id", "key")):  # fmt: skip
        raw = fields.get(name.encode())
        if raw is not None:
            try:
                meta[key] = raw.decode()
            except UnicodeDecodeError:
                meta[key] = raw  # binary: no text, so no key
    version = fields.get(b"version")
    if version is not None and version.isdigit():
        meta["v"] = int(version)
    event: dict[str, Any] = {"meta": meta}
    if b"encoding" in fields:
        event["encoding"] = fields[b"encoding"].decode()
    if b"payload" in fields:
        event["payload"] = fields[b"payload"]  # binary: handed to the consumer as it is
    return {b"change": msgpack.packb(event, use_bin_type=True)}


JSON_SETTINGS = dict(
    json_field="change", json_format="msgpack", json_event_id="/meta/id",
    json_entity="/meta/table", json_op="/meta/kind", json_entity_id="/meta/key",
    json_version="/meta/v",
)  # fmt: skip
OWN = "tests.own_envelope:read"

# name -> (settings, what production is written as, what the sister is written as)
CASES: dict[str, tuple[dict[str, Any], Shape, Shape]] = {
    "json": ({"envelope": "json", **JSON_SETTINGS}, json_fields, json_fields),
    "own": ({"envelope": OWN}, own_fields, own_fields),
    "sister json": ({"sister_envelope": "json", **JSON_SETTINGS}, dict, json_fields),
}


def write_as(
    client: redis.Redis, corpus: Corpus, base_ms: int, production: Shape, sister: Shape
) -> None:
    """The corpus, each entry with the id `Corpus.entry_ids` predicts, in other envelopes."""
    for side, key, shape in ((Side.PRODUCTION, PROD, production), (Side.SISTER, SIS, sister)):
        pipe = client.pipeline(transaction=False)
        for entry, entry_id in zip(corpus.side(side), corpus.entry_ids(side, base_ms), strict=True):
            pipe.xadd(key, shape(entry.fields), id=entry_id)  # type: ignore[arg-type]
        pipe.execute()


def with_tests_importable(env: dict[str, str]) -> dict[str, str]:
    """`tests.own_envelope` importable in a subprocess, beside whatever finds cdc_verify."""
    paths = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def flags(values: Mapping[str, Any]) -> list[str]:
    return [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", v)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_and_backfill_give_the_verdicts_of_the_cdc_verify_envelope(
    case, redis_url, redis_client, tmp_path
):
    envelope_settings, production, sister = CASES[case]
    corpus = generate(1500, seed=24, grace_ms=1000)
    base = past_base_ms(redis_client, corpus)
    write_as(redis_client, corpus, base, production, sister)
    expected = corpus.expected_records(base)
    assert {r["verdict"] for r in expected} >= {"match", "mismatch", "race", "malformed",
                                                "duplicate", "missing_in_sister"}  # fmt: skip

    cfg = settings(redis_url, **envelope_settings)
    run_worker_until_done(cfg, redis_client, len(corpus.expected))
    records = verdict_records(redis_client)
    assert_records_match(records, expected)
    assert_exactly_one_primary(records, corpus)
    reasons = {r["error"] for r in records if r["verdict"] == "malformed"}
    if case == "own":
        assert reasons >= {"no id field"}
        assert any(r.startswith("envelope failed: UnicodeDecodeError") for r in reasons), reasons
    elif case == "json":  # it names the pointer it found nothing (or no text) at
        assert "no event id at '/meta/id' in change" in reasons
        assert "event_id at '/meta/id' is a bytes, not a string or integer" in reasons, reasons
    else:  # each side's own envelope says why
        assert {"no event_id field", "no event id at '/meta/id' in change"} <= reasons, reasons

    # backfill, and replay of captures (which keep the entries as the streams have them).
    for stream, name in ((PROD, "p.cap"), (SIS, "s.cap")):
        assert cli("capture", "--redis", redis_url, "--stream", stream,
                   "--out", str(tmp_path / name)).returncode == 0  # fmt: skip
    for command, sources in (
        ("backfill", ("--redis", redis_url, "--production", PROD, "--sister", SIS)),
        ("replay", ("--production", str(tmp_path / "p.cap"), "--sister", str(tmp_path / "s.cap"))),
    ):
        out = tmp_path / command
        done = cli(command, *sources, "--grace", "1", "--out", str(out), *flags(envelope_settings))
        assert done.returncode == 0, done.stderr
        lines = (out / "verdicts.jsonl").read_text().splitlines()
        assert_records_match([json.loads(line) for line in lines], expected)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=with_tests_importable(cli_env()),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_bad_envelope_is_a_usage_error_naming_it(redis_url, tmp_path):
    for extra, said in (
        (("--envelope", "no_such_module:read"), "envelope 'no_such_module:read': cannot import"),
        (
            ("--sister-envelope", "debezium", "--join-key", "event_id"),
            "its records carry no event id",
        ),
        (("--envelope", "avro"), "'avro': give cdc-verify, json, debezium or module:callable"),
        (("--envelope", "json", "--json-event-id", "id"), "'id' is not a JSON pointer"),
    ):
        done = subprocess.run(
            cli_command("backfill", "--redis", redis_url, "--out", str(tmp_path), *extra),
            env=cli_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and said in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr


def test_read_only_production_rebuilds_its_waiting_entries_through_the_envelope(tmp_path):
    """Read-only production keeps only waiting entry ids; a restarted worker reads those
    entries again, and must read them as json events too."""
    with EmbeddedRedis(tmp_path / "p") as prod, EmbeddedRedis(tmp_path / "s") as sis:
        cfg = settings(
            None, production_redis_url=prod.url, sister_redis_url=sis.url,
            production_read_only=True, grace=60.0, batch_size=100,
            **{"envelope": "json", **JSON_SETTINGS},
        )  # fmt: skip
        prod_client, sis_client = redis.Redis.from_url(prod.url), redis.Redis.from_url(sis.url)
        ids = [f"E{i:04d}" for i in range(300)]
        for event_id in ids:
            prod_client.xadd(PROD, json_fields(ro_fields(event_id)))
        sis_client.xadd(SIS, json_fields(ro_fields("warm-up")))  # the sister stream exists
        waiting = lambda: sis_client.zcard(WorkerKeys.from_settings(cfg).production_waiting)  # noqa: E731
        run_for(StreamWorker(cfg, decode_event), lambda: waiting() == len(ids))
        for event_id in ids:  # the twins come while no worker runs
            sis_client.xadd(SIS, json_fields(ro_fields(event_id)))
        done = lambda: sum(1 for _ in sis_client.xrange(VERDICTS)) >= len(ids)  # noqa: E731
        run_for(StreamWorker(cfg, decode_event), done)
        records = verdict_records(sis_client, VERDICTS)
        assert sorted(r["event_id"] for r in records if r["verdict"] == "match") == ids
        assert waiting() == 0
