"""Hand-written recording fakes for the app's dependencies."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Mapping
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
    """An in-memory table with the real store's ETag rules; records every write.

    ``TableStore.update`` (read, decide, conditional write, retry on ``Conflict``) is inherited unchanged.
    ``before_write``, when set, runs before each write: a test makes another writer change the row there.
    """

    def __init__(self) -> None:
        super().__init__(lambda: _no_client())
        self.rows: dict[tuple[str, str], Row] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.before_write: Callable[[FakeTableStore, str, str], None] | None = None
        self._etags = itertools.count(1)

    def get(self, partition: str, key: str, *, select: list[str] | None = None) -> Row | None:
        return self.rows.get((partition, key))

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
        current = self.rows.get((row.partition, row.key))
        if current is not None and row.etag != "*" and current.etag != row.etag:
            raise Conflict(f"{row.partition}/{row.key} changed since it was read")
        self.rows.pop((row.partition, row.key), None)
        self.writes.append(("delete", row.partition, row.key))

    def query(self, filter: str, *, select: list[str] | None = None, **parameters: Any) -> Iterator[Row]:
        assert filter.startswith("PartitionKey eq @pk"), f"FakeTableStore only answers partition queries, {filter!r}"
        active = filter.endswith(" and Active eq true")  # the ledger's one other filter
        for (partition, _), row in sorted(self.rows.items()):
            if partition == parameters["pk"] and (not active or row.data.get("Active")):
                yield row

    def _before_write(self, partition: str, key: str) -> None:
        hook, self.before_write = self.before_write, None  # one interference per arming
        if hook is not None:
            hook(self, partition, key)

    def _put(self, op: str, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        row = Row(partition, key, dict(data), f"etag-{next(self._etags)}")
        self.rows[(partition, key)] = row
        self.writes.append((op, partition, key))
        return row


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
