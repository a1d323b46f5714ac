"""The reference row consumer on real Debezium Server records (tests/debezium_vectors/):
each Postgres type as psycopg code reads it, in every format that says enough; deletes;
and every way a payload can be refused, hostile ones included."""

from __future__ import annotations

import base64
import copy
import json
import sys
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_verify.consumers import row as row_module
from cdc_verify.consumers.loader import ROW_CONSUMER, load_consumer
from cdc_verify.consumers.row import RowDecodeError, decode_row, open_record

from ..row_records import CONFIGS, PLAIN, SCHEMAS, column_schema, document, envelope, fields
from ..row_records import value_json as raw

# What psycopg gives for the row types-read.json holds (README.md's table, first values).
READ_ROW: dict[str, Any] = {
    "id": 1,
    "version": 1,
    "n_fixed": Decimal("1234.50"),
    "n_free": Decimal("3.14159265358979"),
    "f8": 0.1,
    "f4": 0.1,
    "i2": -32768,
    "i8": 9007199254740993,
    "flag": True,
    "ts": datetime(2024, 2, 29, 12, 34, 56, 789012),  # timestamp: naive
    "ts3": datetime(2024, 2, 29, 12, 34, 56, 789000),
    "tstz": datetime(2024, 2, 29, 10, 34, 56, 789012, tzinfo=UTC),
    "d": date(2024, 2, 29),
    "t": time(12, 34, 56, 789012),
    "j": {"a": [1, 2.5, "x"], "b": None},
    "js": {"b": 1, "a": 2},
    "ints": [1, 2, 3],
    "texts": ["a", "b c", None],
    "b": b"\x00\xff\x10",
    "u": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "txt": "héllo",
    "empty_txt": "",
    "null_txt": None,
    "vc": "short",
}
# types-update.json's after: the second values of the table.
UPDATED = {
    "id": 2,
    "version": 2,
    "n_fixed": Decimal("0.00"),
    "n_free": Decimal("0.00000000000000000001"),
    "f8": 3.0,
    "ts": datetime(1969, 12, 31, 23, 59, 59, 999999),
    "tstz": datetime(2024, 6, 1, 7, 0, tzinfo=UTC),
    "d": date(1900, 1, 1),
    "j": [],
    "ints": [],
    "b": b"",
    "txt": None,
}


def decode(config: str, name: str) -> dict[str, Any]:
    return decode_row(fields(raw(config, name)))


def exact(value: Any) -> Any:
    """A value with its type and, for a Decimal, its digits and exponent: == alone finds
    Decimal("0.00") equal to Decimal("0") and 1 equal to 1.0."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, Decimal):
        return ("Decimal", value.as_tuple())
    if isinstance(value, datetime | time):
        return (type(value).__name__, value, value.tzinfo)
    return (type(value).__name__, value)


# -- every type, as psycopg reads it ----------------------------------------------


@pytest.mark.parametrize("config", SCHEMAS)
def test_with_schemas_every_postgres_type_is_the_python_value_psycopg_gives(config):
    assert exact(decode(config, "types-read")) == exact(READ_ROW)


@pytest.mark.parametrize("config", SCHEMAS)
def test_the_second_values_negative_times_empty_values_and_null(config):
    row = decode(config, "types-update")
    assert exact({k: row[k] for k in UPDATED}) == exact(UPDATED)
    assert list(row) == list(READ_ROW)  # the table's column order


def test_a_numeric_keeps_its_scale_and_a_negative_one_its_sign():
    created = decode("extended-schemas", "types-create")
    assert exact(created["n_fixed"]) == exact(Decimal("-0.01"))
    assert str(decode("extended-schemas", "types-update")["n_fixed"]) == "0.00"


@pytest.mark.parametrize("name", ["types-read", "types-create", "types-update", "items-update"])
def test_extended_and_compact_give_the_same_row(name):
    assert exact(decode("extended-schemas", name)) == exact(decode("compact-schemas", name))
    assert exact(decode("extended-plain", name)) == exact(decode("compact-plain", name))


def test_a_snapshot_read_and_a_streamed_insert_decode_alike():
    read, created = (
        decode("extended-schemas", "types-read"),
        decode("extended-schemas", "types-create"),
    )
    same = set(READ_ROW) - {"id", "n_fixed"}  # the two rows differ in these only
    assert exact({k: read[k] for k in same}) == exact({k: created[k] for k in same})


@pytest.mark.parametrize("config", PLAIN)
def test_without_schemas_only_a_variable_scale_numeric_is_typed(config):
    row = decode(config, "types-read")
    document_row = envelope(document(config, "types-read"))["after"]
    assert exact(row["n_free"]) == exact(Decimal("3.14159265358979"))
    # The rest stays as JSON gives it: a timestamp its microseconds, a numeric(12,2)
    # its base64, jsonb its text. A team that wants them typed enables schemas.
    assert exact({k: v for k, v in row.items() if k != "n_free"}) == exact(
        {k: v for k, v in document_row.items() if k != "n_free"}
    )
    assert (row["ts"], row["n_fixed"], row["j"]) == (
        1709210096789012, "AeI6", '{"a": [1, 2.50, "x"], "b": null}'
    )  # fmt: skip


def test_decimal_handling_modes_string_and_double():
    as_string = decode("extended-schemas-decimal-string", "types-read")
    as_double = decode("extended-schemas-decimal-double", "types-read")
    # string: the schema names no decimal, so the text stays text (scale kept)
    assert exact((as_string["n_fixed"], as_string["n_free"])) == exact(
        ("1234.50", "3.14159265358979")
    )
    # double: a float, as Debezium sent it
    assert exact((as_double["n_fixed"], as_double["n_free"])) == exact((1234.5, 3.14159265358979))
    same = set(READ_ROW) - {"n_fixed", "n_free"}
    assert exact({k: as_string[k] for k in same}) == exact({k: READ_ROW[k] for k in same})


# -- row images -----------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_a_delete_reads_before_and_the_others_after(config):
    assert decode(config, "items-delete") == {"id": 1, "name": "one", "version": 1}
    assert decode(config, "items-read") == {"id": 1, "name": "one", "version": 1}
    assert decode(config, "items-create") == {"id": 2, "name": "two", "version": 1}
    assert decode(config, "items-update") == {"id": 2, "name": "two!", "version": 2}


def test_a_default_replica_identity_delete_is_the_key_and_nulls():
    assert decode("extended-plain", "items_default-delete") == {
        "id": 1, "name": None, "version": None,
    }  # fmt: skip


def test_the_source_block_is_not_in_the_row():
    doc = document("extended-schemas", "items-update")
    assert "source" in envelope(doc) and "lsn" in envelope(doc)["source"]
    assert set(decode("extended-schemas", "items-update")) == {"id", "name", "version"}


@pytest.mark.parametrize(("name", "error"), [
    ("items-truncate", "op 't' has no row image"),
    ("items-tombstone", "payload is not JSON"),
])  # fmt: skip
def test_a_truncate_and_a_tombstone_are_refused_if_they_ever_come(name, error):
    with pytest.raises(RowDecodeError, match=error):
        decode("extended-schemas", name)


def test_it_is_registered_for_the_loader():
    assert load_consumer(ROW_CONSUMER) is decode_row


# -- refusals -------------------------------------------------------------------


def edited(change) -> dict[bytes, bytes]:
    doc = document("extended-schemas", "types-read")
    change(doc)
    return fields(doc)


def after(doc: dict[str, Any]) -> dict[str, Any]:
    return envelope(doc)["after"]


def set_schema(column: str, **changes: Any):
    def change(doc):
        [field] = [f for f in doc["schema"]["fields"] if f["field"] == "after"]
        for c in field["fields"]:
            if c["field"] == column:
                c.update(changes)

    return change


def row(**values: Any) -> dict[bytes, bytes]:
    return edited(lambda d: after(d).update(values))


REFUSED = [
    ("not json", {b"encoding": b"debezium", b"payload": b"{nope"}, "payload is not JSON"),
    ("not utf-8", {b"encoding": b"debezium", b"payload": b'{"op":"\xff"}'}, "not UTF-8"),
    ("an array", fields("[1, 2]"), "a JSON array, not an object"),
    ("no payload", {b"encoding": b"debezium"}, "missing field 'payload'"),
    ("another encoding", {b"encoding": b"msgpack", b"payload": b"{}"}, "encoding b'msgpack'"),
    ("no op", fields('{"before": null, "after": {"a": 1}}'), "op None has no row image"),
    ("op m", fields('{"op": "m", "after": {}}'), "op 'm' has no row image"),
    ("create without after", fields('{"op": "c", "after": null}'),
     "no row image: after is a JSON null"),
    ("delete without before", fields('{"op": "d", "before": null}'), "no row image: before"),
    ("deep json", fields("[" * 100_000 + "]" * 100_000), "nested too deep|not an object"),
    ("a 10,000 digit int", fields('{"op": "c", "after": {"a": ' + "9" * 10_000 + "}}"), "not JSON"),
    ("schema payload no object", fields('{"schema": {}, "payload": []}'), "payload's payload"),
    ("no after schema", fields('{"schema": {"fields": []}, "payload": {"op": "c", "after": {}}}'),
     "schema: no field 'after'"),
    ("string for int32", row(id="1"), "/id: a JSON string .* int32"),
    ("int16 out of range", row(i2=40000), "/i2: a JSON number .* int16"),
    ("bool for int", row(version=True), "/version: a JSON boolean"),
    ("bad base64", row(n_fixed="A*=="), "/n_fixed: not base64"),
    ("bytes as number", row(b=5), "/b: a JSON number .* bytes"),
    ("no decimal bytes", row(n_fixed=""), "/n_fixed: a numeric of no bytes"),
    ("variable decimal shape", row(n_free={"value": "AQ=="}), "/n_free: a JSON object"),
    ("variable decimal scale", row(n_free={"scale": "1", "value": "AQ=="}), "numeric scale '1'"),
    ("column the schema lacks", row(extra=1), "/extra: a column the schema does not"),
    ("column the row lacks", edited(lambda d: after(d).pop("vc")),
     "/vc: a column of the schema the row"),
    ("date out of range", row(d=10**9), "/d: date .* out of Python's range"),
    ("time past the day", row(t=86_400_000_000), "/t: .* not within one day"),
    ("timestamp out of range", row(ts=2**62), "/ts: timestamp .* out of Python's range"),
    ("zoned without zone", row(tstz="2024-02-29T10:34:56"), "/tstz: .* has no zone"),
    ("zoned not iso", row(tstz="yesterday"), "/tstz: .* is no ISO 8601"),
    ("bad uuid", row(u="a0eebc99"), "/u: 'a0eebc99' is no UUID"),
    ("bad jsonb", row(j="{"), "/j: not JSON"),
    ("array of strings for ints", row(ints=["1"]), "/ints/0: a JSON string"),
    ("array not a list", row(ints={"0": 1}), "/ints: a JSON object .* array"),
    ("float as text", row(f8="0.1"), "/f8: a JSON string .* double"),
    ("unknown schema type", edited(set_schema("vc", type="varchar")),
     "/vc: unknown schema type 'varchar'"),
    ("schema type not text", edited(set_schema("vc", type=["string"])), "/vc: schema type"),
    ("decimal scale not a number", edited(set_schema("n_fixed", parameters={"scale": "two"})),
     "numeric scale 'two'"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "error"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_the_row_consumer_refuses_and_how_it_says_so(entry, error):
    with pytest.raises(RowDecodeError, match=error):
        decode_row(entry)


def test_a_double_may_come_as_an_integer_or_as_jackson_s_quoted_nan():
    row = decode_row(edited(lambda d: after(d).update(f8=3, f4="NaN")))
    assert exact(row["f8"]) == exact(3.0) and row["f4"] != row["f4"]


def test_an_unscaled_value_of_any_length_is_exact():
    digits = 10**60 + 7  # past any decimal context's precision
    value = base64.b64encode(digits.to_bytes(26, "big", signed=True)).decode()
    row = decode_row(edited(lambda d: after(d).update(n_fixed=value)))
    assert str(row["n_fixed"]) == str(digits)[:-2] + "." + str(digits)[-2:]


# -- hostile payloads -------------------------------------------------------------

FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
RECORDED = [raw(c, n) for c in CONFIGS for n in ("types-read", "types-update", "items-delete")]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def decodes_or_refuses(entry: dict[bytes, bytes]) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the worker's: hypothesis raises it while a test runs
    try:
        row = decode_row(entry)
    except RowDecodeError as exc:
        assert str(exc)
    else:
        assert type(row) is dict
    finally:
        sys.setrecursionlimit(limit)


@FUZZ
@given(data=st.data(), which=st.sampled_from(RECORDED))
def test_a_recorded_payload_cut_or_with_bytes_flipped_decodes_or_is_refused(data, which):
    payload = bytearray(which.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    payload = payload[: data.draw(st.integers(0, len(payload)))]
    decodes_or_refuses(fields(bytes(payload)))


@FUZZ
@given(which=st.sampled_from(RECORDED), column=st.sampled_from(sorted(READ_ROW)), value=json_values)
def test_any_json_value_in_any_column_decodes_or_is_refused(which, column, value):
    doc = json.loads(which)
    inner = envelope(doc)
    image = inner["after"] if inner["op"] != "d" else inner["before"]
    image[column] = value
    decodes_or_refuses(fields(doc))


# Each integer type's edges, either side.
INT_EDGES = [
    e + d
    for bits in (8, 16, 32, 64)
    for e in (-(2 ** (bits - 1)), 2 ** (bits - 1))
    for d in (-1, 0)
]
# Every column schema of the types table, to meet values of every other column too.
COLUMN_SCHEMAS = [
    column_schema(document("extended-schemas", "types-read"), "after", name) for name in READ_ROW
]


def read_by_value(entry: dict[bytes, bytes]) -> Any:
    """What decode_row gives, read as it was before its per-schema plan: each column's
    value through _typed, its schema looked at anew. The value, or the error's text."""
    token = row_module._token
    try:
        envelope_, schema = open_record(entry[b"payload"])
        row, columns = row_module.row_image(envelope_, schema)
        if columns is None:
            return {
                name: row_module._plain(value, f"/{token(name)}", 0) for name, value in row.items()
            }
        if row.keys() != columns.keys():
            row_module._explain_columns(row, columns)
        return {
            name: row_module._typed(value, columns[name], f"/{token(name)}", 0)
            for name, value in row.items()
        }
    except RowDecodeError as exc:
        return str(exc)


def read_by_plan(entry: dict[bytes, bytes]) -> Any:
    try:
        return decode_row(entry)
    except RowDecodeError as exc:
        return str(exc)


@pytest.mark.parametrize("config", SCHEMAS)
def test_every_column_read_by_its_plan_is_what_reading_it_by_value_gives(config):
    doc = document(config, "types-read")
    for column in READ_ROW:
        for value in [*INT_EDGES, None, True, 0, 1.5, "x", "", [], {}, [1], {"a": 1}]:
            changed = copy.deepcopy(doc)
            envelope(changed)["after"][column] = value
            entry = fields(changed)
            assert read_by_plan(entry) == read_by_value(entry), (column, value)


@settings(FUZZ, max_examples=600)
@given(
    which=st.sampled_from(RECORDED),
    column=st.sampled_from(sorted(READ_ROW)),
    value=json_values | st.sampled_from(INT_EDGES),
    schema=st.none() | st.sampled_from(COLUMN_SCHEMAS) | json_values,
)
def test_a_column_read_by_its_plan_is_what_reading_it_by_value_gives(which, column, value, schema):
    doc = json.loads(which)
    inner = envelope(doc)
    image = inner["after"] if inner["op"] != "d" else inner["before"]
    image[column] = value
    if schema is not None and "schema" in doc:  # a column schema of any JSON in its place
        image_name = "before" if inner["op"] == "d" else "after"
        [struct] = [f for f in doc["schema"]["fields"] if f.get("field") == image_name]
        for spec in [f for f in struct["fields"] if f.get("field") == column]:
            spec.clear()
            spec.update(schema if type(schema) is dict else {"type": schema}, field=column)
    entry = fields(doc)
    assert read_by_plan(entry) == read_by_value(entry)


@FUZZ
@given(value=json_values, schema=json_values)
def test_any_json_document_or_schema_decodes_or_is_refused(value, schema):
    decodes_or_refuses(fields(json.dumps(value)))
    doc = copy.deepcopy(document("extended-schemas", "items-update"))
    doc["schema"] = schema
    decodes_or_refuses(fields(doc))
    doc = document("extended-schemas", "items-update")
    doc["schema"]["fields"][1]["fields"][0] = schema
    decodes_or_refuses(fields(doc))


def test_nested_arrays_past_the_bound_are_refused_not_recursed():
    doc = document("extended-schemas", "types-read")
    schema = column_schema(doc, "after", "ints")
    for _ in range(40):
        schema = {"type": "array", "items": schema, "optional": True}
    set_schema("ints", **schema)(doc)
    value: Any = [1]
    for _ in range(40):
        value = [value]
    after(doc)["ints"] = value
    with pytest.raises(RowDecodeError, match="nested deeper than 32 levels"):
        decode_row(fields(doc))


def test_the_pair_just_decoded_is_not_parsed_again_for_its_wire_types():
    production, sister = (
        raw("extended-schemas", "types-read").encode(),
        raw("compact-schemas", "types-read").encode(),
    )
    decode_row(fields(production)), decode_row(fields(sister))
    assert open_record(production) is open_record(production)  # kept: the same parse
    assert open_record(sister) is open_record(sister)
    copy_of = bytes(bytearray(production))  # equal bytes, another object: parsed anew
    assert open_record(copy_of) is not open_record(production)
    assert open_record(copy_of) == open_record(production)


def test_a_numeric_past_its_bound_is_refused_quickly():
    value = base64.b64encode(b"\x7f" + b"\xff" * (64 * 1024)).decode()
    with pytest.raises(RowDecodeError, match="a numeric of 65537 bytes"):
        decode_row(row(n_fixed=value))
    as_many = base64.b64encode(b"\x7f" + b"\xff" * (4 * 1024 - 1)).decode()
    assert len(decode_row(row(n_fixed=as_many))["n_fixed"].as_tuple().digits) > 9_800


@pytest.mark.parametrize("scale", ["--5", "²", "1.5", ""])
def test_a_decimal_scale_that_is_no_integer_is_refused(scale):
    with pytest.raises(RowDecodeError, match="numeric scale"):
        decode_row(edited(set_schema("n_fixed", parameters={"scale": scale})))


def cut_by_search(document: bytes) -> tuple[bytes, bytes] | None:
    """split_schema's cut as its docstring gives it: at the first `,"payload":`."""
    if not (document.startswith(b'{"schema":') and document.endswith(b"}")):
        return None
    at = document.find(b',"payload":')
    return None if at < 0 else (document[10:at], document[at + 11 : -1])


@FUZZ
@given(
    which=st.sampled_from([raw(c, n) for c in SCHEMAS for n in ("types-read", "items-delete")]),
    tail=st.sampled_from([b',"payload":{}}', b',"payload":1}', b',"payloads":{}}', b"}", b',"p"}']),
    cut=st.integers(0, 40),
)
def test_a_schema_met_before_is_cut_where_the_search_would_cut(which, tail, cut):
    schema_text, _ = row_module.split_schema(which.encode())
    row_module._parsed_schema(schema_text)  # now a schema met before
    for text in (
        which.encode(),
        b'{"schema":' + schema_text + tail,
        b'{"schema":' + schema_text[: len(schema_text) - cut] + tail,
        b'{"schema":' + schema_text + b',"payload":{"a":' + schema_text + b"}}",
    ):
        assert row_module.split_schema(text) == cut_by_search(text)
