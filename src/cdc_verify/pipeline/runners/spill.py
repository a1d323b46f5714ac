"""The waiting room's spill (core/waiting.py): big waiting entries in files, one each.

The directory is made on the first spill, private to this process (mode 0700: the
payloads are the application's data), in `parent` or the system's temporary directory,
and removed by `close()`. The files are no state to keep: after a restart the join
state is rebuilt from the streams' pending lists, so a crash leaves only litter.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class SpillDirectory:
    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._dir: Path | None = None
        self._next = 0
        self.files = 0
        self.bytes = 0
        self.failed = False  # a put could not write its file
        self._sizes: dict[int, int] = {}

    @property
    def path(self) -> Path | None:
        """The directory, once something was spilled."""
        return self._dir

    def put(self, blob: bytes) -> int | None:
        """None when the file cannot be written (the disk is full, say): logged once, and
        the waiting entries stay in memory."""
        handle, self._next = self._next, self._next + 1
        try:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="cdc-verify-spill-", dir=self._parent))
            (self._dir / str(handle)).write_bytes(blob)
        except OSError as exc:
            if not self.failed:
                log.warning("cannot spill waiting entries to %s (%s): keeping them in memory, "
                            "past --waiting-max-bytes", self._parent or "the temporary "
                            "directory", exc)  # fmt: skip
            self.failed = True
            if self._dir is not None:
                (self._dir / str(handle)).unlink(missing_ok=True)
            return None
        self._sizes[handle] = len(blob)
        self.files += 1
        self.bytes += len(blob)
        return handle

    def take(self, handle: int) -> bytes:
        assert self._dir is not None
        path = self._dir / str(handle)
        blob = path.read_bytes()
        path.unlink()
        self.files -= 1
        self.bytes -= self._sizes.pop(handle)
        return blob

    def clear(self) -> None:
        if self._dir is not None:
            for handle in self._sizes:
                (self._dir / str(handle)).unlink(missing_ok=True)
        self._sizes.clear()
        self.files = self.bytes = 0

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._sizes.clear()
        self.files = self.bytes = 0
