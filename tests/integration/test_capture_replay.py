"""capture + replay give the same verdicts as backfill, on 100k events with every verdict."""

from __future__ import annotations

import subprocess
import sys
import zlib

from cdc_verify.pipeline.capture.format import MAX_BLOCK_BYTES, CaptureReader
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import write_corpus

from ..capture_files import with_block
from ..conftest import cli_command, cli_env
from .support import PROD, SIS


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_replay_of_captures_equals_backfill(redis_url, redis_client, tmp_path):
    corpus = generate(100_000, seed=51, grace_ms=1500)
    write_corpus(redis_client, corpus, PROD, SIS, 1_790_000_000_000)
    grace = ("--grace", "1.5")
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               *grace, "--out", str(tmp_path / "backfill"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    for key, name in ((PROD, "p.cap"), (SIS, "s.cap")):
        done = cli("capture", "--redis", redis_url, "--stream", key, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert "captured" in done.stdout
    done = cli("replay", "--production", str(tmp_path / "p.cap"), "--sister",
               str(tmp_path / "s.cap"), *grace, "--out", str(tmp_path / "replay"))  # fmt: skip
    assert done.returncode == 0, done.stderr

    backfill = (tmp_path / "backfill" / "verdicts.jsonl").read_text().splitlines()
    replay = (tmp_path / "replay" / "verdicts.jsonl").read_text().splitlines()
    assert len(backfill) > 100_000
    assert replay == backfill  # same verdicts, even in the same order
    assert (tmp_path / "replay" / "summary.json").read_text() == (
        tmp_path / "backfill" / "summary.json"
    ).read_text()
    kinds = {line.split('"verdict":"')[1].split('"')[0] for line in replay}
    assert len(kinds) == 8  # every verdict kind


def test_capture_is_byte_exact_and_bounded(redis_url, redis_client, tmp_path):
    ids = [redis_client.xadd(PROD, {"event_id": f"E{i}", "dup": "1", "\xff": b"\x00\xff"},
                             id=f"{1700000000000 + i * 1000}-0") for i in range(5)]  # fmt: skip
    redis_client.execute_command("XADD", PROD, "1700000009000-0", "f", "1", "f", "2")
    out = tmp_path / "c.cap"
    done = cli("capture", "--redis", redis_url, "--stream", PROD, "--out", str(out),
               "--from", "2023-11-14T22:13:21Z", "--to", ids[3].decode())  # fmt: skip
    assert done.returncode == 0, done.stderr
    with CaptureReader(out) as reader:
        got = list(reader)
    assert [entry_id for entry_id, _ in got] == ids[1:4]  # 1700000001000 is 22:13:21Z
    assert list(got[0][1]) == [b"event_id", b"E1", b"dup", b"1", b"\xc3\xbf", b"\x00\xff"]
    whole = tmp_path / "w.cap"
    assert (
        cli("capture", "--redis", redis_url, "--stream", PROD, "--out", str(whole)).returncode == 0
    )
    with CaptureReader(whole) as reader:
        *_, (last_id, flat) = reader
    assert last_id == b"1700000009000-0" and list(flat) == [b"f", b"1", b"f", b"2"]
    bad = cli(
        "capture", "--redis", redis_url, "--stream", PROD, "--out", str(out), "--from", "soon"
    )
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_replay_of_a_corrupt_capture_is_a_clear_error(redis_url, redis_client, tmp_path):
    for i in range(3000):
        redis_client.xadd(PROD, {"event_id": f"E{i}", "payload": "x" * 50})
    out = tmp_path / "p.cap"
    assert cli("capture", "--redis", redis_url, "--stream", PROD, "--out", str(out)).returncode == 0
    out.write_bytes(out.read_bytes()[:-100])
    done = cli(
        "replay", "--production", str(out), "--sister", str(out), "--out", str(tmp_path / "r")
    )
    assert done.returncode == 1
    assert (
        "truncated" in done.stderr and "at byte" in done.stderr and "Traceback" not in done.stderr
    )


def test_capturing_a_stream_while_it_is_written_gives_a_consistent_snapshot(
    redis_url, redis_client, tmp_path
):
    import threading

    for i in range(20_000):
        redis_client.xadd(PROD, {"event_id": f"E{i}", "payload": "x" * 200})
    stop = threading.Event()

    def keep_writing() -> None:
        import redis

        writer = redis.Redis.from_url(redis_url)
        n = 0
        while not stop.is_set():
            writer.xadd(PROD, {"event_id": f"LATE{n}", "payload": "y"})
            n += 1
        writer.close()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        out = tmp_path / "c.cap"
        done = cli("capture", "--redis", redis_url, "--stream", PROD, "--out", str(out))
        assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        thread.join()
    with CaptureReader(out) as reader:
        to = reader.header["to"]
        captured = [entry_id for entry_id, _ in reader]
    # Exactly the stream up to the end pinned at the start: no gap, nothing after it.
    expected = [entry_id for entry_id, _ in redis_client.xrange(PROD, "-", to)]
    assert captured == expected and len(captured) >= 20_000
    assert redis_client.xlen(PROD) > len(captured)  # the writer did go on meanwhile


# Runs a command and prints its peak RSS (KiB). A small parent of its own: a child's
# ru_maxrss counts what its parent held when it forked, and pytest may hold a lot.
MEASURE = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run_measured(*args: str) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS in bytes of one cdc-verify command."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *cli_command(*args)], env=cli_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    status, peak_kib = map(int, done.stdout.split())
    return status, done.stderr, peak_kib * 1024


def test_replay_refuses_a_compression_bomb_within_the_block_bound(tmp_path):
    # 512 MiB of zeros in a 0.5 MB block whose CRC holds: four times what a block may hold.
    squeeze = zlib.compressobj(9)
    chunk = bytes(2**20)
    data = b"".join(squeeze.compress(chunk) for _ in range(512)) + squeeze.flush()
    bomb = with_block(tmp_path / "bomb.cap", [], count=1000, data=data)
    good = with_block(tmp_path / "good.cap", [[b"1-0", [b"event_id", b"E1"]]])
    status, err, peak = run_measured("replay", "--production", str(bomb), "--sister", str(good),
                                     "--out", str(tmp_path / "r"))  # fmt: skip
    assert status == 1 and "Traceback" not in err, err
    assert f"Error: {bomb}: corrupt block at byte " in err and "expands past" in err
    assert peak < MAX_BLOCK_BYTES + 200 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_replay_of_a_block_of_the_wrong_shape_or_a_bad_config_is_a_clear_error(tmp_path):
    bad = with_block(tmp_path / "bad.cap", [[b"1-0", [b"event_id"]]])
    good = with_block(tmp_path / "good.cap", [[b"1-0", [b"event_id", b"E1"]]])
    done = cli("replay", "--production", str(good), "--sister", str(bad), "--out",
               str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"Error: {bad}: corrupt block at byte 51: its entry 0 has an odd field list" in (
        done.stderr
    )
    config = tmp_path / "cdc.toml"
    config.write_bytes('grace = 2\nproduction = "caf\xe9"\n'.encode("latin-1"))
    done = cli("replay", "--production", str(good), "--sister", str(good), "--out",
               str(tmp_path / "r"), "--config", str(config))  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"config file {config} is not valid TOML: not UTF-8 text (byte 27 is 0xe9)" in (
        done.stderr
    )
