"""RunCompleted: a monitoring breach retrains; else a notification, then (opt-in) the run's model registered once.

RunCompleted is raised for a pipeline's step runs as well as for the pipeline job: a step (it names its parent
in the run property ``azureml.pipelinerunid``) never registers; the pipeline registers once, from its named
output's URI.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.handlers import monitor_breach
from app.intake.outcome import Outcome, OutcomeKind
from app.notify.notifier import Notification
from app.platform.errors import RetryableError
from app.platform.idempotency import CLAIM_FOR, AlreadyDone, Claimed, Idempotency, PayloadMismatch, RecordKey, Status
from app.retraining.registration import (
    RegisterModel,
    RunRegisteredOtherwise,
    from_job_output,
    registration_key,
    registration_payload,
    registration_request,
)
from app.retraining.signals import breach_of, parent_run_id

if TYPE_CHECKING:
    from app.intake.events import AmlEvent, RunCompletedData
    from app.ports import Deps

logger = logging.getLogger(__name__)


def handle(event: AmlEvent[RunCompletedData], deps: Deps) -> Outcome:
    run = event.data
    breach = breach_of(run)
    if breach is not None:
        return monitor_breach.handle(event, breach, deps)
    deps.notifier.send(Notification.about_run(event, "AmlEvents.Run.Completed", "completed"))
    noticed = f"notified: run {run.run_id} completed"
    request = registration_request(run)
    if request is None:
        return Outcome(OutcomeKind.HANDLED, noticed)
    parent = parent_run_id(run)
    if parent:
        logger.info("%s run %s is a step of pipeline %s: the pipeline registers", event.label, run.run_id, parent)
        return Outcome(
            OutcomeKind.SKIPPED, f"{noticed}; step of pipeline {parent}: registration is the pipeline's, not the step's"
        )
    if not deps.settings.applies_changes:
        where = f"output {request.output}" if request.output else request.path
        logger.info("%s DEPLOY_MODE=plan: would register %s from %s", event.label, request.name, where)
        return Outcome(
            OutcomeKind.PLANNED, f"{noticed}; DEPLOY_MODE=plan: would register {where} as model {request.name}"
        )
    job = deps.aml(event.workspace).read_job(run.run_id)
    if job is not None:
        request = from_job_output(request, job.outputs, pipeline=job.is_pipeline)
    return _register(event, deps, request).after(noticed)


def _register(event: AmlEvent[RunCompletedData], deps: Deps, request: RegisterModel) -> Outcome:
    """Claim the run's record, find or create the model version, record it, report it once."""
    records = Idempotency(deps.table(deps.settings.idempotency_table), in_progress_for=CLAIM_FOR)
    key = registration_key(event.workspace, request.run_id)
    try:
        outcome = records.claim(
            key, registration_payload(request), deps.clock(), RunId=request.run_id, ModelName=request.name
        )
    except PayloadMismatch as mismatch:
        record = mismatch.record
        status = "registered" if record.status is Status.COMPLETED else "being registered"
        model = str(record.fields.get("ModelName") or "?")
        raise RunRegisteredOtherwise(request.run_id, model, status, request.name) from mismatch
    if isinstance(outcome, AlreadyDone):
        recorded = str(outcome.result["model_version"])
        if outcome.record.fields.get("Notified"):
            logger.info("%s duplicate: run %s registered %s:%s", event.label, request.run_id, request.name, recorded)
            return Outcome(
                OutcomeKind.DUPLICATE,
                f"duplicate: run {request.run_id} is already registered as {request.name}:{recorded}",
            )
        return _report(event, deps, records, key, request, recorded, created=False)

    mine = isinstance(outcome, Claimed)
    gateway = deps.aml(event.workspace)
    try:
        found = gateway.find_model_version_from_run(request.name, request.run_id)
        created = found is None
        if found is None:
            if not mine:
                raise RetryableError(f"run {request.run_id} is being registered by another delivery; retry later")
            logger.info("%s registering %s as model %s", event.label, request.path, request.name)
        version = found or gateway.register_model_from_run(request)
    except Exception:
        if mine:
            # Let the redelivery claim it again at once instead of waiting out the claim.
            records.release(outcome.record)
        raise
    done = records.complete(outcome.record, {"model_version": version}, deps.clock())
    return _report(event, deps, records, key, request, str(done.result["model_version"]), created=created)


def _report(
    event: AmlEvent[RunCompletedData],
    deps: Deps,
    records: Idempotency,
    key: RecordKey,
    request: RegisterModel,
    version: str,
    *,
    created: bool,
) -> Outcome:
    """Notify ``model registered from run`` (notification first: if it fails, the redelivery sends it)."""
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Model.RegisteredFromRun",
            f"Model {request.name}:{version} registered from run {request.run_id} "
            f"in experiment {request.experiment} ({request.model_type})",
            facts={
                "model": request.name,
                "version": version,
                "modelType": request.model_type,
                "path": request.path,
                "runId": request.run_id,
                "experiment": request.experiment,
                "tags": dict(request.tags),
            },
            links={
                "model": event.workspace.studio_link(f"models/{request.name}/version/{version}"),
                "run": event.workspace.studio_link(f"runs/{request.run_id}"),
            },
        )
    )
    records.annotate(key, Notified=True)
    verb = "registered" if created else "found registered"
    return Outcome(OutcomeKind.HANDLED, f"{verb}: model {request.name}:{version} from run {request.run_id}")
