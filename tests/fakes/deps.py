"""Fakes of the app's own parts: settings, dependencies, a recording notifier, plans and workspaces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from app.notify.notifier import Notification, Notifier
from app.platform.errors import RetryableError
from app.platform.settings import Settings
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


class FakeSink:
    """A notification sink (an Event Grid topic, a webhook) that keeps what it received; can be told to fail."""

    name = "fake-sink"

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self.fail = False

    def publish(self, notification: Notification) -> None:
        if self.fail:
            raise RetryableError("sink down")
        self.received.append(notification)

    @property
    def types(self) -> list[str]:
        return [notification.type for notification in self.received]


class ForbiddenFactory:
    """A client factory that records every call; tests assert it was never called."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Any] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        raise AssertionError(f"{self.name} client was created: {args}")


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
        from app.retraining.jobs import JobInfo

        self.reads.append(name)
        status = self.statuses.get(name)
        return None if status is None else JobInfo(name=name, status=status, experiment="", tags={})
