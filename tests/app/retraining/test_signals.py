"""Model-monitoring breaches read from run events (pure)."""

from __future__ import annotations

import pytest

from app.intake.events import RunCompletedData, RunStatusChangedData
from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from app.retraining.registration import InvalidRunTag, JobOutput, RegisterModel, from_job_output
from app.retraining.signals import BREACH_TAG, breach_of

pytestmark = pytest.mark.fast

TEXT = (
    "The signal 'churn-monitor_prediction_drift' has failed due to one or more features violating metric "
    "thresholds.\nThe feature names and their corresponding computed metric values violating the threshold are \n[]"
)


def _run(
    tags: dict[str, str], properties: dict[str, str] | None = None, status: str = "Completed"
) -> RunStatusChangedData:
    return RunStatusChangedData(
        experiment_id="e-1",
        experiment_name="churn-monitor",
        run_id="step-1",
        run_type="azureml.StepRun",
        run_tags=tags,
        run_properties=properties or {},
        run_status=status,
    )


@pytest.mark.parametrize("status", ["Completed", "Failed", "failed", "Finalizing", "Running"])
def test_the_tag_is_the_breach_whatever_the_status(status: str) -> None:
    breach = breach_of(_run({BREACH_TAG: TEXT}, {"azureml.pipelinerunid": "monitor-run-7"}, status))
    assert breach is not None
    assert (breach.monitor, breach.signal, breach.monitor_run_id, breach.run_id) == (
        "churn-monitor",
        "churn-monitor_prediction_drift",
        "monitor-run-7",
        "step-1",
    )
    assert breach.status == status


@pytest.mark.parametrize("tags", [{}, {BREACH_TAG: ""}, {BREACH_TAG: "   "}, {"other": TEXT}])
def test_no_tag_or_an_empty_one_is_no_breach(tags: dict[str, str]) -> None:
    assert breach_of(_run(tags, status="Failed")) is None


def test_the_tag_key_is_matched_case_insensitively_and_the_parent_falls_back_to_mlflow() -> None:
    breach = breach_of(_run({BREACH_TAG.upper(): TEXT, "mlflow.parentRunId": "monitor-run-8"}))
    assert breach is not None and breach.monitor_run_id == "monitor-run-8"


def test_a_breach_on_run_completed_has_no_status_and_a_top_level_run_is_its_own_monitor_run() -> None:
    run = RunCompletedData("e-1", "", "step-2", "", {BREACH_TAG: "some other wording"}, {})
    breach = breach_of(run)
    assert breach is not None
    # No experiment name and no parsable signal: the experiment id keys the monitor.
    assert (breach.monitor, breach.signal, breach.monitor_run_id, breach.status) == ("e-1", "", "step-2", "")


REQUEST = RegisterModel(
    name="fraud",
    run_id="job-1",
    experiment="x",
    path="azureml://jobs/job-1/outputs/artifacts/paths/model",
    model_type="mlflow_model",
    tags={},
    description="",
)
OUTPUTS = {
    "trained_model": JobOutput("trained_model", "custom_model", "azureml://datastores/d/paths/a/"),
    "report": JobOutput("report", "uri_folder", "azureml://datastores/d/paths/b/"),
}


def test_a_pipeline_registers_its_only_model_output_by_its_uri_and_type() -> None:
    resolved = from_job_output(REQUEST, OUTPUTS, pipeline=True)
    assert (resolved.path, resolved.model_type, resolved.output) == (
        "azureml://datastores/d/paths/a/",
        "custom_model",
        "trained_model",
    )


def test_model_output_names_the_output_and_a_missing_uri_is_addressed_by_name() -> None:
    outputs = {"report": JobOutput("report", "uri_folder", "")}
    resolved = from_job_output(RegisterModel(**{**REQUEST.__dict__, "output": "report"}), outputs, pipeline=False)
    assert (resolved.path, resolved.model_type) == ("azureml://jobs/job-1/outputs/report", "mlflow_model")


def test_a_command_job_without_model_output_keeps_its_artifacts_path() -> None:
    assert from_job_output(REQUEST, OUTPUTS, pipeline=False) == REQUEST


def test_a_pipeline_without_the_output_names_the_tag_and_lists_its_outputs() -> None:
    outputs = {"a": JobOutput("a", "mlflow_model", "u"), "b": JobOutput("b", "mlflow_model", "v")}
    with pytest.raises(
        InvalidRunTag, match=r"model_output.*has no such output.*a \(mlflow_model\), b \(mlflow_model\)"
    ):
        from_job_output(REQUEST, outputs, pipeline=True)


def test_notify_run_statuses_default_parse_and_errors() -> None:
    assert settings_from_env({}).notify_run_statuses == {"failed", "canceled"}
    assert settings_from_env({"NOTIFY_RUN_STATUSES": "FAILED, NotResponding"}).notify_run_statuses == {
        "failed",
        "notresponding",
    }
    with pytest.raises(SettingsError, match="NOTIFY_RUN_STATUSES: cancelled is not an Azure ML run status"):
        settings_from_env({"NOTIFY_RUN_STATUSES": "Failed,Cancelled"})
