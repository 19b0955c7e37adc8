"""ModelDeployed: a ``model deployed`` notification; if its endpoint has a rollout in progress, advance it now."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from app.intake.outcome import Outcome, OutcomeKind
from app.notify.notifier import Notification
from app.platform.errors import is_retryable
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.followup import active_endpoint

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, ModelDeployedData
    from app.ports import Deps

logger = logging.getLogger(__name__)

#: ``endpoints/{serviceId}`` (Event Grid schema page for Azure ML). For a managed online endpoint the service is the
#: endpoint, so its name is the last segment (``endpoints/credit`` or ``.../onlineEndpoints/credit``).
_SUBJECT = re.compile(r"(?:^|/)(?:online)?endpoints/(?P<name>[A-Za-z][A-Za-z0-9-]{2,31})$", re.IGNORECASE)


def handle(event: AmlEvent[ModelDeployedData], deps: Deps) -> Outcome:
    service = event.data
    models = ", ".join(service.model_ids) or "no model ids"
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Model.Deployed",
            f"Service {service.service_name} ({service.service_compute_type or 'unknown compute'}) "
            f"deployed with {models}",
            facts={
                "service": service.service_name,
                "computeType": service.service_compute_type,
                "modelIds": list(service.model_ids),
            },
            links={"endpoint": event.workspace.studio_link(f"endpoints/realtime/{service.service_name}/detail")},
        )
    )
    notified = f"notified: service {service.service_name} deployed ({models})"
    advanced = _advance(event, deps)
    return advanced.after(notified) if advanced else Outcome(OutcomeKind.HANDLED, notified)


def _advance(event: AmlEvent[ModelDeployedData], deps: Deps) -> Outcome | None:
    """AML says an operation on the endpoint finished: take the rollout's next step now, within the event budget."""
    settings = deps.settings
    if not settings.records_rollouts:
        return None
    match = _SUBJECT.search(event.envelope.subject or "")
    name = match.group("name") if match else event.data.service_name
    found = active_endpoint(deps, event.workspace.arm_id, name) if name else None
    if found is None:
        return None

    try:
        deadline = time.monotonic() + settings.event_budget_seconds
        lines = RolloutEngine(deps).advance(found[0], found[1], deadline).lines()
    except Exception as err:
        if not is_retryable(err):
            raise
        # The rollout is in the ledger: the timer (or a follow-up) advances it. No need to redeliver the event.
        logger.warning("%s endpoint %s not advanced now, the timer will: %s", event.label, found[1], err)
        return Outcome(OutcomeKind.DEFERRED, f"endpoint {found[1]} left to the timer")
    logger.info("%s advanced endpoint %s: %s", event.label, found[1], "; ".join(lines) or "nothing to do")
    return Outcome(OutcomeKind.HANDLED, f"advanced endpoint {found[1]}: {'; '.join(lines) or 'nothing to do'}")
