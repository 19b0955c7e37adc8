"""Hand-written recording fakes for the app's dependencies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from shared.deps import Deps
from shared.errors import RetryableError
from shared.notify import Notification, Notifier
from shared.settings import Settings
from shared.workspace import WorkspaceRef

WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-00000000de71/resourceGroups/rg-devkit"
    "/providers/Microsoft.MachineLearningServices/workspaces/mlw-devkit"
)
WORKSPACE = WorkspaceRef.from_arm_id(WORKSPACE_ID)
OTHER_WORKSPACE_ID = WORKSPACE_ID.replace("mlw-devkit", "mlw-other")


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
