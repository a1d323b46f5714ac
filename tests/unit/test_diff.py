from __future__ import annotations

import math

import pytest

from cdc_verify.core.diff import IgnoredPaths, StructuralDiff, escape_token


def paths(diffs):
    return [(d.path, d.kind.value) for d in diffs]


def test_equal_documents_have_no_differences():
    doc = {"a": 1, "b": [1, {"c": None}], "d": 1.5, "e": "x", "f": False}
    assert StructuralDiff()(doc, {**doc}) == []


@pytest.mark.parametrize(
    ("production", "sister"),
    [(False, 0), (True, 1), (1, 1.0), (0, 0.0), (None, []), ([], None), ("1", 1), (b"x", "x")],
)
def test_type_difference_even_when_python_says_equal(production, sister):
    diffs = StructuralDiff()({"k": production}, {"k": sister})
    assert paths(diffs) == [("/k", "type")]
    assert diffs[0].production is production and diffs[0].sister is sister


def test_value_missing_and_extra_kinds():
    a = {"same": 1, "changed": 1, "only_prod": "p", "nested": {"x": [1, 2, 3]}}
    b = {"same": 1, "changed": 2, "only_sister": "s", "nested": {"x": [1, 5]}}
    assert paths(StructuralDiff()(a, b)) == [
        ("/changed", "value"),
        ("/only_prod", "missing"),
        ("/nested/x/1", "value"),
        ("/nested/x/2", "missing"),
        ("/only_sister", "extra"),
    ]


def test_list_longer_on_sister_is_extra():
    assert paths(StructuralDiff()({"l": [1]}, {"l": [1, 2]})) == [("/l/1", "extra")]


def test_json_pointer_escaping():
    assert escape_token("a/b~c") == "a~1b~0c"
    assert paths(StructuralDiff()({"a/b": 1}, {"a/b": 2})) == [("/a~1b", "value")]


def test_float_tolerance_and_nan():
    assert StructuralDiff(float_tolerance=0.01)({"f": 1.0}, {"f": 1.005}) == []
    assert paths(StructuralDiff(float_tolerance=0.01)({"f": 1.0}, {"f": 1.02})) == [("/f", "value")]
    assert paths(StructuralDiff()({"f": 1.0}, {"f": 1.0000001})) == [("/f", "value")]
    assert StructuralDiff()({"f": math.nan}, {"f": math.nan}) == []
    with pytest.raises(ValueError):
        StructuralDiff(float_tolerance=-1)


def test_ignored_paths_exact_wildcard_and_subtree():
    diff = StructuralDiff(IgnoredPaths(["/score", "/awards/*/count", "/media"]))
    a = {"score": 1, "awards": [{"count": 1, "award_id": "a"}], "media": [{"w": 1}], "ups": 1}
    b = {"score": 2, "awards": [{"count": 2, "award_id": "b"}], "media": [{"w": 2}], "ups": 2}
    assert paths(diff(a, b)) == [("/awards/0/award_id", "value"), ("/ups", "value")]


def test_ignored_path_must_be_a_pointer():
    with pytest.raises(ValueError, match="JSON pointer"):
        IgnoredPaths(["score"])


def test_top_level_type_difference_has_root_path():
    assert paths(StructuralDiff()({"a": 1}, ["a"])) == [("", "type")]
