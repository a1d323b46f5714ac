"""Envelopes read entries (core/envelope.py): the key fields, what the consumer decodes,
and the reason of each malformed one."""

from __future__ import annotations

import json

import msgpack
import pytest

from cdc_verify.core.entry import PRODUCTION, StreamEntry
from cdc_verify.core.envelope import Event, JsonEnvelope, JsonPointers, Malformed, parse_pointer


def opened(envelope, fields):
    entry = StreamEntry.from_redis(PRODUCTION, b"1000-0", fields, envelope)
    return entry.event_id, entry.problem, entry.fields


def event(**doc):
    return {b"event": json.dumps(doc).encode()}


def test_json_event_gives_the_key_fields_and_the_payload_as_the_consumer_reads_it():
    doc = {"event_id": "E1", "entity": "comment", "op": "update", "entity_id": 42,
           "version": "7", "encoding": "json", "payload": {"body": "hé", "score": 3}}  # fmt: skip
    key, problem, fields = opened(JsonEnvelope(), event(**doc))
    assert (key, problem) == ("E1", None)
    assert fields == {
        b"event_id": b"E1", b"entity": b"comment", b"op": b"update", b"entity_id": b"42",
        b"version": b"7", b"encoding": b"json",
        b"payload": '{"body":"hé","score":3}'.encode(),
    }  # fmt: skip


def test_json_pointers_escapes_and_the_whole_event_as_payload():
    raw = json.dumps({"m": {"a/b": "E2", "x~y": ["c", "d"]}}).encode()
    pointers = JsonPointers(event_id="/m/a~1b", entity="/m/x~0y/1", payload="", op="/none")
    _, problem, fields = opened(JsonEnvelope("e", "json", pointers), {b"e": raw})
    assert problem is None
    assert fields == {b"event_id": b"E2", b"entity": b"d", b"payload": raw}


def test_msgpack_event_hands_a_binary_payload_over_as_it_is():
    payload = msgpack.packb({"id": "t1_a"})
    raw = msgpack.packb({"event_id": "E3", "payload": payload, "version": 2}, use_bin_type=True)
    _, problem, fields = opened(JsonEnvelope(fmt="msgpack"), {b"event": raw})
    assert problem is None
    assert fields == {b"event_id": b"E3", b"version": b"2", b"payload": payload}


@pytest.mark.parametrize(("fields", "reason"), [
    ({b"other": b"{}"}, "no event field (json envelope)"),
    ({b"event": b"{"}, "event is not json: Expecting property name"),
    ({b"event": b"[1]"}, "event holds a array, not an object"),
    (event(entity="comment"), "no event id at '/event_id' in event"),
    (event(event_id=None), "no event id at '/event_id' in event"),
    (event(event_id={"a": 1}), "event_id at '/event_id' is a object, not a string or integer"),
    (event(event_id="E", op=True), "op at '/op' is a boolean, not a string or integer"),
    (event(event_id="E", version="7a"), "version at '/version' is '7a': not an integer >= 0"),
    (event(event_id="E", version=-1), "version at '/version' is -1: not an integer >= 0"),
    (event(event_id=""), "event_id is empty"),
    (event(event_id="a b"), "event_id has whitespace or control characters"),
    (event(event_id="x" * 300), "event_id is 300 bytes long (limit 256)"),
])  # fmt: skip
def test_malformed_json_events_say_why(fields, reason):
    key, problem, kept = opened(JsonEnvelope(), fields)
    assert key is None and problem.startswith(reason), problem
    if not problem.startswith("event_id"):  # the envelope refused it: the entry as it came
        assert kept == fields


def test_a_users_envelope_raising_or_giving_no_event_is_malformed_with_the_reason():
    def refuses(fields):
        raise Malformed("no id field")

    def crashes(fields):
        return fields[b"id"]

    def wrong(fields):
        return {"key": "E"}

    assert opened(refuses, {b"a": b"1"})[1] == "no id field"
    assert opened(crashes, {b"a": b"1"})[1] == "envelope failed: KeyError: b'id'"
    assert opened(wrong, {b"a": b"1"})[1] == "envelope gave a dict, not an Event"
    for event, reason in (
        (Event(7), "key is a int, not a str"),  # type: ignore[arg-type]
        (Event("E", op=b"create"), "op is a bytes, not a str"),  # type: ignore[arg-type]
        (Event("E", version=-1), "version is -1, not an int >= 0"),
        (Event("E", decodes={"payload": b"x"}), "decodes is no mapping of bytes to bytes"),  # type: ignore[dict-item]
    ):
        assert opened(lambda fields, e=event: e, {b"a": b"1"})[1] == (
            f"envelope gave an Event whose {reason}"
        )


def test_key_fields_are_set_over_what_the_consumer_decodes():
    def envelope(fields):
        return Event("E", entity="comment", decodes={b"entity": b"x", b"version": b"9",
                                                     b"payload": b"p"})  # fmt: skip

    key, problem, fields = opened(envelope, {b"a": b"1"})
    assert (key, problem) == ("E", None)
    assert fields == {b"event_id": b"E", b"entity": b"comment", b"payload": b"p"}


def test_canonical_fields_read_as_cdc_verify_entries_give_the_same_event():
    _, _, fields = opened(JsonEnvelope(), event(event_id="E", version=3, entity="comment"))
    again = StreamEntry.from_redis(PRODUCTION, "1000-0", fields)
    assert (again.event_id, again.problem, again.fields) == ("E", None, fields)


def test_no_envelope_reads_entries_as_before():
    fields = {b"event_id": b"E", b"payload": b"x"}
    entry = StreamEntry.from_redis(PRODUCTION, b"1000-0", fields)
    assert (entry.event_id, entry.problem, entry.fields is fields) == ("E", None, True)


@pytest.mark.parametrize(("pointer", "parts"), [
    ("", ()), ("/", ("",)), ("/a/0", ("a", "0")), ("/a~1b/c~0d", ("a/b", "c~d")),
])  # fmt: skip
def test_json_pointers_parse_as_rfc_6901_says(pointer, parts):
    assert parse_pointer(pointer) == parts


def test_a_pointer_without_its_slash_is_refused():
    with pytest.raises(ValueError, match="'a' is not a JSON pointer"):
        parse_pointer("a")
