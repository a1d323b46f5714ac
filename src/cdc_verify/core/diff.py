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
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from cdc_verify.native import NATIVE
from cdc_verify.schemas.verdicts import DifferenceKind

VALUE = DifferenceKind.VALUE
TYPE = DifferenceKind.TYPE
MISSING = DifferenceKind.MISSING
EXTRA = DifferenceKind.EXTRA

# Types whose values can be compared with == once their types are known equal. The
# row consumer's (consumers/row.py) are among them; a Decimal NaN and a naive against an
# aware datetime or time are told apart before (`_walk`).
_SCALARS = frozenset(
    {str, int, bool, bytes, float, type(None), Decimal, datetime, date, time, timedelta, UUID}
)
# Types that may be naive or aware: one of each is a `type` difference, never compared.
_ZONED = (datetime, time)
# Containers whose items _same_types checks (the walk descends into the same ones).
_CONTAINERS = frozenset({dict, list, tuple})
_ABSENT = object()
# Levels the diff descends into; below, two subtrees are compared whole (deep_same).
MAX_WALK_DEPTH = 100


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: DifferenceKind
    production: Any
    sister: Any
    # msgpack wire types, named on type differences (e.g. "float32" vs "float64")
    production_wire: str | None = None
    sister_wire: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "kind": self.kind.value,
            "production": self.production,
            "sister": self.sister,
        }
        if self.production_wire is not None or self.sister_wire is not None:
            out["production_wire"] = self.production_wire
            out["sister_wire"] = self.sister_wire
        return out


def _same_types(a: Any, b: Any) -> bool:
    """Whether two values that compare equal also have the same types throughout.

    Equal values can only differ in type at numeric leaves (1 == 1.0 == True) or
    in the kind of mapping; lists, tuples, str, bytes and None never equal another type.
    """
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is dict:
        for key, va in a.items():
            vb = b[key]
            tv = type(va)
            if tv is not type(vb) or (tv in _CONTAINERS and not _same_types(va, vb)):
                return False
    elif ta is list or ta is tuple:
        for va, vb in zip(a, b, strict=True):
            tv = type(va)
            if tv is not type(vb) or (tv in _CONTAINERS and not _same_types(va, vb)):
                return False
    elif isinstance(a, Mapping | tuple):
        return False  # rare shapes: let the full walk decide
    return True


def _same_types_native(a: Any, b: Any) -> bool:
    """`_same_types` by the native module (its same_types mirrors it); the pure function
    for any pair it raises on (another type of value, nesting past its depth, a pair the
    pure function raises on: it raises again)."""
    try:
        return NATIVE.same_types(a, b)  # type: ignore[union-attr]
    except Exception:
        return _same_types(a, b)


same_types = _same_types if NATIVE is None else _same_types_native  # what the diff calls


def deep_same(a: Any, b: Any) -> bool:
    """Equal values of equal types throughout, at any depth, cycles included.

    Iterative, so no nesting depth can overflow the stack; a pair of containers
    met again is taken as equal (it is being compared already).
    """
    stack = [(a, b)]
    seen: set[tuple[int, int]] = set()
    while stack:
        x, y = stack.pop()
        tx = type(x)
        if tx is not type(y):
            return False
        if tx is dict or tx is list or tx is tuple:
            pair = (id(x), id(y))
            if pair in seen:
                continue
            seen.add(pair)
            if len(x) != len(y):
                return False
            if tx is dict:
                for key, vx in x.items():
                    if key not in y:
                        return False
                    stack.append((vx, y[key]))
            else:
                stack.extend(zip(x, y, strict=True))
        elif tx is float or tx is Decimal:
            if x != y and not (_is_nan(x) and _is_nan(y)):
                return False
        elif (tx in _ZONED and (x.tzinfo is None) is not (y.tzinfo is None)) or x != y:
            return False
    return True


def _is_nan(value: Any) -> bool:
    return value.is_nan() if type(value) is Decimal else math.isnan(value)


def escape_token(token: object) -> str:
    """One JSON-pointer reference token (RFC 6901)."""
    text = str(token)
    if "~" in text or "/" in text:
        return text.replace("~", "~0").replace("/", "~1")
    return text


def unescape_token(token: str) -> str:
    """A JSON-pointer reference token back to the key it names (RFC 6901)."""
    return token.replace("~1", "/").replace("~0", "~")


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
        return self.pattern_of(path) is not None

    def pattern_of(self, path: str) -> str | None:
        """The pattern that names exactly this path, as it was given; None if none does."""
        if path in self._exact:
            return path
        if not self._wildcard:
            return None
        segments = path.split("/")[1:]
        for p in self._wildcard:
            if len(p) == len(segments) and all(
                a in ("*", b) for a, b in zip(p, segments, strict=True)
            ):
                return "/" + "/".join(p)
        return None


class StructuralDiff:
    """Compares two decoded events; configured once, called per pair."""

    def __init__(self, ignored: IgnoredPaths | None = None, float_tolerance: float = 0.0) -> None:
        if float_tolerance < 0:
            raise ValueError("float tolerance must be >= 0")
        self._ignored = ignored or IgnoredPaths()
        self._tolerance = float_tolerance
        self._suppressed: dict[str, int] | None = None  # during a call: the audit counts

    def __call__(
        self, production: Any, sister: Any, suppressed: dict[str, int] | None = None
    ) -> list[Difference]:
        """The differences; each one an ignored path hides is counted in `suppressed`
        under the pattern that hid it (the audit of --ignore-path)."""
        # Most pairs match: a C-level == plus a check of container and leaf types
        # settles them at half the cost of the walk below.
        try:
            if production == sister and same_types(production, sister):
                return []
        except RecursionError:  # nested past Python's stack: the bounded walk decides
            pass
        out: list[Difference] = []
        self._suppressed = suppressed
        try:
            self._walk(production, sister, "", out, 0, set())
        finally:
            self._suppressed = None
        return out

    def _walk(
        self, a: Any, b: Any, path: str, out: list[Difference], depth: int, open_: set
    ) -> None:
        ta = type(a)
        if ta is not type(b) and not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            self._add(out, path, TYPE, a, b)
        elif ta is float:
            if a != b and not self._floats_close(a, b):
                self._add(out, path, VALUE, a, b)
        elif ta is Decimal:
            if a != b and not (a.is_nan() and b.is_nan()):
                self._add(out, path, VALUE, a, b)
        elif ta in _ZONED and (a.tzinfo is None) is not (b.tzinfo is None):
            self._add(out, path, TYPE, a, b)  # naive against aware: legacy code sees tzinfo
        elif ta in _SCALARS:
            if a != b:
                self._add(out, path, VALUE, a, b)
        elif ta is dict or ta is list or ta is tuple or isinstance(a, Mapping):
            if depth >= MAX_WALK_DEPTH:
                # msgpack nests up to 1024 levels; Python's stack does not go that far.
                if not deep_same(a, b):
                    self._add(out, path, VALUE, a, b)
                return
            pair = (id(a), id(b))
            if pair in open_:
                return  # a value that contains itself: this pair is being compared above
            open_.add(pair)
            if ta is list or ta is tuple:
                self._walk_sequence(a, b, path, out, depth + 1, open_)
            else:
                self._walk_mapping(a, b, path, out, depth + 1, open_)
            open_.discard(pair)
        elif a != b:
            self._add(out, path, VALUE, a, b)

    # The child path is only built for values that differ: most do not.
    def _walk_mapping(
        self, a: Mapping, b: Mapping, path: str, out: list[Difference], depth: int, open_: set
    ) -> None:
        missing = 0
        for key, va in a.items():
            vb = b.get(key, _ABSENT)
            tv = type(va)
            if tv is type(vb) and tv in _SCALARS and va == vb:
                continue
            if vb is _ABSENT:
                missing += 1
                self._add(out, f"{path}/{escape_token(key)}", MISSING, va, None)
            else:
                self._walk(va, vb, f"{path}/{escape_token(key)}", out, depth, open_)
        if len(b) > len(a) - missing:  # b holds keys a lacks
            for key, vb in b.items():
                if key not in a:
                    self._add(out, f"{path}/{escape_token(key)}", EXTRA, None, vb)

    def _walk_sequence(
        self,
        a: list | tuple,
        b: list | tuple,
        path: str,
        out: list[Difference],
        depth: int,
        open_: set,
    ) -> None:
        for i, (va, vb) in enumerate(zip(a, b, strict=False)):
            tv = type(va)
            if tv is type(vb) and tv in _SCALARS and va == vb:
                continue
            self._walk(va, vb, f"{path}/{i}", out, depth, open_)
        for i in range(len(b), len(a)):
            self._add(out, f"{path}/{i}", MISSING, a[i], None)
        for i in range(len(a), len(b)):
            self._add(out, f"{path}/{i}", EXTRA, None, b[i])

    def _floats_close(self, a: float, b: float) -> bool:
        if math.isnan(a) and math.isnan(b):
            return True
        return self._tolerance > 0 and abs(a - b) <= self._tolerance

    def _add(self, out: list[Difference], path: str, kind: DifferenceKind, a: Any, b: Any) -> None:
        if self._ignored and self.ignores(path, self._suppressed):
            return
        out.append(Difference(path, kind, a, b))

    def ignores(self, path: str, suppressed: dict[str, int] | None) -> bool:
        """Whether a difference at `path` is ignored; if so it is counted in `suppressed`."""
        if not self._ignored:
            return False
        pattern = self._covering(path)
        if pattern is None:
            return False
        if suppressed is not None:
            suppressed[pattern] = suppressed.get(pattern, 0) + 1
        return True

    def _covering(self, path: str) -> str | None:
        # A pointer also covers everything below it.
        while path:
            pattern = self._ignored.pattern_of(path)
            if pattern is not None:
                return pattern
            path = path.rpartition("/")[0]
        return None
