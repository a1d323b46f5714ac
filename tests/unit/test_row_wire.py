"""Debezium wire types and what the comparison makes of the row consumer's values: the
findings of issue 24 (a numeric of another scale, an int in jsonb where a float was, a
timestamp at another precision or zone, a float column written from an int, an empty
string for a NULL), each on a real record and the same record edited into the other
side; the source block kept in the record, never compared."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_verify.consumers.row import RowDecodeError, decode_row, open_record, row_image
from cdc_verify.core import wire
from cdc_verify.core.debezium import DebeziumEnvelope
from cdc_verify.core.diff import StructuralDiff, deep_same, escape_token
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.jsonvalue import dumps
from cdc_verify.core.outcome import record_to_json
from cdc_verify.core.shape import shape_of
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.core.wire import WireError, row_wire_types
from cdc_verify.schemas.models import VerdictRecordModel

from ..row_records import VECTORS, column_schema, document, envelope, fields
from ..row_records import value_json as raw

SCHEMA_WIRES = {
    "/id": "int32", "/version": "int64", "/n_fixed": "decimal(scale=2)",
    "/n_free": "variable decimal(scale=14)", "/f8": "double", "/f4": "float", "/i2": "int16",
    "/i8": "int64", "/flag": "boolean", "/ts": "MicroTimestamp", "/ts3": "Timestamp",
    "/tstz": "ZonedTimestamp(digits=6)", "/d": "Date", "/t": "MicroTime", "/j": "Json",
    "/js": "Json", "/ints": "array", "/texts": "array", "/b": "bytes", "/u": "Uuid",
    "/txt": "string", "/empty_txt": "string", "/null_txt": "null", "/vc": "string",
}  # fmt: skip


def test_every_column_is_named_by_its_schema():
    assert row_wire_types(raw("extended-schemas", "types-read").encode()) == SCHEMA_WIRES


def test_without_schemas_only_what_json_says_is_named():
    wires = row_wire_types(raw("compact-plain", "types-read").encode())
    assert wires["/n_free"] == "variable decimal(scale=14)"
    assert (wires["/ts"], wires["/f8"], wires["/n_fixed"], wires["/null_txt"]) == (
        "json int", "json float", "json string", "json null"
    )  # fmt: skip


def test_below_a_path_the_items_and_the_jsonb_inside_are_named():
    wires = row_wire_types(raw("extended-schemas", "types-read").encode(), {"/j", "/j/a", "/ints"})
    assert {k: v for k, v in wires.items() if k.count("/") > 1} == {
        "/j/a": "json array", "/j/a/0": "json int", "/j/a/1": "json float",
        "/j/a/2": "json string", "/j/b": "json null",
        "/ints/0": "int32", "/ints/1": "int32", "/ints/2": "int32",
    }  # fmt: skip


def test_a_payload_the_consumer_refuses_is_a_wire_error():
    with pytest.raises(WireError, match="not JSON"):
        row_wire_types(b"default")


def wires_column_by_column(payload: bytes, below: set[str]) -> dict[str, str] | str:
    """row_wire_types as it was before its per-columns plan: every column through
    _row_wire. The wire types, or the error's text."""
    out: dict[str, str] = {}
    try:
        row, columns = row_image(*open_record(payload))
        for name, value in row.items():
            column = columns.get(name) if columns is not None else None
            wire._row_wire(value, column, "/" + escape_token(name), below, out)
    except RowDecodeError as exc:
        return str(exc)
    return out


def wires_planned(payload: bytes, below: set[str]) -> dict[str, str] | str:
    try:
        return row_wire_types(payload, below)
    except WireError as exc:
        return str(exc)


VALUES = [
    None,
    0,
    -1,
    2**31,
    1.5,
    True,
    "",
    "x",
    "2024-02-29T10:34:56.1Z",
    "null",
    [],
    [1, None],
    {},
]
VALUES += [{"scale": 2, "value": "AQ=="}, {"a": [1, 2.5]}, '{"a": [1]}']


@pytest.mark.parametrize("config", ["extended-schemas", "compact-plain"])
def test_every_column_s_wire_by_its_plan_is_what_the_column_by_column_walk_gives(config):
    doc = document(config, "types-read")
    for column in SCHEMA_WIRES:
        for value in VALUES:
            for below in (set(), {column}, {column, column + "/a"}):
                edited = json.loads(json.dumps(doc))
                envelope(edited)["after"][column[1:]] = value
                payload = json.dumps(edited).encode()
                assert wires_planned(payload, below) == wires_column_by_column(payload, below), (
                    column, value, below,
                )  # fmt: skip


# -- findings ---------------------------------------------------------------------


def judge(production: str | dict, sister: str | dict, **config: Any) -> dict[str, Any]:
    def entry(side, ms, payload):
        canonical = {b"event_id": b"types/1@1", b"version": b"1", **fields(payload)}
        return StreamEntry(side, f"{ms}-0", canonical)

    verifier = Verifier(decode_row, VerifierConfig(grace_ms=1000, **config))
    [outcome] = verifier.ingest([entry(PRODUCTION, 1, production), entry(SISTER, 2, sister)])
    record = outcome.record.as_json()
    VerdictRecordModel.model_validate_json(record_to_json(outcome.record))
    return record


def sister_of(name: str, change, config: str = "extended-schemas") -> tuple[str, dict]:
    doc = document(config, name)
    change(doc)
    return raw(config, name), doc


def after(doc: dict[str, Any]) -> dict[str, Any]:
    return envelope(doc)["after"]


def retyped(column: str, value: Any, **schema: Any):
    def change(doc):
        column_schema(doc, "after", column)  # it is there
        [field] = [f for f in doc["schema"]["fields"] if f["field"] == "after"]
        for c in field["fields"]:
            if c["field"] == column:
                c.update(schema)
        after(doc)[column] = value

    return change


def unscaled(number: int) -> str:
    return base64.b64encode(number.to_bytes(8, "big", signed=True).lstrip(b"\0") or b"\0").decode()


def only(record: dict[str, Any]) -> tuple:
    [d] = record["differences"]
    return (
        d["path"],
        d["kind"],
        d["production"],
        d["sister"],
        d["production_wire"],
        d["sister_wire"],
    )


def test_a_numeric_of_another_scale_is_a_type_difference_though_the_decimals_are_equal():
    # numeric(12,2) 1234.50 against a numeric(12,1) 1234.5: Decimal("1234.50") == Decimal("1234.5")
    scale_1 = {"scale": "1", "connect.decimal.precision": "12"}
    record = judge(
        *sister_of("types-read", retyped("n_fixed", unscaled(12345), parameters=scale_1))
    )
    assert record["verdict"] == "mismatch"
    assert only(record) == ("/n_fixed", "type", {"$decimal": "1234.50"}, {"$decimal": "1234.5"},
                            "decimal(scale=2)", "decimal(scale=1)")  # fmt: skip


def test_a_variable_scale_numeric_of_another_scale_too_with_or_without_schemas():
    def wider(doc):
        after(doc)["n_free"] = {"scale": 15, "value": unscaled(3141592653589790)}

    for config in ("extended-schemas", "compact-plain"):
        record = judge(*sister_of("types-read", wider, config))
        assert only(record)[1:] == (
            "type", {"$decimal": "3.14159265358979"}, {"$decimal": "3.141592653589790"},
            "variable decimal(scale=14)", "variable decimal(scale=15)",
        )  # fmt: skip


def test_an_int_in_jsonb_where_production_has_a_float_names_the_json_kinds():
    record = judge(
        *sister_of("types-read", lambda d: after(d).update(j='{"a": [1, 2, "x"], "b": null}'))
    )
    assert only(record) == ("/j/a/1", "type", 2.5, 2, "json float", "json int")


def test_jsonb_that_only_writes_a_number_otherwise_is_a_match():
    # 2.50 and 2.5 are one float to psycopg, and to Postgres's jsonb numeric alike
    record = judge(
        *sister_of("types-read", lambda d: after(d).update(j='{"a": [1, 2.5, "x"], "b": null}'))
    )
    assert record == {"event_id": "types/1@1", "verdict": "match"}


def test_a_timestamp_at_another_precision_is_a_type_difference_where_the_times_are_equal():
    # timestamp(3) 12:34:56.789 against a timestamp(6) holding the same instant
    micro = retyped("ts3", 1709210096789000, name="io.debezium.time.MicroTimestamp")
    record = judge(*sister_of("types-read", micro))
    same = {"$datetime": "2024-02-29T12:34:56.789000"}
    assert only(record) == ("/ts3", "type", same, same, "Timestamp", "MicroTimestamp")


def test_a_timestamp_cut_to_milliseconds_is_a_value_difference_with_its_wires():
    record = judge(
        *sister_of("types-read", retyped("ts", 1709210096789, name="io.debezium.time.Timestamp"))
    )
    micro, milli = "2024-02-29T12:34:56.789012", "2024-02-29T12:34:56.789000"
    assert only(record)[1:] == (
        "value", {"$datetime": micro}, {"$datetime": milli}, "MicroTimestamp", "Timestamp"
    )  # fmt: skip


def test_a_timestamp_written_in_another_zone():
    # timestamp without time zone: the wall time of another zone is another value
    record = judge(
        *sister_of("types-read", lambda d: after(d).update(ts=1709210096789012 - 7_200_000_000))
    )
    [difference] = record["differences"]  # the same wire types: not named
    assert (difference["path"], difference["kind"], difference["sister"]) == (
        "/ts", "value", {"$datetime": "2024-02-29T10:34:56.789012"}
    )  # fmt: skip
    # a timestamptz column on one side only: naive against aware, never compared
    aware = retyped(
        "ts", "2024-02-29T12:34:56.789012Z", type="string", name="io.debezium.time.ZonedTimestamp"
    )
    record = judge(*sister_of("types-read", aware))
    assert only(record) == ("/ts", "type", {"$datetime": "2024-02-29T12:34:56.789012"},
                            {"$datetime": "2024-02-29T12:34:56.789012+00:00"},
                            "MicroTimestamp", "ZonedTimestamp(digits=6)")  # fmt: skip
    # timestamptz written with another offset: the same instant, and Debezium writes UTC
    same = judge(
        *sister_of("types-read", lambda d: after(d).update(tstz="2024-02-29T12:34:56.789012+02:00"))
    )
    assert same["verdict"] == "match"


def test_a_float_column_written_from_an_int():
    # production's f8 is 3.0 (double precision); the sister's column took the int 3
    record = judge(*sister_of("types-update", retyped("f8", 3, type="int64")))
    assert only(record) == ("/f8", "type", 3.0, 3, "double", "int64")


def test_a_real_against_a_double_of_the_same_value():
    record = judge(*sister_of("types-read", retyped("f4", 0.1, type="double")))
    assert only(record) == ("/f4", "type", 0.1, 0.1, "float", "double")


def test_an_empty_string_for_a_null_is_named_both_ways():
    record = judge(*sister_of("types-read", lambda d: after(d).update(empty_txt=None, null_txt="")))
    differences = {d["path"]: d for d in record["differences"]}
    assert {p: (d["kind"], d["production"], d["sister"], d["production_wire"], d["sister_wire"])
            for p, d in differences.items()} == {
        "/empty_txt": ("type", "", None, "string", "null"),
        "/null_txt": ("type", None, "", "null", "string"),
    }  # fmt: skip


def test_a_side_without_schemas_makes_no_finding_of_the_types_it_does_not_say():
    # int32 against a JSON int, string against a JSON string: equal values, no finding
    pair = raw("extended-schemas", "items-update"), raw("extended-plain", "items-update")
    assert judge(*pair) == {"event_id": "types/1@1", "verdict": "match"}
    # where the values differ in type, the wires are named all the same
    record = judge(raw("extended-schemas", "types-read"), raw("extended-plain", "types-read"))
    ts = {d["path"]: d for d in record["differences"]}["/ts"]
    assert (ts["kind"], ts["production_wire"], ts["sister_wire"]) == (
        "type", "MicroTimestamp", "json int"
    )  # fmt: skip
    assert "/id" not in {d["path"] for d in record["differences"]}


def test_an_ignored_path_hides_a_wire_only_finding_too():
    scale_1 = {"scale": "1", "connect.decimal.precision": "12"}
    pair = sister_of("types-read", retyped("n_fixed", unscaled(12345), parameters=scale_1))
    record = judge(*pair, ignored_paths=("/n_fixed",))
    assert record["verdict"] == "match"


def test_the_same_row_from_two_databases_is_a_match_whatever_their_sources_say():
    # another LSN, transaction, commit time, database and topic prefix
    def elsewhere(doc):
        source = envelope(doc)["source"]
        source.update(lsn=1, txId=2, ts_ms=3, db="sister", name="other", sequence='[null,"1"]')
        envelope(doc)["ts_ms"] = 4

    assert judge(*sister_of("types-read", elsewhere))["verdict"] == "match"


def test_a_mismatch_keeps_each_side_s_source_block():
    production, sister = sister_of("items-update", lambda d: after(d).update(name="other"))
    envelope(sister)["source"].update(lsn=99, db="sister")
    record = judge(production, sister)
    source = envelope(document("extended-schemas", "items-update"))["source"]
    kept = {k: source[k] for k in ("lsn", "txId", "ts_ms", "db", "schema", "table", "snapshot")}
    assert record["sources"] == {"production": kept, "sister": {**kept, "lsn": 99, "db": "sister"}}


def test_an_undecodable_side_keeps_the_sources_that_can_be_read():
    record = judge(raw("extended-schemas", "items-update"), '{"op": "c", "after": null}')
    assert record["verdict"] == "undecodable"
    assert set(record["sources"]) == {"production"}


# -- the values in the diff, the records and the shapes ----------------------------

NAIVE = datetime(2024, 2, 29, 12, 0)
AWARE = NAIVE.replace(tzinfo=UTC)


@pytest.mark.parametrize(("a", "b", "kind"), [
    (Decimal("1.0"), Decimal("1.00"), None),  # equal: the scale is the wire's finding
    (Decimal("NaN"), Decimal("NaN"), None),
    (Decimal("1"), Decimal("2"), "value"),
    (Decimal("1"), 1, "type"),
    (Decimal("0.1"), 0.1, "type"),
    (NAIVE, AWARE, "type"),
    (time(1), time(1, tzinfo=UTC), "type"),
    (NAIVE, NAIVE.date(), "type"),
    (date(2024, 1, 1), date(2024, 1, 2), "value"),
    (timedelta(1), timedelta(1), None),
    (UUID(int=1), str(UUID(int=1)), "type"),
    (UUID(int=1), UUID(int=2), "value"),
])  # fmt: skip
def test_the_diff_compares_the_row_types_strictly_and_never_raises(a, b, kind):
    diff = StructuralDiff()
    for x, y in ((a, b), (b, a)):
        found = diff({"c": [x]}, {"c": [y]})
        assert [d.kind.value for d in found] == ([kind] if kind else [])
        assert deep_same({"c": [x]}, {"c": [y]}) is (kind is None)


def test_record_json_tags_each_row_type_with_its_exact_text():
    assert json.loads(dumps([Decimal("1234.50"), Decimal("1E-20"), AWARE, NAIVE, date(1900, 1, 1),
                             time(12, 34, 56, 789012), timedelta(1, 2, 3), UUID(int=1)])) == [
        {"$decimal": "1234.50"}, {"$decimal": "1E-20"},
        {"$datetime": "2024-02-29T12:00:00+00:00"}, {"$datetime": "2024-02-29T12:00:00"},
        {"$date": "1900-01-01"}, {"$time": "12:34:56.789012"},
        {"$timedelta": "1d2s3us"}, {"$uuid": "00000000-0000-0000-0000-000000000001"},
    ]  # fmt: skip


def test_the_shape_of_a_row_names_the_row_types():
    row = decode_row(fields(raw("extended-schemas", "types-read")))
    types = {part.split("\0")[0]: part.split("\0")[1] for part in shape_of(row)}
    assert {k: types[k] for k in ("/n_fixed", "/ts", "/tstz", "/d", "/t", "/u", "/b")} == {
        "/n_fixed": "decimal", "/ts": "datetime", "/tstz": "datetime", "/d": "date",
        "/t": "time", "/u": "uuid", "/b": "bin",
    }  # fmt: skip


# -- hostile pairs ------------------------------------------------------------------

FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
RECORDED = [raw(c, "types-read") for c in ("extended-schemas", "compact-plain")]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@FUZZ
@given(which=st.sampled_from(RECORDED), column=st.sampled_from(sorted(SCHEMA_WIRES)),
       value=json_values, cut=st.integers(0, 7000))  # fmt: skip
def test_any_sister_value_gets_a_record_and_keeps_every_difference(which, column, value, cut):
    doc = json.loads(which)
    after(doc)[column[1:]] = value
    sister = json.dumps(doc)
    for other in (sister, sister[:cut]):
        record = judge(which, other)  # validates the record against its model too
        assert record["verdict"] in ("match", "mismatch", "undecodable")
        if record["verdict"] == "mismatch":
            p_row, s_row = decode_row(fields(which)), decode_row(fields(other))
            found = {d.path for d in StructuralDiff()(p_row, s_row)}
            assert found <= {d["path"] for d in record["differences"]}
        # production's record is whole: its source block is kept on every finding
        assert ("sources" in record) is (record["verdict"] != "match")
        assert "production" in record.get("sources", {"production": {}})


# -- through the debezium envelope ------------------------------------------------


def sink_fields(config: str, name: str) -> dict[bytes, bytes]:
    record = json.loads((VECTORS / config / f"{name}.json").read_text(encoding="utf-8"))
    return {k.encode(): v.encode() for k, v in record["fields"].items()}


def verdict_of(production: dict[bytes, bytes], sister: dict[bytes, bytes]) -> dict[str, Any]:
    envelope = DebeziumEnvelope()
    entries = [StreamEntry.from_redis(PRODUCTION, b"1-0", production, envelope),
               StreamEntry.from_redis(SISTER, b"2-0", sister, envelope)]  # fmt: skip
    [outcome] = Verifier(decode_row, VerifierConfig(grace_ms=1000)).ingest(entries)
    return json.loads(record_to_json(outcome.record))


@pytest.mark.parametrize("name", ["types-read", "types-create", "types-update", "items-delete"])
def test_two_real_debezium_runs_of_one_change_are_a_match(name):
    # Two servers, two runs: other LSNs, transactions and times, extended against compact.
    production, sister = sink_fields("extended-schemas", name), sink_fields("compact-schemas", name)
    assert production[b"value"] != next(iter(sister.values()))
    record = verdict_of(production, sister)
    assert record["verdict"] == "match" and "/" in record["event_id"]


def test_a_real_record_against_its_edited_twin_through_the_envelope():
    production = sink_fields("extended-schemas", "types-update")
    doc = json.loads(production[b"value"])
    scale_1 = {"scale": "1", "connect.decimal.precision": "12"}
    retyped("n_fixed", unscaled(0), parameters=scale_1)(doc)  # 0.00 written as 0.0
    envelope(doc)["source"].update(lsn=7, txId=8, db="sister")
    sister = {**production, b"value": json.dumps(doc).encode()}
    record = verdict_of(production, sister)
    assert (record["event_id"], record["verdict"]) == ("types/2@2", "mismatch")
    [difference] = record["differences"]
    assert (difference["path"], difference["production_wire"], difference["sister_wire"]) == (
        "/n_fixed", "decimal(scale=2)", "decimal(scale=1)"
    )  # fmt: skip
    assert (record["sources"]["sister"]["lsn"], record["sources"]["sister"]["db"]) == (7, "sister")
    assert (
        record["sources"]["production"]["lsn"]
        == envelope(json.loads(production[b"value"]))["source"]["lsn"]
    )
