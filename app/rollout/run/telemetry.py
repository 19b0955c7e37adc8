"""The rollout's telemetry: a span per rollout step, and its metrics (outcomes, time to live, gates, waiting)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.platform.telemetry import meter, tracer
from app.rollout.decide.model import Rollout, State

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation

_waiting_lock = threading.Lock()
_waiting: dict[str, int] = {}


@contextlib.contextmanager
def step_span(rollout: Rollout, siblings: Iterable[Rollout]) -> Iterator[Callable[[Rollout, str, str], None]]:
    """One span per rollout step. Yields ``done(updated, action, reason)``: the state after the step, the rules'
    action it carried out and why.

    ``siblings`` are the endpoint's other rollouts: with the updated one they give the endpoint's waiting count.
    """
    plan = rollout.plan
    with tracer().start_as_current_span(
        "rollout_step",
        attributes={
            "aml.workspace": plan.workspace_id,
            "aml.endpoint": plan.endpoint,
            "aml.deployment": plan.deployment,
            "aml.model": f"{plan.model_name}:{plan.model_version}",
            "aml.rollout.state_before": rollout.state.value,
        },
    ) as span:

        def done(updated: Rollout, action: str, reason: str) -> None:
            span.set_attribute("aml.rollout.action", action or "Nothing")
            span.set_attribute("aml.rollout.action_reason", reason)
            span.set_attribute("aml.rollout.state_after", updated.state.value)
            span.set_attribute("aml.rollout.reason", updated.reason[:1000])
            others = [r for r in siblings if r.plan.deployment != updated.plan.deployment]
            _set_waiting(plan.endpoint, sum(1 for r in (updated, *others) if r.state is State.PENDING))

        yield done


@dataclass(frozen=True)
class _Instruments:
    rollouts: Counter
    time_to_live: Histogram
    gate_evaluations: Counter


@functools.cache
def _instruments() -> _Instruments:
    app_meter = meter()
    app_meter.create_observable_gauge(
        "rollouts.waiting",
        callbacks=[_observe_waiting],
        unit="{rollout}",
        description="Rollouts pending on an endpoint, waiting for its write turn, by endpoint",
    )
    return _Instruments(
        rollouts=app_meter.create_counter(
            "rollouts", unit="{rollout}", description="Rollouts that reached a final state, by outcome and endpoint"
        ),
        time_to_live=app_meter.create_histogram(
            "rollouts.time_to_live", unit="s", description="Seconds from a rollout's ledger row to live traffic"
        ),
        gate_evaluations=app_meter.create_counter(
            "rollouts.gate_evaluations", unit="{evaluation}", description="Rollout gate evaluations by outcome"
        ),
    )


def rollout_transitioned(rollout: Rollout, now: dt.datetime) -> None:
    """Count a rollout reaching a final state; a rollout going live also records its time to live."""
    if not rollout.state.terminal:
        return
    instruments = _instruments()
    instruments.rollouts.add(1, {"outcome": rollout.state.value, "endpoint": rollout.plan.endpoint})
    if rollout.state is State.LIVE:
        seconds = max((now - rollout.created_at).total_seconds(), 0.0)
        instruments.time_to_live.record(seconds, {"endpoint": rollout.plan.endpoint})


def gate_evaluated(gate: str, outcome: str, endpoint: str) -> None:
    """Count one gate evaluation (outcome: passed, failed, inconclusive, error). For the rollout gates."""
    _instruments().gate_evaluations.add(1, {"gate": gate, "outcome": outcome, "endpoint": endpoint})


def _set_waiting(endpoint: str, count: int) -> None:
    _instruments()  # the gauge exists once anything was measured
    with _waiting_lock:
        _waiting[endpoint] = count


def _observe_waiting(options: CallbackOptions) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    with _waiting_lock:
        return [Observation(count, {"endpoint": endpoint}) for endpoint, count in sorted(_waiting.items())]
