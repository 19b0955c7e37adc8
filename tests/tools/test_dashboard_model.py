"""What the dashboard draws, from the status API's JSON: traffic over the rollout's life from the endpoint's traffic
writes, every gate seen beside its thresholds, rollouts grouped by endpoint."""

from __future__ import annotations

from typing import Any

from aml_rollouts.dashboard import model


def rollout(state: str = "baking", **extra: Any) -> dict[str, Any]:
    return {
        "workspace": "/subscriptions/s/resourceGroups/r/providers/x/workspaces/w",
        "endpoint": "credit",
        "deployment": "credit-v2",
        "model": "credit",
        "version": "2",
        "state": state,
        "reason": "baking",
        "traffic": 100,
        "progress": {"steps": [10, 50, 100], "step": 2, "bakeSeconds": 600, "history": [], "gate": None},
        "createdAt": "2026-11-22T10:00:00+00:00",
        "updatedAt": "2026-11-22T10:30:00+00:00",
        **extra,
    }


def write(at: str, traffic: dict[str, int], status: str = "accepted") -> dict[str, Any]:
    return {"at": f"2026-11-22T{at}+00:00", "traffic": traffic, "mirror": {}, "by": "", "status": status}


def endpoint(*writes: dict[str, Any], observed_at: str = "10:40:00") -> dict[str, Any]:
    return {
        "workspace": rollout()["workspace"],
        "endpoint": "credit",
        "observedTraffic": {"credit-v1": 50, "credit-v2": 50},
        "observedAt": f"2026-11-22T{observed_at}+00:00",
        "trafficHistory": list(writes),
    }


def gate(outcome: str, start: str, new_p99: float = 40.0) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "reasons": ["within thresholds" if outcome == "pass" else "P99 too high"],
        "evidence": {
            "window": {"start": start, "end": start, "countedUntil": start},
            "newDeployment": "credit-v2",
            "stableDeployments": ["credit-v1"],
            "requests": {"new": 120.0, "stable": 1080.0},
            "errorSharePct": 0.0,
            "p99Ms": {"new": new_p99, "stable": 50.0},
            "latencyRatio": new_p99 / 50.0,
            "thresholds": {"maxErrorRatePct": 1.0, "maxLatencyRatio": 1.5, "maxP99Ms": None, "minRequests": 100},
        },
    }


def test_traffic_over_time_starts_from_the_split_before_the_rollout_and_follows_its_applied_writes() -> None:
    history = endpoint(
        write("09:00:00", {"credit-v1": 100}),
        write("10:05:00", {"credit-v1": 90, "credit-v2": 10}),
        write("10:12:00", {"credit-v1": 10, "credit-v2": 90}, status="refused"),  # never took effect
        write("10:20:00", {"credit-v1": 50, "credit-v2": 50}),
    )
    series = {s["name"]: s for s in model.traffic_series(rollout(), history)}
    assert list(series) == ["credit-v2", "credit-v1"]  # the rollout's own deployment first
    assert series["credit-v1"]["x"] == [
        "2026-11-22 10:00:00.000000",  # created: the split then in force
        "2026-11-22 10:05:00.000000",
        "2026-11-22 10:20:00.000000",
        "2026-11-22 10:40:00.000000",  # running: up to the endpoint's last observation
    ]
    assert series["credit-v1"]["y"] == [100, 90, 50, 50]
    assert series["credit-v2"]["y"] == [0, 10, 50, 50]


def test_an_ended_rollout_s_traffic_stops_at_its_end_and_none_is_drawn_without_writes() -> None:
    history = endpoint(write("10:05:00", {"credit-v2": 100}), write("11:00:00", {"credit-v3": 100}))
    [series] = model.traffic_series(rollout("live"), history)
    assert series["x"][-1] == "2026-11-22 10:30:00.000000" and series["y"] == [100, 100]
    assert model.traffic_series(rollout(), None) == []


def test_every_gate_seen_is_kept_oldest_first_beside_its_thresholds() -> None:
    memory = model.GateMemory()
    first = rollout(progress={**rollout()["progress"], "gate": gate("pass", "10:00")})
    second = rollout(progress={**rollout()["progress"], "gate": gate("fail", "10:15", new_p99=900.0)})
    model.rollout_model(first, [], memory)
    model.rollout_model(first, [], memory)  # the same verdict polled again is kept once
    shown = model.rollout_model(second, [], memory)
    assert [g["outcome"] for g in shown["gates"]] == ["pass", "fail"]
    errors, p99, requests = shown["gates"][1]["charts"]
    assert (errors["values"], [t["value"] for t in errors["thresholds"]]) == ([0.0], [1.0])
    assert p99["labels"] == ["credit-v2", "credit-v1"] and p99["values"] == [900.0, 50.0]
    assert p99["thresholds"] == [{"label": "1.5x credit-v1", "value": 75.0}]  # no absolute P99 limit set
    assert requests["thresholds"] == [{"label": "min", "value": 100}]


def test_the_page_groups_rollouts_by_endpoint_and_says_whether_actions_are_on() -> None:
    other = rollout("live", endpoint="fraud", deployment="fraud-v1")
    body = {
        "rollouts": [rollout(), other, rollout("live", deployment="credit-v1")],
        "endpoints": [],
        "continuation": "x",
    }
    shown = model.page(body, model.GateMemory(), source="http://app", allow_actions=False, refresh_s=5)
    assert [(g["endpoint"], [r["deployment"] for r in g["rollouts"]]) for g in shown["endpoints"]] == [
        ("credit", ["credit-v2", "credit-v1"]),
        ("fraud", ["fraud-v1"]),
    ]
    assert shown["allowActions"] is False and shown["more"] is True
    assert {a["name"] for a in shown["actions"]} >= {"promote", "rollback"}
    first = shown["endpoints"][0]["rollouts"][0]
    assert (first["badge"], first["stepText"], first["phase"]) == ("running", "step 2/3 at 50%", "running")
