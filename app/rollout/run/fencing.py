"""Writes under the endpoint's lease: every ARM write renews the lease first (or raises ``LeaseLost``), and every
traffic write is recorded as an intent before it is sent and settled with Azure ML's answer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.platform.errors import status_code_of
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.followup import TRAFFIC_WRITE
from app.rollout.decide.intents import Intent
from app.rollout.ledger.ledger import LeaseLost

if TYPE_CHECKING:
    from app.ports import AzureMl, Deps
    from app.rollout.ledger.ledger import Lease, RolloutLedger
    from app.rollout.run.followups import FollowUpPlan

logger = logging.getLogger(__name__)


class Fence:
    """The endpoint lease one pass holds, and the writes sent under it."""

    def __init__(self, deps: Deps, ledger: RolloutLedger, lease: Lease, followups: FollowUpPlan) -> None:
        self.deps = deps
        self.ledger = ledger
        self.lease = lease
        #: The lease was lost while an intent was settled: no further write, and nothing to release.
        self.lost = False
        self.followups = followups
        self.lease_seconds = deps.settings.endpoint_lease_seconds
        #: A write sent under this lease may have changed the endpoint's deployments (any write but a split's).
        self.wrote_deployments = False

    def renew(self, intent: Intent | None = None) -> None:
        """Before every ARM write: renew the lease (recording ``intent`` with it), or raise ``LeaseLost``."""
        if self.lost:
            raise LeaseLost(f"the lease on {self.lease.partition} was taken over while an intent was settled")
        # Only a traffic split's write carries an intent; any other may change the deployments, whose kept list goes.
        forget = intent is None
        self.lease = self.ledger.renew_lease(
            self.lease, self.deps.clock(), self.lease_seconds, intent, forget_list=forget
        )
        self.wrote_deployments = self.wrote_deployments or forget

    def update(self, **changes: Any) -> None:
        """Change the endpoint's row (intents, drift) under the lease."""
        self.lease = self.ledger.update_lease(self.lease, self.deps.clock(), **changes)

    def send_traffic(
        self, gateway: AzureMl, endpoint: str, by: str, traffic: Mapping[str, int], mirror: Mapping[str, int]
    ) -> None:
        """Record the split as an intent under a renewed lease, send it, then record AML's answer."""
        now = self.deps.clock()
        intent = intent_rules.new_intent(self.lease.record.intents, self.lease.token, by, traffic, mirror, now)
        self.renew(intent)
        try:
            gateway.set_traffic(endpoint, traffic, mirror)
            self.followups.after(TRAFFIC_WRITE)
        except Exception as err:
            if status_code_of(err) is not None:  # answered: never applied
                self._settle(intent, intent_rules.REFUSED)
            raise  # unanswered: it stays in doubt, and the endpoint is watched until it is not
        self._settle(intent, intent_rules.ACCEPTED)

    def _settle(self, intent: Intent, status: str) -> None:
        settled = self.ledger.settle_intent(self.lease, intent.seq, status, self.deps.clock())
        if settled is None:
            self.lost = True
        else:
            self.lease = settled
