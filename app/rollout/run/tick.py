"""One tick over many endpoints: what decides traffic first, gates read in batches, and what does not fit the
tick's budget handed to the follow-up queue instead of waiting for the next tick.

1. Triage (``triage.py``): each active endpoint's rows, read in parallel, say what it owes: a gate or an operator's
   request, an operation in flight, or only a look.
2. The gates that fell due are read in one batch per region (``gate_batch.py``).
3. Passes run in that order, ``RECONCILE_CONCURRENCY`` at a time, each ``RolloutEngine(deps).advance`` as before.
   While ARM says reads run short (``app/azure/throttle.py``), endpoints that only need a look wait for a later tick.
   An endpoint waiting for the follow-up of its last write is not looked at (``TICK_WAITS_FOR_FOLLOWUPS``): the
   follow-up looks when the operation should be done, and once it is overdue the triage puts the endpoint back.
4. A pass starts only while the budget has room for one; the endpoints left over go to the follow-up queue as
   messages due at once, and the queue trigger spreads them over the Functions instances (Flex Consumption scales
   it per function). Without follow-ups (``FOLLOWUP_DELAYS=off``) they wait for the next tick, as before.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from app.platform import telemetry
from app.rollout.decide.followup import HANDED_ON, FollowUp
from app.rollout.ledger.ledger import ledger_of
from app.rollout.run.engine import RolloutEngine
from app.rollout.run.gate_batch import TickGates, with_prefetch
from app.rollout.run.triage import Priority, Work, ordered, triage

if TYPE_CHECKING:
    import datetime as dt

    from app.ports import Deps
    from app.rollout.ledger.ledger import RolloutLedger

logger = logging.getLogger(__name__)

#: The follow-up reason of an endpoint the tick handed on (its first word is its kind).
FANNED_OUT = f"{HANDED_ON} fan-out"
#: Endpoints this process handed on, and when (``time.monotonic``): one still waiting in the queue is not sent
#: again, or a backlogged queue would only grow. Kept for five budgets, a few timer periods.
_handed: dict[tuple[str, str], float] = {}
_handed_lock = threading.Lock()


def run(deps: Deps, endpoints: list[tuple[str, str]], deadline: float) -> list[str]:
    """Advance ``endpoints`` (workspace id, endpoint) within ``deadline`` (``time.monotonic``); one line each."""
    settings = deps.settings
    if len(endpoints) == 1:  # nothing to order, batch or hand on: the pass alone, as it always was
        ws, ep = endpoints[0]
        return _pass(deps, ws, ep, deadline)
    now = deps.clock()
    ledger = ledger_of(deps)
    delays = dict(settings.followup_delays) if deps.followups is not None and settings.followup_delays else None
    with ThreadPoolExecutor(max_workers=settings.reconcile_concurrency, thread_name_prefix="triage") as pool:
        works = list(pool.map(lambda e: _triage(ledger, e[0], e[1], now, delays), endpoints))
    gates = TickGates(deps, works)
    windows = gates.prefetch(now)
    passing = with_prefetch(deps, windows, gates)
    short = deps.arm_reads_short()
    durations: list[float] = []
    lock = threading.Lock()

    skip_followed = settings.tick_waits_for_followups

    def one(work: Work) -> list[str]:
        if skip_followed and work.awaits_followup:
            return [f"{work.endpoint}: not looked at (the follow-up of its last write is still to come)"]
        if short and work.priority is Priority.IDLE:
            return [f"{work.endpoint}: idle polling deferred (ARM reads run short; what decides traffic goes first)"]
        with lock:
            reserve = statistics.median(durations) if durations else 0.0
        # A gate whose metrics this tick read in its batch is judged here, even late: handed on, it would be read again.
        batched = any(gate.endpoint_id.lower() in windows for gate in work.gates)
        if time.monotonic() + reserve > deadline and not batched:
            if work.priority is Priority.IDLE:  # a look can wait: its follow-up or the next tick comes anyway
                return [f"{work.endpoint}: idle look left for the next tick (the tick's budget is spent)"]
            return _hand_on(deps, work)
        started = time.monotonic()
        try:
            return _pass(passing, work.workspace_id, work.endpoint, max(deadline, time.monotonic() + reserve))
        finally:
            with lock:
                durations.append(time.monotonic() - started)

    lines: list[str] = []
    with ThreadPoolExecutor(max_workers=settings.reconcile_concurrency, thread_name_prefix="reconcile") as pool:
        # The pool takes them in order: what decides traffic first. Each pass is a child of this tick's span.
        futures = [(pool.submit(telemetry.in_current_context(one), work), work) for work in ordered(works)]
        for future, work in futures:
            lines.extend(_result(future.result, work.endpoint))
    return lines


def _triage(
    ledger: RolloutLedger, workspace_id: str, endpoint: str, now: dt.datetime, delays: dict[str, float] | None
) -> Work:
    try:
        return triage(workspace_id, endpoint, ledger.endpoint_rollouts(workspace_id, endpoint), now, delays)
    except Exception as err:
        # Unreadable now: the endpoint's own pass reads again and decides, as it always did.
        logger.warning("reconcile: %s not triaged (%s: %s); advanced in turn", endpoint, type(err).__name__, err)
        return Work(workspace_id, endpoint, Priority.IN_FLIGHT)


def _pass(deps: Deps, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
    return RolloutEngine(deps).advance(workspace_id, endpoint, deadline).lines()


def _hand_on(deps: Deps, work: Work) -> list[str]:
    """Out of budget: a follow-up due now, so the queue trigger's instances take it (or the next tick, without)."""
    if deps.followups is None:
        return [f"{work.endpoint}: out of time budget; next tick"]
    key, now = (work.workspace_id.lower(), work.endpoint.lower()), time.monotonic()
    with _handed_lock:
        for old in [k for k, at in _handed.items() if now - at > 5 * deps.settings.reconcile_budget_seconds]:
            del _handed[old]
        if key in _handed:
            return [f"{work.endpoint}: out of time budget; already handed to the follow-up queue"]
        _handed[key] = now
    try:
        sent = deps.clock()
        handed = FollowUp(work.workspace_id, work.endpoint, FANNED_OUT, sent_at=sent, due_at=sent)
        deps.followups().schedule(handed, 0)
    except Exception as err:
        logger.warning("reconcile: %s not handed to the queue (%s: %s); next tick", work.endpoint,
                       type(err).__name__, err)  # fmt: skip
        with _handed_lock:
            _handed.pop(key, None)
        return [f"{work.endpoint}: out of time budget; next tick"]
    return [f"{work.endpoint}: fanned out to the follow-up queue (the tick's budget is spent)"]


def _result(result: Callable[[], list[str]], endpoint: str) -> list[str]:
    try:
        return result()
    except Exception as err:
        # One endpoint's trouble must not stop the others; the next tick tries again.
        logger.error("reconcile: endpoint %s not advanced this tick: %s: %s", endpoint, type(err).__name__, err)
        return [f"{endpoint}: error {type(err).__name__}"]
