# The compiled module's interface (native/src/lib.rs; built by pip install -e . with a
# Rust toolchain, absent without one: cdc_verify/native.py imports it if it is there).
from collections.abc import Callable
from typing import Any

class ShapeWalker:
    """Mirrors core/shape.py's `_walk`."""

    def __init__(
        self,
        child: Callable[[str, Any], str],
        part: Callable[[str, type], str],
        sep: str,
        max_depth: int,
        max_parts: int,
        max_nodes: int,
        value_chars: int,
        max_kept: int,
    ) -> None: ...
    def walk(
        self, value: Any, wide: set[str] | frozenset[str]
    ) -> tuple[frozenset[str], list[tuple[str, str]]]: ...

def same_types(a: Any, b: Any) -> bool:
    """Mirrors core/diff.py's `_same_types`."""
