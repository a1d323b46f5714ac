"""The shape of a decoded event: what kind of event it is, not what it says.

Two comments with different bodies have the same shape; a comment with a GIF and one
with rich text, or an approved one and a removed one, do not. A shape is the set of
`Part`s of the value the consumer returned, one per place in it (docs/coverage.md):

- its JSON-pointer path, list indices written `*` (all items of a list share their parts,
  so a list of three awards and one of five have the same shape);
- its type: map, list, str, int, float, bool, null, bin, or another type's name;
- for a string of up to SHAPE_VALUE_CHARS characters and for a bool, its value: the
  candidates for enum-like fields (approval_state, media type, rich-text kinds).
  Which candidates stay in a shape is decided where shapes are counted
  (coverage/tally.py): a path with more distinct values than a few is not enum-like.

So the parts present say which optional parts an event has (an absent key or an empty
list has no parts below it). Nothing deeper than MAX_SHAPE_DEPTH levels, no more than
MAX_SHAPE_PARTS parts and no more than MAX_SHAPE_NODES values are taken: a hostile or
huge payload cannot make a shape unbounded, or slow.
"""

from __future__ import annotations

from typing import Any

from cdc_verify.pipeline.core.diff import escape_token

SHAPE_VALUE_CHARS = 40
MAX_SHAPE_DEPTH = 16
MAX_SHAPE_PARTS = 256
MAX_SHAPE_NODES = 10_000

_TYPE_NAMES = {
    dict: "map", list: "list", tuple: "list", str: "str", int: "int", float: "float",
    bool: "bool", type(None): "null", bytes: "bin",
}  # fmt: skip


# (path, type, value): value is a short string or a bool, None for other types. Plain
# tuples, not a NamedTuple: building one per part of every production event shows.
Part = tuple[str, str, str | bool | None]
Shape = frozenset[Part]


def shape_of(value: Any) -> Shape:
    """The parts of a decoded event (any value a consumer returns; never raises).

    This runs once per production event, so leaves (most of an event) are handled in
    line and only containers go on the stack.
    """
    parts: set[Part] = set()
    add = parts.add
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    budget = MAX_SHAPE_NODES
    while stack and budget > 0 and len(parts) < MAX_SHAPE_PARTS:
        path, node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            add((path, "map", None))
            children: Any = node.items()
            prefix = path + "/"
        elif kind is list or kind is tuple:
            add((path, "list", None))
            prefix = path + "/*"
            children = ((None, item) for item in node)
        else:
            _leaf(add, path, node)
            continue
        if depth >= MAX_SHAPE_DEPTH:
            continue
        depth += 1
        for key, item in children:
            budget -= 1
            if budget < 0 or len(parts) >= MAX_SHAPE_PARTS:
                break
            if key is None:
                child = prefix
            elif type(key) is str and "/" not in key and "~" not in key:
                child = prefix + key
            else:
                child = prefix + _token(key)
            t = type(item)
            if t is dict or t is list or t is tuple:
                stack.append((child, item, depth))
            elif t is str:
                add((child, "str", item if len(item) <= SHAPE_VALUE_CHARS else None))
            elif t is bool:
                add((child, "bool", item))
            else:
                add((child, _TYPE_NAMES.get(t) or t.__name__, None))
    return frozenset(parts)


def _leaf(add: Any, path: str, node: Any) -> None:
    kind = type(node)
    if kind is str:
        add((path, "str", node if len(node) <= SHAPE_VALUE_CHARS else None))
    elif kind is bool:
        add((path, "bool", node))
    else:
        add((path, _TYPE_NAMES.get(kind) or kind.__name__, None))


def _token(key: Any) -> str:
    """A map key as a path token; a key whose str() raises is named by its type."""
    try:
        return escape_token(key)
    except Exception:  # a consumer's object with a hostile __str__
        return f"<{type(key).__name__}>"
