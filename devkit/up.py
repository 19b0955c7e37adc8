"""``make up``: the dev kit with the app's HTTP API on localhost, until Ctrl-C, so every CLI command and runbook works.

It starts the emulators and Azurite (``DevStack``), points the unchanged app at them, serves its HTTP functions
and Event Grid webhook (``devkit.host.LocalHost``), keeps its timer and follow-up queue moving, prints the URL
and the key, and writes both to ``.devkit/up.json`` (owner-only), where ``aml-rollouts`` and
``python -m tools.replay --attach`` find them. The rollouts' changes are printed as they happen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from devkit import runner
from devkit.host import HostKeys, LocalHost

ROOT = Path(__file__).resolve().parents[1]
ATTACH = ROOT / ".devkit" / "up.json"
#: Names another attach file, for this and for aml-rollouts (two dev kits side by side, or tests).
ATTACH_ENV = "AML_ROLLOUTS_DEVKIT"
#: Where Core Tools serves (`func start`); another free port when it is taken.
DEFAULT_PORT = 7071
TICK_S = 2.0
#: Emulated seconds per timer tick: a 5-minute bake and the 2-minute metric lag pass in a few ticks.
TIME_LAPSE_S = 60.0
#: Synthetic requests a minute on each endpoint, so the metric gates have something to judge.
LOAD_RPM = 120.0
#: On top of devkit.harness.APP_SETTINGS: a gate needs fewer requests at the synthetic load's rate.
UP_SETTINGS = {"GATE_MIN_REQUESTS": "20"}
SAMPLES = ROOT / "devkit" / "samples"


class AlreadyUp(RuntimeError):
    """Another ``make up`` of this checkout is running: its attach file names a live process."""


def attach_body(stack_env: Mapping[str, str], host: LocalHost) -> dict[str, Any]:
    """The attach file: the stack's settings (``Values``, as replay --attach reads them) and the host's keys."""
    return {
        "IsEncrypted": False,
        "Values": dict(stack_env),
        "DevKit": {
            "url": host.url,
            "functionKey": host.keys.function,
            "eventGridKey": host.keys.eventgrid,
            "masterKey": host.keys.master,
            "pid": os.getpid(),
        },
    }


def attach_path() -> Path:
    return Path(os.environ.get(ATTACH_ENV) or ATTACH)


def _shown(path: Path) -> str:
    """``path`` as a user types it: relative when it is under the current folder."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def claim(path: Path) -> None:
    """Refuse when another live ``make up`` owns ``path``; a file left by a dead one is replaced."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        pid = int(json.loads(path.read_text(encoding="utf-8"))["DevKit"]["pid"])
        if pid != os.getpid() and _alive(pid):
            raise AlreadyUp(f"the dev kit is already up (pid {pid}, {path}); use it, or stop it with Ctrl-C first")
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def attach_file(path: Path, body: Mapping[str, Any]) -> Iterator[Path]:
    """Write ``body`` owner-only (it holds keys), and delete it on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    claim(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(body, out, indent=2)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def start_host(stack: Any, port: int, **options: Any) -> LocalHost:
    """A ``LocalHost`` on ``port``, or on a free port when that one is taken (said in the banner)."""
    try:
        return LocalHost(stack, port=port, **options)
    except OSError:
        if not port:
            raise
        return LocalHost(stack, port=0, **options)


def banner(host: LocalHost, attach: Path, *, time_lapse: float, load_rpm: float, out: Callable[[str], None]) -> None:
    where = _shown(attach)
    out("== The app's HTTP API is up (Ctrl-C stops everything)")
    out(f"  URL           {host.url}   (GET /api/rollouts, POST /api/rollouts/{{endpoint}}/{{deployment}}/{{action}})")
    out(f"  function key  {host.keys.function}   (header x-functions-key, or ?code=)")
    out(f"  Event Grid    {host.url}/runtime/webhooks/EventGrid?functionName={runner.EVENT_FUNCTION}")
    out(f"  attach file   {where}   (URL and keys, owner-only; read by aml-rollouts and by replay)")
    if time_lapse:
        lapse = f"the app's clock moves {time_lapse:g} s at each {host.tick_s:g}-second timer tick: bakes pass fast"
        out(f"  time lapse    {lapse}")
    if load_rpm:
        out(f"  load          {load_rpm:g} synthetic requests a minute on every endpoint, for the metric gates")
    out("Try, from another terminal in this folder:")
    out(f"  .venv/bin/python -m tools.replay --attach {where} {_shown(SAMPLES / 'credit-v1.json')}")
    out("  .venv/bin/aml-rollouts watch credit")
    out(f"  .venv/bin/python -m tools.replay --attach {where} {_shown(SAMPLES / 'credit-v2-canary.json')}")
    out("  .venv/bin/aml-rollouts dashboard")


class Changes:
    """Prints each rollout's state changes and each published notification once, as the host moves them."""

    def __init__(self, stack: Any, out: Callable[[str], None] = print) -> None:
        self.stack, self.out = stack, out
        self.seen: dict[str, tuple[str, str]] = {}
        self.published = len(stack.sink.events)
        self.started = time.monotonic()

    def show(self) -> None:
        code, body = runner.get_status({"limit": "50"})
        stamp = f"{time.monotonic() - self.started:7.1f}s"
        for row in reversed(body["rollouts"] if code == 200 else []):
            key, now = f"{row['endpoint']}/{row['deployment']}", (row["state"], row["reason"])
            if self.seen.get(key) != now:
                self.seen[key] = now
                self.out(f"{stamp}  {key}: {row['state']} - {row['reason']}")
        events = list(self.stack.sink.events)
        for event in events[self.published :]:
            self.out(f"{stamp}  published {event['type']}: {event['data']['summary']}")
        self.published = len(events)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devkit.up", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}, else a free one")
    parser.add_argument("--tick", type=float, default=TICK_S, help=f"seconds between timer ticks (default {TICK_S:g})")
    parser.add_argument(
        "--time-lapse",
        type=float,
        default=TIME_LAPSE_S,
        help=f"emulated seconds the app's clock moves at each tick (default {TIME_LAPSE_S:g}; 0: real time)",
    )
    parser.add_argument(
        "--load", type=float, default=LOAD_RPM, help=f"synthetic requests a minute per endpoint (default {LOAD_RPM:g})"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, pause: Callable[[float], None] = time.sleep) -> int:
    args = _parser().parse_args(argv)
    from devkit.harness import app_environment
    from devkit.stack import DevStack

    try:
        claim(attach_path())  # before anything starts: one dev kit per attach file
        print("Starting the dev kit: AML emulator (HTTPS), token endpoint, Event Grid sink, Azurite ...", flush=True)
        with DevStack() as stack, app_environment(stack, **UP_SETTINGS):
            serve(stack, args.port, args.tick, args.time_lapse, args.load, pause)
    except AlreadyUp as err:
        print(f"up: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"\nInterrupted ({interrupt or 'Ctrl-C'}): stopped everything `make up` started.", flush=True)
        return 130
    return 0


def serve(
    stack: Any,
    port: int,
    tick_s: float,
    time_lapse: float,
    load_rpm: float,
    pause: Callable[[float], None],
    show: Callable[[], None] | None = None,
) -> None:
    """Serve the app over HTTP for ``stack``, write the attach file, print the banner, then the changes, forever."""
    options = {"tick_s": tick_s, "emulated_s_per_tick": time_lapse, "load_rpm": load_rpm}
    with (
        start_host(stack, port, keys=HostKeys(), **options) as host,
        attach_file(attach_path(), attach_body(stack.env, host)) as attach,
    ):
        banner(host, attach, time_lapse=time_lapse, load_rpm=load_rpm, out=print)
        show = show or Changes(stack).show
        while True:
            sys.stdout.flush()
            pause(1.0)
            show()


if __name__ == "__main__":
    sys.exit(main())
