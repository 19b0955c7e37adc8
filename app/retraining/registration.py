"""RunCompleted → model registration decisions (pure): the run-tag contract, validated, into a registration request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.intake.events import RunCompletedData
from app.platform.errors import PermanentError
from app.platform.idempotency import RecordKey, record_key
from app.platform.quoting import quoted
from app.platform.workspace import WorkspaceRef

REGISTER_TAG = "register_model"
PATH_TAG = "model_path"
OUTPUT_TAG = "model_output"
#: A pipeline's output registered when ``model_output`` is not given and no single model-typed output decides.
DEFAULT_OUTPUT = "model"
TYPE_TAG = "model_type"
MODEL_TAG_PREFIX = "model."
DEFAULT_PATH = "model"
DEFAULT_TYPE = "mlflow_model"
#: The registration records' kind in the idempotency table.
REGISTRATION = "registration"
#: azure.ai.ml.constants.AssetTypes for models.
MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
SOURCE_RUN_TAG = "source_run_id"
SOURCE_EXPERIMENT_TAG = "source_experiment"
#: Azure ML asset names: a letter or digit, then letters, digits, '-', '_' and '.', up to 255 characters.
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_BAD_PATH = re.compile(r"[\\?#%\s]")


class InvalidRunTag(PermanentError):
    """A run tag of the registration contract has a value no retry can fix. The message names the tag."""

    def __init__(self, tag: str, value: str, problem: str) -> None:
        super().__init__(f"run tag {tag!r}={quoted(value)}: {problem}")
        self.tag = tag
        self.value = value


class RunRegisteredOtherwise(PermanentError):
    """The run was already claimed for a registration with other tags: one run registers one model."""

    def __init__(self, run_id: str, model: str, status: str, asked: str) -> None:
        super().__init__(
            f"run {run_id} is already {status} for model {model} with other run tags; the tags now ask for "
            f"model {asked}: a run registers one model, so start a new run to register another"
        )


@dataclass(frozen=True)
class JobOutput:
    """A job's named output as Azure ML reports it (``properties.outputs``)."""

    name: str
    type: str  # jobOutputType: uri_folder, uri_file, mlflow_model, custom_model, triton_model, mltable
    uri: str


@dataclass(frozen=True)
class RegisterModel:
    """Register ``path`` (a job output) as a new version of model ``name``."""

    name: str
    run_id: str
    experiment: str
    path: str
    model_type: str
    tags: Mapping[str, str]
    description: str
    output: str = ""  # the named output asked for by ``model_output`` ('' = the run's own artifacts)


def registration_request(run: RunCompletedData) -> RegisterModel | None:
    """The registration a completed run asks for through its tags; None if it asks for none.

    Raises ``InvalidRunTag`` naming the tag, the value and what is allowed.
    """
    tags = {key.strip(): value.strip() for key, value in run.run_tags.items()}
    if REGISTER_TAG not in tags:
        return None
    name = tags[REGISTER_TAG]
    if not _ASSET_NAME.match(name):
        raise InvalidRunTag(
            REGISTER_TAG,
            name,
            "must be a model name: a letter or digit, then letters, digits, '-', '_' or '.' (at most 255)",
        )
    model_type = validate_model_type(tags.get(TYPE_TAG, ""))
    path = model_path(tags.get(PATH_TAG, ""))
    output = tags.get(OUTPUT_TAG, "")
    if output and not _ASSET_NAME.match(output):
        raise InvalidRunTag(OUTPUT_TAG, output, "must name one of the job's outputs (letters, digits, '-', '_')")
    experiment = run.experiment_name or run.experiment_id
    return RegisterModel(
        name=name,
        run_id=run.run_id,
        experiment=experiment,
        path=f"azureml://jobs/{run.run_id}/outputs/artifacts/paths/{path}",
        model_type=model_type,
        tags=model_tags(tags, run.run_id, experiment),
        description=f"Registered by aml-event-handler from run {run.run_id} in experiment {experiment}",
        output=output,
    )


def from_job_output(request: RegisterModel, outputs: Mapping[str, JobOutput], *, pipeline: bool) -> RegisterModel:
    """``request`` pointed at the job's named output, by that output's own URI.

    A pipeline job runs no code of its own, so its artifact store has no model: the model is one of its named
    outputs (bound to the step that produced it). Which one: the ``model_output`` tag; else the only output of
    a model type; else the output called ``model``. A command job without ``model_output`` keeps its artifacts
    path. Raises ``InvalidRunTag`` naming ``model_output`` and the outputs there are.
    """
    if not request.output and not pipeline:
        return request
    name = request.output or _default_output(outputs)
    output = next((item for key, item in outputs.items() if key.lower() == (name or "").lower()), None)
    if output is None:
        listed = ", ".join(f"{key} ({item.type})" for key, item in sorted(outputs.items())) or "none"
        raise InvalidRunTag(
            OUTPUT_TAG,
            request.output,
            f"{'the pipeline' if pipeline else 'the job'} {request.run_id} has no such output; set {OUTPUT_TAG} "
            f"to one of its outputs: {listed}",
        )
    path = output.uri or f"azureml://jobs/{request.run_id}/outputs/{output.name}"
    model_type = output.type.lower() if output.type.lower() in MODEL_TYPES else request.model_type
    return replace(request, path=path, model_type=model_type, output=output.name)


def _default_output(outputs: Mapping[str, JobOutput]) -> str:
    models = [key for key, item in outputs.items() if item.type.lower() in MODEL_TYPES]
    return models[0] if len(models) == 1 else DEFAULT_OUTPUT


def validate_model_type(value: str) -> str:
    """The ``model_type`` tag (default mlflow_model), or ``InvalidRunTag`` listing the allowed values."""
    model_type = value.strip().lower() or DEFAULT_TYPE
    if model_type not in MODEL_TYPES:
        raise InvalidRunTag(TYPE_TAG, value, f"not a model type; allowed values: {', '.join(MODEL_TYPES)}")
    return model_type


def model_path(value: str) -> str:
    """The ``model_path`` tag (default ``model``): a relative path inside the run's artifacts."""
    path = value.strip().strip("/") or DEFAULT_PATH
    if _BAD_PATH.search(path) or any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidRunTag(
            PATH_TAG, value, "must be a relative path inside the run's outputs (no '..', spaces, '\\', '?', '#', '%')"
        )
    return path


def model_tags(run_tags: Mapping[str, str], run_id: str, experiment: str) -> dict[str, str]:
    """Every ``model.X`` run tag as model tag ``X``, plus ``source_run_id`` and ``source_experiment`` (which win)."""
    tags = {
        key[len(MODEL_TAG_PREFIX) :]: value
        for key, value in run_tags.items()
        if key.lower().startswith(MODEL_TAG_PREFIX) and key[len(MODEL_TAG_PREFIX) :]
    }
    tags[SOURCE_RUN_TAG] = run_id
    tags[SOURCE_EXPERIMENT_TAG] = experiment
    return tags


def registration_key(workspace: WorkspaceRef, run_id: str) -> RecordKey:
    """The key of the run's registration record in the idempotency table: one registration per run."""
    return record_key(REGISTRATION, workspace, run_id, field="data.runId", what="an Azure ML run id")


def registration_payload(request: RegisterModel) -> dict[str, Any]:
    """What makes two registrations of a run the same: model name, path, type and tags.

    A redelivered RunCompleted carries the same tags. A run whose tags ask for another model than the
    one it was registered as is a ``PayloadMismatch`` (one run registers one model), never a silent duplicate.
    """
    return {"name": request.name, "path": request.path, "type": request.model_type, "tags": dict(request.tags)}
