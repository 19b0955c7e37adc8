"""Azure Monitor's online-endpoint metrics, made up from the Azure ML fake's traffic: the gate's reader on fakes.

Each whole minute, an endpoint serves ``rpm`` requests, split by the live traffic in force at the minute's start
(as the Azure ML fake recorded its traffic writes), plus mirrored copies. A deployment's health says how many of
its requests fail and its P99. Points are what ``app.azure.metrics.MetricsReader.read_window`` returns: PT1M, stamped
at the minute's start, only complete minutes, and none newer than ``lag`` (Azure Monitor's ingestion delay).
A failing model shows as Azure ML reports it: status class 4xx (the endpoint answers 424) with model status 500.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.rollout.decide.gate import LatencyPoint, MetricWindow, RequestPoint
from tests.fakes.arm import arm_error

if TYPE_CHECKING:
    from app.platform.workspace import WorkspaceRef
    from tests.fakes.aml import FakeAzureML

MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Health:
    """How a deployment's model answers: the percent of requests it fails, and its P99 latency."""

    error_rate: float = 0.0
    p99_ms: float = 60.0


class FakeMetrics:
    """``Deps.metrics``: ``fake(workspace)`` returns it. Records every window read; reads can be made to fail."""

    def __init__(self, aml: FakeAzureML, *, rpm: float = 600.0, lag: dt.timedelta = dt.timedelta(0)) -> None:
        self.aml = aml
        self.rpm = rpm
        self.lag = lag
        self.health: dict[str, Health] = {}
        self.reads: list[tuple[str, dt.datetime, dt.datetime]] = []
        self.failures: list[int] = []  # HTTP statuses the next reads answer

    def __call__(self, workspace: WorkspaceRef) -> FakeMetrics:
        return self

    def set_health(self, deployment: str, *, error_rate: float = 0.0, p99_ms: float = 60.0) -> None:
        self.health[deployment.lower()] = Health(error_rate, p99_ms)

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow:
        """What Azure Monitor holds for the endpoint in ``[start, end)``: two ARM reads' worth of points."""
        self.reads.append((endpoint_id, start, end))
        if self.failures:
            status = self.failures.pop(0)
            raise arm_error(status, "InternalServerError", "metrics unavailable", path=f"{endpoint_id}/metrics")
        endpoint = endpoint_id.rsplit("/", 1)[-1].lower()
        available = self.aml.clock() - self.lag
        minute = start.replace(second=0, microsecond=0)
        requests: list[RequestPoint] = []
        latency: list[LatencyPoint] = []
        while minute + MINUTE <= min(end, available):
            live, mirror = self._split(endpoint, minute)
            for deployment, share in [*live.items(), *mirror.items()]:
                self._minute(deployment, minute, self.rpm * share / 100.0, requests, latency)
            minute += MINUTE
        return MetricWindow(start=start, end=end, requests=tuple(requests), latency=tuple(latency))

    def _split(self, endpoint: str, at: dt.datetime) -> tuple[dict[str, int], dict[str, int]]:
        """The live and mirror split in force at ``at``."""
        live: dict[str, int] = {}
        mirror: dict[str, int] = {}
        for when, name, traffic, mirrored in self.aml.traffic_log:
            if name == endpoint and when <= at:
                live = {k: v for k, v in traffic.items() if v}
                mirror = {k: v for k, v in mirrored.items() if v}
        return live, mirror

    def _minute(
        self,
        deployment: str,
        minute: dt.datetime,
        count: float,
        requests: list[RequestPoint],
        latency: list[LatencyPoint],
    ) -> None:
        if count <= 0:
            return
        health = self.health.get(deployment.lower(), Health())
        failed = count * health.error_rate / 100.0
        if count - failed > 0:
            requests.append(RequestPoint(deployment, minute, "2xx", "200", count - failed))
        if failed > 0:
            requests.append(RequestPoint(deployment, minute, "4xx", "500", failed))
        latency.append(LatencyPoint(deployment, minute, health.p99_ms))
