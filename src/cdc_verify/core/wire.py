"""Wire types of a msgpack payload, by JSON pointer.

Decoding hides some distinctions a consumer in another language may care about:
a msgpack float32 and float64 of equal value both become a Python float. The
verifier walks the raw bytes of both sides to name the wire types of a
difference, and to find such differences where the decoded values are equal.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from cdc_verify.core.diff import TYPE, Difference, escape_token, unescape_token

FLOAT32_MARKER = 0xCA


class WireError(ValueError):
    pass


_ABSENT = object()


def with_wire_types(
    differences: list[Difference],
    production: Mapping[bytes, bytes],
    sister: Mapping[bytes, bytes],
    decoded: tuple[Any, Any],
    is_ignored: Callable[[str], bool],
) -> list[Difference]:
    """Name the msgpack wire types of type differences, and add the float32/float64
    differences that decoding hides (equal values, different wire types).

    Only msgpack payloads on both sides are walked, and only when there is a type
    difference or a float32 marker byte: most pairs pay nothing.
    """
    if production.get(b"encoding") != b"msgpack" or sister.get(b"encoding") != b"msgpack":
        return differences
    p_payload, s_payload = production.get(b"payload", b""), sister.get(b"payload", b"")
    has_float32 = FLOAT32_MARKER in p_payload or FLOAT32_MARKER in s_payload
    if not has_float32 and all(d.kind is not TYPE for d in differences):
        return differences
    try:
        p_wire, s_wire = msgpack_wire_types(p_payload), msgpack_wire_types(s_payload)
    except WireError:
        return differences
    out = [
        Difference(d.path, d.kind, d.production, d.sister, p_wire.get(d.path), s_wire.get(d.path))
        if d.kind is TYPE or _differ(p_wire.get(d.path), s_wire.get(d.path))
        else d
        for d in differences
    ]
    reported = {d.path for d in differences}
    for path, p_type in p_wire.items():
        s_type = s_wire.get(path)
        if {p_type, s_type} != {"float32", "float64"} or path in reported or is_ignored(path):
            continue
        p_value, s_value = resolve(decoded[0], path), resolve(decoded[1], path)
        if p_value is _ABSENT or s_value is _ABSENT:
            continue  # not part of what the consumer returns
        out.append(Difference(path, TYPE, p_value, s_value, p_type, s_type))
    return out


def _differ(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


def resolve(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or _ABSENT."""
    value = document
    for token in pointer.split("/")[1:]:
        key = unescape_token(token)
        if isinstance(value, Mapping):
            value = value.get(key, _ABSENT)
        elif isinstance(value, list) and key.isascii() and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def msgpack_wire_types(payload: bytes) -> dict[str, str]:
    """JSON pointer -> wire type ("int", "float32", "float64", "str", "bin", "nil",
    "bool", "array", "map", "ext<code>") of every value in the payload."""
    out: dict[str, str] = {}
    try:
        end = _walk(memoryview(payload), out)
    except struct.error:  # a length or an ext code cut off at the end of the payload
        raise WireError("truncated") from None
    if end != len(payload):
        raise WireError(f"{len(payload) - end} bytes after the value")
    return out


def _walk(buf: memoryview, out: dict[str, str]) -> int:
    """Records every value's wire type; returns the position after the top value.

    Iterative: msgpack nests up to 1024 levels, deeper than Python's stack allows.
    Each open container on `stack` is [path, items left, is map, next array index].
    """
    pos = 0
    stack: list[list] = []
    path = ""
    while True:
        kind, pos, length = _header(buf, pos)
        out[path] = kind
        if kind == "map" or kind == "array":
            if length:
                stack.append([path, length, kind == "map", 0])
        else:
            pos += length
        # Find the next value to read: the next item of the innermost open container.
        while stack and stack[-1][1] == 0:
            stack.pop()
        if not stack:
            return pos
        top = stack[-1]
        top[1] -= 1
        if top[2]:
            key_kind, pos, key_len = _header(buf, pos)
            if key_kind != "str":
                raise WireError(f"{top[0] or '/'}: {key_kind} map key")
            key = bytes(buf[pos : pos + key_len]).decode("utf-8", "replace")
            pos += key_len
            path = f"{top[0]}/{escape_token(key)}"
        else:
            path = f"{top[0]}/{top[3]}"
            top[3] += 1


def _header(buf: memoryview, pos: int) -> tuple[str, int, int]:
    """(wire type, position after the header, payload bytes or item count)."""
    if pos >= len(buf):
        raise WireError("truncated")
    b = buf[pos]
    pos += 1
    if b <= 0x7F or b >= 0xE0:
        return "int", pos, 0
    if 0x80 <= b <= 0x8F:
        return "map", pos, b & 0x0F
    if 0x90 <= b <= 0x9F:
        return "array", pos, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return "str", pos, b & 0x1F
    if b == 0xC0:
        return "nil", pos, 0
    if b in (0xC2, 0xC3):
        return "bool", pos, 0
    if b == FLOAT32_MARKER:
        return "float32", pos, 4
    if b == 0xCB:
        return "float64", pos, 8
    if 0xCC <= b <= 0xD3:
        return "int", pos, 1 << ((b - 0xCC) & 3)
    size = _SIZED.get(b)
    if size is not None:
        kind, width = size
        (length,) = struct.unpack_from(_WIDTH[width], buf, pos)
        pos += width
        if kind == "ext":
            code = struct.unpack_from("b", buf, pos)[0]
            return f"ext{code}", pos + 1, length
        return kind, pos, length
    if 0xD4 <= b <= 0xD8:  # fixext 1, 2, 4, 8, 16
        code = struct.unpack_from("b", buf, pos)[0]
        return f"ext{code}", pos + 1, 1 << (b - 0xD4)
    raise WireError(f"byte 0x{b:02x} is no msgpack type")


_WIDTH = {1: ">B", 2: ">H", 4: ">I"}
_SIZED = {
    0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4),
    0xC7: ("ext", 1), 0xC8: ("ext", 2), 0xC9: ("ext", 4),
    0xD9: ("str", 1), 0xDA: ("str", 2), 0xDB: ("str", 4),
    0xDC: ("array", 2), 0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
}  # fmt: skip
