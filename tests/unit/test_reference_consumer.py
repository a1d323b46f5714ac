"""The reference legacy consumer: every raise rule, the accepted cases, round trips."""

from __future__ import annotations

import copy
import datetime
import random
import struct
from typing import Any

import msgpack
import pytest

from cdc_verify.consumers.reference import KNOWN_KEYS, LegacyDecodeError, decode_event
from cdc_verify.schemas.comment_pb2 import Comment
from cdc_verify.simulate.legacy_writer import encode_msgpack, encode_protobuf, sample_comment

# --------------------------------------------------------------------------- helpers

VALID: dict[str, Any] = {
    "id": "abc123",
    "link_id": "t3_x1y2z3",
    "parent_id": "t1_parent",
    "subreddit_id": "t5_2qh1i",
    "author_id": "t2_author",
    "body": "Hello wörld — 日本語 👍",
    "rich_text": [
        {"e": "text", "t": "see "},
        {"e": "link", "t": "here", "u": "https://example.com/a"},
    ],
    "media": [
        {
            "type": "image",
            "url": "https://i.example.com/a.png",
            "width": 640,
            "height": 480,
            "content_type": "image/png",
        }
    ],
    "score": 41,
    "ups": 50,
    "downs": 9,
    "gilded": 1,
    "awards": [{"award_id": "gold", "count": 2}, {"award_id": "silver", "count": 1}],
    "approval_state": "approved",
    "automod_filtered": False,
    "stickied": True,
    "distinguished": "moderator",
    "edited": 1_700_000_123.5,
    "created_utc": 1_700_000_000.25,
}

TOP_STR_KEYS = (
    "id",
    "link_id",
    "parent_id",
    "subreddit_id",
    "author_id",
    "body",
    "approval_state",
    "distinguished",
)


def valid() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def mp_event(payload: bytes) -> dict[bytes, bytes]:
    return {
        b"event_id": b"01HZX3V9J6Q0S1M2N3P4R5T6V7",
        b"entity": b"comment",
        b"op": b"update",
        b"encoding": b"msgpack",
        b"payload": payload,
    }


def pb_event(payload: bytes) -> dict[bytes, bytes]:
    return {b"encoding": b"protobuf", b"payload": payload}


def decode_mp(obj: Any) -> dict[str, Any]:
    return decode_event(mp_event(pack(obj)))


def raises_mp(obj_or_payload: Any, match: str) -> LegacyDecodeError:
    payload = obj_or_payload if isinstance(obj_or_payload, bytes) else pack(obj_or_payload)
    with pytest.raises(LegacyDecodeError, match=match) as info:
        decode_event(mp_event(payload))
    return info.value


def with_raw_str(comment: dict[str, Any], path: tuple[Any, ...], raw: bytes) -> bytes:
    """Pack ``comment`` with the msgpack str at ``path`` holding ``raw`` (any bytes) as
    its UTF-8 payload: a real str header in front of bytes that need not be UTF-8."""
    placeholder = "\x01" * len(raw)
    assert len(raw) < 32  # fixstr
    target = comment
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = placeholder
    payload = pack(comment)
    encoded = bytes([0xA0 | len(raw)]) + placeholder.encode()
    assert payload.count(encoded) == 1
    return payload.replace(encoded, bytes([0xA0 | len(raw)]) + raw)


def assert_strict_equal(actual: Any, expected: Any, path: str = "") -> None:
    """Equality that also requires identical types everywhere (1 != 1.0, False != 0)."""
    assert type(actual) is type(expected), f"{path or '/'}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), f"{path or '/'}: keys differ"
        for key in expected:
            assert_strict_equal(actual[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length differs"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_strict_equal(a, e, f"{path}/{index}")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# --------------------------------------------------------------------------- accepted


def test_known_keys_are_the_documented_top_level_keys() -> None:
    assert len(KNOWN_KEYS) == 19
    assert set(KNOWN_KEYS) == set(VALID)


def test_valid_msgpack_decodes_to_the_same_dict() -> None:
    assert_strict_equal(decode_mp(valid()), VALID)


def test_valid_protobuf_decodes_to_the_same_dict() -> None:
    assert_strict_equal(decode_event(pb_event(encode_protobuf(valid()))), VALID)


@pytest.mark.parametrize("key", ["rich_text", "media"])
def test_nil_lists_that_may_be_nil_are_accepted(key: str) -> None:
    comment = valid()
    comment[key] = None
    assert decode_mp(comment)[key] is None


def test_empty_lists_are_accepted() -> None:
    comment = valid() | {"rich_text": [], "media": [], "awards": []}
    decoded = decode_mp(comment)
    assert decoded["rich_text"] == [] and decoded["media"] == [] and decoded["awards"] == []


@pytest.mark.parametrize("key", ["created_utc", "edited"])
def test_int_where_float_expected_is_returned_unchanged(key: str) -> None:
    comment = valid()
    comment[key] = 1_700_000_000
    decoded = decode_mp(comment)
    assert type(decoded[key]) is int
    assert decoded[key] == 1_700_000_000


def test_edited_false_is_accepted() -> None:
    comment = valid() | {"edited": False}
    assert decode_mp(comment)["edited"] is False


def test_other_types_pass_through_unchecked() -> None:
    comment = valid() | {"score": "41", "stickied": 1, "body": 7, "approval_state": "weird"}
    decoded = decode_mp(comment)
    assert decoded["score"] == "41" and type(decoded["score"]) is str
    assert decoded["stickied"] == 1 and type(decoded["stickied"]) is int
    assert decoded["body"] == 7
    assert decoded["approval_state"] == "weird"


def test_distinguished_nil_is_accepted() -> None:
    comment = valid() | {"distinguished": None}
    assert decode_mp(comment)["distinguished"] is None


def test_unknown_top_level_keys_are_dropped_nested_extras_kept() -> None:
    comment = valid()
    comment["flair"] = {"text": "x"}
    comment["zzz_new_field"] = [1, 2, 3]
    comment["awards"][0]["icon"] = "gold.png"
    comment["rich_text"][0]["style"] = "bold"
    decoded = decode_mp(comment)
    assert set(decoded) == set(KNOWN_KEYS)
    assert decoded["awards"][0] == {"award_id": "gold", "count": 2, "icon": "gold.png"}
    assert decoded["rich_text"][0] == {"e": "text", "t": "see ", "style": "bold"}


def test_stream_entry_fields_other_than_encoding_and_payload_are_not_needed() -> None:
    decoded = decode_event({b"encoding": b"msgpack", b"payload": pack(valid())})
    assert decoded["id"] == "abc123"


def test_payload_with_0xff_bytes_but_no_timestamp_decodes() -> None:
    # score -1 is the byte 0xff; uint16 0x04ff puts the pair 04 ff in the payload, which
    # makes the consumer walk the whole object looking for a Timestamp (and find none).
    comment = valid() | {"score": -1, "ups": 0x04FF, "extra": [[[[{"deep": -1}]]]]}
    payload = pack(comment)
    assert b"\x04\xff" in payload
    decoded = decode_event(mp_event(payload))
    assert decoded["score"] == -1 and decoded["ups"] == 0x04FF


# --------------------------------------------------------------------------- raise rules


@pytest.mark.parametrize("encoding", [b"xml", b"json", b"", b"MSGPACK"])
def test_unknown_encoding_raises(encoding: bytes) -> None:
    fields = mp_event(pack(valid())) | {b"encoding": encoding}
    with pytest.raises(LegacyDecodeError, match="unknown encoding"):
        decode_event(fields)


def test_unknown_encoding_message_names_it() -> None:
    with pytest.raises(LegacyDecodeError) as info:
        decode_event(mp_event(pack(valid())) | {b"encoding": b"xml"})
    assert str(info.value) == "unknown encoding 'xml'"


@pytest.mark.parametrize("field", [b"encoding", b"payload"])
def test_missing_stream_field_raises(field: bytes) -> None:
    fields = mp_event(pack(valid()))
    del fields[field]
    with pytest.raises(LegacyDecodeError, match=f"missing field '{field.decode()}'"):
        decode_event(fields)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "not valid msgpack"),  # empty
        (pack(VALID)[:-3], "not valid msgpack"),  # truncated
        (pack(VALID) + b"\x00", "not valid msgpack.*ExtraData"),  # trailing bytes
        (b"\xc1", "not valid msgpack"),  # never-used type byte
        (b"\x81\xa1a" + b"\x91" * 5000 + b"\x01", "not valid msgpack"),  # too deep
    ],
    ids=["empty", "truncated", "trailing", "c1", "too-deep"],
)
def test_invalid_msgpack_raises(payload: bytes, match: str) -> None:
    raises_mp(payload, match)


@pytest.mark.parametrize("obj", [[1, 2], "str", 5, None, [VALID]])
def test_msgpack_not_a_map_raises(obj: Any) -> None:
    raises_mp(obj, "where a map is required")


def test_msgpack_int_map_key_raises() -> None:
    payload = pack({**VALID, 7: "x"})
    raises_mp(payload, "not valid msgpack")


def test_msgpack_bin_map_key_raises() -> None:
    raises_mp({**VALID, b"extra": "x"}, "map key .* is msgpack bin")


def test_msgpack_bin_map_key_in_nested_item_raises() -> None:
    comment = valid()
    comment["awards"][1][b"icon"] = "x"
    raises_mp(comment, r"awards/1: map key .* is msgpack bin")


@pytest.mark.parametrize("key", KNOWN_KEYS)
def test_missing_top_level_key_raises(key: str) -> None:
    comment = valid()
    del comment[key]
    comment["unrelated_extra"] = 1  # same length as a full map: must not fool the check
    error = raises_mp(comment, "missing required key")
    assert str(error) == f"missing required key {key!r}"


def test_bin_key_does_not_stand_in_for_a_str_key() -> None:
    comment = valid()
    body = comment.pop("body")
    comment[b"body"] = body
    raises_mp(comment, "missing required key 'body'")


@pytest.mark.parametrize(
    ("list_key", "item_key"),
    [
        ("rich_text", "e"),
        ("rich_text", "t"),
        ("media", "type"),
        ("media", "url"),
        ("media", "width"),
        ("media", "height"),
        ("media", "content_type"),
        ("awards", "award_id"),
        ("awards", "count"),
    ],
)
def test_missing_nested_key_raises(list_key: str, item_key: str) -> None:
    comment = valid()
    del comment[list_key][-1][item_key]
    index = len(comment[list_key]) - 1
    error = raises_mp(comment, "missing required key")
    assert str(error) == f"{list_key}/{index}: missing required key {item_key!r}"


def test_rich_text_without_u_is_fine_but_u_is_returned_when_present() -> None:
    decoded = decode_mp(valid())
    assert "u" not in decoded["rich_text"][0]
    assert decoded["rich_text"][1]["u"] == "https://example.com/a"


@pytest.mark.parametrize("list_key", ["rich_text", "media", "awards"])
@pytest.mark.parametrize("item", [None, "gold", 3, ["award_id", "count"]])
def test_list_item_that_is_not_a_map_raises(list_key: str, item: Any) -> None:
    comment = valid()
    comment[list_key].append(item)
    raises_mp(comment, f"{list_key}/{len(comment[list_key]) - 1}: .* where a map is required")


def test_awards_nil_raises() -> None:
    error = raises_mp(valid() | {"awards": None}, "awards")
    assert str(error) == "awards: nil where a list is required"


@pytest.mark.parametrize("key", TOP_STR_KEYS)
def test_bin_where_str_required_top_level_raises(key: str) -> None:
    comment = valid()
    comment[key] = (comment[key] or "admin").encode()
    error = raises_mp(comment, "msgpack bin")
    assert str(error) == f"{key}: msgpack bin where str is required"


@pytest.mark.parametrize(
    ("list_key", "item_key"),
    [
        ("rich_text", "e"),
        ("rich_text", "t"),
        ("rich_text", "u"),
        ("media", "type"),
        ("media", "url"),
        ("media", "content_type"),
        ("awards", "award_id"),
    ],
)
def test_bin_where_str_required_nested_raises(list_key: str, item_key: str) -> None:
    comment = valid()
    item = comment[list_key][-1]
    item[item_key] = item[item_key].encode()
    index = len(comment[list_key]) - 1
    error = raises_mp(comment, "msgpack bin")
    assert str(error) == f"{list_key}/{index}/{item_key}: msgpack bin where str is required"


def test_bin_in_a_non_str_field_passes_through() -> None:
    decoded = decode_mp(valid() | {"score": b"\x01\x02"})
    assert decoded["score"] == b"\x01\x02"


@pytest.mark.parametrize("code", [0, 1, 5, 42, 127])
@pytest.mark.parametrize("where", ["top", "nested", "unknown-key", "deep-in-unknown-key"])
def test_ext_type_anywhere_raises(code: int, where: str) -> None:
    ext = msgpack.ExtType(code, b"\x00\x01\x02")
    comment = valid()
    if where == "top":
        comment["body"] = ext
    elif where == "nested":
        comment["media"][0]["width"] = ext
    elif where == "unknown-key":
        comment["extra"] = ext
    else:
        comment["extra"] = {"a": [1, {"b": [ext]}]}
    error = raises_mp(comment, "msgpack ext type")
    assert str(error) == f"payload: msgpack ext type {code}"


TIMESTAMP_ENCODINGS = {
    "fixext4": b"\xd6\xff" + struct.pack(">I", 1_700_000_000),
    "fixext8": b"\xd7\xff" + struct.pack(">Q", (5 << 34) | 1_700_000_000),
    "ext8-len12 (Go time.Time)": b"\xc7\x0c\xff" + struct.pack(">Iq", 5, 1_700_000_000),
    "ext8-len4": b"\xc7\x04\xff" + struct.pack(">I", 1_700_000_000),
    "ext16-len8": b"\xc8\x00\x08\xff" + struct.pack(">Q", 1_700_000_000),
    "ext32-len12": b"\xc9\x00\x00\x00\x0c\xff" + struct.pack(">Iq", 0, 1_700_000_000),
}


@pytest.mark.parametrize("raw", TIMESTAMP_ENCODINGS.values(), ids=TIMESTAMP_ENCODINGS.keys())
@pytest.mark.parametrize("key", ["created_utc", "edited", "unknown_extra"])
def test_ext_minus_one_timestamp_raises(raw: bytes, key: str) -> None:
    # The value is first packed as a placeholder int, then swapped for the raw ext bytes.
    comment = valid() | {key: 0x5A5A5A5A}
    marker = b"\xce\x5a\x5a\x5a\x5a"
    payload = pack(comment)
    assert payload.count(marker) == 1
    payload = payload.replace(marker, raw)
    assert isinstance(msgpack.unpackb(payload)[key], msgpack.Timestamp)  # the trap is real
    error = raises_mp(payload, "msgpack ext type -1")
    assert f"at /{key}" in str(error)


def test_timestamp_packed_by_msgpack_python_raises() -> None:
    comment = valid()
    comment["awards"][0]["count"] = msgpack.Timestamp(1_700_000_000, 0)
    raises_mp(comment, r"msgpack ext type -1 \(timestamp\) at /awards/0/count")


def test_datetime_packed_as_timestamp_raises() -> None:
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    payload = msgpack.packb(valid() | {"edited": when}, datetime=True)
    raises_mp(payload, "msgpack ext type -1")


@pytest.mark.parametrize("raw", [b"\xd4\xff\x01", b"\xd5\xff\x01\x02", b"\xc7\x03\xff\x01\x02\x03"])
def test_ext_minus_one_with_invalid_length_raises(raw: bytes) -> None:
    comment = valid() | {"edited": 0x5A5A5A5A}
    payload = pack(comment).replace(b"\xce\x5a\x5a\x5a\x5a", raw)
    raises_mp(payload, "msgpack ext type -1")


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"\xc3\x28", b"\xe2\x28\xa1", b"\xed\xa0\x80", b"abc\x80"],
    ids=["ff", "bad-continuation", "bad-3byte", "surrogate", "stray-continuation"],
)
@pytest.mark.parametrize(
    "path",
    [("body",), ("id",), ("rich_text", 1, "u"), ("awards", 0, "award_id"), ("flair",)],
    ids=lambda p: "/".join(map(str, p)),
)
def test_non_utf8_str_raises(raw: bytes, path: tuple[Any, ...]) -> None:
    payload = with_raw_str(valid(), path, raw)
    raises_mp(payload, "not valid UTF-8")


def test_non_utf8_map_key_raises() -> None:
    comment = valid() | {"\x01\x01": 1}
    payload = pack(comment).replace(b"\xa2\x01\x01", b"\xa2\xc3\x28")
    raises_mp(payload, "not valid UTF-8")


@pytest.mark.parametrize("edited", [True, "1700000000.0", None, [], {"t": 1.0}, b"\x00"])
def test_edited_neither_false_nor_number_raises(edited: Any) -> None:
    raises_mp(valid() | {"edited": edited}, "^edited: .* where false or a number is required")


def test_non_bytes_payload_raises_decode_error() -> None:
    for fields in (
        {b"encoding": b"msgpack", b"payload": None},
        {b"encoding": b"protobuf", b"payload": None},
        {b"encoding": b"protobuf", b"payload": 12},
    ):
        with pytest.raises(LegacyDecodeError, match="payload"):
            decode_event(fields)


def test_bytearray_and_memoryview_payloads_work() -> None:
    payload = pack(valid())
    assert decode_event(mp_event(bytearray(payload))) == VALID  # type: ignore[arg-type]
    assert decode_event(mp_event(memoryview(payload))) == VALID  # type: ignore[arg-type]


# --------------------------------------------------------------------------- protobuf


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff", b"garbage!", b"\x00", b"\x0a\x05ab", b"\x93\x01"],
    ids=["ff", "text", "zero-tag", "truncated-string", "group"],
)
def test_garbage_protobuf_raises_legacy_decode_error(payload: bytes) -> None:
    with pytest.raises(LegacyDecodeError, match="payload: not valid protobuf"):
        decode_event(pb_event(payload))


def test_protobuf_non_utf8_string_raises() -> None:
    # field 6 (body), wire type 2, length 2, invalid UTF-8
    with pytest.raises(LegacyDecodeError, match="not valid UTF-8"):
        decode_event(pb_event(b"\x32\x02\xff\xfe"))


def test_protobuf_nil_vs_empty_list_and_optionals() -> None:
    nil = valid() | {"rich_text": None, "media": None, "distinguished": None, "edited": False}
    empty = valid() | {"rich_text": [], "media": [], "awards": []}
    nil_bytes, empty_bytes = encode_protobuf(nil), encode_protobuf(empty)
    assert nil_bytes != empty_bytes

    decoded_nil = decode_event(pb_event(nil_bytes))
    assert decoded_nil["rich_text"] is None
    assert decoded_nil["media"] is None
    assert decoded_nil["distinguished"] is None
    assert decoded_nil["edited"] is False

    decoded_empty = decode_event(pb_event(empty_bytes))
    assert decoded_empty["rich_text"] == [] and type(decoded_empty["rich_text"]) is list
    assert decoded_empty["media"] == [] and type(decoded_empty["media"]) is list
    assert decoded_empty["awards"] == []


def test_protobuf_empty_strings_in_optionals_are_kept() -> None:
    comment = valid()
    comment["rich_text"][0]["u"] = ""
    comment["distinguished"] = ""
    comment["edited"] = 0.0
    decoded = decode_event(pb_event(encode_protobuf(comment)))
    assert decoded["rich_text"][0]["u"] == ""
    assert decoded["distinguished"] == ""
    assert decoded["edited"] == 0.0 and type(decoded["edited"]) is float


def test_protobuf_message_built_by_hand_decodes() -> None:
    msg = Comment(id="a", body="x", score=-3, created_utc=1.5)
    decoded = decode_event(pb_event(msg.SerializeToString()))
    assert set(decoded) == set(KNOWN_KEYS)
    assert decoded["score"] == -3 and type(decoded["score"]) is int
    assert decoded["awards"] == [] and decoded["rich_text"] is None and decoded["edited"] is False
    assert decoded["created_utc"] == 1.5


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("seed", range(4))
def test_msgpack_round_trip_of_sample_comments(seed: int) -> None:
    rng = random.Random(seed)
    for index in range(300):
        comment = sample_comment(rng, f"t1_{index:x}")
        assert_strict_equal(decode_event(mp_event(encode_msgpack(comment))), comment)


@pytest.mark.parametrize("seed", range(4))
def test_protobuf_round_trip_of_sample_comments(seed: int) -> None:
    rng = random.Random(seed)
    for index in range(300):
        comment = sample_comment(rng, f"t1_{index:x}")
        assert_strict_equal(decode_event(pb_event(encode_protobuf(comment))), comment)


def test_round_trips_cover_both_nil_and_list_shapes() -> None:
    rng = random.Random(11)
    samples = [sample_comment(rng, f"t1_{i}") for i in range(500)]
    for key in ("rich_text", "media"):
        shapes = {
            ("nil" if c[key] is None else "empty" if not c[key] else "items") for c in samples
        }
        assert shapes == {"nil", "empty", "items"}, key
    assert {type(c["edited"]) for c in samples} == {bool, float}
    assert {c["distinguished"] for c in samples} >= {None, "moderator"}
    assert any(any(ord(ch) > 127 for ch in c["body"]) for c in samples)
    assert all(20 <= len(c["body"]) <= 400 for c in samples)
    assert all(0 <= len(c["awards"]) <= 3 for c in samples)


def test_sample_comment_is_deterministic() -> None:
    first = [sample_comment(random.Random(3), "t1_abc") for _ in range(2)]
    assert first[0] == first[1]
    assert first[0]["id"] == "abc"
    assert sample_comment(random.Random(4), "t1_abc") != first[0]


# --------------------------------------------------------------------------- robustness


def test_mutated_payloads_only_ever_raise_legacy_decode_error() -> None:
    rng = random.Random(1234)
    outcomes = {"decoded": 0, "raised": 0}
    for index in range(1500):
        comment = sample_comment(rng, f"t1_{index}")
        for encoding, encode in ((b"msgpack", encode_msgpack), (b"protobuf", encode_protobuf)):
            payload = bytearray(encode(comment))
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            if rng.random() < 0.3:
                del payload[rng.randrange(len(payload)) :]
            try:
                decode_event({b"encoding": encoding, b"payload": bytes(payload)})
            except LegacyDecodeError:
                outcomes["raised"] += 1
            else:
                outcomes["decoded"] += 1
    assert outcomes["raised"] > 0 and outcomes["decoded"] > 0


def test_legacy_decode_error_is_a_value_error() -> None:
    assert issubclass(LegacyDecodeError, ValueError)
