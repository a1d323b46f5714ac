"""Which hot path runs: the compiled module `cdc_verify._native`, or pure Python.

The one home of that choice (docs/architecture.md, "The native hot path"). The module is
built from native/ (Rust, pyo3) by `pip install -e .` where a Rust toolchain is found;
without one the package installs all the same and runs its pure-Python functions, which
stay the reference: a native function must return exactly what its pure one returns, and
its caller falls back to the pure one for any value it raises on. `CDC_VERIFY_PURE=1`
forces the pure path (the tests' second run, bench/throughput.py's native/pure column).

Decided once, at import, like any other capability of the platform: the core reads no
settings, it asks `NATIVE` whether the compiled module is there.
"""

from __future__ import annotations

import os
from types import ModuleType

PURE_ENV = "CDC_VERIFY_PURE"  # set (to anything but ""): the pure-Python path


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(PURE_ENV):
        return None, f"pure Python ({PURE_ENV} is set)"
    try:
        from cdc_verify import _native
    except ImportError:
        return None, (
            "pure Python: the compiled module cdc_verify._native is not built (no Rust "
            "toolchain at install time?); with cargo on PATH, pip install -e . builds it"
        )
    return _native, "native (cdc_verify._native, Rust)"


NATIVE, HOT_PATH = _load()  # the module or None; one line a user sees (--version, the log)
