"""HTTPS stand-in for the Azure Resource Manager subset of Azure ML that the app and its SDKs use.

One room per ARM area; :class:`AmlEmulator` in ``server.py`` composes them:

- ``server.py``: lifecycle, HTTPS handling, the routing table, auth, subscription/workspace checks, paging,
  and the control API (Python and ``/_emulator/...``).
- ``state.py``: the entity records, ``ArmError``, name validation and time helpers.
- ``faults.py``: fault injection (429/500 rates, scripted next failures, latency, failing deployments and jobs).
- ``operations.py``: long-running operations (start, busy checks, LRO answers, operation status, advancing time).
- ``models.py``: model containers and versions.
- ``endpoints.py``: online endpoints and deployments, traffic rules, keys and tokens, getLogs and container logs.
- ``jobs.py``: jobs and components.
- ``outbox.py``: the Event Grid events the emulated workspace publishes.
- ``scoring.py``: each endpoint's ``scoringUri`` on the emulator (``/inference/{endpoint}/score``), key and
  Entra-token auth, the ``azureml-model-deployment`` header.
- ``health.py``: emulated model behaviour per deployment (error rate, lognormal latency, failing on purpose),
  from the control API or the model's ``emulator.*`` tags.
- ``traffic.py``: the emulated clock, routing by live and mirror traffic, synthetic load, the request samples.
- ``metrics.py``: Azure Monitor's metrics API for an endpoint (``RequestsPerMinute``, ``RequestLatency_P50..P99``)
  computed from the samples, with an ingestion lag.
"""

from __future__ import annotations

from devkit.aml_emulator.faults import FaultPlan
from devkit.aml_emulator.server import ARM_AUDIENCE, CONTROL_PREFIX, AmlEmulator
from devkit.aml_emulator.state import (
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
    "PROVIDER",
    "AmlEmulator",
    "ArmError",
    "ComponentVersion",
    "FaultPlan",
    "Job",
    "LoggedRequest",
    "ModelVersion",
    "Operation",
    "Resource",
    "validate_name",
]
