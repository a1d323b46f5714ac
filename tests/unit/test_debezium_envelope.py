"""The debezium envelope (core/debezium.py) on Debezium Server's real records
(tests/debezium_vectors/), the row-version join key, tombstones and bad records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.loader import ROW_CONSUMER
from cdc_verify.core.debezium import DebeziumEnvelope
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry, is_tombstone
from cdc_verify.core.envelope import VersionKeyed, read_canonical, version_key
from cdc_verify.core.outcome import OutcomeKind, counted_as
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.runners.wiring import side_envelopes
from cdc_verify.schemas.verdicts import Side, Verdict

VECTORS = Path(__file__).resolve().parents[1] / "debezium_vectors"
FORMATS = sorted(p.name for p in VECTORS.iterdir() if p.is_dir())
# The rows record.py writes: items (id 1 read then deleted at version 1, id 2 created at
# 1 and updated to 2); types (id 1 read, id 2 created and updated).
ITEMS = {"read": "items/1@1", "create": "items/2@1", "update": "items/2@2",
         "delete": "items/1@1:delete"}  # fmt: skip


def fields_of(fmt: str, name: str) -> dict[bytes, bytes]:
    record = json.loads((VECTORS / fmt / f"{name}.json").read_text())
    return {k.encode(): v.encode() for k, v in record["fields"].items()}


def opened(fields: dict[bytes, bytes], envelope=None) -> StreamEntry:
    return StreamEntry.from_redis(PRODUCTION, b"1000-0", fields, envelope or DebeziumEnvelope())


@pytest.mark.parametrize("fmt", [f for f in FORMATS if (VECTORS / f / "items-read.json").exists()])
@pytest.mark.parametrize("kind", sorted(ITEMS))
def test_every_format_gives_the_row_version_key_entity_op_and_the_value(fmt, kind):
    fields = fields_of(fmt, f"items-{kind}")
    entry = opened(fields)
    assert (entry.event_id, entry.problem) == (ITEMS[kind], None)
    rest = ITEMS[kind].partition("/")[2]
    assert entry.fields[b"entity"] == b"items"
    assert entry.fields[b"op"] == kind.encode()
    assert entry.fields[b"entity_id"] == rest.partition("@")[0].encode()
    assert entry.fields[b"version"] == rest.partition("@")[2].split(":")[0].encode()
    # The consumer gets the value as the sink wrote it, whatever the format.
    value = fields[b"value"] if b"value" in fields else next(iter(fields.values()))
    assert entry.fields[b"payload"] == value
    assert entry.fields[b"encoding"] == b"debezium"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_types_table_is_keyed_by_its_id_and_version(fmt):
    keys = {name: opened(fields_of(fmt, f"types-{name}")).event_id for name in
            ("read", "create", "update")}  # fmt: skip
    assert keys["read"].startswith("types/1@") and keys["create"].startswith("types/2@")
    assert keys["update"] != keys["create"] and keys["update"].startswith("types/2@")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if (VECTORS / f / "items-read.json").exists()])
def test_a_tombstone_is_no_event_and_a_truncate_is_malformed_with_its_reason(fmt):
    tombstone = opened(fields_of(fmt, "items-tombstone"))
    assert is_tombstone(tombstone) and tombstone.event_id is None
    truncate = opened(fields_of(fmt, "items-truncate"))
    assert truncate.event_id is None
    assert truncate.problem == "a TRUNCATE (op 't') is no row change"


def test_a_delete_without_replica_identity_full_says_so():
    entry = opened(fields_of("extended-plain", "items_default-delete"))
    assert entry.event_id is None
    assert "REPLICA IDENTITY FULL" in (entry.problem or "")
    # The default identity's update has no `before`, which the key does not need.
    assert (
        opened(fields_of("extended-plain", "items_default-update")).event_id == "items_default/1@2"
    )


def test_the_version_column_is_chosen_and_a_missing_one_is_named():
    fields = fields_of("extended-plain", "items-update")
    assert opened(fields, DebeziumEnvelope("id")).event_id == "items/2@2"
    entry = opened(fields, DebeziumEnvelope("revision"))
    assert entry.problem == "no 'revision' column in 'after' (--version-column)"


def test_a_composite_key_joins_its_values_in_key_order():
    fields = fields_of("extended-plain", "items-update")
    fields[b"key"] = b'{"tenant":"acme","id":2}'
    assert opened(fields).event_id == "items/acme,2@2"
    assert version_key("votes", "3,9", 2, "delete") == "votes/3,9@2:delete"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({b"value": b"{not json"}, "the value is not JSON"),
        ({b"value": b"[1]"}, "the value is an array, not an object"),
        ({b"key": b"default"}, "the key is null: a table without a primary key"),
        ({b"key": b"{}"}, "the key has no fields"),
        ({b"key": b'{"id":{"a":1}}'}, "key field 'id' is {'a': 1}: not usable in an entity id"),
        ({b"value": b'{"op":"x","source":{"table":"t"}}'}, "op 'x' is none of c, u, d, r"),
        ({b"value": b'{"op":"c","source":{}}'}, "no source.table in the value"),
        ({b"value": b'{"op":"c","source":{"table":"t"}}'}, "op 'c' without a row image in"),
        ({b"value": b'{"op":"c","source":{"table":"t"},"after":{"version":-1}}'},
         "'version' is -1 in 'after': not an integer >= 0"),
        ({b"value": b'{"op":"m","source":{"table":"t"}}'}, "a logical decoding message"),
    ],
)  # fmt: skip
def test_bad_records_are_malformed_with_a_reason(change, reason):
    fields = fields_of("extended-plain", "items-create")
    fields.update(change)
    entry = opened(fields)
    assert entry.event_id is None
    assert reason in (entry.problem or "")


def test_an_entry_in_neither_format_is_malformed():
    entry = opened({b"a": b"1", b"b": b"2"})
    assert entry.problem == "2 fields and none named value: neither of Debezium's message formats"


def test_tombstones_are_counted_never_verdicted_and_rows_join_by_version():
    verifier = Verifier(lambda fields: json.loads(fields[b"payload"])["after"])
    create = fields_of("extended-plain", "items-create")
    tombstone = fields_of("extended-plain", "items-tombstone")
    envelope = DebeziumEnvelope()
    outcomes = verifier.ingest([
        StreamEntry.from_redis(PRODUCTION, b"1000-0", create, envelope),
        StreamEntry.from_redis(PRODUCTION, b"1000-1", tombstone, envelope),
        StreamEntry.from_redis(SISTER, b"1001-0", create, envelope),
    ])  # fmt: skip
    assert [(o.kind, counted_as(o)) for o in outcomes] == [
        (OutcomeKind.TOMBSTONE, "tombstone"), (OutcomeKind.PRIMARY, "match")]  # fmt: skip
    assert outcomes[1].record is not None and outcomes[1].record.event_id == "items/2@1"
    assert outcomes[1].entity_op == ("items", "create")


def test_the_version_join_keys_any_envelope_by_entity_id_and_version():
    envelope = VersionKeyed(read_canonical)
    fields = {b"event_id": b"E1", b"entity": b"comment", b"op": b"update",
              b"entity_id": b"t1_9", b"version": b"7", b"payload": b"x"}  # fmt: skip
    entry = opened(fields, envelope)
    assert entry.event_id == "comment/t1_9@7"
    assert entry.fields[b"payload"] == b"x"
    del fields[b"version"]
    assert opened(fields, envelope).problem == (
        "no version: the row-version join needs entity, entity id and version"
    )


def test_settings_join_debezium_by_version_through_the_row_consumer():
    settings = Settings(envelope="debezium")
    assert settings.joins_by_version and settings.consumer == [ROW_CONSUMER]
    assert isinstance(side_envelopes(settings)[Side.SISTER], DebeziumEnvelope)
    mine = Settings(envelope="debezium", consumer=["my.module:decode"])
    assert mine.consumer == ["my.module:decode"]
    with pytest.raises(ValueError, match="its records carry no event id"):
        Settings(envelope="debezium", join_key="event_id")
    by_version = side_envelopes(Settings(join_key="version"))
    assert isinstance(by_version[Side.PRODUCTION], VersionKeyed)
    assert side_envelopes(Settings())[Side.PRODUCTION] is None  # the default: as is


def test_race_is_impossible_under_the_version_join():
    """Same key means same version: different content is a mismatch, never a race."""
    verifier = Verifier(lambda fields: {"body": fields[b"payload"].decode()})
    envelope = VersionKeyed(read_canonical)
    base = {b"entity": b"comment", b"op": b"update", b"entity_id": b"t1_9", b"version": b"7"}
    outcomes = verifier.ingest([
        StreamEntry.from_redis(PRODUCTION, b"1000-0", {**base, b"payload": b"a"}, envelope),
        StreamEntry.from_redis(SISTER, b"1000-0", {**base, b"payload": b"b"}, envelope),
    ])  # fmt: skip
    assert [o.record.verdict for o in outcomes if o.record] == [Verdict.MISMATCH]
