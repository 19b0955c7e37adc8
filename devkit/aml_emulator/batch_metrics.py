"""Azure Monitor's batch metrics API (``metrics:getBatch``): one call reads up to 50 online endpoints of one region.

The request and answer follow the Metrics Batch - Batch REST API (azure-rest-api-specs,
specification/monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json, the api-version the pinned
azure-monitor-querymetrics sends) and "How to migrate from the metrics API to the getBatch API"
(learn.microsoft.com/azure/azure-monitor/essentials/migrate-to-batch-api): ``POST {region endpoint}/subscriptions/
{subscriptionId}/metrics:getBatch`` with ``metricnamespace``, ``metricnames``, ``starttime``/``endtime``, ``interval``,
``aggregation``, ``top``, ``orderby`` and ``filter`` (no ``$``) in the query, and ``{"resourceids": [...]}`` in the
body: at most 50 unique ids, all of one subscription, one region and one resource type. The answer is
``{"values": [one per-resource answer with starttime, endtime and resourceid]}``; an error is ARM's error body.

The dev kit serves every region's endpoint on the emulator's URL, the region as the first path segment
(``{url}/{region}/subscriptions/...``): the app's ``METRICS_BATCH_ENDPOINT`` template points there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from devkit._server import Request, Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.metrics import NAMESPACE, MetricsQuery, parse_timespan
from devkit.aml_emulator.state import PROVIDER, ArmError, _iso

if TYPE_CHECKING:
    from devkit.aml_emulator.server import AmlEmulator

#: The path the emulator answers ``metrics:getBatch`` on (the region first: see the module docstring).
BATCH_PATH = re.compile(r"^/(?P<region>[a-z0-9]+)/subscriptions/(?P<sub>[^/]+)/metrics:getBatch/?$", re.IGNORECASE)
MAX_RESOURCES = 50
_ENDPOINT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    + re.escape(PROVIDER)
    + r"/workspaces/(?P<ws>[^/]+)/onlineEndpoints/(?P<ep>[^/]+)$",
    re.IGNORECASE,
)


def _region(location: str) -> str:
    return location.replace(" ", "").lower()


class MetricsBatchArea(AreaBase):
    """``metrics:getBatch`` over the endpoints of every workspace served on this URL."""

    def _metrics_batch(self, request: Request, region: str, sub: str) -> Response:
        emu: AmlEmulator = self  # type: ignore[assignment]
        if (refused := emu._monitor_outage_answer(request)) is not None:  # Azure Monitor's outage, not one API's
            return refused
        q = {k.lower(): v for k, v in request.query.items()}
        if not q.get("api-version"):
            raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        namespace = q.get("metricnamespace") or ""
        if namespace.lower() != NAMESPACE.lower():
            raise ArmError(400, "BadRequest", f"metricnamespace '{namespace}' is required and must be '{NAMESPACE}'.")
        if not q.get("metricnames"):
            raise ArmError(400, "BadRequest", "metricnames is required (comma-separated metric names).")
        ids = self._batch_ids(request, sub)
        query = MetricsQuery.parse(q["metricnames"], q.get("aggregation"), q.get("interval"), q.get("top"))
        start, end = self._batch_times(q.get("starttime"), q.get("endtime"))
        values = []
        for resource_id in ids:
            match = _ENDPOINT_ID.match(resource_id)
            ws = emu._workspace_for(sub, match["rg"], match["ws"]) if match else None
            if ws is not None and _region(ws.location) != _region(region):
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Resource '{resource_id}' is in region '{ws.location}', not '{region}': every resource of a "
                    "batch must be in the region of the endpoint called.",
                )
            with (ws or emu)._lock:
                (ws or emu)._advance()
                ep = ws._endpoints.get(match["ep"].lower()) if ws is not None and match else None
                body = (
                    ws._metrics_of(ep, query, start, end, q.get("filter"), q.get("orderby"))
                    if ws is not None and ep is not None
                    else _not_found(resource_id, query.names, region, query.interval)
                )
            body.pop("cost", None)  # not in the batch answer's items (MetricResultsResponseValuesItem)
            values.append({"starttime": _iso(start), "endtime": _iso(end), "resourceid": resource_id, **body})
        return Response(200, {"values": values})

    def _batch_ids(self, request: Request, sub: str) -> list[str]:
        if sub.lower() != self.subscription_id.lower():
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        body = request.json() if request.body else None
        ids = body.get("resourceids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ArmError(400, "BadRequest", 'The body must be {"resourceids": [resource ids]} (lower-case key).')
        unique = list(dict.fromkeys(ids))
        if len(unique) > MAX_RESOURCES:
            raise ArmError(400, "BadRequest", f"{len(unique)} resource ids: at most {MAX_RESOURCES} per batch.")
        for resource_id in unique:
            match = _ENDPOINT_ID.match(resource_id)
            if match is None:
                what = f"not an online endpoint's resource id (every resource of a batch must be a {NAMESPACE})"
                raise ArmError(400, "BadRequest", f"'{resource_id}' is {what}.")
            if match["sub"].lower() != sub.lower():
                raise ArmError(400, "BadRequest", f"'{resource_id}' is not in subscription '{sub}'.")
        return unique

    def _batch_times(self, starttime: str | None, endtime: str | None) -> tuple[float, float]:
        """``starttime``/``endtime`` (ISO 8601); endtime defaults to now, and neither: the last hour."""
        if endtime and not starttime:
            raise ArmError(400, "BadRequest", "starttime is required when endtime is given.")
        span = f"{starttime}/{endtime or _iso(self._clock.now())}" if starttime else None
        return parse_timespan(span, self._clock.now())


def _not_found(resource_id: str, names: tuple[str, ...], region: str, interval: str) -> dict[str, Any]:
    """A resource that does not exist (deleted meanwhile): each metric says so, the others still answer."""
    return {
        "interval": interval.upper(),
        "namespace": NAMESPACE,
        "resourceregion": region,
        "value": [
            {
                "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name},
                "unit": "Unspecified",
                "timeseries": [],
                "errorCode": "ResourceNotFound",
                "errorMessage": f"The resource '{resource_id}' was not found.",
            }
            for name in names
        ],
    }
