"""RunCompleted → model registration decisions: the run-tag contract, tag mapping and validation (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.handlers import HANDLERS
from app.intake import events
from app.intake.dispatch import process
from app.intake.events import RunCompletedData
from app.intake.outcome import OutcomeKind
from app.platform.errors import EventValidationError, PermanentError
from app.retraining.registration import (
    InvalidRunTag,
    RegisterModel,
    model_tags,
    registration_key,
    registration_payload,
    registration_request,
    validate_model_type,
)
from tests.envelopes import envelope
from tests.fakes import WORKSPACE, WORKSPACE_ID, FakeNotifier, ForbiddenFactory, make_deps, make_settings

pytestmark = pytest.mark.fast

RUN = RunCompletedData(
    experiment_id="0fa9dfaa",
    experiment_name="credit-train",
    run_id="train_1",
    run_type="azureml.PipelineRun",
    run_tags={},
    run_properties={},
)


def _run(**tags: str) -> RunCompletedData:
    return replace(RUN, run_tags=tags)


def test_a_run_without_register_model_asks_for_nothing() -> None:
    assert registration_request(_run(owner="risk", **{"model.deploy": "true"})) is None


def test_defaults_path_model_and_type_mlflow() -> None:
    assert registration_request(_run(register_model="credit_risk")) == RegisterModel(
        name="credit_risk",
        run_id="train_1",
        experiment="credit-train",
        path="azureml://jobs/train_1/outputs/artifacts/paths/model",
        model_type="mlflow_model",
        tags={"source_run_id": "train_1", "source_experiment": "credit-train"},
        description="Registered by aml-event-handler from run train_1 in experiment credit-train",
    )


def test_path_and_type_come_from_their_tags() -> None:
    request = registration_request(_run(register_model="m", model_path="/outputs/triton/", model_type="Triton_Model"))
    assert request is not None
    assert request.path == "azureml://jobs/train_1/outputs/artifacts/paths/outputs/triton"
    assert request.model_type == "triton_model"


def test_model_dot_tags_become_model_tags_and_source_tags_win() -> None:
    tags = {
        "register_model": "credit_risk",
        "model.deploy": "true",
        "model.endpoint": "credit",
        "Model.traffic": "20",
        "model.source_run_id": "spoofed",
        "model.": "no name",
        "owner": "risk",
        "modelx": "not a model tag",
    }
    request = registration_request(_run(**tags))
    assert request is not None
    assert request.tags == {
        "deploy": "true",
        "endpoint": "credit",
        "traffic": "20",
        "source_run_id": "train_1",
        "source_experiment": "credit-train",
    }


def test_the_experiment_id_stands_in_for_a_missing_name() -> None:
    assert model_tags({}, "r", "0fa9dfaa") == {"source_run_id": "r", "source_experiment": "0fa9dfaa"}


@pytest.mark.parametrize(("value", "model_type"), [("", "mlflow_model"), (" Custom_Model", "custom_model")])
def test_model_type_defaults_and_ignores_case(value: str, model_type: str) -> None:
    assert validate_model_type(value) == model_type


@pytest.mark.parametrize("value", ["onnx", "mlflow", "custom model", "model"])
def test_model_type_validation_names_tag_value_and_allowed_values(value: str) -> None:
    with pytest.raises(InvalidRunTag) as bad:
        registration_request(_run(register_model="m", model_type=value))
    assert isinstance(bad.value, PermanentError) and bad.value.tag == "model_type"
    names = ("'model_type'", repr(value), "custom_model", "mlflow_model", "triton_model")
    assert all(name in str(bad.value) for name in names)


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("register_model", ""),
        ("register_model", "-credit"),
        ("register_model", "credit risk"),
        ("model_path", "../secrets"),
        ("model_path", "outputs//model"),
        ("model_path", "a?b"),
    ],
)
def test_other_bad_tags_name_the_tag(tag: str, value: str) -> None:
    tags = {"register_model": "m", tag: value}
    with pytest.raises(InvalidRunTag) as bad:
        registration_request(_run(**tags))
    assert bad.value.tag == tag
    assert repr(tag) in str(bad.value) and repr(value) in str(bad.value)  # the tag and its value


def test_the_registration_key_is_per_workspace_and_run() -> None:
    key = registration_key(WORKSPACE, "train_1")
    assert key.partition.startswith("registration~mlw-devkit~") and key.row == "train_1"
    with pytest.raises(EventValidationError) as bad:
        registration_key(WORKSPACE, "runs/1")
    assert bad.value.field == "data.runId"


def test_the_registration_payload_changes_with_what_would_be_registered() -> None:
    request = registration_request(_run(register_model="credit_risk", **{"model.deploy": "true"}))
    assert request is not None
    same = registration_request(_run(**{"model.deploy": "true", "register_model": "credit_risk"}))
    assert same is not None and registration_payload(same) == registration_payload(request)
    for tags in ({"register_model": "fraud"}, {"register_model": "credit_risk", "model_type": "custom_model"}):
        other = registration_request(_run(**tags))
        assert other is not None and registration_payload(other) != registration_payload(request)


def _run_event(tags: dict[str, str]) -> Any:
    return envelope(
        {
            "id": "evt-run",
            "topic": WORKSPACE_ID,
            "eventType": events.RUN_COMPLETED,
            "subject": "experiments/e-1/runs/train_1",
            "data": {"experimentName": "credit-train", "runTags": tags},
        }
    )


def test_a_bad_model_type_is_rejected_after_the_run_notification_with_no_client() -> None:
    notifier, aml, table = FakeNotifier(), ForbiddenFactory("aml"), ForbiddenFactory("table")
    outcome = process(
        _run_event({"register_model": "m", "model_type": "onnx"}), make_deps(None, notifier, aml, table), HANDLERS
    )
    assert outcome.kind is OutcomeKind.REJECTED and "model_type" in outcome.text and "onnx" in outcome.text
    assert notifier.types == ["AmlEvents.Run.Completed"]
    assert (aml.calls, table.calls) == ([], [])


def test_plan_mode_registers_nothing() -> None:
    notifier, aml, table = FakeNotifier(), ForbiddenFactory("aml"), ForbiddenFactory("table")
    deps = make_deps(make_settings(deploy_mode="plan"), notifier, aml, table)
    outcome = process(_run_event({"register_model": "credit_risk"}), deps, HANDLERS)
    # What it would register: the run's output and the model's name.
    assert outcome.kind is OutcomeKind.PLANNED
    assert "azureml://jobs/train_1/outputs/artifacts/paths/model" in outcome.text and "credit_risk" in outcome.text
    assert notifier.types == ["AmlEvents.Run.Completed"]
    assert (aml.calls, table.calls) == ([], [])
