"""The endpoint's traffic against the app's own writes: confirm a write landed, restore the split after a late
write of the app's, or flag a change made outside the app (drift) and leave the endpoint's traffic alone."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from app.rollout.decide import intents as intent_rules
from app.rollout.decide.intents import Verdict
from app.rollout.decide.model import Rollout
from app.rollout.ledger.ledger import StaleRollout

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.decide.model import EndpointView
    from app.rollout.decide.policy import Policy
    from app.rollout.ledger.ledger import RolloutLedger
    from app.rollout.run.fencing import Fence
    from app.rollout.run.records import Recorder

logger = logging.getLogger(__name__)


def acted_since(rollout: Rollout, since: dt.datetime) -> bool:
    """Did an operator act on ``rollout`` after ``since``?"""
    return any(dt.datetime.fromisoformat(str(h.get("at"))) > since for h in rollout.progress.history if h.get("at"))


class TrafficJudge:
    """One pass's judgement of the endpoint's observed split."""

    def __init__(self, deps: Deps, ledger: RolloutLedger, fence: Fence, recorder: Recorder, policy: Policy) -> None:
        self.deps = deps
        self.policy = policy
        self.ledger = ledger
        self.fence = fence
        self.recorder = recorder

    def judge(
        self, view: EndpointView | None, gateway: AzureMl, rollouts: dict[str, Rollout], due: list[Rollout]
    ) -> tuple[Verdict | None, list[str]]:
        """Compare the observed split with the app's intents: confirm, restore after a late write, or flag drift."""
        lease, now = self.fence.lease, self.deps.clock()
        if view is None or view.busy_reason:
            return None, []  # an endpoint being updated shows a split in flux; judge it when it is idle
        endpoint = view.name
        verdict = intent_rules.judge(view.traffic, view.mirror_traffic, lease.record.intents, now)
        observed = intent_rules.describe(view.traffic, view.mirror_traffic)
        drift = lease.record.drift
        if verdict.kind == "landed" and verdict.matched:
            logger.info("endpoint %s: the app's write #%d landed: %s", endpoint, verdict.matched.seq, observed)
            intents = intent_rules.with_status(lease.record.intents, verdict.matched.seq, intent_rules.LANDED)
            self.fence.update(intents=intents, drift=None)
            return verdict, []
        if verdict.kind == "late":
            if intent_rules.to_restore(verdict, self.policy.writes) is None:
                logger.warning(
                    "endpoint %s: a late write of the app's shows (%s); its restore waits", endpoint, observed
                )
                return verdict, [f"{endpoint}: a late write of the app's shows ({observed}); restore held back"]
            return verdict, [self._restore(view, verdict, gateway, rollouts)]
        if verdict.kind == "ours" and drift:
            logger.info("endpoint %s: traffic is back at the app's split (%s); drift cleared", endpoint, observed)
            self.fence.update(drift=None)
            return verdict, [f"{endpoint}: traffic back at the app's split; drift cleared"]
        if verdict.kind != "drift" or verdict.current is None:
            return verdict, []
        since = dt.datetime.fromisoformat(str(drift["at"])) if drift else None
        # A new rollout, or an operator's action, after the drift is the go-ahead.
        newer = [r for r in due if since and (r.created_at > since or acted_since(r, since))]
        if newer:
            # A new rollout after the drift is the go-ahead: it starts from the split as it is now.
            adopted = intent_rules.new_intent(
                lease.record.intents, lease.token, "", view.traffic, view.mirror_traffic, now, intent_rules.ADOPTED
            )
            self.fence.update(intents=(*lease.record.intents, adopted)[-intent_rules.INTENT_LIMIT :], drift=None)
            logger.info("endpoint %s: drift cleared by the new rollout %s", endpoint, newer[0].plan.deployment)
            return verdict, [f"{endpoint}: drift cleared by the new rollout {newer[0].plan.deployment}"]
        if drift:
            return verdict, [f"{endpoint}: traffic drifted ({observed}); left alone"]
        intended = intent_rules.describe(verdict.current.traffic, verdict.current.mirror)
        # The change happened after the last observation: a rollout recorded since then is a new one.
        since = lease.record.observed_at or now
        flagged = {
            "at": since.isoformat(),
            "seenAt": now.isoformat(),
            "observed": verdict.observed,
            "intended": verdict.current.as_json(),
        }
        self.fence.update(drift=flagged)
        reason = (
            f"traffic drifted: AML shows {observed}, the app set {intended}; the app leaves this endpoint's "
            "traffic alone until an operator action or a new rollout"
        )
        logger.warning("endpoint %s: %s", endpoint, reason)
        kind = "AmlEvents.Rollout.TrafficDrift"
        self.recorder.notify_endpoint(lease.workspace_id, endpoint, kind, "warning", reason, flagged)
        return verdict, [f"{endpoint}: {reason}"]

    def _restore(self, view: EndpointView, verdict: Verdict, gateway: AzureMl, rollouts: dict[str, Rollout]) -> str:
        """A superseded write of the app landed late: put the current split back (the one traffic write
        the app sends on an endpoint whose split it did not just set itself)."""
        assert verdict.current is not None and verdict.matched is not None
        current, stale, now = verdict.current, verdict.matched, self.deps.clock()
        endpoint = view.name
        self.fence.update(intents=intent_rules.with_status(self.fence.lease.record.intents, stale.seq, "landed"))
        reason = (
            f"restored traffic {intent_rules.describe(current.traffic, current.mirror)} after the app's own "
            f"earlier write #{stale.seq} ({intent_rules.describe(stale.traffic, stale.mirror)}, lease token "
            f"{stale.token}) landed late"
        )
        logger.warning("endpoint %s: %s", endpoint, reason)
        self.fence.send_traffic(gateway, endpoint, "", current.traffic, current.mirror)
        owner = rollouts.get(current.by) if current.by else None
        if owner is not None:
            try:
                restored = f"PUT endpoint {endpoint} {reason}"
                self.ledger.save(
                    replace(owner, reason=f"{owner.reason}; {reason}"[-2000:], actions=(*owner.actions, restored)), now
                )
            except StaleRollout:
                logger.info("rollout %s/%s changed meanwhile; its reason is left as is", endpoint, current.by)
        facts = {"restored": current.as_json(), "late": stale.as_json()}
        self.recorder.notify_endpoint(
            self.fence.lease.workspace_id,
            endpoint,
            "AmlEvents.Rollout.TrafficRestored",
            "warning",
            reason,
            facts,
        )
        return f"{endpoint}: {reason}"
