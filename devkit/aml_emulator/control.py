"""The HTTP control API under ``/_emulator/``: the Python control methods, reachable from another process."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import ArmError

if TYPE_CHECKING:
    from devkit.aml_emulator.server import AmlEmulator

CONTROL_PREFIX = "/_emulator"


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _optional_float(value: Any) -> float | None:
    return float(value) if value is not None else None


class ControlArea(AreaBase):
    """``/_emulator/...`` (never logged, never authorized); every route calls one Python control method."""

    def _workspace_in(self, body: dict[str, Any]) -> AmlEmulator:
        """The workspace a control request names with ``"workspace"`` (this one by default)."""
        emu = cast("AmlEmulator", self)
        name = body.get("workspace")
        return emu.workspace(name) if name else emu

    def _control(self, request: Request) -> Response:
        """``/_emulator/...``: reset, requests, faults, models, components, events, state, config. Never logged,
        never authorized.

        - ``POST /_emulator/reset``
        - ``GET /_emulator/requests`` (``?method=&path_contains=&since=``), ``DELETE /_emulator/requests``
        - ``GET /_emulator/requests/counts``
        - clock, load, health, delivery settings and samples: see :meth:`TrafficArea._delivery_control`
        - ``PUT /_emulator/faults`` ``{"rate_429", "rate_500", "methods", "path_pattern", "retry_after_s",
          "latency_ms", "seed"}``; ``DELETE /_emulator/faults``; ``POST /_emulator/faults/next``
          ``{"count", "status", "retry_after_s"}``
        - ``PUT /_emulator/config`` ``{"operation_duration_s", "poll_interval_s", "job_duration_s",
          "failing_deployments": [...], "failing_jobs": [...]}``
        - ``POST /_emulator/models`` ``{"name", "version", "type", "tags", "created_at"}``
        - ``POST /_emulator/components`` ``{"name", "version", "inputs", "outputs", "type", "created_at",
          "description", "tags"}`` (``inputs``: a list of names or ``{name: type | {"type", "optional", "default"}}``)
        - ``GET /_emulator/events`` (the outbox, kept); ``POST /_emulator/events/take`` (returned and cleared)
        - ``GET /_emulator/state``
        - ``POST /_emulator/faults/stall`` ``{"seconds", "methods", "path_pattern", "apply", "nth", "count"}``,
          ``POST /_emulator/faults/deny`` ``{"status", "methods", "path_pattern", "seconds", "count", "nth"}``,
          ``POST /_emulator/faults/fail`` ``{"status", "methods", "path_pattern", "count", "nth", "seconds", "code",
          "message"}``, ``POST /_emulator/faults/deletes`` ``{"endpoint", "deployment", "status", "count"}``: each
          answers 201 ``{"id"}`` (a deny or fail window's ``seconds`` run on the emulated clock, a stall's on the
          wall clock); ``GET /_emulator/faults/rules``; ``DELETE /_emulator/faults/rules/{id}``
        - ``PUT /_emulator/states`` ``{"endpoint", "deployment", "state", "seconds", "workspace"}``;
          ``POST /_emulator/states/next`` ``{"endpoint", "deployment", "state", "count", "workspace"}``
        - ``PUT /_emulator/models/lag`` ``{"seconds", "name", "workspace"}``
        - ``POST /_emulator/workspaces`` ``{"name", "location", "resource_group", "subscription_id"}`` → 201
          ``{"id", "location"}``
        - registries: see :meth:`_registry_control`
        - ``PUT /_emulator/config`` also takes ``"endpoint_name_hold_s"``
        - ``PUT|GET|DELETE /_emulator/monitor/outage``: see :meth:`MonitorOutageArea._monitor_outage_control`
        - ``PUT|DELETE /_emulator/limits``: request limits (see :meth:`LimitsArea._limits_control`)
        """
        emu = cast("AmlEmulator", self)
        route = request.path[len(CONTROL_PREFIX) :].rstrip("/")
        body = request.json() if request.body else {}
        key = (request.method, route)
        if key == ("POST", "/reset"):
            emu.reset()
            return Response(204)
        if key == ("GET", "/requests"):
            since = request.query.get("since")
            logged = emu.requests(
                method=request.query.get("method"),
                path_contains=request.query.get("path_contains"),
                since=float(since) if since else None,
            )
            return Response(200, {"value": [asdict(r) | {"is_write": r.is_write} for r in logged]})
        if key == ("GET", "/requests/counts"):
            since = request.query.get("since")
            return Response(200, emu.request_counts(float(since) if since else None))
        if key == ("DELETE", "/requests"):
            emu.clear_requests()
            return Response(204)
        if key == ("PUT", "/faults"):
            emu.inject_faults(**body)
            return Response(204)
        if key == ("DELETE", "/faults"):
            emu.clear_faults()
            return Response(204)
        if key == ("POST", "/faults/next"):
            retry_after = body.get("retry_after_s")
            emu.fail_next(
                int(body.get("count", 1)),
                int(body.get("status", 429)),
                float(retry_after) if retry_after is not None else None,
            )
            return Response(204)
        if key == ("PUT", "/config"):
            if "operation_duration_s" in body:
                emu.set_operation_duration(float(body["operation_duration_s"]))
            if "poll_interval_s" in body:
                emu.set_poll_interval(float(body["poll_interval_s"]))
            if "job_duration_s" in body:
                with emu._lock:
                    emu.job_duration_s = float(body["job_duration_s"])
            if "endpoint_name_hold_s" in body:
                emu.set_endpoint_name_hold(float(body["endpoint_name_hold_s"]))
            emu.fail_deployments(*body.get("failing_deployments", []))
            emu.fail_jobs(*body.get("failing_jobs", []))
            return Response(204)
        if key == ("POST", "/models"):
            model = emu.seed_model(
                body["name"],
                body["version"],
                body.get("type", "mlflow_model"),
                body.get("tags"),
                body.get("created_at"),
                body.get("properties"),
                body.get("description"),
            )
            return Response(201, {"name": model.name, "version": model.version})
        if key == ("POST", "/components"):
            component = emu.seed_component(
                body["name"],
                body["version"],
                body.get("inputs") or (),
                outputs=body.get("outputs") or ("model",),
                component_type=body.get("type", "pipeline"),
                created_at=body.get("created_at"),
                description=body.get("description"),
                tags=body.get("tags"),
            )
            return Response(201, {"name": component.name, "version": component.version})
        if key == ("GET", "/events"):
            return Response(200, {"value": emu.events()})
        if key == ("POST", "/events/take"):
            return Response(200, {"value": emu.take_events()})
        if key == ("GET", "/state"):
            return Response(200, emu.snapshot())
        if key == ("POST", "/faults/stall"):
            rule_id = emu.stall_requests(
                float(body["seconds"]),
                methods=body.get("methods"),
                path_pattern=body.get("path_pattern"),
                apply=body.get("apply", "end"),
                nth=int(body.get("nth", 1)),
                count=_optional_int(body.get("count", 1)),
            )
            return Response(201, {"id": rule_id})
        if key == ("POST", "/faults/deny"):
            rule_id = emu.deny_requests(
                int(body.get("status", 403)),
                methods=body.get("methods"),
                path_pattern=body.get("path_pattern"),
                seconds=_optional_float(body.get("seconds")),
                count=_optional_int(body.get("count")),
                nth=int(body.get("nth", 1)),
            )
            return Response(201, {"id": rule_id})
        if key == ("POST", "/faults/fail"):
            rule_id = emu.fail_requests(
                int(body["status"]),
                methods=body.get("methods"),
                path_pattern=body.get("path_pattern"),
                count=_optional_int(body.get("count")),
                nth=int(body.get("nth", 1)),
                seconds=_optional_float(body.get("seconds")),
                code=body.get("code"),
                message=body.get("message"),
            )
            return Response(201, {"id": rule_id})
        if key == ("POST", "/faults/deletes"):
            rule_id = emu.fail_deletes(
                body["endpoint"],
                body.get("deployment"),
                status=int(body.get("status", 409)),
                count=_optional_int(body.get("count")),
            )
            return Response(201, {"id": rule_id})
        if key == ("GET", "/faults/rules"):
            return Response(200, {"value": emu.request_rules()})
        if request.method == "DELETE" and route.startswith("/faults/rules/"):
            emu.clear_rule(route.rsplit("/", 1)[1])
            return Response(204)
        if key == ("PUT", "/states"):
            emu._workspace_in(body).set_provisioning_state(
                body["endpoint"],
                body.get("deployment"),
                state=body["state"],
                seconds=_optional_float(body.get("seconds")),
            )
            return Response(204)
        if key == ("POST", "/states/next"):
            emu._workspace_in(body).end_next_operations(
                body["endpoint"],
                body.get("deployment"),
                state=body.get("state", "Failed"),
                count=int(body.get("count", 1)),
            )
            return Response(204)
        if key == ("PUT", "/models/lag"):
            emu._workspace_in(body).set_model_read_lag(float(body["seconds"]), body.get("name"))
            return Response(204)
        if key == ("POST", "/workspaces"):
            ws = emu.add_workspace(
                body["name"],
                location=body.get("location"),
                resource_group=body.get("resource_group"),
                subscription_id=body.get("subscription_id"),
            )
            return Response(201, {"id": ws.workspace_id, "location": ws.location})
        if route == "/registries" or route.startswith("/registries/"):
            return self._registry_control(request.method, route, body)
        if (delivered := emu._delivery_control(request.method, route, body)) is not None:
            return delivered
        if (outage := emu._monitor_outage_control(request.method, route, body)) is not None:
            return outage
        if (limited := emu._limits_control(request.method, route, body)) is not None:
            return limited
        raise ArmError(404, "NotFound", f"Unknown control route {request.method} {request.path}")

    def _registry_control(self, method: str, route: str, body: dict[str, Any]) -> Response:
        """Registries (discovery.py, registries.py):

        - ``POST /_emulator/registries`` ``{"name", "location", "regions", "resource_group", "subscription_id"}`` →
          201 ``{"id", "regions"}``
        - ``GET /_emulator/registries/{name}/models`` → ``{"value": [{"name", "version", "state", "stage", "tags",
          "properties", "source"}]}``
        - ``POST /_emulator/registries/{name}/models`` ``{"name", "version", "type", "tags", "properties",
          "description", "stage", "job_name", "created_at"}``
        - ``PUT /_emulator/registries/{name}/lag`` ``{"seconds", "reads"}``
        - ``POST /_emulator/registries/{name}/imports/fail`` ``{"count", "how"}`` (``copy`` or ``answer``)
        """
        emu = cast("AmlEmulator", self)
        parts = route.strip("/").split("/")
        if (method, len(parts)) == ("POST", 1):
            added = emu.add_registry(
                body["name"],
                location=body.get("location"),
                regions=body.get("regions"),
                resource_group=body.get("resource_group"),
                subscription_id=body.get("subscription_id"),
            )
            return Response(201, {"id": added.arm_id, "regions": list(added.regions)})
        registry = emu.registry(parts[1]) if len(parts) > 1 else None
        action = (method, "/".join(parts[2:]))
        if registry is None:
            raise ArmError(404, "NotFound", f"Unknown control route {method} /_emulator{route}")
        if action == ("GET", "models"):
            fields = ("name", "version", "state", "stage", "tags", "properties", "source")
            return Response(200, {"value": [{f: getattr(m, f) for f in fields} for m in registry.models()]})
        if action == ("POST", "models"):
            model = registry.seed_model(
                body["name"],
                body["version"],
                model_type=body.get("type", "mlflow_model"),
                tags=body.get("tags"),
                properties=body.get("properties"),
                description=body.get("description"),
                stage=body.get("stage"),
                job_name=body.get("job_name"),
                created_at=body.get("created_at"),
            )
            return Response(201, {"name": model.name, "version": model.version})
        if action == ("PUT", "lag"):
            registry.set_read_lag(seconds=float(body.get("seconds", 0)), reads=int(body.get("reads", 0)))
            return Response(204)
        if action == ("POST", "imports/fail"):
            registry.fail_next_imports(int(body.get("count", 1)), how=body.get("how", "copy"))
            return Response(204)
        raise ArmError(404, "NotFound", f"Unknown control route {method} /_emulator{route}")
