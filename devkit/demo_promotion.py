"""``make demo``'s promotion scene: a canary proven in staging, promoted through a registry, rolled out in production.

Two apps on one stack (``devkit/promotion.py``): the staging app on the demo's workspace, the production app on a
second workspace in another subscription and region, with settings of its own (a longer bake, a stricter gate, and
every rollout awaiting an operator's approval). v2 is approved there and rolls out; v3, proven in staging too, is
rejected.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from devkit import runner
from devkit.aml_emulator import AmlEmulator
from devkit.harness import model_registered
from devkit.promotion import PRODUCTION_ID, REGISTRY, Promotion, set_up

if TYPE_CHECKING:
    from devkit.demo import Timeline

MODEL = "ranking"
SAMPLE = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}})
#: Staging's canary: two steps under synthetic load, smoke-tested; promoted once proven, with only the tags that say
#: what to serve (production bakes and gates by its own settings).
CANARY = {
    "deploy": "true",
    "endpoint": MODEL,
    "traffic_steps": "10,100",
    "bake": "10m",
    "smoke_request": SAMPLE,
    "promote": "true",
    "promote_tags": "deploy,endpoint,smoke_request",
}
#: The production app's own rules: a longer bake and a stricter error budget than staging's, and approvals.
PRODUCTION_RULES = {"BAKE_DEFAULT": "30m", "GATE_MAX_ERROR_RATE": "0.5", "REQUIRE_APPROVAL": "true"}
LOAD_RPM = 300
#: A bake is judged once its last minute is complete in Azure Monitor: the bake, the metric lag, the minute in progress.
LAG_S = 2 * 60 + 61
FINAL = ("live", "canary", "rolled_back", "failed", "aborted", "rejected", "expired")


def promotion(t: Timeline) -> None:
    """A canary proven in staging is promoted into a registry and rolled out by production's own app and gates."""
    p = set_up(t.app.stack)
    t.section(
        f"Promotion: {MODEL} proven in staging ({t.app.stack.aml.workspace_name}), shared into registry {REGISTRY}, "
        f"rolled out in production ({PRODUCTION_ID.split('/')[-1]}, another subscription and region)"
    )
    with p.staging():
        aml = t.app.stack.aml
        aml.seed_model(MODEL, 1, tags={"deploy": "true", "endpoint": MODEL})
        t.deliver(model_registered(MODEL, 1))
        t.settle()
        _prove_in_staging(t, p, 2)
    with p.production(**PRODUCTION_RULES):
        _roll_out_in_production(t, p)
    t.section(f"Promotion, again: {MODEL} v3 proven in staging and promoted; production's operator rejects it")
    with p.staging():
        _prove_in_staging(t, p, 3)
    with p.production(**PRODUCTION_RULES):
        _rejected_in_production(t, p)


def _prove_in_staging(t: Timeline, p: Promotion, version: int) -> None:
    aml = t.app.stack.aml
    print(f"{'':8}  staging: v{version} registered with promote=true, traffic_steps=10,100, bake=10m")
    aml.seed_model(MODEL, version, tags=CANARY, job_name=f"train-{MODEL}-{version}")
    with t.app.emulated_time():
        aml.start_load(MODEL, rpm=LOAD_RPM, seed=10 + version)
        t.deliver(model_registered(MODEL, version), note="promote=true: the staging app promotes it once proven")
        _drive(t, aml, f"{MODEL}-v{version}", 10 * 60)
        aml.stop_load(MODEL)
        t.app.drain_followups()  # the promotion runs on the follow-up queue: a share blocks for the whole copy
    t.published()
    stored = p.registry.model(MODEL, version)
    if stored is None:
        raise RuntimeError(f"{MODEL} v{version} was not promoted into {REGISTRY}")
    print(f"{'':8}  registry {REGISTRY}: {MODEL}:{version} copied from {stored.source}, lineage job {stored.job_name}")
    for key in sorted(k for k in stored.tags if k.startswith("promotion.")):
        print(f"{'':10}{key} = {stored.tags[key][:110]}")


def _roll_out_in_production(t: Timeline, p: Promotion) -> None:
    prod = p.production_workspace
    events = p.forward()
    print(f"{'':8}  Event Grid: {len(events)} AmlEvents.Model.Promoted from the staging app's topic to production")
    print(f"{'':8}  production settings: PROMOTION_SOURCES=<staging workspace>, PROMOTION_REGISTRIES={REGISTRY}, ")
    print(
        f"{'':8}  {', '.join(f'{k}={v}' for k, v in PRODUCTION_RULES.items())} (staging's bake tags were not carried)"
    )
    with p.emulated_time(prod):
        t.deliver(*events)
        started = False
        for _ in range(30):
            t.app.tick()
            t.changes()
            row = t.app.rollout(f"{MODEL}-v2")
            if row["state"] in FINAL:
                break
            if row["state"] == "awaiting_approval" and not row["progress"].get("requested"):
                _decide(t, "v2", "approve", "staging canary and production smoke test reviewed")
                continue
            if not started and prod.endpoint_state(MODEL) is not None:
                prod.start_load(MODEL, rpm=LOAD_RPM, seed=12)
                started = True
            if row["state"] == "baking" and row["progress"]["bakeStartedAt"]:
                _show_gate(row)
                prod.advance_clock(30 * 60 + LAG_S)
                print(f"{'':8}  ... production's emulated time +{(30 * 60 + LAG_S) / 60:.0f} min (its 30-minute bake)")
        if started:
            prod.stop_load(MODEL)
    t.published()
    row = t.app.rollout(f"{MODEL}-v2")
    _show_gate(row)
    print(f"{'':8}  production {MODEL} traffic: {p.production_traffic(MODEL)}; serving {row['promotion']['model']}")
    _show_promotion(row["promotion"])


def _rejected_in_production(t: Timeline, p: Promotion) -> None:
    prod = p.production_workspace
    events = p.forward()
    print(f"{'':8}  Event Grid: {len(events)} AmlEvents.Model.Promoted (v3) to production")
    with p.emulated_time(prod):
        t.deliver(*events)
        for _ in range(10):
            t.app.tick()
            t.changes()
            row = t.app.rollout(f"{MODEL}-v3")
            if row["state"] in FINAL:
                break
            if row["state"] == "awaiting_approval" and not row["progress"].get("requested"):
                _decide(t, "v3", "reject", "its P99 is too close to production's budget")
        prod.wait_idle()
        t.app.tick()  # cleanup deletes the rejected deployment
        t.changes()
    t.published()
    row = t.app.rollout(f"{MODEL}-v3")
    kept = "kept" if prod.deployment_state(MODEL, f"{MODEL}-v3") is not None else "deleted by cleanup"
    print(
        f"{'':8}  production {MODEL}-v3: {row['state']}, its deployment {kept}; traffic {p.production_traffic(MODEL)}"
    )


def _decide(t: Timeline, version: str, action: str, reason: str) -> None:
    """Production's operator decides, as the AwaitingApproval notification's call says (aml-rollouts approve|reject)."""
    t.published()
    deployment = f"{MODEL}-{version}"
    print(f"{'':8}  operator: aml-rollouts {action} {MODEL} {deployment} --reason '{reason}'")
    status, body = runner.control(MODEL, deployment, action, json.dumps({"reason": reason}).encode())
    print(f"{t.stamp()}  POST {action} -> {status}: {body.get('effect')} ({body.get('note')})")


def _drive(t: Timeline, workspace: AmlEmulator, deployment: str, bake_s: float) -> None:
    """Fire the timer until the rollout ends; move ``workspace``'s emulated clock past each bake."""
    shown: Any = None
    for _ in range(24):
        t.app.tick()
        t.changes()
        t.published()
        row = t.app.rollout(deployment)
        if row["progress"].get("gate") != shown:
            shown = row["progress"].get("gate")
            _show_gate(row)
        if row["state"] in FINAL:
            return
        if row["state"] == "baking" and row["progress"]["bakeStartedAt"]:
            workspace.advance_clock(bake_s + LAG_S)
    raise RuntimeError(f"{deployment} did not finish: {t.app.rollout(deployment)['reason']}")


def _show_gate(row: dict[str, Any]) -> None:
    gate = row["progress"].get("gate")
    if not gate:
        return
    e = gate["evidence"]
    share = f"{e['errorSharePct']:.2f}%" if e["errorSharePct"] is not None else "n/a"
    p99 = e["p99Ms"]["new"]
    print(
        f"{'':8}  gate {gate['outcome']}: {e['requests']['new']:g} requests, 5xx {share} "
        f"(max {e['thresholds']['maxErrorRatePct']:g}%), P99 {p99 if p99 is None else f'{p99:.0f} ms'}"
    )


def _show_promotion(promotion: dict[str, Any] | None) -> None:
    if not promotion:
        return
    print(f"{'':8}  GET /api/rollouts shows where it was proven:")
    print(f"{'':10}source workspace {promotion['sourceWorkspace']}")
    print(f"{'':10}staging rollout  {promotion['stagingRollout']}, its gates as the registry records them:")
    for name, verdict in promotion["stagingEvidence"]["gates"].items():
        print(f"{'':12}{name}: {verdict}")
    for name, url in promotion["links"].items():
        print(f"{'':10}{name}: {url[:100]}")
