"""Model monitoring (v2) signals (pure): a threshold breach read from a run event's tags.

Azure ML's monitoring signal pipelines end with an evaluate step that tags its own run with
``azureml_modelmonitor_threshold_breached`` = "The signal '<name>' has failed due to one or more features
violating metric thresholds. ..." when a metric breaches its threshold. The step itself ends Completed, not
Failed (Azure/azureml-assets ``assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/
evaluate_metrics_threshold.py``; PR #1982 added the tag to identify the RunCompleted event). So the tag is the
breach, whatever ``runStatus`` says, and every later status event of the same run carries it again.
See docs/retraining.md and docs/research/azure-ml-events.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.intake.events import RunCompletedData

BREACH_TAG = "azureml_modelmonitor_threshold_breached"
#: Step runs of a pipeline carry their parent pipeline run's id in this run property.
PIPELINE_RUN_PROPERTY = "azureml.pipelinerunid"
#: MLflow's parent-run tag, on child runs.
PARENT_RUN_TAG = "mlflow.parentRunId"
_SIGNAL = re.compile(r"^\s*The signal '(?P<signal>[^']+)' has failed", re.IGNORECASE)


@dataclass(frozen=True)
class MonitorBreach:
    """A monitoring signal that breached its thresholds, as one run event tells it."""

    run_id: str  # the tagged run: the signal's evaluate step
    monitor_run_id: str  # the monitoring pipeline job the step belongs to (the step itself if unknown)
    monitor: str  # the monitor: the run's experiment name, else the signal name
    signal: str  # parsed from the tag text ('' if the text has another form)
    message: str  # the tag's text: which metrics breached which thresholds
    status: str  # the event's runStatus ('' for RunCompleted)


def breach_of(run: RunCompletedData) -> MonitorBreach | None:
    """The breach the run's tags report, or None. The tag being present and non-empty is the breach."""
    message = _lookup(run.run_tags, BREACH_TAG).strip()
    if not message:
        return None
    match = _SIGNAL.match(message)
    signal = match["signal"] if match else ""
    parent = parent_run_id(run)
    return MonitorBreach(
        run_id=run.run_id,
        monitor_run_id=parent or run.run_id,
        monitor=run.experiment_name or signal or run.experiment_id,
        signal=signal,
        message=message,
        status=getattr(run, "run_status", ""),
    )


def parent_run_id(run: RunCompletedData) -> str:
    """The parent pipeline run of a step or child run ('' for a top-level run)."""
    return (_lookup(run.run_properties, PIPELINE_RUN_PROPERTY) or _lookup(run.run_tags, PARENT_RUN_TAG)).strip()


def _lookup(values: Mapping[str, str], key: str) -> str:
    """``values[key]`` with the key compared case-insensitively (payload casing varies)."""
    if key in values:
        return values[key] or ""
    wanted = key.lower()
    return next((value or "" for name, value in values.items() if name.lower() == wanted), "")
