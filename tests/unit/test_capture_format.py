"""The capture file format: byte-exact round trips, and clear errors with offsets."""

from __future__ import annotations

import struct
import zlib

import pytest

from cdc_verify.core.entry import fields_dict
from cdc_verify.pipeline.capture.format import (
    BLOCK_ENTRIES,
    MAGIC,
    MAX_BLOCK_BYTES,
    CaptureError,
    CaptureReader,
    CaptureWriter,
)

from ..capture_files import with_block

ENTRIES = [
    (f"{1700000000000 + i}-{i % 3}".encode(),
     [b"event_id", f"E{i}".encode(), b"\xff\xfe", bytes(range(256)), b"dup", b"1", b"dup", b"2"])
    for i in range(2 * BLOCK_ENTRIES + 7)
]  # fmt: skip


def write(path, entries=ENTRIES):
    with CaptureWriter(path, {"stream": "s"}) as writer:
        for entry_id, flat in entries:
            writer.write(entry_id, flat)
    return path


def test_round_trip_is_byte_exact_in_order_with_repeated_fields(tmp_path):
    path = write(tmp_path / "c.cap")
    with CaptureReader(path) as reader:
        assert reader.header["stream"] == "s" and reader.header["version"] == 1
        assert [(i, list(f)) for i, f in reader] == ENTRIES
    assert fields_dict(ENTRIES[0][1])[b"dup"] == b"2"  # as redis-py's dict would say


def test_empty_capture(tmp_path):
    with CaptureReader(write(tmp_path / "c.cap", [])) as reader:
        assert list(reader) == []


def test_truncated_file_names_the_offset(tmp_path):
    path = write(tmp_path / "c.cap")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    with (
        CaptureReader(path) as reader,
        pytest.raises(CaptureError, match=r"truncated .* at byte \d+"),
    ):
        list(reader)


def test_missing_end_marker_is_truncation(tmp_path):
    path = write(tmp_path / "c.cap")
    path.write_bytes(path.read_bytes()[:-12])  # drop the end marker exactly
    with CaptureReader(path) as reader, pytest.raises(CaptureError, match="truncated"):
        list(reader)


def test_corrupt_block_names_the_offset(tmp_path):
    path = write(tmp_path / "c.cap")
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF  # inside the last block's compressed data
    path.write_bytes(bytes(data))
    with (
        CaptureReader(path) as reader,
        pytest.raises(CaptureError, match=r"corrupt block at byte \d+"),
    ):
        list(reader)


def test_not_a_capture_and_future_versions_are_refused(tmp_path):
    other = tmp_path / "x"
    other.write_bytes(b"hello")
    with pytest.raises(CaptureError, match="not a cdc-verify capture"):
        CaptureReader(other)
    future = tmp_path / "f"
    meta = b'{"version": 99}'
    future.write_bytes(MAGIC + len(meta).to_bytes(4, "big") + meta)
    with pytest.raises(CaptureError, match="version 99"):
        CaptureReader(future)


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({b"a": b"b"}, "a dict, not a list of entries"),
        ([1], "its entry 0 is no [entry id, fields] pair"),
        ([[b"1-0", [b"f", b"v"]], [b"1-1"]], "its entry 1 is no [entry id, fields] pair"),
        ([[b"soon", [b"f", b"v"]]], "its entry 0 has no entry id like 1700000000000-0"),
        ([[b"1-0", [b"f", 7]]], "its entry 0 has no [field, value, ...] list of bytes"),
        ([[b"1-0", {b"f": b"v"}]], "its entry 0 has no [field, value, ...] list of bytes"),
        ([[b"1-0", [b"f", b"v", b"g"]]], "its entry 0 has an odd field list"),
    ],
)
def test_a_block_of_the_wrong_shape_is_corrupt_and_named(tmp_path, entries, problem):
    path = with_block(tmp_path / "c.cap", entries, count=len(entries) if entries else 1)
    offset = len(MAGIC) + 4 + 29
    with CaptureReader(path) as reader, pytest.raises(CaptureError) as caught:
        list(reader)
    assert str(caught.value).startswith(f"{path}: corrupt block at byte {offset}: ")
    assert problem in str(caught.value)


def test_a_block_that_expands_past_the_bound_is_refused_before_it_is_all_expanded(tmp_path):
    squeeze = zlib.compressobj(9)
    chunk = bytes(2**20)
    data = b"".join(squeeze.compress(chunk) for _ in range(MAX_BLOCK_BYTES // 2**20 + 1))
    data += squeeze.flush()
    assert len(data) < MAX_BLOCK_BYTES // 500  # a bomb: a few hundred KB
    path = with_block(tmp_path / "bomb.cap", [], count=1000, data=data)
    with CaptureReader(path) as reader, pytest.raises(CaptureError, match="expands past"):
        list(reader)


def test_the_writer_keeps_its_blocks_within_the_bound(tmp_path, monkeypatch):
    import cdc_verify.pipeline.capture.format as capture_format

    monkeypatch.setattr(capture_format, "BLOCK_TARGET_BYTES", 16 * 1024)
    monkeypatch.setattr(capture_format, "MAX_BLOCK_BYTES", 64 * 1024)
    entries = [(f"1-{i}".encode(), [b"body", bytes([i]) * 5000]) for i in range(20)]
    path = write(tmp_path / "c.cap", entries)
    with CaptureReader(path) as reader:
        assert [(i, list(f)) for i, f in reader] == entries
    data = path.read_bytes()
    blocks, offset = [], len(MAGIC) + 4 + struct.unpack_from(">I", data, len(MAGIC))[0]
    while (size := struct.unpack_from(">I", data, offset)[0]) != 0:
        blocks.append(len(zlib.decompress(data[offset + 12 : offset + 12 + size])))
        offset += 12 + size
    assert len(blocks) == 7 and max(blocks) <= 16 * 1024  # three entries a block
    with pytest.raises(CaptureError, match="more than a capture block may hold"):
        write(tmp_path / "big.cap", [(b"1-0", [b"body", bytes(65 * 1024)])])
