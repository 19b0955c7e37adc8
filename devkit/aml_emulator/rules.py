"""Azure's published rules the emulator enforces: required fields, the managed SKU list, one region's endpoint names."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

# The VM sizes a managed online deployment accepts: one list, the app's (the app checks tags against it before it
# writes; the emulator answers AML's validation error for any other). Its source is cited where it is defined.
from app.rollout.decide.skus import MANAGED_ONLINE_SKUS
from devkit.aml_emulator.state import ArmError, _now


def validation_error(field: str, problem: str) -> ArmError:
    """AML's answer to a request body it refuses: 400 ``UserError`` carrying ASP.NET's validation details as text.

    AML's front end (MFE) wraps model-validation failures this way; seen in the wild e.g. in
    Azure/azureml-examples#1931: ``{"errors":{"":["There is already an endpoint with this name, ..."]},
    "title":"One or more validation errors occurred."}``. ``field`` is the body field at fault ("" for the request).
    """
    details = {
        "errors": {field: [problem]},
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
    }
    return ArmError(400, "UserError", json.dumps(details))


def require_fields(body: Mapping[str, Any], kind: str) -> None:
    """Refuse a PUT body that lacks what the 2023-04-01 spec marks required for ``kind`` (endpoint or deployment).

    Spec: azure-rest-api-specs, specification/machinelearningservices/resource-manager/
    Microsoft.MachineLearningServices/stable/2023-04-01/mfe.json: ``OnlineEndpointTrackedResource`` and
    ``OnlineDeploymentTrackedResource`` require ``location`` and ``properties`` (TrackedResource), ``OnlineEndpoint``
    requires ``authMode`` and ``OnlineDeploymentProperties`` requires its discriminator ``endpointComputeType``.
    Documented on the REST reference pages "Online Endpoints - Create Or Update" and "Online Deployments - Create Or
    Update" (https://learn.microsoft.com/rest/api/azureml/online-endpoints/create-or-update).
    """
    if not body.get("location"):
        raise validation_error("Location", "The Location field is required: send the workspace's region.")
    props = body.get("properties")
    if not isinstance(props, Mapping):
        raise validation_error("Properties", "The Properties field is required.")
    if kind == "endpoint" and not props.get("authMode"):
        raise validation_error("Properties.AuthMode", "The AuthMode field is required: one of Key, AMLToken, AADToken.")
    if kind == "deployment":
        compute = props.get("endpointComputeType")
        if not compute:
            raise validation_error(
                "Properties.EndpointComputeType",
                "The EndpointComputeType field is required: Managed for a managed online endpoint.",
            )
        instance_type = props.get("instanceType")
        # The managed SKU list (MANAGED_ONLINE_SKUS) applies to managed compute only; Kubernetes deployments
        # name instance types defined on their cluster.
        if (
            str(compute).lower() == "managed"
            and instance_type
            and str(instance_type).lower() not in MANAGED_ONLINE_SKUS
        ):
            raise validation_error(
                "Properties.InstanceType",
                f"Instance type '{instance_type}' is not supported by managed online endpoints. Choose one from "
                "https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list.",
            )


def region_key(location: str) -> str:
    """ARM spells a region several ways ("East US", "eastus"); this is the one a name registry keys on."""
    return location.replace(" ", "").lower()


class EndpointNameRegistry:
    """Online endpoint names held in each Azure region, across every workspace one emulator serves.

    Azure ML's rule: an online endpoint's name is unique within a region, whichever workspace holds it. AML answers
    a duplicate with 400 ``UserError`` and the validation text "There is already an endpoint with this name,
    Endpoint name needs to be unique within a region. Try some other name." (seen in Azure/azureml-examples#1931 and
    Azure/mlops-project-template#29; the docs: "It must be unique in the Azure region.", see
    https://learn.microsoft.com/azure/machine-learning/how-to-deploy-online-endpoints). A deleted endpoint's name can
    stay unusable for a while (Azure/azure-cli-extensions#7660): :attr:`hold_after_delete_s` models that; 0 by
    default so that tests can delete and re-create.
    """

    MESSAGE = (
        "There is already an endpoint with this name, Endpoint name needs to be unique within a region. "
        "Try some other name."
    )

    def __init__(self, now: Callable[[], float] = _now) -> None:
        self._now = now  # the emulated clock of the workspaces it serves (a held name is freed in their time)
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], str] = {}  # (region, name) -> id of the workspace holding it
        self._released: dict[tuple[str, str], float] = {}  # (region, name) -> when it becomes usable again
        self.hold_after_delete_s = 0.0

    def reset(self) -> None:
        """Forget every name and restore the default hold."""
        with self._lock:
            self._held.clear()
            self._released.clear()
            self.hold_after_delete_s = 0.0

    def claim(self, location: str, name: str, workspace_id: str) -> None:
        """Hold ``name`` in ``location`` for ``workspace_id``, or raise AML's validation error."""
        key = (region_key(location), name.lower())
        with self._lock:
            holder = self._held.get(key)
            usable_at = self._released.get(key, 0.0)
            if (holder is not None and holder.lower() != workspace_id.lower()) or self._now() < usable_at:
                raise validation_error("", self.MESSAGE)
            self._held[key] = workspace_id
            self._released.pop(key, None)

    def release(self, location: str, name: str, workspace_id: str) -> None:
        """The endpoint was deleted: its name is free again after :attr:`hold_after_delete_s`."""
        key = (region_key(location), name.lower())
        with self._lock:
            if self._held.get(key, "").lower() == workspace_id.lower():
                del self._held[key]
                self._released[key] = self._now() + self.hold_after_delete_s

    def holder(self, location: str, name: str) -> str | None:
        """The id of the workspace holding ``name`` in ``location``, if any."""
        with self._lock:
            return self._held.get((region_key(location), name.lower()))
