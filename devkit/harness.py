"""Drive the unchanged app offline: settings over a DevStack, event builders, delivery, timer ticks."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from app.intake import events
from app.platform import clock
from app.wiring import reset_production_deps
from devkit import runner
from devkit.stack import WORKSPACE_ID, DevStack, applied_env

#: App settings the offline app runs with, on top of what the stack points at itself.
APP_SETTINGS = {
    "DEPLOY_MODE": "apply",
    "RECONCILE_SCHEDULE": "0 */1 * * * *",
    "RESYNC_SCHEDULE": "0 0 * * * *",
    "RETENTION_SCHEDULE": "0 30 3 * * *",
    "EVENT_BUDGET_SECONDS": "10",
    "RECONCILE_BUDGET_SECONDS": "30",
    # Follow-ups in the dev kit's time: its emulated AML operations take half a second, not minutes.
    "FOLLOWUP_DELAYS": "endpoint=1,deployment=1,traffic=1,delete=1,recheck=1",
    # Its ticks stand in for the queue, which it runs only when a test drains it: every tick looks at every endpoint.
    "TICK_WAITS_FOR_FOLLOWUPS": "false",
    "ALLOWED_INSTANCE_TYPES": "Standard_DS2_v2,Standard_DS3_v2,Standard_F4s_v2",
    # How the app recognizes the dev kit: its local webhook receivers speak plain HTTP (refused anywhere else).
    "ALLOW_HTTP_WEBHOOK": "true",
}
_counter = itertools.count(1)


def event_id() -> str:
    return f"evt-{next(_counter):04d}-{uuid.uuid4().hex[:8]}"


def _envelope(
    event_type: str, subject: str, data: Mapping[str, Any], schema: str, eid: str | None, workspace_id: str
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat()
    if schema == "CloudEvents":
        return {
            "specversion": "1.0",
            "id": eid or event_id(),
            "source": workspace_id,
            "subject": subject,
            "type": event_type,
            "time": now,
            "datacontenttype": "application/json",
            "data": dict(data),
        }
    return {
        "id": eid or event_id(),
        "topic": workspace_id,
        "subject": subject,
        "eventType": event_type,
        "eventTime": now,
        "data": dict(data),
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def model_registered(
    name: str,
    version: str | int,
    tags: Mapping[str, str] | None = None,
    *,
    schema: str = "EventGrid",
    eid: str | None = None,
    workspace_id: str = WORKSPACE_ID,
) -> dict[str, Any]:
    data = {"modelName": name, "modelVersion": str(version), "modelTags": dict(tags or {}), "modelProperties": {}}
    return _envelope(events.MODEL_REGISTERED, f"models/{name}:{version}", data, schema, eid, workspace_id)


def model_deployed(
    endpoint: str,
    model_ids: str = "",
    *,
    schema: str = "EventGrid",
    eid: str | None = None,
    workspace_id: str = WORKSPACE_ID,
) -> dict[str, Any]:
    """ModelDeployed for a managed online endpoint: the service is the endpoint (subject ``endpoints/{name}``)."""
    data = {
        "serviceName": endpoint,
        "serviceComputeType": "Managed",
        "modelIds": model_ids,
        "serviceTags": {},
        "serviceProperties": {},
    }
    return _envelope(events.MODEL_DEPLOYED, f"endpoints/{endpoint}", data, schema, eid, workspace_id)


def run_completed(
    run_id: str,
    tags: Mapping[str, str] | None = None,
    *,
    experiment: str = "retraining",
    eid: str | None = None,
    schema: str = "EventGrid",
) -> dict[str, Any]:
    data = {
        "experimentId": f"exp-{experiment}",
        "experimentName": experiment,
        "runId": run_id,
        "runType": "azureml.PipelineRun",
        "runTags": dict(tags or {}),
        "runProperties": {},
    }
    return _envelope(
        events.RUN_COMPLETED, f"experiments/exp-{experiment}/runs/{run_id}", data, schema, eid, WORKSPACE_ID
    )


def run_status_changed(
    run_id: str,
    status: str,
    tags: Mapping[str, str] | None = None,
    *,
    properties: Mapping[str, str] | None = None,
    experiment: str = "retraining",
    run_type: str = "azureml.scriptrun",
    eid: str | None = None,
) -> dict[str, Any]:
    data = {
        "experimentId": f"exp-{experiment}",
        "experimentName": experiment,
        "runId": run_id,
        "runType": run_type,
        "runTags": dict(tags or {}),
        "runProperties": dict(properties or {}),
        "runStatus": status,
    }
    return _envelope(
        events.RUN_STATUS_CHANGED, f"experiments/exp-{experiment}/runs/{run_id}", data, "EventGrid", eid, WORKSPACE_ID
    )


#: The tag Azure ML's model-monitoring evaluate step sets on its run when a signal breaches (app.retraining.signals).
BREACH_TAG = "azureml_modelmonitor_threshold_breached"


def monitor_breach(
    monitor: str,
    signal: str,
    step_run_id: str,
    monitor_run_id: str,
    *,
    status: str = "Completed",
    event_type: str = events.RUN_STATUS_CHANGED,
    eid: str | None = None,
) -> dict[str, Any]:
    """A model-monitoring signal's evaluate step reporting a breach, as Azure ML tags it (shape only)."""
    message = (
        f"The signal '{signal}' has failed due to one or more features violating metric thresholds.\n"
        "The feature names and their corresponding computed metric values violating the threshold are \n"
        '[\'{"metric_value":0.42,"metric_name":"JensenShannonDistance","threshold_value":0.1,'
        '"group":"income"}\']\n'
    )
    body = run_status_changed(
        step_run_id,
        status,
        {BREACH_TAG: message},
        properties={"azureml.pipelinerunid": monitor_run_id},
        experiment=monitor,
        run_type="azureml.StepRun",
        eid=eid,
    )
    if event_type == events.RUN_COMPLETED:
        body["eventType"] = events.RUN_COMPLETED
        body["data"].pop("runStatus")
    return body


def drift_detected(
    monitor: str, run_id: str, coefficient: float, *, eid: str | None = None, drift_id: str = "drift-monitor-1"
) -> dict[str, Any]:
    data = {
        "dataDriftId": drift_id,
        "dataDriftName": monitor,
        "runId": run_id,
        "baseDatasetId": "base-dataset",
        "targetDatasetId": "target-dataset",
        "driftCoefficient": coefficient,
        "startTime": "2026-11-14T00:00:00Z",
        "endTime": "2026-11-21T00:00:00Z",
    }
    return _envelope(
        events.DATASET_DRIFT_DETECTED, f"datadrift/{drift_id}/run/{run_id}", data, "EventGrid", eid, WORKSPACE_ID
    )


@contextlib.contextmanager
def app_environment(stack: DevStack, **overrides: str) -> Iterator[None]:
    """Point the app at ``stack`` with ``APP_SETTINGS`` (plus overrides) and fresh process-wide clients."""
    with applied_env({**stack.env, **APP_SETTINGS, **overrides}):
        reset_production_deps()
        try:
            yield
        finally:
            reset_production_deps()


class OfflineApp:
    """The app as Event Grid and the timer would drive it, with the stack's emulators behind it."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack

    def deliver(self, *bodies: Mapping[str, Any], max_attempts: int = 3) -> list[runner.Delivery]:
        return runner.deliver(bodies, max_attempts=max_attempts)

    def tick(self, *, settle: bool = True) -> None:
        """Fire the reconciler once; with ``settle``, let AML finish what it started (fast operations)."""
        runner.tick()
        if settle:
            self.stack.aml.wait_idle()

    def resync(self) -> None:
        """Fire the resync timer once."""
        runner.resync()

    def drain_followups(self, *, wait_s: float = 0.0, max_dequeue: int = 5) -> int:
        """Deliver the follow-up messages that are due to ``follow_up_rollout``, as the queue trigger would.

        Reads ``ROLLOUT_QUEUE`` with the real azure-storage-queue client (:class:`devkit.queue_trigger.QueueTrigger`);
        keeps reading for ``wait_s`` seconds while messages are still invisible (scheduled). A message whose
        invocation raised becomes visible again and is retried; after ``max_dequeue`` deliveries it goes to
        ``{queue}-poison``, as the host does (host.json ``maxDequeueCount``, default 5). Returns the number of
        messages handled.
        """
        from devkit.queue_trigger import QueueTrigger

        queue = self._followup_queue()
        trigger = QueueTrigger(
            queue, lambda: self._followup_queue(f"{queue.queue_name}-poison"), runner.follow_up, max_dequeue=max_dequeue
        )
        return trigger.drain(wait_s)

    def pending_followups(self) -> int:
        """Follow-up messages in the queue, due or scheduled (Azurite counts the invisible ones too)."""
        props = self._followup_queue().get_queue_properties()
        return int(props.approximate_message_count or 0)

    def _followup_queue(self, name: str = "") -> Any:
        from app.platform.settings_reader import get_settings
        from devkit.queue_trigger import queue_client

        return queue_client(self.stack.env["AzureWebJobsStorage"], name or get_settings().rollout_queue)

    def run_until_settled(self, max_ticks: int = 10) -> int:
        """Tick until no rollout is pending or deploying. Returns the number of ticks it took."""
        self.stack.aml.wait_idle()
        for ticks in range(max_ticks + 1):
            if not self._in_flight():
                return ticks
            self.tick()
        raise AssertionError(f"rollouts still active after {max_ticks} ticks: {self.rollouts()}")

    def _in_flight(self) -> list[str]:
        """The rollouts pending or deploying, read as the reconciler reads them: the ledger's index of active
        endpoints and their active rows, whatever the length of the history (the status API pages through it)."""
        from app.rollout.decide.model import State
        from app.rollout.ledger.ledger import ledger_of
        from app.wiring import production_deps

        deps = production_deps()
        ledger = ledger_of(deps)
        return [
            rollout.plan.deployment
            for entry in ledger.active.endpoints(deps.clock())
            for rollout in ledger.endpoint_rollouts(entry.workspace_id, entry.endpoint)
            if rollout.state in (State.PENDING, State.DEPLOYING)
        ]

    def control(self, deployment: str, action: str, reason: str = "", endpoint: str = "credit") -> tuple[int, Any]:
        """An operator action through the HTTP function (``POST /api/rollouts/{endpoint}/{deployment}/{action}``)."""
        body = json.dumps({"reason": reason}).encode() if reason else b""
        return runner.control(endpoint, deployment, action, body)

    @contextlib.contextmanager
    def emulated_time(self, start: dt.datetime | None = None) -> Iterator[None]:
        """Freeze the emulator's clock (at ``start``, else now) and make the app read it: bakes take no wall time.

        Move time with ``advance(seconds)``. Afterwards the emulator's clock runs again from where it was.
        """
        aml = self.stack.aml
        aml.set_clock(start, frozen=True)
        with clock.following(lambda: dt.datetime.fromtimestamp(aml.clock_now(), dt.UTC)):
            try:
                yield
            finally:
                aml.set_clock(frozen=False)

    def advance(self, seconds: float) -> None:
        self.stack.aml.advance_clock(seconds)

    def rollouts(self, **filters: str) -> list[dict[str, Any]]:
        """Every rollout ``GET /api/rollouts`` lists with ``filters``, newest first, following its pages."""
        found: list[dict[str, Any]] = []
        params = dict(filters)
        while True:
            status, body = runner.get_status(params)
            assert status == 200, body
            found.extend(body["rollouts"])
            if not body["continuation"]:
                return found
            params["continuation"] = body["continuation"]

    def rollout(self, deployment: str) -> dict[str, Any]:
        [found] = [r for r in self.rollouts() if r["deployment"] == deployment]
        return found

    def published(self) -> list[dict[str, Any]]:
        """CloudEvents the app published to the (local) Event Grid topic, oldest first."""
        return list(self.stack.sink.events)

    def published_types(self) -> list[str]:
        return [event["type"] for event in self.published()]

    def traffic(self, endpoint: str) -> dict[str, int]:
        state = self.stack.aml.endpoint_state(endpoint)
        assert state is not None, f"endpoint {endpoint} does not exist"
        return {k: v for k, v in state["properties"].get("traffic", {}).items() if v}
