"""Outbound notifications: what is sent (``Notification``) and the notifier that hands it to every sink.

The sinks (an Event Grid custom topic, a webhook) are adapters in ``app/azure/sinks.py``.

Our own event types live under the ``AmlEvents.`` namespace (see ``NOTIFICATION_TYPES``).
A sink that fails does not stop the others; if any failed in a way a retry can fix, the
notifier raises ``RetryableError`` after trying them all, so the triggering event is redelivered.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.platform import clock
from app.platform.errors import RetryableError, is_retryable, status_code_of
from app.platform.workspace import WorkspaceRef

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, RunCompletedData, RunStatusChangedData

logger = logging.getLogger(__name__)

NAMESPACE = "AmlEvents"
NOTIFICATION_TYPES = (
    "AmlEvents.Run.Failed",
    "AmlEvents.Run.Canceled",
    "AmlEvents.Run.StatusChanged",
    "AmlEvents.Run.Completed",
    "AmlEvents.Monitor.ThresholdBreached",
    "AmlEvents.Model.Deployed",
    "AmlEvents.Model.RegisteredFromRun",
    "AmlEvents.Model.Promoted",
    "AmlEvents.Model.PromotionFailed",
    "AmlEvents.Drift.Detected",
    "AmlEvents.Retraining.Submitted",
    "AmlEvents.Retraining.Skipped",
    "AmlEvents.Rollout.Planned",
    "AmlEvents.Rollout.Started",
    "AmlEvents.Rollout.Live",
    "AmlEvents.Rollout.Canary",
    "AmlEvents.Rollout.Dark",
    "AmlEvents.Rollout.Failed",
    "AmlEvents.Rollout.Superseded",
    "AmlEvents.Rollout.Rejected",
    "AmlEvents.Rollout.CleanupFailed",
    "AmlEvents.Rollout.TrafficDrift",
    "AmlEvents.Rollout.TrafficRestored",
    "AmlEvents.Rollout.Baking",
    "AmlEvents.Rollout.RolledBack",
    "AmlEvents.Rollout.Aborted",
    "AmlEvents.Rollout.SmokeTestPassed",
    "AmlEvents.Rollout.SmokeTestFailed",
    "AmlEvents.Rollout.StepPromoted",
    "AmlEvents.Rollout.GateInconclusive",
    "AmlEvents.Rollout.RollbackHeld",
    "AmlEvents.Rollout.Stuck",
    "AmlEvents.Rollout.Paused",
    "AmlEvents.Rollout.Resumed",
    "AmlEvents.Rollout.OperatorAction",
    "AmlEvents.Rollout.AwaitingApproval",
    "AmlEvents.Rollout.ApprovalExpired",
)
_ID_NAMESPACE = uuid.UUID("6f1d2a52-1c1e-4a55-9c55-0b6b2e8f2d11")


@dataclass(frozen=True)
class Notification:
    """One thing worth telling people about. ``type`` is one of ``NOTIFICATION_TYPES``."""

    type: str
    subject: str
    summary: str
    workspace: WorkspaceRef
    source_event_id: str
    severity: str = "info"  # info | warning | error
    facts: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    time: dt.datetime = field(default_factory=clock.utc_now)  # the app's clock: the dev kit's while it follows one

    def __post_init__(self) -> None:
        if self.type not in NOTIFICATION_TYPES:
            raise ValueError(f"unknown notification type {self.type!r}")

    @classmethod
    def about(cls, event: AmlEvent[Any], type: str, summary: str, **fields: Any) -> Notification:
        """A notification caused by ``event`` (same workspace; subject defaults to the event's)."""
        fields.setdefault("subject", event.envelope.subject)
        return cls(type=type, summary=summary, workspace=event.workspace, source_event_id=event.id, **fields)

    @classmethod
    def about_run(
        cls,
        event: AmlEvent[RunCompletedData] | AmlEvent[RunStatusChangedData],
        type: str,
        verb: str,
        severity: str = "info",
        **facts: Any,
    ) -> Notification:
        """A notification about the run ``event`` names: experiment, run id and type, and its studio link."""
        run = event.data
        experiment = run.experiment_name or run.experiment_id
        return cls.about(
            event,
            type,
            f"Run {run.run_id} ({run.run_type or 'run'}) in experiment {experiment} {verb}",
            severity=severity,
            facts={
                "experiment": experiment,
                "experimentId": run.experiment_id,
                "runId": run.run_id,
                "runType": run.run_type,
                **facts,
            },
            links={"run": event.workspace.studio_link(f"runs/{run.run_id}")},
        )

    @property
    def id(self) -> str:
        """Deterministic, so a consumer can drop the duplicate a redelivery may cause."""
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.source_event_id}|{self.type}|{self.subject}"))

    def as_json(self) -> dict[str, Any]:
        """The webhook body: ``text`` for Slack/Teams, and the structured fields for machines."""
        return {
            "text": self.text,
            "type": self.type,
            "id": self.id,
            "subject": self.subject,
            "time": self.time.isoformat(),
            "severity": self.severity,
            "workspace": self.workspace.arm_id,
            "sourceEventId": self.source_event_id,
            "summary": self.summary,
            "facts": dict(self.facts),
            "links": dict(self.links),
        }

    @property
    def text(self) -> str:
        links = " | ".join(f"{name}: {url}" for name, url in self.links.items())
        return f"[{self.type}] {self.summary}" + (f"\n{links}" if links else "")


class Sink(Protocol):
    """Somewhere notifications go."""

    name: str

    def publish(self, notification: Notification) -> None: ...


@dataclass(frozen=True)
class Published:
    """What one attempt to publish a notification did, per sink."""

    delivered: frozenset[str]  # sinks that took it
    retryable: tuple[str, ...]  # sinks that failed in a way a retry can fix
    failed: tuple[str, ...] = ()  # sinks that refused it for good (logged as errors)


class Notifier:
    """Sends each notification to every configured sink."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def send(self, notification: Notification) -> None:
        """Publish to every sink; raise ``RetryableError`` after trying them all if any failed retryably."""
        published = self.publish(notification)
        if published.retryable:
            raise RetryableError(f"notification {notification.type} failed for {', '.join(published.retryable)}")

    def flush(self) -> int:
        """Retry notifications a sink failed earlier; returns how many went out. Nothing is kept here."""
        return 0

    def publish(self, notification: Notification, skip: Collection[str] = ()) -> Published:
        """One attempt at every sink not in ``skip``. Never raises for a sink's failure: it is logged and returned."""
        logger.info(
            "notify %s subject=%s source_event=%s: %s",
            notification.type,
            notification.subject,
            notification.source_event_id,
            notification.summary,
        )
        delivered: set[str] = set()
        retryable: list[str] = []
        failed: list[str] = []
        for sink in self.sinks:
            if sink.name in skip:
                continue
            try:
                sink.publish(notification)
                delivered.add(sink.name)
            except Exception as err:
                # Only the type and status: an error's text can carry the sink's URL, and a webhook URL is a secret.
                status = status_code_of(err)
                if is_retryable(err):
                    logger.warning(
                        "notification %s to %s failed (%s, status %s), will retry",
                        notification.type,
                        sink.name,
                        type(err).__name__,
                        status,
                    )
                    retryable.append(sink.name)
                else:
                    # A 4xx from a sink will not heal on retry; report it loudly and move on.
                    logger.error(
                        "notification %s to %s failed permanently (%s, status %s)",
                        notification.type,
                        sink.name,
                        type(err).__name__,
                        status,
                    )
                    failed.append(sink.name)
        return Published(frozenset(delivered), tuple(retryable), tuple(failed))
