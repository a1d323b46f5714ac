"""The Python legacy writer: how the legacy service encodes a comment payload.

``encode_msgpack`` and ``encode_protobuf`` are the inverses of the reference consumer's
two decode paths; ``sample_comment`` makes realistic, valid comment dicts for simulation
and tests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import msgpack

from cdc_verify.schemas.comment_pb2 import Award, Comment, Media, MediaList, RichText, RichTextList

__all__ = ["encode_msgpack", "encode_protobuf", "sample_comment"]

_packb = msgpack.packb


def encode_msgpack(comment: Mapping[str, Any]) -> bytes:
    """Encode ``comment`` as the legacy msgpack map (str stays msgpack str, bytes is bin)."""
    if type(comment) is not dict:
        comment = dict(comment)
    packed: bytes = _packb(comment, use_bin_type=True)
    return packed


def encode_protobuf(comment: Mapping[str, Any]) -> bytes:
    """Encode ``comment`` (the decoded-dict shape) as a ``cdcverify.v1.Comment``.

    None rich_text/media leave the wrapper unset; a list (even empty) sets it.
    None distinguished and False edited leave the optional field unset. Keys the
    message cannot carry (unknown extras) are dropped.
    """
    kwargs: dict[str, Any] = {
        "id": comment["id"],
        "link_id": comment["link_id"],
        "parent_id": comment["parent_id"],
        "subreddit_id": comment["subreddit_id"],
        "author_id": comment["author_id"],
        "body": comment["body"],
        "score": comment["score"],
        "ups": comment["ups"],
        "downs": comment["downs"],
        "gilded": comment["gilded"],
        "awards": [Award(award_id=a["award_id"], count=a["count"]) for a in comment["awards"]],
        "approval_state": comment["approval_state"],
        "automod_filtered": comment["automod_filtered"],
        "stickied": comment["stickied"],
        "created_utc": comment["created_utc"],
    }
    rich_text = comment["rich_text"]
    if rich_text is not None:
        kwargs["rich_text"] = RichTextList(
            items=[
                RichText(e=r["e"], t=r["t"], u=r["u"]) if "u" in r else RichText(e=r["e"], t=r["t"])
                for r in rich_text
            ]
        )
    media = comment["media"]
    if media is not None:
        kwargs["media"] = MediaList(
            items=[
                Media(
                    type=m["type"],
                    url=m["url"],
                    width=m["width"],
                    height=m["height"],
                    content_type=m["content_type"],
                )
                for m in media
            ]
        )
    distinguished = comment["distinguished"]
    if distinguished is not None:
        kwargs["distinguished"] = distinguished
    edited = comment["edited"]
    if edited is not False:
        kwargs["edited"] = edited
    msg = Comment(**kwargs)
    # A wrapper built from an empty list must still count as "set" (empty list, not nil).
    if rich_text is not None:
        msg.rich_text.SetInParent()
    if media is not None:
        msg.media.SetInParent()
    return msg.SerializeToString()


# --------------------------------------------------------------------------- samples

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_WORDS = (
    "the", "a", "and", "of", "to", "is", "this", "that", "it", "for", "not", "on", "with",
    "I", "you", "was", "but", "just", "like", "really", "think", "people", "thread", "post",
    "source", "edit", "thanks", "agree", "exactly", "why", "would", "anyone", "do", "lol",
    "comment", "upvote", "mods", "subreddit", "link", "image", "video", "update", "great",
    # non-ASCII: Latin-1, other scripts, combining marks and astral-plane emoji
    "café", "naïve", "Zürich", "façade", "jalapeño", "Ωmega", "привет", "日本語", "한국어",
    "مرحبا", "שלום", "e\u0301", "😀", "👍🏽", "🚀", "—", "…", "“quoted”",
)  # fmt: skip
_PUNCT = (".", ",", "!", "?", "", "", "", "")
_RICH_KINDS = ("text", "link", "spoiler", "code")
_MEDIA_KINDS = (
    ("image", "image/png", "png"),
    ("image", "image/jpeg", "jpg"),
    ("gif", "image/gif", "gif"),
    ("video", "video/mp4", "mp4"),
)
_AWARDS = ("gold", "silver", "platinum", "wholesome", "helpful", "rocket_like", "take_my_energy")
_APPROVAL = ("approved", "pending", "removed", "spam")
_APPROVAL_WEIGHTS = (85, 8, 5, 2)


def _b36(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_BASE36) for _ in range(length))


def _text(rng: random.Random, low: int, high: int) -> str:
    target = rng.randint(low, high)
    words: list[str] = []
    size = -1
    while size < target:
        word = rng.choice(_WORDS) + rng.choice(_PUNCT)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:target]


def sample_comment(rng: random.Random, entity_id: str) -> dict[str, Any]:
    """A realistic, valid comment dict for ``entity_id`` (``t1_`` + base36).

    Deterministic for a given ``rng`` state; uses only ``rng`` for randomness.
    """
    comment_id = entity_id[3:] if entity_id.startswith("t1_") else entity_id
    link_id = "t3_" + _b36(rng, 6)
    parent_id = link_id if rng.random() < 0.4 else "t1_" + _b36(rng, 7)

    rich_text: list[dict[str, Any]] | None = None
    if rng.random() < 0.35:
        rich_text = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(_RICH_KINDS)
            span: dict[str, Any] = {"e": kind, "t": _text(rng, 1, 60)}
            if kind == "link":
                span["u"] = f"https://example.com/{_b36(rng, 8)}"
            rich_text.append(span)

    media: list[dict[str, Any]] | None = None
    if rng.random() < 0.2:
        media = []
        for _ in range(rng.randint(0, 2)):
            kind, content_type, ext = rng.choice(_MEDIA_KINDS)
            media.append(
                {
                    "type": kind,
                    "url": f"https://i.example.com/{_b36(rng, 10)}.{ext}",
                    "width": rng.randint(64, 4096),
                    "height": rng.randint(64, 4096),
                    "content_type": content_type,
                }
            )

    ups = rng.randint(0, 5000) if rng.random() < 0.2 else rng.randint(0, 50)
    downs = rng.randint(0, ups // 2 + 10)
    awards = [
        {"award_id": award_id, "count": rng.randint(1, 5)}
        for award_id in rng.sample(_AWARDS, rng.randint(0, 3))
    ]
    created_utc = 1_600_000_000.0 + rng.random() * 150_000_000.0
    edited: float | bool = False
    if rng.random() < 0.15:
        edited = created_utc + rng.random() * 86_400.0
    distinguished = None
    if rng.random() < 0.05:
        distinguished = rng.choice(("moderator", "admin"))

    return {
        "id": comment_id,
        "link_id": link_id,
        "parent_id": parent_id,
        "subreddit_id": "t5_" + _b36(rng, 5),
        "author_id": "t2_" + _b36(rng, 8),
        "body": _text(rng, 20, 400),
        "rich_text": rich_text,
        "media": media,
        "score": ups - downs,
        "ups": ups,
        "downs": downs,
        "gilded": rng.randint(0, 3) if rng.random() < 0.05 else 0,
        "awards": awards,
        "approval_state": rng.choices(_APPROVAL, _APPROVAL_WEIGHTS)[0],
        "automod_filtered": rng.random() < 0.03,
        "stickied": rng.random() < 0.01,
        "distinguished": distinguished,
        "edited": edited,
        "created_utc": created_utc,
    }
