"""Hand-written recording fakes for the app's dependencies."""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from app.azure.tables import TableStore
from app.notify.notifier import Notification, Notifier
from app.platform.errors import RetryableError
from app.platform.settings import Settings
from app.platform.tables import Conflict, Row
from app.platform.workspace import WorkspaceRef
from app.ports import Deps
from app.rollout.decide.model import RolloutPlan

WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-00000000de71/resourceGroups/rg-devkit"
    "/providers/Microsoft.MachineLearningServices/workspaces/mlw-devkit"
)
WORKSPACE = WorkspaceRef.from_arm_id(WORKSPACE_ID)
OTHER_WORKSPACE_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-other")


def make_plan(
    version: str | int = "1", endpoint: str = "credit", model: str = "credit", *, traffic: int = 100, mirror: int = 0
) -> RolloutPlan:
    """A one-step rollout plan of ``model`` version ``version`` (deployment ``{model}-v{version}``) to ``endpoint``."""
    return RolloutPlan(
        workspace_id=WORKSPACE_ID,
        endpoint=endpoint,
        deployment=f"{model}-v{version}",
        model_name=model,
        model_version=str(version),
        model_type="mlflow_model",
        model_created_at="",
        instance_type="Standard_DS3_v2",
        instance_count=1,
        traffic=traffic,
        mirror=mirror,
    )


class FakeNotifier(Notifier):
    """Keeps every notification it was sent; can be told to fail retryably."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__([])
        self.sent: list[Notification] = []
        self.fail = fail

    def send(self, notification: Notification) -> None:
        if self.fail:
            raise RetryableError("sink down")
        self.sent.append(notification)

    @property
    def types(self) -> list[str]:
        return [notification.type for notification in self.sent]


class ForbiddenFactory:
    """A client factory that records every call; tests assert it was never called."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Any] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        raise AssertionError(f"{self.name} client was created: {args}")


class FakeTableStore(TableStore):
    """An in-memory table with the real store's ETag rules, filters and paging; records every write and query.

    ``TableStore.update`` (read, decide, conditional write, retry on ``Conflict``) is inherited unchanged.
    ``before_write``, when set, runs before each write: a test makes another writer change the row there.
    """

    def __init__(self) -> None:
        super().__init__(lambda: _no_client())
        self.rows: dict[tuple[str, str], Row] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.before_write: Callable[[FakeTableStore, str, str], None] | None = None
        self.queries: list[str] = []  # the filter of every page asked for
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
        """One page of the rows ``filter`` matches, in key order (PartitionKey, then RowKey), as Azure answers:
        at most 1,000 rows a page, and a continuation naming the next row's keys while more remain
        (https://learn.microsoft.com/rest/api/storageservices/query-timeout-and-pagination)."""
        self.queries.append(filter)
        match = _table_filter(filter, parameters)
        start = (continuation["PartitionKey"], continuation["RowKey"]) if continuation else ("", "")
        rows = [row for keys, row in sorted(self.rows.items()) if keys >= start and match(row)]
        size = min(limit or _PAGE_LIMIT, _PAGE_LIMIT)
        page, rest = rows[:size], rows[size:]
        token = {"PartitionKey": rest[0].partition, "RowKey": rest[0].key} if rest else None
        return [_selected(row, select) for row in page], token

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
        return row


#: Azure answers at most this many rows a page
#: (https://learn.microsoft.com/rest/api/storageservices/query-timeout-and-pagination).
_PAGE_LIMIT = 1000
_CLAUSE = re.compile(r"(\w+) (eq|ne|lt|le|gt|ge) (@\w+|true|false|'(?:[^']|'')*'|-?\d+)")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}  # fmt: skip


def _table_filter(filter: str, parameters: Mapping[str, Any]) -> Callable[[Row], bool]:
    """The rows a Table ``$filter`` of comparisons joined by ``and``/``or`` (``and`` binding tighter) matches.
    A comparison with a property the row lacks matches nothing; Azure gives no valid result for a constant of
    another type than the property's (https://learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities),
    and here it matches nothing either."""
    clauses = [[_clause(text, filter, parameters) for text in part.split(" and ")] for part in filter.split(" or ")]
    return lambda row: any(all(clause(row) for clause in part) for part in clauses)


def _clause(text: str, filter: str, parameters: Mapping[str, Any]) -> Callable[[Row], bool]:
    found = _CLAUSE.fullmatch(text.strip())
    assert found, f"FakeTableStore does not understand {text!r} in the filter {filter!r}"
    name, op, operand = found.groups()
    value: Any
    if operand.startswith("@"):
        value = parameters[operand[1:]]
    elif operand in ("true", "false"):
        value = operand == "true"
    elif operand.startswith("'"):
        value = operand[1:-1].replace("''", "'")
    else:
        value = int(operand)

    def matches(row: Row) -> bool:
        keys = {"PartitionKey": row.partition, "RowKey": row.key}
        if name not in keys and name not in row.data:
            return False
        actual = keys[name] if name in keys else row.data[name]
        return _kind(actual) == _kind(value) and _COMPARE[op](actual, value)

    return matches


def _kind(value: Any) -> str:
    """The Table type a value compares as: values of different types never compare equal, nor in order."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "datetime" if isinstance(value, dt.datetime) else type(value).__name__


def _selected(row: Row, select: list[str] | None) -> Row:
    """``row`` with only the properties ``select`` names (the keys are always there); a property the row
    lacks is left out (the ledger reads every selected property with a default)."""
    if select is None:
        return row
    return Row(row.partition, row.key, {k: v for k, v in row.data.items() if k in select}, row.etag)


def _no_client() -> Any:
    raise AssertionError("FakeTableStore has no Azure client")


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"allowed_workspaces": frozenset({WORKSPACE.key}), "deploy_mode": "apply"}
    values.update(overrides)
    return Settings(**values)


def make_deps(
    settings: Settings | None = None,
    notifier: Notifier | None = None,
    aml: Callable[..., Any] | None = None,
    table: Callable[..., Any] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Deps:
    return Deps(
        settings=settings or make_settings(),
        notifier=notifier or FakeNotifier(),
        aml=aml or ForbiddenFactory("aml"),
        table=table or ForbiddenFactory("table"),
        clock=clock or (lambda: dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)),
    )


class FakeJobReader:
    """An Azure ML gateway that only reads jobs: ``statuses`` maps run id to the status AML reports now."""

    def __init__(self, statuses: Mapping[str, str]) -> None:
        self.statuses = dict(statuses)
        self.reads: list[str] = []

    def __call__(self, workspace: WorkspaceRef) -> FakeJobReader:
        return self

    def get_job(self, name: str) -> Any:
        # A stand-in for app.retraining.decide.JobInfo: only the status is read.
        from app.retraining.decide import JobInfo

        self.reads.append(name)
        status = self.statuses.get(name)
        return None if status is None else JobInfo(name=name, status=status, experiment="", tags={})
