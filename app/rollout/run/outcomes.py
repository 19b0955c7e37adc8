"""What one pass over an endpoint did, as types: each rollout it stepped (with its state after), each it had no time
for, and what it noted about the endpoint as a whole. Callers decide on these, never on the log lines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.rollout.decide.model import Rollout, State


class Note(StrEnum):
    """Something a pass noted about the endpoint as a whole."""

    LEASE_HELD = "lease_held"  # another instance is advancing the endpoint: this pass did nothing
    LEASE_LOST = "lease_lost"  # the lease was taken over during the pass: no write was sent after that
    STALE = "stale"  # a rollout row changed under the pass: it is decided again from a fresh observation
    TRAFFIC = "traffic"  # the observed split against the app's writes: landed, restored, drifted, drift cleared
    CLEANUP = "cleanup"  # cleanup of surplus deployments: a delete sent, waiting, failed or given up
    GATE_TO_TICK = "gate_to_tick"  # a gate fell due in a busy region: the next tick reads it in its region's batch


@dataclass(frozen=True)
class Stepped:
    """A rollout the pass decided for, as recorded afterwards."""

    deployment: str
    state: State
    reason: str

    @classmethod
    def of(cls, rollout: Rollout) -> Stepped:
        return cls(rollout.plan.deployment, rollout.state, rollout.reason)

    @property
    def line(self) -> str:
        return f"{self.deployment}: {self.state.value} ({self.reason})"


@dataclass(frozen=True)
class Deferred:
    """A rollout the pass had no time left for: the next pass (a follow-up or the timer) takes it."""

    deployment: str

    @property
    def line(self) -> str:
        return f"{self.deployment}: out of time budget; next tick"


@dataclass(frozen=True)
class Noted:
    """Something about the endpoint as a whole, with the words the log shows for it."""

    note: Note
    text: str

    @property
    def line(self) -> str:
        return self.text


PassItem = Stepped | Deferred | Noted


@dataclass(frozen=True)
class PassOutcome:
    """One pass over one endpoint, in the order things happened."""

    endpoint: str
    items: tuple[PassItem, ...] = ()

    def rollout(self, deployment: str) -> Stepped | Deferred | None:
        """What the pass did with ``deployment``'s rollout, or None if it did not look at it."""
        for item in reversed(self.items):
            if isinstance(item, Stepped | Deferred) and item.deployment == deployment:
                return item
        return None

    @property
    def notes(self) -> frozenset[Note]:
        return frozenset(item.note for item in self.items if isinstance(item, Noted))

    @property
    def stepped(self) -> tuple[Stepped, ...]:
        return tuple(item for item in self.items if isinstance(item, Stepped))

    def lines(self) -> list[str]:
        """The log lines, one per item."""
        return [item.line for item in self.items]
