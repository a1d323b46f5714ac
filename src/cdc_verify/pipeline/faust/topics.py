"""Creates the Faust engine's topics before any worker subscribes to them.

A consumer that subscribes to a topic that does not exist yet only sees it at its
next metadata refresh (minutes), so the topics are made first, with the partition
count the joins rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


class TopicMismatch(RuntimeError):
    pass


async def ensure_topics(
    bootstrap: str, names: list[str], partitions: int, config: dict[str, str]
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker made it
                await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config)])
        deadline = time.monotonic() + 30
        while True:  # a topic just made shows no partitions for a moment
            described = await admin.describe_topics(names)
            if all(d["partitions"] for d in described) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        for d in described:
            found = len(d["partitions"])
            if found != partitions:
                raise TopicMismatch(
                    f"topic {d['topic']} has {found} partitions, not {partitions}: "
                    "keep --partitions as the topics were made, or use a new --group"
                )
    finally:
        await admin.close()
