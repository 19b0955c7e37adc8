"""The app's dependencies, every one a fake, on one fake clock: the engine, ledger, controls and status API run here.

A ``FakeWorld`` is what the fast layer drives: events through the real dispatcher, passes of the real engine,
ticks of the real reconciler, operator actions and status requests through their real functions, with Azure ML,
Azure Monitor, scoring, Table Storage, the follow-up queue and the notification sinks replaced by recording fakes.
Time moves only when the test moves it, so an operation that takes 5 minutes in Azure costs nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.handlers import HANDLERS
from app.intake.dispatch import process
from app.intake.events import MODEL_REGISTERED, Envelope
from app.intake.outcome import Outcome
from app.notify.outbox import OutboxNotifier
from app.platform.settings import Settings
from app.platform.settings_reader import settings_from_env
from app.ports import Deps
from app.rollout.decide.model import ModelInfo, Rollout, State
from app.rollout.ledger.ledger import RolloutLedger
from tests.fakes.aml import FakeAzureML
from tests.fakes.clock import FakeClock
from tests.fakes.deps import WORKSPACE, WORKSPACE_ID, FakeSink
from tests.fakes.monitor import FakeMetrics
from tests.fakes.queue import FakeFollowUpQueue
from tests.fakes.registry import FakeRegistry
from tests.fakes.scoring import FakeSmoke
from tests.fakes.table import FakeTableStore

#: The time budget a pass gets, as the event and the timer give it (real seconds: a pass on fakes takes none).
PASS_BUDGET_S = 30.0


class FakeWorld:
    """Fakes wired into ``Deps`` as production wires the real adapters (``app.wiring.production_deps``)."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        #: The production defaults (every setting unset but the allowlist and DEPLOY_MODE=apply), then ``overrides``.
        self.settings = settings or replace(
            settings_from_env({"AML_ALLOWED_WORKSPACES": WORKSPACE_ID, "DEPLOY_MODE": "apply"}), **overrides
        )
        self.clock = FakeClock()
        self.aml = FakeAzureML(self.clock, WORKSPACE)
        self.metrics = FakeMetrics(self.aml)
        self.smoke = FakeSmoke(self.aml, timeout_s=self.settings.smoke_timeout_seconds)
        self.queue = FakeFollowUpQueue(self.clock)
        self.sink = FakeSink()
        # As production wires it: each notification id sent once, through the outbox in the idempotency table.
        self.notifier = OutboxNotifier([self.sink], lambda: self.table(self.settings.idempotency_table), self.clock)
        self.tables: dict[str, FakeTableStore] = {}
        self.registries: dict[str, FakeRegistry] = {}
        self.aml.registry_models = self._registry_model
        self.deps = Deps(
            settings=self.settings,
            notifier=self.notifier,
            aml=self.aml,
            table=self.table,
            clock=self.clock,
            smoke=self.smoke,
            metrics=self.metrics,
            followups=lambda: self.queue,
            registry=self.registry,
        )

    def configure(self, **changes: Any) -> None:
        """An operator changes app settings (``DEPLOY_MODE``, say): the next invocation runs with them."""
        self.settings = replace(self.settings, **changes)
        self.deps = replace(self.deps, settings=self.settings)

    def table(self, name: str) -> FakeTableStore:
        return self.tables.setdefault(name, FakeTableStore())

    def registry(self, name: str) -> FakeRegistry:
        """An Azure ML registry added with ``add_registry`` (or shared with another world)."""
        return self.registries[name.lower()]

    def _registry_model(self, registry: str, name: str, version: str) -> ModelInfo | None:
        found = self.registries.get(registry.lower())
        stored = found.versions.get((name.lower(), version)) if found else None
        return ModelInfo(name, version, stored.model_type, stored.tags) if stored else None

    def add_registry(self, name: str, registry: FakeRegistry | None = None) -> FakeRegistry:
        """A registry this world's app reaches; by default a new one whose shares copy this world's models."""
        found = registry or FakeRegistry(
            name, self.clock, lambda ref: self.aml.models.get((ref.name.lower(), ref.version))
        )
        self.registries[name.lower()] = found
        return found

    @property
    def store(self) -> FakeTableStore:
        """The ledger's table."""
        return self.table(self.settings.rollout_table)

    @property
    def ledger(self) -> RolloutLedger:
        """A fresh ledger over the table, as each invocation builds one."""
        return RolloutLedger(self.store)

    # ------------------------------------------------------------------------------------ what happens to the app

    def register(self, model: str, version: str | int, tags: Mapping[str, str], *, event_id: str = "") -> Outcome:
        """A model version is registered in Azure ML and its ``ModelRegistered`` event delivered; the outcome."""
        self.aml.register_model(model, version, tags)
        return self.deliver_registered(model, version, tags, event_id=event_id)

    def deliver_registered(
        self, model: str, version: str | int, tags: Mapping[str, str], *, event_id: str = ""
    ) -> Outcome:
        """Deliver a ``ModelRegistered`` event (again, or for a version AML does not show) through the dispatcher."""
        data = {"modelName": model, "modelVersion": str(version), "modelTags": dict(tags), "modelProperties": {}}
        envelope = Envelope(
            id=event_id or f"evt-{uuid.uuid4().hex[:12]}",
            event_type=MODEL_REGISTERED,
            subject=f"models/{model}:{version}",
            time=self.clock(),
            topic=WORKSPACE_ID,
            schema="EventGrid",
            data=json.loads(json.dumps(data)),
        )
        return process(envelope, self.deps, HANDLERS)

    def advance(self, endpoint: str = "credit") -> list[str]:
        """One pass of the engine over ``endpoint`` (what a follow-up or an operator action runs)."""
        from app.rollout.run.engine import RolloutEngine

        return RolloutEngine(self.deps).advance(WORKSPACE_ID, endpoint, time.monotonic() + PASS_BUDGET_S)

    def tick(self) -> list[str]:
        """The reconciler's timer fires once."""
        from app.rollout.run.reconcile import reconcile

        return reconcile(self.deps)

    def deliver_followups(self) -> int:
        """Hand the follow-up messages that are due to ``follow_up_rollout``, as the queue trigger would."""
        from app.rollout.run.followup import follow_up

        due = self.queue.take_due()
        for message in due:
            follow_up(message.to_json(), 1, self.deps)
        return len(due)

    def wait_for_aml(self) -> None:
        """Move the clock until Azure ML has finished every operation in flight."""
        self.clock.advance(self.aml.seconds_to_idle())

    def settle(self, *, max_ticks: int = 60, every_s: float = 60.0) -> int:
        """Fire the reconciler's timer every ``every_s`` seconds until no rollout is in progress, owes cleanup or waits
        to retry (one awaiting an operator's approval is at rest);
        Azure ML finishes what it started before each tick (as the dev kit's ``run_until_settled`` waits for it),
        and a back-off is waited out. Returns the ticks it took."""
        self.wait_for_aml()
        for ticks in range(max_ticks + 1):
            busy = [r for r in self.rollouts() if (r.active or r.next_attempt_at) and not _awaits_people(r)]
            if not busy:
                return ticks
            retries = [at for at in map(_retry_at, busy) if at and at > self.clock()]
            if retries and len(retries) == len(busy):
                self.clock.now = min(retries)
            self.tick()
            self.clock.advance(every_s)
            self.wait_for_aml()
        raise AssertionError(f"rollouts still in progress after {max_ticks} ticks: {self.rollouts()}")

    # ------------------------------------------------------------------------------------ what a test reads

    def rollouts(self) -> list[Rollout]:
        """Every rollout in the ledger, newest first (the status API's order)."""
        found, token = [], None
        while True:
            page, token = self.ledger.recent.page(limit=500, resume=token)
            found.extend(page)
            if token is None:
                return found

    def rollout(self, deployment: str, endpoint: str = "credit") -> Rollout:
        [found] = self.ledger.recent.find(endpoint, deployment)
        return found

    @property
    def notified(self) -> list[str]:
        """The types of the notifications people received, oldest first."""
        return self.sink.types

    def notified_about(self, deployment: str) -> list[str]:
        """The types of the notifications people received about one deployment's rollout, oldest first."""
        return [n.type for n in self.sink.received if n.subject.lower().endswith(f"/{deployment.lower()}")]


def _awaits_people(rollout: Rollout) -> bool:
    """At rest until an operator decides: awaiting approval, nothing requested, nothing to clean up."""
    requested = rollout.progress.requested in ("", "promote")  # a promote asked before the approval waits for it
    return rollout.state is State.AWAITING_APPROVAL and requested and rollout.cleanup is None


def _retry_at(rollout: Rollout) -> dt.datetime | None:
    """When a rollout backing off (or its cleanup) is due again."""
    return rollout.next_attempt_at or (rollout.cleanup.next_attempt_at if rollout.cleanup else None)
