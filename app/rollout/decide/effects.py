"""What a transition asks of the world (pure data): requests, each answered and fed back, and effects without one.

A ``Decision`` is the next record of a rollout and the effects that go with it, in order. At most one of them is a
``Request`` (a write, a read, the smoke test, the container logs), and it comes last: the effect loop carries it out,
classifies what went wrong (``failures.Failure``), and hands the ``Answer`` to the transition function again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from app.rollout.decide.failures import Failure
from app.rollout.decide.gate import GateResult, MetricWindow
from app.rollout.decide.model import Rollout, State
from app.rollout.decide.smoke import SmokeResult, SmokeSample
from app.rollout.decide.table import Trigger


class Purpose(StrEnum):
    """Why a traffic write is sent."""

    STEP = "step"  # a step of the plan (its share, earlier canaries retired)
    RECOVER = "recover"  # the one re-PUT of a Failed endpoint, traffic unchanged
    ROLLBACK = "rollback"  # back to the split before the rollout


@dataclass(frozen=True)
class CreateEndpoint:
    """PUT the endpoint (the app's tag on it)."""

    writes = True


@dataclass(frozen=True)
class CreateDeployment:
    """PUT the rollout's deployment; ``retry``: this PUT is the one retry of a Canceled deployment."""

    retry: str = ""
    writes = True


@dataclass(frozen=True)
class PutTraffic:
    """PUT the endpoint with this live and mirror split, recorded as an intent first (fenced)."""

    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    purpose: Purpose
    reason: str
    step: int | None = None  # the plan step it sets (``Purpose.STEP``)
    retire: tuple[str, ...] = ()  # earlier canaries and mirrors whose share it takes
    gate: GateResult | None = None  # the passed gate a step's promotion rests on
    writes = True


@dataclass(frozen=True)
class Observe:
    """Read the endpoint and its deployments (the pass does this once; only its failure is fed back)."""

    writes = False


@dataclass(frozen=True)
class ReadMetrics:
    """Read the bake window's metrics from Azure Monitor (two ARM reads)."""

    start: dt.datetime
    writes = False


@dataclass(frozen=True)
class RunSmoke:
    """Send the sample request to the new deployment alone, waiting at most ``wait_s``."""

    sample: SmokeSample
    wait_s: float
    writes = False


@dataclass(frozen=True)
class FetchLogs:
    """Fetch the new deployment's container logs, to keep them on the row before anything deletes it."""

    writes = False


Request = CreateEndpoint | CreateDeployment | PutTraffic | Observe | ReadMetrics | RunSmoke | FetchLogs


@dataclass(frozen=True)
class Answer:
    """What came of a request: a failure, or what it read."""

    request: Request
    failure: Failure | None = None
    window: MetricWindow | None = None
    smoke: SmokeResult | None = None
    logs: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


class Notice(StrEnum):
    """The notifications a rollout sends besides its state's own (``STATE``)."""

    STATE = ""
    SMOKE_PASSED = "AmlEvents.Rollout.SmokeTestPassed"
    SMOKE_FAILED = "AmlEvents.Rollout.SmokeTestFailed"
    STEP_PROMOTED = "AmlEvents.Rollout.StepPromoted"
    GATE_INCONCLUSIVE = "AmlEvents.Rollout.GateInconclusive"
    ROLLBACK_HELD = "AmlEvents.Rollout.RollbackHeld"
    STUCK = "AmlEvents.Rollout.Stuck"
    PAUSED = "AmlEvents.Rollout.Paused"
    RESUMED = "AmlEvents.Rollout.Resumed"
    OPERATOR_ACTION = "AmlEvents.Rollout.OperatorAction"


@dataclass(frozen=True)
class Notify:
    """Tell people: ``notice`` (the state's own when ``STATE``), with facts; ``occurrence`` tells apart notices of
    one kind on one rollout (each is sent once)."""

    notice: Notice
    reason: str
    facts: Mapping[str, object] = field(default_factory=dict)
    occurrence: str = ""
    severity: str = ""


@dataclass(frozen=True)
class FollowUpAfter:
    """Look at the endpoint again when a write of ``kind`` should be done, or ``at`` (a bake's end)."""

    kind: str
    at: dt.datetime | None = None


@dataclass(frozen=True)
class Retire:
    """The earlier canaries and mirrors whose share a write of version ``by`` took: their rollouts are superseded."""

    deployments: tuple[str, ...]
    by: str


@dataclass(frozen=True)
class Reinstate:
    """Retired deployments a rollback gave their share back to: their rollouts are ``canary``/``dark`` again."""

    states: Mapping[str, State]
    by: str


SideEffect = Notify | FollowUpAfter | Retire | Reinstate
Effect = SideEffect | Request


@dataclass(frozen=True)
class Decision:
    """The next record of a rollout and the effects that go with it (a request, if any, comes last)."""

    rollout: Rollout
    effects: tuple[Effect, ...] = ()
    trigger: Trigger = Trigger.WAIT
    gate: GateResult | None = None  # the verdict judged in this decision, for telemetry
    again: bool = False  # decide again at once from this record (it changed what the rules see)
    action: str = ""  # the rules' action it carries out, for telemetry ("" when it took in an answer)

    @property
    def request(self) -> Request | None:
        last = self.effects[-1] if self.effects else None
        return None if last is None or isinstance(last, SideEffect) else last

    @property
    def side_effects(self) -> tuple[SideEffect, ...]:
        return tuple(effect for effect in self.effects if isinstance(effect, SideEffect))
