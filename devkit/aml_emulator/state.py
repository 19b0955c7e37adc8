"""What the emulated workspace holds: entity records, the ARM error answer, name rules and time helpers."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devkit._server import Response

PROVIDER = "Microsoft.MachineLearningServices"
#: The audience of the ARM tokens the emulator accepts.
ARM_AUDIENCE = "https://management.azure.com"
#: The SDK's own rule (azure.ai.ml EndpointConfigurations.NAME_REGEX_PATTERN) plus its 3..32 length check.
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
NAME_MIN, NAME_MAX = 3, 32


class ArmError(Exception):
    """An ARM error answer: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return Response(self.status, {"error": {"code": self.code, "message": self.message}})


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | float | datetime | None) -> float:
    if value is None:
        return _now()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def validate_name(name: str, what: str) -> None:
    """Raise a 400 :class:`ArmError` unless ``name`` is a valid online endpoint/deployment name."""
    if not NAME_MIN <= len(name) <= NAME_MAX or not NAME_PATTERN.match(name):
        raise ArmError(
            400,
            "BadArgument",
            f"Invalid {what} name '{name}': it must be {NAME_MIN}-{NAME_MAX} characters, start with a letter, "
            "contain only letters, digits and '-', and end with a letter or digit.",
        )


@dataclass
class ModelVersion:
    """One registered model version."""

    name: str
    version: str
    model_type: str = "mlflow_model"
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    model_uri: str | None = None
    created_at: float = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)
    readable_at: float = 0.0  # GET of this version answers 404 before then (read-after-write lag)


@dataclass
class Operation:
    """A long-running ARM operation on an endpoint (``deployment`` set when it targets a deployment)."""

    id: str
    action: str  # create | update | delete | scale
    endpoint: str
    deployment: str | None
    started: float
    ends_at: float
    api_version: str
    outcome: str = "Succeeded"  # what it turns into when it ends: Succeeded | Failed | Canceled
    done: bool = False
    status: str = "InProgress"


@dataclass
class Resource:
    """An online endpoint or deployment: its ARM body plus the operation currently running on it."""

    name: str
    body: dict[str, Any]
    state: str
    created_at: float
    operation: Operation | None = None
    logs_failed: bool = False


@dataclass
class Job:
    """A submitted job; its status advances with time."""

    name: str
    body: dict[str, Any]
    created_at: float
    ends_at: float
    outcome: str = "Completed"
    canceled: bool = False
    announced: bool = False  # its RunCompleted / RunStatusChanged went to the outbox
    parent: str = ""  # a pipeline step's parent pipeline job ('' for a top-level job)


@dataclass
class ComponentVersion:
    """One registered component version; ``spec`` is the ``componentSpec`` AML stores (inputs, outputs, jobs)."""

    name: str
    version: str
    spec: dict[str, Any]
    created_at: float
    sequence: int  # breaks created_at ties, so "latest" is the last one registered
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRequest:
    """One ARM request seen by the emulator (control requests are not logged)."""

    time: float
    method: str
    path: str
    api_version: str | None
    status: int
    duration_ms: float
    injected: bool
    query: Mapping[str, str] = field(default_factory=dict)
    rule: str | None = None  # the id of the request rule (stall, deny, fail) that acted on it, if any
    api: str = "arm"  # "arm", or "metrics-batch" for Azure Monitor's data-plane metrics:getBatch
    principal: str = ""  # the caller's token oid (ARM throttles per principal)
    body: Any = None  # a write's JSON body, as sent (reads have none)

    @property
    def is_write(self) -> bool:
        """ARM counts PUT/PATCH/DELETE/POST against the write quota, GET/HEAD against reads."""
        return self.method in {"PUT", "PATCH", "DELETE", "POST"}
