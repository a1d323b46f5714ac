"""Remembered decisions: ULID event_ids in per-second hashes, others (row versions such as
`comments/42@7`) in generations of first-seen time, over-long ones in a key each.

All are written by the commit script and found by lookups across restarts; decisions
an earlier version wrote (a `verdict|sides|ms` key per event) are still found.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision, Outcome, OutcomeKind, VerdictRecord
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.redis.commit import VerdictCommitter
from cdc_verify.pipeline.redis.decisions import OWN_KEY, SHARDS, filing, ulid_ms
from cdc_verify.pipeline.runners.state_writers import verdict_committer
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import ulid

from .redis_cluster import LocalCluster
from .support import settings

HOUR = 3_600_000
GRID = HOUR // 4  # decisions.lua: generations per --decided-retention (1 h)
MARK: Any = ("mark", "mark")


def test_ulid_time_is_read_from_the_first_ten_characters():
    # Crockford base 32: 0 1 A=10 R=24 Z=31 3 N=21 D=13 E=14 K=19, most significant first.
    assert ulid_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV") == 1469922850259
    assert ulid_ms("01arz3ndektsv4rrffq69g5fav") == 1469922850259  # case-insensitive
    for not_ulid in ("E1", "01ARZ3NDEKTSV4RRFFQ69G5FA", "81ARZ3NDEKTSV4RRFFQ69G5FAV",
                     "01ARZ3NDEKTSV4RRFFQ69G5FAU!", "01ARZ3NDEKTSV4RRFFQ69G5FAI"):  # fmt: skip
        assert ulid_ms(not_ulid) is None, not_ulid
    rng = random.Random(1)
    for ms in (0, 1, 1_700_000_000_123, 2**48 - 1):
        assert ulid_ms(ulid(rng, ms)) == ms


def test_each_event_id_is_filed_by_its_kind():
    bucket, end_ms, shard_hash = filing("p:", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert bucket.startswith("p:1469922850:") and end_ms == 1469922851000 and shard_hash == -1
    assert 0 <= int(bucket.rpartition(":")[2]) < SHARDS
    assert filing("p:", "comments/42@7") == ("", 0, zlib.crc32(b"comments/42@7"))
    assert filing("p:", "x" * 65) == ("", 0, OWN_KEY)  # would turn its hash into a table


def pair(event_id: str, ms: int, verdict: Verdict = Verdict.MATCH) -> Outcome:
    fields = {b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update"}
    entries = (StreamEntry(PRODUCTION, f"{ms}-0", fields), StreamEntry(SISTER, f"{ms}-0", fields))
    record = VerdictRecord(event_id, verdict)
    return Outcome(OutcomeKind.PRIMARY, record, entries, Decision(verdict, "ps", ms))


def gap(event_id: str, ms: int) -> Outcome:
    fields = {b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update"}
    record = VerdictRecord(event_id, Verdict.MISSING_IN_SISTER, entry_id=f"{ms}-0")
    decision = Decision(Verdict.MISSING_IN_SISTER, "p", ms)
    return Outcome(OutcomeKind.PRIMARY, record, (StreamEntry(PRODUCTION, f"{ms}-0", fields),),
                   decision)  # fmt: skip


def late(event_id: str, first_seen_ms: int, ms: int) -> Outcome:
    fields = {b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update"}
    return Outcome(
        OutcomeKind.LATE, None, (StreamEntry(SISTER, f"{ms}-0", fields),),
        Decision(Verdict.MISSING_IN_SISTER, "ps", first_seen_ms), late_by_ms=ms - first_seen_ms,
    )  # fmt: skip


def versions(rows: int, per_row: int) -> list[str]:
    """Row-version event_ids, `comments/<id>@<version>`: many rows, several versions."""
    return [f"comments/{row}@{v}" for v in range(1, per_row + 1) for row in range(rows)]


def run(url: str, work: Any, cluster: bool = False, **overrides: Any) -> Any:
    """`work(committer)` on a fresh client and committer: a worker that (re)started."""

    async def main() -> Any:
        client: Any = (AsyncRedisCluster if cluster else aioredis.Redis).from_url(url)
        try:
            # 'mark': a late entry is settled here (it is in no consumer group's pending list)
            committer = verdict_committer(client, settings(url, **overrides), settle=MARK)
            return await work(committer)
        finally:
            await client.aclose()

    return asyncio.run(main())


def generations(client: redis.Redis, keys: WorkerKeys) -> dict[int, tuple[int, ...]]:
    """The registry: start -> (stop, shards, count, lo, hi, keep)."""
    return {
        int(start): tuple(int(x) for x in value.split())
        for start, value in client.hgetall(keys.decision_generations).items()
    }


def generation_hashes(client: redis.Redis, keys: WorkerKeys) -> list[bytes]:
    return list(client.scan_iter(match=keys.decisions_prefix + "g*", count=10_000))


@pytest.mark.parametrize("kind", ["ulid", "version", "long"])
def test_a_decision_is_written_once_and_found_again(redis_url, redis_client, kind):
    keys = WorkerKeys.from_settings(settings(redis_url))
    now_ms = int(redis_client.time()[0]) * 1000
    rng = random.Random(2)
    ids = {
        "ulid": [ulid(rng, now_ms - 5000 + i) for i in range(300)],
        "version": versions(100, 3),
        "long": [f"comments/{'x' * 60}/{i}@1" for i in range(300)],
    }[kind]

    seen = {e: now_ms - 5000 + i for i, e in enumerate(ids)}  # first-seen: 1k events/s

    async def work(committer: VerdictCommitter) -> tuple[int, int, dict[str, Decision]]:
        # Looked up first, as a worker does: the commit takes each filing the lookup made.
        assert await committer.lookup(dict.fromkeys(ids, now_ms)) == {}
        first = await committer.commit([pair(e, ms) for e, ms in seen.items()])
        again = await committer.commit([pair(e, ms) for e, ms in seen.items()])  # a retry
        found = await committer.lookup({**dict.fromkeys(ids, now_ms), "never-seen": now_ms})
        return len(first), len(again), found

    first, again, found = run(redis_url, work)
    assert (first, again) == (300, 0)
    assert found == {e: Decision(Verdict.MATCH, "ps", ms) for e, ms in seen.items()}
    buckets = list(redis_client.scan_iter(match=keys.decisions_prefix + "*"))
    own = list(redis_client.scan_iter(match=keys.decided_prefix + "*"))
    if kind == "ulid":
        assert own == [] and 1 <= len(buckets) <= 2 * SHARDS
        assert sum(redis_client.hlen(b) for b in buckets) == 300
        assert all(0 < redis_client.pttl(b) <= HOUR + 5_000 for b in buckets)
    elif kind == "version":
        hashes = generation_hashes(redis_client, keys)
        assert own == [] and sum(redis_client.hlen(b) for b in hashes) == 300
        # one hash first (nothing to size it by), then more, sized by what it met
        opened = sorted(generations(redis_client, keys).values())
        assert [(g[1], g[2]) for g in opened][:1] == [(1, 90)] and opened[1][1] >= 2
        assert sum(g[2] for g in opened) == 300
        assert {redis_client.object("encoding", b) for b in hashes} <= {b"listpack", b"ziplist"}
    else:
        assert buckets == [] and len(own) == 300


def test_a_restarted_worker_finds_version_decisions_and_tells_a_much_later_copy_a_duplicate(
    redis_url, redis_client
):
    """Within --decided-retention (1 h) of its first entry, a copy of a row version is a
    duplicate, even 50 minutes on and after a restart; past it, a new event."""
    now_ms = int(redis_client.time()[0]) * 1000
    first_seen = now_ms - 55 * 60_000
    ids = versions(500, 4)

    async def decide(committer: VerdictCommitter) -> None:
        for i in range(0, len(ids), 400):  # at 100 events/s
            batch = ids[i : i + 400]
            await committer.commit(
                [pair(e, first_seen + (i + j) * 10) for j, e in enumerate(batch)]
            )

    run(redis_url, decide)
    target = ids[1234]
    target_seen = first_seen + 12_340
    copy_ms = target_seen + 50 * 60_000
    entry = StreamEntry(SISTER, f"{copy_ms}-0", {b"event_id": target.encode(), b"entity": b"c"})

    async def restarted(committer: VerdictCommitter) -> tuple[list[Outcome], dict[str, Decision]]:
        verifier = Verifier(dict, VerifierConfig(decided_in_memory_ms=60_000))
        needed = verifier.lookup_needed([entry])
        assert needed == {target: copy_ms}
        outcomes = verifier.ingest([entry], await committer.lookup(needed))
        # past the retention and the generation that holds it
        too_late = await committer.lookup({target: target_seen + HOUR + 60_000 + GRID})
        return outcomes, too_late

    outcomes, too_late = run(redis_url, restarted)
    assert [(o.kind, o.record.verdict if o.record else None) for o in outcomes] == [
        (OutcomeKind.EXTRA, Verdict.DUPLICATE)]  # fmt: skip
    assert too_late == {}  # older than the retention before that entry: forgotten


def test_a_late_arrival_updates_the_sides_of_a_version_decision(redis_url, redis_client):
    keys = WorkerKeys.from_settings(settings(redis_url))
    now_ms = int(redis_client.time()[0]) * 1000
    eid = "votes/3,9@2:delete"

    async def work(committer: VerdictCommitter) -> tuple[dict[str, Decision], dict[str, Decision]]:
        await committer.commit([gap(eid, now_ms - 9000)])
        before = await committer.lookup({eid: now_ms})
        await committer.commit([late(eid, now_ms - 9000, now_ms)])
        return before, await committer.lookup({eid: now_ms})

    before, after = run(redis_url, work)
    # 'mark': the late entry is settled here (it is in no consumer group's pending list)
    assert before == {eid: Decision(Verdict.MISSING_IN_SISTER, "p", now_ms - 9000)}
    assert after == {eid: Decision(Verdict.MISSING_IN_SISTER, "ps", now_ms - 9000)}
    assert list(redis_client.scan_iter(match=keys.decided_prefix + "*")) == []
    [bucket] = generation_hashes(redis_client, keys)
    assert Decision.decode(redis_client.hget(bucket, eid)).sides == "ps"


def test_generations_expire_after_the_retention_and_leave_the_registry(redis_url, redis_client):
    keys = WorkerKeys.from_settings(settings(redis_url))
    retention_s = 1.0  # a 1 s grid: each generation expires 1 s after its second

    def commit(event_id: str) -> None:
        async def work(committer: VerdictCommitter) -> None:
            ms = int(redis_client.time()[0]) * 1000
            await committer.commit([pair(event_id, ms)])

        run(redis_url, work, decided_retention=retention_s)

    commit("comments/1@1")
    [old] = generation_hashes(redis_client, keys)
    assert 0 < redis_client.pttl(old) <= 2_000
    assert 0 < redis_client.pttl(keys.decision_generations) <= 2_000
    time.sleep(2.2)
    assert redis_client.exists(old) == 0
    commit("comments/2@1")
    [new] = generation_hashes(redis_client, keys)
    assert new != old and len(generations(redis_client, keys)) == 1  # the old one dropped


def test_a_generations_shard_count_survives_a_restart(redis_url, redis_client):
    """Shard counts are chosen once, kept on Redis: a restarted worker files a decision
    first seen in a generation it did not open in that generation's hash, and the hashes
    stay listpacks at 1k events/s."""
    keys = WorkerKeys.from_settings(settings(redis_url))
    now_ms = int(redis_client.time()[0]) * 1000
    start = now_ms // GRID * GRID - GRID + 100_000  # 100 s into a generation's span
    ids = versions(4000, 5)  # 20k row versions, 1k events/s

    async def decide(committer: VerdictCommitter) -> None:
        for i in range(0, 19_000, 1000):
            await committer.commit([pair(ids[i + j], start + i + j) for j in range(1000)])

    run(redis_url, decide)
    opened = generations(redis_client, keys)
    # one hash for the first 90, then one sized by them (90 over a second at least: a
    # tenth of the rate, which a split would correct)
    assert [(g[1], g[2]) for _, g in sorted(opened.items())] == [(1, 90), (900, 18_910)]
    # a late gap decided after the restart, first seen within the newest generation
    newest = max(opened)
    straggler = pair("comments/99999@1", opened[newest][3])

    async def restarted(committer: VerdictCommitter) -> dict[str, Decision]:
        rest = [pair(ids[i], start + i) for i in range(19_000, 20_000)]
        await committer.commit([straggler, *rest])
        return await committer.lookup({e: start + 19_999 for e in [*ids, "comments/99999@1"]})

    found = run(redis_url, restarted)
    assert len(found) == 20_001
    after = generations(redis_client, keys)
    assert {s: g[1] for s, g in after.items()} == {s: g[1] for s, g in opened.items()}
    shards = after[newest][1]
    bucket = f"{keys.decisions_prefix}g{newest}:{zlib.crc32(b'comments/99999@1') % shards}"
    assert redis_client.hexists(bucket, "comments/99999@1")
    hashes = generation_hashes(redis_client, keys)
    assert max(redis_client.hlen(b) for b in hashes) <= 128
    assert {redis_client.object("encoding", b) for b in hashes} <= {b"listpack", b"ziplist"}


@pytest.mark.parametrize("event_id", ["ulid", "comments/9@1"])
def test_decisions_an_earlier_version_wrote_are_still_found(redis_url, redis_client, event_id):
    """Upgrading keeps duplicates and late arrivals told apart: the old `verdict|sides|ms`
    keys are read, and a late arrival updates them in place."""
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    now_ms = int(redis_client.time()[0]) * 1000
    old = ulid(random.Random(3), now_ms - 1000) if event_id == "ulid" else event_id
    redis_client.set(keys.decided_prefix + old, f"missing_in_sister|p|{now_ms - 1000}", px=60_000)

    async def main() -> dict[str, Decision]:
        client = aioredis.Redis.from_url(redis_url)
        # 'mark': the late entry is settled here (it is in no consumer group's pending list)
        committer = verdict_committer(client, cfg, settle=("mark", "mark"))
        before = await committer.lookup({old: now_ms})
        assert before == {old: Decision(Verdict.MISSING_IN_SISTER, "p", now_ms - 1000)}
        await committer.commit([late(old, now_ms - 1000, now_ms)])
        after = await committer.lookup({old: now_ms})
        await client.aclose()
        return after

    assert asyncio.run(main()) == {old: Decision(Verdict.MISSING_IN_SISTER, "ps", now_ms - 1000)}
    assert 0 < redis_client.pttl(keys.decided_prefix + old) <= 60_000  # its TTL kept


def test_a_bucket_of_the_wrong_type_stops_the_commit_before_it_writes(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    now_ms = int(redis_client.time()[0]) * 1000
    event_id = ulid(random.Random(4), now_ms)
    bucket, _, _ = filing(keys.decisions_prefix, event_id)
    redis_client.set(bucket, "not a hash")

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        committer = verdict_committer(client, cfg)
        try:
            await committer.commit([pair(event_id, now_ms), pair("evt-other", now_ms)])
        finally:
            await client.aclose()

    with pytest.raises(Exception, match="WRONGTYPE"):
        asyncio.run(main())
    assert redis_client.xlen(cfg.verdict_stream) == 0
    assert generation_hashes(redis_client, keys) == []
    assert not redis_client.exists(keys.decision_generations)


@pytest.fixture()
def cluster(tmp_path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as c:
        yield c


def test_version_decisions_on_a_cluster(cluster):
    """Every decision key shares the state keys' hash tag: the scripts run on one node."""
    client = cluster.client()
    now_ms = int(client.time()[0]) * 1000
    ids = versions(300, 2)

    async def work(committer: VerdictCommitter) -> dict[str, Decision]:
        await committer.commit([pair(e, now_ms - 2000) for e in ids])
        return await committer.lookup(dict.fromkeys(ids, now_ms))

    found = run(cluster.url, work, cluster=True)
    assert found == {e: Decision(Verdict.MATCH, "ps", now_ms - 2000) for e in ids}
    keys = WorkerKeys.from_settings(settings(cluster.url), cluster=True)
    assert keys.decision_generations.startswith("{cdc-verify:cdc-verify}:")
    client.close()
