"""The follow-up queue on fakes: messages become due when the fake clock passes their visibility delay."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.platform.errors import RetryableError

if TYPE_CHECKING:
    from app.rollout.decide.followup import FollowUp
    from tests.fakes.clock import FakeClock


@dataclass(frozen=True)
class Scheduled:
    followup: FollowUp
    due_at: dt.datetime


class FakeFollowUpQueue:
    """``FollowUpQueue``'s ``schedule``; ``Deps.followups`` is ``lambda: queue``. Records every message."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[Scheduled] = []
        self.waiting: list[Scheduled] = []
        self.fail = False

    def schedule(self, followup: FollowUp, delay: dt.timedelta | float) -> None:
        if self.fail:
            raise RetryableError("queue unavailable")
        seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else float(delay)
        message = Scheduled(followup, self.clock() + dt.timedelta(seconds=seconds))
        self.sent.append(message)
        self.waiting.append(message)

    def take_due(self) -> list[FollowUp]:
        """The messages visible now (their delay has passed), earliest first; they leave the queue."""
        now = self.clock()
        due = sorted((m for m in self.waiting if m.due_at <= now), key=lambda m: m.due_at)
        self.waiting = [m for m in self.waiting if m.due_at > now]
        return [m.followup for m in due]

    def next_due(self) -> dt.datetime | None:
        return min((m.due_at for m in self.waiting), default=None)
