"""Where the scenarios run: one ``Target`` interface, with the work both targets share done once, here."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.azure.aml import arm_endpoint
from app.intake.events import MODEL_REGISTERED
from app.platform.workspace import WorkspaceRef

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    from acceptance.promotion import ProductionSide

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).parent / "models"
#: States a rollout leaves on its own (see app.rollout.decide.model.State).
ACTIVE_STATES = frozenset({"pending", "deploying"})
#: ... and, for a rollout in traffic steps, the state it bakes in between them.
PROGRESSIVE_STATES = ACTIVE_STATES | {"baking"}
#: What the scoring load sends: two rows the shipped models answer (their signature: x1, x2).
SCORING_REQUEST = {"input_data": {"columns": ["x1", "x2"], "index": [0, 1], "data": [[1.0, 2.0], [3.0, 4.0]]}}


@dataclass(frozen=True)
class ModelSource:
    """One of the tiny MLflow models shipped in ``acceptance/models/``."""

    name: str
    loads: bool  # False: the scoring container cannot load it, so its deployment fails
    slow: bool = False  # True: it answers right, but each request takes about a second (a latency regression)

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.name


MODELS: Mapping[str, ModelSource] = {
    "tiny": ModelSource("tiny", loads=True),
    "broken": ModelSource("broken", loads=False),
    "slow": ModelSource("slow", loads=True, slow=True),
}


def source_of(model_uri: str) -> ModelSource | None:
    """The shipped model a registered model's path points at (``.../tiny/`` or ``.../broken/``), if any."""
    last = model_uri.rstrip("/").rsplit("/", 1)[-1]
    return MODELS.get(last)


@dataclass(frozen=True)
class Registration:
    """A model version the suite registered, and the ``ModelRegistered`` event AML published for it (if seen)."""

    model: str
    version: str
    tags: Mapping[str, str]
    source: ModelSource
    event: Mapping[str, Any] | None = None


@dataclass
class Created:
    """What a run may have created in the workspace; recorded *before* it is created, so Ctrl-C can't lose it."""

    endpoints: list[str] = field(default_factory=list)
    models: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.endpoints or self.models)


#: Why the promotion scenario is skipped on a target without a production side.
NOT_CONFIGURED = (
    "the promotion scenario needs a production workspace, its app and a registry: set ACCEPTANCE_REGISTRY and the "
    "ACCEPTANCE_PROD_* variables (acceptance/README.md)"
)


class Unavailable(Exception):
    """A scenario needs something this target does not have; the message says what to set."""


class TargetError(Exception):
    """The target cannot be reached or refuses the suite; the message names the setting to check."""


class Timeout(Exception):
    """Something did not happen within its time limit; the message says what and shows the last state seen."""


def model_registered_event(
    workspace: WorkspaceRef, model: str, version: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """A ``ModelRegistered`` event as Azure ML publishes it through Event Grid (Event Grid schema)."""
    return {
        "id": str(uuid.uuid4()),
        "topic": workspace.arm_id,
        "subject": f"models/{model}:{version}",
        "eventType": MODEL_REGISTERED,
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "data": {"modelName": model, "modelVersion": version, "modelTags": dict(tags), "modelProperties": {}},
        "dataVersion": "2",
        "metadataVersion": "1",
    }


class Target(ABC):
    """A workspace plus the app watching it. Scenarios use only the public methods below.

    Registering goes through azure-ai-ml, ARM is read through the AML management client and the app is observed
    through its status API, on both targets; the subclasses say how events reach the app and how time passes.
    """

    name = "target"
    instance_type = "Standard_DS2_v2"
    extra_tags: Mapping[str, str] = {}  # e.g. the ``stage`` tag an app with DEPLOY_STAGE requires
    settle_timeout_s = 60.0
    delivery_timeout_s = 30.0
    cleanup_timeout_s = 60.0
    #: The ``bake`` tag of the progressive scenarios: long enough for complete metric minutes at every step.
    bake = "5m"

    def __init__(self) -> None:
        self.created = Created()
        self._ml: MLClient | None = None
        self._mgmt: MachineLearningServicesMgmtClient | None = None
        self.production: ProductionSide | None = None  # the promotion scenario's, once it asked for it

    # ------------------------------------------------------------------ what a subclass provides

    @property
    @abstractmethod
    def workspace(self) -> WorkspaceRef:
        """The workspace the suite registers models in."""

    @abstractmethod
    def credential(self) -> TokenCredential:
        """The credential azure-ai-ml and the management client use."""

    @abstractmethod
    def model_path(self, source: ModelSource) -> str:
        """What ``Model(path=...)`` gets for a shipped model: a local folder (uploaded) or an ``azureml://`` path."""

    @abstractmethod
    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/rollouts`` with ``params``: the app's ledger rows."""

    @abstractmethod
    def post_event(self, event: Mapping[str, Any]) -> None:
        """Hand one event to the app's Event Grid trigger, as Event Grid does."""

    @abstractmethod
    def pass_time(self) -> None:
        """Let the app and Azure ML make progress before the next look (offline: one reconciler tick)."""

    @abstractmethod
    def scoring_load(self, endpoint: str) -> contextlib.AbstractContextManager[None]:
        """While the block runs, callers score ``endpoint`` (the traffic the metric gates judge), and time passes
        as the gates need it (offline: emulated, a minute a look)."""

    def _after_register(self, registration: Registration) -> Registration:
        """Hook: what happens right after AML accepted a registration (offline: collect AML's event)."""
        return registration

    def _deliver(self, registration: Registration) -> None:
        """Hook: get the registration's event to the app (live: Event Grid does it by itself)."""
        return None

    def cannot_redeliver(self) -> str | None:
        """Why this target cannot hand the app an event itself (None: it can)."""
        return None

    def promotion(self) -> ProductionSide:
        """The production side of a promotion (``acceptance/promotion.py``); ``Unavailable`` when there is none."""
        raise Unavailable(NOT_CONFIGURED)

    def cannot_script_faults(self) -> str | None:
        """Why this target cannot make Azure fail on cue (None: it can, as the dev kit's emulators can)."""
        return "a real Azure Monitor cannot be told to fail: this scenario runs offline only"

    def metrics_outage(self, minutes: float, status: int = 503) -> None:
        """Azure Monitor answers the app's metrics reads with ``status`` for ``minutes`` from now (offline: the
        emulator's time). Only where ``cannot_script_faults`` is None."""
        raise Unavailable(self.cannot_script_faults() or "no scripted faults on this target")

    def check(self) -> None:
        """Raise ``TargetError`` naming the setting to fix if the target cannot be used (before creating anything)."""
        return None

    def start(self) -> Target:
        return self

    def stop(self) -> None:
        """Release what ``start`` acquired."""
        return None

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients

    @property
    def ml(self) -> MLClient:
        if self._ml is None:
            from azure.ai.ml import MLClient

            ws = self.workspace
            self._ml = MLClient(self.credential(), ws.subscription_id, ws.resource_group, ws.workspace_name)
        return self._ml

    @property
    def mgmt(self) -> MachineLearningServicesMgmtClient:
        if self._mgmt is None:
            from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

            self._mgmt = MachineLearningServicesMgmtClient(
                self.credential(), self.workspace.subscription_id, base_url=arm_endpoint()
            )
        return self._mgmt

    @property
    def _scope(self) -> tuple[str, str]:
        return self.workspace.resource_group, self.workspace.workspace_name

    # ------------------------------------------------------------------ the scenarios' interface

    def track_endpoint(self, endpoint: str) -> str:
        """Record an endpoint the app will create for this run, so cleanup removes it whatever happens."""
        if endpoint not in self.created.endpoints:
            self.created.endpoints.append(endpoint)
        return endpoint

    def register(self, model: str, version: str, tags: Mapping[str, str], source: str = "tiny") -> Registration:
        """Register a shipped MLflow model as ``model:version`` with ``tags``, through azure-ai-ml."""
        from azure.ai.ml.entities import Model

        shipped = MODELS[source]
        self.created.models.append((model, version))
        self.ml.models.create_or_update(
            Model(
                name=model,
                version=version,
                path=self.model_path(shipped),
                type="mlflow_model",
                tags=dict(tags),
                description=f"aml-event-handler acceptance suite ({shipped.name} model); safe to delete",
            )
        )
        logger.info("registered %s:%s from %s with tags %s", model, version, shipped.name, dict(tags))
        return self._after_register(Registration(model, version, dict(tags), shipped))

    def await_delivery(self, registration: Registration) -> dict[str, Any]:
        """Wait until the app has recorded the registration's rollout; return its status row."""
        self._deliver(registration)
        deadline = time.monotonic() + self.delivery_timeout_s
        while True:
            row = self.rollout(registration.model, registration.version)
            if row is not None:
                return row
            if time.monotonic() > deadline:
                raise Timeout(
                    f"the app recorded no rollout for {registration.model}:{registration.version} within "
                    f"{self.delivery_timeout_s:.0f} s of its registration: is the Event Grid subscription in place, "
                    "the workspace on the app's AML_ALLOWED_WORKSPACES, and (if the app sets DEPLOY_STAGE) "
                    "ACCEPTANCE_STAGE set to it?"
                )
            self.pass_time()

    def redeliver(self, registration: Registration) -> None:
        """Deliver the registration's ``ModelRegistered`` event again (the original when known, else an equal one)."""
        event = registration.event or model_registered_event(
            self.workspace, registration.model, registration.version, registration.tags
        )
        self.post_event(event)

    def control(self, endpoint: str, deployment: str, action: str, reason: str) -> tuple[int, dict[str, Any]]:
        """An operator action, ``POST /api/rollouts/{endpoint}/{deployment}/{action}``: (status, answer)."""
        return self._post_control(endpoint, deployment, action, json.dumps({"reason": reason}).encode())

    @abstractmethod
    def _post_control(self, endpoint: str, deployment: str, action: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Send the control request to the app."""

    def rollouts(self, model: str) -> list[dict[str, Any]]:
        """The app's ledger rows for ``model``, newest first."""
        return self.status({"model": model})

    def rollout(self, model: str, version: str) -> dict[str, Any] | None:
        return next((r for r in self.rollouts(model) if r["version"] == version), None)

    def settle(self, model: str, active_states: frozenset[str] = ACTIVE_STATES) -> dict[str, dict[str, Any]]:
        """Wait until no rollout of ``model`` is in ``active_states`` (default: pending or deploying); return its
        rows by version. Progressive rollouts pass ``PROGRESSIVE_STATES`` to wait through their bakes too."""
        deadline = time.monotonic() + self.settle_timeout_s
        while True:
            rows = self.rollouts(model)
            active = [r for r in rows if r["state"] in active_states]
            if rows and not active:
                return {r["version"]: r for r in rows}
            if time.monotonic() > deadline:
                shown = "; ".join(f"{r['deployment']} {r['state']} ({r['reason']})" for r in rows) or "no rollout"
                raise Timeout(f"rollouts of {model} still not settled after {self.settle_timeout_s:.0f} s: {shown}")
            self.pass_time()

    def await_state(self, model: str, version: str, states: frozenset[str]) -> dict[str, Any]:
        """Wait until the rollout of ``model:version`` is in one of ``states``; return its row."""
        deadline = time.monotonic() + self.settle_timeout_s
        while True:
            row = self.rollout(model, version)
            if row is not None and row["state"] in states:
                return row
            if time.monotonic() > deadline:
                seen = f"{row['state']} ({row['reason']})" if row else "no rollout"
                raise Timeout(
                    f"rollout of {model}:{version} not {sorted(states)} after {self.settle_timeout_s:.0f} s: {seen}"
                )
            self.pass_time()

    def traffic(self, endpoint: str) -> dict[str, int]:
        """The endpoint's non-zero live traffic as ARM reports it, by lower-cased deployment name."""
        raw = self.mgmt.online_endpoints.get(*self._scope, endpoint)
        return {str(k).lower(): int(v) for k, v in (raw.properties.traffic or {}).items() if int(v)}

    def deployments(self, endpoint: str) -> dict[str, str]:
        """The endpoint's deployments and their provisioning states, as ARM reports them."""
        return {
            str(d.name).lower(): str(d.properties.provisioning_state or "")
            for d in self.mgmt.online_deployments.list(*self._scope, endpoint)
        }

    def endpoint_exists(self, endpoint: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.mgmt.online_endpoints.get(*self._scope, endpoint)
        except ResourceNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> list[str]:
        """Delete every endpoint and model version this run created; return what could not be deleted.

        Rollouts are first left to settle (bounded), because the app's reconciler would re-create an endpoint
        deleted under a rollout that is still deploying.
        """
        leftovers: list[str] = []
        deadline = time.monotonic() + self.cleanup_timeout_s
        for model in dict.fromkeys(name for name, _ in self.created.models):
            try:
                self._settle_before(model, deadline)
            except Exception as err:
                logger.warning("cleanup: rollouts of %s did not settle: %s", model, err)
        for endpoint in list(self.created.endpoints):
            try:
                self._delete_endpoint(endpoint, deadline)
                self.created.endpoints.remove(endpoint)
            except Exception as err:
                leftovers.append(f"endpoint {endpoint}: {type(err).__name__}: {err}")
        for name, version in list(self.created.models):
            try:
                self._delete_model_version(name, version)
                self.created.models.remove((name, version))
            except Exception as err:
                leftovers.append(f"model {name}:{version}: {type(err).__name__}: {err}")
        for name in dict.fromkeys(name for name, _ in self.created.models):
            leftovers.append(f"model {name}: some versions remain")
        return leftovers + (self.production.cleanup() if self.production else [])

    def leftover_commands(self) -> list[str]:
        """Azure CLI commands that delete what this run created and has not deleted yet."""
        ws = self.workspace
        scope = f"-g {ws.resource_group} -w {ws.workspace_name}"
        commands = [f"az ml online-endpoint delete -n {e} {scope} --yes" for e in self.created.endpoints]
        commands += [
            f"az rest --method delete --url 'https://management.azure.com{ws.arm_id}/models/{n}/versions/{v}"
            "?api-version=2023-04-01'"
            for n, v in self.created.models
        ]
        return commands + (self.production.leftover_commands() if self.production else [])

    def _settle_before(self, model: str, deadline: float) -> None:
        aborted: set[str] = set()
        while time.monotonic() < deadline:
            rows = self.rollouts(model)
            for row in rows:  # a rollout left between its steps would bake on after the run: stop it where it is
                if row["state"] == "baking" and row["deployment"] not in aborted:
                    aborted.add(row["deployment"])
                    code, _ = self.control(row["endpoint"], row["deployment"], "abort", "acceptance suite cleanup")
                    logger.info("cleanup: abort %s/%s answered %s", row["endpoint"], row["deployment"], code)
            if not [r for r in rows if r["state"] in ACTIVE_STATES]:
                return
            self.pass_time()
        raise Timeout(f"rollouts of {model} still active")

    def _delete_endpoint(self, endpoint: str, deadline: float) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        while True:
            try:
                self.mgmt.online_endpoints.begin_delete(*self._scope, endpoint).result()
                logger.info("cleanup: deleted endpoint %s", endpoint)
                return
            except ResourceNotFoundError:
                return
            except HttpResponseError as err:
                # 409: an operation (the app's, or AML's own) is still running on the endpoint; it ends by itself.
                if err.status_code != 409 or time.monotonic() > deadline:
                    raise
                self.pass_time()

    def _delete_model_version(self, name: str, version: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):  # already gone is what we want
            self.mgmt.model_versions.delete(*self._scope, name, version)
        logger.info("cleanup: deleted model %s:%s", name, version)
        try:
            if not list(self.mgmt.model_versions.list(*self._scope, name)):
                self.mgmt.model_containers.delete(*self._scope, name)
        except ResourceNotFoundError:
            pass
