"""RunCompleted: a ``run completed`` notification."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, RunCompletedData


def handle(event: AmlEvent[RunCompletedData], deps: Deps) -> str:
    run = event.data
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Run.Completed",
            f"Run {run.run_id} ({run.run_type or 'run'}) in experiment "
            f"{run.experiment_name or run.experiment_id} completed",
            facts={
                "experiment": run.experiment_name or run.experiment_id,
                "experimentId": run.experiment_id,
                "runId": run.run_id,
                "runType": run.run_type,
            },
            links={"run": event.workspace.studio_link(f"runs/{run.run_id}")},
        )
    )
    return f"notified: run {run.run_id} completed"
