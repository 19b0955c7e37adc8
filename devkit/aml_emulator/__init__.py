"""HTTPS stand-in for the Azure Resource Manager subset of Azure ML that the app and its SDKs use.

One room per ARM area; :class:`AmlEmulator` in ``server.py`` composes them:

- ``server.py``: lifecycle, HTTPS handling, the routing table, auth, subscription/workspace checks (and the other
  workspaces served on the same URL), paging, and the Python control API.
- ``control.py``: the HTTP control API (``/_emulator/...``), one route per Python control method.
- ``base.py``: ``AreaBase``, which every area inherits: the shared state and the methods one area calls on another,
  declared once for the type checker.
- ``state.py``: the entity records, ``ArmError``, name validation and time helpers.
- ``rules.py``: Azure's published rules: required fields, the managed online SKU list, region-unique endpoint names.
- ``faults.py``: fault injection (429/500 rates, scripted next failures, latency, failing deployments and jobs) and
  request rules (stall a request, 401/403 windows, failing chosen requests such as DELETEs).
- ``operations.py``: long-running operations (start, busy checks, LRO answers, operation status, advancing time) and
  provisioning states on request (Failed, Canceled, Scaling).
- ``models.py``: model containers and versions (and their read-after-write lag).
- ``endpoints.py``: online endpoints, traffic rules, keys and tokens.
- ``deployments.py``: online deployments, getLogs and container logs.
- ``jobs.py``: jobs and components.
- ``outbox.py``: the Event Grid events the emulated workspace publishes.
- ``scoring.py``: each endpoint's ``scoringUri`` on the emulator (``/inference/{endpoint}/score``; an added
  workspace's ``/inference/{endpoint}.{region}/score``), key and
  Entra-token auth, the ``azureml-model-deployment`` header.
- ``health.py``: emulated model behaviour per deployment (error rate, lognormal latency, failing on purpose),
  from the control API or the model's ``emulator.*`` tags.
- ``traffic.py``: the emulated clock, routing by live and mirror traffic, synthetic load, the request samples.
- ``discovery.py``: registries served here and how azure-ai-ml finds them (a cloud's metadata, registry discovery).
- ``registries.py``, ``registry_routes.py``: a registry's models, shares (imports) and faults; its answers on ARM and
  on the registry data plane.
- ``metrics.py``: Azure Monitor's metrics API for an endpoint (``RequestsPerMinute``, ``RequestLatency_P50..P99``)
  computed from the samples, with an ingestion lag.
"""

from __future__ import annotations

from devkit.aml_emulator.faults import FaultPlan, RequestRule, arm_action
from devkit.aml_emulator.rules import MANAGED_ONLINE_SKUS, EndpointNameRegistry
from devkit.aml_emulator.server import CONTROL_PREFIX, AmlEmulator
from devkit.aml_emulator.state import (
    ARM_AUDIENCE,
    PROVIDER,
    ArmError,
    ComponentVersion,
    Job,
    LoggedRequest,
    ModelVersion,
    Operation,
    Resource,
    validate_name,
)

__all__ = [
    "ARM_AUDIENCE",
    "CONTROL_PREFIX",
    "MANAGED_ONLINE_SKUS",
    "PROVIDER",
    "AmlEmulator",
    "ArmError",
    "ComponentVersion",
    "EndpointNameRegistry",
    "FaultPlan",
    "Job",
    "LoggedRequest",
    "ModelVersion",
    "Operation",
    "RequestRule",
    "Resource",
    "arm_action",
    "validate_name",
]
