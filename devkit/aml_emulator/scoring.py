"""The scoring URI of each online endpoint: HTTPS on the emulator, key or Entra token auth, deployment routing."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.health import score_body
from devkit.aml_emulator.state import Resource
from devkit.aml_emulator.traffic import NoRoute

#: Scoring URIs are ``{emulator url}/inference/{endpoint}/score``: the devkit certificate names only the
#: loopback address, so the real ``{endpoint}.{region}.inference.ml.azure.com`` host is replaced by a path. A workspace
#: added with ``add_workspace`` names its endpoints ``{endpoint}.{region}`` there, as Azure's host does: endpoint
#: names are unique per region ("Endpoint name needs to be unique within a region", the service's validation error),
#: so the same name in two workspaces of two regions has two scoring URIs.
SCORING_PREFIX = "/inference/"
#: Audience of the Entra tokens an ``AADToken`` endpoint accepts (learn.microsoft.com/azure/machine-learning/
#: how-to-authenticate-online-endpoint: "https://ml.azure.com").
INFERENCE_AUDIENCE = "https://ml.azure.com"
DEPLOYMENT_HEADER = "azureml-model-deployment"
#: Real sleeps are capped, whatever the emulated latency and sleep scale say.
MAX_SLEEP_S = 10.0
#: What the endpoint answers a request its deployment timed out on or had no room for (health.capacity_outcome).
REFUSALS = {
    408: "Request timed out: the model execution of deployment '{deployment}' took longer than request_timeout_ms.",
    429: "Too many pending requests for deployment '{deployment}': it is getting more requests than it can handle.",
}
NO_ROUTE_MESSAGE = (
    "No valid deployments to route to. Please check that the endpoint has at least one deployment with positive "
    "weight values or use a deployment specific header to route."
)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


class ScoringArea(AreaBase):
    """``POST {scoringUri}`` and ``GET {swaggerUri}`` of every endpoint, answering as each deployment's health says."""

    scoring_seed: int
    scoring_sleep_scale: float
    _scoring_count: int
    _host: Any
    _workspaces: list[Any]

    def _reset_scoring(self) -> None:
        self.scoring_seed = 0
        self.scoring_sleep_scale = 0.0
        self._scoring_count = 0

    def configure_scoring(self, *, seed: int | None = None, sleep_scale: float | None = None) -> None:
        """``seed``: the draws of real scoring requests (request n uses ``Random(seed, endpoint, n)``).
        ``sleep_scale``: how much of each emulated latency the answer really waits (0 = none, 1 = all, max 10 s).
        """
        with self._lock:
            if seed is not None:
                self.scoring_seed = int(seed)
                self._scoring_count = 0
            if sleep_scale is not None:
                if sleep_scale < 0:
                    raise ValueError(f"sleep_scale={sleep_scale} must be >= 0")
                self.scoring_sleep_scale = float(sleep_scale)

    def scoring_uri(self, endpoint: str) -> str:
        """Where the endpoint is scored (also its ``properties.scoringUri``)."""
        return f"{self.url}{SCORING_PREFIX}{self._scoring_name(endpoint)}/score"

    def _scoring_name(self, endpoint: str) -> str:
        """The endpoint's name in its scoring path: the host workspace's as it is, an added one's with its region."""
        return endpoint if self._host is None else f"{endpoint}.{self.location}"

    def _scoring_properties(self, endpoint: str) -> dict[str, str]:
        """``scoringUri``/``swaggerUri`` for an endpoint body being written; synthetic load up to now is produced
        first, with the traffic that was in force until this write."""
        self._run_load(self._clock.now())
        swagger = f"{self.url}{SCORING_PREFIX}{self._scoring_name(endpoint)}/swagger.json"
        return {"scoringUri": self.scoring_uri(endpoint), "swaggerUri": swagger}

    # ------------------------------------------------------------------ HTTP

    def _handle_scoring(self, request: Request) -> Response:
        parts = request.path[len(SCORING_PREFIX) :].strip("/").split("/")
        if len(parts) != 2 or parts[1] not in {"score", "swagger.json"}:
            return _text(404, f"Not found: {request.path}")
        name, action = parts
        endpoint, _, region = name.partition(".")
        owner: ScoringArea = self
        if region:  # an added workspace's endpoint: the one in that region that has it
            owner = next(
                (
                    ws
                    for ws in self._workspaces
                    if ws.location.lower() == region.lower() and endpoint.lower() in ws._endpoints
                ),
                self,
            )
            if owner is self:
                return _text(404, f"Endpoint '{endpoint}' not found in {region}.")
        return owner._score_request(endpoint, action, request)

    def _score_request(self, endpoint: str, action: str, request: Request) -> Response:
        with self._lock:
            self._advance()
            ep = self._endpoints.get(endpoint.lower())
            if ep is None or ep.state in {"Creating", "Deleting"}:
                return _text(404, f"Endpoint '{endpoint}' not found.")
            denied = self._check_scoring_auth(ep, request.headers.get("authorization"))
            if denied is not None:
                return denied
            if action == "swagger.json":
                return Response(200, self._swagger(ep))
            if request.method != "POST":
                return _text(405, "Method not allowed: score with POST.")
            response, sleep_s = self._score(ep, request)
        if sleep_s > 0:
            time.sleep(sleep_s)  # outside the lock: a slow deployment must not stall the emulator
        return response

    def _check_scoring_auth(self, ep: Resource, authorization: str | None) -> Response | None:
        """401 unless the request carries one of the endpoint's keys (``Key``) or an Entra token for the
        inference audience (``AADToken``), as learn.microsoft.com/azure/machine-learning/
        how-to-authenticate-online-endpoint describes."""
        mode = str(ep.body["properties"].get("authMode", "Key")).lower()
        if not authorization or not authorization.lower().startswith("bearer "):
            return _text(401, "Unauthorized: the 'Authorization: Bearer <key or token>' header is missing.")
        credential = authorization[7:].strip()
        if mode == "key":
            if credential in self._keys.get(ep.name.lower(), ()):
                return None
            return _text(401, f"Unauthorized: the key is not a key of endpoint '{ep.name}'.")
        if mode == "aadtoken":
            if self.issuer is None or self.issuer.verify(credential, INFERENCE_AUDIENCE) is not None:
                return None
            return _text(401, f"Unauthorized: the token is not an unexpired Entra token for {INFERENCE_AUDIENCE}.")
        return _text(401, f"Unauthorized: authMode '{ep.body['properties'].get('authMode')}' is not emulated.")

    def _score(self, ep: Resource, request: Request) -> tuple[Response, float]:
        bad_input = False
        payload: Any = None
        try:
            payload = json.loads(request.body) if request.body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            bad_input = True
        if payload is None:
            bad_input = True
        now = self._clock.now()
        self._run_load(now)
        n, self._scoring_count = self._scoring_count, self._scoring_count + 1
        rng = random.Random(f"{self.scoring_seed}:{ep.name.lower()}:score:{n}")
        try:
            dep, outcome = self._route_and_record(
                ep, request.headers.get(DEPLOYMENT_HEADER), rng, at=now, bad_input=bad_input
            )
        except NoRoute:
            return _text(404, NO_ROUTE_MESSAGE), 0.0
        sleep_s = min(MAX_SLEEP_S, outcome.latency_ms / 1000.0 * self.scoring_sleep_scale)
        model = str(dep.body["properties"].get("model", "")).rsplit("/models/", 1)[-1].replace("/versions/", ":")
        headers = {
            DEPLOYMENT_HEADER: dep.name,
            "x-request-id": str(uuid.uuid4()),
            "ms-azureml-model-time": str(round(outcome.latency_ms)),
        }
        if outcome.status == 200:
            response = Response(200, score_body(dep.name, model, payload), headers)
        elif outcome.model_status:
            headers["ms-azureml-model-error-statuscode"] = str(outcome.model_status)
            headers["ms-azureml-model-error-reason"] = "model_error"
            reason = "the input is not valid JSON" if bad_input else "the model raised while scoring"
            body = {"message": f"An unexpected error occurred in scoring script: {reason} (emulated)."}
            response = Response(outcome.status, body, headers)
        elif outcome.status in REFUSALS:
            response = _text(outcome.status, REFUSALS[outcome.status].format(deployment=dep.name))
        else:
            response = _text(outcome.status, f"Deployment '{dep.name}' is {dep.state}: its container is not serving.")
        response.headers.setdefault(DEPLOYMENT_HEADER, dep.name)
        return response, sleep_s

    def _swagger(self, ep: Resource) -> dict[str, Any]:
        return {
            "swagger": "2.0",
            "info": {"title": ep.name, "version": "1.0", "description": "devkit emulated MLflow scoring API"},
            "paths": {"/score": {"post": {"consumes": ["application/json"], "produces": ["application/json"]}}},
        }
