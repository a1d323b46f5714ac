"""Structural diff of two decoded events, with JSON-pointer paths.

Python equality is too forgiving for a verifier: `False == 0` and `1 == 1.0`
are true, but a consumer that branches on `isinstance` sees different things.
So a difference is reported whenever the types differ, even if the values
compare equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc_verify.schemas.verdicts import DifferenceKind

VALUE = DifferenceKind.VALUE
TYPE = DifferenceKind.TYPE
MISSING = DifferenceKind.MISSING
EXTRA = DifferenceKind.EXTRA

# Types whose values can be compared with == once their types are known equal.
_SCALARS = (str, int, bool, bytes, type(None))


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: DifferenceKind
    production: Any
    sister: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "production": self.production,
            "sister": self.sister,
        }


def escape_token(token: object) -> str:
    """One JSON-pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


class IgnoredPaths:
    """JSON pointers to leave out of the comparison; `*` matches one segment."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._exact: set[str] = set()
        self._wildcard: list[tuple[str, ...]] = []
        for pattern in patterns:
            if not pattern.startswith("/"):
                raise ValueError(f"ignored path {pattern!r} is not a JSON pointer (starts with /)")
            if "*" in pattern.split("/"):
                self._wildcard.append(tuple(pattern.split("/")[1:]))
            else:
                self._exact.add(pattern)

    def __bool__(self) -> bool:
        return bool(self._exact or self._wildcard)

    def __contains__(self, path: str) -> bool:
        if path in self._exact:
            return True
        if not self._wildcard:
            return False
        segments = path.split("/")[1:]
        return any(
            len(p) == len(segments) and all(a in ("*", b) for a, b in zip(p, segments, strict=True))
            for p in self._wildcard
        )


class StructuralDiff:
    """Compares two decoded events; configured once, called per pair."""

    def __init__(self, ignored: IgnoredPaths | None = None, float_tolerance: float = 0.0) -> None:
        if float_tolerance < 0:
            raise ValueError("float tolerance must be >= 0")
        self._ignored = ignored or IgnoredPaths()
        self._tolerance = float_tolerance

    def __call__(self, production: Any, sister: Any) -> list[Difference]:
        out: list[Difference] = []
        self._walk(production, sister, "", out)
        return out

    def _walk(self, a: Any, b: Any, path: str, out: list[Difference]) -> None:
        ta, tb = type(a), type(b)
        if ta is not tb and not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            self._add(out, path, TYPE, a, b)
            return
        if ta in _SCALARS:
            if a != b:
                self._add(out, path, VALUE, a, b)
        elif ta is float:
            if a != b and not self._floats_close(a, b):
                self._add(out, path, VALUE, a, b)
        elif isinstance(a, Mapping):
            self._walk_mapping(a, b, path, out)
        elif ta is list or ta is tuple:
            self._walk_sequence(a, b, path, out)
        elif a != b:
            self._add(out, path, VALUE, a, b)

    def _walk_mapping(self, a: Mapping, b: Mapping, path: str, out: list[Difference]) -> None:
        for key, va in a.items():
            child = f"{path}/{escape_token(key)}"
            if key not in b:
                self._add(out, child, MISSING, va, None)
                continue
            vb = b[key]
            # Fast path: the common case is equal scalars of the same type.
            if type(va) is type(vb) and type(va) in _SCALARS and va == vb:
                continue
            self._walk(va, vb, child, out)
        for key, vb in b.items():
            if key not in a:
                self._add(out, f"{path}/{escape_token(key)}", EXTRA, None, vb)

    def _walk_sequence(self, a: list | tuple, b: list | tuple, path: str, out: list[Difference]):
        for i, (va, vb) in enumerate(zip(a, b, strict=False)):
            if type(va) is type(vb) and type(va) in _SCALARS and va == vb:
                continue
            self._walk(va, vb, f"{path}/{i}", out)
        for i in range(len(b), len(a)):
            self._add(out, f"{path}/{i}", MISSING, a[i], None)
        for i in range(len(a), len(b)):
            self._add(out, f"{path}/{i}", EXTRA, None, b[i])

    def _floats_close(self, a: float, b: float) -> bool:
        if math.isnan(a) and math.isnan(b):
            return True
        return self._tolerance > 0 and abs(a - b) <= self._tolerance

    def _add(self, out: list[Difference], path: str, kind: DifferenceKind, a: Any, b: Any) -> None:
        if self._ignored and self._is_ignored(path):
            return
        out.append(Difference(path, kind, a, b))

    def _is_ignored(self, path: str) -> bool:
        # A pointer also covers everything below it.
        while path:
            if path in self._ignored:
                return True
            path = path.rpartition("/")[0]
        return False
