"""The scale bench's figures, from a run's log: percentiles against floors, peaks per minute, duplicate writes."""

from __future__ import annotations

from dataclasses import replace

from bench.scale_figures import (
    Request,
    Rollout,
    RunFigures,
    arm_peaks,
    duplicate_writes,
    monitor_cut,
    monitor_per_baking_hour,
    peak_baking,
    percentile,
    queue_lateness,
    report,
    tick_figures,
    to_live,
)

EP = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/onlineEndpoints/e"


def put(at: float, path: str, body: object = None, status: int = 200) -> Request:
    return Request(at, "PUT", path, status, "arm", body)


def split(**traffic: int) -> dict[str, object]:
    return {"properties": {"traffic": traffic, "mirrorTraffic": {}}}


def test_event_to_live_is_read_against_each_rollout_s_floor() -> None:
    rollouts = [Rollout(f"d{n}", "blue/green", 100.0, 0.0, done_at=100.0 + 10 * n) for n in range(20)]
    figures = to_live([*rollouts, Rollout("late", "canary", 1000.0, 0.0)])
    assert figures["done"] == 20
    assert figures["p50_ratio"] == 1.9 and figures["p95_ratio"] == 2.8 and figures["last_ratio"] == 2.9
    assert percentile([3, 1, 2], 50) == 2


def test_peaks_count_the_busiest_minute_and_monitor_calls_of_both_apis() -> None:
    log = [Request(t, "GET", EP, 200, "arm") for t in (0, 10, 59, 61)]
    log += [Request(5, "GET", f"{EP}/providers/Microsoft.Insights/metrics", 200, "arm")]
    log += [Request(6, "POST", "/eastus/subscriptions/s/metrics:getBatch", 200, "metrics-batch")]
    log += [put(7, EP, split(a=100)), Request(8, "GET", EP, 429, "arm")]
    peaks = arm_peaks(log)
    assert (peaks["reads"], peaks["writes"], peaks["monitor"]) == (5, 1, 2)
    assert (peaks["monitor_batch"], peaks["throttled"], peaks["arm_total"]) == (1, 1, 7)
    baking = [Rollout("c", "canary", 750.0, 0.0, done_at=3600.0, baking_from=0.0)]
    assert monitor_per_baking_hour(log, baking) == 2.0


def test_a_write_sent_twice_is_a_duplicate_and_a_refused_one_is_not() -> None:
    deployment = f"{EP}/deployments/d2"
    log = [
        put(1, deployment, {"properties": {}}, 201),
        put(2, EP, split(a=90, b=10)),
        put(3, EP, split(a=90, b=10), 409),  # refused: not a write
        put(4, EP, split(b=100)),
    ]
    assert duplicate_writes(log) == []
    twice = duplicate_writes([*log, put(5, EP, split(b=100)), put(6, deployment, {"properties": {}}, 200)])
    assert len(twice) == 2


def test_the_report_flags_what_misses_its_goal_and_tells_unfinished_from_lost() -> None:
    done = [Rollout(f"d{n}", "blue/green", 100.0, 0.0, done_at=200.0, final="Live") for n in range(3)]
    run = RunFigures(4, 1, [*done, Rollout("x", "dark", 100.0, 0.0)], [], [], [], 20.0, 2.25,
                     {"unfinished": {"x": "deploying"}, "cores": 2, "load": 1.0})  # fmt: skip
    rows = {row[0].strip(): row for row in report(run)}
    first = next(row for row in report(run) if row[1].startswith("p95"))
    assert first[4] == "p95 2.00x > 1.3x"
    unfinished = next(row for row in report(run) if "unfinished" in row[1])
    assert "1 deploying" in unfinished[3]
    assert "lost events 0" in rows["conflicts"][3]
    assert tick_figures([], 20.0) == {"ticks": 0}


def test_the_monitor_cut_counts_each_batched_resource_as_the_call_it_saved() -> None:
    metrics = f"{EP}/providers/Microsoft.Insights/metrics"
    batch = "/eastus/subscriptions/s/metrics:getBatch"
    ids = {"resourceids": [f"{EP}{n}" for n in range(6)]}
    log = [Request(1, "GET", metrics, 200, "arm"), Request(2, "GET", metrics, 200, "arm")]
    log += [Request(3, "POST", batch, 200, "metrics-batch", ids), Request(3, "POST", batch, 200, "metrics-batch", ids)]
    assert monitor_cut(log) == (4, 14)  # 2 alone + 2 batch calls, against 2 + 2 x 6 one endpoint at a time
    assert monitor_cut([]) == (0, 0)


def test_peak_baking_counts_overlaps_and_an_unfinished_rollout_bakes_on() -> None:
    rollouts = [
        Rollout("a", "canary", 750.0, 0.0, done_at=100.0, baking_from=10.0),
        Rollout("b", "canary", 750.0, 0.0, done_at=200.0, baking_from=100.0),  # starts as a ends: not two at once
        Rollout("c", "canary", 750.0, 0.0, baking_from=150.0),
        Rollout("d", "blue/green", 330.0, 0.0, done_at=50.0),
    ]
    assert peak_baking(rollouts) == 2
    assert peak_baking([]) == 0


def test_the_monitor_goal_is_judged_only_where_enough_rollouts_bake_at_once() -> None:
    batch = "/eastus/subscriptions/s/metrics:getBatch"
    ids = {"resourceids": [f"{EP}{n}" for n in range(3)]}
    log = [Request(1, "POST", batch, 200, "metrics-batch", ids)]  # 3x fewer
    few = [Rollout(f"c{n}", "canary", 750.0, 0.0, done_at=900.0, final="Live", baking_from=300.0) for n in range(3)]
    many = [replace(r, deployment=f"{r.deployment}-{n}") for n in range(20) for r in few]  # 60 at once

    def monitor_row(rollouts: list[Rollout]) -> tuple[str, ...]:
        run = RunFigures(len(rollouts), 1, rollouts, log, [], [], 20.0, 2.25, {"cores": 2, "load": 1.0})
        return next(row for row in report(run) if row[0].strip() == "Azure Monitor calls")

    assert monitor_row(few)[1] == "3.0x fewer" and monitor_row(few)[4] == ""
    assert monitor_row(many)[4] != ""  # 60 baking at once: 3x misses the 5x goal


def test_each_canary_s_first_gate_gets_enough_requests_to_judge_without_an_extension() -> None:
    """The gate counts whole minutes inside the bake: a bake that starts mid-minute counts one fewer. Over that many
    minutes, the first step's share of the bench's load must clear the gate's minimum with room for chance (one
    standard deviation of its binomial count below the mean, and more)."""
    from bench.scale import BAKE_S, CANARY_RPM, FIRST_STEP_PCT, GATE_MIN_REQUESTS

    whole_minutes = BAKE_S // 60 - 1
    share = FIRST_STEP_PCT / 100
    mean = CANARY_RPM * whole_minutes * share
    spread = (CANARY_RPM * whole_minutes * share * (1 - share)) ** 0.5
    assert mean - 3 * spread >= GATE_MIN_REQUESTS


def test_queue_lateness_pools_every_worker_s_messages_and_says_when_none_said() -> None:
    finals = [{"followups_late_s": [0.5, 1.0, 2.0]}, {"followups_late_s": [40.0]}, {"table_ops": 3}]
    assert queue_lateness(finals) == {"handled": 4, "p50": 1.0, "p95": 40.0, "max": 40.0}
    assert queue_lateness([{"table_ops": 3}]) == {"handled": 0}
