"""The row CDC tables (schema.sql) and what the tests put beside them.

- `SCHEMA_SQL`: the tables, for both databases; `TABLES`, their Debezium names
  (`table.include.list`); `KEYS` and `COLUMNS`, each table's primary key and columns in
  order (the writers' statements and the join keys follow them).
- `publication_sql()`: a filtered publication of those tables, for a Debezium Server set to
  `publication.name=<it>`. tests/integration/debezium_server.py needs none: its connector
  makes its own (`publication.autocreate.mode=filtered`, named after its slot).
- `AUDIT_SQL`: a test oracle, not part of the schema: a trigger copies every row image a
  change makes (the new row of an insert or update, the old row of a delete) with its
  transaction id into `rowcdc_audit.<table>`, numbered by a sequence (in the order made:
  the writers make one change at a time). It shows what Postgres stored for each row
  version, as Debezium will read it.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_SQL = (Path(__file__).with_name("schema.sql")).read_text()
SCHEMA = "public"
KEYS: dict[str, tuple[str, ...]] = {"comments": ("id",), "votes": ("comment_id", "user_id")}
COLUMNS: dict[str, tuple[str, ...]] = {
    "comments": (
        "id", "version", "body", "note", "score", "amount", "ratio", "meta", "tags", "blob",
        "uid", "day", "edited_at", "created_at",
    ),
    "votes": ("comment_id", "user_id", "version", "value", "reason", "cast_at"),
}  # fmt: skip
TABLES = [f"{SCHEMA}.{table}" for table in KEYS]


def publication_sql(name: str = "rowcdc_pub") -> str:
    return f"CREATE PUBLICATION {name} FOR TABLE {', '.join(TABLES)};"


AUDIT_SQL = (
    "CREATE SCHEMA rowcdc_audit; CREATE SEQUENCE rowcdc_audit.seq;\n"
    + "".join(
        # The audit columns first, then the table's own (LIKE): `SELECT ..., (row).*` fills them.
        f"CREATE TABLE rowcdc_audit.{table} (audit_seq bigint, audit_op text, audit_txid bigint,"
        f" LIKE {SCHEMA}.{table});\n"
        for table in KEYS
    )
    + """
CREATE FUNCTION rowcdc_audit.capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('INSERT INTO rowcdc_audit.%I SELECT nextval(''rowcdc_audit.seq''),'
                       ' $1, txid_current(), ($2).*', TG_TABLE_NAME) USING TG_OP, OLD;
    ELSE
        EXECUTE format('INSERT INTO rowcdc_audit.%I SELECT nextval(''rowcdc_audit.seq''),'
                       ' $1, txid_current(), ($2).*', TG_TABLE_NAME) USING TG_OP, NEW;
    END IF;
    RETURN NULL;
END $$;
"""
    + "".join(
        f"CREATE TRIGGER rowcdc_audit AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.{table}"
        " FOR EACH ROW EXECUTE FUNCTION rowcdc_audit.capture();\n"
        for table in KEYS
    )
)
