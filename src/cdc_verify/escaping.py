"""How stream data (ids, payload keys and values, consumer errors) is shown to people.

Stream data is whatever a producer wrote: it may hold terminal escape sequences, bidi
overrides, newlines that forge a log line, `[...]` that rich reads as markup, or Markdown
and HTML. `visible` is the one rule every output applies first: a character Python's
`str.isprintable()` refuses (controls such as ESC and newline, format characters such as
U+202E, separators other than the space, lone surrogates) is written as its escape,
`\\n`, `\\x1b`, `\\u202e`, as `repr` would. The other functions wrap it for one kind of output.
"""

from __future__ import annotations

import html
import re
from typing import Any

from rich.markup import escape as rich_escape
from rich.text import Text

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with every non-printable character written as its escape."""
    if text.isprintable():
        return text  # the common case, checked in C
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def terminal_text(value: Any) -> Text:
    """A rich Text of `value`: neither markup nor emoji codes are read in it, and its
    controls are visible (a table cell, or a part of a line built with Text.assemble)."""
    return Text(visible(str(value)))


def terminal_markup(value: Any) -> str:
    """`value` inside a rich markup string (where rich wants markup, as a progress bar's
    description): its `[...]` escaped, its controls visible."""
    return rich_escape(visible(str(value)))


def json_visible(dumped: str) -> str:
    """JSON text (json.dumps with ensure_ascii=False) with the characters `visible` escapes
    written as \\uXXXX. Outside its strings JSON text holds printable ASCII and newlines
    only, so each such character is inside a string, where the escape means the same."""
    if dumped.replace("\n", " ").isprintable():
        return dumped
    return "".join(c if c.isprintable() or c == "\n" else _json_escaped(c) for c in dumped)


def _json_escaped(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes an astral character
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def html_text(value: Any) -> str:
    """`value` as HTML text: controls visible, then `&<>"'` escaped."""
    return html.escape(visible(str(value)))


# Markdown: what opens an inline construct in a table cell (code, emphasis, a link or an
# image, raw HTML, an entity, strikethrough, math, a cell's end), backslash-escaped as
# CommonMark allows any ASCII punctuation to be; `<` so escaped never opens HTML.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~!()$])")


def markdown_text(value: Any, limit: int | None = None) -> str:
    """`value` as literal Markdown text in a table cell: controls visible, what Markdown
    would read escaped; cut to `limit` characters (with …) before it is escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _cut(visible(str(value)), limit))


def markdown_code(value: Any, limit: int | None = None) -> str:
    """`value` as a Markdown code span in a table cell: fenced by more backticks than it
    holds in a row, its `|` escaped (GFM tables split on it even in code), controls
    visible; cut to `limit` characters (with …) first."""
    text = _cut(visible(str(value)), limit).replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
