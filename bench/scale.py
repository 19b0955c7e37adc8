"""``make bench ARGS=--scale``: a burst of ModelRegistered across ten workspaces and 300 endpoints, time-lapsed.

The dev kit's emulators run here; the app runs in Functions-like processes (``devkit/function_host.py``): one for
Event Grid's deliveries, one for the reconciler's timer and 1, 2 or 4 consuming the follow-up queue, all on the same
emulator and Azurite. Azure ML's operation times are the other rows' (endpoint 90 s, deployment 300 s, traffic 30 s)
and everything runs ``--lapse`` times faster than in Azure: the emulated clock, the operations, the follow-up
delays, the timer and the tick's budget. The app's own work does not speed up: at 20x, one wall-clock second the app
spends is 20 emulated seconds, about what ARM's latency costs a real instance (docs/development.md says more).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.scale_figures import Request, Rollout, RunFigures

ROOT = Path(__file__).parents[1]
WORKSPACES = 10
ENDPOINTS_PER_WORKSPACE = 30
#: Azure ML's operation times (seconds), as in the other rows of ``make bench``.
AML_SECONDS = {"endpoint:create": 90.0, "deployment:create": 300.0, "endpoint:update": 30.0, "deployment:delete": 60.0}
BAKE_S = 120
#: A canary's first step: its share of the traffic, in percent.
FIRST_STEP_PCT = 10
#: The mix of the burst, in turn: tags on top of deploy/endpoint, and the floor (the sum of AML's operation
#: times and bakes the rollout must wait for).
KINDS: dict[str, tuple[dict[str, str], float]] = {
    "blue/green": ({}, AML_SECONDS["deployment:create"] + AML_SECONDS["endpoint:update"]),
    "canary": (
        {"traffic_steps": f"{FIRST_STEP_PCT},50,100", "bake": f"{BAKE_S}s"},
        AML_SECONDS["deployment:create"] + 3 * (AML_SECONDS["endpoint:update"] + BAKE_S),
    ),
    "dark": ({"traffic": "0", "mirror": "10"}, AML_SECONDS["deployment:create"] + AML_SECONDS["endpoint:update"]),
}
FINAL = {"blue/green": "AmlEvents.Rollout.Live", "canary": "AmlEvents.Rollout.Live", "dark": "AmlEvents.Rollout.Dark"}
ENDED = {"AmlEvents.Rollout.Failed", "AmlEvents.Rollout.RolledBack", "AmlEvents.Rollout.Superseded"}
#: Synthetic requests a minute on each canary's endpoint, so its gates have evidence (and the gate's minimum). The
#: gate counts whole minutes inside the bake's window: a 2-minute bake that starts mid-minute counts one, so at the
#: first step (10%) a canary must get about twice the minimum in a minute, or its gate extends the bake for lack of
#: evidence (at 150 a minute, 53 of 67 canaries' first gates saw 7 to 19 requests and extended).
CANARY_RPM = 400
GATE_MIN_REQUESTS = 20


@dataclass(frozen=True)
class Target:
    """One endpoint of the fleet and the model version the burst registers for it."""

    workspace: Any  # the emulator serving its workspace
    endpoint: str
    model: str
    kind: str


def fleet(stack: Any, progress: Any) -> list[Target]:
    """Ten workspaces of one region, 30 endpoints each, every one serving v1 of its model at 100%."""
    from app.rollout.decide.model import APP_TAG, APP_TAG_VALUE
    from app.rollout.decide.naming import deployment_name

    workspaces = [stack.aml] + [stack.aml.add_workspace(f"mlw-scale-{n:02d}") for n in range(1, WORKSPACES)]
    targets: list[Target] = []
    kinds = list(KINDS)
    for e in range(ENDPOINTS_PER_WORKSPACE):
        for w, ws in enumerate(workspaces):
            n = len(targets)
            model, endpoint = f"model-{w:02d}-{e:02d}", f"ep-{w:02d}-{e:02d}"
            kind = kinds[n % len(kinds)]
            ws.seed_model(model, 1, tags={"deploy": "true", "endpoint": endpoint})
            ws.seed_model(model, 2, tags={"deploy": "true", "endpoint": endpoint, **KINDS[kind][0]})
            v1 = deployment_name(model, "1")
            body = {
                "properties": {
                    "model": f"{ws.workspace_id}/models/{model}/versions/1",
                    "instanceType": "Standard_DS3_v2",
                    "endpointComputeType": "Managed",
                },
                "tags": {APP_TAG: APP_TAG_VALUE, "model-name": model, "model-version": "1"},
                "sku": {"name": "Default", "capacity": 1},
            }
            ws.seed_endpoint(endpoint, {v1: body}, {v1: 100}, tags={APP_TAG: APP_TAG_VALUE})
            targets.append(Target(ws, endpoint, model, kind))
        if e % 10 == 9:
            progress(f"fleet: {len(targets)} endpoints in {len(workspaces)} workspaces")
    return targets


def app_settings(stack: Any, targets: list[Target], lapse: float) -> dict[str, str]:
    """The app's settings for the run: the dev kit's, every workspace allowed, Azure's times divided by ``lapse``."""
    from app.platform.settings import DEFAULT_DELAYS
    from devkit.harness import APP_SETTINGS

    workspaces = sorted({t.workspace.workspace_id for t in targets})
    return {
        **stack.env,
        **APP_SETTINGS,
        "AML_ALLOWED_WORKSPACES": ",".join(workspaces),
        # The app's defaults, on its (emulated) clock: the queue scales a message's visibility by the lapse.
        "FOLLOWUP_DELAYS": ",".join(f"{k}={v:g}" for k, v in DEFAULT_DELAYS.items()),
        "RECONCILE_BUDGET_SECONDS": f"{max(1.0, 45 / lapse):g}",
        "EVENT_BUDGET_SECONDS": f"{max(1.0, 10 / lapse):g}",
        "TICK_WAITS_FOR_FOLLOWUPS": "true",  # the queue workers run here: the production default
        "GATE_METRIC_LAG": "0s",
        "GATE_MIN_REQUESTS": str(GATE_MIN_REQUESTS),
        # The canaries are healthy; at their first step's share of CANARY_RPM a P99 is noisy, and the gate's noise is
        # not measured here.
        "GATE_MAX_LATENCY_RATIO": "3",
    }


class Host:
    """One ``devkit.function_host`` process: lines in, JSON lines out (kept), its log in a file."""

    def __init__(self, role: str, settings: Path, log_dir: Path, *args: str) -> None:
        self.role = role
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log = (log_dir / f"{role}-{id(self)}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devkit.function_host", "--settings", str(settings), "--role", role, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def drain(self) -> list[dict[str, Any]]:
        got = []
        while True:
            try:
                got.append(self.lines.get_nowait())
            except queue.Empty:
                return got

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Ask it to finish; its final figures (``{}`` if it could not say)."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.send("quit")
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        finals = [line["final"] for line in self.drain() if "final" in line]
        return finals[-1] if finals else {}


def run(stack: Any, targets: list[Target], events: int, workers: int, lapse: float, progress: Any) -> RunFigures:
    """One burst of ``events`` ModelRegistered within an emulated minute, with ``workers`` queue consumers."""
    from devkit.harness import model_registered

    chosen = targets[:events]
    aml = stack.aml
    # Azure ML's operations run on the emulated clock, which runs ``lapse`` times faster: their times are Azure's.
    aml.set_operation_durations(dict(AML_SECONDS))
    for sibling in aml._workspaces:
        sibling.set_operation_durations(dict(AML_SECONDS))
    aml.set_clock(frozen=False, rate=lapse)
    aml.set_request_limits()  # ARM's documented limits per principal, in emulated time
    aml.clear_requests()
    stack.sink.reset()
    reading = aml.clock_reading()
    settings = app_settings(stack, targets, lapse)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        path = Path(tmp) / "settings.json"
        path.write_text(json.dumps({"env": settings, "clock": reading}))
        timer_every = 60 / lapse
        hosts = [Host("events", path, Path(tmp), "--concurrency", "8")]
        hosts.append(Host("timer", path, Path(tmp), "--every", f"{timer_every:g}"))
        # host.json's queue settings, its polling interval in the run's time.
        hosts += [Host("queue", path, Path(tmp), "--lapse", f"{lapse:g}") for _ in range(workers)]
        load = 0.0
        try:
            _wait_ready(hosts, progress)
            reading = aml.clock_reading()
            rollouts = _burst(chosen, hosts[0], aml, lapse, model_registered)
            rollouts, ticks, load = _watch(stack, rollouts, hosts[1], lapse, progress, len(chosen))
            for target in chosen:
                if target.kind == "canary":
                    target.workspace.stop_load(target.endpoint)
            unfinished = _explain_unfinished(settings, rollouts, progress)
        finally:
            finals = [host.stop() for host in hosts]
            logs = {p.name: p.read_text()[-2000:] for p in Path(tmp).glob("*.log") if p.stat().st_size}
    requests = [_request(r, reading, lapse) for r in aml.requests()]
    extra = {"logs": logs, "unfinished": unfinished, "load": load, "cores": os.cpu_count()}
    return RunFigures(events, workers, rollouts, requests, ticks, finals, lapse, max(1.0, 45 / lapse), extra)


def _wait_ready(hosts: list[Host], progress: Any, timeout_s: float = 120.0) -> None:
    """Wait until every process is warm (imports, clients): a burst meets warm instances."""
    deadline = time.monotonic() + timeout_s
    for host in hosts:
        while time.monotonic() < deadline:
            try:
                if "ready" in host.lines.get(timeout=1):
                    break
            except queue.Empty as err:
                if host.process.poll() is not None:
                    ended = f"the {host.role} process ended before it was ready (its log: {host.log.name})"
                    raise RuntimeError(ended) from err
        else:
            raise TimeoutError(f"the {host.role} process was not ready within {timeout_s:.0f} s")
    progress(f"{len(hosts)} Functions processes ready: events, timer and {len(hosts) - 2} queue worker(s)")


def _explain_unfinished(settings: dict[str, str], rollouts: list[Rollout], progress: Any) -> dict[str, str]:
    """The ledger's state of each rollout that did not end (read through the status API), its reason shown."""
    unfinished = {r.deployment for r in rollouts if r.done_at is None}
    found: dict[str, str] = {}
    if not unfinished:
        return found
    from app.wiring import reset_production_deps
    from devkit import runner
    from devkit.stack import applied_env

    with applied_env(settings):
        reset_production_deps()
        try:
            params: dict[str, str] = {}
            while True:
                status, body = runner.get_status(params)
                for row in body.get("rollouts", []) if status == 200 else []:
                    if row["deployment"] in unfinished:
                        found[row["deployment"]] = row["state"]
                        if len(found) <= 5:
                            progress(f"unfinished: {row['endpoint']}/{row['deployment']} {row['state']}: "
                                     f"{row['reason']}")  # fmt: skip
                if status != 200 or not body.get("continuation"):
                    break
                params["continuation"] = body["continuation"]
        finally:
            reset_production_deps()
    return found


def _emulated(wall: float, reading: dict[str, Any], lapse: float) -> float:
    return float(reading["emulated"]) + (wall - float(reading["wall"])) * lapse


def _request(logged: Any, reading: dict[str, Any], lapse: float) -> Request:
    return Request(_emulated(logged.time, reading, lapse), logged.method, logged.path, logged.status, logged.api,
                   logged.body)  # fmt: skip


def _burst(chosen: list[Target], events_host: Host, aml: Any, lapse: float, build: Any) -> list[Rollout]:
    """Send the events over one emulated minute, each stamped with the emulated time it is raised at."""
    from app.rollout.decide.naming import deployment_name

    rollouts = []
    start = time.monotonic()
    for n, target in enumerate(chosen):
        due = start + n * (60 / lapse) / len(chosen)
        time.sleep(max(0.0, due - time.monotonic()))
        raised = aml.clock_now()
        body = build(target.model, 2, workspace_id=target.workspace.workspace_id)
        body["eventTime"] = dt.datetime.fromtimestamp(raised, dt.UTC).isoformat()
        if target.kind == "canary":  # requests for its gates, from its event on (the emulator makes them lazily)
            target.workspace.start_load(target.endpoint, rpm=CANARY_RPM, seed=n)
        events_host.send(json.dumps(body))
        floor = KINDS[target.kind][1]
        rollouts.append(Rollout(deployment_name(target.model, "2"), target.kind, floor, raised))
    return rollouts


def _watch(
    stack: Any, rollouts: list[Rollout], timer: Host, lapse: float, progress: Any, events: int
) -> tuple[list[Rollout], list[dict[str, Any]], float]:
    """Follow the notifications until every rollout ended (or the time is up): the rollouts, the ticks the timer
    reported and the machine's mean load average meanwhile."""
    by_name = {r.deployment: r for r in rollouts}
    ticks: list[dict[str, Any]] = []
    longest = max(floor for _, floor in KINDS.values())
    # Time enough for eight floors, and for a slow machine to get through a big burst (a second of wall time each).
    deadline = time.monotonic() + 8 * longest / lapse + events + 30
    shown = time.monotonic()
    reading = stack.aml.clock_reading()
    loads: list[float] = []
    while time.monotonic() < deadline:
        loads.append(os.getloadavg()[0])
        for event in stack.sink.events:
            name = str(event.get("subject", "")).rsplit("/", 1)[-1]
            rollout = by_name.get(name)
            if rollout is None or rollout.done_at is not None:
                continue
            at = _emulated(dt.datetime.fromisoformat(event["time"]).timestamp(), reading, lapse)
            if event["type"] == "AmlEvents.Rollout.Baking" and rollout.baking_from is None:
                by_name[name] = rollout = replace(rollout, baking_from=at)
            if event["type"] == FINAL[rollout.kind] or event["type"] in ENDED:
                by_name[name] = replace(rollout, done_at=at, final=event["type"].rsplit(".", 1)[-1])
        ticks += [line for line in timer.drain() if "tick" in line]
        done = sum(1 for r in by_name.values() if r.done_at is not None)
        if time.monotonic() - shown >= 10 or done == len(by_name):
            shown = time.monotonic()
            minutes = (stack.aml.clock_now() - rollouts[0].event_at) / 60
            progress(f"+{minutes:4.1f} emulated min: {done}/{len(by_name)} rollouts ended, {len(ticks)} ticks")
        if done == len(by_name):
            break
        time.sleep(0.25)
    return list(by_name.values()), ticks, sum(loads) / len(loads) if loads else 0.0


def measure(lapse: float, bursts: list[int], workers: list[int], progress: Any) -> Iterator[tuple[str, ...]]:
    """Each burst with one worker (when ``workers`` has 1), then the largest one with each other count of
    ``workers``; every run on a fresh dev kit state."""
    from bench.scale_figures import report
    from devkit.stack import DevStack

    ones = [(events, 1) for events in bursts] if 1 in workers else []
    plan = ones + [(max(bursts), n) for n in workers if n != 1]
    with DevStack(operation_duration_s=0.5) as stack:
        for events, count in plan:
            stack.reset()
            progress(f"run: {events} events, {count} worker(s): seeding {WORKSPACES * ENDPOINTS_PER_WORKSPACE} "
                     f"endpoints in {WORKSPACES} workspaces")  # fmt: skip
            targets = fleet(stack, progress)
            figures = run(stack, targets, events, count, lapse, progress)
            for name, text in figures.extra.get("logs", {}).items():
                if "Traceback" in text or "ERROR" in text:
                    progress(f"{name} reported errors; its last lines:\n{text}")
            yield from report(figures)
