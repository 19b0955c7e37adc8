"""DatasetDriftDetected: a ``drift detected`` notification, then retraining: one pipeline job per drift run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.errors import is_retryable
from shared.notify import Notification

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, DatasetDriftDetectedData
    from shared.retrain import JobInfo, SkipRetraining, Submit
    from shared.store import Row, TableStore

logger = logging.getLogger(__name__)


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
    """Decide, claim the monitor's record (ETag), find or submit the job, then report it."""
    # Imported on first use: cold start of function_app pays only for what it uses.
    from shared.retrain import (
        COOLDOWN,
        SkipRetraining,
        Submit,
        claim_record,
        cooldown_of,
        decide_retraining,
        record_keys,
        screen,
        skipped_record,
    )

    drift, settings = event.data, deps.settings
    skip = screen(drift, settings)
    if skip is not None:
        # No client is created for a skip decided without I/O.
        return _skipped(event, deps, skip)
    store = deps.table(settings.idempotency_table)
    partition, key = record_keys(event.workspace, drift)
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

    row = store.update(partition, key, claim)
    assert decision is not None
    if isinstance(decision, SkipRetraining):
        return _skipped(event, deps, decision)
    if decision.duplicate and row is not None and row.data.get("Notified"):
        logger.info("%s duplicate: drift run %s already has job %s", event.label, drift.run_id, decision.job_name)
        return f"duplicate: drift run {drift.run_id} already has retraining job {decision.job_name}"

    job, submitted = _find_or_submit(event, deps, decision, store, partition, key)
    _notify_submitted(event, deps, decision, job, submitted)
    store.update(partition, key, lambda current: _mark(current, drift.run_id, State="submitted", Notified=True))
    verb = "submitted" if submitted else "found"
    return f"retraining {verb}: job {job.name} ({decision.component}) for drift run {drift.run_id}"


def _find_or_submit(
    event: AmlEvent[DatasetDriftDetectedData],
    deps: Deps,
    decision: Submit,
    store: TableStore,
    partition: str,
    key: str,
) -> tuple[JobInfo, bool]:
    """The job named for this drift run; submitted only if AML does not have it yet."""
    from shared.retrain import pipeline_job_request

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
            store.update(partition, key, lambda current: _mark(current, event.data.run_id, State="failed"))
        raise


def _mark(row: Row | None, drift_run_id: str, **changes: Any) -> dict[str, Any] | None:
    """``changes`` applied to the monitor's record if it still belongs to ``drift_run_id``."""
    if row is None or row.data.get("DriftRunId") != drift_run_id:
        return None
    if all(row.data.get(name) == value for name, value in changes.items()):
        return None
    return {**row.data, **changes}


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
