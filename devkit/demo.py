"""``make demo``: the whole flow offline, printed as a timeline of what the app did and published."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit import runner
from devkit.harness import OfflineApp, app_environment, model_registered, monitor_breach
from devkit.stack import WORKSPACE_ID, DevStack

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
                print(f"{'':8}  {rollout['endpoint']}/{key}: {rollout['state']} - {rollout['reason']}")

    def published(self) -> None:
        events = self.app.published()
        for event in events[self.seen :]:
            print(f"{'':8}  published {event['type']}: {event['data']['summary']}")
        self.seen = len(events)
        for rollout in self.app.rollouts():
            self.states[rollout["deployment"]] = (rollout["state"], rollout["reason"])

    def traffic(self, endpoint: str) -> None:
        shares = ", ".join(f"{name}={pct}%" for name, pct in sorted(self.app.traffic(endpoint).items()))
        print(f"{'':8}  endpoint {endpoint} traffic: {shares}")


def _fixture(name: str) -> dict[str, Any]:
    event = runner.load_events(EVENTS / name)[0]
    event["topic" if "topic" in event else "source"] = WORKSPACE_ID
    return event


def lifecycle(t: Timeline) -> None:
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


def close_the_loop(t: Timeline) -> None:
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
    aml = t.app.stack.aml
    t.section("churn v1 tagged deploy=true after registration (Azure ML raises no event): the hourly resync")
    aml.seed_model("churn", 1, tags={})
    aml.set_model_tags("churn", 1, {"deploy": "true", "endpoint": "churn"})
    runner.resync()
    print(f"{t.stamp()}  timer resync_models")
    t.changes()
    t.settle()
    t.traffic("churn")


def status(t: Timeline) -> None:
    t.section("GET /api/rollouts (the ledger, newest first)")
    rows = t.app.rollouts()
    print(f"{'endpoint':<9} {'deployment':<11} {'model':<10} {'state':<11} {'traffic':<8} reason")
    for r in rows:
        share = t.app.traffic(r["endpoint"]).get(r["deployment"], 0) if r["state"] != "rejected" else 0
        print(
            f"{r['endpoint']:<9} {r['deployment']:<11} {r['model'] + ':' + r['version']:<10} {r['state']:<11} "
            f"{str(share) + '%':<8} {r['reason'][:70]}"
        )


SCENES: list[Callable[[Timeline], None]] = [lifecycle, rollout, close_the_loop, resync, status]


def main() -> int:
    # The timeline shows every outcome; the console only needs what went wrong.
    console = logging.StreamHandler()
    console.setLevel(logging.ERROR)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    print(
        "Starting the offline stack: AML emulator (HTTPS), managed-identity token endpoint, "
        "Event Grid sink, Azurite ..."
    )
    with DevStack(operation_duration_s=0.3) as stack, app_environment(stack):
        print(f"  ARM (AML emulator) {stack.aml.url}   Event Grid sink {stack.sink.endpoint}")
        timeline = Timeline(OfflineApp(stack))
        for scene in SCENES:
            scene(timeline)
        counts = stack.aml.request_counts()
        print(
            f"\nARM requests in total: {counts['reads']} reads, {counts['writes']} writes; "
            f"notifications published: {len(stack.sink.events)}"
        )
    print("Stopped everything the demo started.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
