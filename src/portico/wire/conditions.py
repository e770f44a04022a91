"""Mongo-style queries for Portkey's conditional routing: `{"metadata.plan": {"$in": ["pro", "team"]}}`.

Only the operators Portkey documents are accepted; an unknown operator is the client's mistake and is reported
as such rather than silently evaluating to false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MISSING = object()


class QueryError(ValueError):
    pass


def lookup(context: Mapping[str, Any], path: str) -> Any:
    node: Any = context
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def matches(query: Any, context: Mapping[str, Any]) -> bool:
    if not isinstance(query, Mapping):
        raise QueryError("a condition query must be a JSON object")
    return all(_clause(key, value, context) for key, value in query.items())


def _clause(key: str, value: Any, context: Mapping[str, Any]) -> bool:
    if key == "$and":
        return all(matches(q, context) for q in _list(key, value))
    if key == "$or":
        return any(matches(q, context) for q in _list(key, value))
    if key.startswith("$"):
        raise QueryError(f"unknown logical operator {key!r}")
    actual = lookup(context, key)
    if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
        return all(_compare(op, expected, actual) for op, expected in value.items())
    return actual is not _MISSING and actual == value


def _list(op: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise QueryError(f"{op} takes a list of queries")
    return value


def _compare(op: str, expected: Any, actual: Any) -> bool:
    if op == "$eq":
        return actual is not _MISSING and actual == expected
    if op == "$ne":
        return actual is _MISSING or actual != expected
    if op in ("$in", "$nin"):
        if not isinstance(expected, list):
            raise QueryError(f"{op} takes a list")
        found = actual is not _MISSING and actual in expected
        return found if op == "$in" else not found
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if actual is _MISSING:
            return False
        try:
            if op == "$gt":
                return bool(actual > expected)
            if op == "$gte":
                return bool(actual >= expected)
            if op == "$lt":
                return bool(actual < expected)
            return bool(actual <= expected)
        except TypeError:
            return False
    raise QueryError(f"unknown operator {op!r}")
