"""The shape of a decoded event: what kind of event it is, not what it says.

Two comments with different bodies have the same shape; a comment with a GIF and one
with rich text, or an approved one and a removed one, do not. A shape is the set of
`Part`s of the value the consumer returned, one per place in it (docs/coverage.md):

- its JSON-pointer path, list indices written `*` (all items of a list share their parts,
  so a list of three awards and one of five have the same shape);
- its type: map, list, str, int, float, bool, null, bin, decimal, datetime, date, time,
  timedelta, uuid, or another type's name;
- for a string of up to SHAPE_VALUE_CHARS characters and for a bool, its value, when
  the path is enum-like (approval_state, media type, rich-text kinds): `ShapeRules`
  learns, per entity, which paths are, from the values seen. A path past ENUM_VALUES
  distinct values is "wide" (an id, a name, a body) and carries no value from then on;
  where shapes are counted (core/coverage.py) it loses its values in the shapes taken
  before, too, so the counts do not depend on the order of the events.

So the parts present say which optional parts an event has (an absent key or an empty
list has no parts below it). A part is one string, `path NUL type [NUL value]`: strings
are no objects the garbage collector walks, and a run keeps thousands of shapes.

Nothing deeper than MAX_SHAPE_DEPTH levels, no more than MAX_SHAPE_PARTS parts and no
more than MAX_SHAPE_NODES values are taken: a hostile or huge payload cannot make a
shape unbounded, or slow.
"""

from __future__ import annotations

import itertools
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from cdc_verify.core.diff import escape_token
from cdc_verify.native import NATIVE

SHAPE_VALUE_CHARS = 40
ENUM_VALUES = 8
MAX_SHAPE_DEPTH = 16
MAX_SHAPE_PARTS = 256
MAX_SHAPE_NODES = 10_000
MAX_KEY_CHARS = 100  # of a map key in a path: a longer one is cut, and ends with "…"
MAX_SHAPES = 2_000  # counted per entity, by default (the setting coverage_max_shapes)

_TYPE_NAMES = {
    dict: "map", list: "list", tuple: "list", str: "str", int: "int", float: "float",
    bool: "bool", type(None): "null", bytes: "bin",
    # the row consumer's (consumers/row.py)
    Decimal: "decimal", datetime: "datetime", date: "date", time: "time",
    timedelta: "timedelta", UUID: "uuid",
}  # fmt: skip
SEP = "\x00"  # between a part's path, type and value; a NUL in a key is written \u0000

Part = str
Shape = frozenset[Part]


def part_fields(part: Part) -> tuple[str, str, str | None]:
    """(path, type, value or None) of a part."""
    path, kind, *value = part.split(SEP, 2)
    return path, kind, value[0] if value else None


class ShapeRules:
    """The enum-like paths of each entity, learnt from the shapes taken so far."""

    def __init__(self, enum_values: int = ENUM_VALUES) -> None:
        self._enum_values = enum_values
        self._values: dict[str, dict[str, set[str]]] = {}  # entity -> path -> values seen
        self.wide: dict[str, set[str]] = {}  # entity -> paths that carry no value
        self.widened = 0  # how many paths went wide so far: a cheap "anything new?"
        # entity -> (its wide paths' count when made, the layouts of its maps): a layout
        # names which children carry no value, so it is made afresh once a path goes wide.
        self._layouts: dict[str, tuple[int, Layouts]] = {}

    def add_wide(self, entity: str, path: str) -> None:
        """Takes `path` as wide, as another run learnt it (the live worker's state server
        keeps the wide paths, so a restarted worker does not learn them again)."""
        wide = self.wide.setdefault(entity, set())
        if path not in wide:
            wide.add(path)
            self._values.get(entity, {}).pop(path, None)
            self.widened += 1

    def shape(self, entity: str, value: Any) -> Shape:
        wide = self.wide.get(entity)
        if wide is None:
            wide = self.wide[entity] = set()
        walked = _native_walk(value, wide)
        if walked is None:  # the pure path, or a value the native walk gave up on
            layouts = self._layouts.get(entity)
            if layouts is None or layouts[0] != len(wide):  # wide paths only ever grow
                layouts = self._layouts[entity] = (len(wide), {})
            walked = _walk(value, wide, layouts[1])
        parts, valued = walked
        values = self._values.get(entity)
        if values is None:
            values = self._values[entity] = {}
        widened = False
        for path, part_value in valued:
            seen = values.get(path)
            if seen is None:
                seen = values[path] = set()
            elif part_value in seen:
                continue  # most values: one of the few an enum-like path takes
            seen.add(part_value)
            if len(seen) > self._enum_values:
                wide.add(path)
                del values[path]
                widened = True
                self.widened += 1
        shape = frozenset(parts)
        return project(shape, wide) if widened else shape


def project(shape: Shape, wide: set[str] | frozenset[str]) -> Shape:
    """The shape without the values of `wide` paths."""
    if not wide:
        return shape
    out = set()
    for part in shape:
        if part.count(SEP) == 2:
            path, kind, _ = part.split(SEP, 2)
            if path in wide:
                part = path + SEP + kind
        out.add(part)
    return frozenset(out)


def shape_of(value: Any, wide: set[str] | frozenset[str] = frozenset()) -> Shape:
    """The parts of a decoded event (any value a consumer returns; never raises); the
    paths in `wide` carry no value."""
    walked = _native_walk(value, wide) or _walk(value, wide)
    return frozenset(walked[0])


Walked = tuple[AbstractSet[str], list[tuple[str, str]]]  # the parts; (path, value) valued


def _native_walk(value: Any, wide: set[str] | frozenset[str]) -> Walked | None:
    """`_walk` by the native module (its ShapeWalker mirrors it), or None: no native
    module, or a value it gave up on (the pure walk then says what happens)."""
    if _WALKER is None:
        return None
    try:
        return _WALKER.walk(value, wide)
    except Exception:  # e.g. a map that a key's __str__ changed while it was walked
        return None


def _walk(
    value: Any, wide: set[str] | frozenset[str], layouts: Layouts | None = None
) -> tuple[set[str], list[tuple[str, str]]]:
    """The parts, and (path, value) of those that carry a value.

    This runs once per production event, so leaves (most of an event) are handled in
    the loop over a container's items, and only containers go on the stack. With
    `layouts` (made for this `wide`), a map whose keys and value types were met before
    adds its valueless leaves' parts at once (`_Layout`).
    """
    parts: set[str] = set()
    valued: list[tuple[str, str]] = []
    add = parts.add
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    budget = MAX_SHAPE_NODES
    while stack and budget > 0 and len(parts) < MAX_SHAPE_PARTS:
        path, node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            add(path + SEP + "map")
            n = len(node)
            # A layout only where the loop below could not stop early (the same parts),
            # and for maps big enough to pay for looking it up.
            if (
                layouts is not None
                and n >= LAYOUT_MIN_KEYS
                and depth < MAX_SHAPE_DEPTH
                and n <= budget
                and len(parts) + n <= MAX_SHAPE_PARTS
            ):
                layout = _layout_of(layouts, path, node, wide)
                if layout is not None:
                    budget -= n
                    parts.update(layout.fixed)
                    items = tuple(node.values())
                    depth += 1
                    for index, child, code, other in layout.special:
                        item = items[index]
                        if code is _CONTAINER:
                            stack.append((child, item, depth))
                        elif code is _STR:
                            if len(item) <= SHAPE_VALUE_CHARS:
                                add(child + "\x00str\x00" + item)
                                valued.append((child, item))
                            else:
                                add(other)
                        else:
                            text = "true" if item else "false"
                            add(child + "\x00bool\x00" + text)
                            valued.append((child, text))
                    continue
            children: Any = node.items()
        elif kind is list or kind is tuple:
            add(path + SEP + "list")
            children = zip(_REPEAT_NONE, node, strict=False)
        elif depth == 0:  # a root that is no container: the one child of itself
            children = ((_HERE, node),)
        else:  # only containers are put on the stack
            continue
        if depth >= MAX_SHAPE_DEPTH:
            continue
        depth += 1
        # The paths below `path`, and their parts by type, are the same in most events.
        below = _BELOW.get(path)
        if below is None:
            if len(_BELOW) >= _MAX_CACHED_PATHS:
                _BELOW.clear()
                _cached[0] = 0
            below = _BELOW[path] = {}
        for key, item in children:
            budget -= 1
            if budget < 0 or len(parts) >= MAX_SHAPE_PARTS:
                break
            try:
                child, typed = below[key]
            except Exception:  # new, or a key that cannot be hashed again
                child, typed = _child(path, key), {}
                # Only str keys (and None, a list item's): 1, True and 1.0 are one key
                # to a dict but each is named as itself.
                if _cached[0] < _MAX_CACHED_KEYS and (type(key) is str or key is None):
                    below[key] = (child, typed)
                    _cached[0] += 1
            t = type(item)
            if t is dict or t is list or t is tuple:
                stack.append((child, item, depth))
            elif t is str and len(item) <= SHAPE_VALUE_CHARS and child not in wide:
                add(child + "\x00str\x00" + item)
                valued.append((child, item))
            elif t is bool and child not in wide:
                text = "true" if item else "false"
                add(child + "\x00bool\x00" + text)
                valued.append((child, text))
            else:
                part = typed.get(t)
                if part is None:
                    part = typed[t] = _part(child, t)
                add(part)
    return parts, valued


class _Layout(NamedTuple):
    """What a map of given keys and value types yields, at one path: the parts of its
    leaves that carry no value, and per other child (item index, path, what it is, its
    part when a str is too long to carry its value), in item order."""

    fixed: tuple[str, ...]
    special: tuple[tuple[int, str, str, str], ...]


Layouts = dict[tuple[str, tuple[Any, ...], tuple[type, ...]], _Layout]
_CONTAINER, _STR, _BOOL = "container", "str", "bool"
MAX_LAYOUTS = 1024  # per entity; past it, maps of new layouts are walked item by item
LAYOUT_MIN_KEYS = 6  # a smaller map is walked faster item by item (measured)


def _layout_of(
    layouts: Layouts, path: str, node: dict[Any, Any], wide: set[str] | frozenset[str]
) -> _Layout | None:
    """The layout of `node` at `path` (None: walk it item by item)."""
    try:
        key = (path, tuple(node), tuple(map(type, node.values())))
        layout = layouts.get(key)
    except TypeError:  # a key that cannot be hashed again
        return None
    if layout is not None:
        return layout
    # Only short str keys: no other key is kept (a huge one), or named otherwise.
    if len(layouts) >= MAX_LAYOUTS or not all(
        type(k) is str and len(k) <= MAX_KEY_CHARS for k in key[1]
    ):
        return None
    fixed: list[str] = []
    special: list[tuple[int, str, str, str]] = []
    for index, (name, t) in enumerate(zip(key[1], key[2], strict=True)):
        child = _child(path, name)
        if t is dict or t is list or t is tuple:
            special.append((index, child, _CONTAINER, ""))
        elif t is str and child not in wide:
            special.append((index, child, _STR, child + SEP + "str"))
        elif t is bool and child not in wide:
            special.append((index, child, _BOOL, ""))
        else:
            fixed.append(_part(child, t))
    layout = layouts[key] = _Layout(tuple(fixed), tuple(special))
    return layout


_REPEAT_NONE = itertools.repeat(None)  # the "key" of every list item: its path ends in *
_HERE = object()  # the "key" of a root that is no container
# Path -> key -> (child path, type -> part): a bounded cache of the strings every event
# of the same structure would otherwise build again. Past the bounds (hostile keys, a
# model with a map per id) new keys are not cached, and new paths start it afresh.
_BELOW: dict[str, dict[Any, tuple[str, dict[type, str]]]] = {}
_cached = [0]  # keys cached in all of _BELOW
_MAX_CACHED_PATHS = 4096
_MAX_CACHED_KEYS = 65_536


def _part(path: str, kind: type) -> Part:
    """The part of a value of type `kind` at `path` that carries no value."""
    return path + SEP + (_TYPE_NAMES.get(kind) or kind.__name__)


def _child(path: str, key: Any) -> str:
    """The path of `key`'s child of `path` (None: a list item's, `_HERE`: the root's)."""
    if key is None:
        return path + "/*"
    if key is _HERE:
        return path
    if type(key) is not str and isinstance(key, str):
        key = str.__str__(key)  # named by its value, as the caches (equal keys) would
    if (
        type(key) is str
        and len(key) <= MAX_KEY_CHARS
        and "/" not in key
        and "~" not in key
        and SEP not in key
    ):
        return path + "/" + key
    return path + "/" + _token(key)


def _token(key: Any) -> str:
    """A map key as a path token, cut at MAX_KEY_CHARS (a payload's huge key must not make
    huge parts); a key whose str() raises is named by its type."""
    try:
        token = escape_token(key)
    except Exception:  # a consumer's object with a hostile __str__
        token = f"<{type(key).__name__}>"
    if len(token) > MAX_KEY_CHARS:
        token = token[:MAX_KEY_CHARS] + "…"
    return token.replace(SEP, "\\u0000")


def native_walker(native: Any) -> Any:
    """A ShapeWalker of the compiled module `native` (native/src/lib.rs), given this
    module's rules (`_child`, `_part`) and caps, which it mirrors."""
    return native.ShapeWalker(
        _child, _part, SEP, MAX_SHAPE_DEPTH, MAX_SHAPE_PARTS, MAX_SHAPE_NODES,
        SHAPE_VALUE_CHARS, _MAX_CACHED_KEYS,
    )  # fmt: skip


_WALKER = None if NATIVE is None else native_walker(NATIVE)  # None: the pure walk
