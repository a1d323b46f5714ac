"""A seeded plan of logical row changes, written to production by the Python writer and to
the sister by the Go writer, with the sister's faults, and the verdict each row version
must get when the two databases' CDC streams are verified with `--join-key version`.

    plan = make_plan(seed=24, size=300)
    plan.write(path)                # one JSON file, read by both writers
    plan.expected()                 # {"comments/4@2": "match" | "mismatch" | ...}
    plan.differences()              # {"comments/4@2": [{"path": "/amount", ...}]}

Each change is one row version: an insert (version 1), an update (version + 1) or a delete
(keyed by the version it removed), its whole row in `values` in the plan's JSON form (below).
A change carries at most one of:

- `fault`: the sister's writer gets it wrong (FAULTS: the verdict it earns);
- `benign`: the sister's writer writes it another way that Postgres stores alike
  (BENIGN): still a `match`;
- `race`: two updates of one row back to back; `swapped`: the sister applies the second
  first (two requests of the new service racing). Every version still matches.

Values in JSON form: numerics as decimal strings ("12.50"), `edited_at` as a UTC wall time
without zone ("2024-02-29T12:34:56.789012"), `created_at`/`cast_at` with "+00:00", `day` as
"YYYY-MM-DD", `blob` as hex, `uid` as text, `meta` a JSON object, `tags` a list.

The expectations assume the comparison of a create's or update's `after` image and a
delete's `before` image. The plan keeps a delete's `before` clean: a fault, a skip or a
swapped race never falls on the version a delete removes. (An update's `before` is the
previous version as the side stored it, and so carries a fault of that version again.)
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from .schema import KEYS

FORMAT = "cdc-verify/rowcdc-plan/1"
Op = Literal["insert", "update", "delete"]
Side = Literal["production", "sister"]

# Fault -> the verdict of its row version. `skip`: the sister never writes it; `rogue_*`:
# something other than the new service changes the sister (an ops script): a version
# production never made.
FAULTS: dict[str, str] = {
    "skip": "missing_in_sister",
    "numeric_scale": "mismatch",  # `amount` (numeric, no scale) from a float64: 12.50 -> 12.5
    "timestamp_zone": "mismatch",  # `edited_at` (timestamp) as a wall time ZONE_SHIFT away
    "timestamp_precision": "mismatch",  # `edited_at` truncated to milliseconds
    "null_as_empty": "mismatch",  # `note` / `reason` NULL written as ''
    "json_int_for_float": "mismatch",  # `meta` marshalled by Go: {"weight": 3.0} -> 3
    "rogue_insert": "missing_in_production",
    "rogue_update": "missing_in_production",
    "rogue_delete": "missing_in_production",
}
# Written another way by the sister, stored alike by Postgres: `match`.
BENIGN = (
    "fixed_scale",  # `score` numeric(12,2) from a float64: 12.5, stored 12.50
    "timestamptz_zone",  # `created_at` in another zone: the same instant
    "float_from_int",  # `ratio` double precision from an int64: 3 is stored 3.0
)
ZONE_SHIFT = timedelta(hours=-5)  # timestamp_zone: the sister's clock at UTC-5
WALL = "%Y-%m-%dT%H:%M:%S.%f"
# Which faults each table can take (the columns they need).
FAULT_TABLES: dict[str, tuple[str, ...]] = {
    "skip": ("comments", "votes"),
    "null_as_empty": ("comments", "votes"),
    "rogue_insert": ("comments", "votes"),
    "rogue_update": ("comments",),
    "rogue_delete": ("votes",),
}


@dataclass
class Change:
    table: str
    op: Op
    key: list[int]  # the primary key's values, in key order
    version: int  # written (insert, update) or removed (delete)
    values: dict[str, Any]  # the whole row; of a delete, the row it removed
    seq: int | None = None  # production's order; None: a sister-only change
    sister_seq: int | None = None  # the sister's order; None: the sister skips it
    fault: str | None = None
    benign: str | None = None
    race: Literal["adjacent", "swapped"] | None = None

    @property
    def join_key(self) -> str:
        """`ENTITY/ENTITY_ID@VERSION`, `:delete` appended for a delete (DESIGN.md)."""
        text = f"{self.table}/{','.join(map(str, self.key))}@{self.version}"
        return text + ":delete" if self.op == "delete" else text

    @property
    def row(self) -> tuple[str, tuple[int, ...]]:
        return self.table, tuple(self.key)


@dataclass
class Plan:
    seed: int
    changes: list[Change] = field(default_factory=list)

    def production_order(self) -> list[Change]:
        return sorted((c for c in self.changes if c.seq is not None), key=lambda c: c.seq or 0)

    def sister_order(self) -> list[Change]:
        applied = (c for c in self.changes if c.sister_seq is not None)
        return sorted(applied, key=lambda c: c.sister_seq or 0)

    def expected(self) -> dict[str, str]:
        """The verdict of every join key either side writes."""
        return {
            c.join_key: FAULTS[c.fault] if c.fault else "match" for c in self.changes
        }  # fmt: skip

    def differences(self) -> dict[str, list[dict[str, Any]]]:
        """Per mismatched join key: where the sister's row differs (a JSON pointer into the
        row), the kind (as docs/verdicts.md names it) and both values in JSON form."""
        found = {}
        for c in self.changes:
            if c.fault and FAULTS[c.fault] == "mismatch":
                path, production, sister = fault_difference(c)
                kind = "value" if type(production) is type(sister) else "type"
                found[c.join_key] = [{"path": path, "kind": kind, "fault": c.fault,
                                      "production": production, "sister": sister}]  # fmt: skip
        return found

    def final_versions(self, side: Side) -> dict[str, dict[str, int]]:
        """{table: {"k1,k2": version}}: the rows `side` holds once its writer is done."""
        rows: dict[str, dict[str, int]] = {table: {} for table in KEYS}
        for c in self.production_order() if side == "production" else self.sister_order():
            key = ",".join(map(str, c.key))
            if c.op == "delete":
                del rows[c.table][key]
            else:
                rows[c.table][key] = c.version
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seed": self.seed,
            "tables": {table: list(key) for table, key in KEYS.items()},
            "changes": [{**asdict(c), "join_key": c.join_key} for c in self.changes],
            "expected": self.expected(),
            "differences": self.differences(),
        }

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=None, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, path: Path) -> Plan:
        document = json.loads(path.read_text())
        assert document["format"] == FORMAT, document.get("format")
        fields = set(Change.__dataclass_fields__)
        changes = [
            Change(**{k: v for k, v in c.items() if k in fields}) for c in document["changes"]
        ]
        return cls(seed=document["seed"], changes=changes)


def fault_difference(c: Change) -> tuple[str, Any, Any]:
    """(path, production's value, the sister's value) of a mismatch fault, in JSON form."""
    v = c.values
    if c.fault == "numeric_scale":
        return "/amount", v["amount"], shortest(v["amount"])
    if c.fault == "timestamp_zone":
        shifted = datetime.strptime(v["edited_at"], WALL) + ZONE_SHIFT
        return "/edited_at", v["edited_at"], shifted.strftime(WALL)
    if c.fault == "timestamp_precision":
        at = datetime.strptime(v["edited_at"], WALL)
        return (
            "/edited_at",
            v["edited_at"],
            at.replace(microsecond=at.microsecond // 1000 * 1000).strftime(WALL),
        )
    if c.fault == "null_as_empty":
        column = "note" if c.table == "comments" else "reason"
        return f"/{column}", None, ""
    if c.fault == "json_int_for_float":
        return "/meta/weight", v["meta"]["weight"], int(v["meta"]["weight"])
    raise ValueError(f"{c.fault} is no mismatch fault")


def shortest(decimal: str) -> str:
    """A decimal's text through a float64 as Go formats it (strconv 'f', -1), which pgx
    writes into a numeric: the shortest text, no trailing zeros, no exponent."""
    text = repr(float(decimal))
    assert "e" not in text, decimal
    return text.removesuffix(".0")


# ---- generation ------------------------------------------------------------------------


def make_plan(seed: int = 24, size: int = 300, faults: int = 2) -> Plan:
    """About `size` production changes (inserts, updates, back-to-back update pairs,
    deletes) of comments and votes, then `faults` of each fault and of each benign variant
    (fewer where the plan has too few places for one), and the sister-only changes."""
    rng = random.Random(seed)
    changes: list[Change] = []
    rows: dict[tuple[str, tuple[int, ...]], dict[str, Any]] = {}  # alive: current values
    used: set[tuple[str, tuple[int, ...]]] = set()  # keys never come back once deleted
    next_id = 1

    def add(table: str, op: Op, key: tuple[int, ...], values: dict[str, Any]) -> Change:
        change = Change(table, op, list(key), values["version"], values)
        changes.append(change)
        return change

    while len(changes) < size:
        draw = rng.random()
        if not rows or draw < 0.3:
            if next_id <= 3 or rng.random() < 0.65:
                key: tuple[int, ...] = (next_id,)
                next_id += 1
                values = new_comment(rng, key[0])
                table = "comments"
            else:
                key = (rng.randrange(1, next_id), rng.randrange(1, 60))
                if ("votes", key) in used:
                    continue
                values = new_vote(rng, key)
                table = "votes"
            used.add((table, key))
            rows[(table, key)] = values
            add(table, "insert", key, values)
        elif draw < 0.88:
            table, key = rng.choice(list(rows))
            pair = rng.random() < 0.12
            for _ in range(2 if pair else 1):
                values = updated(rng, table, rows[(table, key)])
                rows[(table, key)] = values
                change = add(table, "update", key, values)
                if pair:
                    change.race = "adjacent"
        else:
            table, key = rng.choice(list(rows))
            add(table, "delete", key, dict(rows.pop((table, key))))  # its own dict
    for seq, change in enumerate(changes):
        change.seq = seq
    place_faults(rng, changes, faults)
    order_sister(rng, changes)
    return Plan(seed=seed, changes=changes)


def new_comment(rng: random.Random, id_: int) -> dict[str, Any]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    created = start + timedelta(seconds=rng.randrange(10**7), microseconds=rng.randrange(10**6))
    return {
        "id": id_,
        "version": 1,
        "body": rng.choice(["first!", "nice post", "héllo wörld", "a\nb", "💬 ok", ""]),
        "note": rng.choice([None, "", "pinned", "spam?"]),
        "score": f"{rng.randrange(-(10**5), 10**5) / 100:.2f}",
        "amount": rng.choice(["0", "1.5", "12.345", "-7.25", "1000", "0.001"]),
        "ratio": rng.choice([0.1, 0.25, 1.5, -2.75, 1e-3]),
        "meta": {
            "lang": rng.choice(["en", "de"]),
            "weight": rng.choice([0.5, 1.25, 2.75]),
            "flags": rng.sample(["a", "b", "c"], rng.randrange(3)),
        },
        "tags": rng.sample(["x", "y", "z w", "ü"], rng.randrange(4)),
        "blob": rng.randbytes(rng.randrange(6)).hex(),
        "uid": "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}".format(
            *(rng.getrandbits(bits) for bits in (32, 16, 12, 12, 48))
        ),
        "day": (created.date() - timedelta(days=rng.randrange(400))).isoformat(),
        "edited_at": (created + timedelta(seconds=1)).replace(tzinfo=None).strftime(WALL),
        "created_at": created.isoformat(timespec="microseconds"),
    }


def new_vote(rng: random.Random, key: tuple[int, ...]) -> dict[str, Any]:
    cast = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**13))
    return {
        "comment_id": key[0], "user_id": key[1], "version": 1,
        "value": rng.choice([-1, 1]), "reason": rng.choice([None, "", "helpful"]),
        "cast_at": cast.isoformat(timespec="microseconds"),
    }  # fmt: skip


def updated(rng: random.Random, table: str, values: dict[str, Any]) -> dict[str, Any]:
    """The next version of a row: a few columns changed, `version` + 1."""
    new = {**values, "version": values["version"] + 1}
    if table == "votes":
        new["value"] = -values["value"]
        new["reason"] = rng.choice([None, "changed my mind", ""])
        return new
    new["body"] = f"{values['body'][:20]} (edit {new['version']})"
    new["score"] = f"{rng.randrange(-(10**5), 10**5) / 100:.2f}"
    new["amount"] = rng.choice(["2.5", "99.99", "0.10", "3", "-0.5"])
    new["meta"] = {**values["meta"], "weight": rng.choice([0.75, 1.5, 4.25])}
    edited = datetime.strptime(values["edited_at"], WALL)
    later = timedelta(seconds=rng.randrange(1, 10**5), microseconds=rng.randrange(10**6))
    new["edited_at"] = (edited + later).strftime(WALL)
    if rng.random() < 0.3:
        new["note"] = rng.choice([None, "", "edited"])
    return new


def place_faults(rng: random.Random, changes: list[Change], count: int) -> None:
    """`count` changes of each fault and benign variant, on places where each shows as
    planned; each change takes at most one. Sister-only changes are appended."""
    by_row: dict[tuple[str, tuple[int, ...]], list[Change]] = {}
    for c in changes:
        by_row.setdefault(c.row, []).append(c)

    def next_of(c: Change) -> Change | None:
        later = by_row[c.row]
        i = later.index(c)
        return later[i + 1] if i + 1 < len(later) else None

    def clean(c: Change) -> bool:
        return not (c.fault or c.benign or c.race)

    def takes(c: Change, tables: tuple[str, ...]) -> bool:
        following = next_of(c)
        # The version a delete removes stays clean (the delete's `before` is compared).
        return clean(c) and c.table in tables and (following is None or following.op != "delete")

    for name in (*[f for f in FAULTS if not f.startswith("rogue_")], *BENIGN):
        tables = FAULT_TABLES.get(name, ("comments",))
        places = [c for c in changes if c.op != "delete" and takes(c, tables)]
        chosen = rng.sample(places, min(count, len(places)))
        if name == "skip":  # updates (not an insert: later updates need the row), a delete
            updates = [c for c in places if c.op == "update"]
            deletes = [c for c in changes if c.op == "delete" and clean(c)]
            chosen = rng.sample(updates, min(count - 1, len(updates))) + deletes[:1]
        for c in chosen:
            if name in FAULTS:
                c.fault = name
            else:
                c.benign = name
            prepare(rng, c)
    # Half the back-to-back pairs swapped on the sister, unless a delete follows them.
    pairs, i = [], 0
    while i < len(changes) - 1:  # a pair's two changes were made one after the other
        first, second = changes[i], changes[i + 1]
        if first.race and second.race and first.row == second.row:
            pairs.append((first, second))
            i += 2
        else:
            i += 1
    for first, second in pairs[::2]:
        after = next_of(second)
        if after is None or after.op != "delete":
            first.race = second.race = "swapped"
    # Sister-only changes, on rows whose last change is clean (both sides end alike).
    alive = [cs[-1] for cs in by_row.values() if cs[-1].op != "delete" and clean(cs[-1])]
    rng.shuffle(alive)
    next_id = max(c.key[0] for c in changes if c.table == "comments") + 1000
    for name in ("rogue_insert", "rogue_update", "rogue_delete"):
        for table in FAULT_TABLES[name]:
            for _ in range(count):
                if name == "rogue_insert":
                    key = (next_id,) if table == "comments" else (next_id, 1)
                    next_id += 1
                    values = new_comment(rng, key[0]) if table == "comments" else new_vote(rng, key)
                    changes.append(Change(table, "insert", list(key), 1, values, fault=name))
                    continue
                last = next((c for c in alive if c.table == table), None)
                if last is None:
                    break
                alive.remove(last)
                if name == "rogue_update":
                    values = {**last.values, "version": last.version + 1, "body": "fixed by ops"}
                    changes.append(
                        Change(table, "update", last.key, last.version + 1, values, fault=name)
                    )
                else:
                    changes.append(
                        Change(table, "delete", last.key, last.version, last.values, fault=name)
                    )


def prepare(rng: random.Random, c: Change) -> None:
    """Sets the values a fault or variant needs to show (or to be benign) on its change."""
    v = c.values
    if c.fault == "numeric_scale":  # trailing zeros a float64 loses
        v["amount"] = rng.choice(["12.50", "7.00", "0.10", "100.0"])
    elif c.fault == "timestamp_precision":  # microseconds a millisecond cut loses
        at = datetime.strptime(v["edited_at"], WALL)
        v["edited_at"] = at.replace(microsecond=at.microsecond // 1000 * 1000 + 123).strftime(WALL)
    elif c.fault == "null_as_empty":
        v["note" if c.table == "comments" else "reason"] = None
    elif c.fault == "json_int_for_float":
        v["meta"] = {**v["meta"], "weight": float(rng.randrange(1, 10))}
    elif c.benign == "fixed_scale":
        v["score"] = rng.choice(["12.50", "-3.00", "0.10"])
    elif c.benign == "float_from_int":
        v["ratio"] = float(rng.randrange(-5, 6))


def order_sister(rng: random.Random, changes: list[Change]) -> None:
    """The sister's order: production's, less the skipped, each swapped pair reversed, the
    sister-only changes after the row's last change (a rogue insert anywhere)."""
    order = [c for c in changes if c.seq is not None and c.fault != "skip"]
    i = 0
    while i < len(order) - 1:
        if (
            order[i].race == "swapped"
            and order[i + 1].race == "swapped"
            and order[i].row == order[i + 1].row
        ):
            order[i], order[i + 1] = order[i + 1], order[i]
            i += 2
        else:
            i += 1
    for c in (c for c in changes if c.seq is None):
        last = max((i for i, o in enumerate(order) if o.row == c.row), default=-1)
        order.insert(rng.randrange(last + 1, len(order) + 1), c)
    for sister_seq, c in enumerate(order):
        c.sister_seq = sister_seq
