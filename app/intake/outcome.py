"""What the app did with one event or follow-up message, as a type: a kind a caller decides on, and the log's words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeKind(StrEnum):
    """What became of an event (or a follow-up message). Each is acknowledged: what a redelivery can fix raises."""

    HANDLED = "handled"  # done: notified, deployed or advanced, registered, retraining submitted or found
    DUPLICATE = "duplicate"  # an earlier delivery did it: nothing done again
    SKIPPED = "skipped"  # nothing for this app: the model is not opted in, retraining is not due, a step's run
    PLANNED = "planned"  # DEPLOY_MODE=plan: what would be done is recorded or reported, nothing written to Azure ML
    IGNORED = "ignored"  # not looked at: a workspace not allowed, an unknown event type, a run status not notified
    DEFERRED = "deferred"  # recorded; the reconciler's timer (or a follow-up) carries it on
    REJECTED = "rejected"  # a permanent problem with the event (bad tags, a missing model): a redelivery cannot fix it
    FAILED = "failed"  # an error a redelivery cannot fix (a permission denied for too long, a defect): logged whole
    DROPPED = "dropped"  # a follow-up message not acted on: unreadable, plan mode, a workspace not allowed, nothing on


@dataclass(frozen=True)
class Outcome:
    """The kind, and the one-line account the log, the telemetry and the dev kit's tools show."""

    kind: OutcomeKind
    text: str

    def __str__(self) -> str:
        return self.text

    def after(self, earlier: str) -> Outcome:
        """This outcome, following ``earlier`` work (a notification) in one line: its kind decides."""
        return Outcome(self.kind, f"{earlier}; {self.text}")

    def log_extra(self) -> dict[str, str]:
        """The log record's fields: the dev kit reads them back from the dispatcher's log."""
        return {"outcome": self.text, "outcome_kind": self.kind.value}
