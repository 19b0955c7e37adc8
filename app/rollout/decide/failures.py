"""What can go wrong with an effect, as a small enum the transition function consumes (pure data).

The effect loop classifies every error once (``app/rollout/run/failing.py``); what each kind means for a rollout
and its traffic is decided in one place, ``failure_policy.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=10)
#: Waiting for a role assignment to apply: come back often, it usually takes a few minutes.
PERMISSION_BACKOFF_CAP = dt.timedelta(minutes=2)


class ErrorKind(StrEnum):
    BUSY = "busy"  # Azure ML answered 409: one operation at a time per endpoint; waited out, never counted
    NO_ANSWER = "no_answer"  # a write got no answer in time: it may have landed; observed again, counted
    TRANSIENT = "transient"  # 5xx, 408, 429, a network error: backed off and counted
    DENIED = "denied"  # 401/403 or no token: a role assignment may still be applying; waited for, within a budget
    REFUSED = "refused"  # Azure ML (or a peer) refused the request: no retry can fix it
    NAME_TAKEN = "name_taken"  # the endpoint's name is taken in the region: the plan must change
    INTERNAL = "internal"  # a bug in the app: no retry can fix it


#: Kinds a later attempt can fix.
RETRYABLE = frozenset({ErrorKind.BUSY, ErrorKind.NO_ANSWER, ErrorKind.TRANSIENT, ErrorKind.DENIED})


@dataclass(frozen=True)
class Failure:
    """An error, classified: its kind, where it came from, and the words for the ledger and the log."""

    kind: ErrorKind
    detail: str  # one line naming the source: "Azure ML refused (400 BadArgument): ..."
    source: str = "internal"  # azureml, storage, permission, network, notification, internal
    error: str = ""  # "Type: message", for the row's lastError
    problem: str = ""  # DENIED: the missing permission, as ARM names it

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


def backoff_delay(attempts: int, cap: dt.timedelta = BACKOFF_CAP) -> dt.timedelta:
    """Exponential back-off after ``attempts`` consecutive failures, from 30 s up to ``cap``."""
    return min(BACKOFF_BASE * 2 ** max(0, attempts - 1), cap)
