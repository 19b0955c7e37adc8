"""Follow-up checks: a Storage queue message, due when an AML write should have finished, that advances its endpoint."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from app.azure.throttle import throttle_policy
from app.platform import budgets
from app.platform.errors import EventValidationError, RetryableError, SettingsError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.naming import is_valid_name

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from app.platform.settings import Settings
    from app.rollout.ledger.ledger import ActiveEndpoint
    from app.wiring import Deps

logger = logging.getLogger(__name__)

#: What each write usually takes in Azure ML, in seconds: the follow-up is due then (FOLLOWUP_DELAYS overrides).
#: Endpoint creation is typically 1-2 minutes, a managed deployment 5-15 minutes (VM allocation and image pull),
#: a traffic update well under a minute. ``recheck``: a follow-up that found the operation still running looks
#: again this much later (at most MAX_RECHECKS times; then the timer carries on).
DEFAULT_DELAYS: Mapping[str, float] = {
    "endpoint": 90.0,
    "deployment": 300.0,
    "traffic": 30.0,
    "delete": 60.0,
    "recheck": 30.0,
}
#: The kind of the follow-up the engine schedules at a bake's end (its reason reads ``bake end {time}``).
BAKE = "bake"
#: The kind of the follow-up a tick sends for an endpoint it had no time for (``tick.py``).
HANDED_ON = "tick"
#: A queue message can stay invisible for at most 7 days (Put Message, visibilitytimeout).
MAX_VISIBILITY_S = 7 * 24 * 3600
MAX_RECHECKS = 5
#: A message body is at most this long; ours are far shorter, anything longer is not ours.
MAX_BODY = 4096


@dataclass(frozen=True)
class FollowUp:
    """One scheduled look at an endpoint. No secrets: the workspace id, the endpoint, why, and how many rechecks."""

    workspace_id: str
    endpoint: str
    reason: str
    rechecks: int = 0
    #: When the message was sent, on the app's clock (set by the tick when it hands an endpoint on).
    sent_at: dt.datetime | None = None

    @property
    def kind(self) -> str:
        """What the follow-up is for: the first word of its reason (``bake`` at a bake's end, ``tick`` when the tick
        handed the endpoint on, the kind of write otherwise)."""
        return self.reason.split(" ", 1)[0]

    def to_json(self) -> str:
        body = {"workspaceId": self.workspace_id, "endpoint": self.endpoint, "reason": self.reason}
        sent = {"sentAt": self.sent_at.isoformat()} if self.sent_at is not None else {}
        return json.dumps({**body, "rechecks": self.rechecks, **sent})

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
        rechecks = raw.get("rechecks", 0)
        return cls(
            workspace_id,
            endpoint,
            str(raw.get("reason", ""))[:200],
            rechecks if isinstance(rechecks, int) and rechecks >= 0 else 0,
            _instant(raw.get("sentAt")),
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


def parse_delays(raw: str) -> tuple[dict[str, float], list[str]]:
    """``FOLLOWUP_DELAYS``: ``kind=seconds`` pairs over the defaults; (delays, problems). ``off`` disables them."""
    delays, problems = dict(DEFAULT_DELAYS), []
    if raw.strip().lower() == "off":
        return {}, []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        kind, _, value = item.partition("=")
        kind = kind.strip().lower()
        if kind not in DEFAULT_DELAYS:
            problems.append(
                f"FOLLOWUP_DELAYS: {kind!r} is not one of {', '.join(DEFAULT_DELAYS)} (e.g. deployment=300,traffic=30)"
            )
            continue
        try:
            seconds = float(value)
        except ValueError:
            problems.append(f"FOLLOWUP_DELAYS: {item!r} is not kind=seconds (e.g. deployment=300)")
            continue
        if not 0 <= seconds <= MAX_VISIBILITY_S:
            problems.append(f"FOLLOWUP_DELAYS: {kind}={value} is out of range (0..{MAX_VISIBILITY_S} s, 7 days)")
            continue
        delays[kind] = seconds
    return delays, problems


def visibility(delay: dt.timedelta | float) -> int:
    """Seconds for the queue's visibility timeout: whole, never early, at most 7 days."""
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else float(delay)
    return max(0, min(MAX_VISIBILITY_S, math.ceil(seconds)))


class FollowUpQueue:
    """The ``ROLLOUT_QUEUE`` queue in the Function App's storage account. Creates the queue on first use."""

    #: Messages sent, process-wide (``make bench`` and the tests read it).
    sent: ClassVar[Counter[str]] = Counter()

    def __init__(self, client_factory: Callable[[], QueueClient]) -> None:
        self._client_factory = client_factory
        self._client: QueueClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, credential: Callable[[], TokenCredential]) -> FollowUpQueue:
        """Connect the way the Functions host does: ``AzureWebJobsStorage`` as a connection string, or
        identity-based with ``AzureWebJobsStorage__queueServiceUri`` / ``__accountName``."""

        def connect() -> QueueClient:
            # SDK on first use, not at import: keeps cold start light.
            from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

            # The Functions host's queue trigger expects Base64 bodies by default (host.json
            # extensions.queues.messageEncoding, "base64"); the SDK sends plain text unless told.
            codec: dict[str, Any] = {
                "message_encode_policy": TextBase64EncodePolicy(),
                "message_decode_policy": TextBase64DecodePolicy(),
                **budgets.TABLES.client_kwargs(),
                "per_retry_policies": [throttle_policy()],
            }
            if settings.storage_connection_string:
                return QueueClient.from_connection_string(
                    settings.storage_connection_string, settings.rollout_queue, **codec
                )
            endpoint = settings.storage_queue_uri or (
                f"https://{settings.storage_account_name}.queue.core.windows.net"
                if settings.storage_account_name
                else ""
            )
            if not endpoint:
                raise SettingsError(
                    [
                        "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__accountName "
                        "(or __queueServiceUri) for identity-based access"
                    ]
                )
            return QueueClient(endpoint, settings.rollout_queue, credential=credential(), **codec)

        return cls(connect)

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.core.exceptions import ResourceExistsError

            client = self._client_factory()
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._client = client
        return self._client

    def schedule(self, followup: FollowUp, delay: dt.timedelta | float) -> None:
        """Send ``followup``, invisible until ``delay`` has passed. Raises what the SDK raises."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.send_message(followup.to_json(), visibility_timeout=visibility(delay))
        except ResourceNotFoundError:
            # The queue was deleted under us (an operator, a dev-kit reset): create it and send again.
            self.client.create_queue()
            self.client.send_message(followup.to_json(), visibility_timeout=visibility(delay))
        FollowUpQueue.sent[followup.kind] += 1


def follow_up(body: bytes | str, dequeue_count: int, deps: Deps) -> str:
    """The queue function's work: advance the message's endpoint once. Raises only what a retry can fix.

    A duplicate or late message finds nothing to do (the engine is level-triggered); a message that cannot be
    understood, or names an endpoint with nothing in flight, is logged and dropped: a retry cannot fix it, and
    the timer is the safety net either way.
    """
    try:
        followup = FollowUp.parse(body)
    except EventValidationError as err:
        logger.error("follow-up message dropped (dequeue count %d): %s", dequeue_count, err)
        return f"dropped: {err}"
    label = f"follow-up {followup.endpoint} ({followup.reason})"
    settings = deps.settings
    if not settings.records_rollouts:
        logger.info("%s: DEPLOY_MODE=plan, nothing is applied", label)
        return "dropped: DEPLOY_MODE=plan"
    if not settings.allows(WorkspaceRef.from_arm_id(followup.workspace_id)):
        logger.error("%s dropped: workspace %s is not in AML_ALLOWED_WORKSPACES", label, followup.workspace_id)
        return "dropped: workspace not allowed"
    # The engine on first use: it is the largest part of the app's own import time.
    from app.rollout.run.engine import RolloutEngine

    try:
        entries = _active_entries(deps)
        endpoint = active_endpoint(deps, followup.workspace_id, followup.endpoint, entries)
        if endpoint is None:
            # Finished since (a late or duplicate message), or never ours: nothing to look at, and no lease taken.
            logger.info("%s: no rollout in progress on this endpoint; nothing to do", label)
            return "nothing to do: no rollout in progress on this endpoint"
        if followup.kind == HANDED_ON and _advanced_since(deps, endpoint, followup.sent_at):
            logger.info("%s: advanced since the tick handed it on; nothing to do", label)
            return "nothing to do: advanced since the tick handed it on"
        if followup.kind == BAKE and _gate_waits_for_tick(deps, endpoint, entries):
            logger.info("%s: the gate is read with its region's others in the next tick's batch", label)
            return "deferred to the tick: its region's gates are read in one batch"
        lines = RolloutEngine(deps, followup=followup).advance(
            endpoint[0], endpoint[1], time.monotonic() + settings.reconcile_budget_seconds
        )
    except RetryableError:
        raise  # storage or the lease table briefly unavailable: the host redelivers (bounded by maxDequeueCount)
    except Exception as err:
        logger.exception("%s: advancing the endpoint raised; the timer tries again: %s", label, err)
        return f"failed: {type(err).__name__}"
    logger.info("%s: %s", label, "; ".join(lines) or "nothing to do")
    return "; ".join(lines) or "nothing to do"


def active_endpoint(
    deps: Deps, workspace_id: str, endpoint: str, entries: list[ActiveEndpoint] | None = None
) -> tuple[str, str] | None:
    """(workspace id, endpoint) as the ledger spells them if a rollout is in progress there; else None.

    One read of the ledger's index of active endpoints (``entries``, when the caller read it already; it may
    over-report: advancing such an endpoint finds nothing to do). Names compare case-insensitively, as Azure ML's do.
    """
    key = WorkspaceRef.from_arm_id(workspace_id).key
    for entry in entries if entries is not None else _active_entries(deps):
        ws, ep = entry.workspace_id, entry.endpoint
        if ep.lower() == endpoint.lower() and WorkspaceRef.from_arm_id(ws).key == key:
            return ws, ep
    return None


def _active_entries(deps: Deps) -> list[ActiveEndpoint]:
    from app.rollout.run.factories import ledger_of

    return ledger_of(deps).active_endpoints(deps.clock())


def _advanced_since(deps: Deps, endpoint: tuple[str, str], sent_at: dt.datetime | None) -> bool:
    """Has a pass held the endpoint's lease since ``sent_at``? (Its row's lease ends when the pass releases it.)"""
    if sent_at is None:
        return False
    from app.rollout.run.factories import ledger_of

    until = ledger_of(deps).endpoint_record(*endpoint).until
    return until is not None and until >= sent_at


def _gate_waits_for_tick(deps: Deps, endpoint: tuple[str, str], entries: list[ActiveEndpoint]) -> bool:
    """A bake's end where other endpoints are active in its region: the tick reads their gates in one batch."""
    # The batch reader on first use: most follow-ups never read a gate.
    from app.rollout.run.gate_batch import batched_in_tick

    return batched_in_tick(deps, endpoint[0], endpoint[1], entries)
