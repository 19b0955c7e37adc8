"""What a rollout's transitions tell people: the notification type and severity per state, and its facts and links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.notify.notifier import Notification
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.effects import Notice
from app.rollout.decide.model import Rollout, State

NOTIFY_ON: dict[State, tuple[str, str]] = {
    State.PLANNED: ("AmlEvents.Rollout.Planned", "info"),
    State.DEPLOYING: ("AmlEvents.Rollout.Started", "info"),
    State.LIVE: ("AmlEvents.Rollout.Live", "info"),
    State.CANARY: ("AmlEvents.Rollout.Canary", "info"),
    State.DARK: ("AmlEvents.Rollout.Dark", "info"),
    State.FAILED: ("AmlEvents.Rollout.Failed", "error"),
    State.SUPERSEDED: ("AmlEvents.Rollout.Superseded", "warning"),
    State.REJECTED: ("AmlEvents.Rollout.Rejected", "error"),
    State.BAKING: ("AmlEvents.Rollout.Baking", "info"),
    State.ROLLED_BACK: ("AmlEvents.Rollout.RolledBack", "warning"),
    State.ABORTED: ("AmlEvents.Rollout.Aborted", "warning"),
    State.AWAITING_APPROVAL: ("AmlEvents.Rollout.AwaitingApproval", "warning"),
    State.EXPIRED: ("AmlEvents.Rollout.ApprovalExpired", "warning"),
}
#: Notifications that are not a state of their own (the transition function names them: ``Notice``).
SMOKE_PASSED = Notice.SMOKE_PASSED.value
SMOKE_FAILED = Notice.SMOKE_FAILED.value
STEP_PROMOTED = Notice.STEP_PROMOTED.value
GATE_INCONCLUSIVE = Notice.GATE_INCONCLUSIVE.value
ROLLBACK_HELD = Notice.ROLLBACK_HELD.value
STUCK = Notice.STUCK.value
PAUSED = Notice.PAUSED.value
RESUMED = Notice.RESUMED.value
OPERATOR_ACTION = Notice.OPERATOR_ACTION.value
#: Container log lines a failure notification carries (the last ones).
LOG_LINES = 20


def rollout_notification(
    rollout: Rollout,
    state: State,
    reason: str,
    logs: str = "",
    *,
    status_host: str = "",
    kind: str = "",
    severity: str = "",
    facts: Mapping[str, Any] | None = None,
    occurrence: str = "",
) -> Notification:
    """The notification for a rollout entering ``state``, with the links an operator needs.

    ``status_host`` is the Function App's host name (``Settings.status_host``); when set, the
    notification links to the rollout status API. ``kind``/``severity`` override the state's (a progress
    notification such as a promoted step); ``facts`` are added (evidence); ``occurrence`` tells apart
    notifications of one type on one rollout (each step, each operator action), which would otherwise
    share their id and be sent once.
    """
    plan = rollout.plan
    workspace = WorkspaceRef.from_arm_id(plan.workspace_id)
    default_kind, default_severity = NOTIFY_ON.get(state, (OPERATOR_ACTION, "info"))
    kind, severity = kind or default_kind, severity or default_severity
    retries = sum(1 for entry in rollout.progress.history if entry.get("action") == "retry")
    source = rollout.event_ids[0] if rollout.event_ids else plan.deployment
    if retries:
        source = f"{source}#retry{retries}"
    if occurrence:
        source = f"{source}#{occurrence}"
    links = _links(workspace, plan.endpoint, status_host, model=f"{plan.model_name}:{plan.model_version}")
    details: dict[str, Any] = {
        "endpoint": plan.endpoint,
        "deployment": plan.deployment,
        "model": plan.model_name,
        "version": plan.model_version,
        "traffic": plan.traffic,
        "mirror": plan.mirror,
        "instanceType": plan.instance_type,
        "instanceCount": plan.instance_count,
        "state": state.value,
        "reason": reason,
    }
    if logs:
        details["logs"] = "\n".join(logs.splitlines()[-LOG_LINES:])
    details.update(facts or {})
    return Notification(
        type=kind,
        subject=f"endpoints/{plan.endpoint}/deployments/{plan.deployment}",
        summary=f"Rollout of {plan.model_name}:{plan.model_version} to {plan.endpoint}/{plan.deployment} "
        f"is {state.value}: {reason}",
        workspace=workspace,
        source_event_id=source,
        severity=severity,
        facts=details,
        links=links,
    )


CLEANUP_FAILED = "AmlEvents.Rollout.CleanupFailed"


def cleanup_failed_notification(rollout: Rollout, deployment: str, error: str, status_host: str = "") -> Notification:
    """Deleting a surplus deployment after ``rollout`` failed: reported once; it is retried, the rollout unchanged."""
    plan = rollout.plan
    workspace = WorkspaceRef.from_arm_id(plan.workspace_id)
    links = _links(workspace, plan.endpoint, status_host)
    return Notification(
        type=CLEANUP_FAILED,
        subject=f"endpoints/{plan.endpoint}/deployments/{deployment}",
        summary=f"Cleanup on {plan.endpoint} could not delete deployment {deployment}; it is retried with back-off, "
        f"and rollout {plan.deployment} stays {rollout.state.value}: {error}",
        workspace=workspace,
        source_event_id=f"cleanup-{plan.endpoint}-{deployment}",
        severity="warning",
        facts={"endpoint": plan.endpoint, "deployment": deployment, "rollout": plan.deployment, "error": error},
        links=links,
    )


def endpoint_notification(
    workspace_id: str,
    endpoint: str,
    kind: str,
    severity: str,
    reason: str,
    facts: Mapping[str, Any],
    *,
    status_host: str = "",
) -> Notification:
    """A notification about an endpoint's traffic as a whole (``AmlEvents.Rollout.TrafficDrift``, ``...Restored``)."""
    workspace = WorkspaceRef.from_arm_id(workspace_id)
    links = _links(workspace, endpoint, status_host, observe=True)
    return Notification(
        type=kind,
        subject=f"endpoints/{endpoint}",
        summary=f"Endpoint {endpoint}: {reason}",
        workspace=workspace,
        source_event_id=f"{endpoint}:{kind}:{_occurrence(facts)}",
        severity=severity,
        facts={"endpoint": endpoint, "reason": reason, **facts},
        links=links,
    )


def _occurrence(facts: Mapping[str, Any]) -> str:
    """What tells one endpoint notification of a kind from the next, so each is sent once, not only the first.

    A drift is dated (``at``); a restore is the pair of intents it is about: the late write it undid and the split
    it put back (each intent's sequence number and time). The same restore seen again keeps its id.
    """
    if facts.get("at"):
        return str(facts["at"])
    parts = [
        f"{name}#{intent.get('seq')}@{intent.get('at')}"
        for name in ("late", "restored")
        if isinstance(intent := facts.get(name), Mapping)
    ]
    return "/".join(parts)


def _links(
    workspace: WorkspaceRef, endpoint: str, status_host: str, *, model: str = "", observe: bool = False
) -> dict[str, str]:
    """The endpoint in Azure ML studio, the model version (``name:version``) when given, and the app's status
    API for the endpoint when ``status_host`` is set (``observe``: with the endpoint's observed traffic)."""
    links = {"endpoint": workspace.studio_link(f"endpoints/realtime/{endpoint}/detail")}
    if model:
        links["model"] = workspace.studio_link(f"model/{model}/details")
    if status_host:
        query = f"endpoint={endpoint}&observe=true" if observe else f"endpoint={endpoint}"
        links["status"] = f"https://{status_host}/api/rollouts?{query}"
    return links
