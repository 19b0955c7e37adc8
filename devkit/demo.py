"""``make demo``: the whole flow offline, printed as a timeline of what the app did and published."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devkit import runner, status_table
from devkit.demo_promotion import promotion
from devkit.harness import APP_SETTINGS, OfflineApp, app_environment, model_registered, monitor_breach
from devkit.stack import SUBSCRIPTION_ID, WORKSPACE_ID, DevStack

EVENTS = Path(__file__).parents[1] / "tests" / "events"
CREDIT = {"deploy": "true", "endpoint": "credit"}
FRAUD = {"deploy": "true", "endpoint": "fraud", "instance_type": "Standard_DS2_v2"}


class Timeline:
    """Prints deliveries, reconciler ticks and published notifications as they happen."""

    def __init__(self, app: OfflineApp) -> None:
        self.app = app
        self.seen = 0
        self.started = time.monotonic()
        self.states: dict[str, tuple[str, str]] = {}
        self.ticks = 0
        #: A gate verdict printed with its evidence right after: other lines only point at it.
        self.verdict = ""

    def once(self, text: str) -> str:
        if not self.verdict or self.verdict not in text:
            return text
        return text.replace(self.verdict, self.verdict.split(":", 1)[0] + " (evidence below)")

    def stamp(self) -> str:
        return f"{time.monotonic() - self.started:6.2f}s"

    def section(self, title: str) -> None:
        print(f"\n== {title}")

    def deliver(self, *events: dict[str, Any], note: str = "") -> None:
        for delivery in self.app.deliver(*events):
            kind = delivery.event_type.rsplit(".", 1)[-1]
            extra = f"  ({note})" if note else ""
            print(f"{self.stamp()}  event  {kind:<21} {delivery.subject}{extra}")
            print(f"{'':8}  -> {delivery.outcome}")
        self.published()

    def settle(self, max_ticks: int = 10) -> None:
        self.app.stack.aml.wait_idle()
        for tick in range(1, max_ticks + 1):
            if not [r for r in self.app.rollouts() if r["state"] in ("pending", "deploying")]:
                return
            runner.tick()
            self.ticks += 1
            print(f"{self.stamp()}  tick {tick} reconcile_rollouts")
            self.changes()
            self.published()
            self.app.stack.aml.wait_idle()

    def changes(self) -> None:
        for rollout in self.app.rollouts():
            key = rollout["deployment"]
            now = (rollout["state"], rollout["reason"])
            if self.states.get(key) != now:
                self.states[key] = now
                print(f"{'':8}  {rollout['endpoint']}/{key}: {rollout['state']} - {self.once(rollout['reason'])}")

    def published(self, *, mark_states: bool = True) -> None:
        """Print what was published since; ``mark_states``: the delivery lines said the states, take them as seen
        (not while something else moves the rollouts: a change between the two reads would never be printed)."""
        events = self.app.published()
        for event in events[self.seen :]:
            print(f"{'':8}  published {event['type']}: {self.once(event['data']['summary'])}")
        self.seen = len(events)
        if mark_states:
            for rollout in self.app.rollouts():
                self.states[rollout["deployment"]] = (rollout["state"], rollout["reason"])

    def traffic(self, endpoint: str) -> None:
        print(f"{'':8}  endpoint {endpoint} traffic: {_split(self.app.traffic(endpoint))}")


def _fixture(name: str) -> dict[str, Any]:
    event = runner.load_events(EVENTS / name)[0]
    event["topic" if "topic" in event else "source"] = WORKSPACE_ID
    return event


def lifecycle(t: Timeline) -> None:
    """Lifecycle events become notifications; a foreign workspace's event is ignored."""
    t.section("Lifecycle events become notifications")
    for name in (
        "run_status_changed.eventgrid.camel.json",
        "run_completed.cloudevents.pascal.json",
        "model_deployed.eventgrid.pascal.json",
    ):
        t.deliver(_fixture(name))
    t.deliver(_fixture("dataset_drift_detected.cloudevents.camel.json"), note="legacy v1 data drift")
    foreign = _fixture("run_completed.eventgrid.camel.json")
    foreign["topic"] = WORKSPACE_ID.replace("mlw-devkit", "mlw-someone-else")
    t.deliver(foreign, note="from a workspace not on the allowlist")


def rollout(t: Timeline) -> None:
    """Blue/green, a canary, a duplicate event, out-of-order events, tags that break the guardrails."""
    aml = t.app.stack.aml
    t.section("credit v1 registered with deploy=true endpoint=credit: blue/green onto a new endpoint")
    aml.seed_model("credit", 1, tags=CREDIT)
    t.deliver(model_registered("credit", 1))
    t.settle()
    t.traffic("credit")

    t.section("credit v2 registered with traffic=20: a canary beside v1")
    aml.seed_model("credit", 2, tags={**CREDIT, "traffic": "20"})
    v2 = model_registered("credit", 2)
    t.deliver(v2)
    t.settle()
    t.traffic("credit")

    t.section("Event Grid delivers the v2 event again (at-least-once)")
    t.deliver(v2, note="duplicate")
    print(
        f"{'':8}  deployment PUTs for credit-v2 so far: "
        f"{len(aml.requests(method='PUT', path_contains='/deployments/credit-v2'))}"
    )

    t.section("fraud v1 and v2 registered; their events arrive out of order (v2 first)")
    aml.seed_model("fraud", 1, tags=FRAUD)
    aml.seed_model("fraud", 2, tags=FRAUD)
    t.deliver(model_registered("fraud", 2))
    t.settle()
    t.deliver(model_registered("fraud", 1), note="late")
    t.settle()
    t.traffic("fraud")

    t.section("a model whose tags break the guardrails")
    aml.seed_model("fraud", 3, tags={**FRAUD, "instance_count": "40", "instance_type": "Standard_NC96ads_A100_v4"})
    t.deliver(model_registered("fraud", 3))


CHURN = {"deploy": "true", "endpoint": "churn", "instance_type": "Standard_DS2_v2"}
#: States whose rollout never created an endpoint to read traffic from.
NO_ENDPOINT = ("rejected", "planned")
LOG_LINES = 6


def failed_deployment(t: Timeline) -> None:
    """A deployment fails in Azure ML: the reconciler finds it, records why, and keeps its container logs."""
    aml = t.app.stack.aml
    t.section("churn v1's deployment fails (its container crashes while loading the model)")
    aml.seed_model("churn", 1, tags=CHURN)
    aml.end_next_operations("churn", "churn-v1", state="Failed")  # AML ends the next create of churn-v1 Failed
    t.deliver(model_registered("churn", 1, eid="evt-churn-1"))
    t.settle()
    row = t.app.rollout("churn-v1")
    print(f"{'':8}  Azure ML sends no event for a failed deployment; the reconciler saw it by polling.")
    print(f"{'':8}  the ledger row keeps the container logs; the last {LOG_LINES} lines:")
    for line in row["logs"].rstrip().splitlines()[-LOG_LINES:]:
        print(f"{'':10}| {line}")
    print(f"{'':8}  ARM writes it sent: {'; '.join(row['actions'])}")
    t.traffic("churn")


def retry_failed_rollout(t: Timeline) -> None:
    """The operator's recovery, as docs/operations.md says: find why, fix the cause, POST .../retry."""
    t.section('The operator retries churn v1 (docs/operations.md, "Retry a failed rollout")')
    print(f"{'':8}  1. why: aml-rollouts get churn churn-v1 (the reason and the container logs, above)")
    print(f"{'':8}  2. fix the cause (in Azure: the model's dependencies; here AML failed that one operation)")
    print(f"{'':8}  3. aml-rollouts retry churn churn-v1 --reason 'dependency pinned'")
    print(f'{"":8}     = POST /api/rollouts/churn/churn-v1/retry {{"reason": "dependency pinned"}}')
    t.app.stack.aml.wait_idle()  # the app deletes the failed deployment; let AML finish that first
    status, body = runner.control("churn", "churn-v1", "retry", json.dumps({"reason": "dependency pinned"}).encode())
    print(f"{t.stamp()}  POST retry -> {status}: {body.get('effect')} ({body.get('note')})")
    t.settle()
    t.traffic("churn")


def plan_mode(t: Timeline) -> None:
    """DEPLOY_MODE=plan: the app says what it would deploy and writes nothing to Azure ML."""
    aml = t.app.stack.aml
    t.section("DEPLOY_MODE=plan (the azd default): pricing v1 is planned, not deployed")
    aml.seed_model("pricing", 1, tags={"deploy": "true", "endpoint": "pricing"})
    since = time.time()
    with app_environment(t.app.stack, DEPLOY_MODE="plan"):
        t.deliver(model_registered("pricing", 1))
        runner.tick()
        t.ticks += 1
        print(f"{t.stamp()}  tick reconcile_rollouts (plan mode: nothing to advance)")
    counts = aml.request_counts(since=since)
    print(
        f"{'':8}  ARM writes in plan mode: {counts['writes']} (reads: {counts['reads']}, the model's tags); "
        f"endpoint pricing exists: {aml.endpoint_state('pricing') is not None}"
    )


#: A progressive rollout's tags: three steps, a 10-minute bake each, and the request the smoke test sends.
STEPS = {
    "traffic_steps": "10,50,100",
    "bake": "10m",
    "smoke_request": json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}}),
}
BAKE_S = 600
#: The synthetic load on the endpoint while it bakes (Azure: the endpoint's real callers).
LOAD_RPM = 300
#: A bake is judged once its last minute is complete in Azure Monitor: the bake, GATE_METRIC_LAG (2 min by
#: default), and the minute in progress.
BAKE_AND_LAG_S = BAKE_S + 2 * 60 + 61
EMULATED_TIME = (
    "Emulated time: the emulator's clock is frozen and shared with the app, and the demo moves it {minutes:g} min\n"
    "past each bake's start (the 10-minute bake, GATE_METRIC_LAG=2m, the minute in progress): no bake takes wall\n"
    "time here. The load is synthetic ({rpm} requests a minute, routed by the endpoint's traffic split); the gate\n"
    "reads it as Azure Monitor's RequestsPerMinute and RequestLatency_P99, through azure-mgmt-monitor."
)


def _hhmm(stamp: str) -> str:
    return dt.datetime.fromisoformat(stamp).strftime("%H:%M")


def _emulated(aml: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(aml.clock_now(), dt.UTC)


def _evidence(gate: dict[str, Any]) -> list[str]:
    """A gate verdict and the evidence it stored on the ledger row, in three lines."""
    e = gate["evidence"]
    window, limits = e["window"], e["thresholds"]
    new, stable = e["newDeployment"], ", ".join(e["stableDeployments"])
    p99 = e["p99Ms"]
    share = f"{e['errorSharePct']:.2f}%" if e["errorSharePct"] is not None else "n/a"
    requests = f"requests {new} {e['requests']['new']:g}"
    latency = f"P99 {new} {_ms(p99['new'])}"
    if stable:
        requests += f", {stable} {e['requests']['stable']:g}"
        latency += f" vs {stable} {_ms(p99['stable'])}"
        if e["latencyRatio"] is not None:
            latency += f" = {e['latencyRatio']:.2f}x (max {limits['maxLatencyRatio']:g}x)"
    else:
        latency += " (no stable deployment left to compare with)"
    return [
        f"gate {gate['outcome']}: {'; '.join(gate['reasons'])}",
        f"  evidence: window {_hhmm(window['start'])}-{_hhmm(window['end'])} emulated, complete minutes until "
        f"{_hhmm(window['countedUntil'])}; {requests}",
        f"  5xx share {share} (max {limits['maxErrorRatePct']:g}%); {latency}",
    ]


def _verdict(gate: dict[str, Any]) -> str:
    """A gate's verdict as the reasons and notifications quote it."""
    return f"gate {gate['outcome']}: " + "; ".join(gate["reasons"])


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _bake(t: Timeline, endpoint: str, deployment: str, on_step: Callable[[int], None] | None = None) -> None:
    """Fire the timer; at each bake's start show the traffic, then move emulated time past it and show the verdict."""
    aml, gates, shown = t.app.stack.aml, 0, None
    for _ in range(24):
        t.app.tick()
        t.ticks += 1
        print(f"{t.stamp()}  tick reconcile_rollouts   (emulated clock {_emulated(aml):%H:%M})")
        row = t.app.rollout(deployment)
        gate = row["progress"].get("gate")
        fresh = gate if gate and gate != shown else None
        t.verdict = _verdict(fresh) if fresh else ""
        t.changes()
        t.published()
        t.verdict = ""
        if fresh:
            shown = fresh
            for line in _evidence(fresh):
                print(f"{'':8}  {line}")
        if row["state"] in ("live", "rolled_back", "failed", "aborted"):
            aml.wait_idle()
            return
        if row["state"] == "baking" and row["progress"]["bakeStartedAt"]:
            t.traffic(endpoint)
            if on_step is not None:
                on_step(gates)
            gates += 1
            t.app.advance(BAKE_AND_LAG_S)
            print(f"{'':8}  ... emulated time +{BAKE_AND_LAG_S / 60:.0f} min (the bake and the metric lag)")
    raise RuntimeError(f"{endpoint}/{deployment} did not finish: {t.app.rollout(deployment)['reason']}")


def _progressive(t: Timeline, endpoint: str, on_step: Callable[[int], None] | None = None) -> dict[str, int]:
    """``endpoint`` v1 live, then v2 registered with traffic steps under load, driven to its end.

    Returns the endpoint's traffic before v2 was registered."""
    aml, tags = t.app.stack.aml, {"deploy": "true", "endpoint": endpoint}
    aml.seed_model(endpoint, 1, tags=tags)
    t.deliver(model_registered(endpoint, 1))
    t.settle()
    t.traffic(endpoint)
    before = t.app.traffic(endpoint)
    with t.app.emulated_time():
        aml.start_load(endpoint, rpm=LOAD_RPM, seed=7)
        aml.seed_model(endpoint, 2, tags={**tags, **STEPS})
        t.deliver(model_registered(endpoint, 2), note="traffic_steps=10,50,100 bake=10m smoke_request=...")
        _bake(t, endpoint, f"{endpoint}-v2", on_step)
        aml.stop_load(endpoint)
    t.traffic(endpoint)
    return before


def canary_promoted(t: Timeline) -> None:
    """A good canary: smoke test, then 10% -> 50% -> 100%, each step promoted on its metrics."""
    t.section("loans v2 with traffic_steps=10,50,100 bake=10m: a good canary, promoted on evidence")
    print(EMULATED_TIME.format(minutes=BAKE_AND_LAG_S / 60, rpm=LOAD_RPM))
    _progressive(t, "loans")


def canary_rolled_back(t: Timeline) -> None:
    """A bad canary: its 5xx share and P99 breach the gate at 10%, and traffic goes back exactly as it was."""
    aml = t.app.stack.aml
    t.section("claims v2, same tags: on its 10% step it starts failing 20% of requests, P99 900 ms")
    print(f"(emulated time as in canary_promoted: +{BAKE_AND_LAG_S / 60:.0f} min a bake, no wall time)")

    def degrade(step: int) -> None:
        if step == 0:  # the smoke test passed and 10% is live: now it goes bad
            aml.set_health("claims", "claims-v2", error_rate=20, p99_ms=900)
            print(f"{'':8}  emulator: claims-v2 now answers 20% of requests with an error, P99 900 ms")

    before = _progressive(t, "claims", degrade)
    after = t.app.traffic("claims")
    same = "exactly as before" if after == before else f"NOT as before ({before})"
    print(f"{'':8}  traffic after the automatic rollback: {_split(after)}, {same} the canary; no operator involved")


def _split(traffic: dict[str, int]) -> str:
    return ", ".join(f"{name}={pct}%" for name, pct in sorted(traffic.items())) or "none"


PROGRESSIVE_DELIVERY_SCENES: list[Callable[[Timeline], None]] = [canary_promoted, canary_rolled_back]


def close_the_loop(t: Timeline) -> None:
    """A model monitor's breach -> retraining job -> pipeline completed -> model registered -> canary."""
    aml = t.app.stack.aml
    t.section(
        "A model monitor's signal breaches its thresholds: retraining -> pipeline completes -> model registered "
        "-> canary"
    )
    aml.seed_component(
        "retrain_credit", 1, ("monitor_name", "monitor_run_id", "signal_name"), outputs={"model": "mlflow_model"}
    )
    aml.set_job_duration(0.3)
    retraining = {
        "RETRAIN_PIPELINE_COMPONENT": "retrain_credit@latest",
        "RETRAIN_COMPUTE": "cpu-cluster",
        # What the retraining run should do with its model: register it and roll it out as a 20% canary.
        "RETRAIN_JOB_TAGS": "register_model=credit,model.deploy=true,model.endpoint=credit,model.traffic=20",
    }
    step, monitor_run = "0b5e2c1a-7d4f-4e8a-9c3b-2f6d8e1a4c70", "credit-monitor-20261122-0300"
    with app_environment(t.app.stack, **retraining):
        # The evaluate step tags its run while it runs; every later status change carries the tag again.
        t.deliver(monitor_breach("credit-monitor", "credit-monitor_data_drift", step, monitor_run, status="Running"))
        t.deliver(
            monitor_breach("credit-monitor", "credit-monitor_data_drift", step, monitor_run),
            note="the same signal run, now Completed",
        )
        aml.wait_jobs()
        for event in aml.take_events():  # what Azure ML publishes: the step run's RunCompleted, then the pipeline's
            t.deliver(event, note="published by Azure ML")
        for event in aml.take_events():  # ... and the ModelRegistered of the version the app registered
            t.deliver(event, note="published by Azure ML")
        t.settle()
    t.traffic("credit")


def resync(t: Timeline) -> None:
    """A model tagged deploy=true after registration (no event) is found by the resync timer and goes live."""
    aml = t.app.stack.aml
    t.section("upsell v1 tagged deploy=true after registration (Azure ML raises no event): the hourly resync")
    aml.seed_model("upsell", 1, tags={})
    aml.set_model_tags("upsell", 1, {"deploy": "true", "endpoint": "upsell"})
    runner.resync()
    print(f"{t.stamp()}  timer resync_models")
    t.changes()
    t.settle()
    t.traffic("upsell")


def status(t: Timeline) -> None:
    """The rollout ledger, as GET /api/rollouts returns it, beside the traffic each deployment has now."""
    t.section("GET /api/rollouts (the ledger, newest first; traffic as Azure ML shows it now)")

    def traffic_of(rollout: Mapping[str, Any]) -> Mapping[str, int]:
        return t.app.traffic(rollout["endpoint"]) if rollout["state"] not in NO_ENDPOINT else {}

    for line in status_table.render(t.app.rollouts(), traffic_of, status_table.terminal_width()):
        print(line)


SCENES: list[Callable[[Timeline], None]] = [
    lifecycle,
    rollout,
    failed_deployment,
    retry_failed_rollout,
    plan_mode,
    *PROGRESSIVE_DELIVERY_SCENES,
    close_the_loop,
    resync,
    promotion,
    status,
]
#: What a scene needs to have run before it (``--only`` adds it).
REQUIRES: dict[str, tuple[str, ...]] = {"retry_failed_rollout": ("failed_deployment",)}

OPERATION_DURATION_S = 0.3
#: Azure ML's own figure: "The deployment creation can take up to 15 minutes, depending on whether the underlying
#: environment or image is being built for the first time" (learn.microsoft.com/azure/machine-learning/
#: how-to-deploy-online-endpoints); earlier revisions of the page said about 8-14 minutes.
AZURE_TIMES = (
    "Time is compressed. In Azure the reconciler's timer fires once a minute (RECONCILE_SCHEDULE 0 */1 * * * *)\n"
    'and Azure ML takes minutes to create a managed online deployment: up to about 15 (Azure ML docs, "Deploy and\n'
    'score a machine learning model by using an online endpoint"). Here every emulated endpoint or deployment\n'
    "operation takes {op:g} s, and the demo fires the timer as soon as Azure ML is idle."
)
SECRET_NAME_PARTS = ("KEY", "SECRET", "HEADER", "PASSWORD", "TOKEN", "SIGNATURE")


def masked(name: str, value: str) -> str:
    """``value`` fit to print: secrets hidden, a connection string's credentials hidden, where it points kept."""
    if any(part in name.upper() for part in SECRET_NAME_PARTS):
        return "***" if value else ""
    if ";" in value and "=" in value:
        fields = []
        for field in value.split(";"):
            key, sep, val = field.partition("=")
            hidden = any(part in key.upper() for part in SECRET_NAME_PARTS)
            fields.append(f"{key}{sep}{'***' if hidden and val else val}")
        return ";".join(fields)
    return value


def short_path(path: str) -> str:
    """An ARM path without the emulated workspace's long prefix."""
    lowered = path.lower()
    for prefix, name in ((WORKSPACE_ID, "{workspace}"), (f"/subscriptions/{SUBSCRIPTION_ID}", "{subscription}")):
        if lowered.startswith(prefix.lower()):
            return name + path[len(prefix) :]
    return path


def show_settings(env: dict[str, str]) -> None:
    print("Settings the app runs with (devkit/harness.py APP_SETTINGS over the stack's own; secrets masked):")
    for name in [*APP_SETTINGS, *sorted(set(env) - set(APP_SETTINGS) - {"NO_PROXY"}, key=str.lower)]:
        print(f"  {name:<24} {masked(name, env[name])}")


def play(t: Timeline, scene: Callable[[Timeline], None], verbose: bool) -> None:
    """Run one scene, then say what it cost in ARM requests (and, verbose, list them)."""
    since = time.time()
    scene(t)
    log = t.app.stack.aml.requests(since=since)
    writes = sum(1 for r in log if r.is_write)
    print(f"{'':8}  [{scene.__name__}: {len(log) - writes} ARM reads, {writes} ARM writes]")
    if verbose:
        for r in log:
            print(f"{'':10}{r.method:<6} {r.status}  {short_path(r.path)}")


def chosen(only: Sequence[str] | None) -> list[Callable[[Timeline], None]]:
    """The scenes to play, in the demo's order: ``only`` (and what they need), or all."""
    if not only:
        return list(SCENES)
    wanted = set(only)
    for name in only:
        wanted.update(REQUIRES.get(name, ()))
    return [scene for scene in SCENES if scene.__name__ in wanted]


def _parser() -> argparse.ArgumentParser:
    scenes = "\n".join(f"  {s.__name__:<22} {(s.__doc__ or '').strip().splitlines()[0]}" for s in SCENES)
    parser = argparse.ArgumentParser(
        prog="python -m devkit.demo",
        description=(
            "The whole flow offline: the unchanged app against local stand-ins for Azure ML, Event Grid and "
            "Storage, printed as a timeline. Stops everything it started, also on Ctrl-C."
        ),
        epilog=f"scenes, in order:\n{scenes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENE",
        choices=[s.__name__ for s in SCENES],
        help="play only this scene (repeatable; a scene's prerequisites are added)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list each scene's ARM requests")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack up after the scenes, serving the app's HTTP API as `make up` does; Ctrl-C ends",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The timeline shows every outcome; the console only needs what went wrong.
    console = logging.StreamHandler()
    console.setLevel(logging.ERROR)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    try:
        return _run(args)
    except KeyboardInterrupt as interrupt:
        # DevStack's exit (and every context above) has already run: nothing the demo started is left.
        cause = str(interrupt) or "Ctrl-C"  # DevStack turns SIGTERM into KeyboardInterrupt("signal 15")
        print(f"\nInterrupted ({cause}): stopped everything the demo started.", flush=True)
        return 130
    finally:
        logging.getLogger().removeHandler(console)


def _run(args: argparse.Namespace) -> int:
    print(
        "Starting the offline stack: AML emulator (HTTPS), managed-identity token endpoint, "
        "Event Grid sink, Azurite ...",
        flush=True,
    )
    with DevStack(operation_duration_s=OPERATION_DURATION_S) as stack, app_environment(stack):
        print(f"  ARM (AML emulator) {stack.aml.url}   Event Grid sink {stack.sink.endpoint}")
        show_settings({**stack.env, **APP_SETTINGS})
        print(AZURE_TIMES.format(op=stack.aml.operation_duration_s))
        timeline = Timeline(OfflineApp(stack))
        for scene in chosen(args.only):
            play(timeline, scene, args.verbose)
        counts = stack.aml.request_counts()
        creates = len(stack.aml.requests(method="PUT", path_contains="/deployments/"))
        print(
            f"\nARM requests in total: {counts['reads']} reads, {counts['writes']} writes; "
            f"notifications published: {len(stack.sink.events)}"
        )
        print(
            f"Timer ticks: {timeline.ticks} (in Azure {timeline.ticks} min of ticks alone); deployment PUTs: {creates} "
            f"(up to about 15 min each in Azure, {stack.aml.operation_duration_s:g} s here); "
            f"this run: {time.monotonic() - timeline.started:.1f} s"
        )
        if args.keep:
            keep(timeline)
    print("Stopped everything the demo started.")
    return 0


# ---------------------------------------------------------------------------------------------- --keep

#: An event a user (and the test) can replay into the kept stack.
REPLAY_EXAMPLE = "tests/events/model_registered.eventgrid.camel.json"


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def keep(t: Timeline) -> None:
    """Leave the stack up and serve the app's HTTP API on it, as `make up` does; print the changes until Ctrl-C."""
    from devkit import up

    stack = t.app.stack
    print("\n== The stack stays up (--keep); Ctrl-C stops it")
    print(f"  ARM (AML emulator)  {stack.aml.url}   (its state: {stack.aml.url}/_emulator/state)")
    print(f"  token endpoint      {stack.env['IDENTITY_ENDPOINT']}")
    print(f"  Event Grid sink     {stack.sink.endpoint}   ({len(stack.sink.events)} events received so far)")
    print(f"  Azurite             {masked('AzureWebJobsStorage', stack.env['AzureWebJobsStorage'])}")

    def show() -> None:
        t.changes()
        t.published(mark_states=False)  # the host's timer moves the rollouts meanwhile

    with app_environment(stack, **up.UP_SETTINGS):
        up.serve(stack, up.DEFAULT_PORT, up.TICK_S, up.TIME_LAPSE_S, up.LOAD_RPM, _pause, show)


if __name__ == "__main__":
    sys.exit(main())
