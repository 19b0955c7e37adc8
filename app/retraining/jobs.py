"""Azure ML jobs and components as the retraining sees them (pure data): the component to run, the job to submit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.platform.errors import PermanentError


@dataclass(frozen=True)
class ComponentRef:
    """``RETRAIN_PIPELINE_COMPONENT`` parsed: ``name:version`` or ``name@latest``."""

    name: str
    version: str | None = None
    label: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ComponentRef:
        spec = spec.strip().removeprefix("azureml:")
        if spec.endswith("@latest"):
            return cls(name=spec.removesuffix("@latest"), label="latest")
        name, _, version = spec.rpartition(":")
        if not name or not version:
            raise ValueError(f"{spec!r} is not 'name:version' or 'name@latest'")
        return cls(name=name, version=version)

    def __str__(self) -> str:
        return f"{self.name}@{self.label}" if self.label else f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component version as AML resolved it."""

    name: str
    version: str
    id: str
    type: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class JobInfo:
    """A job as AML reports it."""

    name: str
    status: str
    experiment: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class PipelineJobRequest:
    """What ``AmlGateway.submit_pipeline_job`` sends."""

    name: str
    component_id: str
    experiment: str
    inputs: Mapping[str, str]
    tags: Mapping[str, str]
    compute: str
    display_name: str
    description: str


class RetrainingTargetInvalid(PermanentError):
    """RETRAIN_PIPELINE_COMPONENT names no registered pipeline component. The message names the setting."""
