"""The filter grammar `@auth.on` handlers return, checked, compiled to SQL and matched in Python.

`{"k": v}` and `{"k": {"$eq": v}}`: the metadata value at `k` equals `v`. `{"k": {"$contains": v}}`:
the list at `k` holds `v` (or, for a list `v`, every element of it). Several keys AND; a top-level
`$or` / `$and` takes a list of at least two such filters, nested at most two deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.errors import KeelError
from keel.storage.queries.base import Dialect

Filter = Mapping[str, Any]
OPERATORS = ("$eq", "$contains")
MAX_DEPTH = 2


class FilterError(KeelError):
    """A handler returned a filter Keel cannot apply: the handler's bug, so a 500."""

    status_code = 500


def check_filter(filt: Any, depth: int = 0) -> Filter:
    """`filt` if it is a valid filter; otherwise FilterError naming what is wrong."""
    if not isinstance(filt, Mapping):
        raise FilterError(f"Auth filter must be a dict, got {type(filt).__name__}")
    for key, value in filt.items():
        if key in ("$or", "$and"):
            if depth >= MAX_DEPTH:
                raise FilterError(f"Auth filter: {key} nested deeper than {MAX_DEPTH} levels")
            if not isinstance(value, list) or len(value) < 2:
                raise FilterError(f"Auth filter: {key} takes a list of at least 2 filters")
            for sub in value:
                check_filter(sub, depth + 1)
        elif not isinstance(key, str) or key.startswith("$"):
            raise FilterError(f"Auth filter: unknown operator {key!r}")
        elif isinstance(value, Mapping):
            _check_operators(key, value)
    return filt


def _check_operators(key: str, ops: Mapping[str, Any]) -> None:
    if not ops or any(op not in OPERATORS for op in ops):
        raise FilterError(
            f"Auth filter on {key!r}: operators must be among {list(OPERATORS)}, got {list(ops)}"
        )


def filter_sql(dialect: Dialect, column: str, filt: Filter) -> tuple[str, list[Any]]:
    """SQL true for the rows whose JSON `column` satisfies `filt`."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filt.items():
        if key in ("$or", "$and"):
            parts = [filter_sql(dialect, column, sub) for sub in value]
            joiner = " OR " if key == "$or" else " AND "
            clauses.append("(" + joiner.join(p[0] for p in parts) + ")")
            for _, p in parts:
                params.extend(p)
            continue
        for op, operand in _operations(value):
            if op == "$eq":
                sql, p = dialect.json_equals(column, key, operand)
            else:
                wanted = operand if isinstance(operand, list) else [operand]
                sql, p = dialect.json_list_holds(column, key, wanted)
            clauses.append(sql)
            params.extend(p)
    return "(" + (" AND ".join(clauses) or "1=1") + ")", params


def _operations(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    return [("$eq", value)]


def matches(metadata: Mapping[str, Any], filt: Filter) -> bool:
    """Whether `metadata` satisfies `filt` (the same meaning as `filter_sql`)."""
    for key, value in filt.items():
        if key == "$or":
            if not any(matches(metadata, sub) for sub in value):
                return False
            continue
        if key == "$and":
            if not all(matches(metadata, sub) for sub in value):
                return False
            continue
        actual = metadata.get(key, _MISSING)
        for op, operand in _operations(value):
            if op == "$eq" and not _same(actual, operand):
                return False
            if op == "$contains" and not _holds(actual, operand):
                return False
    return True


_MISSING = object()


def _same(actual: Any, operand: Any) -> bool:
    if actual is _MISSING:
        return False
    if isinstance(actual, bool) or isinstance(operand, bool):
        return type(actual) is type(operand) and actual == operand
    return bool(actual == operand)


def _holds(actual: Any, operand: Any) -> bool:
    if not isinstance(actual, list):
        return False
    wanted = operand if isinstance(operand, list) else [operand]
    return all(any(_same(a, w) for a in actual) for w in wanted)
