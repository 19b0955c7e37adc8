"""The world the model-based test explores: the fakes of ``tests/fakes`` wired as production wires the app, with what
the invariants need to see recorded as it happens (every rollout row written, every write and who held the lease)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.platform.errors import is_retryable
from app.platform.settings import DEFAULT_DELAYS
from app.platform.tables import Row
from app.rollout.decide.model import Progress, Rollout, State
from app.rollout.run.engine import RolloutEngine
from tests.fakes import WORKSPACE_ID, FakeWorld
from tests.fakes.aml_faults import ArmCall
from tests.fakes.aml_state import Endpoint

ENDPOINT = "credit"
#: An endpoint someone else made (no ``managed-by`` tag, not adopted): the app must never write to it.
FOREIGN = "shared"
MODELS = ("credit", "score")
#: The settings the model runs the app with: gates that judge at once, few attempts, one endpoint at a time.
SETTINGS: dict[str, Any] = {
    "gate_metric_lag": dt.timedelta(0),
    "gate_min_requests": 100,
    "gate_max_extensions": 1,
    "rollout_max_attempts": 4,
    "permission_retry_minutes": 10,
    "reconcile_concurrency": 1,
    "followup_delays": tuple(DEFAULT_DELAYS.items()),
}


@dataclass
class Transition:
    """A rollout row written in a new state (``before`` None: the row was created)."""

    endpoint: str
    deployment: str
    before: State | None
    after: State
    row: dict[str, Any]
    split: dict[str, int] | None  # the endpoint's last accepted split when it was written
    setter: str = ""  # who set that split: "app", "late" (a write landing late), "hand"


@dataclass
class Harness:
    """One example's world, and its record of what happened."""

    world: FakeWorld
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODELS, 0))
    tags: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    states: dict[tuple[str, str], State] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    lease_breaches: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    @classmethod
    def build(cls, **settings: Any) -> Harness:
        world = FakeWorld(**{**SETTINGS, **settings})
        world.aml.endpoints[FOREIGN] = Endpoint(FOREIGN, "Succeeded")
        harness = cls(world)
        world.store.watchers.append(harness._row_written)
        world.aml.write_guard = harness._guard
        return harness

    # ------------------------------------------------------------------------------------ what the app does

    def register(self, model: str, tags: dict[str, str], *, deliver: bool = True) -> int:
        version = self.versions[model] = self.versions[model] + 1
        self.tags[(model, version)] = tags
        self.world.aml.register_model(model, version, tags)
        if deliver:
            self.deliver(model, version)
        return version

    def deliver(self, model: str, version: int) -> None:
        """Deliver the version's ModelRegistered event; a failure a redelivery fixes is left to a later delivery."""
        try:
            self.world.deliver_registered(model, version, self.tags[(model, version)])
        except Exception as err:
            if not is_retryable(err):
                raise

    def tick(self) -> None:
        self.world.tick()

    def second_instance(self) -> None:
        """Another instance takes the endpoint once this one's lease runs out, and does a whole pass."""
        record = self.world.ledger.leases.read(WORKSPACE_ID, ENDPOINT)
        if record.until is not None and record.owner:
            self.world.clock.now = max(self.world.clock.now, record.until + dt.timedelta(seconds=1))
        RolloutEngine(self.world.deps).advance(WORKSPACE_ID, ENDPOINT, time.monotonic() + 30.0)

    # ------------------------------------------------------------------------------------ what the test reads

    def rollouts(self) -> list[Rollout]:
        return self.world.rollouts()

    def idle_deployments(self) -> list[str]:
        """The endpoint's deployments that succeeded, when the endpoint is idle (a hand change would get 409)."""
        aml = self.world.aml
        if aml.busy(ENDPOINT) or aml.state(ENDPOINT) != "Succeeded":
            return []
        return sorted(name for name, state in aml.deployments(ENDPOINT).items() if state == "Succeeded")

    def app_splits(self) -> list[tuple[int, dict[str, int], dict[str, int]]]:
        """The splits the app's own answered writes set on the endpoint, with their place in the traffic log."""
        aml = self.world.aml
        return [
            (index, {k: v for k, v in live.items() if v}, {k: v for k, v in mirror.items() if v})
            for index, ((_, name, live, mirror), by) in enumerate(zip(aml.traffic_log, aml.traffic_by, strict=True))
            if name == ENDPOINT and by == "app"
        ]

    def last_setter(self) -> str:
        """Who set the endpoint's split now in force: "app", "late" (a write landing late), "hand", or ""."""
        aml = self.world.aml
        found = [by for (_, name, _, _), by in zip(aml.traffic_log, aml.traffic_by, strict=True) if name == ENDPOINT]
        return found[-1] if found else ""

    # ------------------------------------------------------------------------------------ the record

    def _row_written(self, row: Row) -> None:
        data = row.data
        if "Plan" not in data or data.get("Deployment") != row.key or not data.get("State"):
            return
        after, key = State(str(data["State"])), (str(data.get("Endpoint")), row.key)
        before = self.states.get(key)
        self.states[key] = after
        if before is after:
            return
        aml = self.world.aml
        setters = [
            (split, by)
            for (_, name, split, _), by in zip(aml.traffic_log, aml.traffic_by, strict=True)
            if name == key[0]
        ]
        split, by = setters[-1] if setters else (None, "")
        self.transitions.append(Transition(key[0], row.key, before, after, dict(data), split, by))

    def _guard(self, call: ArmCall) -> None:
        """At most one writer per endpoint: every write goes out under a lease that is held and not expired."""
        if call.endpoint.lower() != ENDPOINT:
            return
        record = self.world.ledger.leases.read(WORKSPACE_ID, ENDPOINT)
        now = self.world.clock()
        if not record.owner or record.until is None or record.until <= now:
            self.lease_breaches.append(
                f"{call.op} at {now.isoformat()} with lease {record.owner!r} until {record.until}"
            )


def progress_of(row: dict[str, Any]) -> Progress:
    return Progress.from_json(str(row.get("Progress") or "{}"))


def actions_of(row: dict[str, Any]) -> list[str]:
    return [str(action) for action in json.loads(str(row.get("Actions") or "[]"))]
