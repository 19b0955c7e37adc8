"""The gates of a tick, read together: one ``metrics:getBatch`` per region instead of two ARM reads per gate.

The tick knows (``triage``) which rollouts' bakes have ended. Where two or more fall due in one subscription and
region, it reads their windows in one batch (``app/azure/metrics_batch.py``) before any pass, and hands the engine a
metrics reader that answers from what was read; a gate it did not read (a lone gate in its region, an endpoint the
answer left out, a batch that failed) is read endpoint by endpoint, as before. The engine is not changed: it gets the
reader through ``Deps.metrics``.

A follow-up that comes at a bake's end leaves the gate to the tick when another active endpoint shares the region:
the tick reads them together, at most one timer period later.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.platform.errors import status_code_of
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.gate import MetricWindow

if TYPE_CHECKING:
    import datetime as dt

    from app.azure.metrics_batch import BatchMetricsReader
    from app.rollout.ledger.ledger import ActiveEndpoint
    from app.rollout.run.triage import Work
    from app.wiring import Deps

logger = logging.getLogger(__name__)

#: A region batches from this many gates due at once; one gate alone keeps the per-resource read.
MIN_BATCH = 2
_disabled = threading.Event()  # the identity cannot read the batch API (no Monitoring Reader on the subscription)


@functools.cache
def batch_reader(endpoint_template: str) -> BatchMetricsReader:
    """The process's batch reader for ``METRICS_BATCH_ENDPOINT`` (clients are kept per region)."""
    # The Azure Monitor client on first use: only a busy tick reads gates in batches.
    from app.azure.credential import get_credential
    from app.azure.metrics_batch import BatchMetricsReader

    return BatchMetricsReader(get_credential(), endpoint_template)


def region_of(deps: Deps, workspace_id: str) -> tuple[str, str] | None:
    """(subscription, region) of a workspace's endpoints: one ARM read per workspace and process, then cached."""
    workspace = WorkspaceRef.from_arm_id(workspace_id)
    try:
        location = deps.aml(workspace).location()
    except Exception as err:
        logger.warning("gates: the region of %s is unknown (%s: %s); its gates are read one by one",
                       workspace.workspace_name, type(err).__name__, err)  # fmt: skip
        return None
    return workspace.subscription_id.lower(), location.replace(" ", "").lower()


def prefetch(deps: Deps, works: Iterable[Work], now: dt.datetime) -> dict[str, MetricWindow]:
    """The windows of the gates due in ``works``, read in one batch per region with ``MIN_BATCH`` or more; by
    lower-cased endpoint id. Empty when nothing batches (or the batch API is unavailable to this identity)."""
    if _disabled.is_set():
        return {}
    by_region: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for work in works:
        if work.gates:
            scope = region_of(deps, work.workspace_id)
            if scope is not None:
                by_region[scope].extend(work.gates)
    batches = {scope: gates for scope, gates in by_region.items() if len(gates) >= MIN_BATCH}
    windows: dict[str, MetricWindow] = {}
    if not batches:
        return windows
    reader = batch_reader(deps.settings.metrics_batch_endpoint)
    for (_, region), gates in batches.items():
        start = min(gate.start for gate in gates)
        try:
            windows.update(reader.read_windows(region, [gate.endpoint_id for gate in gates], start, now))
        except Exception as err:
            _failed(region, err)
    logger.info("gates: %d read in batches (%d batch calls so far in this process)", len(windows), reader.calls)
    return windows


def _failed(region: str, err: Exception) -> None:
    if status_code_of(err) in (401, 403):
        _disabled.set()
        # A warning, not an error: the template does not grant the subscription-wide role, and nothing is lost.
        logger.warning(
            "gates: Azure Monitor's batch metrics API refused the app's identity (%s); gates are read endpoint by "
            "endpoint from now on. Grant it Monitoring Reader on the subscription to batch them (docs/deploy.md)",
            status_code_of(err),
        )
        return
    logger.warning("gates in %s: the batch read failed (%s: %s); each gate is read on its own", region,
                   type(err).__name__, err)  # fmt: skip


class PrefetchedReader:
    """A metrics reader that answers from the tick's batch, else reads the endpoint itself (``fallback``)."""

    def __init__(self, windows: Mapping[str, MetricWindow], fallback: Any) -> None:
        self._windows = windows
        self._fallback = fallback

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow:
        """The window ``[start, end)``; from the batch it ends when the batch was read (nothing later is in it)."""
        got = self._windows.get(endpoint_id.lower())
        if got is None or got.start > start:
            return self._fallback.read_window(endpoint_id, start, end)
        return MetricWindow(start=start, end=min(end, got.end), requests=got.requests, latency=got.latency)


def with_prefetch(deps: Deps, windows: Mapping[str, MetricWindow]) -> Deps:
    """``deps`` whose metrics reader answers the prefetched gates first."""

    def metrics(workspace: WorkspaceRef) -> PrefetchedReader:
        return PrefetchedReader(windows, _per_resource(deps, workspace))

    return replace(deps, metrics=metrics)


def _per_resource(deps: Deps, workspace: WorkspaceRef) -> Any:
    if deps.metrics is not None:
        return deps.metrics(workspace)
    # The Azure Monitor client on first use, as the engine builds it.
    from app.azure.credential import get_credential
    from app.azure.metrics import MetricsReader

    return MetricsReader(get_credential(), workspace.subscription_id)


def batched_in_tick(deps: Deps, workspace_id: str, endpoint: str, entries: Iterable[ActiveEndpoint]) -> bool:
    """Does another active endpoint share this one's subscription and region? Then a gate due here is read in the
    tick's batch rather than alone now. False whenever the batch API is unavailable or a region cannot be told."""
    if _disabled.is_set():
        return False
    mine = region_of(deps, workspace_id)
    if mine is None:
        return False
    for entry in entries:
        if entry.endpoint.lower() == endpoint.lower() and entry.workspace_id.lower() == workspace_id.lower():
            continue
        if region_of(deps, entry.workspace_id) == mine:
            return True
    return False
