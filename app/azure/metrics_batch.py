"""Reads the bake windows of many online endpoints of one region in two calls: Azure Monitor's ``metrics:getBatch``.

``MetricsClient.query_resources`` (azure-monitor-querymetrics) posts up to 50 resource ids of one subscription, one
region and one resource type to ``https://{region}.metrics.monitor.azure.com/subscriptions/{id}/metrics:getBatch``
("How to migrate from the metrics API to the getBatch API",
learn.microsoft.com/azure/azure-monitor/essentials/migrate-to-batch-api). It asks for what the per-resource reader
(``app/azure/metrics.py``) asks for, metric by metric: ``RequestsPerMinute`` split by deployment, status class and
model status, and ``RequestLatency_P99`` by deployment, at PT1M. The calls are data-plane calls: they do not count
against ARM's request limits, but the identity needs Monitoring Reader on the subscription itself (the batch API is
a subscription-level API), not only on the endpoints.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from app.azure.metrics import LATENCY_FILTER, REQUESTS_FILTER, TOP, minute_bounds
from app.azure.throttle import throttle_policy
from app.rollout.decide.gate import LatencyPoint, MetricWindow, RequestPoint

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.monitor.querymetrics import MetricsClient

logger = logging.getLogger(__name__)

#: At most this many resource ids in one call (the API's limit).
MAX_RESOURCES = 50
NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
#: Azure's regional endpoints; ``METRICS_BATCH_ENDPOINT`` overrides it (the dev kit points it at its emulator).
DEFAULT_ENDPOINT = "https://{region}.metrics.monitor.azure.com"
#: What each call asks for, per metric: its aggregation and its split (the per-resource reader's own queries).
QUERIES: dict[str, tuple[str, str]] = {
    "RequestsPerMinute": ("Total", REQUESTS_FILTER),
    "RequestLatency_P99": ("Average", LATENCY_FILTER),
}
RETRY_TOTAL = 3
CONNECTION_TIMEOUT_S = 10
READ_TIMEOUT_S = 30


class BatchMetricsReader:
    """Batch metric reads per region; one client per regional endpoint, built on first use."""

    def __init__(
        self, credential: TokenCredential, endpoint_template: str = DEFAULT_ENDPOINT, **client_kwargs: Any
    ) -> None:
        self._credential = credential
        self._template = endpoint_template
        self._client_kwargs = client_kwargs  # more azure-core options (a test's raw_response_hook)
        self._clients: dict[str, MetricsClient] = {}
        #: Calls sent (read by the bench and the tests: the batch API's cost is counted in calls).
        self.calls = 0

    def endpoint(self, region: str) -> str:
        """The regional endpoint for ``region`` (an ARM location such as ``eastus`` or ``East US``)."""
        return self._template.format(region=region.replace(" ", "").lower())

    def _client(self, region: str) -> MetricsClient:
        endpoint = self.endpoint(region)
        if endpoint not in self._clients:
            # SDK on first use, not at import: only a bake's end reads metrics, and only in a busy tick.
            from azure.monitor.querymetrics import MetricsClient

            options = {
                "retry_total": RETRY_TOTAL,
                "connection_timeout": CONNECTION_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
                "per_retry_policies": [throttle_policy()],
                **self._client_kwargs,
            }
            self._clients[endpoint] = MetricsClient(endpoint, self._credential, **options)
        return self._clients[endpoint]

    def read_windows(
        self, region: str, endpoint_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> dict[str, MetricWindow]:
        """Each endpoint's window ``[start, end)`` by lower-cased endpoint id: two calls per 50 endpoints.

        Every endpoint gets the same (widest) window; the gate keeps only the minutes inside its own bake. An endpoint
        the answer does not mention is left out: its reader falls back to the per-resource read.
        """
        first, last = minute_bounds(start, end)
        found: dict[str, MetricWindow] = {}
        ids = list(dict.fromkeys(endpoint_ids))
        for chunk in (ids[i : i + MAX_RESOURCES] for i in range(0, len(ids), MAX_RESOURCES)):
            requests = self._query(region, chunk, first, last, "RequestsPerMinute")
            latency = self._query(region, chunk, first, last, "RequestLatency_P99")
            for endpoint_id in chunk:
                key = endpoint_id.lower()
                if key in requests and key in latency:
                    found[key] = MetricWindow(start=start, end=end, requests=requests[key], latency=latency[key])
        return found

    def _query(self, region: str, ids: list[str], first: dt.datetime, last: dt.datetime, metric: str) -> dict[str, Any]:
        """{lower-cased endpoint id: its points of ``metric``} for the endpoints the answer covers."""
        aggregation, filter_ = QUERIES[metric]
        results = self._client(region).query_resources(
            resource_ids=ids,
            metric_namespace=NAMESPACE,
            metric_names=[metric],
            timespan=(first, last),
            granularity=dt.timedelta(minutes=1),
            aggregations=[aggregation],
            filter=filter_,
            max_results=TOP,
        )
        self.calls += 1
        points: dict[str, Any] = {}
        for result in results:
            for item in result.metrics:
                owner = _owner(str(item.id or ""))
                # An endpoint with no request in the window has no time series: an empty window, which the gate
                # judges inconclusive (never a pass), exactly as the per-resource read would.
                if owner is None or str(item.name).lower() != metric.lower():
                    continue
                convert = _request_points if metric == "RequestsPerMinute" else _latency_points
                points[owner] = tuple(convert(item))
        return points


def _owner(metric_id: str) -> str | None:
    """The endpoint id a metric's id belongs to (``{endpoint id}/providers/Microsoft.Insights/metrics/{name}``)."""
    head, sep, _ = metric_id.lower().partition("/providers/microsoft.insights/metrics/")
    return head if sep else None


def _request_points(metric: Any) -> Iterator[RequestPoint]:
    for series in metric.timeseries or []:
        dims = {str(k).lower(): str(v) for k, v in (series.metadata_values or {}).items()}
        for point in series.data or []:
            if point.total:
                yield RequestPoint(
                    deployment=dims.get("deployment", ""),
                    timestamp=_aware(point.timestamp),
                    status_class=dims.get("statuscodeclass", ""),
                    model_status=dims.get("modelstatuscode", ""),
                    count=float(point.total),
                )


def _latency_points(metric: Any) -> Iterator[LatencyPoint]:
    for series in metric.timeseries or []:
        dims = {str(k).lower(): str(v) for k, v in (series.metadata_values or {}).items()}
        for point in series.data or []:
            if point.average is not None:  # a minute with no answered request has no latency value
                yield LatencyPoint(dims.get("deployment", ""), _aware(point.timestamp), float(point.average))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
