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

Future rooms: ``scoring.py`` (the scoring URI of each endpoint), ``traffic.py`` (synthetic load against it),
``metrics.py`` (the Azure Monitor metrics API for endpoints and deployments).
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
