"""Cleanup owed after rollouts end: deleting surplus idle deployments of the app's own, one per pass, best effort.

Its failure is reported once (a warning and an ``AmlEvents.Rollout.CleanupFailed`` notification) and retried with
back-off; it never changes a rollout's state and never holds the endpoint's write turn.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from app.rollout.decide.actions import Delete, Nothing, Wait
from app.rollout.decide.cleanup import after_cleanup_failure, cleanup_step
from app.rollout.decide.model import Cleanup, Rollout
from app.rollout.decide.policy import Policy
from app.rollout.run.failing import classify
from app.rollout.run.notifications import cleanup_failed_notification

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.failures import Failure
    from app.rollout.decide.model import EndpointView
    from app.rollout.ledger.ledger import RolloutLedger
    from app.rollout.run.fencing import Fence
    from app.rollout.run.records import Recorder

logger = logging.getLogger(__name__)


def cleanup_due(rollouts: Iterable[Rollout], now: dt.datetime) -> bool:
    """Is cleanup owed by any of ``rollouts`` and not backing off?"""
    owed = [r.cleanup for r in rollouts if r.cleanup is not None]
    return bool(owed) and all(not c.next_attempt_at or now >= c.next_attempt_at for c in owed)


class EndpointCleanup:
    """One pass's cleanup of an endpoint."""

    def __init__(self, deps: Deps, ledger: RolloutLedger, policy: Policy, fence: Fence, recorder: Recorder) -> None:
        self.deps = deps
        self.ledger = ledger
        self.policy = policy
        self.fence = fence
        self.recorder = recorder

    def run(self, rollouts: dict[str, Rollout], view: EndpointView | None, gateway: AzureMl, wrote: bool) -> list[str]:
        """Best-effort cleanup owed after rollouts ended: at most one delete per pass, never in a pass that wrote.

        Its failure is reported once (a warning and an ``AmlEvents.Rollout.CleanupFailed`` notification) and retried
        with back-off; it never changes a rollout's state and never holds the endpoint's write turn.
        """
        now = self.deps.clock()
        owed = sorted((r for r in rollouts.values() if r.cleanup is not None), key=lambda r: r.updated_at)
        if not owed or not cleanup_due(owed, now):
            return []
        decision = cleanup_step(view, list(rollouts.values()), self.policy, wrote=wrote)
        if isinstance(decision, Wait):
            return [f"cleanup: {decision.reason}"]
        carrier, others = owed[-1], owed[:-1]
        for rollout in others:  # one row carries what is owed
            rollouts[rollout.plan.deployment] = self.ledger.save(replace(rollout, cleanup=None), now)
        if isinstance(decision, Nothing):
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=None), now)
            return []
        assert isinstance(decision, Delete)
        self.fence.renew()  # a delete is a write: only under a lease this instance still holds
        try:
            gateway.delete_deployment(carrier.plan.endpoint, decision.deployment)
        except Exception as err:
            return [self._failed(rollouts, carrier, decision, classify(err), now)]
        logger.info("endpoint %s cleanup: %s", carrier.plan.endpoint, decision.reason)
        self.fence.followups.after("delete")
        sent = f"DELETE deployment {decision.deployment}"
        rollouts[carrier.plan.deployment] = self.ledger.save(
            replace(carrier, actions=(*carrier.actions, sent), cleanup=Cleanup()), now
        )
        return [f"cleanup: {decision.reason}"]

    def _failed(
        self, rollouts: dict[str, Rollout], carrier: Rollout, decision: Delete, failure: Failure, now: dt.datetime
    ) -> str:
        """Record what a refused delete means (``after_cleanup_failure``), and report it when that says so."""
        endpoint = carrier.plan.endpoint
        meant = after_cleanup_failure(carrier.cleanup or Cleanup(), decision.deployment, failure, self.policy, now)
        if meant.owed is None:
            logger.error("endpoint %s cleanup %s; delete it by hand", endpoint, meant.reason)
        elif meant.report:
            logger.warning("endpoint %s cleanup: %s (the rollouts are unaffected)", endpoint, meant.reason)
            self.recorder.send(
                cleanup_failed_notification(
                    carrier, decision.deployment, failure.detail, self.deps.settings.status_host
                ),
                f"rollout {carrier.plan.endpoint}/{carrier.plan.deployment}",
            )
        else:
            logger.info("endpoint %s cleanup: %s", endpoint, meant.reason)
        if meant.owed is not carrier.cleanup:
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=meant.owed), now)
        return f"cleanup: {meant.reason}"
