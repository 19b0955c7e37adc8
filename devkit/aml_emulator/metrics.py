"""Azure Monitor's metrics API for online endpoints (``{endpoint id}/providers/Microsoft.Insights/metrics``).

Names, units, default aggregations and dimensions follow "Supported metrics for
Microsoft.MachineLearningServices/workspaces/onlineEndpoints" (learn.microsoft.com/azure/azure-monitor/reference/
supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-metrics); the request and answer
shapes are those of the Metrics - List REST API (api-version 2024-02-01 in azure-mgmt-monitor 7.0.0).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.state import ArmError, Resource, _iso
from devkit.aml_emulator.traffic import Sample

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
AGGREGATIONS = ("average", "count", "maximum", "minimum", "total")
#: Azure Monitor returns at most ``top`` time series per metric when splitting by a dimension (default 10).
DEFAULT_TOP = 10
DEFAULT_TIMESPAN = timedelta(hours=1)


@dataclass(frozen=True)
class MetricDef:
    name: str
    display: str
    unit: str
    dimensions: tuple[str, ...]
    description: str
    percentile: float | None = None  # latency percentile; None for RequestsPerMinute / RequestLatency


METRICS: dict[str, MetricDef] = {
    m.name.lower(): m
    for m in (
        MetricDef(
            "RequestsPerMinute",
            "Requests Per Minute",
            "Count",
            ("deployment", "statusCode", "statusCodeClass", "modelStatusCode"),
            "The number of requests sent to online endpoint within a minute",
        ),
        MetricDef(
            "RequestLatency",
            "Request Latency",
            "MilliSeconds",
            ("deployment",),
            "The complete interval of time taken for a request to be responded",
        ),
        *(
            MetricDef(
                f"RequestLatency_P{p}",
                f"Request Latency P{p}",
                "MilliSeconds",
                ("deployment",),
                f"The average P{p} request latency aggregated by all request latency values collected over the "
                "selected time period",
                float(p),
            )
            for p in (50, 90, 95, 99)
        ),
    )
}


def sample_dimensions(sample: Sample) -> dict[str, str]:
    """The dimension values Azure Monitor records for one request (model status 0: never reached the model)."""
    return {
        "deployment": sample.deployment,
        "statuscode": str(sample.status),
        "statuscodeclass": f"{sample.status // 100}xx",
        "modelstatuscode": str(sample.model_status),
    }


def parse_timespan(value: str | None, now: float) -> tuple[float, float]:
    """``start/end``, ``start/duration`` or ``duration`` (ending now), ISO 8601; the last hour when absent."""
    if not value:
        return now - DEFAULT_TIMESPAN.total_seconds(), now
    parts = value.split("/")
    try:
        if len(parts) == 1:
            return now - parse_duration(parts[0]), now
        start = _parse_instant(parts[0])
        end = start + parse_duration(parts[1]) if parts[1].upper().startswith("P") else _parse_instant(parts[1])
    except ValueError as err:
        raise ArmError(400, "BadRequest", f"Invalid timespan '{value}': {err}. Use 'start/end' in ISO 8601.") from err
    if end <= start:
        raise ArmError(400, "BadRequest", f"Invalid timespan '{value}': the end must be after the start.")
    return start, end


def _parse_instant(text: str) -> float:
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_duration(text: str) -> float:
    """Seconds of an ISO 8601 duration made of days, hours, minutes and seconds (``P1D``, ``PT5M``, ``PT90S``)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text.strip().upper())
    if not match or not any(match.groups()):
        raise ValueError(f"'{text}' is not an ISO 8601 duration such as PT1M")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def parse_filter(value: str | None, metric: MetricDef) -> dict[str, str]:
    """``dim eq 'value' and dim eq '*'`` -> ``{dim (lower case): value}``; ``*`` splits by that dimension."""
    if not value:
        return {}
    allowed = {d.lower(): d for d in metric.dimensions}
    clauses: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", value.strip(), flags=re.IGNORECASE):
        match = re.fullmatch(r"\(?\s*(\w+)\s+eq\s+'([^']*)'\s*\)?", clause.strip(), re.IGNORECASE)
        if not match:
            raise ArmError(
                400,
                "BadRequest",
                f"Unsupported $filter clause '{clause}': the emulator understands \"<dimension> eq '<value>'\" "
                "clauses joined by 'and' ('*' splits by the dimension).",
            )
        dim = match[1].lower()
        if dim not in allowed:
            raise ArmError(
                400,
                "BadRequest",
                f"Metric: {metric.name} does not support requested dimension combination: {match[1]}. "
                f"Supported dimensions: {', '.join(metric.dimensions)}.",
            )
        clauses[dim] = match[2]
    return clauses


@dataclass(frozen=True)
class MetricsQuery:
    """What a metrics request asks for, checked: metric names, aggregations, the interval and ``top``."""

    names: tuple[str, ...]
    aggregations: tuple[str, ...]
    interval: str
    interval_s: float
    top: int

    @classmethod
    def parse(cls, names: str | None, aggregation: str | None, interval: str | None, top: str | None) -> MetricsQuery:
        """From the query string's values (``metricnames``, ``aggregation``, ``interval``, ``top``); 400 otherwise."""
        wanted = tuple(n.strip() for n in (names or "RequestsPerMinute").split(",") if n.strip())
        unknown = [n for n in wanted if n.lower() not in METRICS]
        if unknown:
            raise ArmError(
                400,
                "BadRequest",
                f"Failed to find metric configuration for provider: Microsoft.MachineLearningServices, resource Type: "
                f"workspaces/onlineEndpoints, metric: {', '.join(unknown)}, Valid metrics: "
                f"{', '.join(m.name for m in METRICS.values())}",
            )
        aggregations = tuple(a.strip().lower() for a in (aggregation or "average").split(",") if a.strip())
        if bad := [a for a in aggregations if a not in AGGREGATIONS]:
            raise ArmError(400, "BadRequest", f"Unknown aggregation {bad}; use one of {', '.join(AGGREGATIONS)}.")
        interval = interval or "PT1M"
        try:
            interval_s = parse_duration(interval)
        except ValueError as err:
            raise ArmError(400, "BadRequest", f"Invalid interval: {err}.") from err
        if interval_s < 60 or interval_s % 60:
            raise ArmError(400, "BadRequest", f"Invalid interval '{interval}': use whole minutes (PT1M, PT5M, PT1H).")
        return cls(wanted, aggregations, interval, interval_s, int(top or DEFAULT_TOP))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100.0 * len(ordered)) - 1)]


def _aggregate(values: list[float], wanted: Iterable[str]) -> dict[str, float]:
    stats = {
        "average": sum(values) / len(values),
        "count": float(len(values)),
        "maximum": max(values),
        "minimum": min(values),
        "total": float(sum(values)),
    }
    return {a: stats[a] for a in wanted}


def metric_series(
    metric: MetricDef,
    samples: Iterable[Sample],
    filters: Mapping[str, str],
    minutes: list[float],
    interval_s: float,
    aggregations: Sequence[str],
) -> list[tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]]:
    """``[(dimension values, data points)]`` for the complete ``minutes`` (their start times), one point per
    ``interval_s`` bucket. Counts are zero-filled; latencies only have values where requests were answered."""
    split = [d for d in metric.dimensions if filters.get(d.lower()) == "*"]
    fixed = {d: v.lower() for d, v in filters.items() if v != "*"}
    per_minute: dict[tuple[tuple[str, str], ...], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    first = minutes[0] if minutes else 0.0
    end = minutes[-1] + 60 if minutes else 0.0
    for s in samples:
        if not first <= s.time < end:
            continue
        dims = sample_dimensions(s)
        if any(dims[d].lower() != v for d, v in fixed.items()):
            continue
        key = tuple((d, dims[d.lower()]) for d in split)
        per_minute[key][s.time - (s.time % 60)].append(s.latency_ms)
    if not split and not per_minute:
        per_minute[()] = defaultdict(list)
    series = []
    for key in sorted(per_minute):
        by_minute = per_minute[key]
        buckets: dict[float, list[float]] = {}
        for minute in minutes:
            bucket = minute - (minute % interval_s)
            values = buckets.setdefault(bucket, [])
            latencies = by_minute.get(minute, [])
            if metric.unit == "Count":
                values.append(float(len(latencies)))
            elif latencies and metric.percentile is not None:
                values.append(percentile(latencies, metric.percentile))
            elif latencies:
                values.extend(latencies)
        points = [
            {"timeStamp": _iso(bucket), **(_aggregate(values, aggregations) if values else {})}
            for bucket, values in buckets.items()
        ]
        series.append((key, points))
    return series


class MetricsArea(AreaBase):
    """``GET {endpoint id}/providers/Microsoft.Insights/metrics``, computed from the endpoint's samples."""

    metric_lag_s: float

    def _reset_metrics(self) -> None:
        self.metric_lag_s = 0.0

    def set_metric_lag(self, seconds: float) -> None:
        """Minutes that ended less than ``seconds`` ago are not reported yet (Azure Monitor's ingestion delay)."""
        if seconds < 0:
            raise ValueError(f"seconds={seconds} must be >= 0")
        with self._lock:
            self.metric_lag_s = float(seconds)

    def _list_metrics(self, request: Request, endpoint: str) -> Response:
        if (refused := self._monitor_outage_answer(request)) is not None:
            return refused
        ep = self._get_endpoint_resource(endpoint)
        q = {k.lower(): v for k, v in request.query.items()}
        if not q.get("api-version"):
            raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        if q.get("metricnamespace") and q["metricnamespace"].lower() != NAMESPACE.lower():
            raise ArmError(400, "BadRequest", f"Unknown metricnamespace '{q['metricnamespace']}'; use '{NAMESPACE}'.")
        query = MetricsQuery.parse(q.get("metricnames"), q.get("aggregation"), q.get("interval"), q.get("top"))
        start, end = parse_timespan(q.get("timespan"), self._clock.now())
        body = self._metrics_of(ep, query, start, end, q.get("$filter"), q.get("orderby"))
        return Response(200, {"cost": body.pop("cost"), "timespan": f"{_iso(start)}/{_iso(end)}", **body})

    def _metrics_of(
        self, ep: Resource, query: MetricsQuery, start: float, end: float, filter_: str | None, orderby: str | None
    ) -> dict[str, Any]:
        """One resource's answer (shared by the per-resource API and ``metrics:getBatch``): ``cost``, ``interval``,
        ``namespace``, ``resourceregion`` and ``value`` (one item per metric, over the complete minutes)."""
        now = self._clock.now()
        cutoff = min(end, now - self.metric_lag_s)
        first_minute = start - (start % 60)
        minutes = [first_minute + 60 * i for i in range(int((cutoff - first_minute) // 60))]
        samples = self.samples(ep.name, first_minute, first_minute + 60 * len(minutes))
        value = []
        for name in query.names:
            metric = METRICS[name.lower()]
            filters = parse_filter(filter_, metric)
            series = metric_series(metric, samples, filters, minutes, query.interval_s, query.aggregations)
            if len(series) > query.top:
                series = self._top(series, query.top, orderby, query.aggregations)
            value.append(
                {
                    "id": f"{self._render(ep)['id']}/providers/Microsoft.Insights/metrics/{metric.name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric.name, "localizedValue": metric.display},
                    "displayDescription": metric.description,
                    "unit": metric.unit,
                    "timeseries": [
                        {
                            "metadatavalues": [
                                {"name": {"value": dim, "localizedValue": dim}, "value": val} for dim, val in key
                            ],
                            "data": points,
                        }
                        for key, points in series
                    ],
                    "errorCode": "Success",
                }
            )
        return {
            "cost": len(minutes) * max(1, len(query.names)),
            "interval": query.interval.upper(),
            "namespace": NAMESPACE,
            "resourceregion": self.location,
            "value": value,
        }

    @staticmethod
    def _top(series: list[Any], top: int, orderby: str | None, aggregations: Sequence[str]) -> list[Any]:
        """The ``top`` series by the ``orderby`` aggregation (``"total desc"``; default: the first one, desc)."""
        field, _, direction = (orderby or f"{aggregations[0]} desc").lower().partition(" ")
        descending = direction.strip() != "asc"

        def weight(item: Any) -> float:
            return sum(p.get(field, 0.0) for p in item[1])

        return sorted(series, key=weight, reverse=descending)[:top]
