"""Signal → retraining decisions (pure): threshold, cooldown, deterministic job name, component inputs, job tags.

Two signals retrain: v1 data drift (``DatasetDriftDetected``, legacy) and a v2 model-monitoring threshold
breach (a run tagged ``azureml_modelmonitor_threshold_breached``). Both become a ``RetrainSignal``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.intake.events import DatasetDriftDetectedData
from app.platform.clock import as_utc
from app.platform.idempotency import RecordKey, record_key
from app.platform.settings import Settings
from app.platform.workspace import WorkspaceRef
from app.retraining.jobs import ComponentInfo, ComponentRef, PipelineJobRequest
from app.retraining.signals import MonitorBreach

#: The drift context offered to the retraining component; only the inputs it declares are passed.
DRIFT_INPUTS = (
    "monitor_name",
    "drift_run_id",
    "base_dataset_id",
    "target_dataset_id",
    "window_start",
    "window_end",
)
#: The monitoring context offered to the retraining component; only the inputs it declares are passed.
MONITOR_INPUTS = ("monitor_name", "monitor_run_id", "signal_name", "signal_run_id")
#: Tags every retraining job carries (they win over RETRAIN_JOB_TAGS of the same name).
TRIGGER_EVENT_TAG = "trigger_event_id"
TRIGGER_KIND_TAG = "trigger_kind"
DRIFT_RUN_TAG = "drift_run_id"
DRIFT_MONITOR_TAG = "drift_monitor"
MONITOR_RUN_TAG = "monitor_run_id"
MONITOR_NAME_TAG = "monitor_name"
MONITOR_SIGNAL_TAG = "monitor_signal"
DRIFT = "drift"
MONITOR = "monitor"
JOB_NAME_PREFIX = "retrain"
JOB_NAME_PART = 24  # characters kept from the monitor and from the run id; the digest keeps names unique
MAX_SKIPPED = 50  # skipped drift run ids remembered per monitor

#: The idempotency table's kinds: the monitor's cooldown record, and each drift run's job submission.
COOLDOWN_RECORD = "retraining"
SUBMISSION_RECORD = "retraining-job"

NOT_CONFIGURED = "not configured"
BELOW_THRESHOLD = "below threshold"
COOLDOWN = "cooldown"
PLAN_ONLY = "plan only"

_SLUG = re.compile(r"[^a-z0-9]+")


class Hold(StrEnum):
    """Whether the monitor's last retraining claim holds the monitor for the cooldown."""

    HELD = "held"  # a drift run claimed the monitor; its cooldown runs from the claim
    RELEASED = "released"  # its job could not be submitted (permanently): the next drift run may retrain at once


#: ``State`` values written before the enum (rows outlive upgrades).
_EARLIER_STATES = {"submitting": Hold.HELD, "submitted": Hold.HELD, "failed": Hold.RELEASED}


@dataclass(frozen=True)
class Cooldown:
    """The monitor's last retraining claim (its cooldown record), as ``decide_retraining`` needs it."""

    drift_run_id: str
    job_name: str
    claimed_at: dt.datetime
    state: Hold = Hold.HELD


@dataclass(frozen=True)
class RetrainSignal:
    """What asks for retraining, whichever event carried it.

    ``monitor`` keys the cooldown; ``run_id`` keys the job (one job per monitor run). ``measure`` is the drift
    coefficient compared with DRIFT_THRESHOLD, or None for a monitoring breach (the breach is the decision).
    """

    kind: str  # DRIFT or MONITOR
    monitor: str
    monitor_label: str
    run_id: str
    measure: float | None
    context: tuple[tuple[str, str], ...]  # component inputs offered, by name (empty values left out)
    tags: tuple[tuple[str, str], ...]  # the trigger's job tags
    payload: tuple[tuple[str, Any], ...]  # what makes two deliveries the same signal
    summary: str  # one phrase: "drift 0.830 on credit-monitor", "threshold breach of signal s on monitor m"
    facts: tuple[tuple[str, Any], ...] = ()  # for notifications


def drift_signal(drift: DatasetDriftDetectedData) -> RetrainSignal:
    """A v1 data-drift run as a retraining signal (legacy: SDK v1 data drift)."""
    label = drift.data_drift_name or drift.data_drift_id
    context = {
        "monitor_name": label,
        "drift_run_id": drift.run_id,
        "base_dataset_id": drift.base_dataset_id,
        "target_dataset_id": drift.target_dataset_id,
        "window_start": drift.start_time.isoformat() if drift.start_time else "",
        "window_end": drift.end_time.isoformat() if drift.end_time else "",
    }
    return RetrainSignal(
        kind=DRIFT,
        monitor=drift.data_drift_id or drift.data_drift_name,
        monitor_label=label,
        run_id=drift.run_id,
        measure=drift.drift_coefficient,
        context=tuple((name, value) for name, value in context.items() if value),
        tags=((DRIFT_RUN_TAG, drift.run_id), (DRIFT_MONITOR_TAG, label)),
        payload=(
            ("monitor", drift.data_drift_id or drift.data_drift_name),
            ("driftRunId", drift.run_id),
            ("driftCoefficient", drift.drift_coefficient),
        ),
        summary=f"drift {drift.drift_coefficient:.3f} on {label}",
        facts=(("driftRunId", drift.run_id), ("driftCoefficient", drift.drift_coefficient)),
    )


def breach_signal(breach: MonitorBreach) -> RetrainSignal:
    """A v2 model-monitoring threshold breach as a retraining signal: one job per monitor run."""
    context = {
        "monitor_name": breach.monitor,
        "monitor_run_id": breach.monitor_run_id,
        "signal_name": breach.signal,
        "signal_run_id": breach.run_id,
    }
    return RetrainSignal(
        kind=MONITOR,
        monitor=breach.monitor,
        monitor_label=breach.monitor,
        run_id=breach.monitor_run_id,
        measure=None,
        context=tuple((name, value) for name, value in context.items() if value),
        tags=(
            (MONITOR_RUN_TAG, breach.monitor_run_id),
            (MONITOR_NAME_TAG, breach.monitor),
            (MONITOR_SIGNAL_TAG, breach.signal),
        ),
        # Not the signal: every breached signal of one monitor run is the same retraining.
        payload=(("monitor", breach.monitor), ("monitorRunId", breach.monitor_run_id)),
        summary=f"threshold breach of signal {breach.signal or '?'} on monitor {breach.monitor}",
        facts=(("monitorRunId", breach.monitor_run_id), ("signal", breach.signal), ("signalRunId", breach.run_id)),
    )


def as_signal(trigger: RetrainSignal | DatasetDriftDetectedData) -> RetrainSignal:
    return trigger if isinstance(trigger, RetrainSignal) else drift_signal(trigger)


Trigger = RetrainSignal | DatasetDriftDetectedData


@dataclass(frozen=True)
class SkipRetraining:
    """No job: ``kind`` is one of NOT_CONFIGURED, BELOW_THRESHOLD, COOLDOWN, PLAN_ONLY."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Submit:
    """Submit ``component`` as pipeline job ``job_name`` (a duplicate finds the job and submits nothing)."""

    job_name: str
    component: ComponentRef
    experiment: str
    compute: str
    monitor: str
    drift_run_id: str  # the signal's run (a drift run, or a monitor run): one job per run
    duplicate: bool = False  # the monitor's record already names this run


def monitor_label(trigger: Trigger) -> str:
    return as_signal(trigger).monitor_label


def screen(trigger: Trigger, settings: Settings) -> SkipRetraining | None:
    """The checks that need no I/O: configured, above the threshold (drift only), allowed to write."""
    signal = as_signal(trigger)
    if not settings.retrain_pipeline_component:
        return SkipRetraining(
            NOT_CONFIGURED, "no retraining target: set RETRAIN_PIPELINE_COMPONENT to 'name:version' or 'name@latest'"
        )
    if signal.measure is not None and signal.measure < settings.drift_threshold:
        return SkipRetraining(
            BELOW_THRESHOLD,
            f"drift {signal.measure:g} is below DRIFT_THRESHOLD {settings.drift_threshold:g}",
        )
    if not settings.applies_changes:
        return SkipRetraining(
            PLAN_ONLY,
            f"DEPLOY_MODE=plan: would submit {settings.retrain_pipeline_component} as job "
            f"{job_name(signal.monitor, signal.run_id)} in experiment {settings.retrain_experiment}",
        )
    return None


def decide_retraining(
    trigger: Trigger, settings: Settings, cooldown: Cooldown | None, now: dt.datetime
) -> Submit | SkipRetraining:
    """Retrain or not. One job per signal run; at most one per monitor per RETRAIN_COOLDOWN_MINUTES."""
    signal = as_signal(trigger)
    skip = screen(signal, settings)
    if skip is not None:
        return skip
    held = cooldown is not None and cooldown.state is Hold.HELD
    duplicate = held and cooldown is not None and cooldown.drift_run_id == signal.run_id
    if cooldown is not None and held and not duplicate:
        until = cooldown.claimed_at + dt.timedelta(minutes=settings.retrain_cooldown_minutes)
        if now < until:
            return SkipRetraining(
                COOLDOWN,
                f"monitor {signal.monitor_label} was retrained by job {cooldown.job_name} ({signal.kind} run "
                f"{cooldown.drift_run_id}) at {cooldown.claimed_at.isoformat()}; RETRAIN_COOLDOWN_MINUTES="
                f"{settings.retrain_cooldown_minutes} holds further retraining until {until.isoformat()}",
            )
    return Submit(
        job_name=job_name(signal.monitor, signal.run_id),
        component=ComponentRef.parse(settings.retrain_pipeline_component),
        experiment=settings.retrain_experiment,
        compute=settings.retrain_compute,
        monitor=signal.monitor_label,
        drift_run_id=signal.run_id,
        duplicate=duplicate,
    )


def job_name(monitor: str, drift_run_id: str) -> str:
    """``retrain-{monitor}-{run}-{digest}``: deterministic, lower-case letters, digits and hyphens, <= 70 chars.

    The slugs keep it readable; the digest of the exact pair keeps two pairs that slug alike apart.
    """
    digest = hashlib.sha256(f"{monitor}\n{drift_run_id}".encode()).hexdigest()[:8]
    parts = [JOB_NAME_PREFIX, _slug(monitor), _slug(drift_run_id), digest]
    return "-".join(part for part in parts if part)


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower())[:JOB_NAME_PART].strip("-")


def drift_context(trigger: Trigger) -> dict[str, str]:
    """Every input the app can offer for this signal, by input name (empty values left out: AML rejects them)."""
    return dict(as_signal(trigger).context)


def select_inputs(declared_inputs: Iterable[str], trigger: Trigger) -> dict[str, str]:
    """The signal's context for the inputs the component declares, and only those."""
    context = drift_context(trigger)
    return {name: context[name] for name in declared_inputs if name in context}


def job_tags(settings: Settings, event_id: str, trigger: Trigger) -> dict[str, str]:
    """RETRAIN_JOB_TAGS plus the trigger: event id and the signal's run and monitor (monitoring: its signal too)."""
    signal = as_signal(trigger)
    trigger_tags = {TRIGGER_EVENT_TAG: event_id, **dict(signal.tags)}
    if signal.kind != DRIFT:
        trigger_tags[TRIGGER_KIND_TAG] = signal.kind
    return {**dict(settings.retrain_job_tags), **trigger_tags}


def pipeline_job_request(
    submit: Submit, component: ComponentInfo, settings: Settings, event_id: str, trigger: Trigger
) -> PipelineJobRequest:
    """The job to submit for ``submit`` once the component (and its declared inputs) is known."""
    signal = as_signal(trigger)
    title = "drift" if signal.kind == DRIFT else "monitoring breach"
    return PipelineJobRequest(
        name=submit.job_name,
        component_id=component.id,
        experiment=submit.experiment,
        inputs=select_inputs(component.inputs, signal),
        tags=job_tags(settings, event_id, signal),
        compute=submit.compute,
        display_name=f"Retrain on {title}: {submit.monitor} run {submit.drift_run_id}",
        description=(
            f"Submitted by aml-event-handler for {signal.summary} ({signal.kind} run {submit.drift_run_id}, "
            f"event {event_id}) with {component.name}:{component.version}."
        ),
    )


def cooldown_key(workspace: WorkspaceRef, trigger: Trigger) -> RecordKey:
    """The key of the monitor's cooldown record in the idempotency table."""
    signal = as_signal(trigger)
    if signal.kind == DRIFT:
        return record_key(
            COOLDOWN_RECORD, workspace, signal.monitor, field="data.dataDriftId", what="a drift monitor id"
        )
    return record_key(
        COOLDOWN_RECORD, workspace, f"{MONITOR}~{signal.monitor}", field="data.experimentName", what="a monitor name"
    )


def submission_key(workspace: WorkspaceRef, submit: Submit) -> RecordKey:
    """The key of the drift run's job submission record: the job's deterministic name."""
    return record_key(SUBMISSION_RECORD, workspace, submit.job_name, field="data.runId", what="a job name")


def submission_payload(trigger: Trigger) -> dict[str, Any]:
    """What makes two deliveries the same signal run (drift: the monitor, the run and the coefficient it measured).

    Not the RETRAIN_* settings: a redelivery after a settings change still finds the run's one job.
    """
    return dict(as_signal(trigger).payload)


def cooldown_of(record: Mapping[str, Any] | None) -> Cooldown | None:
    """The ``Cooldown`` stored in a monitor's idempotency row (None if there is none)."""
    if not record or not record.get("DriftRunId"):
        return None
    claimed = record["ClaimedAt"]
    if not isinstance(claimed, dt.datetime):
        claimed = dt.datetime.fromisoformat(str(claimed))
    return Cooldown(
        drift_run_id=str(record["DriftRunId"]),
        job_name=str(record.get("JobName") or ""),
        claimed_at=as_utc(claimed),
        state=_hold(str(record.get("State") or Hold.HELD.value)),
    )


def _hold(state: str) -> Hold:
    return _EARLIER_STATES.get(state) or Hold(state)


def claim_record(submit: Submit, event_id: str, now: dt.datetime) -> dict[str, Any]:
    """The monitor's row once ``submit`` is claimed (before the job is submitted)."""
    return {
        "DriftRunId": submit.drift_run_id,
        "JobName": submit.job_name,
        "ClaimedAt": now,
        "State": Hold.HELD.value,
        "EventId": event_id,
        "Skipped": "[]",
    }


def released_record(record: Mapping[str, Any] | None, drift_run_id: str) -> dict[str, Any] | None:
    """The monitor's row released from ``drift_run_id``'s claim; None if the row is no longer that run's."""
    if not record or record.get("DriftRunId") != drift_run_id or record.get("State") == Hold.RELEASED.value:
        return None
    return {**record, "State": Hold.RELEASED.value}


def skipped_record(record: Mapping[str, Any], drift_run_id: str) -> dict[str, Any] | None:
    """The row with ``drift_run_id`` added to the runs skipped in cooldown; None if it is there already."""
    skipped = list(json.loads(str(record.get("Skipped") or "[]")))
    if drift_run_id in skipped:
        return None
    return {**record, "Skipped": json.dumps([*skipped, drift_run_id][-MAX_SKIPPED:])}
