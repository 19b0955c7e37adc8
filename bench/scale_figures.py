"""The figures of ``make bench ARGS=--scale``, computed from what the run left: the emulator's request log, the
notifications the app published, and the figures each Functions process reported. Pure: no I/O here."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ARM's documented token buckets per principal, subscription and region (devkit/aml_emulator/limits.py has the
#: source): the refill rates are the sustained limits, per minute.
ARM_READS_PER_MIN = 25 * 60
ARM_WRITES_PER_MIN = 10 * 60
#: The goals of the capability, as the bench checks them.
GOAL_P95 = 1.3
GOAL_READ_SHARE = 0.5
GOAL_MONITOR_CUT = 5.0
GOAL_BAKING = 50  # the Monitor goal holds when this many rollouts bake in one region (the fleet's one region)
METRICS_PATH = "/providers/microsoft.insights/metrics"


@dataclass(frozen=True)
class Rollout:
    """One rollout of the burst: when its event was raised and when it reached its final state (emulated s)."""

    deployment: str
    kind: str
    floor_s: float
    event_at: float
    done_at: float | None = None
    final: str = ""
    baking_from: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.event_at

    @property
    def ratio(self) -> float | None:
        seconds = self.seconds
        return None if seconds is None else seconds / self.floor_s


@dataclass(frozen=True)
class Request:
    """One request the emulator logged, at its emulated time."""

    at: float
    method: str
    path: str
    status: int
    api: str
    body: Any = None

    @property
    def is_write(self) -> bool:
        return self.method in {"PUT", "PATCH", "DELETE", "POST"}


@dataclass
class RunFigures:
    """Everything one run reports."""

    events: int
    workers: int
    rollouts: list[Rollout]
    requests: list[Request]
    ticks: list[dict[str, Any]]
    finals: list[dict[str, Any]]
    lapse: float
    budget_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def to_live(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """p50, p95 and the last rollout's event-to-live, in seconds and as a ratio to its floor; how many finished."""
    done = [r for r in rollouts if r.seconds is not None]
    if not done:
        return {"done": 0}
    ratios = [r.ratio or 0.0 for r in done]
    seconds = [r.seconds or 0.0 for r in done]
    last = max(done, key=lambda r: r.done_at or 0.0)
    return {
        "done": len(done),
        "p50_ratio": percentile(ratios, 50),
        "p95_ratio": percentile(ratios, 95),
        "last_ratio": last.ratio or 0.0,
        "p50_s": percentile(seconds, 50),
        "p95_s": percentile(seconds, 95),
        "last_s": last.seconds or 0.0,
        "max_ratio": max(ratios),
    }


def per_minute_peak(times: Iterable[float]) -> int:
    """The most requests in one emulated minute (minutes counted from the first request)."""
    times = sorted(times)
    if not times:
        return 0
    buckets = Counter(int((t - times[0]) // 60) for t in times)
    return max(buckets.values())


def arm_peaks(requests: Sequence[Request]) -> dict[str, int]:
    """ARM reads and writes in the busiest minute, and Azure Monitor calls (ARM metric reads and batch calls)."""
    arm = [r for r in requests if r.api == "arm"]
    monitor = [r for r in requests if r.api == "metrics-batch" or METRICS_PATH in r.path.lower()]
    return {
        "reads": per_minute_peak(r.at for r in arm if not r.is_write),
        "writes": per_minute_peak(r.at for r in arm if r.is_write),
        "monitor": per_minute_peak(r.at for r in monitor),
        "monitor_total": len(monitor),
        "monitor_batch": sum(1 for r in monitor if r.api == "metrics-batch"),
        "throttled": sum(1 for r in requests if r.status in (429, 529)),
        "busy_409": sum(1 for r in arm if r.status == 409),
        "arm_total": len(arm),
    }


def monitor_per_baking_hour(requests: Sequence[Request], rollouts: Sequence[Rollout]) -> float | None:
    """Azure Monitor calls per baking rollout per hour: calls / the hours the canaries spent baking."""
    hours = sum(
        (r.done_at - r.baking_from) / 3600 for r in rollouts if r.baking_from is not None and r.done_at is not None
    )
    calls = sum(1 for r in requests if r.api == "metrics-batch" or METRICS_PATH in r.path.lower())
    return calls / hours if hours else None


def monitor_cut(requests: Sequence[Request]) -> tuple[int, int]:
    """(calls sent, calls the same reads would have cost one resource at a time): a per-resource metric read is one
    call either way; a ``metrics:getBatch`` call would have been one call per resource id in its body."""
    single = sum(1 for r in requests if r.api != "metrics-batch" and METRICS_PATH in r.path.lower())
    batches = [r for r in requests if r.api == "metrics-batch"]
    ids = sum(len(r.body.get("resourceids") or ()) if isinstance(r.body, Mapping) else 1 for r in batches)
    return single + len(batches), single + ids


def peak_baking(rollouts: Sequence[Rollout]) -> int:
    """The most rollouts baking at once: from their first bake to their final state (or for ever, if unfinished)."""
    edges = []
    for r in rollouts:
        if r.baking_from is not None:
            edges += [(r.baking_from, 1), (r.done_at if r.done_at is not None else math.inf, -1)]
    peak = current = 0
    for _, step in sorted(edges):  # at a tie an end (-1) sorts first: one ending as another starts is not two
        current += step
        peak = max(peak, current)
    return peak


def duplicate_writes(requests: Sequence[Request]) -> list[str]:
    """Writes sent twice: a deployment created (accepted) more than once, or the same split written to an endpoint
    twice in a row (each write the emulator accepted, in order)."""
    created: Counter[str] = Counter()
    splits: dict[str, list[str]] = defaultdict(list)
    for r in sorted(requests, key=lambda r: r.at):
        if r.api != "arm" or r.method != "PUT" or not 200 <= r.status < 300:
            continue
        path = r.path.lower()
        if "/deployments/" in path:
            created[path] += 1
        elif "/onlineendpoints/" in path and isinstance(r.body, Mapping):
            props = r.body.get("properties") or {}
            live, mirror = props.get("traffic") or {}, props.get("mirrorTraffic") or {}
            splits[path].append(repr((sorted(live.items()), sorted(mirror.items()))))
    found = [f"{path}: created {n} times" for path, n in created.items() if n > 1]
    for path, written in splits.items():
        found += [f"{path}: {b} written twice" for a, b in itertools.pairwise(written) if a == b]
    return found


def tick_figures(ticks: Sequence[dict[str, Any]], lapse: float) -> dict[str, float]:
    """Table transactions per tick (median, max), the longest tick (wall and emulated s), endpoints not reached."""
    if not ticks:
        return {"ticks": 0}
    busy = [t for t in ticks if t["lines"]] or list(ticks)
    return {
        "ticks": len(ticks),
        "table_median": statistics.median(t["table_ops"] for t in busy),
        "table_max": max(t["table_ops"] for t in ticks),
        "longest_s": max(t["wall_s"] for t in ticks),
        "longest_emulated_s": max(t["wall_s"] for t in ticks) * lapse,
        "not_reached": sum(t.get("not_reached", 0) for t in ticks),
        "not_reached_max": max(t.get("not_reached", 0) for t in ticks),
        "fanned_out": sum(t.get("fanned_out", 0) for t in ticks),
        "deferred_idle": sum(t.get("deferred_idle", 0) for t in ticks),
    }


def conflicts(finals: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Lease contention, leases lost, stale decisions (ETag), ETag conflicts in storage, over every process."""
    total: Counter[str] = Counter()
    for final in finals:
        for name, count in (final.get("outcomes") or {}).items():
            total[name] += int(count)
        total["etag_conflicts"] += sum(int(n) for n in (final.get("conflicts") or {}).values())
    return dict(total)


def queue_lateness(finals: Sequence[dict[str, Any]]) -> dict[str, float]:
    """How long after falling due the queue workers handled the follow-ups (emulated seconds): p50, p95, the
    most, and how many messages said when they were due."""
    late = [float(s) for final in finals for s in final.get("followups_late_s") or ()]
    if not late:
        return {"handled": 0}
    return {"handled": len(late), "p50": percentile(late, 50), "p95": percentile(late, 95), "max": max(late)}


def report(run: RunFigures) -> list[tuple[str, str, str, str, str]]:
    """The run's rows: (measure, figure, time, notes, the goal it misses or "")."""
    live, peaks, tick = to_live(run.rollouts), arm_peaks(run.requests), tick_figures(run.ticks, run.lapse)
    kinds = ", ".join(f"{n} {k}" for k, n in Counter(r.kind for r in run.rollouts).items())
    label = f"scale: {run.events} events ({kinds}), {run.workers} worker(s)"
    ended = Counter(r.final for r in run.rollouts if r.final)
    missing = run.events - live["done"]
    rows = []
    seen = conflicts(run.finals)
    if live["done"]:
        notes = (
            f"event to final state vs its floor: p50 {live['p50_ratio']:.2f}x ({live['p50_s'] / 60:.1f} min), "
            f"last {live['last_ratio']:.2f}x ({live['last_s'] / 60:.1f} min), worst {live['max_ratio']:.2f}x; "
            f"ended {dict(ended)}"
        )
        miss = f"p95 {live['p95_ratio']:.2f}x > {GOAL_P95}x" if live["p95_ratio"] > GOAL_P95 else ""
        rows.append((label, f"p95 {live['p95_ratio']:.2f}x", f"{live['p95_s'] / 60:.1f} min", notes, miss))
        rows.append(machine_row(run))
    if missing:
        states = ", ".join(f"{n} {state}" for state, n in Counter(run.extra.get("unfinished", {}).values()).items())
        rows.append((label, f"{missing} unfinished", "", f"not ended when the run's time was up; in the ledger: "
                     f"{states or 'no row'}", "every rollout ends"))  # fmt: skip
    share = peaks["reads"] / ARM_READS_PER_MIN
    notes = (
        f"{share:.0%} of the per-principal read limit ({ARM_READS_PER_MIN}/min), "
        f"{peaks['writes'] / ARM_WRITES_PER_MIN:.0%} of the write limit ({ARM_WRITES_PER_MIN}/min); "
        f"{peaks['arm_total']} ARM requests in all, {peaks['throttled']} throttled, {peaks['busy_409']} 409s"
    )
    miss = f"reads {share:.0%} >= {GOAL_READ_SHARE:.0%} of the limit" if share >= GOAL_READ_SHARE else ""
    rows.append(("  ARM at the peak minute", f"{peaks['reads']} reads", f"{peaks['writes']} writes", notes, miss))
    per_hour = monitor_per_baking_hour(run.requests, run.rollouts)
    calls, alone = monitor_cut(run.requests)
    cut, baking = (alone / calls if calls else 1.0), peak_baking(run.rollouts)
    notes = (
        f"{peaks['monitor_total']} calls ({peaks['monitor_batch']} batch) where reading each endpoint alone takes "
        f"{alone}: {cut:.1f}x fewer; "
        + (f"{per_hour:.1f} per baking rollout per hour" if per_hour is not None else "no rollout baked")
        + f"; at most {baking} rollouts baking at once; {seen.get('bakes_extended', 0)} bakes extended by an "
        "inconclusive gate"
    )
    # The goal is for a region with GOAL_BAKING rollouts baking at once; a run with fewer is reported, not judged.
    judged = baking >= GOAL_BAKING and cut < GOAL_MONITOR_CUT
    miss = f"{cut:.1f}x fewer < {GOAL_MONITOR_CUT:g}x with {baking} baking" if judged else ""
    rows.append(("  Azure Monitor calls", f"{cut:.1f}x fewer", f"{peaks['monitor']}/min peak", notes, miss))
    if tick["ticks"]:
        notes = (
            f"median Table transactions per busy tick (max {tick['table_max']}); {tick['ticks']} ticks, the longest "
            f"{tick['longest_s']:.1f} s = {tick['longest_emulated_s']:.0f} emulated s (budget {run.budget_s:g} s); "
            f"endpoints not reached in a tick's budget: {tick['not_reached']} (at most {tick['not_reached_max']} in "
            f"one tick); fanned out to the queue: {tick['fanned_out']}; idle polling deferred: {tick['deferred_idle']}"
        )
        figure = f"{tick['table_median']:.0f} Table tx"
        rows.append(("  reconciler ticks", figure, f"{tick['longest_s']:.1f} s", notes, ""))
    late = queue_lateness(run.finals)
    if late["handled"]:
        notes = (
            f"follow-ups handled after they fell due: p50 {late['p50']:.0f} s, p95 {late['p95']:.0f} s, the most "
            f"{late['max']:.0f} s, over {late['handled']:.0f} messages and {run.workers} worker(s) (emulated s; the "
            "polling interval alone can take a few)"
        )
        rows.append(("  follow-up queue", f"p95 {late['p95']:.0f} s late", f"{late['handled']:.0f} msgs", notes, ""))
    dupes = duplicate_writes(run.requests)
    # Lost: an event whose rollout the ledger does not have (one still in progress when time was up is not lost).
    lost = missing - len(run.extra.get("unfinished", {}))
    notes = (
        f"lease contention {seen.get('lease_contention', 0)}, leases lost {seen.get('lease_lost', 0)}, stale "
        f"decisions {seen.get('stale', 0)}, ETag conflicts {seen.get('etag_conflicts', 0)}, AML 409s "
        f"{peaks['busy_409']}; duplicate writes {len(dupes)}, lost events {lost}; app CPU "
        f"{cpu_seconds(run.finals):.0f} s"
    )
    miss = "; ".join(dupes[:3]) or ("lost events" if lost else "")
    rows.append(("  conflicts", f"{seen.get('lease_contention', 0)} lease", f"{seen.get('etag_conflicts', 0)} ETag",
                 notes, miss))  # fmt: skip
    return rows


def machine_row(run: RunFigures) -> tuple[str, str, str, str, str]:
    """What this machine could give the run: the app's CPU in emulated time on its cores, and its load meanwhile.

    At a time lapse every wall-clock second the app computes is ``lapse`` emulated seconds; on ``cores`` cores, with
    nothing else running, the run's CPU alone takes ``cpu / cores * lapse``. When that is above the goal's 1.3x of
    the floor, this machine, not Azure ML's operation times, bounds the figure.
    """
    cpu, cores, load = cpu_seconds(run.finals), int(run.extra.get("cores") or 1), float(run.extra.get("load") or 0)
    floor = statistics.median(r.floor_s for r in run.rollouts) if run.rollouts else 0.0
    needed = cpu / cores * run.lapse
    notes = (
        f"the app's CPU ({cpu:.0f} s over its {2 + run.workers} processes) is {needed / 60:.1f} emulated min on "
        f"{cores} idle cores at {run.lapse:g}x, vs {GOAL_P95}x the median floor = {GOAL_P95 * floor / 60:.1f} min; "
        f"load average {load:.1f} on {cores} cores meanwhile (other work shares the machine)"
    )
    return ("  this machine", f"{needed / 60:.1f} min CPU", f"load {load:.1f}", notes, "")


def cpu_seconds(finals: Sequence[dict[str, Any]]) -> float:
    """CPU seconds every Functions process of the run spent on the run (after warming up)."""
    return sum(float(final.get("cpu_s") or 0) - float(final.get("warm_cpu_s") or 0) for final in finals)
