"""What the dashboard page shows, derived from the status API's JSON (pure): rollouts by endpoint, and per rollout
its steps, its traffic over time, its gates' evidence beside their thresholds and its operator actions.

The status API keeps a rollout's last gate only; ``GateMemory`` keeps every gate the dashboard has seen while it
runs, so earlier steps' verdicts stay on the page. The traffic over time is the endpoint's ``trafficHistory`` (the
splits the app set, with their times).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from aml_rollouts import view
from aml_rollouts.states import ACTIONS, STATES, phase_of, style_of

Json = Mapping[str, Any]
#: Traffic writes that took effect (the others were refused, or are still in doubt).
APPLIED = frozenset({"accepted", "landed", "adopted"})
#: Gates remembered per rollout (a plan has at most 10 steps; extensions add a few).
GATES_KEPT = 30


class GateMemory:
    """Every gate verdict seen per rollout, keyed by its window's start; shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, Json]] = {}

    def remember(self, rollout: Json) -> list[Json]:
        """Add the rollout's current gate; every gate seen for it, oldest window first."""
        key = f"{rollout.get('workspace')}|{view.key_of(rollout)}|{rollout.get('createdAt')}"
        gate = (rollout.get("progress") or {}).get("gate")
        with self._lock:
            seen = self._seen.setdefault(key, {})
            if isinstance(gate, Mapping):
                window = (gate.get("evidence") or {}).get("window") or {}
                seen[str(window.get("start"))] = gate
                for old in sorted(seen)[:-GATES_KEPT]:
                    del seen[old]
            return [seen[start] for start in sorted(seen)]


def page(body: Json, memory: GateMemory, *, source: str, allow_actions: bool, refresh_s: float) -> dict[str, Any]:
    """The page's whole model: rollouts grouped by endpoint (newest first), each with its details."""
    endpoints = list(body.get("endpoints") or [])
    groups: dict[str, list[dict[str, Any]]] = {}
    for rollout in body.get("rollouts") or []:
        groups.setdefault(str(rollout.get("endpoint")), []).append(rollout_model(rollout, endpoints, memory))
    return {
        "source": source,
        "allowActions": allow_actions,
        "actions": [{"name": a.name, "summary": a.summary} for a in ACTIONS],
        "states": {name: style.badge for name, style in STATES.items()},
        "refreshSeconds": refresh_s,
        "endpoints": [{"endpoint": name, "rollouts": rollouts} for name, rollouts in groups.items()],
        "more": bool(body.get("continuation")),
    }


def rollout_model(rollout: Json, endpoints: Sequence[Json], memory: GateMemory) -> dict[str, Any]:
    progress = rollout.get("progress") or {}
    entry = view.endpoint_entry(rollout, endpoints)
    split = view.split_of(entry)
    due, what = view.next_decision(rollout)
    gates = [gate_model(g) for g in memory.remember(rollout)]
    state = str(rollout.get("state"))
    return {
        "key": view.key_of(rollout),
        "endpoint": rollout.get("endpoint"),
        "deployment": rollout.get("deployment"),
        "model": f"{rollout.get('model')}:{rollout.get('version')}",
        "state": state,
        "badge": style_of(state).badge,
        "phase": phase_of(rollout).value,
        "paused": bool(progress.get("paused")),
        "requested": progress.get("requested"),
        "stepText": view.step_text(rollout),
        "steps": [{"number": s.number, "share": s.share, "status": s.status} for s in view.steps_of(rollout)],
        "split": {"text": split.text(), "source": split.source, "at": split.at},
        "next": {"at": due.isoformat() if due else None, "what": what},
        "reason": rollout.get("reason") or "",
        "lastError": rollout.get("lastError") or "",
        "traffic": traffic_series(rollout, entry),
        "gates": [g for g in gates if g is not None],
        "history": [
            {k: entry_.get(k) for k in ("at", "action", "caller", "reason", "effect")}
            for entry_ in progress.get("history") or []
        ],
        "createdAt": rollout.get("createdAt"),
        "updatedAt": rollout.get("updatedAt"),
    }


def traffic_series(rollout: Json, entry: Json | None) -> list[dict[str, Any]]:
    """Each deployment's live share over the rollout's life, one point per traffic write (drawn as steps).

    Starts with the split in force when the rollout was created (the last write before it), ends now for a
    running rollout (its endpoint's last observation) and at its last update for one that ended.
    """
    history = (entry or {}).get("trafficHistory") or []
    writes: list[tuple[dt.datetime, Mapping[str, int]]] = []
    for write in history:
        at = view.moment(write.get("at"))
        if at is not None and write.get("status") in APPLIED:
            writes.append((at, write.get("traffic") or {}))
    writes.sort(key=lambda item: item[0])
    created, updated = view.moment(rollout.get("createdAt")), view.moment(rollout.get("updatedAt"))
    if created is None or updated is None:
        return []
    observed = view.moment((entry or {}).get("observedAt"))
    end = max(updated, observed or updated) if phase_of(rollout).value == "running" else updated
    before = [split for at, split in writes if at < created]
    points = ([(created, before[-1])] if before else []) + [(at, s) for at, s in writes if created <= at <= end]
    if not points:
        return []
    points.append((end, points[-1][1]))
    names = sorted(
        {name.lower() for _, split in points for name in split}, key=lambda n: (n != rollout.get("deployment"), n)
    )
    return [
        {
            "name": name,
            "x": [plotted(at) for at, _ in points],
            "y": [next((int(v) for k, v in split.items() if k.lower() == name), 0) for _, split in points],
        }
        for name in names
    ]


def plotted(moment: dt.datetime) -> str:
    """A time as plotly.js reads dates (it has no time zones): UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def gate_model(gate: Json) -> dict[str, Any] | None:
    """A gate's verdict, its evidence in words, and three small charts' numbers, each with its threshold."""
    shown = view.gate_of(gate)
    if shown is None:
        return None
    ratio_limit = (
        shown.p99_stable * shown.max_ratio if shown.p99_stable is not None and shown.max_ratio is not None else None
    )
    stable = shown.stable or "stable"
    return {
        "outcome": shown.outcome,
        "summary": shown.summary,
        "evidence": shown.evidence(),
        "window": {"start": shown.window[0], "end": shown.window[1]},
        "charts": [
            _chart("5xx share (%)", [(shown.new, shown.error_pct)], [("max", shown.max_error_pct)]),
            _chart(
                "P99 (ms)",
                [(shown.new, shown.p99_new), (stable, shown.p99_stable)],
                [(f"{shown.max_ratio or 0:g}x {stable}", ratio_limit), ("max", shown.max_p99)],
            ),
            _chart(
                "Requests",
                [(shown.new, shown.requests_new), (stable, shown.requests_stable)],
                [("min", shown.min_requests)],
            ),
        ],
    }


def _chart(title: str, bars: Sequence[tuple[str, float | None]], limits: Sequence[tuple[str, float | None]]) -> Json:
    kept = [(name, value) for name, value in bars if value is not None]
    return {
        "title": title,
        "labels": [name for name, _ in kept],
        "values": [value for _, value in kept],
        "thresholds": [{"label": label, "value": value} for label, value in limits if value is not None],
    }
