"""What the suite needs from the AML emulator beyond its built-in routes: model deletion and failing containers.

Both belong in the emulator itself; they live here because the emulator was being split into a package while
this suite was written (move them in with their tests, ``tests/acceptance/test_emulator_additions.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from acceptance.target import source_of
from app.intake.events import MODEL_REGISTERED
from app.rollout.decide.naming import deployment_name
from devkit._server import Request, Response

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from devkit.aml_emulator import AmlEmulator
    from devkit.aml_emulator.health import Health

logger = logging.getLogger(__name__)

#: The shipped ``slow`` model sleeps a second per request (acceptance/models/slow/code/slow_linear.py).
SLOW_P50_MS = 1000.0
SLOW_P99_MS = 1100.0


def teach_model_deletion(aml: AmlEmulator) -> None:
    """Serve ``DELETE .../models/{name}/versions/{version}`` and ``DELETE .../models/{name}``.

    Azure documents both (REST API "Model Versions - Delete" and "Model Containers - Delete",
    https://learn.microsoft.com/rest/api/azureml/model-versions/delete and .../model-containers/delete):
    200 when something was deleted, 204 when there was nothing to delete. AML publishes no event for it.
    """
    if getattr(aml, "_acceptance_model_deletion", False):
        return
    aml._acceptance_model_deletion = True  # type: ignore[attr-defined]

    # Handlers run under the emulator's lock; its stores are read at call time (``reset`` replaces them).
    def delete_version(request: Request, name: str, version: str) -> Response:
        versions: dict[str, Any] = aml._models.get(name.lower(), {})
        if versions.pop(version, None) is None:
            return Response(204)
        return Response(200)

    def delete_container(request: Request, name: str) -> Response:
        if aml._models.get(name.lower()):
            return Response(
                409,
                {"error": {"code": "Conflict", "message": f"Model {name} still has versions; delete them first."}},
            )
        aml._models.pop(name.lower(), None)
        return Response(200) if aml._model_containers.pop(name.lower(), None) is not None else Response(204)

    aml.add_route("DELETE", r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", delete_version)
    aml.add_route("DELETE", r"/models/(?P<name>[^/]+)", delete_container)


class ContainerSimulator:
    """Plays the scoring container the emulator does not run: a model that cannot load fails its deployment.

    On each ``ModelRegistered`` event it reads the model's path through azure-ai-ml, and if that is the shipped
    ``broken`` model, it tells the emulator to fail the deployment the app will create for that version; the
    ``slow`` model answers in about a second. ``steady``, when given, is how the shipped models that load and are
    not slow answer; otherwise they answer with the emulator's default latency.
    """

    def __init__(self, aml: AmlEmulator, ml: MLClient, *, steady: Health | None = None) -> None:
        self.aml = aml
        self.ml = ml
        self.steady = steady

    def on_event(self, event: Mapping[str, Any]) -> None:
        if (event.get("eventType") or event.get("type")) != MODEL_REGISTERED:
            return
        data = event.get("data") or {}
        name, version = str(data.get("modelName")), str(data.get("modelVersion"))
        source = source_of(str(self.ml.models.get(name, version).path or ""))
        deployment = deployment_name(name, version)
        if source is not None and not source.loads:
            logger.info("emulated container for %s will fail to load model %s:%s", deployment, name, version)
            self.aml.fail_deployments(deployment)
        endpoint = str((data.get("modelTags") or {}).get("endpoint") or "")
        if source is not None and source.slow and endpoint:
            # What the shipped slow model does in its container: about a second for every request.
            logger.info("emulated container for %s/%s answers in about a second", endpoint, deployment)
            self.aml.set_health(endpoint, deployment, p50_ms=SLOW_P50_MS, p99_ms=SLOW_P99_MS)
        elif source is not None and source.loads and endpoint and self.steady is not None:
            self.aml.set_health(endpoint, deployment, p50_ms=self.steady.p50_ms, p99_ms=self.steady.p99_ms)
