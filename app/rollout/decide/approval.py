"""Approval of a rollout (pure): whether an operator's ``approve`` or ``reject`` applies, and when a request expires.

A rollout that requires approval (``REQUIRE_APPROVAL``, or the tag ``approval=required``: ``requires_approval``)
waits in ``awaiting_approval`` after its smoke test passed and before any live traffic. An operator's decision is
recorded on the rollout as a request (``progress.requested``), with who, when and why in its history, and carried out
by the engine: ``approve`` lets the rollout take its first traffic step; ``reject`` ends it ``rejected``.

The same decision twice changes nothing the second time (also once the engine carried it out); the other decision
after one was made is refused (409), whoever asks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: The rollout state that waits for a decision (``State.AWAITING_APPROVAL``'s value).
AWAITING_APPROVAL = "awaiting_approval"


class ApprovalAction(StrEnum):
    """The two operator actions on a rollout awaiting approval (``POST .../{deployment}/{action}``)."""

    APPROVE = "approve"
    REJECT = "reject"


APPROVAL_ACTIONS = tuple(action.value for action in ApprovalAction)
_PAST = {ApprovalAction.APPROVE: "approved", ApprovalAction.REJECT: "rejected"}


@dataclass(frozen=True)
class Decided:
    """202: record ``requested`` (the engine carries it out), or nothing when ``changed`` is False."""

    changed: bool
    requested: str
    note: str


@dataclass(frozen=True)
class NotDecidable:
    """409: the decision does not apply."""

    reason: str


def decide_approval(
    action: str, state: str, requested: str, history: Sequence[Mapping[str, Any]]
) -> Decided | NotDecidable:
    """Operator ``action`` (approve or reject) on a rollout in ``state`` with ``requested`` and its ``history``."""
    wanted = ApprovalAction(action)
    earlier = earlier_decision(requested, history)
    if earlier is wanted:
        return Decided(False, requested, f"already {_PAST[wanted]}")
    if earlier is not None:
        return NotDecidable(f"the rollout was already {_PAST[earlier]}; a decision is not taken back")
    if state != AWAITING_APPROVAL:
        return NotDecidable(f"rollout is {state}; only a rollout awaiting approval can be {_PAST[wanted]}")
    if requested and requested != "promote":  # a promote asked before the approval waits for it, and follows it
        return NotDecidable(f"a {requested} is under way; decide once it is done")
    return Decided(True, wanted.value, _PAST[wanted])


def earlier_decision(requested: str, history: Sequence[Mapping[str, Any]]) -> ApprovalAction | None:
    """The decision already taken on this rollout's current attempt: requested, or recorded since its last retry."""
    if requested in APPROVAL_ACTIONS:
        return ApprovalAction(requested)
    for entry in reversed(history):
        if entry.get("action") == "retry":
            return None
        if entry.get("action") in APPROVAL_ACTIONS and entry.get("effect") != "none":
            return ApprovalAction(str(entry["action"]))
    return None


def approval_expires_at(requested_at: dt.datetime, timeout: dt.timedelta) -> dt.datetime:
    """When an unanswered request ends the rollout ``expired`` (``APPROVAL_TIMEOUT`` after it was asked)."""
    return requested_at + timeout
