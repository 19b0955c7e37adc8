"""Retraining for a signal (drift or monitoring breach): hold the monitor, claim the run's job, find or submit it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.intake.outcome import Outcome, OutcomeKind
from app.notify.notifier import Notification
from app.platform.errors import RetryableError, is_retryable
from app.platform.idempotency import CLAIM_FOR, AlreadyDone, Idempotency, InProgressElsewhere
from app.retraining.decide import (
    COOLDOWN,
    DRIFT,
    PLAN_ONLY,
    RetrainSignal,
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
from app.retraining.jobs import JobInfo

if TYPE_CHECKING:
    from app.intake.events import AmlEvent
    from app.platform.idempotency import RecordKey
    from app.platform.tables import Row, Table
    from app.ports import Deps

logger = logging.getLogger(__name__)


def retrain(event: AmlEvent[Any], signal: RetrainSignal, deps: Deps) -> Outcome:
    """Decide and hold the monitor (its cooldown record), claim the signal run's submission, find or submit
    the job, report it, and record the job as the submission's result."""
    settings = deps.settings
    skip = screen(signal, settings)
    if skip is not None:
        # No client is created for a skip decided without I/O.
        return _skipped(event, deps, signal, skip)
    store = deps.table(settings.idempotency_table)
    hold = cooldown_key(event.workspace, signal)
    now = deps.clock()
    decision: Submit | SkipRetraining | None = None

    def claim(row: Row | None) -> dict[str, Any] | None:
        nonlocal decision
        decision = decide_retraining(signal, settings, cooldown_of(row.data if row else None), now)
        if isinstance(decision, Submit) and not decision.duplicate:
            return claim_record(decision, event.id, now)
        if isinstance(decision, SkipRetraining) and decision.kind == COOLDOWN and row is not None:
            return skipped_record(row.data, signal.run_id)
        return None

    store.update(hold.partition, hold.row, claim)
    assert decision is not None
    if isinstance(decision, SkipRetraining):
        return _skipped(event, deps, signal, decision)

    submissions = Idempotency(store, in_progress_for=CLAIM_FOR)
    outcome = submissions.claim(
        submission_key(event.workspace, decision), submission_payload(signal), now, DriftRunId=signal.run_id
    )
    if isinstance(outcome, AlreadyDone):
        # Completed only once its notification was sent: a duplicate has nothing left to do.
        job_name = outcome.result["job"]
        logger.info("%s duplicate: %s run %s already has job %s", event.label, signal.kind, signal.run_id, job_name)
        return Outcome(
            OutcomeKind.DUPLICATE, f"duplicate: {signal.kind} run {signal.run_id} already has retraining job {job_name}"
        )
    if isinstance(outcome, InProgressElsewhere):
        raise RetryableError(
            f"{signal.kind} run {signal.run_id}'s retraining job is being submitted by another delivery"
        )
    try:
        job, submitted = _find_or_submit(event, deps, signal, decision, store, hold)
        _notify_submitted(event, deps, signal, decision, job, submitted)
    except Exception:
        # The redelivery claims the submission again at once (the monitor stays held unless released above).
        submissions.release(outcome.record)
        raise
    result = {"job": job.name, "status": job.status, "submitted": submitted}
    submissions.complete(outcome.record, result, deps.clock())
    verb = "submitted" if submitted else "found"
    return Outcome(
        OutcomeKind.HANDLED,
        f"retraining {verb}: job {job.name} ({decision.component}) for {signal.kind} run {signal.run_id}",
    )


def _find_or_submit(
    event: AmlEvent[Any], deps: Deps, signal: RetrainSignal, decision: Submit, store: Table, hold: RecordKey
) -> tuple[JobInfo, bool]:
    """The job named for this signal run; submitted only if AML does not have it yet."""
    gateway = deps.aml(event.workspace)
    try:
        job = gateway.get_job(decision.job_name)
        if job is not None:
            logger.info("%s job %s exists (status %s); nothing submitted", event.label, job.name, job.status)
            return job, False
        component = gateway.get_component(decision.component)
        request = pipeline_job_request(decision, component, deps.settings, event.id, signal)
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
            # Nothing was submitted and no redelivery will: free the monitor for its next signal run.
            store.update(
                hold.partition, hold.row, lambda row: released_record(row.data if row else None, signal.run_id)
            )
        raise


def _reason(signal: RetrainSignal, deps: Deps) -> str:
    if signal.kind == DRIFT and signal.measure is not None:
        return f"drift {signal.measure:g} >= DRIFT_THRESHOLD {deps.settings.drift_threshold:g}"
    return f"{signal.summary}: the breach is the decision (no threshold)"


def _run_link(event: AmlEvent[Any], signal: RetrainSignal) -> dict[str, str]:
    return {f"{signal.kind}Run": event.workspace.studio_link(f"runs/{signal.run_id}")}


def _notify_submitted(
    event: AmlEvent[Any], deps: Deps, signal: RetrainSignal, decision: Submit, job: JobInfo, submitted: bool
) -> None:
    summary = (
        f"Retraining {'submitted' if submitted else 'already submitted'} for {signal.summary}: "
        f"job {job.name} ({decision.component}) in experiment {decision.experiment}"
    )
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Retraining.Submitted",
            summary,
            facts={
                "monitor": decision.monitor,
                **dict(signal.facts),
                "job": job.name,
                "jobStatus": job.status,
                "component": str(decision.component),
                "experiment": decision.experiment,
                "reason": _reason(signal, deps),
            },
            links={"job": event.workspace.studio_link(f"runs/{job.name}"), **_run_link(event, signal)},
        )
    )


def _skipped(event: AmlEvent[Any], deps: Deps, signal: RetrainSignal, skip: SkipRetraining) -> Outcome:
    logger.info("%s retraining skipped (%s): %s", event.label, skip.kind, skip.reason)
    deps.notifier.send(
        Notification.about(
            event,
            "AmlEvents.Retraining.Skipped",
            f"Retraining skipped ({skip.kind}): {skip.reason}",
            facts={"monitor": signal.monitor_label, **dict(signal.facts), "kind": skip.kind, "reason": skip.reason},
            links=_run_link(event, signal),
        )
    )
    kind = OutcomeKind.PLANNED if skip.kind == PLAN_ONLY else OutcomeKind.SKIPPED
    return Outcome(kind, f"retraining skipped ({skip.kind}): {skip.reason}")
