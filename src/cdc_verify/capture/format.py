"""The capture file: a stream's entries, byte-exact, streamed and compressed.

Layout (all integers big-endian):

    b"CDCVERIFY-CAPTURE\\n"                    magic: what this file is
    u32 n, n bytes of UTF-8 JSON              header: {"format", "version", "stream", ...}
    repeated blocks:
        u32 size > 0, u32 crc32, u32 count    `size` bytes of zlib data follow
        zlib(msgpack([[entry_id, [field, value, field, value, ...]], ...]))
    u32 0, u64 total                          end marker: `total` entries in all blocks

Entry ids, field names and values are kept as the bytes Redis returned, in order,
repeated field names included. A reader knows a truncated file (no end marker) from
a corrupt one (bad CRC or msgpack), and names the byte offset of either.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import msgpack

MAGIC = b"CDCVERIFY-CAPTURE\n"
VERSION = 1
BLOCK_ENTRIES = 1000
_U32 = struct.Struct(">I")
_BLOCK = struct.Struct(">III")
_U64 = struct.Struct(">Q")

RawEntry = tuple[bytes, Sequence[bytes]]  # (entry id, flat [field, value, ...])


class CaptureError(ValueError):
    """A capture file that cannot be read; the message names the file and byte offset."""


class CaptureWriter:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._file: BinaryIO = path.open("wb")
        meta = json.dumps({"format": "cdc-verify capture", "version": VERSION, **header}).encode()
        self._file.write(MAGIC + _U32.pack(len(meta)) + meta)
        self._block: list[list[Any]] = []
        self.count = 0

    def write(self, entry_id: bytes, flat_fields: Sequence[bytes]) -> None:
        self._block.append([entry_id, list(flat_fields)])
        if len(self._block) >= BLOCK_ENTRIES:
            self._flush()

    def _flush(self) -> None:
        if not self._block:
            return
        data = zlib.compress(msgpack.packb(self._block, use_bin_type=True), 1)
        self._file.write(_BLOCK.pack(len(data), zlib.crc32(data), len(self._block)) + data)
        self.count += len(self._block)
        self._block = []

    def close(self) -> None:
        """Writes the end marker: a file without one reads as truncated."""
        self._flush()
        self._file.write(_U32.pack(0) + _U64.pack(self.count))
        self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()  # no end marker: the partial file reads as truncated


class CaptureReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("rb")
        magic = self._file.read(len(MAGIC))
        if magic != MAGIC:
            raise CaptureError(f"{path}: not a cdc-verify capture (bad magic at byte 0)")
        size = self._read(_U32.size, "header length")
        (length,) = _U32.unpack(size)
        try:
            self.header: dict[str, Any] = json.loads(self._read(length, "header"))
        except ValueError as exc:
            raise CaptureError(f"{path}: unreadable header at byte {len(MAGIC) + 4}") from exc
        if self.header.get("version") != VERSION:
            raise CaptureError(
                f"{path}: capture format version {self.header.get('version')!r}, "
                f"this cdc-verify reads version {VERSION}"
            )

    def __iter__(self) -> Iterator[RawEntry]:
        total = 0
        while True:
            offset = self._file.tell()
            size_bytes = self._read(_U32.size, "block header", offset)
            (size,) = _U32.unpack(size_bytes)
            if size == 0:
                (declared,) = _U64.unpack(self._read(_U64.size, "end marker", offset))
                if declared != total:
                    raise CaptureError(
                        f"{self.path}: end marker at byte {offset} counts {declared} entries, "
                        f"the blocks hold {total}"
                    )
                return
            crc, count = struct.unpack(">II", self._read(8, "block header", offset))
            data = self._read(size, "block", offset)
            if zlib.crc32(data) != crc:
                raise CaptureError(f"{self.path}: corrupt block at byte {offset} (CRC mismatch)")
            try:
                entries = msgpack.unpackb(zlib.decompress(data), raw=True)
            except (zlib.error, ValueError, msgpack.UnpackException) as exc:
                raise CaptureError(f"{self.path}: corrupt block at byte {offset}: {exc}") from exc
            if len(entries) != count:
                raise CaptureError(f"{self.path}: block at byte {offset} holds a wrong count")
            yield from ((entry_id, flat) for entry_id, flat in entries)
            total += count

    def _read(self, size: int, what: str, offset: int | None = None) -> bytes:
        start = self._file.tell() if offset is None else offset
        data = self._file.read(size)
        if len(data) != size:
            raise CaptureError(
                f"{self.path}: truncated in the {what} at byte {start} "
                f"(file ends at byte {self._file.tell()})"
            )
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
