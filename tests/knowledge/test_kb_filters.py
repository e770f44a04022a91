"""CMP-FILTER parsing: every refusal is a 422 naming the exact path of the bad part; accepted filters keep their
meaning (the SQL they compile to is tested against this module's `matches` on both engines in test_kb_service)."""

from __future__ import annotations

from typing import Any

import pytest

from portico.core.errors import ValidationFailed
from portico.knowledge.filters import MATCH_ALL, Condition, Filter, matches, parse_filter


@pytest.mark.parametrize(
    ("flt", "loc"),
    [
        ([1], ("body", "filter_by")),
        ({"year": 2020}, ("body", "filter_by", "year")),
        ({"year": {}}, ("body", "filter_by", "year")),
        ({"year": {"gt": 1, "lt": 2}}, ("body", "filter_by", "year")),
        ({"year": {"like": "x"}}, ("body", "filter_by", "year", "like")),
        ({"year": {"gt": "2020"}}, ("body", "filter_by", "year", "gt")),
        ({"year": {"lte": True}}, ("body", "filter_by", "year", "lte")),
        ({"year": {"eq": None}}, ("body", "filter_by", "year", "eq")),
        ({"year": {"eq": [1]}}, ("body", "filter_by", "year", "eq")),
        ({"year": {"in": "2020"}}, ("body", "filter_by", "year", "in")),
        ({"year": {"nin": [1, {"a": 1}]}}, ("body", "filter_by", "year", "nin", 1)),
        ({"year": {"exists": 1}}, ("body", "filter_by", "year", "exists")),
        ({"and": {"year": {"eq": 1}}}, ("body", "filter_by", "and")),
        ({"or": []}, ("body", "filter_by", "or")),
        ({"and": [{"a": {"eq": 1}}], "b": {"eq": 2}}, ("body", "filter_by")),
        ({"and": [{"a": {"eq": 1}}, {"year": {"gt": "x"}}]}, ("body", "filter_by", "and", 1, "year", "gt")),
        ({"or": [{"and": [{"a": {"eq": 1}}]}]}, ("body", "filter_by", "or", 0, "and")),
        ({"or": [7]}, ("body", "filter_by", "or", 0)),
        ({'say "hi"': {"eq": 1}}, ("body", "filter_by", 'say "hi"')),
        ({"": {"eq": 1}}, ("body", "filter_by", "")),
    ],
)
def test_a_malformed_filter_names_the_path(flt: Any, loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_filter(flt)
    assert refused.value.http_status == 422
    assert refused.value.errors[0].loc == loc
    assert refused.value.param == ".".join(str(p) for p in loc[1:])


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_filter({"a": {"bad": 1}}, ("body", "knowledge_filter"))
    assert refused.value.param == "knowledge_filter.a.bad"


def test_accepted_filters_and_their_meaning() -> None:
    assert parse_filter(None) == MATCH_ALL and parse_filter({}) == MATCH_ALL
    assert parse_filter({"a": {"eq": 1}, "b": {"in": ["x", 2]}}) == Filter(
        "and", ((Condition("a", "eq", 1), Condition("b", "in", ("x", 2))),)
    )
    either = parse_filter({"or": [{"a": {"gt": 1}}, {"b": {"exists": False}}]})
    assert matches(either, {"a": 2}) and matches(either, {"a": 0}) and not matches(either, {"a": 0, "b": 1})
    assert matches(parse_filter({"a": {"ne": 1}}), {}) and not matches(parse_filter({"a": {"eq": 1}}), {})
    assert matches(parse_filter({"a": {"nin": [1]}}), {}) and not matches(parse_filter({"a": {"in": [1]}}), {})
    assert not matches(parse_filter({"a": {"eq": 1}}), {"a": True})  # a boolean is not a number
    assert not matches(parse_filter({"a": {"eq": True}}), {"a": 1})
    assert matches(parse_filter({"a": {"eq": 2}}), {"a": 2.0})
    assert not matches(parse_filter({"a": {"gte": 1}}), {"a": "5"})
