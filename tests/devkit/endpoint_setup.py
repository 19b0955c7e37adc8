"""Builds an online endpoint with deployments and traffic on the emulator, for the scoring and metrics tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession


def make_endpoint(
    stack: DevStack,
    arm: ArmSession,
    name: str,
    deployments: Mapping[str, Mapping[str, str]],
    traffic: Mapping[str, int] | None = None,
    mirror: Mapping[str, int] | None = None,
    auth_mode: str = "Key",
) -> dict[str, Any]:
    """Create the endpoint, one deployment per entry (its model gets those tags), then set traffic; its body."""
    assert arm.call("PUT", f"/onlineEndpoints/{name}", _endpoint(auth_mode)).status_code == 201
    stack.aml.wait_idle()
    for index, (deployment, tags) in enumerate(deployments.items(), start=1):
        model = f"model-{deployment}"
        stack.aml.seed_model(model, index, tags=tags)
        body = {
            "location": "eastus",
            "properties": {
                "endpointComputeType": "Managed",
                "instanceType": "Standard_DS3_v2",
                "model": f"{stack.aml.workspace_id}/models/{model}/versions/{index}",
            },
        }
        assert arm.call("PUT", f"/onlineEndpoints/{name}/deployments/{deployment}", body).status_code == 201
        stack.aml.wait_idle()
    if traffic or mirror:
        set_traffic(stack, arm, name, traffic or {}, mirror or {}, auth_mode)
    response = arm.call("GET", f"/onlineEndpoints/{name}")
    assert response.status_code == 200
    endpoint: dict[str, Any] = response.json()
    return endpoint


def set_traffic(
    stack: DevStack,
    arm: ArmSession,
    name: str,
    traffic: Mapping[str, int],
    mirror: Mapping[str, int] | None = None,
    auth_mode: str = "Key",
) -> None:
    """One full PUT of the endpoint with the new live and mirror traffic, then wait for it to finish."""
    body = _endpoint(auth_mode)
    body["properties"] |= {"traffic": dict(traffic), "mirrorTraffic": dict(mirror or {})}
    assert arm.call("PUT", f"/onlineEndpoints/{name}", body).status_code == 200
    stack.aml.wait_idle()


def _endpoint(auth_mode: str) -> dict[str, Any]:
    return {"location": "eastus", "properties": {"authMode": auth_mode}}
