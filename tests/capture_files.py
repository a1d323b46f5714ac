"""Capture files built byte by byte, to give readers what no cdc-verify writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack

from cdc_verify.pipeline.capture.format import MAGIC


def with_block(path: Path, entries: Any, count: int | None = None,
               data: bytes | None = None) -> Path:  # fmt: skip
    """A capture holding one block of `entries` (any msgpack value; or `data`, its
    compressed bytes) under a valid CRC, declaring `count` entries (default: len(entries))."""
    if data is None:
        data = zlib.compress(msgpack.packb(entries, use_bin_type=True))
    meta = b'{"version": 1, "stream": "s"}'
    n = len(entries) if count is None else count
    block = struct.pack(">III", len(data), zlib.crc32(data), n) + data
    path.write_bytes(MAGIC + struct.pack(">I", len(meta)) + meta + block
                     + struct.pack(">IQ", 0, n))  # fmt: skip
    return path
