"""``make bench``: cold import, the ack path, reconciler ticks, ARM requests per rollout, and a burst.

Figures, not pass/fail: the machine is noisy, so imports are measured as medians of fresh processes
and the rest is counted (requests, ticks) rather than timed where a count tells the truth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
#: (measure, figure, time/RSS, notes), and optionally the goal the figure misses ("" when it meets it).
Row = tuple[str, ...]
#: Column widths of the table, fixed so that each row can be printed as soon as it is measured.
WIDTHS = (68, 12, 9)
#: Goals the rows are checked against (the note under the table states them).
IMPORT_GOAL = 1.5
ACK_GOAL = 4
TICKS_GOAL = {"new endpoint": 3, "existing endpoint": 2}
IMPORT_PROBE = """
import json, resource, sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aml_loaded": "azure.ai.ml" in sys.modules}}))
"""


def cold_import(runs: int) -> Iterator[Row]:
    results: dict[str, dict[str, Any]] = {}
    for module in ("azure.functions", "function_app", "azure.ai.ml"):
        samples = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE.format(module=module)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[module] = {
            "seconds": statistics.median(s["seconds"] for s in samples),
            "rss": statistics.median(s["rss_mib"] for s in samples),
            "aml": any(s["aml_loaded"] for s in samples),
        }
        base = results["azure.functions"]
        r = results[module]
        times = r["seconds"] / base["seconds"]
        ratio = f"{times:.2f}x time, {r['rss'] / base['rss']:.2f}x RSS"
        miss = ""
        if module == "function_app":
            misses = [f"{times:.2f}x > {IMPORT_GOAL}x azure.functions"] if times > IMPORT_GOAL else []
            miss = "; ".join([*misses, *(["azure.ai.ml loaded"] if r["aml"] else [])])
        yield (
            f"import {module}",
            f"{r['seconds'] * 1000:.0f} ms",
            f"{r['rss']:.0f} MiB",
            f"{ratio}; azure.ai.ml loaded: {r['aml']}",
            miss,
        )


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = action()
    return result, time.monotonic() - start


def _one_rollout(app: Any, version: int, label: str, tags: dict[str, str], quiet_seconds: float) -> list[Row]:
    """Rows for one ModelRegistered: ARM requests on the ack path (and after it), then ticks to live."""
    from devkit.harness import model_registered

    aml = app.stack.aml
    aml.seed_model("credit", version, tags=tags)
    aml.wait_idle()
    aml.clear_requests()
    mark = time.time()
    _, ack_seconds = _timed(lambda: app.deliver(model_registered("credit", version)))
    returned = time.time()
    during = aml.request_counts(since=mark)
    note, after = "", 0
    if quiet_seconds:  # what the acknowledged event left running: counted before the ticks drive it on
        time.sleep(quiet_seconds)
        after = aml.request_counts(since=returned)["total"]
        note = f"{after} ARM requests in the {quiet_seconds:.0f} s after it returned"
    ticks = app.run_until_settled()
    total = aml.request_counts()
    ack_miss = "; ".join(
        [f"{during['total']} > {ACK_GOAL} ARM requests"] * (during["total"] > ACK_GOAL)
        + [f"{after} ARM requests after it returned"] * (after > 0)
    )
    tick_goal = TICKS_GOAL[label]
    return [
        (f"ack path, {label}", f"{during['total']} ARM requests", f"{ack_seconds * 1000:.0f} ms", note, ack_miss),
        (
            f"event to live, {label}",
            f"{ticks} ticks",
            "",
            f"{total['reads']} reads + {total['writes']} writes per rollout",
            f"{ticks} > {tick_goal} ticks" if ticks > tick_goal else "",
        ),
    ]


def rollouts(quiet_seconds: float) -> Iterator[Row]:
    from app.azure.tables import TableStore
    from devkit.harness import OfflineApp, app_environment, model_registered
    from devkit.stack import DevStack

    tags = {"deploy": "true", "endpoint": "credit"}
    with DevStack(operation_duration_s=0.2) as stack, app_environment(stack):
        app, aml = OfflineApp(stack), stack.aml
        aml.set_poll_interval(0.5)  # a leftover poller would be seen twice a second

        yield from _one_rollout(app, 1, "new endpoint", tags, quiet_seconds)
        yield from _one_rollout(app, 2, "existing endpoint", tags, 0)  # blue/green to v2

        # Nothing in flight.
        aml.clear_requests()
        app.tick()
        yield ("idle reconciler tick", f"{aml.request_counts()['total']} ARM requests", "", "")

        # Burst: 50 ModelRegistered events for 10 endpoints, 20 ms per ARM request.
        stack.reset()
        for model in range(10):
            for version in range(1, 6):
                aml.seed_model(f"burst{model}", version, tags={"deploy": "true", "endpoint": f"burst-{model}"})
        aml.set_latency(20)
        TableStore.operations.clear()
        events = [model_registered(f"burst{m}", v) for v in range(1, 6) for m in range(10)]
        start = time.monotonic()
        app.deliver(*events)
        ticks = app.run_until_settled(max_ticks=30)
        wall = time.monotonic() - start
        states: dict[str, int] = {}
        for rollout in app.rollouts():
            states[rollout["state"]] = states.get(rollout["state"], 0) + 1
        counts = aml.request_counts()
        ledger_ops = sum(TableStore.operations.values())
        yield (
            "burst: 50 events, 10 endpoints, 20 ms latency",
            f"{ticks} ticks",
            f"{wall:.1f} s",
            f"{counts['total']} ARM requests ({counts['reads']} reads, {counts['writes']} writes), "
            f"{ledger_ops} ledger ops; end states {states}",
        )
        yield from _resync(app, stack)


def _resync(app: Any, stack: Any) -> Iterator[Row]:
    """One resync run over 250 models (every fifth opted in, none in the ledger), RESYNC_MAX_MODELS=200."""
    from devkit.harness import app_environment

    stack.reset()
    aml = stack.aml
    for index in range(250):
        aml.seed_model(f"resync{index:03d}", 1, tags={"deploy": "true"} if index % 5 == 0 else {})
    aml.set_latency(0)
    with app_environment(stack, RESYNC_MAX_MODELS="200"):
        aml.clear_requests()
        _, seconds = _timed(app.resync)
        counts = aml.request_counts()
        started = len(app.rollouts())
    most = 1 + math.ceil((200 + 1) / 100) + 200  # the workspace, the container pages, one list per model
    yield (
        "resync: 250 models, RESYNC_MAX_MODELS=200",
        f"{counts['reads']} ARM reads",
        f"{seconds:.1f} s",
        f"{counts['writes']} writes; 1 workspace read + the container-list pages (100 a page) + 1 version list per "
        f"model looked at (200); "
        f"{started} rollouts started by resync",
        f"{counts['reads']} > {most} reads" if counts["reads"] > most else "",
    )


#: AML's operation times in realistic proportions (seconds): endpoint create, deployment create, traffic update.
AML_SECONDS = {"endpoint:create": 90.0, "deployment:create": 300.0, "endpoint:update": 30.0}
#: Everything in the event-to-live runs is this many times faster than in Azure, timer included.
SCALE = 20.0


def _to_live(app: Any, version: int, *, followups: bool, timer_s: float, limit_s: float = 120.0) -> tuple[float, int]:
    """Wall seconds from the ModelRegistered event to the rollout live, and the timer ticks fired meanwhile."""
    from devkit.harness import model_registered

    aml = app.stack.aml
    aml.seed_model("credit", version, tags={"deploy": "true", "endpoint": "credit"})
    start = time.monotonic()
    app.deliver(model_registered("credit", version))
    ticks, next_tick = 0, start + timer_s
    while time.monotonic() - start < limit_s:
        if followups:
            app.drain_followups()
        if time.monotonic() >= next_tick:
            app.tick(settle=False)
            ticks += 1
            next_tick += timer_s
        if app.rollout(f"credit-v{version}")["state"] == "live":
            return time.monotonic() - start, ticks
        time.sleep(0.05)
    raise TimeoutError(f"credit-v{version} not live after {limit_s} s")


def event_to_live() -> Iterator[Row]:
    """Event to live against the floor (the sum of AML's operation times), with and without follow-ups."""
    from devkit.harness import OfflineApp, app_environment
    from devkit.stack import DevStack

    scaled = {kind: seconds / SCALE for kind, seconds in AML_SECONDS.items()}
    # Follow-ups due when AML should be done: the same proportions, scaled like everything else.
    delays = (
        f"endpoint={scaled['endpoint:create']},deployment={scaled['deployment:create']},"
        f"traffic={scaled['endpoint:update']},delete=1,recheck={30 / SCALE}"
    )
    timer_s = 60.0 / SCALE
    new_floor = sum(scaled.values())
    existing_floor = scaled["deployment:create"] + scaled["endpoint:update"]
    with DevStack(operation_duration_s=0.2) as stack:
        for mode, setting in (("follow-ups + timer", delays), ("timer only", "off")):
            stack.reset()
            stack.aml.set_operation_durations(scaled)
            stack.aml.set_poll_interval(0.5)
            with app_environment(stack, FOLLOWUP_DELAYS=setting):
                app = OfflineApp(stack)
                for version, label, floor in ((1, "new endpoint", new_floor), (2, "existing endpoint", existing_floor)):
                    seconds, ticks = _to_live(app, version, followups=setting != "off", timer_s=timer_s)
                    yield (
                        f"event to live, {label}, {mode}",
                        f"{seconds:.1f} s",
                        f"{seconds / floor:.2f}x",
                        f"floor {floor:.1f} s (sum of AML times / {SCALE:.0f}); timer every {timer_s:.0f} s, "
                        f"{ticks} ticks; in Azure: {seconds * SCALE / 60:.1f} min vs {floor * SCALE / 60:.1f} min",
                    )
                stack.aml.wait_idle()


def reads_while_baking() -> Iterator[Row]:
    """ARM reads in an hour for one rollout baking: a 1-minute timer, and a 5-minute timer with follow-ups."""
    from devkit import runner
    from devkit.harness import OfflineApp, app_environment, model_registered
    from devkit.stack import WORKSPACE_ID, DevStack

    with DevStack(operation_duration_s=0.2) as stack, app_environment(stack, GATE_METRIC_LAG="0s"):
        app, aml = OfflineApp(stack), stack.aml
        aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit", "bake": "1h"})
        app.deliver(model_registered("credit", 1))
        for _ in range(10):
            app.tick()
            if app.rollout("credit-v1")["state"] == "baking":
                break
        assert app.rollout("credit-v1")["state"] == "baking", app.rollout("credit-v1")
        # An hour of ticks, fired back to back (the reads do not depend on the time between them).
        for label, ticks in (("timer every 1 min (today)", 60), ("timer every 5 min + follow-ups", 12)):
            aml.clear_requests()
            for _ in range(ticks):
                app.tick(settle=False)
            followups = 0
            if ticks == 12:
                # The bake's end, followed up once (its message was scheduled when the bake started).
                body = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "credit", "reason": "bake end"})
                runner.follow_up("bench", body, 1)
                followups = 1
            counts = aml.request_counts()
            yield (
                f"ARM reads per baking rollout per hour, {label}",
                f"{counts['reads']} reads",
                "",
                f"{ticks} ticks + {followups} follow-up; {counts['reads'] / max(ticks, 1):.1f} reads per pass, "
                f"{counts['writes']} writes",
            )


def print_row(row: Row) -> None:
    """One line of the table, flushed at once: a slow measurement must not hide the ones before it. A figure that
    misses its goal says so on the line, with the goal."""
    measure, figure, timing, notes, *goal = row
    line = f"{measure:<{WIDTHS[0]}}  {figure:<{WIDTHS[1]}}  {timing:<{WIDTHS[2]}}  {notes}".rstrip()
    missed = goal[0] if goal else ""
    print(f"{line}  [MISSES GOAL: {missed}]" if missed else line, flush=True)


def progress(message: str) -> None:
    """A progress line while a measurement runs (not a row of the table)."""
    print(f"  .. {message}", flush=True)


def _seed_history(store: Any, count: int, endpoint: str, model: str, newest: Any) -> None:
    """``count`` finished rollouts (rows and index entries, as the ledger writes them), one a minute back from
    ``newest``; loaded in batches of 100 per partition, the way a bulk import would."""

    from app.rollout.decide.model import Rollout, RolloutPlan, State
    from devkit.history import load_finished
    from devkit.stack import WORKSPACE_ID

    def finished(n: int) -> Rollout:
        created = newest - dt.timedelta(minutes=n)
        plan = RolloutPlan(
            workspace_id=WORKSPACE_ID,
            endpoint=endpoint,
            deployment=f"{model}-v{n + 1}",
            model_name=model,
            model_version=str(n + 1),
            model_type="mlflow_model",
            model_created_at="",
            instance_type="Standard_DS3_v2",
            instance_count=1,
            traffic=100,
            mirror=0,
        )
        return Rollout(plan=plan, state=State.SUPERSEDED, created_at=created, updated_at=created, reason="bench")

    shown = time.monotonic()

    def loaded(done: int, total: int) -> None:
        nonlocal shown
        if count >= 1000 and (time.monotonic() - shown > 5 or done == total):
            shown = time.monotonic()
            progress(f"history: {done:,} of {total:,} rows loaded ({count:,} rollouts with their index rows)")

    load_finished(store, (finished(n) for n in range(count)), loaded)


def history(rows: int) -> Iterator[Row]:
    """Table transactions of an idle tick, a tick advancing a rollout, and one status page, with 0 and with
    ``rows`` finished rollouts in the ledger's history. The goal: the same counts for both."""
    from app.azure.tables import TableStore
    from app.rollout.ledger.indexes import ACTIVE_INDEX_GRACE
    from app.rollout.ledger.ledger import RolloutLedger
    from app.wiring import production_deps
    from devkit.harness import OfflineApp, app_environment, model_registered
    from devkit.runner import get_status
    from devkit.stack import WORKSPACE_ID, DevStack

    def measure(action: Callable[[], Any]) -> tuple[str, str, str]:
        TableStore.operations.clear()
        TableStore.rows_read.clear()
        _, seconds = _timed(action)
        ops = sum(TableStore.operations.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(TableStore.operations.items()))
        return (
            f"{ops} Table transactions",
            f"{seconds * 1000:.0f} ms",
            f"{kinds}; {sum(TableStore.rows_read.values())} rows read",
        )

    baseline: dict[str, str] = {}

    def checked(kind: str, figure: tuple[str, str, str]) -> tuple[str, ...]:
        """The figure, and what it misses: the goal is the same Table transactions with and without history."""
        first = baseline.setdefault(kind, figure[0])
        return (*figure, "" if figure[0] == first else f"{figure[0]} with history, {first} without")

    tags = {"deploy": "true", "endpoint": "credit"}
    with DevStack(operation_duration_s=0.2) as stack, app_environment(stack):
        app, aml = OfflineApp(stack), stack.aml

        def settle() -> None:
            # From the ledger, not app.run_until_settled(): that lists every rollout, 20,000 of them here.
            ledger = RolloutLedger(production_deps().table("rollouts"))
            for _ in range(10):
                aml.wait_idle()
                if not ledger.endpoint_rollouts(WORKSPACE_ID, "credit"):
                    return
                app.tick()
            raise AssertionError("the rollout on credit did not settle in 10 ticks")

        for count in (0, rows):
            progress(f"history: {count:,} rows of history: loading, then a rollout, an idle tick and a status page")
            stack.reset()
            store = production_deps().table("rollouts")
            list(store.partition("~bench"))  # the reset dropped the table: a read through the store recreates it
            now = dt.datetime.now(dt.UTC)
            # A page's worth of recent rollouts on another endpoint, then the history behind them.
            _seed_history(store, 50, "fraud", "fraud", now - dt.timedelta(hours=1))
            _seed_history(store, count, "credit", "credithistory", now - dt.timedelta(days=30))
            label = f"{count:,} rows of history"
            aml.seed_model("credit", 1, tags=tags)
            app.deliver(model_registered("credit", 1))
            settle()
            aml.seed_model("credit", 2, tags=tags)
            app.deliver(model_registered("credit", 2))
            aml.wait_idle()
            yield (f"tick advancing a rollout, {label}", *checked("advancing", measure(app.tick)))
            settle()
            ledger = RolloutLedger(store)
            for entry in ledger.active.endpoints(now):
                ledger.active.settle(entry, entry.since + ACTIVE_INDEX_GRACE)  # the idle endpoint leaves the index
            yield (f"idle reconciler tick, {label}", *checked("idle", measure(app.tick)))
            pages: list[Any] = []
            figure = measure(lambda: pages.append(get_status({})[1]))  # noqa: B023 - called at once
            yield (f"status page (50 rollouts), {label}", *checked("status", figure))
            assert pages[0]["count"] == 50, pages


def _numbers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated whole numbers, e.g. 10,50,200") from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers of at least 1")
    return values


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks, printed as a table.")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per import measurement")
    parser.add_argument("--quiet-seconds", type=float, default=30.0, help="how long to watch after the ack path")
    parser.add_argument("--history", type=int, default=20_000, help="finished rollouts in the history rows")
    parser.add_argument("--only-history", action="store_true", help="measure the history rows only")
    parser.add_argument("--skip-followups", action="store_true", help="skip event-to-live and reads per hour")
    parser.add_argument("--only-followups", action="store_true", help="only event-to-live and reads per hour")
    scale = parser.add_argument_group("scale (--scale runs only these: 10 workspaces, 300 endpoints, time-lapsed)")
    scale.add_argument("--scale", action="store_true", help="bursts of ModelRegistered over many endpoints")
    scale.add_argument("--bursts", type=_numbers, default=[10, 50, 200], help="events per burst (default 10,50,200)")
    scale.add_argument("--workers", type=_numbers, default=[1, 2, 4],
                       help="queue worker processes: every burst with 1 (if listed), the largest with the others "
                       "(default 1,2,4)")  # fmt: skip
    scale.add_argument("--lapse", type=float, default=20.0, help="emulated seconds per wall-clock second (20)")
    args = parser.parse_args(argv)
    if args.scale and not 1 <= args.lapse <= 100:
        parser.error(f"--lapse {args.lapse}: use 1..100 (the app's own work is not sped up; see docs/development.md)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # Only real trouble reaches the console, labelled as the app's log; routine information stays out.
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("  (app log) %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    if args.scale:
        return _scale(args)
    history_rows = f"the Table cost of ticks and a status page with 0 and {args.history:,} rows of history"
    print(
        f"Measuring: {history_rows} ...\n"
        if args.only_history
        else "Measuring: event to live and ARM reads per hour with follow-ups ...\n"
        if args.only_followups
        else f"Measuring: {args.runs} fresh processes per import, then rollouts against the offline stack "
        f"(watching {args.quiet_seconds:.0f} s after the first ack), then {history_rows} ...\n",
        flush=True,
    )
    print_row(("measure", "figure", "time/RSS", "notes"))
    only = args.only_history or args.only_followups
    if not only:
        progress("cold imports")
        for row in cold_import(args.runs):
            print_row(row)
        progress("rollouts against the offline stack")
        for row in rollouts(args.quiet_seconds):
            print_row(row)
    if not args.only_followups:
        for row in history(args.history):
            print_row(row)
    if not args.skip_followups and not args.only_history:
        progress("event to live with follow-ups, then ARM reads while baking")
        for row in event_to_live():
            print_row(row)
        for row in reads_while_baking():
            print_row(row)
    print(
        f"\n(import figures are medians of {args.runs} fresh processes; goals: function_app within {IMPORT_GOAL}x of "
        f"azure.functions and azure.ai.ml not loaded; ack path <= {ACK_GOAL} ARM requests and 0 after; "
        "<= 3 ticks to live on a new endpoint, <= 2 on an existing one; resync <= 1 + pages + RESYNC_MAX_MODELS reads; "
        "the history rows: the same Table transactions with and without history; a row that misses its goal says so)"
    )
    return 0


def _scale(args: argparse.Namespace) -> int:
    from bench import scale
    from bench.scale_figures import GOAL_BAKING, GOAL_MONITOR_CUT, GOAL_P95, GOAL_READ_SHARE

    runs = len(args.bursts) * (1 in args.workers) + len([n for n in args.workers if n != 1])
    print(
        f"Measuring: {runs} runs of a ModelRegistered burst over {scale.WORKSPACES} workspaces and "
        f"{scale.WORKSPACES * scale.ENDPOINTS_PER_WORKSPACE} endpoints (a third each blue/green, canary "
        f"10/50/100% with {scale.BAKE_S} s bakes, dark); bursts {args.bursts} with 1 worker, then "
        f"{max(args.bursts)} events with {[n for n in args.workers if n != 1]} workers; {args.lapse:g}x time lapse; "
        "ARM's documented limits on ...\n",
        flush=True,
    )
    print_row(("measure", "figure", "time", "notes"))
    for row in scale.measure(args.lapse, args.bursts, args.workers, progress):
        print_row(row)
    print(
        f"\n(times are emulated, {args.lapse:g}x faster than the wall clock; floors: the sum of Azure ML's operation "
        f"times and bakes a rollout waits for; goals: p95 within {GOAL_P95}x its floor with one worker, peak ARM reads "
        f"under {GOAL_READ_SHARE:.0%} of the per-principal read limit, Azure Monitor calls "
        f"{GOAL_MONITOR_CUT:g}x fewer than reading each baking endpoint alone when {GOAL_BAKING} or more bake at "
        "once, more workers a shorter p95 with no duplicate write and no lost event)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
