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

A block expands to at most MAX_BLOCK_BYTES: the writer closes a block at BLOCK_ENTRIES
entries or BLOCK_TARGET_BYTES, and refuses an entry that alone would pass the bound; a
reader refuses a block that expands past it (a corrupt file, or a compression bomb)
after decompressing no more than that. A block whose CRC holds but whose content is not
a list of `count` [entry id, [field, value, ...]] of bytes is corrupt too.
"""

from __future__ import annotations

import json
import re
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
BLOCK_TARGET_BYTES = 16 * 2**20  # a block is closed once its entries hold this much
MAX_BLOCK_BYTES = 128 * 2**20  # what one block may expand to (its msgpack bytes)
MAX_HEADER_BYTES = 2**20
# What msgpack adds per value at most (a bin 32 or array 32 header); per entry, the
# entry's and its field list's array headers.
_PACK_OVERHEAD = 5
_ENTRY_ID = re.compile(rb"[0-9]{1,20}-[0-9]{1,20}")
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
        self._block_bytes = 0
        self.count = 0

    def write(self, entry_id: bytes, flat_fields: Sequence[bytes]) -> None:
        size = packed_size(entry_id, flat_fields)
        if size > MAX_BLOCK_BYTES:
            raise CaptureError(
                f"{self.path}: entry {entry_id.decode('ascii', 'replace')} is {size:,} bytes, "
                f"more than a capture block may hold ({MAX_BLOCK_BYTES:,} bytes)"
            )
        if self._block_bytes + size > BLOCK_TARGET_BYTES:
            self._flush()  # so that no block passes MAX_BLOCK_BYTES
        self._block.append([entry_id, list(flat_fields)])
        self._block_bytes += size
        if len(self._block) >= BLOCK_ENTRIES:
            self._flush()

    def _flush(self) -> None:
        if not self._block:
            return
        data = zlib.compress(msgpack.packb(self._block, use_bin_type=True), 1)
        self._file.write(_BLOCK.pack(len(data), zlib.crc32(data), len(self._block)) + data)
        self.count += len(self._block)
        self._block = []
        self._block_bytes = 0

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
        if length > MAX_HEADER_BYTES:
            raise CaptureError(f"{path}: header of {length:,} bytes at byte {len(MAGIC) + 4}")
        try:
            self.header: dict[str, Any] = json.loads(self._read(length, "header"))
        except ValueError as exc:
            raise CaptureError(f"{path}: unreadable header at byte {len(MAGIC) + 4}") from exc
        if not isinstance(self.header, dict):
            raise CaptureError(f"{path}: the header at byte {len(MAGIC) + 4} is no JSON object")
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
            if size > _MAX_COMPRESSED:  # deflate never grows data by this much
                raise CaptureError(
                    f"{self.path}: corrupt block at byte {offset}: {size:,} bytes, more than "
                    f"a block of at most {MAX_BLOCK_BYTES:,} bytes compresses to"
                )
            data = self._read(size, "block", offset)
            if zlib.crc32(data) != crc:
                raise CaptureError(f"{self.path}: corrupt block at byte {offset} (CRC mismatch)")
            yield from self._entries(self._expand(data, offset), count, offset)
            total += count

    def _expand(self, data: bytes, offset: int) -> bytes:
        """The block's msgpack bytes. Expanded a chunk at a time, and refused as soon as
        they pass MAX_BLOCK_BYTES: a bomb costs no more memory than the bound."""
        inflate = zlib.decompressobj()
        chunks: list[bytes] = []
        expanded = 0
        try:
            while data:
                chunk = inflate.decompress(data, _EXPAND_CHUNK)
                expanded += len(chunk)
                if expanded > MAX_BLOCK_BYTES:
                    raise CaptureError(
                        f"{self.path}: corrupt block at byte {offset}: it expands past "
                        f"{MAX_BLOCK_BYTES:,} bytes, the most a capture block holds"
                    )
                chunks.append(chunk)
                data = inflate.unconsumed_tail
        except zlib.error as exc:
            raise CaptureError(f"{self.path}: corrupt block at byte {offset}: {exc}") from exc
        if not inflate.eof:
            raise CaptureError(f"{self.path}: corrupt block at byte {offset}: incomplete zlib data")
        return b"".join(chunks)

    def _entries(self, raw: bytes, count: int, offset: int) -> list[RawEntry]:
        """The block's entries, each checked to be [entry id, [field, value, ...]] of bytes
        (a CRC only says the bytes are the ones written, not that a cdc-verify wrote them)."""
        try:
            entries = msgpack.unpackb(raw, raw=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CaptureError(f"{self.path}: corrupt block at byte {offset}: {exc}") from exc
        if not isinstance(entries, list):
            raise CaptureError(
                f"{self.path}: corrupt block at byte {offset}: a {type(entries).__name__}, "
                "not a list of entries"
            )
        if len(entries) != count:
            raise CaptureError(f"{self.path}: block at byte {offset} holds a wrong count")
        for n, entry in enumerate(entries):
            problem = _entry_problem(entry)
            if problem:
                raise CaptureError(
                    f"{self.path}: corrupt block at byte {offset}: its entry {n} {problem}"
                )
        return [(entry_id, flat) for entry_id, flat in entries]

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


_MAX_COMPRESSED = MAX_BLOCK_BYTES + MAX_BLOCK_BYTES // 1000 + 1024
_EXPAND_CHUNK = 2**20


def packed_size(entry_id: bytes, flat_fields: Sequence[bytes]) -> int:
    """At most the bytes an entry takes in a block's msgpack."""
    values = len(entry_id) + sum(map(len, flat_fields))
    return values + _PACK_OVERHEAD * (len(flat_fields) + 3)


def _entry_problem(entry: Any) -> str | None:
    """Why `entry` is no [entry id, [field, value, ...]] of bytes; None when it is one."""
    if not (isinstance(entry, list) and len(entry) == 2):
        return "is no [entry id, fields] pair"
    entry_id, flat = entry
    if not (isinstance(entry_id, bytes) and _ENTRY_ID.fullmatch(entry_id)):
        return f"has no entry id like 1700000000000-0: {entry_id!r:.80}"
    if not isinstance(flat, list) or not all(isinstance(x, bytes) for x in flat):
        return "has no [field, value, ...] list of bytes"
    if len(flat) % 2:
        return "has an odd field list"
    return None
