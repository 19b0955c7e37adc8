"""The offline target: the dev kit's stack, the unchanged app in-process, and AML's events delivered from its outbox."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from acceptance.emulator import ContainerSimulator, teach_model_deletion
from acceptance.promotion import ProductionSide
from acceptance.target import ModelSource, Registration, Target
from app.intake.events import MODEL_REGISTERED
from app.platform import clock
from app.platform.workspace import WorkspaceRef
from devkit import runner
from devkit.harness import OfflineApp, app_environment
from devkit.promotion import PRODUCTION_ID, REGISTRY, STAGING_SETTINGS, Promotion, set_up
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

#: Where registrations point offline: the emulator stores the path, it uploads nothing.
MODEL_URI_BASE = "azureml://datastores/workspaceblobstore/paths/acceptance-models"
#: The emulator's synthetic callers while a scoring load runs. The 10% step gets 300 a minute: a minute's P99 over
#: 60 requests is nearly its slowest one, and at 600 a minute a healthy canary failed the 1.5x latency ratio in
#: about 1 window in 60 (tests/acceptance/test_gate_noise.py).
LOAD_RPM = 3000
#: How far the emulated clock moves at each look while a scoring load runs.
MINUTE_S = 60.0


class OfflineTarget(Target):
    """Starts the dev kit stack and drives the app the way Event Grid and the timer would.

    ``register`` sends the real azure-ai-ml request to the AML emulator; the emulator's outbox yields the
    ``ModelRegistered`` event AML would publish, and ``await_delivery`` hands exactly that event to the app's
    Event Grid function. ``pass_time`` fires the reconciler's timer once and lets AML finish what it started.
    """

    name = "offline"
    settle_timeout_s = 30.0
    delivery_timeout_s = 10.0
    cleanup_timeout_s = 30.0

    def __init__(
        self, *, operation_duration_s: float = 0.2, stack: DevStack | None = None, **app_settings: str
    ) -> None:
        super().__init__()
        self.operation_duration_s = operation_duration_s
        self.app_settings = app_settings
        self._given_stack = stack  # started and stopped by its owner
        self._stack: DevStack | None = None
        self._exit = contextlib.ExitStack()
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._containers: ContainerSimulator | None = None
        self._credential: TokenCredential | None = None
        self._emulated = False
        self._promotion: Promotion | None = None

    @property
    def stack(self) -> DevStack:
        if self._stack is None:
            raise RuntimeError("the offline target is not started")
        return self._stack

    def start(self) -> OfflineTarget:
        try:
            self._stack = self._given_stack or self._exit.enter_context(
                DevStack(operation_duration_s=self.operation_duration_s)
            )
            # The app is the staging app of a promotion too: a production workspace and a registry stand beside it.
            self._promotion = set_up(self._stack)
            self._exit.enter_context(app_environment(self._stack, **{**STAGING_SETTINGS, **self.app_settings}))
            # The app reads the emulator's clock throughout: once a scoring load has moved it ahead of the wall,
            # the leases and bakes the app recorded in that time must not look far in the future.
            aml = self._stack.aml
            self._exit.enter_context(clock.following(lambda: dt.datetime.fromtimestamp(aml.clock_now(), dt.UTC)))
            teach_model_deletion(self._stack.aml)
            self._containers = ContainerSimulator(self._stack.aml, self.ml)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._exit.close()
        self._stack = None

    @property
    def workspace(self) -> WorkspaceRef:
        return WorkspaceRef(SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)

    def credential(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()  # the stack's managed-identity endpoint
        return self._credential

    def model_path(self, source: ModelSource) -> str:
        return f"{MODEL_URI_BASE}/{source.name}/"

    def _after_register(self, registration: Registration) -> Registration:
        self._collect()
        event = self._pending.get((registration.model, registration.version))
        if event is None:
            raise AssertionError(f"the AML emulator published no ModelRegistered for {registration.model}")
        return Registration(registration.model, registration.version, registration.tags, registration.source, event)

    def _collect(self) -> None:
        """Take AML's published events; hold each ModelRegistered until the suite has it delivered."""
        for event in self.stack.aml.take_events():
            if event.get("eventType") != MODEL_REGISTERED:
                continue
            assert self._containers is not None
            self._containers.on_event(event)
            data = event["data"]
            self._pending[(str(data["modelName"]), str(data["modelVersion"]))] = event

    def _deliver(self, registration: Registration) -> None:
        event = self._pending.pop((registration.model, registration.version), None)
        if event is not None:
            self.post_event(event)

    def post_event(self, event: Mapping[str, Any]) -> None:
        [delivery] = runner.deliver([event])
        if not delivery.acknowledged:
            raise AssertionError(f"the app did not acknowledge {delivery.subject}: {delivery.attempts}")
        logger.info("delivered %s %s: %s", delivery.event_type, delivery.subject, delivery.outcome)

    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        query = dict(params)
        while True:  # the answer is paged: follow the continuations
            code, body = runner.get_status(query)
            if code != 200:
                raise AssertionError(f"GET /api/rollouts answered {code}: {body}")
            found.extend(body["rollouts"])
            if not body.get("continuation"):
                return found
            query["continuation"] = body["continuation"]

    def pass_time(self) -> None:
        runner.tick()
        self.stack.aml.wait_idle()
        if self._emulated:
            self.stack.aml.advance_clock(MINUTE_S)

    @contextlib.contextmanager
    def scoring_load(self, endpoint: str) -> Iterator[None]:
        """The emulator's synthetic callers score the endpoint, on its frozen clock (which the app follows), moved a
        minute at each look: a 5-minute bake takes a few reconciler ticks."""
        aml = self.stack.aml
        aml.set_clock(frozen=True)
        aml.start_load(endpoint, rpm=LOAD_RPM, seed=11)
        self._emulated = True
        try:
            yield
        finally:
            self._emulated = False
            aml.stop_load(endpoint)
            aml.set_clock(frozen=False)

    def cannot_script_faults(self) -> str | None:
        return None

    def metrics_outage(self, minutes: float, status: int = 503) -> None:
        # A millisecond Retry-After: the reader's own retries meet the outage without sleeping real seconds.
        self.stack.aml.monitor_outage(status, seconds=minutes * 60.0, retry_after_s=0.001)

    def _post_control(self, endpoint: str, deployment: str, action: str, body: bytes) -> tuple[int, dict[str, Any]]:
        return runner.control(endpoint, deployment, action, body)

    def promotion(self) -> ProductionSide:
        if self.production is None:
            assert self._promotion is not None, "the offline target is not started"
            self.production = OfflineProduction(self, self._promotion)
        return self.production


#: The offline production app asks for an approval before any traffic, as docs/promotion.md sets production up.
PRODUCTION_APPROVALS = {"REQUIRE_APPROVAL": "true"}


class OfflineProduction(ProductionSide):
    """The dev kit's production workspace and the same app with production's settings (``devkit/promotion.py``);
    the staging app's ``AmlEvents.Model.Promoted`` reach it as the Event Grid subscription would deliver them."""

    def __init__(self, target: OfflineTarget, promotion: Promotion) -> None:
        super().__init__(REGISTRY, WorkspaceRef.from_arm_id(PRODUCTION_ID), target.credential())
        self.target = target
        self.p = promotion
        self.staging = OfflineApp(target.stack)

    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.p.production(**PRODUCTION_APPROVALS):
            return self.target.status(params)

    def decide(self, row: Mapping[str, Any], action: str, reason: str) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"reason": reason}).encode()
        with self.p.production(**PRODUCTION_APPROVALS):
            status, answer = runner.control(row["endpoint"], row["deployment"], action, body)
        return status, dict(answer or {})

    def pass_time(self) -> None:
        self.staging.drain_followups()  # the staging app's promotions run on its follow-up queue
        events = self.p.forward()
        with self.p.production(**PRODUCTION_APPROVALS):
            for delivery in runner.deliver(events):
                logger.info("production: %s %s: %s", delivery.event_type, delivery.subject, delivery.outcome)
            runner.tick()
        self.target.pass_time()
