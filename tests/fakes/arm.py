"""ARM's answers as the app's SDKs raise them, without a socket: the exceptions the Azure ML fake raises.

The management client maps 401, 404 and 409 to azure-core's ``ClientAuthenticationError``,
``ResourceNotFoundError`` and ``ResourceExistsError`` and raises ``HttpResponseError`` (ARM error format) for
the rest (the ``error_map`` of azure-mgmt-machinelearningservices' generated operations); no answer at all is a
``ServiceResponseError``. Each error carries a response whose request URL is on ARM, so the app's error policy
(``app.platform.errors``) tells its source, status and code exactly as it does for the real client's errors.
"""

from __future__ import annotations

import http
import json
from dataclasses import dataclass, field
from typing import Any

ARM = "https://management.azure.com"


@dataclass(frozen=True)
class ArmAnswer:
    """What azure-core's ``HttpResponseError`` reads of a response: status, reason, body and the request."""

    status_code: int
    body: dict[str, Any]
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})

    @property
    def reason(self) -> str:
        return http.HTTPStatus(self.status_code).phrase

    @property
    def content_type(self) -> str:
        return "application/json"

    @property
    def request(self) -> Any:
        # azure-core's own request type: nothing is sent, it only carries the method and the URL.
        from azure.core.rest import HttpRequest

        return HttpRequest(self.method, self.url)

    def text(self, encoding: str | None = None) -> str:
        return json.dumps(self.body)


def arm_error(status: int, code: str, message: str, *, method: str = "GET", path: str = "") -> Exception:
    """The exception the management client raises for an ARM error answer ``{"error": {"code", "message"}}``."""
    # azure-core's exception types are what the app's error policy inspects.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
    )
    from azure.mgmt.core.exceptions import ARMErrorFormat

    answer = ArmAnswer(status, {"error": {"code": code, "message": message}}, method, f"{ARM}{path}")
    mapped = {401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError}.get(status)
    if mapped is not None:
        return mapped(response=answer)
    return HttpResponseError(response=answer, error_format=ARMErrorFormat)


def no_answer(method: str, path: str) -> Exception:
    """A request that got no answer in time: it may or may not have taken effect."""
    from azure.core.exceptions import ServiceResponseError

    return ServiceResponseError(f"{method} {ARM}{path}: the read timed out (no answer)")


def denied_message(action: str) -> str:
    """ARM's 403 ``AuthorizationFailed`` text, which names the refused action (Troubleshoot Azure RBAC,
    https://learn.microsoft.com/azure/role-based-access-control/troubleshooting)."""
    return (
        "The client '00000000-0000-0000-0000-0000000000a1' with object id '00000000-0000-0000-0000-0000000000a1' "
        f"does not have authorization to perform action '{action}' over scope '/subscriptions/…' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials."
    )
