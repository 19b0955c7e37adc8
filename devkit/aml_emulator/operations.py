"""Long-running operations on endpoints and deployments: start, busy checks, LRO answers, status, time, states."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import PROVIDER, ArmError, Operation, Resource, _iso

DEFAULT_OPERATION_DURATION_S = 0.5
DEFAULT_POLL_INTERVAL_S = 0.1

#: ``provisioningState`` enums of the 2023-04-01 spec (mfe.json ``EndpointProvisioningState`` and
#: ``DeploymentProvisioningState``, as azure-mgmt-machinelearningservices 2.0.0b2 generates them): only a
#: deployment can be ``Scaling``.
ENDPOINT_STATES = ("Creating", "Deleting", "Succeeded", "Failed", "Updating", "Canceled")
DEPLOYMENT_STATES = ("Creating", "Deleting", "Scaling", "Updating", "Succeeded", "Failed", "Canceled")
#: The states :meth:`OperationsArea.set_provisioning_state` and ``end_next_operations`` can impose.
TERMINAL_STATES = ("Succeeded", "Failed", "Canceled")


class OperationsArea(AreaBase):
    """ARM's asynchronous-operation pattern for endpoint and deployment writes; state advances lazily with time."""

    _operations: dict[str, Operation]
    _scripted_outcomes: dict[tuple[str, str | None], list[str]]
    operation_duration_s: float
    #: Per-kind durations over ``operation_duration_s``: keys ``endpoint:create``, ``endpoint:update`` (a traffic
    #: update), ``deployment:create``, ``deployment:update``, ``deployment:delete``, ``endpoint:delete``.
    operation_durations: dict[str, float]
    poll_interval_s: float

    def set_provisioning_state(
        self, endpoint: str, deployment: str | None = None, *, state: str, seconds: float | None = None
    ) -> None:
        """Show an idle endpoint or deployment in ``state`` now, as AML does after an out-of-band event.

        - ``Failed`` / ``Canceled`` stay until the next write: a re-PUT starts an update that ends ``Succeeded``
          (an endpoint recovers this way; a Failed endpoint refuses new deployments meanwhile).
        - ``Scaling`` (deployments only, as in the spec's enums) lasts ``seconds`` (required) and counts as an
          operation in progress: writes to the endpoint answer 409 until it ends ``Succeeded``.
        - ``Succeeded`` clears a forced state.
        Raises ``KeyError`` for an unknown resource and ``ValueError`` for a state the spec does not allow here or
        a resource with an operation in progress.
        """
        allowed = (*TERMINAL_STATES, "Scaling") if deployment is not None else TERMINAL_STATES
        if state not in allowed:
            kind = "a deployment" if deployment is not None else "an endpoint"
            raise ValueError(f"{kind} can be set to one of {allowed}, not {state!r} (2023-04-01 provisioningState)")
        if state == "Scaling" and not seconds:
            raise ValueError("Scaling needs seconds: how long the deployment scales")
        with self._lock:
            self._advance()
            res = self._resource(endpoint, deployment)
            if res.operation is not None:
                raise ValueError(f"'{res.name}' is {res.state}: an operation is in progress (use end_next_operations)")
            if state != "Scaling":
                res.state = state
                res.logs_failed = state == "Failed"
                return
            op = self._start_operation("scale", endpoint, res.name, "")
            op.ends_at = op.started + float(seconds or 0)
            res.state, res.operation = "Scaling", op

    def end_next_operations(
        self, endpoint: str, deployment: str | None = None, *, state: str = "Failed", count: int = 1
    ) -> None:
        """Make the operation in progress on this endpoint (or deployment), then the next ones, end in ``state``.

        ``count`` operations in all (creates and updates; deletes are not affected), each ending ``Failed`` or
        ``Canceled`` (or ``Succeeded``): the resource shows that provisioning state and its operation status reports
        it (azure-core pollers raise on both). A deployment that does not exist yet is matched by name.
        """
        if state not in TERMINAL_STATES:
            raise ValueError(f"an operation ends in one of {TERMINAL_STATES}, not {state!r}")
        key = (endpoint.lower(), deployment.lower() if deployment is not None else None)
        with self._lock:
            self._advance()
            res = self._find_resource(endpoint, deployment)
            if res is not None and res.operation is not None and res.operation.action in {"create", "update"}:
                res.operation.outcome = state
                count -= 1
            if count > 0:
                self._scripted_outcomes.setdefault(key, []).extend([state] * count)

    def _resource(self, endpoint: str, deployment: str | None) -> Resource:
        res = self._find_resource(endpoint, deployment)
        if res is None:
            what = f"deployment '{deployment}' on endpoint '{endpoint}'" if deployment else f"endpoint '{endpoint}'"
            raise KeyError(f"no {what}")
        return res

    def _find_resource(self, endpoint: str, deployment: str | None) -> Resource | None:
        if deployment is None:
            return self._endpoints.get(endpoint.lower())
        return self._deployments.get(endpoint.lower(), {}).get(deployment.lower())

    def set_operation_duration(self, seconds: float) -> None:
        """How long endpoint/deployment operations stay Creating/Updating/Deleting (new operations only)."""
        with self._lock:
            self.operation_duration_s = seconds

    def set_operation_durations(self, durations: dict[str, float]) -> None:
        """How long each kind of operation lasts (``{"endpoint:create": 90, "deployment:create": 300,
        "endpoint:update": 30}``), over ``operation_duration_s`` for the kinds not named; ``{}`` clears them."""
        with self._lock:
            self.operation_durations = dict(durations)

    def set_poll_interval(self, seconds: float) -> None:
        """The ``Retry-After`` sent with LRO answers (how often SDK pollers come back)."""
        with self._lock:
            self.poll_interval_s = seconds

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Let every endpoint/deployment operation in progress end, at once: the emulated clock jumps to the last one's
        end, so a 90 s operation costs no real time. ``TimeoutError`` if that is more than ``timeout_s`` away."""
        self._wait_until_ended(
            lambda: [op.ends_at for op in self._operations.values() if not op.done],
            "operations still in progress",
            timeout_s,
        )

    def _wait_until_ended(self, pending: Callable[[], list[float]], what: str, timeout_s: float) -> None:
        """Move the emulated clock to the time the last of ``pending()`` ends (end times of what has not ended, read
        under the lock); nothing sleeps. Raises ``TimeoutError`` naming what is left when that is over ``timeout_s``
        of emulated time away (the clock is not moved then)."""
        with self._lock:
            self._advance()
            ends = pending()
            if not ends:
                return
            skip = max(ends) - self._clock.now()
            if skip > timeout_s:
                raise TimeoutError(f"{len(ends)} {what}")
            self.advance_clock(max(0.0, skip))
            self._advance()

    def _advance(self) -> None:
        """Finish every operation whose time is up (state is evaluated lazily, no timers)."""
        now = self._clock.now()
        self._announce_ended_jobs()
        for op in sorted(self._operations.values(), key=lambda o: o.ends_at):
            if op.done or op.ends_at > now:
                continue
            op.done = True
            op.status = op.outcome
            ep_key = op.endpoint.lower()
            if op.deployment is None:
                endpoint = self._endpoints.get(ep_key)
                if endpoint is None:
                    continue
                endpoint.operation = None
                if op.action == "delete":
                    del self._endpoints[ep_key]
                    self._deployments.pop(ep_key, None)
                    self._keys.pop(ep_key, None)
                    self.names.release(self.location, endpoint.name, self.workspace_id)
                else:
                    endpoint.state = op.outcome
            else:
                deployment = self._deployments.get(ep_key, {}).get(op.deployment.lower())
                if deployment is None:
                    continue
                deployment.operation = None
                if op.action == "delete":
                    del self._deployments[ep_key][op.deployment.lower()]
                else:
                    deployment.state = op.outcome
                    deployment.logs_failed = op.outcome == "Failed"

    def _start_operation(self, action: str, endpoint: str, deployment: str | None, api_version: str) -> Operation:
        now = self._clock.now()
        outcome = "Succeeded"
        if deployment is not None and action in {"create", "update"}:
            names = {deployment.lower(), f"{endpoint}/{deployment}".lower()}
            if names & self._failing_deployments:
                outcome = "Failed"
        scripted = self._scripted_outcomes.get((endpoint.lower(), deployment.lower() if deployment else None))
        if scripted and action in {"create", "update"}:
            outcome = scripted.pop(0)
        op = Operation(
            id=str(uuid.uuid4()),
            action=action,
            endpoint=endpoint,
            deployment=deployment,
            started=now,
            ends_at=now
            + self.operation_durations.get(
                f"{'endpoint' if deployment is None else 'deployment'}:{action}", self.operation_duration_s
            ),
            api_version=api_version,
            outcome=outcome,
        )
        self._operations[op.id] = op
        return op

    def _busy_operation(self, endpoint: str) -> tuple[str, Resource] | None:
        """The endpoint or deployment with an operation in progress on this endpoint, if any."""
        ep = self._endpoints.get(endpoint.lower())
        if ep is not None and ep.operation is not None:
            return "online endpoint", ep
        for dep in self._deployments.get(endpoint.lower(), {}).values():
            if dep.operation is not None:
                return "online deployment", dep
        return None

    def _check_not_busy(self, endpoint: str) -> None:
        busy = self._busy_operation(endpoint)
        if busy is not None:
            kind, res = busy
            raise ArmError(
                409,
                "Conflict",
                f"Conflict: another operation is in progress on endpoint '{endpoint}': {kind} '{res.name}' "
                f"is in {res.state} provisioning state. Wait for it to finish and retry.",
            )

    def _lro_response(self, status: int, op: Operation, body: Any = None) -> Response:
        base = f"{self.url}/subscriptions/{self.subscription_id}/providers/{PROVIDER}/locations/{self.location}"
        query = f"?api-version={op.api_version}" if op.api_version else ""
        headers = {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}{query}",
            "Location": f"{base}/mfeOperationResults/{op.id}{query}",
            **self._poll_delay_headers(),
        }
        return Response(status, body, headers)

    def _poll_delay_headers(self) -> dict[str, str]:
        # The generated clients parse Retry-After as an int, so sub-second poll delays use retry-after-ms,
        # which azure-core's pollers also honour.
        if self.poll_interval_s >= 1:
            return {"Retry-After": str(round(self.poll_interval_s))}
        return {"retry-after-ms": str(max(1, round(self.poll_interval_s * 1000)))}

    def _operation_status(self, kind: str, op_id: str, request: Request) -> Response:
        with self._lock:
            self._advance()
            op = self._operations.get(op_id)
            if op is None:
                raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
            if kind.lower() == "mfeoperationresults":
                if not op.done:
                    return self._lro_response(202, op)
                if op.action == "delete" or op.status in {"Failed", "Canceled"}:
                    return Response(204 if op.status == "Succeeded" else 200, None)
                res = self._resource_for(op)
                return Response(200, self._render(res) if res else None)
            body: dict[str, Any] = {
                "id": request.path,
                "name": op.id,
                "status": op.status,
                "startTime": _iso(op.started),
            }
            if op.done:
                body["endTime"] = _iso(op.ends_at)
                body["percentComplete"] = 100.0
            if op.status == "Failed" and op.deployment is not None:
                body["error"] = {
                    "code": "DeploymentFailed",
                    "message": f"Deployment '{op.deployment}' failed: the inference server container crashed "
                    f"while loading the model. Run get_logs for details.",
                }
            elif op.status == "Failed":
                body["error"] = {
                    "code": "EndpointFailed",
                    "message": f"Online endpoint '{op.endpoint}' failed to provision. Update it again to retry.",
                }
            elif op.status == "Canceled":
                target = f"deployment '{op.deployment}'" if op.deployment else f"endpoint '{op.endpoint}'"
                body["error"] = {"code": "OperationCanceled", "message": f"The operation on {target} was canceled."}
            headers = {} if op.done else self._poll_delay_headers()
            return Response(200, body, headers)

    def _resource_for(self, op: Operation) -> Resource | None:
        if op.deployment is None:
            return self._endpoints.get(op.endpoint.lower())
        return self._deployments.get(op.endpoint.lower(), {}).get(op.deployment.lower())

    def _render(self, res: Resource) -> dict[str, Any]:
        body = copy.deepcopy(res.body)
        body["properties"]["provisioningState"] = res.state
        return body
