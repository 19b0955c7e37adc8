"""One Functions instance, as a process: the unchanged app behind one trigger, on the dev kit's emulated clock.

``python -m devkit.function_host --settings FILE --role queue|timer|events`` reads the app settings and the
emulator's clock reading from ``FILE`` (JSON ``{"env": {...}, "clock": {...}}``), follows that clock (so a
time-lapsed benchmark's emulated minutes pass for the app too), and plays one role until ``quit`` (or end of input):

- ``queue``: the queue trigger of ``follow_up_rollout`` (:class:`devkit.queue_trigger.QueueTrigger`) with host.json's
  ``extensions.queues``: several such processes on one queue are the instances Flex Consumption scales out to;
- ``timer``: the reconciler's timer, every ``--every`` seconds; after each tick one JSON line with its figures;
- ``events``: Event Grid: one event (JSON) per input line, delivered to ``on_aml_event`` ``--concurrency`` at a time;
  one JSON line per event acknowledged.

At the end it prints ``{"final": ...}``: its storage transactions and conflicts, throttling, outcomes and CPU seconds.
Its own log goes to standard error, warnings and above.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: Outcome lines of the engine, the reconciler and the follow-ups, counted by what they say.
OUTCOMES = {
    "lease_contention": "another instance is advancing this endpoint",
    "lease_lost": "lease lost",
    "stale": "changed since it was read",
    "busy_409": "AML answered 409",
    "not_reached": "out of time budget; next tick",
    "fanned_out": "fanned out",
    "deferred_idle": "idle polling deferred",
    "gates_judged": " gate: gate ",
    "bakes_extended": "bake extended (",
    "gates_left_to_tick": "deferred to the tick",
    "bake_follow_ups": "(bake end ",
}
_lock = threading.Lock()
_outcomes: Counter[str] = Counter()


class _OutcomeCounter(logging.Handler):
    """Counts the app's outcome lines (INFO and above) by :data:`OUTCOMES`."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        with _lock:
            for name, marker in OUTCOMES.items():
                _outcomes[name] += text.count(marker)


def _print(payload: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()


def _final(extra: dict[str, Any]) -> dict[str, Any]:
    import importlib

    from app.azure.tables import TableStore

    # The gate and the conflict counter are recent: a host over an older app (a "before" measurement) has neither.
    try:
        gate = importlib.import_module("app.azure.throttle").GATE
    except ImportError:
        gate = None
    return {
        "final": {
            "table_ops": sum(TableStore.operations.values()),
            "conflicts": dict(getattr(TableStore, "conflicts", {})),
            "throttled": sum(gate.throttled.values()) if gate else 0,
            "throttle_wait_s": round(sum(gate.waited_s.values()), 3) if gate else 0.0,
            "outcomes": dict(_outcomes),
            "cpu_s": round(time.process_time(), 3),
            **extra,
        }
    }


def _serve_queue(args: argparse.Namespace, stop: threading.Event) -> dict[str, Any]:
    from pathlib import Path

    from app.platform import clock
    from app.platform.errors import EventValidationError
    from app.platform.settings_reader import get_settings
    from app.rollout.decide.followup import FollowUp
    from devkit import runner
    from devkit.queue_trigger import HostQueueSettings, QueueTrigger, queue_client

    settings = get_settings()
    name, connection = settings.rollout_queue, settings.storage_connection_string
    host = HostQueueSettings.read(Path(__file__).parents[1] / "host.json")
    late: list[float] = []

    def handle(message_id: str, body: str, dequeue_count: int) -> None:
        """The host's invocation, noting first how long after it fell due the message is handled."""
        with contextlib.suppress(EventValidationError):
            seconds = FollowUp.parse(body).late_by(clock.utc_now())
            if seconds is not None:
                late.append(round(seconds, 3))
        runner.follow_up(message_id, body, dequeue_count)

    trigger = QueueTrigger(
        queue_client(connection, name),
        lambda: queue_client(connection, f"{name}-poison"),
        handle,
        batch_size=host.batch_size,
        new_batch_threshold=host.new_batch_threshold,
        max_dequeue=host.max_dequeue,
        max_polling_s=host.max_polling_s / args.lapse,
    )
    trigger.serve(stop)
    return {"trigger": trigger.stats.as_dict(), "followups_late_s": late}


def _serve_timer(args: argparse.Namespace, stop: threading.Event) -> dict[str, Any]:
    from app.azure.tables import TableStore
    from app.rollout.run.reconcile import reconcile
    from app.wiring import production_deps

    ticks = 0
    next_at = time.monotonic() + args.every
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        before, started = sum(TableStore.operations.values()), time.monotonic()
        with _lock:
            counted = Counter(_outcomes)
        lines = reconcile(production_deps())  # what reconcile_rollouts runs, its figures kept
        ticks += 1
        with _lock:
            delta = {k: _outcomes[k] - counted[k] for k in ("not_reached", "fanned_out", "deferred_idle")}
        _print(
            {
                "tick": ticks,
                "wall_s": round(time.monotonic() - started, 3),
                "table_ops": sum(TableStore.operations.values()) - before,
                "lines": len(lines),
                **delta,
            }
        )
        # As the host's timer: a run that outlasts the period does not overlap the next; the missed ones are skipped.
        while next_at <= time.monotonic():
            next_at += args.every
    return {"ticks": ticks}


def _serve_events(args: argparse.Namespace, stop: threading.Event) -> dict[str, Any]:
    from devkit import runner

    def deliver(body: dict[str, Any]) -> None:
        started = time.time()
        try:
            [delivery] = runner.deliver([body])
        except Exception as err:  # the dev kit's own failure, not the app's: say so rather than lose the event
            logging.getLogger(__name__).exception("event %s not delivered", body.get("id"))
            _print({"event": body.get("id"), "started": started, "acked": None, "outcome": f"not delivered: {err}"})
            return
        _print({"event": delivery.event_id, "started": started, "acked": time.time(), "outcome": delivery.outcome})

    with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="event-grid") as pool:
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            if line.strip():
                pool.submit(deliver, json.loads(line))
    stop.set()
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.function_host", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="JSON file: {'env': app settings, 'clock': reading}")
    parser.add_argument("--role", required=True, choices=("queue", "timer", "events"))
    lapse = "queue: emulated seconds per wall-clock second (divides host.json's maxPollingInterval)"
    parser.add_argument("--lapse", type=float, default=1.0, help=lapse)
    parser.add_argument("--every", type=float, default=60.0, help="timer: seconds between ticks")
    parser.add_argument("--concurrency", type=int, default=8, help="events: deliveries at once")
    args = parser.parse_args(argv)
    with open(args.settings, encoding="utf-8") as handle:
        settings = json.load(handle)

    from app.platform import clock
    from devkit.aml_emulator.traffic import follow_reading
    from devkit.stack import applied_env

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"[{args.role}] %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    root.addHandler(_OutcomeCounter(logging.INFO))
    reading = settings["clock"]
    stop = threading.Event()
    with (
        applied_env(settings["env"]),
        clock.following(
            lambda: dt.datetime.fromtimestamp(follow_reading(reading), dt.UTC),
            rate=1.0 if reading.get("frozen") else float(reading["rate"]),
        ),
    ):
        _warm_up()
        warm_cpu = time.process_time()
        _print({"ready": args.role})
        if args.role != "events":
            threading.Thread(target=_stop_on_quit, args=(stop,), daemon=True).start()
        serve = {"queue": _serve_queue, "timer": _serve_timer, "events": _serve_events}[args.role]
        extra = serve(args, stop)
    _print(_final({**extra, "warm_cpu_s": round(warm_cpu, 3)}))
    return 0


def _warm_up() -> None:
    """What a warm instance has done already: the function index, the settings and clients, the heavy imports."""
    import importlib

    from app.wiring import production_deps
    from devkit import runner

    runner.function_names()
    production_deps()
    for module in ("azure.ai.ml", "azure.mgmt.machinelearningservices", "app.rollout.run.engine"):
        importlib.import_module(module)


def _stop_on_quit(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
