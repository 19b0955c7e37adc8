"""Azure Monitor outages: the metrics API answering 5xx, 429 or 403 for a scripted window of emulated time.

What a gate meets in Azure when Azure Monitor is degraded (5xx), throttles its reader (429 with ``Retry-After``:
"Azure Monitor service limits", learn.microsoft.com/azure/azure-monitor/service-limits#azure-monitor-metrics-api),
or when the reader lost ``Microsoft.Insights/metrics/read`` (403 ``AuthorizationFailed``, as ARM answers for a
missing role: learn.microsoft.com/azure/role-based-access-control/troubleshooting). The window runs on the
emulator's clock, so a frozen clock moved by a test or by the acceptance suite opens and closes it exactly.
Only metrics reads are refused; ARM's Azure ML routes go on serving.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import ArmError

OUTAGE_STATUSES = (403, 429, 500, 502, 503, 504)
_ANSWERS = {
    429: ("TooManyRequests", "The request is being throttled: the metrics API's limit for this caller was reached."),
    500: ("InternalServerError", "An unexpected error occurred while reading metrics."),
    502: ("BadGateway", "The gateway did not receive a response from the metrics service."),
    503: ("ServiceUnavailable", "The metrics service is temporarily unavailable."),
    504: ("GatewayTimeout", "The metrics service did not answer within the time allowed."),
}


@dataclass
class MonitorOutage:
    """One window: ``status`` from ``start`` until ``until`` (emulated epoch seconds; None: until cleared), at most
    ``count`` answers (None: any number)."""

    id: str
    status: int
    start: float
    until: float | None
    count: int | None
    retry_after_s: float
    hits: int = 0

    def active(self, now: float) -> bool:
        in_window = self.start <= now and (self.until is None or now < self.until)
        return in_window and (self.count is None or self.hits < self.count)


class MonitorOutageArea(AreaBase):
    """``monitor_outage`` and the check the metrics route runs first."""

    _monitor_outages: list[MonitorOutage]

    def _reset_monitor_outages(self) -> None:
        self._monitor_outages = []

    def monitor_outage(
        self,
        status: int = 503,
        *,
        seconds: float | None = None,
        count: int | None = None,
        starts_in: float = 0.0,
        retry_after_s: float = 30.0,
    ) -> str:
        """Answer metrics reads with ``status`` from ``starts_in`` seconds from now (emulated) for ``seconds``
        (None: until cleared) and at most ``count`` reads (None: all). Returns the window's id."""
        if status not in OUTAGE_STATUSES:
            raise ValueError(f"status={status} is not an outage Azure Monitor answers; use one of {OUTAGE_STATUSES}")
        if (seconds is not None and seconds <= 0) or (count is not None and count < 1) or starts_in < 0:
            raise ValueError("seconds must be > 0, count >= 1 and starts_in >= 0 (None: no limit)")
        with self._lock:
            start = self._clock.now() + starts_in
            outage = MonitorOutage(
                id=uuid.uuid4().hex[:8],
                status=status,
                start=start,
                until=start + seconds if seconds is not None else None,
                count=count,
                retry_after_s=retry_after_s,
            )
            self._monitor_outages.append(outage)
        return outage.id

    def clear_monitor_outages(self) -> None:
        with self._lock:
            self._monitor_outages = []

    def monitor_outages(self) -> list[dict[str, Any]]:
        """Every window since the last clear, with how many reads it refused (``hits``)."""
        with self._lock:
            return [asdict(outage) for outage in self._monitor_outages]

    def _monitor_outage_answer(self, request: Request) -> Response | None:
        """The refusal of an active outage window, or None to serve the metrics read."""
        with self._lock:
            now = self._clock.now()
            outage = next((o for o in self._monitor_outages if o.active(now)), None)
            if outage is None:
                return None
            outage.hits += 1
        if outage.status == 403:
            return ArmError(
                403,
                "AuthorizationFailed",
                "The client does not have authorization to perform action 'Microsoft.Insights/metrics/read' over "
                f"scope '{request.path.split('/providers/Microsoft.Insights', 1)[0]}' or the scope is invalid. If "
                "access was recently granted, please refresh your credentials. (injected by the devkit)",
            ).response()
        code, message = _ANSWERS[outage.status]
        response = ArmError(outage.status, code, f"{message} (injected by the devkit)").response()
        if outage.status in (429, 503) and outage.retry_after_s >= 1:
            response.headers["Retry-After"] = f"{outage.retry_after_s:g}"
        elif outage.status in (429, 503):
            # Under a second: the dev kit's millisecond form (azure-core honours it), so tests wait no real seconds.
            response.headers["retry-after-ms"] = str(max(1, round(outage.retry_after_s * 1000)))
        return response

    def _monitor_outage_control(self, method: str, route: str, body: dict[str, Any]) -> Response | None:
        """``PUT /_emulator/monitor/outage`` ``{"status", "seconds", "count", "starts_in", "retry_after_s"}`` → 201
        ``{"id"}``; ``GET`` lists the windows; ``DELETE`` clears them. None when ``route`` is not this one."""
        if route.strip("/") != "monitor/outage":
            return None
        if method == "PUT":
            seconds, count = body.get("seconds"), body.get("count")
            outage_id = self.monitor_outage(
                int(body.get("status", 503)),
                seconds=float(seconds) if seconds is not None else None,
                count=int(count) if count is not None else None,
                starts_in=float(body.get("starts_in", 0.0)),
                retry_after_s=float(body.get("retry_after_s", 30.0)),
            )
            return Response(201, {"id": outage_id})
        if method == "DELETE":
            self.clear_monitor_outages()
            return Response(204)
        if method == "GET":
            return Response(200, {"value": self.monitor_outages()})
        return None
