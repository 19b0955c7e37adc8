"""What a person reads about one rollout, derived from the status API's JSON (pure): split, steps, gate, next decision.

The terminal views and the dashboard both build on these, so they say the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aml_rollouts.states import Phase, phase_of

Json = Mapping[str, Any]


def key_of(rollout: Json) -> str:
    return f"{rollout.get('endpoint')}/{rollout.get('deployment')}"


def endpoint_entry(rollout: Json, endpoints: Sequence[Json]) -> Json | None:
    """The status's ``endpoints`` entry of this rollout's endpoint (its observed and intended traffic)."""
    for entry in endpoints:
        same_endpoint = str(entry.get("endpoint", "")).lower() == str(rollout.get("endpoint", "")).lower()
        if same_endpoint and str(entry.get("workspace", "")).lower() == str(rollout.get("workspace", "")).lower():
            return entry
    return None


@dataclass(frozen=True)
class Split:
    """An endpoint's traffic, largest share first: as observed (``by`` last tick or aml), else as intended."""

    live: tuple[tuple[str, int], ...]
    mirror: tuple[tuple[str, int], ...]
    source: str  # "observed" | "intended" | "unknown"
    at: str | None = None

    def share(self, deployment: str) -> int:
        return next((pct for name, pct in self.live if name.lower() == deployment.lower()), 0)

    def text(self) -> str:
        if self.source == "unknown":
            return "not observed yet"
        live = ", ".join(f"{name} {pct}%" for name, pct in self.live) or "no live traffic"
        mirror = ", ".join(f"{name} {pct}%" for name, pct in self.mirror)
        return live + (f"; mirror {mirror}" if mirror else "")


def split_of(entry: Json | None) -> Split:
    def ordered(shares: Any) -> tuple[tuple[str, int], ...]:
        items = [(str(k), int(v)) for k, v in (shares or {}).items() if int(v)]
        return tuple(sorted(items, key=lambda item: (-item[1], item[0])))

    if entry and entry.get("observedTraffic") is not None:
        return Split(
            ordered(entry["observedTraffic"]), ordered(entry.get("observedMirror")), "observed", entry.get("observedAt")
        )
    if entry and entry.get("intendedTraffic") is not None:
        return Split(ordered(entry["intendedTraffic"]), ordered(entry.get("intendedMirror")), "intended")
    return Split((), (), "unknown")


@dataclass(frozen=True)
class Step:
    """One traffic step of the plan and where the rollout is with it."""

    number: int
    share: int
    status: str  # "done" | "current" | "failed" | "stopped" | "next" | "skipped"


#: What the step the rollout ended on becomes, by the state it ended in (a serving state: every step is done).
ENDED_AT = {"rolled_back": "failed", "failed": "failed", "aborted": "stopped"}


def steps_of(rollout: Json) -> list[Step]:
    """The plan's steps, each marked: done, current (its traffic sent, baking), failed or stopped there, next."""
    progress = rollout.get("progress") or {}
    shares = [int(s) for s in progress.get("steps") or [rollout.get("traffic", 0)]]
    at = progress.get("step")  # 1-based: the step whose traffic was last sent; None before any
    state, running = str(rollout.get("state")), phase_of(rollout) is Phase.RUNNING
    serving = phase_of(rollout) is Phase.SERVING
    marks: list[Step] = []
    for number, share in enumerate(shares, start=1):
        if serving or (at is not None and number < at):
            status = "done"
        elif at is None or number > at:
            status = "next" if running else "skipped"
        else:
            status = "current" if running else ENDED_AT.get(state, "stopped")
        marks.append(Step(number, share, status))
    return marks


def step_text(rollout: Json) -> str:
    """``step 2/3 at 50%`` (or ``before step 1/3``, ``3/3 steps done``)."""
    marks = steps_of(rollout)
    current = next((s for s in marks if s.status in ("current", "failed", "stopped")), None)
    if current is not None:
        return f"step {current.number}/{len(marks)} at {current.share}%"
    if marks and all(s.status == "done" for s in marks):
        return f"{len(marks)}/{len(marks)} steps done"
    return f"before step 1/{len(marks)}"


def moment(text: Any) -> dt.datetime | None:
    """An ISO 8601 time from the API (None when absent or unreadable)."""
    return _when(text)


def _when(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def clock(moment: dt.datetime | str | None) -> str:
    """``14:05:09Z``: the time of day in UTC (the app's clock; the dev kit may run it ahead of yours)."""
    when = _when(moment) if isinstance(moment, str) or moment is None else moment
    return when.astimezone(dt.UTC).strftime("%H:%M:%SZ") if when else "-"


def next_decision(rollout: Json) -> tuple[dt.datetime | None, str]:
    """When the app decides next about this rollout, and what; ``(None, ...)`` when no time is known."""
    progress = rollout.get("progress") or {}
    state, requested = str(rollout.get("state")), progress.get("requested")
    retry_at = _when(rollout.get("nextAttemptAt"))
    if requested:
        return None, f"the operator's {requested}: carried out at the next tick"
    if phase_of(rollout) is not Phase.RUNNING:
        return None, "none: the rollout has ended"
    if retry_at is not None:
        return retry_at, f"attempt {int(rollout.get('attempts') or 0) + 1} after an error"
    if progress.get("paused"):
        return None, "paused: nothing moves until an operator resumes it"
    if state == "baking":
        started, bake = _when(progress.get("bakeStartedAt")), int(progress.get("bakeSeconds") or 0)
        if started is None:
            return None, "the bake starts once the step's traffic is seen in place"
        due = started + dt.timedelta(seconds=bake * (1 + int(progress.get("extensions") or 0)))
        return due, "the gate judges the bake's metrics (once its last minute is complete)"
    if state == "pending":
        return None, "waiting for its turn on the endpoint (next tick)"
    if state == "awaiting_approval":
        return None, "an operator's approve or reject (aml-rollouts approve|reject); it expires after APPROVAL_TIMEOUT"
    return None, "the next tick observes Azure ML and takes the next step"


@dataclass(frozen=True)
class GateView:
    """A gate's verdict and its evidence, in words and in numbers (for a chart beside each threshold)."""

    outcome: str
    summary: str
    error_pct: float | None
    max_error_pct: float | None
    p99_new: float | None
    p99_stable: float | None
    ratio: float | None
    max_ratio: float | None
    max_p99: float | None
    requests_new: float | None
    requests_stable: float | None
    min_requests: float | None
    window: tuple[str | None, str | None]
    new: str
    stable: str

    def evidence(self) -> str:
        parts = [f"5xx {_pct(self.error_pct)} (max {_num(self.max_error_pct)}%)"]
        p99 = f"P99 {self.new} {_ms(self.p99_new)}"
        if self.stable:
            p99 += f" vs {self.stable} {_ms(self.p99_stable)}"
            if self.ratio is not None:
                p99 += f" = {self.ratio:.2f}x (max {_num(self.max_ratio)}x)"
        if self.max_p99:
            p99 += f", max {_num(self.max_p99)} ms"
        requests = f"requests {_num(self.requests_new)}"
        if self.stable:
            requests += f" vs {_num(self.requests_stable)}"
        parts += [p99, f"{requests} (min {_num(self.min_requests)})"]
        return "; ".join(parts)


def gate_of(gate: Json | None) -> GateView | None:
    if not gate:
        return None
    e = gate.get("evidence") or {}
    limits, p99, requests, window = (
        e.get("thresholds") or {},
        e.get("p99Ms") or {},
        e.get("requests") or {},
        e.get("window") or {},
    )
    outcome = str(gate.get("outcome", "?"))
    return GateView(
        outcome=outcome,
        summary=f"gate {outcome}: " + "; ".join(str(r) for r in gate.get("reasons") or []),
        error_pct=e.get("errorSharePct"),
        max_error_pct=limits.get("maxErrorRatePct"),
        p99_new=p99.get("new"),
        p99_stable=p99.get("stable"),
        ratio=e.get("latencyRatio"),
        max_ratio=limits.get("maxLatencyRatio"),
        max_p99=limits.get("maxP99Ms"),
        requests_new=requests.get("new"),
        requests_stable=requests.get("stable"),
        min_requests=limits.get("minRequests"),
        window=(window.get("start"), window.get("end")),
        new=str(e.get("newDeployment") or ""),
        stable=", ".join(str(s) for s in e.get("stableDeployments") or []),
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
