"""The models the simulators write: comments and accounts (docs/wire-format.md).

Each model has its `entity_id` prefix and a sampler of realistic, valid maps. Both
encode with the legacy writer's `encode_msgpack` (accounts are msgpack only).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from cdc_verify.simulate.ids import base36
from cdc_verify.simulate.legacy_writer import sample_comment

__all__ = ["ENTITIES", "PREFIXES", "new_entity_id", "sample", "sample_account"]

Sampler = Callable[[random.Random, str], dict[str, Any]]

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_NAME_PARTS = (
    "throwaway", "cat", "pixel", "quiet", "River", "Ωmega", "jalapeño", "night", "owl",
    "Zürich", "rocket", "old", "tea", "dev", "moss", "blue", "grumpy", "ネコ", "sky",
)  # fmt: skip
_TROPHIES = (
    "verified_email", "one_year_club", "five_year_club", "gilding", "inciteful_link",
    "well_rounded", "beta_tester", "best_comment",
)  # fmt: skip


def sample_account(rng: random.Random, entity_id: str) -> dict[str, Any]:
    """A realistic, valid account map for ``entity_id`` (``t2_`` + base36), keys in the
    documented order. Deterministic for a given ``rng`` state."""
    account_id = entity_id[3:] if entity_id.startswith("t2_") else entity_id
    name = rng.choice(_NAME_PARTS) + rng.choice(("_", "-", "")) + rng.choice(_NAME_PARTS)
    if rng.random() < 0.6:
        name += str(rng.randint(1, 9999))
    created_utc = 1_200_000_000.0 + rng.random() * 500_000_000.0
    suspended = rng.random() < 0.03
    # A suspension is temporary (until a time) or permanent (nil).
    until = created_utc + rng.random() * 1e8 if suspended and rng.random() < 0.5 else None
    trophies = [
        {"trophy_id": trophy, "granted_utc": created_utc + rng.random() * 1e8}
        for trophy in rng.sample(_TROPHIES, rng.choice((0, 0, 1, 1, 2, 3)))
    ]
    icon = None
    if rng.random() < 0.7:
        icon = "https://styles.example.com/" + "".join(rng.choices(_BASE36, k=10)) + ".png"
    heavy = rng.random() < 0.1  # a few accounts hold most of the karma
    return {
        "id": account_id,
        "name": name,
        "icon_url": icon,
        "created_utc": created_utc,
        "link_karma": rng.randint(0, 250_000 if heavy else 2_000),
        "comment_karma": rng.randint(-100, 400_000 if heavy else 5_000),
        "is_suspended": suspended,
        "suspended_until": until,
        "email_verified": rng.random() < 0.7,
        "has_premium": rng.random() < 0.05,
        "trophies": trophies,
    }


#: entity -> (entity_id prefix, sampler)
_MODELS: dict[str, tuple[str, Sampler]] = {
    "comment": ("t1_", sample_comment),
    "account": ("t2_", sample_account),
}
ENTITIES: tuple[str, ...] = tuple(_MODELS)
PREFIXES: dict[str, str] = {entity: prefix for entity, (prefix, _) in _MODELS.items()}


def new_entity_id(rng: random.Random, entity: str) -> str:
    """A fresh id of the entity: its prefix and 6 to 8 base36 digits."""
    return PREFIXES[entity] + base36(rng.randrange(36**6, 36**8))


def sample(rng: random.Random, entity: str, entity_id: str) -> dict[str, Any]:
    """A realistic, valid map of the entity."""
    try:
        sampler = _MODELS[entity][1]
    except KeyError:
        raise ValueError(
            f"unknown entity {entity!r}: expected one of {', '.join(ENTITIES)}"
        ) from None
    return sampler(rng, entity_id)
