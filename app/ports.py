"""The ports: what the app's use cases need from the outside world, as typed protocols, and ``Deps``, which hands
them to the handlers, the engine and the API.

Each port has an adapter in ``app/azure/`` (built by ``app/wiring.py``) and a hand-written fake in ``tests/``.
The table port (the ledger's and the idempotency records' store) is ``app.platform.tables.Table``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.notify.notifier import Notification
from app.platform.clock import utc_now
from app.platform.errors import PermanentError, RetryableError
from app.platform.settings import Settings
from app.platform.tables import Table
from app.platform.workspace import WorkspaceRef
from app.retraining.jobs import ComponentInfo, ComponentRef, JobInfo, PipelineJobRequest
from app.retraining.registration import JobOutput, RegisterModel
from app.rollout.decide.followup import FollowUp
from app.rollout.decide.gate import MetricWindow
from app.rollout.decide.model import DeploymentView, EndpointView, ModelInfo, RolloutPlan
from app.rollout.decide.registry_model import (
    PromotedVersions,
    PromotionEvidence,
    RegistryModelVersion,
    SharedVersion,
    WorkspaceModelRef,
)
from app.rollout.decide.smoke import SmokeResult, SmokeSample


class ModelNotFound(PermanentError):
    """The model version named by the event does not exist (any more)."""


@dataclass(frozen=True)
class JobDetail:
    """A job as ARM reports it: its authoritative status, its type and its named outputs."""

    name: str
    status: str
    job_type: str  # ARM ``jobType``: Pipeline, Command, Sweep, AutoML, ...
    outputs: Mapping[str, JobOutput]

    @property
    def is_pipeline(self) -> bool:
        return self.job_type.lower() == "pipeline"


class AzureMl(Protocol):
    """Azure ML, for one workspace: models, online endpoints and deployments, jobs (``app/azure/aml.py``).

    Writes are sent without waiting for their long-running operation; the next ``observe`` tells how they went.
    """

    @property
    def workspace(self) -> WorkspaceRef: ...

    def get_model(self, name: str, version: str) -> ModelInfo:
        """The model version as registered; ``ModelNotFound`` when it does not exist."""
        ...

    def model_names(self) -> Iterator[str]: ...

    def newest_opted_in(self, name: str, tag: str) -> ModelInfo | None: ...

    def canonical_id(self) -> str: ...

    def location(self) -> str:
        """The workspace's Azure region (its endpoints' region)."""
        ...

    def observe(self, endpoint: str, known: Sequence[DeploymentView] | None = None) -> EndpointView | None:
        """The endpoint with its deployments, or None when it does not exist.

        ``known``: the deployments as last listed, when no write since could have changed them (only a traffic
        split was written). They stand in for the list unless the split names a deployment they lack: one ARM
        read instead of two."""
        ...

    def create_endpoint(self, name: str) -> None: ...

    def create_deployment(self, plan: RolloutPlan, now: dt.datetime) -> None: ...

    def set_traffic(self, endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> None: ...

    def delete_deployment(self, endpoint: str, deployment: str) -> None: ...

    def get_logs(self, endpoint: str, deployment: str) -> str: ...

    def get_component(self, ref: ComponentRef) -> ComponentInfo: ...

    def get_job(self, name: str) -> JobInfo | None: ...

    def read_job(self, name: str) -> JobDetail | None: ...

    def submit_pipeline_job(self, request: PipelineJobRequest) -> JobInfo: ...

    def find_model_version_from_run(self, name: str, run_id: str) -> str | None: ...

    def register_model_from_run(self, request: RegisterModel) -> str: ...


class MetricsSource(Protocol):
    """An online endpoint's platform metrics for a window: the gate's input (``app/azure/metrics.py``)."""

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow: ...


class BatchMetricsSource(Protocol):
    """Many endpoints' metrics of one region in one read (``metrics:getBatch``, ``app/azure/metrics_batch.py``)."""

    def read_windows(
        self, region: str, endpoint_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> dict[str, MetricWindow]:
        """Each endpoint's window by lower-cased endpoint id; an endpoint the answer leaves out is missing."""
        ...


class SmokeClient(Protocol):
    """Sends one sample request to one deployment alone (``app/azure/scoring.py``)."""

    def run(self, endpoint: str, deployment: str, sample: SmokeSample, wait_s: float | None = None) -> SmokeResult:
        """Its classified answer; raises ``RetryableError`` when the request could not be sent."""
        ...


class RegistryError(PermanentError):
    """A registry problem no retry can fix; the message names what to change."""


class RegistryNotFound(RegistryError):
    """Registry discovery does not know the registry's name."""


class SourceModelNotFound(RegistryError):
    """The workspace model version to share does not exist."""


class RegistryConflict(RegistryError):
    """The registry holds this name and version with other content than the model being shared."""


class RegistryVersionNotFound(RegistryError):
    """Not readable after the bounded retries (``waited_s``); a caller that knows it was just shared may retry."""

    def __init__(self, message: str, waited_s: float) -> None:
        super().__init__(message)
        self.waited_s = waited_s


class RegistryBusy(RetryableError):
    """The registry is still copying this version: a later attempt finishes the job."""


class Registry(Protocol):
    """One Azure ML registry (``app/azure/registry.py``): the staging app shares into it, production reads it."""

    @property
    def name(self) -> str: ...

    def share(
        self,
        source: WorkspaceModelRef,
        evidence: PromotionEvidence,
        *,
        carry_tags: Sequence[str] | None = None,
        stage: str | None = None,
    ) -> SharedVersion:
        """Copy ``source`` into the registry with ``evidence`` (idempotent); blocks for the whole copy."""
        ...

    def get(self, name: str, version: str) -> RegistryModelVersion:
        """The version, read again (bounded) while it lags; ``RegistryVersionNotFound`` after that."""
        ...

    def list_promoted(
        self, since: dt.datetime | None, *, max_models: int = 100, max_reads: int = 200, max_versions: int = 100
    ) -> PromotedVersions:
        """Versions created at or after ``since``, oldest first, within the bounds on reads."""
        ...


class FollowUps(Protocol):
    """Where a follow-up look at an endpoint is scheduled (``app/azure/queue.py``)."""

    def schedule(self, followup: FollowUp, delay: dt.timedelta | float) -> None: ...


class Notifications(Protocol):
    """Where notifications go (``app/notify``): sent once each, failures reported, never raised but retryable."""

    def send(self, notification: Notification) -> None: ...

    def flush(self) -> int: ...


class _NotWired:
    """The default of an optional port: using it says which port the caller forgot to pass."""

    def __init__(self, port: str) -> None:
        self.port = port

    def __call__(self, *_: object) -> object:
        raise RuntimeError(f"the {self.port} port is not wired: pass it in Deps (app/wiring.py does in production)")


@dataclass(frozen=True)
class Deps:
    """Handed to every handler, the engine and the API. Factories, so nothing Azure-facing is built unless used."""

    settings: Settings
    notifier: Notifications
    aml: Callable[[WorkspaceRef], AzureMl]
    table: Callable[[str], Table]
    clock: Callable[[], dt.datetime] = utc_now
    #: The smoke test's scoring client for a workspace.
    smoke: Callable[[WorkspaceRef], SmokeClient] = _NotWired("smoke")  # type: ignore[assignment]  # noqa: RUF009
    #: The Azure Monitor reader for a workspace.
    metrics: Callable[[WorkspaceRef], MetricsSource] = _NotWired("metrics")  # type: ignore[assignment]  # noqa: RUF009
    #: Where follow-up checks are scheduled after each AML write; None: no follow-ups, the timer alone advances.
    followups: Callable[[], FollowUps] | None = None
    #: The batch metrics reader for a busy tick's gates; None: each gate is read on its own.
    metrics_batch: Callable[[], BatchMetricsSource] | None = None
    #: Whether Azure Resource Manager says this app's reads run short (idle looks then wait for a later tick).
    arm_reads_short: Callable[[], bool] = lambda: False
    #: An Azure ML registry, by name (promotion: the staging app shares into it, production reads it).
    registry: Callable[[str], Registry] = _NotWired("registry")  # type: ignore[assignment]  # noqa: RUF009
