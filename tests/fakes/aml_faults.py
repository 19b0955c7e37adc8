"""The Azure ML fake's record of calls and its injectable faults: ARM errors, lost answers and late writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.platform.errors import status_code_of
from app.rollout.decide.naming import EndpointNameTaken
from tests.fakes.arm import arm_error, denied_message, no_answer

if TYPE_CHECKING:
    from tests.fakes.aml import FakeAzureML

#: The gateway's calls and the HTTP method each sends (``set_traffic`` is the endpoint's PUT).
METHODS = {
    "get_model": "GET",
    "observe": "GET",
    "get_logs": "POST",
    "create_endpoint": "PUT",
    "create_deployment": "PUT",
    "set_traffic": "PUT",
    "delete_deployment": "DELETE",
}
WRITES = frozenset({"create_endpoint", "create_deployment", "set_traffic", "delete_deployment"})
#: The ARM action a denied call names (Azure ML's resource provider operations).
ACTIONS = {
    "GET": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read",
    "POST": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/getLogs/action",
    "PUT": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
    "DELETE": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete",
}


@dataclass
class ArmCall:
    """One call the app made: which, on what, when, and the HTTP status it got (None: no answer)."""

    op: str
    endpoint: str
    deployment: str
    at: dt.datetime
    status: int | None = 200

    @property
    def method(self) -> str:
        return METHODS[self.op]

    @property
    def is_write(self) -> bool:
        return self.op in WRITES


@dataclass
class Fault:
    """What the next matching call gets instead of Azure ML's own answer.

    ``op`` is a gateway call (``set_traffic``…), ``"write"`` for any write or ``"*"`` for any call; ``endpoint``
    narrows it. ``status`` is the ARM error's HTTP status; ``status=None`` means no answer at all: with
    ``landed`` the write took effect anyway, with ``late`` it is held on the wire and lands when the test calls
    ``land_held``, after whatever happened meanwhile.
    """

    op: str
    status: int | None = 500
    code: str = "InternalServerError"
    message: str = "An internal server error occurred."
    endpoint: str | None = None
    landed: bool = False
    late: bool = False
    count: int = 1

    def matches(self, op: str, endpoint: str) -> bool:
        wanted = self.op == "*" or self.op == op or (self.op == "write" and op in WRITES)
        return wanted and (self.endpoint is None or self.endpoint.lower() == endpoint.lower())


@dataclass
class HeldWrite:
    """A write sent without an answer, still on the wire."""

    call: ArmCall
    apply: Callable[[], None] = field(repr=False)
    landed: bool = False
    error: Exception | None = None


class FaultsMixin:
    """Every call goes through ``_call``: recorded, faulted if a fault matches, else applied by Azure ML's rules."""

    def _call(
        self: FakeAzureML, op: str, endpoint: str, deployment: str = "", *, apply: Callable[[], None] | None = None
    ) -> None:
        self.settle()
        call = ArmCall(op, endpoint, deployment, self.clock())
        self.calls.append(call)
        fault = self._take_fault(op, endpoint)
        if fault is None:
            try:
                if apply is not None:
                    apply()
            except EndpointNameTaken:
                call.status = 400
                raise
            except Exception as err:
                call.status = status_code_of(err)
                raise
            return
        path = f"{self.workspace.arm_id}/onlineEndpoints/{endpoint}"
        call.status = fault.status
        if fault.status is not None:
            raise arm_error(fault.status, fault.code, fault.message, method=call.method, path=path)
        if apply is not None and fault.late:
            self.held.append(HeldWrite(call, apply))
        elif apply is not None and fault.landed:
            apply()
        raise no_answer(call.method, path)

    def _take_fault(self: FakeAzureML, op: str, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(op, endpoint):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------------------------ injecting faults

    def fail_next(
        self: FakeAzureML,
        op: str,
        status: int = 500,
        code: str = "",
        *,
        endpoint: str | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` matching calls get an ARM error with ``status`` (and its usual code)."""
        usual = {409: "Conflict", 429: "TooManyRequests", 400: "BadArgument", 404: "NotFound"}
        default = usual.get(status, "InternalServerError" if status >= 500 else "BadRequest")
        self.faults.append(Fault(op, status, code or default, f"injected {status}", endpoint=endpoint, count=count))

    def deny_next(self: FakeAzureML, op: str, *, endpoint: str | None = None, count: int = 1) -> None:
        """The next ``count`` matching calls get ARM's 403 AuthorizationFailed naming the refused action."""
        message = denied_message(ACTIONS[METHODS.get(op, "PUT")])
        self.faults.append(Fault(op, 403, "AuthorizationFailed", message, endpoint=endpoint, count=count))

    def drop_answer(self: FakeAzureML, op: str, *, landed: bool, endpoint: str | None = None) -> None:
        """The next matching call gets no answer; with ``landed`` the write took effect regardless."""
        self.faults.append(Fault(op, None, endpoint=endpoint, landed=landed))

    def hold_next(self: FakeAzureML, op: str = "set_traffic", *, endpoint: str | None = None) -> None:
        """The next matching write stalls on the wire (its caller gets no answer) until ``land_held``."""
        self.faults.append(Fault(op, None, endpoint=endpoint, late=True))

    def land_held(self: FakeAzureML) -> list[HeldWrite]:
        """The stalled writes arrive now, oldest first, each under Azure ML's rules as they stand now."""
        self.settle()
        landed, self.held = self.held, []
        for write in landed:
            try:
                write.apply()
                write.landed = True
            except Exception as err:  # nobody waits for this answer; the test reads it from the record
                write.error = err
        return landed

    # ------------------------------------------------------------------------------------ the record

    def calls_to(self: FakeAzureML, op: str, endpoint: str | None = None) -> list[ArmCall]:
        return [c for c in self.calls if c.op == op and (endpoint is None or c.endpoint.lower() == endpoint.lower())]

    @property
    def writes(self: FakeAzureML) -> list[ArmCall]:
        return [c for c in self.calls if c.is_write]
