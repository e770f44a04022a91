"""Metadata filters (CMP-FILTER, CHECKLIST §4.8): parse and check a `filter_by` / `knowledge_filter` document, then
compile it to a SQL condition over the chunks' JSON metadata, so the database filters before anything is ranked.

    filter    := field_map | {"and": [field_map, ...]} | {"or": [field_map, ...]}
    field_map := {field: {op: value}, ...}          entries ANDed; op ∈ eq ne gt gte lt lte in nin exists

A bad part is refused with 422 naming its exact path (`body.filter_by.and.1.year.gt`). A comparison with a missing
field is false, except `ne`, `nin` and `exists: false`, which are true. Types are strict: `eq 2` does not match the
string "2", and `true` is not the number 1 (JSON's types, the same on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from portico.core.errors import FieldError, ValidationFailed

Scalar = str | int | float | bool
Path = tuple[str | int, ...]
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists")
_NUMERIC = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Filter:
    """`groups` combined by `mode`; the conditions inside one group are always ANDed."""

    mode: Literal["and", "or"]
    groups: tuple[tuple[Condition, ...], ...]


MATCH_ALL = Filter("and", ())


def parse_filter(obj: object, path: Path = ("body", "filter_by")) -> Filter:
    """The checked filter; `ValidationFailed` (422) naming the first bad part's path. None or {} match everything."""
    if obj is None:
        return MATCH_ALL
    if not isinstance(obj, Mapping):
        raise _invalid(path, "A filter must be an object.", "type_error")
    combinators = [key for key in ("and", "or") if key in obj]
    if not combinators:
        conditions = _field_map(obj, path)
        return Filter("and", (conditions,)) if conditions else MATCH_ALL
    if len(obj) != 1:
        raise _invalid(path, "'and' / 'or' must be the filter's only key.")
    mode: Literal["and", "or"] = "and" if combinators[0] == "and" else "or"
    items = obj[mode]
    if not isinstance(items, list) or not items:
        raise _invalid((*path, mode), f"'{mode}' takes a non-empty list of field maps.", "type_error")
    return Filter(mode, tuple(_field_map(item, (*path, mode, i), nested=True) for i, item in enumerate(items)))


def _field_map(obj: object, path: Path, *, nested: bool = False) -> tuple[Condition, ...]:
    if not isinstance(obj, Mapping):
        raise _invalid(path, "A field map must be an object.", "type_error")
    conditions = []
    for field, operator in obj.items():
        where = (*path, field)
        if nested and field in ("and", "or"):
            raise _invalid(where, "Filters nest one level only: 'and' / 'or' may not appear inside them.")
        if not isinstance(field, str) or not field or '"' in field or any(ord(c) < 32 for c in field):
            raise _invalid(where, "A metadata field name must be non-empty, without quotes or control characters.")
        conditions.append(_condition(field, operator, where))
    return tuple(conditions)


def _condition(field: str, operator: object, path: Path) -> Condition:
    if not isinstance(operator, Mapping):
        raise _invalid(path, 'A field\'s condition must be an object with one operator, e.g. {"eq": 1}.', "type_error")
    if len(operator) != 1:
        raise _invalid(path, f"A condition takes exactly one operator ({', '.join(OPERATORS)}); got {len(operator)}.")
    op, value = next(iter(operator.items()))
    where = (*path, op)
    if op not in OPERATORS:
        raise _invalid(where, f"Unknown operator '{op}'; use one of {', '.join(OPERATORS)}.")
    if op == "exists":
        if not isinstance(value, bool):
            raise _invalid(where, "'exists' takes true or false.", "type_error")
    elif op in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(where, f"'{op}' takes a number.", "type_error")
    elif op in ("in", "nin"):
        if not isinstance(value, list) or not value:
            raise _invalid(where, f"'{op}' takes a non-empty list of strings, numbers or booleans.", "type_error")
        for i, item in enumerate(value):
            if not isinstance(item, str | int | float):
                raise _invalid((*where, i), f"'{op}' lists strings, numbers or booleans.", "type_error")
        value = tuple(value)
    elif not isinstance(value, str | int | float):
        raise _invalid(where, f"'{op}' takes a string, a number or a boolean.", "type_error")
    return Condition(field, str(op), value)


def _invalid(path: Path, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed([FieldError(path, message, kind)])


def matches(flt: Filter, metadata: Mapping[str, Any]) -> bool:
    """The same semantics in Python: for documents passed with a request (never stored) and as the tests' oracle."""
    results = [all(_holds(c, metadata) for c in group) for group in flt.groups]
    return any(results) if flt.mode == "or" else all(results)


def _same(a: object, b: Scalar) -> bool:
    if isinstance(b, bool) or isinstance(a, bool):
        return type(a) is type(b) and a == b
    if isinstance(b, str):
        return isinstance(a, str) and a == b
    return isinstance(a, int | float) and a == b


def _holds(c: Condition, metadata: Mapping[str, Any]) -> bool:
    present = c.field in metadata
    value = metadata.get(c.field)
    if c.op == "exists":
        return present is c.value
    if c.op == "eq":
        return present and _same(value, c.value)
    if c.op == "ne":
        return not (present and _same(value, c.value))
    if c.op in ("in", "nin"):
        found = present and any(_same(value, v) for v in c.value)
        return found if c.op == "in" else not found
    if not present or isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return bool({"gt": value > c.value, "gte": value >= c.value, "lt": value < c.value, "lte": value <= c.value}[c.op])


def to_sql(flt: Filter, column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[bool]:
    """`flt` as a WHERE condition over the JSON `column` (`dialect`: "sqlite" or "postgresql"). Every positive
    test is made NULL-free first, so that negating it keeps the missing-field rule (ne / nin true)."""
    json = _SqliteJson(column) if dialect == "sqlite" else _PostgresJson(column)
    groups = [sa.and_(sa.true(), *(_compile(c, json) for c in group)) for group in flt.groups]
    if not groups:
        return sa.true()
    return sa.or_(*groups) if flt.mode == "or" else sa.and_(*groups)


def _compile(c: Condition, json: _Json) -> sa.ColumnElement[bool]:
    if c.op == "exists":
        present = json.present(c.field)
        return present if c.value else sa.not_(present)
    if c.op in ("eq", "ne"):
        test = sa.func.coalesce(json.equals(c.field, c.value), sa.false())
        return test if c.op == "eq" else sa.not_(test)
    if c.op in ("in", "nin"):
        test = sa.func.coalesce(sa.or_(*(json.equals(c.field, v) for v in c.value)), sa.false())
        return test if c.op == "in" else sa.not_(test)
    number = json.number(c.field)
    compared = {"gt": number > c.value, "gte": number >= c.value, "lt": number < c.value, "lte": number <= c.value}
    return sa.func.coalesce(compared[c.op], sa.false())


class _Json:
    def present(self, field: str) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def equals(self, field: str, value: Scalar) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def number(self, field: str) -> sa.ColumnElement[Any]:
        """The field's value when it is a JSON number, else NULL."""
        raise NotImplementedError


class _SqliteJson(_Json):
    """json_type / json_extract with a quoted path (`$."a.b"` is the key "a.b", not a nested one)."""

    def __init__(self, column: sa.ColumnElement[Any]) -> None:
        self.column = column

    def _type(self, field: str) -> sa.ColumnElement[Any]:
        return sa.func.json_type(self.column, f'$."{field}"')

    def _value(self, field: str) -> sa.ColumnElement[Any]:
        return sa.func.json_extract(self.column, f'$."{field}"')

    def present(self, field: str) -> sa.ColumnElement[bool]:
        return self._type(field).is_not(None)

    def equals(self, field: str, value: Scalar) -> sa.ColumnElement[bool]:
        if isinstance(value, bool):
            return self._type(field) == ("true" if value else "false")
        if isinstance(value, str):
            return sa.and_(self._type(field) == "text", self._value(field) == value)
        return sa.and_(self._type(field).in_(("integer", "real")), self._value(field) == value)

    def number(self, field: str) -> sa.ColumnElement[Any]:
        return sa.case((self._type(field).in_(("integer", "real")), self._value(field)), else_=sa.null())


class _PostgresJson(_Json):
    """`->` / `->>` on jsonb with jsonb_typeof guards; numbers are cast inside CASE, so that a non-number never
    reaches the cast."""

    def __init__(self, column: sa.ColumnElement[Any]) -> None:
        self.column = column

    def _json(self, field: str) -> sa.ColumnElement[Any]:
        return self.column.op("->")(sa.literal(field, sa.Text))

    def _text(self, field: str) -> sa.ColumnElement[Any]:
        return self.column.op("->>")(sa.literal(field, sa.Text))

    def _type(self, field: str) -> sa.ColumnElement[Any]:
        return sa.func.jsonb_typeof(self._json(field))

    def present(self, field: str) -> sa.ColumnElement[bool]:
        return self._json(field).is_not(None)

    def equals(self, field: str, value: Scalar) -> sa.ColumnElement[bool]:
        if isinstance(value, bool):
            return sa.and_(self._type(field) == "boolean", self._text(field) == ("true" if value else "false"))
        if isinstance(value, str):
            return sa.and_(self._type(field) == "string", self._text(field) == value)
        return self.number(field) == float(value)

    def number(self, field: str) -> sa.ColumnElement[Any]:
        return sa.case(
            (self._type(field) == "number", sa.cast(self._text(field), sa.Float(precision=53))), else_=sa.null()
        )
