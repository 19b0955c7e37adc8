"""Operator actions (pure): which action applies in which state, as a table, and what it changes.

``OPERATOR_RULES`` is the table docs/rollout.md shows (generated from it by ``python -m tools.rollout_tables``):
one rule per action and state. A few flags refine a rule (already paused, a promote or rollback under way, the
replaced deployment gone); ``apply_action`` checks them first. A state change (abort, retry) is a row of the
transition table (``table.py``). The same action twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from app.rollout.decide.effects import Decision, Notice, Notify
from app.rollout.decide.model import Progress, Rollout, State
from app.rollout.decide.moves import changed
from app.rollout.decide.table import ACTIVE, ENDED_WITH_TRAFFIC, Trigger, target

#: Operator actions kept on a rollout's row (the oldest dropped first).
MAX_HISTORY = 50


class OperatorAction(StrEnum):
    """What an operator may ask of a rollout (``POST /api/rollouts/{endpoint}/{deployment}/{action}``)."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ABORT = "abort"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"


ACTIONS = tuple(action.value for action in OperatorAction)
#: Every rollout state an operator action can meet.
ALL_STATES: tuple[str, ...] = tuple(state.value for state in State)


class Effect(StrEnum):
    NONE = "none"  # already so: nothing changes (the idempotent answer)
    REQUEST_PROMOTE = "request_promote"  # recorded; carried out by the next move (one traffic write)
    REQUEST_ROLLBACK = "request_rollback"  # recorded; carried out by the next move (one traffic write)
    STOP = "stop"  # no further writes; traffic stays as it is
    RESTART = "restart"  # a new attempt from the plan: state pending, attempts and extensions reset
    PAUSE = "pause"
    RESUME = "resume"  # the current step's bake starts again from now (bakes do not advance while paused)


@dataclass(frozen=True)
class Rule:
    """What an action does in one state: ``effect`` (None: refused with 409), and the words of the docs' table."""

    effect: Effect | None
    cell: str
    trigger: Trigger | None = None  # the transition-table row it records, for a state change


REFUSED = Rule(None, "409")


def _rules(*groups: tuple[tuple[State, ...], Rule]) -> Mapping[State, Rule]:
    table = dict.fromkeys(State, REFUSED)
    for states, rule in groups:
        table.update(dict.fromkeys(states, rule))
    return table


DONE = (State.LIVE, State.CANARY, State.DARK)
RESTARTABLE = (State.FAILED, State.ROLLED_BACK, State.ABORTED, State.EXPIRED)
#: The table: for each action, the rule in each state.
OPERATOR_RULES: Mapping[OperatorAction, Mapping[State, Rule]] = {
    OperatorAction.PROMOTE: _rules(
        (ACTIVE, Rule(Effect.REQUEST_PROMOTE, "final step now, bakes skipped, ends a hold (clears a pause)")),
        (DONE, Rule(Effect.NONE, "202, no change")),
    ),
    OperatorAction.ROLLBACK: _rules(
        (ACTIVE, Rule(Effect.REQUEST_ROLLBACK, "back to the split before the rollout (clears a pause)")),
        (
            ENDED_WITH_TRAFFIC,
            Rule(
                Effect.REQUEST_ROLLBACK,
                "the same, unless the split it replaced is gone or a newer rollout changed the endpoint since (409)",
            ),
        ),
        ((State.ROLLED_BACK,), Rule(Effect.NONE, "202, no change")),
        ((State.FAILED,), Rule(None, "409: it moved no traffic")),
    ),
    OperatorAction.ABORT: _rules(
        (ACTIVE, Rule(Effect.STOP, "→ `aborted`: no further writes, traffic as it is", Trigger.ABORTED)),
        ((State.AWAITING_APPROVAL,), Rule(Effect.STOP, "→ `aborted`: no traffic, no decision", Trigger.ABORTED)),
        ((State.ABORTED,), Rule(Effect.NONE, "202, no change")),
    ),
    OperatorAction.RETRY: _rules(
        (ACTIVE, Rule(Effect.NONE, "202, no change")),
        (RESTARTABLE, Rule(Effect.RESTART, "→ `pending`", Trigger.RETRIED)),
    ),
    OperatorAction.PAUSE: _rules(
        (
            ACTIVE,
            Rule(
                Effect.PAUSE,
                "paused flag set; 202, no change if already paused; 409 while a promote or rollback is under way",
            ),
        ),
    ),
    OperatorAction.RESUME: _rules(
        (ACTIVE, Rule(Effect.RESUME, "flag cleared, the step's bake starts again; 202, no change if not paused")),
    ),
}

_NOTES = {
    Effect.REQUEST_PROMOTE: "promoting: remaining bakes skipped",
    Effect.REQUEST_ROLLBACK: "rolling back to the split before this rollout",
    Effect.STOP: "aborted: no further writes, traffic stays as it is",
    Effect.RESTART: "retrying from the plan",
    Effect.PAUSE: "paused: bakes do not advance",
    Effect.RESUME: "resumed: the current step's bake starts again",
}


@dataclass(frozen=True)
class Control:
    """What an operator action depends on: the rollout's state, its flags, and one observation."""

    state: str  # a ``State`` value
    paused: bool = False
    requested: str | None = None  # promote / rollback recorded and not yet carried out
    #: Why an ended rollout cannot be rolled back ("" when it can): the split it replaced is gone, a newer rollout
    #: changed the endpoint since (``step.rollback_blocker``).
    rollback_blocked: str = ""


@dataclass(frozen=True)
class Applied:
    """202: record ``control`` (unchanged when ``effect`` is NONE) and carry out ``effect``."""

    effect: Effect
    control: Control
    note: str


@dataclass(frozen=True)
class Refused:
    """409: the action does not apply to the rollout's current state."""

    reason: str
    status: int = 409


def apply_action(action: str, control: Control) -> Applied | Refused:
    """Operator ``action`` on a rollout in ``control``: the flags first, then ``OPERATOR_RULES``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    try:
        state = State(control.state)
    except ValueError:
        raise ValueError(f"unknown state {control.state!r}") from None
    verb = OperatorAction(action)
    flagged = _flags(verb, state, control)
    if flagged is not None:
        return flagged
    rule = OPERATOR_RULES[verb][state]
    if rule.effect is None:
        return Refused(f"rollout is {state}: {verb} does not apply ({rule.cell})")
    if rule.effect is Effect.NONE:
        return Applied(Effect.NONE, control, f"nothing to do: rollout is {state}")
    return Applied(rule.effect, _changed(control, state, rule), _NOTES[rule.effect])


def _flags(verb: OperatorAction, state: State, control: Control) -> Applied | Refused | None:
    """The refinements of the table by the rollout's flags; None when the table's rule applies as it is."""
    active = state in ACTIVE
    if verb is OperatorAction.PROMOTE and control.requested == "rollback":
        return Refused("a rollback is under way; it cannot be promoted")
    if verb is OperatorAction.PROMOTE and active and control.requested == "promote":
        return Applied(Effect.NONE, control, "already promoting")
    if verb is OperatorAction.ROLLBACK and control.requested == "rollback" and state is not State.ROLLED_BACK:
        return Applied(Effect.NONE, control, "already rolling back")
    if verb is OperatorAction.ROLLBACK and state in ENDED_WITH_TRAFFIC and control.rollback_blocked:
        return Refused(f"rollout is {state} and cannot be rolled back: {control.rollback_blocked}")
    if verb is OperatorAction.PAUSE and active and control.paused:
        return Applied(Effect.NONE, control, "already paused")
    if verb is OperatorAction.PAUSE and active and control.requested:
        return Refused(f"a {control.requested} is under way; it cannot be paused")
    if verb is OperatorAction.RESUME and active and not control.paused:
        return Applied(Effect.NONE, control, "not paused")
    return None


def _changed(control: Control, state: State, rule: Rule) -> Control:
    """The control as the rule leaves it."""
    effect = rule.effect
    if effect is Effect.REQUEST_PROMOTE:
        return replace(control, requested="promote", paused=False)
    if effect is Effect.REQUEST_ROLLBACK:
        return replace(control, requested="rollback", paused=False if state in ACTIVE else control.paused)
    if effect is Effect.PAUSE:
        return replace(control, paused=True)
    if effect is Effect.RESUME:
        return replace(control, paused=False)
    assert rule.trigger is not None, f"{effect} changes the state: its rule names the table's row"
    return replace(control, state=target(state, rule.trigger).value, paused=False, requested=None)


def operated(rollout: Rollout, applied: Applied, entry: Mapping[str, object], why: str, now: dt.datetime) -> Decision:
    """The record of an operator action that applies: its history entry, its flags, its change of state, told."""
    effect, control = applied.effect, applied.control
    progress = replace(
        rollout.progress,
        paused=control.paused,
        requested=control.requested or "",
        history=(*rollout.progress.history, dict(entry))[-MAX_HISTORY:],
    )
    if effect is Effect.RESUME and progress.bake_started_at is not None:
        progress = replace(progress, bake_started_at=now, extensions=0, held=False)  # no bake advanced while paused
    facts = {"action": dict(entry)}
    if effect is Effect.STOP:
        record, notes = changed(replace(rollout, progress=progress), Trigger.ABORTED, why)
        return Decision(record, notes, Trigger.ABORTED)
    if effect is Effect.RESTART:
        restarted = replace(
            rollout,
            progress=Progress(history=progress.history),
            attempts=0,
            next_attempt_at=None,
            last_error="",
            error_source="",
            denied_since=None,
            turn_taken_at=None,
            retries=(),
            logs="",
        )
        record, notes = changed(restarted, Trigger.RETRIED, f"retry: {why}", notice=Notice.OPERATOR_ACTION, facts=facts)
        return Decision(record, notes, Trigger.RETRIED)
    if effect is Effect.NONE:
        return Decision(replace(rollout, progress=progress))
    notice = {Effect.PAUSE: Notice.PAUSED, Effect.RESUME: Notice.RESUMED}.get(effect, Notice.OPERATOR_ACTION)
    note = Notify(notice, why, facts, occurrence=f"{entry.get('action')}@{entry.get('at')}")
    return Decision(replace(rollout, progress=progress, reason=why), (note,))
