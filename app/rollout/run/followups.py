"""The follow-ups a pass over an endpoint asks for: a look when each write should have finished or a bake ends,
sent on the queue after the pass (best effort: the timer is the safety net)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from app.rollout.decide.followup import BAKE, MAX_RECHECKS, FollowUp

if TYPE_CHECKING:
    from app.ports import Deps

logger = logging.getLogger(__name__)


class FollowUpPlan:
    """The follow-ups due after one pass, by reason; the shortest delay per reason wins."""

    def __init__(self, deps: Deps, came: FollowUp | None) -> None:
        self.deps = deps
        #: The follow-up message this pass answers, if a follow-up (not the timer or an event) started it.
        self.came = came
        self.due: dict[str, float] = {}
        #: The earliest bake end a follow-up was asked for in this pass (the engine notes it on the active index).
        self.bake_end: dt.datetime | None = None

    def after(self, kind: str, seconds: float | None = None, reason: str = "") -> None:
        """Ask for a look at this endpoint when a write of ``kind`` should have finished (or in ``seconds``)."""
        delay = self.deps.settings.followup_delay(kind) if seconds is None else seconds
        if delay is not None and self.deps.followups is not None:
            key = reason or kind
            self.due[key] = min(delay, self.due.get(key, delay))

    def after_at(self, kind: str, at: dt.datetime | None, now: dt.datetime) -> None:
        """Look again when a write of ``kind`` should be done, or at ``at`` (a bake's end, not the tick after it)."""
        if at is None:
            self.after(kind)
            return
        self.after(kind, max(0.0, (at - now).total_seconds()), reason=f"{kind} end {at.isoformat()}")
        if kind == BAKE and self.deps.followups is not None:  # no follow-ups, no follow-up to decide by it
            self.bake_end = at if self.bake_end is None else min(self.bake_end, at)

    def send(self, workspace_id: str, endpoint: str, still_waiting: bool) -> None:
        """Send this pass's follow-ups; best effort: a failure is logged and the timer carries on."""
        rechecks = 0
        came = self.came
        # A follow-up came too early (AML still busy, or a turn still to take): look again, a bounded number of
        # times; then the timer alone carries on.
        if not self.due and came is not None and came.rechecks < MAX_RECHECKS and still_waiting:
            rechecks = came.rechecks + 1
            self.after("recheck", reason=f"recheck {rechecks}/{MAX_RECHECKS}")
        if not self.due or self.deps.followups is None:
            return
        try:
            queue, now = self.deps.followups(), self.deps.clock()
            for reason, delay in self.due.items():
                due_at = now + dt.timedelta(seconds=delay)
                queue.schedule(FollowUp(workspace_id, endpoint, reason, rechecks, due_at=due_at), delay)
                logger.info("endpoint %s: follow-up (%s) scheduled in %.0f s", endpoint, reason, delay)
        except Exception as err:
            logger.warning(
                "endpoint %s: follow-up not scheduled (%s: %s); the reconciler's timer picks it up",
                endpoint,
                type(err).__name__,
                err,
            )
        finally:
            self.due = {}
