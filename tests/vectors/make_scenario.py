#!/usr/bin/env python3
"""Write tests/vectors/scenario.jsonl: the 12-change scenario the Go writer's test
vectors are made from (deterministic: fixed seed, no clock).

    .venv/bin/python tests/vectors/make_scenario.py [OUT]

One JSON line per logical change (the format cdc_verify.simulate.scenario reads):
{"event_id", "entity_id", "op", "version", "ts_ms", "comment"}; ts_ms starts at
1700000000000, step 1 ms; event ids are ULIDs from a seeded rng. Comments come from
the legacy writer's sample_comment, then a few changes are pinned so that the first
three (the ones the vectors cover) exercise both branches of the per-event verdicts:

- #0: created_utc exactly 1700000000.0 (exact in float32) and edited false;
- #1: edited a float that float32 cannot represent (and a random created_utc);
- #2: no zero value anywhere (the omitempty shape drops nothing: it still matches);
- #3: rich_text, media and awards empty lists (set, not nil); #4: an integral edited float.

Entities get a create, then updates (version +1, score changes) in turn.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from pathlib import Path

from cdc_verify.simulate.ids import base36, ulid
from cdc_verify.simulate.legacy_writer import sample_comment

SEED = 20240611
COUNT = 12
ENTITIES = 4
START_MS = 1_700_000_000_000
OUT = Path(__file__).resolve().parent / "scenario.jsonl"


def changes() -> list[dict]:
    rng = random.Random(SEED)
    entity_ids = ["t1_" + base36(rng.randrange(36**6, 36**7)) for _ in range(ENTITIES)]
    state: dict[str, tuple[int, dict]] = {}
    out = []
    for i in range(COUNT):
        ts_ms = START_MS + i
        entity_id = entity_ids[i % ENTITIES]
        if entity_id not in state:
            comment = sample_comment(random.Random(SEED * 100 + i), entity_id)
            version, op = 1, "create"
        else:
            version, comment = state[entity_id]
            version, comment, op = version + 1, copy.deepcopy(comment), "update"
            delta = rng.randint(1, 9)
            comment["ups"] += delta
            comment["score"] += delta
        pin(i, comment)
        state[entity_id] = (version, comment)
        out.append(
            {
                "event_id": ulid(rng, ts_ms),
                "entity_id": entity_id,
                "op": op,
                "version": version,
                "ts_ms": ts_ms,
                "comment": comment,
            }
        )
    return out


def pin(i: int, c: dict) -> None:
    if i == 0:
        c["created_utc"] = 1_700_000_000.0
        c["edited"] = False
    elif i == 1:
        c["edited"] = c["created_utc"] + 1234.567
    elif i == 2:
        c["rich_text"] = [
            {"e": "text", "t": "see "},
            {"e": "link", "t": "this café", "u": "https://example.com/x"},
        ]
        c["media"] = [
            {"type": "image", "url": "https://i.example.com/a.png", "width": 640,
             "height": 480, "content_type": "image/png"},
        ]  # fmt: skip
        c["ups"], c["downs"], c["score"], c["gilded"] = 42, 5, 37, 2
        c["awards"] = [{"award_id": "gold", "count": 1}]
        c["approval_state"] = "approved"
        c["automod_filtered"] = True
        c["stickied"] = True
        c["distinguished"] = "moderator"
        c["edited"] = c["created_utc"] + 60.25
    elif i == 3:
        c["rich_text"] = []
        c["media"] = []
        c["awards"] = []
    elif i == 4:
        c["edited"] = 1_700_000_500.0


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    with out.open("w", encoding="utf-8", newline="\n") as f:
        for change in changes():
            f.write(json.dumps(change, ensure_ascii=False, allow_nan=False) + "\n")
    print(f"wrote {COUNT} changes to {out}")


if __name__ == "__main__":
    main()
