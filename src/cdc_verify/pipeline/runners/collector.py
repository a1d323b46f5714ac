"""The garbage collector while a live worker runs: fewer young collections.

Each entry makes a few dozen container objects (its decoded values, record, outcome),
nearly all freed by reference counting once its batch is committed; the worker makes
almost no cyclic garbage. CPython's default (a young collection every 700 net
allocations) walks each batch's live objects dozens of times before they die, so
while a worker runs the young threshold is YOUNG_THRESHOLD: cyclic garbage waits a
little longer (a few MB at most), and nothing else changes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_running = 0  # workers running in this process (tests run several)
_saved: tuple[int, ...] = ()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raises the young threshold while at least one worker runs, then restores it."""
    global _running, _saved
    with _lock:
        if _running == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), *_saved[1:])
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.set_threshold(*_saved)
