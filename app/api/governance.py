"""The governance operator actions obey, as the engine does: the workspace allowlist, and endpoint ownership.

- ``AML_ALLOWED_WORKSPACES`` fails closed: an action on a rollout of a workspace that is not on it (or with the list
  empty) is refused, whatever the action, as an event from that workspace would be ignored.
- The app changes only the endpoints it created or ``ADOPT_ENDPOINTS`` lists (docs/rollout.md, "Which endpoints the
  app changes"). An action that can lead to an Azure ML write (promote, rollback, retry, resume) is refused on any
  other endpoint, checked against the endpoint as Azure ML shows it now: an endpoint adopted when the rollout ran and
  no longer listed is not written to. ``pause`` and ``abort`` only stop the app, so they stay allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import EndpointView, Rollout
from app.rollout.decide.policy import step_policy

if TYPE_CHECKING:
    from app.ports import Deps

#: Actions after which the engine may write to Azure ML (an approval sends traffic, a rejection deletes the deployment).
WRITING_ACTIONS = frozenset({"promote", "rollback", "retry", "resume", "approve", "reject"})


class EndpointLook:
    """The rollout's endpoint as Azure ML shows it, read at most once (one ARM read, only if asked for)."""

    def __init__(self, rollout: Rollout, deps: Deps) -> None:
        self._rollout = rollout
        self._deps = deps
        self._read = False
        self._view: EndpointView | None = None

    def __call__(self) -> EndpointView | None:
        if not self._read:
            plan = self._rollout.plan
            self._view = self._deps.aml(WorkspaceRef.from_arm_id(plan.workspace_id)).observe(plan.endpoint)
            self._read = True
        return self._view


def refusal(rollout: Rollout, action: str, deps: Deps, look: EndpointLook) -> str | None:
    """Why the app may not take ``action`` on ``rollout``, or None when it may."""
    workspace = WorkspaceRef.from_arm_id(rollout.plan.workspace_id)
    if not deps.settings.allows(workspace):
        return (
            f"workspace {workspace.workspace_name} is not in AML_ALLOWED_WORKSPACES, so the app takes no action on it "
            "(an empty list allows none); add its ARM id to AML_ALLOWED_WORKSPACES, or act in Azure ML"
        )
    if action not in WRITING_ACTIONS:
        return None
    view = look()
    if view is not None and not step_policy(deps.settings).may_change(view):
        return (
            f"endpoint {view.name} was not created by the app and ADOPT_ENDPOINTS does not list it, so the app "
            f"changes nothing on it; add {view.name} to ADOPT_ENDPOINTS, or {action} it by hand in Azure ML"
        )
    return None
