"""An in-memory Azure Table with the real store's ETag rules, the OData filters the app sends, paging and $select."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

from app.platform.clock import as_utc
from app.platform.tables import Conflict, Row, Table

#: Azure Tables answers at most this many entities a page (Query Entities, "Query timeout and pagination").
MAX_PAGE = 1000
_COMPARISON = re.compile(r"^\s*(\w+)\s+(eq|ne|lt|le|gt|ge)\s+(@\w+|true|false|'(?:[^']|'')*'|-?\d+)\s*$")


class FakeTableStore(Table):
    """An in-memory table with the real store's ETag rules; records every write.

    ``Table.update`` (read, decide, conditional write, retry on ``Conflict``) is inherited unchanged.
    ``before_write``, when set, runs before each write: a test makes another writer change the row there.
    Queries understand what the app sends: comparisons of keys and properties with ``eq ne lt le gt ge`` joined
    by ``and`` / ``or``, answered in key order, ``limit`` at a time with Azure's continuation, and ``select``.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.queries: list[str] = []
        self.before_write: Callable[[FakeTableStore, str, str], None] | None = None
        #: Told of every row written (after it is), in order: a test follows what the app recorded.
        self.watchers: list[Callable[[Row], None]] = []
        self._etags = itertools.count(1)

    def get(self, partition: str, key: str, *, select: list[str] | None = None) -> Row | None:
        row = self.rows.get((partition, key))
        return _selected(row, select) if row is not None else None

    def upsert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        self._before_write(partition, key)
        return self._put("upsert", partition, key, data)

    def insert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        self._before_write(partition, key)
        if (partition, key) in self.rows:
            raise Conflict(f"{partition}/{key} exists")
        return self._put("insert", partition, key, data)

    def replace(self, row: Row, data: Mapping[str, Any]) -> Row:
        self._before_write(row.partition, row.key)
        current = self.rows.get((row.partition, row.key))
        if current is None or current.etag != row.etag:
            raise Conflict(f"{row.partition}/{row.key} changed since it was read")
        return self._put("replace", row.partition, row.key, data)

    def delete(self, row: Row) -> None:
        self._before_write(row.partition, row.key)
        current = self.rows.get((row.partition, row.key))
        if current is not None and row.etag != "*" and current.etag != row.etag:
            raise Conflict(f"{row.partition}/{row.key} changed since it was read")
        self.rows.pop((row.partition, row.key), None)
        self.writes.append(("delete", row.partition, row.key))

    def page(
        self,
        filter: str,
        *,
        limit: int | None = None,
        select: list[str] | None = None,
        continuation: dict[str, str] | None = None,
        **parameters: Any,
    ) -> tuple[list[Row], dict[str, str] | None]:
        self.queries.append(filter)
        matches = _compile(filter, parameters)
        start = (continuation["PartitionKey"], continuation["RowKey"]) if continuation else None
        size = min(limit or MAX_PAGE, MAX_PAGE)
        found: list[Row] = []
        for keys in sorted(self.rows):
            if start is not None and keys < start:
                continue
            row = self.rows[keys]
            if not matches(row):
                continue
            if len(found) == size:
                return found, {"PartitionKey": keys[0], "RowKey": keys[1]}
            found.append(_selected(row, select))
        return found, None

    def before_writing(self, partition: str, key: str, action: Callable[[], object]) -> None:
        """Run ``action`` (another writer's doing) just before the next write to ``partition``/``key``."""

        def hook(store: FakeTableStore, written_partition: str, written_key: str) -> None:
            if (written_partition, written_key) == (partition, key):
                action()
            else:
                store.before_write = hook  # another row: keep waiting for this one

        self.before_write = hook

    def _before_write(self, partition: str, key: str) -> None:
        hook, self.before_write = self.before_write, None  # one interference per arming
        if hook is not None:
            hook(self, partition, key)

    def _put(self, op: str, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        row = Row(partition, key, dict(data), f"etag-{next(self._etags)}")
        self.rows[(partition, key)] = row
        self.writes.append((op, partition, key))
        for watcher in self.watchers:
            watcher(row)
        return row


def _selected(row: Row, select: list[str] | None) -> Row:
    if select is None:
        return row
    return Row(row.partition, row.key, {k: v for k, v in row.data.items() if k in select}, row.etag)


def _compile(filter: str, parameters: Mapping[str, Any]) -> Callable[[Row], bool]:
    """The filter as a predicate: ``or`` of ``and``s of comparisons (no parentheses: the app sends none)."""
    alternatives = [
        [_comparison(part, parameters) for part in re.split(r"\s+and\s+", branch)]
        for branch in re.split(r"\s+or\s+", filter)
    ]
    return lambda row: any(all(test(row) for test in branch) for branch in alternatives)


def _comparison(text: str, parameters: Mapping[str, Any]) -> Callable[[Row], bool]:
    match = _COMPARISON.match(text)
    if match is None:
        raise AssertionError(f"FakeTableStore does not understand the filter clause {text!r}")
    name, op, operand = match.groups()
    if operand.startswith("@"):
        expected = parameters[operand[1:]]
    elif operand in ("true", "false"):
        expected = operand == "true"
    elif operand.startswith("'"):
        expected = operand[1:-1].replace("''", "'")
    else:
        expected = int(operand)

    def test(row: Row) -> bool:
        actual = row.partition if name == "PartitionKey" else row.key if name == "RowKey" else row.data.get(name)
        if actual is None:
            return False  # Azure Tables: a comparison with a missing property is false
        return _compare(actual, op, expected)

    return test


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(actual, dt.datetime) and isinstance(expected, dt.datetime):
        actual, expected = as_utc(actual), as_utc(expected)
    elif type(actual) is not type(expected) and not (_number(actual) and _number(expected)):
        return False  # Azure Tables compares values of the same type only
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }
    return comparisons[op](actual, expected)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
