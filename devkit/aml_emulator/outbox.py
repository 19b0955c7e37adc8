"""The outbox: the Event Grid events the emulated workspace publishes, as Azure ML would."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import _iso

EVENT_TYPE_PREFIX = "Microsoft.MachineLearningServices."
#: What AML reports as ``runType`` for each ``jobType`` (RunCompleted / RunStatusChanged ``data.runType``).
RUN_TYPES = {"pipeline": "azureml.PipelineRun", "command": "azureml.scriptrun", "sweep": "hyperdrive"}
#: ``runType`` of a pipeline's step run (the v1 run-history type; no published payload shows a v2 step's).
STEP_RUN_TYPE = "azureml.StepRun"


class OutboxArea(AreaBase):
    """Events queued by model registrations and ended jobs, read with :meth:`events` or :meth:`take_events`."""

    _outbox: list[dict[str, Any]]
    workspace_guid: str

    def events(self) -> list[dict[str, Any]]:
        """The outbox: Event Grid-schema events AML would have published so far, oldest first (kept)."""
        with self._lock:
            self._advance()
            return copy.deepcopy(self._outbox)

    def take_events(self) -> list[dict[str, Any]]:
        """The outbox's events, oldest first, removed from it.

        ``ModelRegistered`` for each model version created through ARM, ``RunCompleted`` for each job that
        completed and ``RunStatusChanged`` (``runStatus`` Failed) for each job that failed (a pipeline's step
        runs included, each before its pipeline, naming it in ``azureml.pipelinerunid``), with the workspace
        as topic, as Azure ML publishes them through Event Grid. Deliver them with ``OfflineApp.deliver``.
        """
        with self._lock:
            self._advance()
            taken, self._outbox = self._outbox, []
        return taken

    def _emit(self, event_type: str, subject: str, data: Mapping[str, Any], at: float) -> None:
        """Queue one event as Azure ML publishes it through Event Grid (Event Grid schema)."""
        self._outbox.append(
            {
                "id": str(uuid.uuid4()),
                "topic": self.workspace_id,
                "subject": subject,
                "eventType": f"{EVENT_TYPE_PREFIX}{event_type}",
                "eventTime": _iso(at),
                "data": dict(data),
                "dataVersion": "2",
                "metadataVersion": "1",
            }
        )

    def _announce_ended_jobs(self) -> None:
        """RunCompleted for each newly completed job, RunStatusChanged for each newly failed one (AML's rule)."""
        for job in sorted(self._jobs.values(), key=lambda j: j.ends_at):
            if job.announced or job.canceled or self._clock.now() < job.ends_at:
                continue
            parent = self._jobs.get(job.parent.lower()) if job.parent else None
            if parent is not None and parent.canceled:
                continue
            job.announced = True
            props = job.body["properties"]
            experiment = str(props.get("experimentName") or "Default")
            experiment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_guid}/experiments/{experiment}"))
            data: dict[str, Any] = {
                "experimentId": experiment_id,
                "experimentName": experiment,
                "runId": job.name,
                "runType": STEP_RUN_TYPE
                if job.parent
                else RUN_TYPES.get(str(props.get("jobType", "")).lower(), str(props.get("jobType", ""))),
                "runTags": dict(props.get("tags") or {}),
                "runProperties": dict(props.get("properties") or {}),
            }
            subject = f"experiments/{experiment_id}/runs/{job.name}"
            if job.outcome == "Completed":
                self._emit("RunCompleted", subject, data, job.ends_at)
            elif job.outcome == "Failed":
                self._emit("RunStatusChanged", subject, {**data, "runStatus": "Failed"}, job.ends_at)
