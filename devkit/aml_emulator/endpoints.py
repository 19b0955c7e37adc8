"""Online endpoints: writes as operations, AML's traffic rules, keys and tokens."""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.rules import require_fields
from devkit.aml_emulator.state import PROVIDER, ArmError, Resource, _iso, _now, validate_name


class EndpointsArea(AreaBase):
    """``/onlineEndpoints``, with the rules AML applies to each write (deployments are in ``deployments.py``)."""

    def endpoint_state(self, name: str) -> dict[str, Any] | None:
        """The endpoint's current ARM body (``None`` if it does not exist)."""
        with self._lock:
            self._advance()
            res = self._endpoints.get(name.lower())
            return copy.deepcopy(self._render(res)) if res else None

    def seed_endpoint(
        self,
        name: str,
        deployments: Mapping[str, Mapping[str, Any]],
        traffic: Mapping[str, int],
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """An endpoint that already exists, with ``deployments`` (name -> ARM body: ``properties``, ``tags``,
        ``sku``) all ``Succeeded`` and ``traffic`` in force: the state a long-running workspace is in, made at once
        (a benchmark's 300 endpoints), held to the same name and traffic rules as a PUT."""
        validate_name(name, "online endpoint")
        with self._lock:
            if name.lower() in self._endpoints:
                raise ValueError(f"endpoint '{name}' exists already")
            now = _now()
            seeded = self._deployments.setdefault(name.lower(), {})
            for dep_name, body in deployments.items():
                validate_name(dep_name, "online deployment")
                seeded[dep_name.lower()] = Resource(
                    dep_name, self._deployment_body(name, dep_name, body, now), "Succeeded", now
                )
            props = {"authMode": "Key", "traffic": dict(traffic)}
            try:
                self._validate_traffic(name, props)
                self.names.claim(self.location, name, self.workspace_id)
            except ArmError:
                self._deployments.pop(name.lower(), None)
                raise
            body = {"properties": props, "tags": dict(tags or {}), "identity": {"type": "SystemAssigned"}}
            self._endpoints[name.lower()] = Resource(name, self._endpoint_body(name, body, now), "Succeeded", now)
            self._keys[name.lower()] = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))

    def _get_endpoint_resource(self, name: str) -> Resource:
        res = self._endpoints.get(name.lower())
        if res is None:
            raise ArmError(
                404,
                "UserError",
                f"Could not find online endpoint '{name}' in workspace '{self.workspace_name}'.",
            )
        return res

    def _endpoint_body(self, name: str, body: Mapping[str, Any], created_at: float) -> dict[str, Any]:
        props = dict(body.get("properties") or {})
        props["traffic"] = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        props["mirrorTraffic"] = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        props.setdefault("publicNetworkAccess", "Enabled")
        props.update(self._scoring_properties(name))  # scoring.py: URIs on the emulator itself
        identity = dict(body.get("identity") or {"type": "SystemAssigned"})
        if "SystemAssigned" in str(identity.get("type", "")):
            identity.setdefault("principalId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_id}/{name}")))
            identity.setdefault("tenantId", "00000000-0000-0000-0000-00000000a7e1")
        return self._tracked_resource(
            f"onlineEndpoints/{name}", name, "onlineEndpoints", body, props, created_at, identity=identity
        )

    def _validate_traffic(self, endpoint: str, props: Mapping[str, Any]) -> None:
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        deployments = self._deployments.get(endpoint.lower(), {})
        for label, table in (("traffic", traffic), ("mirror traffic", mirror)):
            for name, pct in table.items():
                if pct < 0 or pct > 100:
                    raise ArmError(400, "BadArgument", f"Invalid {label} value {pct} for deployment '{name}'.")
                if pct == 0:
                    continue
                dep = deployments.get(name.lower())
                if dep is None:
                    raise ArmError(
                        400,
                        "BadArgument",
                        f"Deployment '{name}' named in the endpoint's {label} does not exist on endpoint '{endpoint}'.",
                    )
                if dep.state != "Succeeded":
                    raise ArmError(
                        400,
                        "BadArgument",
                        f"Deployment '{name}' named in the endpoint's {label} is in {dep.state} provisioning "
                        "state; traffic can only be set to a deployment that succeeded.",
                    )
        mirrored = sorted(name for name, pct in mirror.items() if pct)
        if len(mirrored) > 1:
            # "Mirroring has the following limitations: ... you can mirror traffic to only one deployment in an
            # endpoint" (Safe rollout for online endpoints,
            # https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints).
            raise ArmError(
                400,
                "BadArgument",
                f"Mirror traffic can go to one deployment only; it names {len(mirrored)}: {', '.join(mirrored)}.",
            )
        total = sum(traffic.values())
        if total not in (0, 100):
            raise ArmError(400, "BadArgument", f"Traffic values must sum to 100 (or 0); they sum to {total}.")
        for name, pct in mirror.items():
            if pct > 50:
                raise ArmError(400, "BadArgument", f"Mirror traffic to '{name}' is {pct}%; at most 50% is allowed.")
            if pct and traffic.get(name, 0) > 0:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"Deployment '{name}' cannot receive both live and mirrored traffic.",
                )

    def _list_endpoints(self, request: Request) -> Response:
        items = [self._render(r) for _, r in sorted(self._endpoints.items())]
        if name := request.query.get("name"):
            items = [i for i in items if i["name"].lower() == name.lower()]
        return self._page(request, items)

    def _get_endpoint(self, request: Request, endpoint: str) -> Response:
        return Response(200, self._render(self._get_endpoint_resource(endpoint)))

    def _put_endpoint(self, request: Request, endpoint: str) -> Response:
        validate_name(endpoint, "online endpoint")
        body = request.json() or {}
        require_fields(body, "endpoint")
        existing = self._endpoints.get(endpoint.lower())
        self._check_not_busy(endpoint)
        props = body.get("properties") or {}
        if existing is None:
            self._validate_traffic(endpoint, props)
            self.names.claim(self.location, endpoint, self.workspace_id)
            op = self._start_operation("create", endpoint, None, request.query.get("api-version", ""))
            now = self._clock.now()
            res = Resource(endpoint, self._endpoint_body(endpoint, body, now), "Creating", now, op)
            self._endpoints[endpoint.lower()] = res
            self._keys[endpoint.lower()] = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
            return self._lro_response(201, op, self._render(res))
        self._validate_traffic(endpoint, props)
        op = self._start_operation("update", endpoint, None, request.query.get("api-version", ""))
        existing.body = self._endpoint_body(existing.name, body, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(200, op, self._render(existing))

    def _patch_endpoint(self, request: Request, endpoint: str) -> Response:
        existing = self._get_endpoint_resource(endpoint)
        self._check_not_busy(endpoint)
        patch = request.json() or {}
        merged = copy.deepcopy(existing.body)
        if "tags" in patch:
            merged["tags"] = dict(patch["tags"] or {})
        if patch.get("identity"):
            merged["identity"] = patch["identity"]
        # ARM's PATCH schema carries tags/identity only; traffic is accepted too for convenience.
        for key, value in (patch.get("properties") or {}).items():
            merged["properties"][key] = value
        self._validate_traffic(endpoint, merged["properties"])
        op = self._start_operation("update", endpoint, None, request.query.get("api-version", ""))
        existing.body = self._endpoint_body(existing.name, merged, existing.created_at)
        existing.state, existing.operation = "Updating", op
        return self._lro_response(202, op)

    def _delete_endpoint(self, request: Request, endpoint: str) -> Response:
        existing = self._endpoints.get(endpoint.lower())
        if existing is None:
            return Response(204)
        self._check_not_busy(endpoint)
        op = self._start_operation("delete", endpoint, None, request.query.get("api-version", ""))
        existing.state, existing.operation = "Deleting", op
        for dep in self._deployments.get(endpoint.lower(), {}).values():
            dep.state = "Deleting"
        return self._lro_response(202, op)

    def _list_keys(self, request: Request, endpoint: str) -> Response:
        res = self._get_endpoint_resource(endpoint)
        if res.body["properties"].get("authMode", "Key").lower() != "key":
            raise ArmError(400, "BadArgument", f"Endpoint '{endpoint}' does not use key authentication.")
        primary, secondary = self._keys[endpoint.lower()]
        return Response(200, {"primaryKey": primary, "secondaryKey": secondary})

    def _endpoint_token(self, request: Request, endpoint: str) -> Response:
        self._get_endpoint_resource(endpoint)
        expiry = _now() + 3600  # a credential: the client checks it against its own (wall) clock
        return Response(
            200,
            {
                "accessToken": secrets.token_urlsafe(32),
                "expiryTimeUtc": int(expiry),
                "refreshAfterTimeUtc": int(expiry - 600),
                "tokenType": "Bearer",
            },
        )

    def _tracked_resource(
        self,
        path: str,
        name: str,
        kind: str,
        body: Mapping[str, Any],
        props: dict[str, Any],
        created_at: float,
        **extra: Any,
    ) -> dict[str, Any]:
        """ARM's envelope of a tracked workspace child resource (endpoint or deployment)."""
        for key in ("sku", "identity"):  # both are on the SDK's OnlineEndpoint and OnlineDeployment: what was PUT
            if body.get(key) is not None and key not in extra:  # comes back (tests/contract/test_examples.py)
                extra[key] = copy.deepcopy(body[key])
        return {
            "id": f"{self.workspace_id}/{path}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/{kind}",
            "location": body.get("location") or self.location,
            "kind": body.get("kind") or "Managed",
            "tags": dict(body.get("tags") or {}),
            **extra,
            "properties": props,
            "systemData": {
                "createdAt": _iso(created_at),
                "createdBy": "devkit",
                "createdByType": "Application",
                "lastModifiedAt": _iso(self._clock.now()),
            },
        }
