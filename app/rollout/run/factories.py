"""The rollout engine's parts built from the handlers' dependencies: the ledger and the step policy."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from app.rollout.decide.gate import policy_from_settings
from app.rollout.decide.step import Policy
from app.rollout.ledger.ledger import RolloutLedger

if TYPE_CHECKING:
    from app.wiring import Deps


def ledger_of(deps: Deps) -> RolloutLedger:
    """The rollout ledger in ``ROLLOUT_TABLE``."""
    return RolloutLedger(deps.table(deps.settings.rollout_table))


def policy_of(deps: Deps) -> Policy:
    """The step policy from the settings: timeout and what to keep after a cut-over or a failure."""
    settings = deps.settings
    return Policy(
        timeout=dt.timedelta(minutes=settings.rollout_timeout_minutes),
        keep_deployments=settings.keep_deployments,
        keep_failed_deployments=settings.keep_failed_deployments,
        adopt_endpoints=settings.adopt_endpoints,
        gate=policy_from_settings(settings),
    )
