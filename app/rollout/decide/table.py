"""The rollout's transitions as a table (pure data): every change of a rollout's state is one of these rows.

The transition function (``transition.py``) and the operator controls (``operator.py``) look the target state up
here and refuse any change the table does not hold, so the table is what the code does. docs/rollout.md's state
diagram is generated from it (``python -m tools.rollout_tables``), and a test keeps the two equal.

Adding a state (an approval step, say) is: a ``State`` member, its rows here, and its operator rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from app.rollout.decide.model import State


class Trigger(StrEnum):
    """Why a rollout changes: the name of a row of the table."""

    ACCEPTED = "accepted"  # the row is recorded: tags valid, DEPLOY_MODE apply or hold
    PLANNED = "planned"  # the row is recorded in DEPLOY_MODE=plan
    INVALID = "invalid"  # the row is recorded: its tags break the contract
    WAIT = "wait"  # nothing to do now; the reason says why
    TURN_TAKEN = "turn_taken"  # its first write: it holds the endpoint's write turn from now on
    WRITE_SENT = "write_sent"  # a further write went out
    NOT_ADOPTED = "not_adopted"  # the endpoint is neither the app's nor adopted
    NAME_TAKEN = "name_taken"  # Azure ML says the endpoint's name is taken in the region
    NEWER_VERSION = "newer_version"  # a newer version of the model is live or on its way
    GAVE_UP = "gave_up"  # a failure before any traffic moved that no retry fixes (or retries used up)
    FINISHED = "finished"  # the plan's final traffic is in place (and its bake passed, or was skipped)
    BAKE_STARTED = "bake_started"  # a step's traffic is in place: its bake starts
    EXTENDED = "extended"  # an inconclusive gate: the bake goes on
    HELD = "held"  # waits for an operator: an inconclusive hold, or a rollback held back by drift
    ROLLED_BACK = "rolled_back"  # traffic went back to the split before the rollout
    RETIRED = "retired"  # a newer version of the model took its share
    REINSTATED = "reinstated"  # a rollback gave a retired deployment its share back
    ABORTED = "aborted"  # an operator stopped it where it is
    RETRIED = "retried"  # an operator started it again
    APPROVAL_ASKED = "approval_asked"  # smoke-tested, before any traffic: it waits for an operator's decision
    APPROVED = "approved"  # an operator approved it: it queues for its turn, then takes its first step
    REFUSED = "refused"  # an operator rejected it
    EXPIRED = "expired"  # APPROVAL_TIMEOUT passed with no decision


@dataclass(frozen=True)
class Row:
    """``source`` --``trigger``--> ``target``; ``source`` None: the row is created."""

    source: State | None
    trigger: Trigger
    target: State
    label: str


class ImpossibleTransition(ValueError):
    """A change the table does not hold: a bug in the code that asked for it."""


S = State
ACTIVE = (S.PENDING, S.DEPLOYING, S.BAKING)
ENDED_WITH_TRAFFIC = (S.LIVE, S.CANARY, S.DARK, S.ABORTED)


def _rows(sources: Iterable[State | None], trigger: Trigger, target: State, label: str) -> tuple[Row, ...]:
    return tuple(Row(source, trigger, target, label) for source in sources)


T = Trigger
ROWS: tuple[Row, ...] = (
    *_rows([None], T.INVALID, S.REJECTED, "tags break the contract"),
    *_rows([None], T.PLANNED, S.PLANNED, "DEPLOY_MODE=plan"),
    *_rows([None], T.ACCEPTED, S.PENDING, "tags valid"),
    Row(S.PENDING, T.WAIT, S.PENDING, "waits: its turn, AML busy, a back-off, hold mode"),
    Row(S.DEPLOYING, T.WAIT, S.DEPLOYING, "waits: AML busy, a back-off, hold mode"),
    Row(S.BAKING, T.WAIT, S.BAKING, "bakes; waits while paused"),
    *_rows([S.PENDING], T.TURN_TAKEN, S.DEPLOYING, "first write sent (takes the write turn)"),
    Row(S.DEPLOYING, T.WRITE_SENT, S.DEPLOYING, "next write sent"),
    *_rows([S.BAKING], T.WRITE_SENT, S.BAKING, "bake passed: next step's traffic sent"),
    *_rows([S.PENDING], T.NOT_ADOPTED, S.REJECTED, "endpoint not the app's, not adopted"),
    *_rows([S.DEPLOYING], T.NAME_TAKEN, S.REJECTED, "endpoint name taken in the region"),
    *_rows(
        [S.PENDING, S.DEPLOYING, S.AWAITING_APPROVAL],
        T.NEWER_VERSION,
        S.SUPERSEDED,
        "a newer version is live or on its way",
    ),
    *_rows([S.PENDING, S.DEPLOYING, S.AWAITING_APPROVAL], T.GAVE_UP, S.FAILED, "failed before any traffic moved"),
    *_rows([S.PENDING, S.DEPLOYING], T.APPROVAL_ASKED, S.AWAITING_APPROVAL, "smoke test passed; approval required"),
    Row(S.AWAITING_APPROVAL, T.WAIT, S.AWAITING_APPROVAL, "waits for approve or reject"),
    Row(S.AWAITING_APPROVAL, T.APPROVED, S.PENDING, "approved: queues for its turn, then its first step"),
    Row(S.AWAITING_APPROVAL, T.REFUSED, S.REJECTED, "rejected by an operator"),
    Row(S.AWAITING_APPROVAL, T.EXPIRED, S.EXPIRED, "APPROVAL_TIMEOUT passed undecided"),
    *_rows([S.PENDING], T.FINISHED, S.LIVE, "already in place"),
    *_rows([S.PENDING], T.FINISHED, S.CANARY, "already in place"),
    *_rows([S.PENDING], T.FINISHED, S.DARK, "already in place"),
    *_rows([S.DEPLOYING], T.FINISHED, S.LIVE, "traffic 100%, no bake"),
    *_rows([S.DEPLOYING], T.FINISHED, S.CANARY, "traffic N%, no bake"),
    *_rows([S.DEPLOYING], T.FINISHED, S.DARK, "no live traffic: nothing to bake"),
    *_rows([S.BAKING], T.FINISHED, S.LIVE, "final bake passed, or promoted"),
    *_rows([S.BAKING], T.FINISHED, S.CANARY, "final bake passed, or promoted"),
    *_rows([S.PENDING, S.DEPLOYING], T.BAKE_STARTED, S.BAKING, "a step's traffic in place"),
    *_rows([S.BAKING], T.BAKE_STARTED, S.BAKING, "next step's traffic in place"),
    *_rows([S.BAKING], T.EXTENDED, S.BAKING, "gate inconclusive: bake extended"),
    *_rows([S.BAKING], T.HELD, S.BAKING, "held for an operator"),
    *_rows(ACTIVE, T.ROLLED_BACK, S.ROLLED_BACK, "gate failed, a failure after traffic moved, or rollback"),
    *_rows(ENDED_WITH_TRAFFIC, T.ROLLED_BACK, S.ROLLED_BACK, "operator rollback"),
    *_rows([S.CANARY, S.DARK], T.RETIRED, S.SUPERSEDED, "retired by a newer version"),
    *_rows([S.SUPERSEDED], T.REINSTATED, S.CANARY, "a rollback gave its share back"),
    *_rows([S.SUPERSEDED], T.REINSTATED, S.DARK, "a rollback gave its mirror back"),
    *_rows([*ACTIVE, S.AWAITING_APPROVAL], T.ABORTED, S.ABORTED, "operator abort"),
    *_rows([S.FAILED, S.ROLLED_BACK, S.ABORTED, S.EXPIRED], T.RETRIED, S.PENDING, "operator retry"),
)

_TARGETS: Mapping[tuple[State | None, Trigger], tuple[State, ...]] = {
    key: tuple(row.target for row in ROWS if (row.source, row.trigger) == key)
    for key in dict.fromkeys((row.source, row.trigger) for row in ROWS)
}


def target(source: State | None, trigger: Trigger, wanted: State | None = None) -> State:
    """The state ``trigger`` leads to from ``source``; ``wanted`` chooses where the table allows several.

    Raises ``ImpossibleTransition`` for a change the table does not hold.
    """
    targets = _TARGETS.get((source, trigger), ())
    if wanted is not None and wanted in targets:
        return wanted
    if wanted is None and len(targets) == 1:
        return targets[0]
    allowed = ", ".join(t.value for t in targets) or "nothing"
    origin = source.value if source else "a new row"
    raise ImpossibleTransition(f"{trigger.value} from {origin} leads to {allowed}, not {wanted or 'one of them'}")


def allows(source: State | None, trigger: Trigger) -> bool:
    """Does the table hold a row for ``trigger`` from ``source``?"""
    return (source, trigger) in _TARGETS
