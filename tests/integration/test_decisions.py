"""Remembered decisions: ULID event_ids in per-second hashes, others in a key each.

Both are written by the commit script and found by lookups across restarts; decisions
an earlier version wrote (a `verdict|sides|ms` key per event) are still found.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision, Outcome, OutcomeKind, VerdictRecord
from cdc_verify.pipeline.redis.decisions import (
    SHARDS,
    bucket_expire_at_ms,
    bucket_of,
    ulid_ms,
)
from cdc_verify.pipeline.runners.state_writers import verdict_committer
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import ulid

from .support import settings


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


def test_buckets_are_per_second_and_shard_and_expire_after_the_retention():
    bucket, second = bucket_of("p:", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert second == 1469922850 and bucket.startswith("p:1469922850:")
    assert 0 <= int(bucket.rpartition(":")[2]) < SHARDS
    assert bucket_of("p:", "not-a-ulid") == ("", 0)
    hour = 3_600_000
    now = 1_800_000_000_000
    assert bucket_expire_at_ms(now // 1000, now, hour) == now + 1000 + hour
    assert bucket_expire_at_ms(1, now, hour) == now + hour  # an old clock: from now
    assert bucket_expire_at_ms(now, now, hour) == now + 2 * hour  # the far future: capped


def pair(event_id: str, ms: int, verdict: Verdict = Verdict.MATCH) -> Outcome:
    fields = {b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update"}
    entries = (StreamEntry(PRODUCTION, f"{ms}-0", fields), StreamEntry(SISTER, f"{ms}-0", fields))
    record = VerdictRecord(event_id, verdict)
    return Outcome(OutcomeKind.PRIMARY, record, entries, Decision(verdict, "ps", ms))


@pytest.mark.parametrize("kind", ["ulid", "other"])
def test_a_decision_is_written_once_and_found_again(redis_url, redis_client, kind):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    now_ms = int(redis_client.time()[0]) * 1000
    rng = random.Random(2)
    ids = [ulid(rng, now_ms - 5000 + i) if kind == "ulid" else f"evt-{i}" for i in range(300)]

    async def main() -> tuple[int, int, dict[str, Decision]]:
        client = aioredis.Redis.from_url(redis_url)
        committer = verdict_committer(client, cfg)
        first = await committer.commit([pair(e, now_ms) for e in ids])
        again = await committer.commit([pair(e, now_ms) for e in ids])  # a retried commit
        found = await committer.lookup([*ids, "never-seen"])
        await client.aclose()
        return len(first), len(again), found

    first, again, found = asyncio.run(main())
    assert (first, again) == (300, 0)
    assert found == {e: Decision(Verdict.MATCH, "ps", now_ms) for e in ids}
    buckets = list(redis_client.scan_iter(match=keys.decisions_prefix + "*"))
    own = list(redis_client.scan_iter(match=keys.decided_prefix + "*"))
    if kind == "ulid":
        assert own == [] and 1 <= len(buckets) <= 2 * SHARDS
        assert sum(redis_client.hlen(b) for b in buckets) == 300
        assert all(0 < redis_client.pttl(b) <= 3_600_000 + 5_000 for b in buckets)
    else:
        assert buckets == [] and len(own) == 300


def test_decisions_an_earlier_version_wrote_are_still_found(redis_url, redis_client):
    """Upgrading keeps duplicates and late arrivals told apart: the old `verdict|sides|ms`
    keys are read, and a late arrival updates them in place."""
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    now_ms = int(redis_client.time()[0]) * 1000
    old = ulid(random.Random(3), now_ms - 1000)
    redis_client.set(keys.decided_prefix + old, f"missing_in_sister|p|{now_ms - 1000}", px=60_000)
    fields = {b"event_id": old.encode(), b"entity": b"comment", b"op": b"update"}
    late = Outcome(
        OutcomeKind.LATE, None, (StreamEntry(SISTER, f"{now_ms}-0", fields),),
        Decision(Verdict.MISSING_IN_SISTER, "ps", now_ms - 1000), late_by_ms=1000,
    )  # fmt: skip

    async def main() -> dict[str, Decision]:
        client = aioredis.Redis.from_url(redis_url)
        # 'mark': the late entry is settled here (it is in no consumer group's pending list)
        committer = verdict_committer(client, cfg, settle=("mark", "mark"))
        before = await committer.lookup([old])
        assert before == {old: Decision(Verdict.MISSING_IN_SISTER, "p", now_ms - 1000)}
        await committer.commit([late])
        after = await committer.lookup([old])
        await client.aclose()
        return after

    assert asyncio.run(main()) == {old: Decision(Verdict.MISSING_IN_SISTER, "ps", now_ms - 1000)}
    assert 0 < redis_client.pttl(keys.decided_prefix + old) <= 60_000  # its TTL kept


def test_a_bucket_of_the_wrong_type_stops_the_commit_before_it_writes(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    now_ms = int(redis_client.time()[0]) * 1000
    event_id = ulid(random.Random(4), now_ms)
    bucket, _ = bucket_of(keys.decisions_prefix, event_id)
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
    assert redis_client.get(keys.decided_prefix + "evt-other") is None
