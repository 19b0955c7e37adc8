"""ModelDeployed: a ``model deployed`` notification with service, compute type and model ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, ModelDeployedData


def handle(event: AmlEvent[ModelDeployedData], deps: Deps) -> str:
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
    return f"notified: service {service.service_name} deployed ({models})"
