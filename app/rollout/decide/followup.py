"""A follow-up check (pure): the Storage queue message, due when an AML write should have finished, that names
the endpoint to advance; its parsing and its visibility delay. Sent by ``app/azure/queue.py``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.platform.errors import EventValidationError
from app.platform.names import is_valid_name
from app.platform.settings import MAX_VISIBILITY_S
from app.platform.workspace import WorkspaceRef

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

MAX_RECHECKS = 5
#: The kind of the follow-up the engine schedules at a bake's end (its reason reads ``bake end {time}``).
BAKE = "bake"
#: The kind of the follow-up a traffic split's write asks for (the fence's).
TRAFFIC_WRITE = "traffic"
#: The kind of the follow-up a tick sends for an endpoint it had no time for (``tick.py``).
HANDED_ON = "tick"
#: A message body is at most this long; ours are far shorter, anything longer is not ours.
MAX_BODY = 4096


@dataclass(frozen=True)
class FollowUp:
    """One scheduled look at an endpoint. No secrets: the workspace id, the endpoint, why, and how many rechecks."""

    workspace_id: str
    endpoint: str
    reason: str
    rechecks: int = 0
    #: A follow-up about one rollout rather than its endpoint (a promotion owed): its deployment.
    deployment: str = ""
    #: When the message was sent, on the app's clock (set by the tick when it hands an endpoint on).
    sent_at: dt.datetime | None = None
    #: When it falls due, on the app's clock (set by its sender): how late it is handled says whether the queue's
    #: instances keep up.
    due_at: dt.datetime | None = None

    @property
    def kind(self) -> str:
        """What the follow-up is for: the first word of its reason (``bake`` at a bake's end, ``tick`` when the tick
        handed the endpoint on, the kind of write otherwise)."""
        return self.reason.split(" ", 1)[0]

    @property
    def bake_end(self) -> dt.datetime | None:
        """When the bake ends, for a follow-up sent at a bake's end (its reason reads ``bake end {time}``)."""
        if self.kind != BAKE or not self.reason.startswith(f"{BAKE} end "):
            return None
        return _instant(self.reason.removeprefix(f"{BAKE} end "))

    def late_by(self, now: dt.datetime) -> float | None:
        """Seconds it is handled after it fell due (0 when on time or early); None when the message does not say."""
        return None if self.due_at is None else max(0.0, (now - self.due_at).total_seconds())

    def to_json(self) -> str:
        body: dict[str, object] = {"workspaceId": self.workspace_id, "endpoint": self.endpoint, "reason": self.reason}
        if self.deployment:
            body["deployment"] = self.deployment
        if self.sent_at is not None:
            body["sentAt"] = self.sent_at.isoformat()
        if self.due_at is not None:
            body["dueAt"] = self.due_at.isoformat()
        return json.dumps({**body, "rechecks": self.rechecks})

    @classmethod
    def parse(cls, body: bytes | str) -> FollowUp:
        """The message as the queue delivered it; ``EventValidationError`` naming the field otherwise."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if len(text) > MAX_BODY:
            raise EventValidationError("message", f"is {len(text)} characters long; a follow-up is a short JSON object")
        try:
            raw = json.loads(text)
        except ValueError as err:
            expected = "expected {workspaceId, endpoint, reason}"
            raise EventValidationError("message", f"is not JSON ({err}); {expected}") from err
        if not isinstance(raw, dict):
            raise EventValidationError("message", "is not a JSON object; expected {workspaceId, endpoint, reason}")
        workspace_id, endpoint = raw.get("workspaceId"), raw.get("endpoint")
        if not isinstance(workspace_id, str):
            raise EventValidationError("workspaceId", "is missing; expected the workspace's ARM id")
        try:
            WorkspaceRef.from_arm_id(workspace_id)
        except ValueError as err:
            raise EventValidationError("workspaceId", str(err)) from err
        if not isinstance(endpoint, str) or not is_valid_name(endpoint):
            raise EventValidationError("endpoint", f"{endpoint!r} is not an online endpoint name")
        rechecks, deployment = raw.get("rechecks", 0), raw.get("deployment", "")
        if deployment and not (isinstance(deployment, str) and is_valid_name(deployment)):
            raise EventValidationError("deployment", f"{deployment!r} is not an online deployment name")
        return cls(
            workspace_id,
            endpoint,
            str(raw.get("reason", ""))[:200],
            rechecks if isinstance(rechecks, int) and rechecks >= 0 else 0,
            str(deployment),
            _instant(raw.get("sentAt")),
            _instant(raw.get("dueAt")),
        )


def _instant(value: object) -> dt.datetime | None:
    """An ISO 8601 instant a message carries, or None (absent or unreadable: the message is handled as before)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def visibility(seconds: float) -> int:
    """Seconds for the queue's visibility timeout from a wall-clock delay: whole, never early, at most 7 days."""
    return max(0, min(MAX_VISIBILITY_S, math.ceil(seconds)))
