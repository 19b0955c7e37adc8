"""The gates of a tick, read together: one ``metrics:getBatch`` per region instead of two ARM reads per gate.

The tick knows (``triage``) which rollouts' bakes have ended. Where two or more fall due in one subscription and
region, it reads their windows in one batch (``app/azure/metrics_batch.py``) before any pass, and hands the engine a
metrics reader that answers from what was read; a gate it did not read (a lone gate in its region, an endpoint the
answer left out, a batch that failed) is read endpoint by endpoint, as before. The engine is not changed: it gets the
reader through ``Deps.metrics``.

A follow-up that comes at a bake's end leaves the gate to the tick when another endpoint of its region noted a gate
due within a timer period of it (on the index of active endpoints): the tick reads them together, at most one timer
period later. A gate with no such partner is read at once, alone.
"""

from __future__ import annotations

import datetime as dt
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
    from app.ports import Deps
    from app.rollout.ledger.indexes import ActiveEndpoint
    from app.rollout.run.triage import GateDue, Work

logger = logging.getLogger(__name__)

#: A region batches from this many gates due at once; one gate alone keeps the per-resource read.
MIN_BATCH = 2
_disabled = threading.Event()  # the identity cannot read the batch API (no Monitoring Reader on the subscription)


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


class TickGates:
    """One tick's gates, by region: those due when the tick starts, read in one batch each (``prefetch``), and those
    whose bake ends while the tick runs, read in one more batch per region when the first of them is asked for
    (``catch_up``): a long tick does not fall back to reading them one by one."""

    def __init__(self, deps: Deps, works: Iterable[Work]) -> None:
        self.deps = deps
        self.windows: dict[str, MetricWindow] = {}
        self._pending: dict[tuple[str, str], list[GateDue]] = defaultdict(list)
        self._scope_of: dict[str, tuple[str, str]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        if _disabled.is_set():
            return
        for work in works:
            gates = (*work.gates, *work.upcoming)
            scope = region_of(deps, work.workspace_id) if gates else None
            if scope is None:
                continue
            self._pending[scope].extend(gates)
            self._scope_of.update((gate.endpoint_id.lower(), scope) for gate in gates)

    def prefetch(self, now: dt.datetime) -> dict[str, MetricWindow]:
        """Read the gates due at ``now``, one batch per region that has ``MIN_BATCH`` of them."""
        for scope in list(self._pending):
            with self._locks[scope]:
                self._read(scope, now)
        return self.windows

    def catch_up(self, endpoint_id: str) -> None:
        """A gate not read yet is asked for: read it with every other gate of its region due by now, if they batch."""
        scope = self._scope_of.get(endpoint_id.lower())
        if scope is None:
            return
        with self._locks[scope]:
            if endpoint_id.lower() not in self.windows:
                self._read(scope, self.deps.clock())

    def _read(self, scope: tuple[str, str], now: dt.datetime) -> None:
        due = [gate for gate in self._pending[scope] if gate.due <= now]
        if len(due) < MIN_BATCH or _disabled.is_set():
            return
        self._pending[scope] = [gate for gate in self._pending[scope] if gate.due > now]
        if self.deps.metrics_batch is None:
            return  # no batch reader wired: each gate is read on its own
        try:
            reader = self.deps.metrics_batch()
            got = reader.read_windows(scope[1], [gate.endpoint_id for gate in due], min(g.start for g in due), now)
        except Exception as err:
            _failed(scope[1], err)  # these gates are read one by one
            return
        self.windows.update(got)
        logger.info("gates in %s: %d read in one batch", scope[1], len(got))


def prefetch(deps: Deps, works: Iterable[Work], now: dt.datetime) -> dict[str, MetricWindow]:
    """The windows of the gates due in ``works``, read in one batch per region with ``MIN_BATCH`` or more; by
    lower-cased endpoint id. Empty when nothing batches (or the batch API is unavailable to this identity)."""
    return TickGates(deps, works).prefetch(now)


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
    """A metrics reader that answers from the tick's batch (catching up on a gate not read yet, when ``gates`` is
    given), else reads the endpoint itself (``fallback``)."""

    def __init__(self, windows: Mapping[str, MetricWindow], fallback: Any, gates: TickGates | None = None) -> None:
        self._windows = windows
        self._fallback = fallback
        self._gates = gates

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow:
        """The window ``[start, end)``; from the batch it ends when the batch was read (nothing later is in it)."""
        got = self._windows.get(endpoint_id.lower())
        if got is None and self._gates is not None:
            self._gates.catch_up(endpoint_id)
            got = self._windows.get(endpoint_id.lower())
        if got is None or got.start > start:
            return self._fallback.read_window(endpoint_id, start, end)
        return MetricWindow(start=start, end=min(end, got.end), requests=got.requests, latency=got.latency)


def with_prefetch(deps: Deps, windows: Mapping[str, MetricWindow], gates: TickGates | None = None) -> Deps:
    """``deps`` whose metrics reader answers the prefetched gates first (and the tick's later ones, with ``gates``)."""

    def metrics(workspace: WorkspaceRef) -> PrefetchedReader:
        return PrefetchedReader(windows, deps.metrics(workspace), gates)

    return replace(deps, metrics=metrics)


#: Two gates whose bakes end this close together are read in the same tick's batch, or in neighbouring ones: the
#: template's timer period (``RECONCILE_SCHEDULE``, once a minute).
PARTNER_WINDOW = dt.timedelta(minutes=1)


def batched_in_tick(
    deps: Deps, workspace_id: str, endpoint: str, entries: Iterable[ActiveEndpoint], due: dt.datetime
) -> bool:
    """Is a gate of this endpoint due at ``due`` read in the tick's batch rather than alone now? Yes when another
    active endpoint of its subscription and region noted a gate within ``PARTNER_WINDOW`` of it (``ActiveIndex.add``):
    the next tick reads them together. False whenever the batch API is unavailable or a region cannot be told."""
    if _disabled.is_set():
        return False
    partners = [
        entry
        for entry in entries
        if entry.gate_due is not None
        and abs(entry.gate_due - due) <= PARTNER_WINDOW
        and not (entry.endpoint.lower() == endpoint.lower() and entry.workspace_id.lower() == workspace_id.lower())
    ]
    if not partners:
        return False
    mine = region_of(deps, workspace_id)
    return mine is not None and any(region_of(deps, entry.workspace_id) == mine for entry in partners)
