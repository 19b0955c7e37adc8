"""Reads an online endpoint's Azure Monitor platform metrics for a bake window: the gate's input (adapter).

Metric names and dimensions are those of "Supported metrics for Microsoft.MachineLearningServices/workspaces/
onlineEndpoints" (learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
microsoft-machinelearningservices-workspaces-onlineendpoints-metrics): ``RequestsPerMinute`` (dimensions
deployment, statusCode, statusCodeClass, modelStatusCode) and ``RequestLatency_P99`` (dimension deployment),
at PT1M grain. The client is azure-mgmt-monitor's ``metrics.list`` at the endpoint's ARM id, on the same ARM
base URL as the Azure ML calls (``AZUREML_DEV_URL_MFE`` in the dev kit). The reader needs
``Microsoft.Insights/metrics/read`` (Monitoring Reader) on the endpoint or above.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from app.azure.aml import arm_endpoint
from app.azure.throttle import throttle_policy
from app.rollout.decide.gate import LatencyPoint, MetricWindow, RequestPoint

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.monitor import MonitorManagementClient

logger = logging.getLogger(__name__)

#: Split by the status code too: 408 and 429 are the deployment's own failures (app/rollout/decide/gate_statuses.py).
REQUESTS_FILTER = "deployment eq '*' and statusCode eq '*' and statusCodeClass eq '*' and modelStatusCode eq '*'"
LATENCY_FILTER = "deployment eq '*'"
#: Azure Monitor returns only the ``top`` series per metric (default 10) when a filter splits by dimensions;
#: deployments x status classes x model statuses easily exceed that, so ask for far more than can exist.
TOP = 1000
#: Bounded like the app's other clients: a few retries with azure-core's back-off, then the tick gives up.
RETRY_TOTAL = 3
CONNECTION_TIMEOUT_S = 10
READ_TIMEOUT_S = 30


class MetricsReader:
    """Azure Monitor metrics of online endpoints in one subscription. The client is built on first use."""

    def __init__(self, credential: TokenCredential, subscription_id: str) -> None:
        self._credential = credential
        self._subscription_id = subscription_id
        self._client: MonitorManagementClient | None = None

    @property
    def client(self) -> MonitorManagementClient:
        if self._client is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.mgmt.monitor import MonitorManagementClient

            self._client = MonitorManagementClient(
                self._credential,
                self._subscription_id,
                base_url=arm_endpoint(),
                retry_total=RETRY_TOTAL,
                connection_timeout=CONNECTION_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                per_retry_policies=[throttle_policy()],  # metric reads are ARM reads: ARM's 429s pause them too
            )
        return self._client

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow:
        """Request counts by deployment, status code and class and model status, and P99 by deployment, in
        [start, end).

        Two ARM reads. The window is widened to whole minutes so no minute is cut by the query; the gate keeps
        only the points that lie wholly inside ``[start, end]``.
        """
        first, last = minute_bounds(start, end)
        timespan = f"{_iso(first)}/{_iso(last)}"
        requests = self._list(endpoint_id, timespan, "RequestsPerMinute", "Total", REQUESTS_FILTER)
        latency = self._list(endpoint_id, timespan, "RequestLatency_P99", "Average", LATENCY_FILTER)
        return MetricWindow(
            start=start,
            end=end,
            requests=tuple(_request_points(requests)),
            latency=tuple(_latency_points(latency)),
        )

    def _list(self, endpoint_id: str, timespan: str, metric: str, aggregation: str, filter_: str) -> Any:
        result = self.client.metrics.list(
            endpoint_id,
            timespan=timespan,
            interval="PT1M",
            metricnames=metric,
            aggregation=aggregation,
            filter=filter_,
            top=TOP,
        )
        for item in result.value or []:
            if str(item.name.value).lower() == metric.lower():
                return item
        return None


def minute_bounds(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` widened to whole minutes, so no minute is cut by the query (the gate keeps what fits)."""
    first = start.replace(second=0, microsecond=0)
    last = end.replace(second=0, microsecond=0)
    if last < end or last <= first:
        last += dt.timedelta(minutes=1)
    return first, last


def _dimensions(series: Any) -> dict[str, str]:
    return {str(m.name.value).lower(): str(m.value) for m in (series.metadatavalues or [])}


def _request_points(metric: Any) -> list[RequestPoint]:
    points: list[RequestPoint] = []
    for series in getattr(metric, "timeseries", None) or []:
        dims = _dimensions(series)
        for point in series.data or []:
            if point.total:
                points.append(
                    RequestPoint(
                        deployment=dims.get("deployment", ""),
                        timestamp=_aware(point.time_stamp),
                        status_class=dims.get("statuscodeclass", ""),
                        model_status=dims.get("modelstatuscode", ""),
                        count=float(point.total),
                        status_code=dims.get("statuscode", ""),
                    )
                )
    return points


def _latency_points(metric: Any) -> list[LatencyPoint]:
    points: list[LatencyPoint] = []
    for series in getattr(metric, "timeseries", None) or []:
        deployment = _dimensions(series).get("deployment", "")
        for point in series.data or []:
            if point.average is not None:  # a minute with no answered request has no latency value
                points.append(LatencyPoint(deployment, _aware(point.time_stamp), float(point.average)))
    return points


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
