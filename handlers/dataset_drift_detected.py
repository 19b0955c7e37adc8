"""DatasetDriftDetected: a ``drift detected`` notification, then retraining: one pipeline job per drift run."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from shared.errors import RetryableError, is_retryable
from shared.idempotency import AlreadyDone, Idempotency, InProgressElsewhere
from shared.notify import Notification
from shared.retrain import (
    COOLDOWN,
    JobInfo,
    SkipRetraining,
    Submit,
    claim_record,
    cooldown_key,
    cooldown_of,
    decide_retraining,
    pipeline_job_request,
    released_record,
    screen,
    skipped_record,
    submission_key,
    submission_payload,
)

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, DatasetDriftDetectedData
    from shared.idempotency import RecordKey
    from shared.store import Row, TableStore

logger = logging.getLogger(__name__)

#: How long a submission claimed by another delivery is waited for before this one takes over.
CLAIM_FOR = dt.timedelta(seconds=120)


def handle(event: AmlEvent[DatasetDriftDetectedData], deps: Deps) -> str:
    drift = event.data
    monitor = drift.data_drift_name or drift.data_drift_id
    window = f"{_iso(drift.start_time)} .. {_iso(drift.end_time)}"
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Drift.Detected",
            f"Drift monitor {monitor} measured drift {drift.drift_coefficient:.3f} over {window}",
            severity="warning",
            facts={
                "monitor": monitor,
                "dataDriftId": drift.data_drift_id,
                "driftRunId": drift.run_id,
                "driftCoefficient": drift.drift_coefficient,
                "window": window,
                "baseDatasetId": drift.base_dataset_id,
                "targetDatasetId": drift.target_dataset_id,
            },
            links={"driftRun": event.workspace.studio_link(f"runs/{drift.run_id}")},
        )
    )
    noticed = f"notified: drift {drift.drift_coefficient:.3f} on {monitor}"
    return f"{noticed}; {_retrain(event, deps)}"


def _retrain(event: AmlEvent[DatasetDriftDetectedData], deps: Deps) -> str:
    """Decide and hold the monitor (its cooldown record), claim the drift run's submission, find or submit
    the job, report it, and record the job as the submission's result."""
    drift, settings = event.data, deps.settings
    skip = screen(drift, settings)
    if skip is not None:
        # No client is created for a skip decided without I/O.
        return _skipped(event, deps, skip)
    store = deps.table(settings.idempotency_table)
    hold = cooldown_key(event.workspace, drift)
    now = deps.clock()
    decision: Submit | SkipRetraining | None = None

    def claim(row: Row | None) -> dict[str, Any] | None:
        nonlocal decision
        decision = decide_retraining(drift, settings, cooldown_of(row.data if row else None), now)
        if isinstance(decision, Submit) and not decision.duplicate:
            return claim_record(decision, event.id, now)
        if isinstance(decision, SkipRetraining) and decision.kind == COOLDOWN and row is not None:
            return skipped_record(row.data, drift.run_id)
        return None

    store.update(hold.partition, hold.row, claim)
    assert decision is not None
    if isinstance(decision, SkipRetraining):
        return _skipped(event, deps, decision)

    submissions = Idempotency(store, in_progress_for=CLAIM_FOR)
    outcome = submissions.claim(
        submission_key(event.workspace, decision), submission_payload(drift), now, DriftRunId=drift.run_id
    )
    if isinstance(outcome, AlreadyDone):
        # Completed only once its notification was sent: a duplicate has nothing left to do.
        job_name = outcome.result["job"]
        logger.info("%s duplicate: drift run %s already has job %s", event.label, drift.run_id, job_name)
        return f"duplicate: drift run {drift.run_id} already has retraining job {job_name}"
    if isinstance(outcome, InProgressElsewhere):
        raise RetryableError(f"drift run {drift.run_id}'s retraining job is being submitted by another delivery")
    try:
        job, submitted = _find_or_submit(event, deps, decision, store, hold)
        _notify_submitted(event, deps, decision, job, submitted)
    except Exception:
        # The redelivery claims the submission again at once (the monitor stays held unless released above).
        submissions.release(outcome.record)
        raise
    result = {"job": job.name, "status": job.status, "submitted": submitted}
    submissions.complete(outcome.record, result, deps.clock())
    verb = "submitted" if submitted else "found"
    return f"retraining {verb}: job {job.name} ({decision.component}) for drift run {drift.run_id}"


def _find_or_submit(
    event: AmlEvent[DatasetDriftDetectedData], deps: Deps, decision: Submit, store: TableStore, hold: RecordKey
) -> tuple[JobInfo, bool]:
    """The job named for this drift run; submitted only if AML does not have it yet."""
    gateway = deps.aml(event.workspace)
    try:
        job = gateway.get_job(decision.job_name)
        if job is not None:
            logger.info("%s job %s exists (status %s); nothing submitted", event.label, job.name, job.status)
            return job, False
        component = gateway.get_component(decision.component)
        request = pipeline_job_request(decision, component, deps.settings, event.id, event.data)
        logger.info(
            "%s submitting %s:%s as job %s in experiment %s with inputs %s",
            event.label,
            component.name,
            component.version,
            request.name,
            request.experiment,
            sorted(request.inputs),
        )
        return gateway.submit_pipeline_job(request), True
    except Exception as err:
        if not is_retryable(err):
            # Nothing was submitted and no redelivery will: free the monitor for its next drift run.
            run_id = event.data.run_id
            store.update(hold.partition, hold.row, lambda row: released_record(row.data if row else None, run_id))
        raise


def _notify_submitted(
    event: AmlEvent[DatasetDriftDetectedData], deps: Deps, decision: Submit, job: JobInfo, submitted: bool
) -> None:
    drift = event.data
    summary = (
        f"Retraining {'submitted' if submitted else 'already submitted'} for drift {drift.drift_coefficient:.3f} "
        f"on {decision.monitor}: job {job.name} ({decision.component}) in experiment {decision.experiment}"
    )
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Retraining.Submitted",
            summary,
            facts={
                "monitor": decision.monitor,
                "driftRunId": drift.run_id,
                "driftCoefficient": drift.drift_coefficient,
                "job": job.name,
                "jobStatus": job.status,
                "component": str(decision.component),
                "experiment": decision.experiment,
                "reason": f"drift {drift.drift_coefficient:g} >= DRIFT_THRESHOLD {deps.settings.drift_threshold:g}",
            },
            links={
                "job": event.workspace.studio_link(f"runs/{job.name}"),
                "driftRun": event.workspace.studio_link(f"runs/{drift.run_id}"),
            },
        )
    )


def _skipped(event: AmlEvent[DatasetDriftDetectedData], deps: Deps, skip: SkipRetraining) -> str:
    drift = event.data
    logger.info("%s retraining skipped (%s): %s", event.label, skip.kind, skip.reason)
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Retraining.Skipped",
            f"Retraining skipped ({skip.kind}): {skip.reason}",
            facts={
                "monitor": drift.data_drift_name or drift.data_drift_id,
                "driftRunId": drift.run_id,
                "driftCoefficient": drift.drift_coefficient,
                "kind": skip.kind,
                "reason": skip.reason,
            },
            links={"driftRun": event.workspace.studio_link(f"runs/{drift.run_id}")},
        )
    )
    return f"retraining skipped ({skip.kind}): {skip.reason}"


def _iso(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else "?"
