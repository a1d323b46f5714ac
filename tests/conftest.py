"""Shared fixtures: a real redis-server per test session, flushed between tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture()
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    redis_server.start()  # a test may have stopped it
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private server for tests that stop or restart Redis."""
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        yield server


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cdc_verify.cli", *args]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_VERIFY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
