"""Which production events the sister is expected to deliver (`--scope`, docs/rollouts.md).

During a ramp only a sticky share of writes goes through the new service. A production
event outside the scope is still verified when its twin comes; when none comes within
the grace window it gets no verdict and is counted as out of scope instead of a gap.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

ScopeKey = Literal["entity_id", "event_id"]
SAMPLE_BUCKETS = 100_000  # crc32(key) % 100000 < PCT * 1000


class ScopeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Scope:
    """`kind` is all, sample, field or sister; `text` is the --scope it was parsed from."""

    kind: Literal["all", "sample", "field", "sister"]
    text: str = "all"
    percent: float = 100.0  # sample
    field: bytes = b""  # field: the entry field's name and value, as Redis stores them
    value: bytes = b""
    key: bytes = b"entity_id"  # sample: the field hashed

    @classmethod
    def parse(cls, text: str, key: ScopeKey = "entity_id") -> Scope:
        """`all`, `sample:PCT`, `field:NAME=VALUE` or `sister`, with a clear error otherwise."""
        kind, sep, arg = text.strip().partition(":")
        if kind in ("all", "sister") and not sep:
            return cls(kind, kind)  # type: ignore[arg-type]
        if kind == "sample" and sep:
            try:
                percent = float(arg)
            except ValueError:
                raise ScopeError(f"{text!r}: sample:PCT needs a number, e.g. sample:5") from None
            if not 0 <= percent <= 100:
                raise ScopeError(f"{text!r}: PCT is a percentage, from 0 to 100")
            return cls("sample", text.strip(), percent=percent, key=key.encode())
        if kind == "field" and sep:
            name, eq, value = arg.partition("=")
            if not eq or not name:
                raise ScopeError(f"{text!r}: expected field:NAME=VALUE, e.g. field:entity=comment")
            return cls("field", text.strip(), field=name.encode(), value=value.encode())
        raise ScopeError(
            f"{text!r} is not a scope: expected all, sample:PCT, field:NAME=VALUE or sister"
        )

    def expects(self, fields: dict[bytes, bytes]) -> bool:
        """Whether the sister must deliver the production entry with these fields.

        An entry lacking the sampled key is expected: a malformed event is better
        reported as a gap than hidden.
        """
        kind = self.kind
        if kind == "all":
            return True
        if kind == "sister":
            return False
        if kind == "field":
            return fields.get(self.field) == self.value
        key = fields.get(self.key)
        if key is None:
            return True
        return in_sample(key, self.percent)


ALL = Scope("all")


def in_sample(key: bytes, percent: float) -> bool:
    """The sticky sample rule, exactly as a router computes it (docs/rollouts.md)."""
    return zlib.crc32(key) % SAMPLE_BUCKETS < percent * 1000
