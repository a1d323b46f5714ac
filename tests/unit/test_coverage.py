"""Shapes (core/shape.py), their tally (core/coverage.py) and coverage.json on a
corpus whose shapes are known."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core import shape as shape_module
from cdc_verify.core.coverage import (
    MAX_PAIR_PARTS,
    CoverageTally,
    ShapeCounts,
    combination_gaps,
    describe,
    shape_id,
)
from cdc_verify.core.entry import PRODUCTION, SISTER
from cdc_verify.core.scope import Scope
from cdc_verify.core.shape import (
    MAX_KEY_CHARS,
    MAX_SHAPE_DEPTH,
    MAX_SHAPE_PARTS,
    ShapeRules,
    part_fields,
    shape_of,
)
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_to_reports

from ..shape_corpus import EXPECTED, by_kind, comment, entry, known_shapes

MATCH = ShapeCounts(production=1, match=1)


def describe_all(shape) -> list[str]:
    return sorted(map(describe, shape))


def test_a_shape_names_paths_types_and_short_values():
    shape = shape_of(
        {
            "body": "x" * 41,
            "state": "approved",
            "flag": False,
            "media": [{"type": "gif", "w": 1}, {"type": "image", "w": 2}],
            "none": None,
            "a/b~c": 1.5,
            b"raw": b"\x00",
            "empty": [],
        }
    )
    assert describe_all(shape) == [
        "/ map",
        "/a~1b~0c float",
        "/b'raw' bin",
        "/body str",  # too long to be an enum value
        "/empty list",  # and no /empty/*: an empty list has no items
        "/flag bool=false",
        "/media list",
        "/media/* map",
        "/media/*/type str=gif",
        "/media/*/type str=image",
        "/media/*/w int",  # numbers never carry their value
        "/none null",
        "/state str=approved",
    ]
    assert shape_of([3, 1, 2]) == shape_of([7]) != shape_of([])


def test_a_shape_is_bounded_whatever_the_value():
    deep: object = "leaf"
    for _ in range(5000):
        deep = [deep]
    assert max(part_fields(p)[0].count("*") for p in shape_of(deep)) == MAX_SHAPE_DEPTH

    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

        __hash__ = object.__hash__

    assert describe_all(shape_of({Hostile(): 1, "a\x00b": 2})) == [
        "/ map", "/<Hostile> int", "/a\\u0000b int",
    ]  # fmt: skip
    wide = shape_of({"items": list(range(1_000_000)), "map": {str(i): i for i in range(10**5)}})
    assert len(wide) == MAX_SHAPE_PARTS
    assert shape_of(object())  # a consumer's own type: one part, named by the type
    # A huge key makes no huge part: keys are cut at MAX_KEY_CHARS, at every level.
    huge = shape_of({"x" * 10**6: {"y" * 10**6: 1}, b"z" * 10**6: 2})
    assert max(map(len, huge)) < 3 * MAX_KEY_CHARS + 20
    assert "/" + "x" * MAX_KEY_CHARS + "…/" + "y" * MAX_KEY_CHARS + "… int" in describe_all(huge)
    for start in range(0, 400 * 200, 200):  # maps keyed by ids: the path cache stays bounded
        shape_of({f"k{i}": i for i in range(start, start + 200)})
    assert sum(map(len, shape_module._BELOW.values())) <= shape_module._MAX_CACHED_KEYS < 80_000


def test_values_stay_only_on_enum_like_paths_and_the_result_does_not_depend_on_order():
    events = [{"kind": f"k{i % 3}", "id": f"id{i}"} for i in range(30)]
    results = []
    for order in (events, list(reversed(events)), random.Random(3).sample(events, 30)):
        rules = ShapeRules(enum_values=8)
        tally = CoverageTally(rules)
        for value in order:
            tally.add("comment", rules.shape("comment", value), MATCH)
        results.append([(r.shape_id, r.counts.production) for r in tally.rows()])
        # /kind kept its 3 values; /id went wide at its 9th value
        assert rules.wide == {"comment": {"/id"}}
        assert {describe(p) for r in tally.rows() for p in r.parts} == {
            "/ map", "/id str", "/kind str=k0", "/kind str=k1", "/kind str=k2",
        }  # fmt: skip
    assert results[0] == results[1] == results[2]
    assert [c for _, c in results[0]] == [10, 10, 10]
    assert ShapeRules().shape("account", {"id": "x"}) == shape_of({"id": "x"})  # per entity


def test_statuses_totals_and_the_shape_cap():
    tally = CoverageTally(ShapeRules(), max_shapes=3)
    add = tally.add
    add("comment", shape_of({"a": 1}), ShapeCounts(production=1, match=1))
    add("comment", shape_of({"a": 1}), ShapeCounts(production=1, mismatch=1))
    add("comment", shape_of({"b": 1}), ShapeCounts(production=1, match=1))
    add("comment", shape_of({"c": 1}), ShapeCounts(production=1, unverified=1))
    add("comment", shape_of({"d": 1}), ShapeCounts(production=1, match=1))  # past the cap
    add("comment", None, ShapeCounts(production=1, unverified=1))  # production undecodable
    add("account", shape_of({"a": 1}), ShapeCounts(production=1, match=1))
    statuses = {(r.entity, describe(r.parts[1])): r.counts.status for r in tally.rows()}
    assert statuses == {
        ("account", "/a int"): "verified",
        ("comment", "/a int"): "mismatched",
        ("comment", "/b int"): "verified",
        ("comment", "/c int"): "never_verified",
    }
    totals = tally.totals()
    assert (totals.shapes, totals.verified, totals.mismatched, totals.never_verified) == (
        4,
        2,
        1,
        1,
    )
    assert totals.ratio == 0.5 and totals.overflow_events == 1 and totals.undecodable_events == 1
    assert totals.by_entity["account"].ratio == 1.0
    assert shape_id(shape_of({"a": 1})) == shape_id(reversed(sorted(shape_of({"a": 1}))))


def test_coverage_of_a_corpus_with_known_shapes_is_exact(tmp_path):
    production, sister = known_shapes()
    verifier = Verifier(decode_event, VerifierConfig(grace_ms=100, shapes=True))
    summary = verify_to_reports(verifier, production, sister, tmp_path)

    document = json.loads((tmp_path / "coverage.json").read_text())
    rows = document["shapes"]
    assert by_kind(rows) == EXPECTED
    assert len(rows) == 4 and all(len(r["shape"]) == 12 for r in rows)
    coverage = summary.coverage
    assert coverage is not None
    assert (coverage.shapes, coverage.verified, coverage.mismatched, coverage.ratio) == (
        4, 1, 2, 0.25,
    )  # fmt: skip
    saved = json.loads((tmp_path / "summary.json").read_text())["coverage"]
    assert saved["by_entity"]["comment"]["never_verified"] == 1
    markdown = (tmp_path / "summary.md").read_text()
    assert ("**Coverage:** 4 shapes of production event, 1 verified, 2 mismatched, "
            "1 never verified (25.0%)") in markdown  # fmt: skip
    assert "only on production: no sister event within the grace window" in markdown
    # Each part on its own: a GIF was never verified in any shape, a link mismatched once.
    parts = {p["part"]: p for p in document["parts"]}
    assert parts["/media/*/type str=gif"]["status"] == "never_verified"
    assert parts["/rich_text/*/e str=link"]["mismatch"] == 1
    assert parts["/ map"]["production"] == 40


def test_out_of_scope_production_counts_as_seen_but_not_verified(tmp_path):
    value = comment("plain", 1)
    production = [entry(PRODUCTION, 1000 + i, f"e{i}", value) for i in range(20)]
    sister = [entry(SISTER, 1000 + i, f"e{i}", value) for i in range(0, 20, 2)]
    config = VerifierConfig(grace_ms=50, shapes=True, scope=Scope.parse("sister", "entity_id"))
    summary = verify_to_reports(Verifier(decode_event, config), production, sister, tmp_path)
    [row] = json.loads((tmp_path / "coverage.json").read_text())["shapes"]
    assert (row["production"], row["match"], row["unverified"]) == (20, 10, 10)
    assert summary.out_of_scope == 10


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text() | st.binary() | st.integers(), inner, max_size=5)
    ),
    max_leaves=60,
)


@given(VALUES)
@settings(max_examples=300, deadline=None)
def test_any_value_a_consumer_returns_has_a_bounded_shape_and_the_same_one_again(value):
    shape = shape_of(value)
    assert 1 <= len(shape) <= MAX_SHAPE_PARTS
    assert shape == shape_of(value) == ShapeRules(enum_values=10**6).shape("comment", value)
    assert all(describe(p).startswith("/") for p in shape)


# Maps as big as those a layout is kept for, with few keys so that layouts recur.
LAYOUT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=45),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "~x", "a/b", "k" * 101]),
            inner,
            min_size=shape_module.LAYOUT_MIN_KEYS,
            max_size=9,
        )
    ),
    max_leaves=80,
)


@given(
    st.lists(LAYOUT_VALUES, min_size=1, max_size=4),
    st.sets(st.sampled_from(["", "/a", "/b", "/a/c", "/*", "/c/*/d"])),
)
@settings(max_examples=300, deadline=None)
def test_map_layouts_give_exactly_what_the_walk_gives(values, wide):
    layouts: shape_module.Layouts = {}
    for value in [*values, *values]:  # the second time, the layouts are met again
        assert shape_module._walk(value, wide, layouts) == shape_module._walk(value, wide)


def test_map_layouts_stop_where_the_walk_stops():
    wide: set[str] = set()
    layouts: shape_module.Layouts = {}
    item = {"a": 1, "b": "x", "c": True, "d": None, "e": [1], "f": 2.5}
    big = {f"k{i}": dict(item) for i in range(300)}  # past the parts cap
    for _ in range(2):
        assert shape_module._walk(big, wide, layouts) == shape_module._walk(big, wide)
    deep: object = {"a": 1}
    for _ in range(40):
        deep = {"d": deep, "s": "v", "t": True, "u": 1, "v": None, "w": "x" * 50}  # too deep
    assert shape_module._walk(deep, wide, layouts) == shape_module._walk(deep, wide)
    for i in range(shape_module.MAX_LAYOUTS + 10):  # the layouts stay bounded
        shape_module._walk({f"x{i}": 1, **{k: 1 for k in "abcde"}}, wide, layouts)
    assert len(layouts) <= shape_module.MAX_LAYOUTS


def test_a_root_that_is_no_container_is_a_shape_of_one_part():
    assert [describe_all(shape_of(v)) for v in ("abc", 5, True, None)] == [
        ["/ str=abc"], ["/ int"], ["/ bool=true"], ["/ null"],
    ]  # fmt: skip


def test_pairs_show_a_combination_never_verified_though_each_part_was():
    rules = ShapeRules()
    tally = CoverageTally(rules)

    def add(value: dict, counts: ShapeCounts) -> None:
        tally.add("comment", rules.shape("comment", value), counts)

    add({"a": 1, "b": 1}, MATCH)
    add({"a": 1, "c": 1}, MATCH)
    add({"b": 1, "c": 1}, ShapeCounts.one("unverified", 3))
    add({"a": 1}, ShapeCounts.one("mismatch"))
    pairs = {tuple(p["parts"]): p for p in tally.pairs()}
    # `/ map` is in every event: no pair has it. Three parts that vary, three pairs.
    assert set(pairs) == {("/a int", "/b int"), ("/a int", "/c int"), ("/b int", "/c int")}
    assert pairs[("/b int", "/c int")]["status"] == "never_verified"
    assert pairs[("/b int", "/c int")]["production"] == 3
    assert pairs[("/a int", "/b int")]["status"] == "verified"
    # Each of /b and /c matched (with /a), never together: the one combination to test.
    assert [p["parts"] for p in combination_gaps(tally.pairs())] == [["/b int", "/c int"]]
    assert pairs[("/b int", "/c int")]["each_matched"]


def test_pairs_are_bounded_by_the_parts_most_often_present():
    rules = ShapeRules()
    tally = CoverageTally(rules)
    tally.add("comment", rules.shape("comment", {f"k{i:02}": 1 for i in range(80)}), MATCH)
    tally.add("comment", rules.shape("comment", {}), MATCH)
    pairs = tally.pairs()
    assert len(pairs) == MAX_PAIR_PARTS * (MAX_PAIR_PARTS - 1) // 2 == 2016
