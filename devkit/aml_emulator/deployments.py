"""Online deployments: writes as operations, AML's deployment rules, getLogs and container logs."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.rules import require_fields
from devkit.aml_emulator.state import ArmError, Resource, _iso, validate_name

NO_CODE_MODEL_TYPES = frozenset({"mlflow_model", "triton_model"})


class DeploymentsArea(AreaBase):
    """``/onlineEndpoints/{endpoint}/deployments``, with the rules AML applies to each write."""

    def deployment_state(self, endpoint: str, name: str) -> dict[str, Any] | None:
        """The deployment's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            res = self._deployments.get(endpoint.lower(), {}).get(name.lower())
            return copy.deepcopy(self._render(res)) if res else None

    def _get_deployment_resource(self, endpoint: str, name: str) -> Resource:
        self._get_endpoint_resource(endpoint)
        res = self._deployments.get(endpoint.lower(), {}).get(name.lower())
        if res is None:
            raise ArmError(
                404,
                "UserError",
                f"Could not find online deployment '{name}' on endpoint '{endpoint}'.",
            )
        return res

    def _deployment_body(self, endpoint: str, name: str, body: Mapping[str, Any], created_at: float) -> dict[str, Any]:
        props = dict(body.get("properties") or {})
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        props.setdefault("appInsightsEnabled", False)
        props.setdefault("egressPublicNetworkAccess", "Enabled")
        sku = dict(body.get("sku") or {"name": "Default", "capacity": 1})
        return self._tracked_resource(
            f"onlineEndpoints/{endpoint}/deployments/{name}",
            name,
            "onlineEndpoints/deployments",
            body,
            props,
            created_at,
            sku=sku,
        )

    def _check_deployment_model(self, props: Mapping[str, Any]) -> None:
        model_ref = props.get("model")
        if not model_ref:
            raise ArmError(400, "BadArgument", "A model is required for an online deployment.")
        match = re.search(r"/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)$", str(model_ref), re.IGNORECASE)
        shared = self._registry_model_for(str(model_ref)) if match is None else None  # discovery.py
        if match is None and shared is None:
            return  # other model references are not checked
        name, version = (match[2], match[3]) if match else (shared.name, shared.version)  # type: ignore[union-attr]
        model = self._models.get(name.lower(), {}).get(version) if match else shared
        if model is None:
            raise ArmError(404, "UserError", f"Could not find model {name} with version {version}.")
        if model.model_type not in NO_CODE_MODEL_TYPES and not (
            props.get("environmentId") and props.get("codeConfiguration")
        ):
            raise ArmError(
                400,
                "BadArgument",
                f"Model {name}:{version} is of type {model.model_type}; only mlflow_model and triton_model "
                "can be deployed without an environment and a scoring script.",
            )

    def _list_deployments(self, request: Request, endpoint: str) -> Response:
        self._get_endpoint_resource(endpoint)
        items = [self._render(r) for _, r in sorted(self._deployments.get(endpoint.lower(), {}).items())]
        return self._page(request, items)

    def _get_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        return Response(200, self._render(self._get_deployment_resource(endpoint, deployment)))

    def _put_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        validate_name(deployment, "online deployment")
        ep = self._get_endpoint_resource(endpoint)
        self._check_not_busy(endpoint)
        if ep.state != "Succeeded":
            raise ArmError(
                409 if ep.state in {"Creating", "Updating", "Deleting"} else 400,
                "Conflict" if ep.state in {"Creating", "Updating", "Deleting"} else "BadArgument",
                f"Online endpoint '{endpoint}' is in {ep.state} provisioning state; deployments can only be "
                "created on an endpoint that succeeded.",
            )
        body = request.json() or {}
        require_fields(body, "deployment")
        props = body.get("properties") or {}
        self._check_deployment_model(props)
        deployments = self._deployments.setdefault(endpoint.lower(), {})
        existing = deployments.get(deployment.lower())
        api_version = request.query.get("api-version", "")
        if existing is None:
            op = self._start_operation("create", ep.name, deployment, api_version)
            now = self._clock.now()
            res = Resource(deployment, self._deployment_body(ep.name, deployment, body, now), "Creating", now, op)
            deployments[deployment.lower()] = res
            return self._lro_response(201, op, self._render(res))
        op = self._start_operation("update", ep.name, existing.name, api_version)
        existing.body = self._deployment_body(ep.name, existing.name, body, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(200, op, self._render(existing))

    def _patch_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        existing = self._get_deployment_resource(endpoint, deployment)
        self._check_not_busy(endpoint)
        patch = request.json() or {}
        merged = copy.deepcopy(existing.body)
        if "tags" in patch:
            merged["tags"] = dict(patch["tags"] or {})
        if patch.get("sku"):
            merged["sku"] = {**merged.get("sku", {}), **patch["sku"]}
        for key, value in (patch.get("properties") or {}).items():
            merged["properties"][key] = value
        op = self._start_operation("update", endpoint, existing.name, request.query.get("api-version", ""))
        existing.body = self._deployment_body(endpoint, existing.name, merged, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(202, op)

    def _delete_deployment(self, request: Request, endpoint: str, deployment: str) -> Response:
        ep = self._get_endpoint_resource(endpoint)
        existing = self._deployments.get(endpoint.lower(), {}).get(deployment.lower())
        if existing is None:
            return Response(204)
        self._check_not_busy(endpoint)
        live = int(ep.body["properties"].get("traffic", {}).get(existing.name, 0))
        mirror = int(ep.body["properties"].get("mirrorTraffic", {}).get(existing.name, 0))
        if live or mirror:
            raise ArmError(
                400,
                "BadArgument",
                f"Deployment '{existing.name}' still receives traffic ({live}% live, {mirror}% mirror); "
                "set its traffic to 0 before deleting it.",
            )
        op = self._start_operation("delete", ep.name, existing.name, request.query.get("api-version", ""))
        existing.state, existing.operation = "Deleting", op
        return self._lro_response(202, op)

    def _get_logs(self, request: Request, endpoint: str, deployment: str) -> Response:
        res = self._get_deployment_resource(endpoint, deployment)
        body = request.json() or {}
        tail = int(body.get("tail") or 5000)
        container = body.get("containerType") or "InferenceServer"
        lines = self._container_logs(endpoint, res, container)
        return Response(200, {"content": "\n".join(lines[-tail:]) + "\n"})

    def _container_logs(self, endpoint: str, res: Resource, container: str) -> list[str]:
        model = str(res.body["properties"].get("model", "")).rsplit("/models/", 1)[-1].replace("/versions/", ":")
        started = _iso(res.created_at)
        if container.lower() == "storageinitializer":
            return [
                f"{started} | INFO | Downloading model {model} to /var/azureml-app/azureml-models",
                f"{started} | INFO | Model download complete",
            ]
        lines = [
            "Instance status:",
            "SystemSetup: Succeeded",
            "UserContainerImagePull: Succeeded",
            "ModelDownload: Succeeded",
            "UserContainerStart: InProgress"
            if res.state in {"Creating", "Updating"}
            else "UserContainerStart: Succeeded",
            "",
            "Container events:",
            "Kind: Pod, Name: Pulling, Type: Normal, Time: " + started + ", Message: Start pulling container image",
            "",
            "Container logs:",
            f"{started} | INFO | Starting gunicorn 20.1.0",
            f"{started} | INFO | Listening at: http://0.0.0.0:31311",
            f"{started} | INFO | Loading MLflow model {model} for deployment {res.name} on endpoint {endpoint}",
        ]
        if res.logs_failed or res.state == "Failed":
            lines += [
                f"{started} | ERROR | Worker exiting: exception while loading the model",
                "Traceback (most recent call last):",
                '  File "/var/azureml-server/aml_blueprint.py", line 91, in setup',
                "    self.user_module.init()",
                '  File "/var/mlflow_resources/mlflow_score_script.py", line 42, in init',
                "    model = load_model(model_path)",
                "ModuleNotFoundError: No module named 'sklearn'",
                f"{started} | ERROR | Container crashed: exit code 3 (CrashLoopBackOff). Deployment {res.name} Failed.",
            ]
        elif res.state == "Succeeded":
            lines += [
                f"{started} | INFO | Model loaded successfully",
                f"{started} | INFO | Scoring server ready: GET /, POST /score",
            ]
        return lines
