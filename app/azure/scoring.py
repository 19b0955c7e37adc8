"""The smoke test's scoring client: one sample request to the new deployment alone, before it gets live traffic.

Where and how, as Azure ML documents it (learn.microsoft.com/azure/machine-learning/
how-to-authenticate-online-endpoint and how-to-safely-rollout-online-endpoints):

- the URL is the endpoint's ``properties.scoringUri``, never built by hand;
- ``authMode`` ``Key``: ``Authorization: Bearer <key>`` with a key from ``listKeys``; ``AADToken``: an Entra
  token for ``https://ml.azure.com`` from the app's own credential;
- the header ``azureml-model-deployment: <deployment>`` sends the request to that deployment whatever its
  traffic share, so the new deployment answers while it still has none.

The sample comes from the model tag ``smoke_request``, else from the MLflow model's stored input example. The
example lives in the model's artifacts (``MLmodel``'s ``saved_input_example_info.artifact_path``, usually
``input_example.json``), in the workspace's storage account: reading it needs data-plane access to that
storage (azure-ai-ml's ``models.download`` lists the datastore's credentials or uses the caller's identity),
which the app's identity is not granted (AzureML Data Scientist on the workspace only). So this module turns
an input example that is already on disk into a scoring request (``read_input_example``), and the wiring
decides whether to grant Storage Blob Data Reader and download it; until then a model without the tag has no
sample, and the smoke test is skipped (or the rollout rejected with ``SMOKE_REQUIRED=true``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.platform.errors import RetryableError
from app.rollout.decide.smoke import (
    DEPLOYMENT_HEADER,
    EXCERPT_BYTES,
    INFERENCE_SCOPE,
    UNFINISHED,
    ScoringTarget,
    SmokeResult,
    SmokeSample,
    classify,
    request_from_input_example,
)

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential

    from app.azure.aml import AmlGateway

logger = logging.getLogger(__name__)


def read_input_example(model_dir: Path) -> str | None:
    """The scoring request from a downloaded MLflow model directory (``MLmodel`` + its input example), if any."""
    # Lazy: yaml is only needed when a model directory is read.
    import yaml  # type: ignore[import-untyped,unused-ignore]  # no stubs in the locked environment

    mlmodel_path = model_dir / "MLmodel"
    if not mlmodel_path.is_file():
        return None
    mlmodel = yaml.safe_load(mlmodel_path.read_text(encoding="utf-8")) or {}
    artifact = (mlmodel.get("saved_input_example_info") or {}).get("artifact_path")
    if not artifact or not (model_dir / artifact).is_file():
        return None
    try:
        example = json.loads((model_dir / artifact).read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        logger.warning("input example %s of %s is not JSON; no smoke sample from it", artifact, model_dir.name)
        return None
    return request_from_input_example(mlmodel, example)


# ------------------------------------------------------------------------------------------------ I/O


class SmokeTester:
    """Sends the smoke request for endpoints of one workspace (reads through ``gateway``, scores with requests)."""

    def __init__(
        self,
        gateway: AmlGateway,
        credential: TokenCredential,
        timeout_s: float,
        session: requests.Session | None = None,
    ) -> None:
        self._gateway = gateway
        self._credential = credential
        self._timeout_s = timeout_s
        self._session = session

    def target(self, endpoint: str) -> ScoringTarget:
        """The endpoint's scoring URI and auth mode, from ARM (one read)."""
        workspace = self._gateway.workspace
        raw = self._gateway.mgmt.online_endpoints.get(workspace.resource_group, workspace.workspace_name, endpoint)
        uri = str(raw.properties.scoring_uri or "")
        if not uri:
            raise RetryableError(f"endpoint {endpoint} has no scoringUri yet")
        return ScoringTarget(uri, str(raw.properties.auth_mode or "Key").lower())

    def authorization(self, endpoint: str, target: ScoringTarget) -> str:
        """The ``Authorization`` header for the endpoint's auth mode. Never logged."""
        if target.auth_mode == "key":
            workspace = self._gateway.workspace
            keys = self._gateway.mgmt.online_endpoints.list_keys(
                workspace.resource_group, workspace.workspace_name, endpoint
            )
            return f"Bearer {keys.primary_key}"
        if target.auth_mode == "aadtoken":
            return f"Bearer {self._credential.get_token(INFERENCE_SCOPE).token}"
        raise ValueError(f"endpoint {endpoint}: authMode {target.auth_mode!r} is not supported by the smoke test")

    def run(self, endpoint: str, deployment: str, sample: SmokeSample, wait_s: float | None = None) -> SmokeResult:
        """POST ``sample`` to ``deployment`` alone. A network failure is retryable; any answer is classified.

        ``wait_s`` (at most the timeout) bounds how long this call waits, to fit the caller's time budget; no
        answer within a ``wait_s`` shorter than the timeout is ``None``'s status with ``skipped`` set: try again.
        """
        # requests on first use, not at import: keeps cold start light.
        import requests

        target = self.target(endpoint)
        headers = {
            "Authorization": self.authorization(endpoint, target),
            "Content-Type": "application/json",
            DEPLOYMENT_HEADER: deployment,
        }
        session = self._session or requests.Session()
        wait = self._timeout_s if wait_s is None else max(0.1, min(wait_s, self._timeout_s))
        started = time.monotonic()
        try:
            response = session.post(target.scoring_uri, data=sample.body.encode(), headers=headers, timeout=wait)
        except requests.Timeout:
            if wait < self._timeout_s:
                return SmokeResult(False, None, "", time.monotonic() - started, UNFINISHED, skipped=True)
            return classify(None, b"", time.monotonic() - started, self._timeout_s)
        except requests.ConnectionError as err:
            raise RetryableError(f"smoke request to {endpoint}/{deployment} could not connect: {err}") from err
        finally:
            if self._session is None:
                session.close()
        elapsed = time.monotonic() - started
        result = classify(response.status_code, response.content[:EXCERPT_BYTES], elapsed, self._timeout_s)
        logger.info("smoke test of %s/%s with the %s: %s", endpoint, deployment, sample.source, result.reason)
        return result
