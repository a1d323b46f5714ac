"""The account reference consumer: every raise rule and the accepted cases, on real
msgpack bytes; and dispatch by `entity` through the default consumers."""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cdc_verify.consumers.account import (
    KNOWN_KEYS,
    TROPHY_KEYS,
    AccountDecodeError,
    decode_event,
)
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.consumers.reference import LegacyDecodeError
from cdc_verify.simulate.account_faults import ACCOUNT_UNDECODABLE_RULES
from cdc_verify.simulate.faults import Change
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment
from cdc_verify.simulate.models import sample_account

WIRE_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

VALID: dict[str, Any] = {
    "id": "5xq2m1",
    "name": "quiet_owl42",
    "icon_url": "https://styles.example.com/a1b2c3.png",
    "created_utc": 1_400_000_000.5,
    "link_karma": 1204,
    "comment_karma": -3,
    "is_suspended": True,
    "suspended_until": 1_800_000_000.25,
    "email_verified": False,
    "has_premium": True,
    "trophies": [
        {"trophy_id": "verified_email", "granted_utc": 1_400_000_100.0},
        {"trophy_id": "five_year_club", "granted_utc": 1_557_680_000.75},
    ],
}


def valid(**overrides: Any) -> dict[str, Any]:
    out = copy.deepcopy(VALID)
    out.update(overrides)
    return out


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def event(payload: bytes, encoding: bytes = b"msgpack") -> dict[bytes, bytes]:
    return {
        b"event_id": b"01HZX3V9J6Q0S1M2N3P4R5T6V7",
        b"entity": b"account",
        b"op": b"increment",
        b"entity_id": b"t2_5xq2m1",
        b"encoding": encoding,
        b"payload": payload,
    }


def raises(obj_or_payload: Any, match: str, encoding: bytes = b"msgpack") -> None:
    payload = obj_or_payload if isinstance(obj_or_payload, bytes) else pack(obj_or_payload)
    with pytest.raises(AccountDecodeError, match=match):
        decode_event(event(payload, encoding))


def strict_equal(a: Any, b: Any) -> bool:
    """Equal with the same types throughout (1 != 1.0, False != 0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --------------------------------------------------------------------------- accepted


def test_a_valid_account_decodes_to_its_map():
    assert strict_equal(decode_event(event(pack(VALID))), VALID)


@pytest.mark.parametrize("seed", range(20))
def test_sampled_accounts_round_trip_through_the_legacy_writer(seed):
    account = sample_account(random.Random(seed), "t2_abc123")
    assert list(account) == list(KNOWN_KEYS)
    assert strict_equal(decode_event(event(encode_msgpack(account))), account)


def test_nil_icon_and_suspension_and_no_trophies_are_valid():
    account = valid(icon_url=None, suspended_until=None, trophies=[])
    assert strict_equal(decode_event(event(pack(account))), account)


def test_an_int_where_a_float_is_expected_is_returned_as_that_int():
    account = valid(created_utc=1_400_000_000, suspended_until=0)
    account["trophies"][0]["granted_utc"] = 7
    decoded = decode_event(event(pack(account)))
    assert type(decoded["created_utc"]) is int and type(decoded["suspended_until"]) is int
    assert type(decoded["trophies"][0]["granted_utc"]) is int


def test_unknown_keys_are_dropped_at_the_top_and_in_trophies():
    account = valid(shard_hint=7, karma_ratio=0.5)
    account["trophies"][1]["icon"] = "https://example.com/t.png"
    assert strict_equal(decode_event(event(pack(account))), VALID)


def test_key_order_does_not_matter():
    reordered = dict(reversed(valid().items()))
    assert strict_equal(decode_event(event(pack(reordered))), VALID)


def test_float32_values_are_floats():
    # msgpack-python decodes a float32 to a float: accepted, as the comment consumer does.
    payload = msgpack.packb(valid(), use_bin_type=True, use_single_float=True)
    assert type(decode_event(event(payload))["created_utc"]) is float


# --------------------------------------------------------------------------- rejected


def test_the_error_is_a_legacy_decode_error_and_a_value_error():
    assert issubclass(AccountDecodeError, LegacyDecodeError)
    assert issubclass(AccountDecodeError, ValueError)


@pytest.mark.parametrize("field", [b"encoding", b"payload"])
def test_a_missing_envelope_field(field):
    fields = event(pack(VALID))
    del fields[field]
    with pytest.raises(AccountDecodeError, match=f"missing field '{field.decode()}'"):
        decode_event(fields)


def test_protobuf_is_refused_by_name():
    message = r"^encoding 'protobuf' is not supported for accounts \(msgpack only\)$"
    raises(b"", message, b"protobuf")


def test_an_unknown_encoding():
    raises(pack(VALID), r"^unknown encoding 'xml'$", b"xml")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (pack(VALID)[:-5], r"^payload: not valid msgpack \(ValueError: .*incomplete"),
        (pack(VALID) + b"\x00", r"^payload: not valid msgpack \(ExtraData"),
        (b"", r"^payload: not valid msgpack"),
        (pack({1: "x"}), r"^payload: not valid msgpack"),  # an int map key
        (pack([VALID]), r"^payload: msgpack list where a map is required$"),
        (pack("account"), r"^payload: msgpack str where a map is required$"),
    ],
    ids=["truncated", "trailing-bytes", "empty", "int-key", "list", "str"],
)
def test_payloads_that_are_not_a_msgpack_map(payload, match):
    raises(payload, match)


@pytest.mark.parametrize("key", KNOWN_KEYS)
def test_every_documented_key_is_required(key):
    account = valid()
    del account[key]
    raises(account, rf"^missing required key '{key}'$")


@pytest.mark.parametrize("key", TROPHY_KEYS)
def test_both_trophy_keys_are_required(key):
    account = valid()
    del account["trophies"][1][key]
    raises(account, rf"^trophies/1: missing required key '{key}'$")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("id", 12, "id: int 12 where str is required"),
        ("name", None, "name: nil None where str is required"),
        ("icon_url", False, "icon_url: bool False where nil or str is required"),
        ("created_utc", "2014-05-13", "created_utc: str '2014-05-13' where a number is required"),
        ("created_utc", True, "created_utc: bool True where a number is required"),
        ("link_karma", 12.0, "link_karma: float 12.0 where an int is required"),
        ("link_karma", "12", "link_karma: str '12' where an int is required"),
        ("comment_karma", False, "comment_karma: bool False where an int is required"),
        ("is_suspended", 0, "is_suspended: int 0 where a bool is required"),
        ("is_suspended", None, "is_suspended: nil None where a bool is required"),
        ("suspended_until", "never", "suspended_until: str 'never' where nil or a number is"),
        ("email_verified", "yes", "email_verified: str 'yes' where a bool is required"),
        ("has_premium", 1, "has_premium: int 1 where a bool is required"),
        ("trophies", {}, "trophies: map {} where a list is required"),
    ],
)
def test_every_value_is_type_checked(key, value, message):
    raises(valid(**{key: value}), "^" + re.escape(message))


def test_nil_trophies_is_refused():
    raises(valid(trophies=None), r"^trophies: nil where a list is required$")


def test_a_trophy_that_is_not_a_map():
    raises(valid(trophies=[VALID["trophies"][0], "gold"]), r"^trophies/1: str where a map is")


@pytest.mark.parametrize(
    ("trophy", "message"),
    [
        ({"trophy_id": 5, "granted_utc": 1.0}, "trophies/0/trophy_id: int 5 where str is"),
        ({"trophy_id": "x", "granted_utc": None}, "trophies/0/granted_utc: nil None where a"),
        ({"trophy_id": b"x", "granted_utc": 1.0}, "trophies/0/trophy_id: msgpack bin where str"),
    ],
)
def test_trophy_values_are_type_checked(trophy, message):
    raises(valid(trophies=[trophy]), "^" + re.escape(message))


@pytest.mark.parametrize("key", ["id", "name", "icon_url"])
def test_bin_where_str_is_required(key):
    raises(valid(**{key: b"raw"}), rf"^{key}: msgpack bin where str is required$")


def test_a_bin_map_key_is_refused_at_the_top_and_in_trophies():
    raises({**valid(), b"shard": 1}, r"^payload: map key 'shard' is msgpack bin, not str$")
    account = valid()
    account["trophies"][0][b"x"] = 1
    raises(account, r"^trophies/0: map key 'x' is msgpack bin, not str$")


def test_ext_types_anywhere_are_refused():
    raises(valid(link_karma=msgpack.ExtType(5, b"\x01")), r"^payload: msgpack ext type 5$")
    raises(valid(extra=msgpack.ExtType(42, b"")), r"^payload: msgpack ext type 42$")


@pytest.mark.parametrize("where", ["created_utc", "extra", "trophies"])
def test_go_time_values_ext_minus_1_are_refused_with_their_path(where):
    stamp = msgpack.Timestamp.from_unix(1_400_000_000.5)
    account = valid()
    if where == "trophies":
        account["trophies"][1]["granted_utc"] = stamp
        path = "/trophies/1/granted_utc"
    else:
        account[where] = stamp
        path = f"/{where}"
    raises(account, rf"^payload: msgpack ext type -1 \(timestamp\) at {path}$")


def test_non_utf8_text_is_refused():
    marker = "\x01MARK\x01"
    payload = pack(valid(name=marker)).replace(marker.encode(), b"\xff\xfe bad")
    raises(payload, r"^payload: msgpack str is not valid UTF-8 \(invalid start byte\)$")


def test_a_non_bytes_payload_is_copied_or_refused():
    assert strict_equal(decode_event({**event(b""), b"payload": bytearray(pack(VALID))}), VALID)
    with pytest.raises(AccountDecodeError, match="payload: NoneType where bytes are required"):
        decode_event({**event(b""), b"payload": None})  # type: ignore[dict-item]


@pytest.mark.parametrize("rule", ACCOUNT_UNDECODABLE_RULES)
def test_every_undecodable_fault_of_the_simulator_is_refused(rule):
    entity_id = "t2_abc123"
    change = Change("01HZX3V9J6Q0S1M2N3P4R5T6V7", entity_id, 3, 1, {}, entity="account")
    change.comment = sample_account(random.Random(1), entity_id)
    with pytest.raises(AccountDecodeError):
        decode_event(ACCOUNT_UNDECODABLE_RULES[rule](change))


# --------------------------------------------------------------------------- dispatch


def test_the_default_consumers_dispatch_on_entity():
    consumer = load_consumers(DEFAULT_CONSUMERS)
    comment = sample_comment(random.Random(3), "t1_abc")
    comment_event = {**event(encode_msgpack(comment)), b"entity": b"comment"}
    assert strict_equal(consumer(comment_event), comment)
    assert strict_equal(consumer(event(pack(VALID))), VALID)
    # Each model's payload read as the other one fails that consumer's own rules.
    with pytest.raises(AccountDecodeError, match="missing required key 'name'"):
        consumer({**comment_event, b"entity": b"account"})
    with pytest.raises(LegacyDecodeError, match="missing required key 'link_id'"):
        consumer({**event(pack(VALID)), b"entity": b"comment"})


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize("key", [*KNOWN_KEYS, *TROPHY_KEYS])
def test_every_account_key_is_named_in_the_accounts_section_of_wire_format_md(key):
    text = WIRE_FORMAT.read_text(encoding="utf-8")
    section = text.partition("## Accounts")[2].partition("\n## ")[0]
    assert section, "docs/wire-format.md has no '## Accounts' section"
    assert re.search(rf"`{key}`", section), f"docs/wire-format.md (Accounts) lacks `{key}`"
