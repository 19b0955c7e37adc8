"""What a tick owes each active endpoint, from its ledger rows alone: a gate or an operator's request (decides
traffic), an operation in flight, or only a look (idle polling). Pure: the tick orders its passes by it, reads the
gates that fall due in one batch per region, and is the first to leave idle polling out when reads run short."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.rollout.decide.model import Rollout, State
from app.rollout.decide.stepping import bake_deadline


class Priority(enum.IntEnum):
    """Lower goes first."""

    DECIDES = 0  # a bake ended (its gate decides the next split) or an operator asked for something
    IN_FLIGHT = 1  # its turn to write, an operation overdue, cleanup owed, or rows the triage cannot see
    IDLE = 2  # mid-bake, paused, backing off, or an operation whose follow-up is still to come: a pass only looks


@dataclass(frozen=True)
class GateDue:
    """A rollout whose bake ended: its gate reads the endpoint's metrics from ``start`` (the bake's start)."""

    endpoint_id: str
    start: dt.datetime
    due: dt.datetime


@dataclass(frozen=True)
class Work:
    """One active endpoint in this tick: where it is, what it owes, the gates due on it and the bakes that end later
    (whose gates may fall due while the tick runs)."""

    workspace_id: str
    endpoint: str
    priority: Priority
    gates: tuple[GateDue, ...] = ()
    upcoming: tuple[GateDue, ...] = ()
    #: Every rollout still to move waits for the follow-up of its last write: that message advances the endpoint, so
    #: the tick need not look (once the follow-up is overdue, the rollout is in flight again and the tick looks).
    awaits_followup: bool = False


def triage(
    workspace_id: str,
    endpoint: str,
    rollouts: Iterable[Rollout],
    now: dt.datetime,
    followups: Mapping[str, float] | None = None,
) -> Work:
    """Classify the endpoint by the most urgent of its active rollouts (``RolloutLedger.endpoint_rollouts``).

    ``followups`` are the follow-up delays by kind of write (``FOLLOWUP_DELAYS``; None: follow-ups are off): a
    rollout whose last write's follow-up is still to come is only looked at; the follow-up advances it.
    No active rollout row (cleanup carried elsewhere, a traffic write in doubt on the endpoint's own row, an index
    entry about to go) is ``IN_FLIGHT``: the engine's pass decides, as it always did.
    """
    gates: list[GateDue] = []
    upcoming: list[GateDue] = []
    best = Priority.IDLE
    seen = False
    waiting: list[bool] = []  # per rollout still to move: does it wait for its follow-up?
    for rollout in rollouts:
        seen = True
        best = min(best, _priority(rollout, now, followups))
        gate = _gate(workspace_id, endpoint, rollout)
        if gate is not None:
            (gates if gate.due <= now else upcoming).append(gate)
        if not (rollout.state.terminal and rollout.cleanup is None and not rollout.progress.requested):
            waiting.append(_awaits_followup(rollout, now, followups))
    priority = best if seen else Priority.IN_FLIGHT
    return Work(workspace_id, endpoint, priority, tuple(gates), tuple(upcoming), bool(waiting) and all(waiting))


def _awaits_followup(rollout: Rollout, now: dt.datetime, followups: Mapping[str, float] | None) -> bool:
    """Does the rollout wait on an Azure ML operation whose follow-up is still to come (and on nothing else)?"""
    if rollout.progress.requested or rollout.progress.paused:
        return False
    if rollout.next_attempt_at is not None and now < rollout.next_attempt_at:
        return False  # backing off: its own wait, not a follow-up's
    waits_on_write = rollout.state is State.DEPLOYING or (
        rollout.state is State.BAKING and rollout.progress.bake_started_at is None
    )
    return waits_on_write and _follow_up_coming(rollout, now, followups)


def _priority(rollout: Rollout, now: dt.datetime, followups: Mapping[str, float] | None) -> Priority:
    progress = rollout.progress
    if progress.requested:
        return Priority.DECIDES
    if rollout.state.terminal:
        return Priority.IN_FLIGHT if rollout.cleanup is not None else Priority.IDLE
    if rollout.next_attempt_at is not None and now < rollout.next_attempt_at:
        return Priority.IDLE  # backing off: the engine's pass would skip it
    if rollout.state is State.AWAITING_APPROVAL:  # a decision is a request (above); its expiry can wait a tick
        return Priority.IDLE
    if rollout.state is State.BAKING:
        if progress.paused:
            return Priority.IDLE
        if progress.bake_started_at is None:
            # Its step's traffic write is not seen in place yet.
            return Priority.IDLE if _follow_up_coming(rollout, now, followups) else Priority.IN_FLIGHT
        ends = _bake_end(rollout)
        return Priority.DECIDES if ends is None or ends <= now else Priority.IDLE
    if rollout.state is State.DEPLOYING and _follow_up_coming(rollout, now, followups):
        return Priority.IDLE
    return Priority.IN_FLIGHT


#: The kind of follow-up the engine schedules after a write, by how the ledger records the write (its last action):
#: ``PUT deployment ...``, ``PUT endpoint {name} traffic ...`` (a step or a rollback) and ``PUT endpoint {name}``.
def _write_kind(action: str) -> str:
    if action.startswith("PUT deployment"):
        return "deployment"
    if action.startswith("PUT endpoint"):
        return "traffic" if len(action.split()) > 3 else "endpoint"
    return ""


def _follow_up_coming(rollout: Rollout, now: dt.datetime, followups: Mapping[str, float] | None) -> bool:
    """Was the rollout's last write recorded so recently that its follow-up (plus one recheck) is still to come?"""
    if followups is None or not rollout.actions:
        return False
    kind = _write_kind(rollout.actions[-1])
    if kind not in followups:
        return False
    due = rollout.updated_at + dt.timedelta(seconds=followups[kind] + followups.get("recheck", 0.0))
    return now < due


def gate_due(workspace_id: str, endpoint: str, rollout: Rollout, now: dt.datetime) -> GateDue | None:
    """The gate ``rollout`` owes now (a bake that ended, not paused), else None."""
    gate = _gate(workspace_id, endpoint, rollout)
    return gate if gate is not None and gate.due <= now else None


def leaves_gate_to_tick(workspace_id: str, endpoint: str, rollouts: Iterable[Rollout], now: dt.datetime) -> bool:
    """Should a pass outside the tick (a follow-up) leave this endpoint to the next tick, whose batch reads the gates
    of a busy region together? Yes when one of its rollouts owes a gate now and none carries an operator's request
    (a request is not kept waiting for a batch)."""
    rollouts = list(rollouts)
    if any(r.progress.requested for r in rollouts):
        return False
    return any(gate_due(workspace_id, endpoint, r, now) is not None for r in rollouts)


def _gate(workspace_id: str, endpoint: str, rollout: Rollout) -> GateDue | None:
    """The gate at the end of ``rollout``'s current bake (due or not), if it is baking and not paused."""
    if rollout.state is not State.BAKING or rollout.progress.paused or rollout.progress.bake_started_at is None:
        return None
    ends = _bake_end(rollout)
    if ends is None or rollout.plan.bake_seconds <= 0:
        return None  # no bake, no gate
    return GateDue(f"{workspace_id}/onlineEndpoints/{endpoint}", rollout.progress.bake_started_at, ends)


def _bake_end(rollout: Rollout) -> dt.datetime | None:
    """When the current step's bake ends (None: no bake started); a plan without a bake ends it at once."""
    started = rollout.progress.bake_started_at
    if started is None:
        return None
    bake = dt.timedelta(seconds=max(0, rollout.plan.bake_seconds))
    return bake_deadline(started, bake, rollout.progress.extensions)


def ordered(works: Iterable[Work]) -> list[Work]:
    """Passes in the order a tick spends its budget: what decides traffic, then operations in flight, then looks."""
    return sorted(works, key=lambda w: (w.priority, min((g.due for g in w.gates), default=_LATEST), w.endpoint))


_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
