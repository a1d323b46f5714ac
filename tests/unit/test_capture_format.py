"""The capture file format: byte-exact round trips, and clear errors with offsets."""

from __future__ import annotations

import pytest

from cdc_verify.capture.format import (
    BLOCK_ENTRIES,
    MAGIC,
    CaptureError,
    CaptureReader,
    CaptureWriter,
)
from cdc_verify.pipeline.core.entry import fields_dict

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
