"""Replay Event Grid event files into the app: in-process (default), offline, or POSTed to a running Functions host.

    python -m tools.replay tests/events/run_status_changed.eventgrid.camel.json
    python -m tools.replay --offline tests/events/model_registered.*.json   # against the local emulators
    python -m tools.replay --to http://localhost:7071 my-event.json          # to `func start`
    python -m tools.replay --attach .devkit/up.json my-event.json   # to the app `make up` serves

A file holds a JSON array of events exactly as Event Grid delivers them, in either schema; a single
object (as the app logs a failed event, or one element of a dead-letter blob) is accepted too. An
invocation that raises is redelivered, as Event Grid would, up to --max-deliveries times.

In-process runs read local.settings.json "Values" as `func start` does (environment variables win).
--offline starts the dev kit and points only what must be local at it, saying so one line per setting;
then it runs the reconciler until the rollouts settle and prints their timeline. --attach delivers to the app a
running dev kit serves (`make up`, or `python -m devkit.demo --keep`), through its Event Grid webhook, after
registering the events' models in its emulator; its own timer then moves the rollouts.

Exit codes: 0 every event handled; 1 a delivery failed, was rejected, was redelivered until it gave up,
or (--offline) a rollout ended failed; 2 a bad file, setting or option (nothing was delivered).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from app.intake.outcome import OutcomeKind
from app.platform.errors import SettingsError
from app.platform.settings_reader import settings_from_env
from devkit import local_settings, runner
from devkit.delivery import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    InputError,
    attach,
    post_to_host,
    retarget,
)

EVENT_SHAPE = (
    "an event is a JSON object with eventType (Event Grid schema) or type (CloudEvents), id, subject and data; "
    "save it from the app's log line 'event={...}', a dead-letter blob, or start from tests/events/"
)
CREDENTIAL_HINT = (
    "credential: DefaultAzureCredential found no identity to sign in with. Run `az login` (your account needs "
    "AzureML Data Scientist on the workspace), or replay against the dev kit with --offline."
)
#: What --offline must point at the dev kit whatever the user's settings say, and why.
OFFLINE_REASONS = {
    "AZUREML_DEV_URL_MFE": "Azure ML calls go to the dev kit's emulator",
    "REQUESTS_CA_BUNDLE": "the emulator's TLS certificate must be trusted",
    "IDENTITY_ENDPOINT": "tokens come from the dev kit's managed-identity endpoint",
    "IDENTITY_HEADER": "tokens come from the dev kit's managed-identity endpoint",
    "AZURE_CLIENT_ID": "tokens come from the dev kit's managed-identity endpoint",
    "NOTIFY_TOPIC_ENDPOINT": "notifications go to the dev kit's Event Grid sink",
    "NOTIFY_TOPIC_KEY": "notifications go to the dev kit's Event Grid sink",
    "AML_ALLOWED_WORKSPACES": "the events are retargeted to the emulator's workspace",
    "AzureWebJobsStorage": "the rollout ledger lives in the dev kit's own Azurite",
}
#: Settings --offline blanks: they would reach a real service.
OFFLINE_BLANKED = {"NOTIFY_WEBHOOK_URL": "notifications must not reach your real webhook"}
ACTIVE_STATES = ("pending", "deploying")
HOLD_NOTE = (
    "DEPLOY_MODE=hold: the rollouts are recorded and wait; nothing is written to Azure ML until DEPLOY_MODE=apply "
    "(docs/operations.md, Kill switch)"
)


# ---------------------------------------------------------------------------------------------- event files


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of one file, checked to be events; ``InputError`` names the file, the problem and the fix."""
    where = str(path)
    file = Path(path)
    if not file.exists():
        raise InputError(f"{where}: no such file; check the path (a shell glob that matched nothing stays literal)")
    if file.is_dir():
        raise InputError(f"{where}: is a directory; name the event files in it, e.g. {where.rstrip('/')}/*.json")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: cannot be read ({err}); {EVENT_SHAPE}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{where}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); fix it"
        ) from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InputError(f"{where}: an empty array holds no event; {EVENT_SHAPE}")
    for index, item in enumerate(items):
        at = f"{where} item {index}" if isinstance(body, list) else where
        if not isinstance(item, dict):
            raise InputError(f"{at}: is a JSON {_json_type(item)}, not an event; {EVENT_SHAPE}")
        kind = item.get("eventType") or item.get("type")
        if not isinstance(kind, str) or not kind:
            raise InputError(f"{at}: not an event, it has no eventType or type; {EVENT_SHAPE}")
    return items


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------- console


def _is_credential_failure(record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[1] is not None:
        names = {cls.__name__ for cls in type(record.exc_info[1]).__mro__}
        if names & {"ClientAuthenticationError", "CredentialUnavailableError"}:
            return True
    return "failed to retrieve a token" in record.getMessage()


class Console(logging.Handler):
    """App log lines for a terminal: one line each, no tracebacks; the credential chain's failure once, with the fix.

    The dispatcher's outcome lines are left out: replay prints each event's outcome itself.
    """

    def __init__(self, stream: IO[str], level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.stream = stream
        self.credential_failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if _is_credential_failure(record):
            if not self.credential_failed:
                self.credential_failed = True
                print(CREDENTIAL_HINT, file=self.stream, flush=True)
            return
        if getattr(record, "outcome", None) is not None:
            return
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        print(f"  log {record.levelname.lower()} {record.name}: {_short(message)}", file=self.stream, flush=True)


def _short(text: str, limit: int = 300) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


@contextlib.contextmanager
def _console(level: int) -> Iterator[Console]:
    handler = Console(sys.stderr, level)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous or logging.WARNING, level))
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


# ---------------------------------------------------------------------------------------------- settings


def _settings(args: argparse.Namespace) -> None:
    """Apply local.settings.json as `func start` would, and say what was read."""
    if args.settings:
        path = Path(args.settings)
        if not path.is_file():
            raise InputError(
                f"{path}: no such settings file; check --settings, or leave it out to use {local_settings.FILE_NAME}"
            )
        applied, skipped = local_settings.apply(local_settings.read_values(path))
        loaded = local_settings.LoadedSettings(path, applied, skipped)
    else:
        loaded = local_settings.load()
    if loaded.path is None:
        print(f"settings: no {local_settings.FILE_NAME} here; using the environment only")
        return
    note = f"; the environment wins for {', '.join(loaded.skipped)}" if loaded.skipped else ""
    print(f"settings: {len(loaded.applied) + len(loaded.skipped)} values from {loaded.path}{note}", flush=True)


def offline_env(
    user: Mapping[str, str], stack_env: Mapping[str, str], label: str = "offline"
) -> tuple[dict[str, str], list[str]]:
    """The environment --offline (or --attach) applies on top of ``user``'s, and one line per setting it overrides."""
    from devkit.harness import APP_SETTINGS
    from devkit.stack import CONFLICTING_ENV

    env = {name: value for name, value in APP_SETTINGS.items() if not user.get(name)}
    env.update(stack_env)
    env.update(dict.fromkeys(OFFLINE_BLANKED, ""))
    notes = []
    for name, reason in {**OFFLINE_REASONS, **OFFLINE_BLANKED}.items():
        if user.get(name) and user[name] != env.get(name):
            notes.append(f"{label}: overriding your {name}: {reason}")
    for name in CONFLICTING_ENV:
        if user.get(name):
            notes.append(
                f"{label}: ignoring your {name}: it would keep DefaultAzureCredential from the dev kit's tokens"
            )
    mode = user.get("DEPLOY_MODE") or env.get("DEPLOY_MODE")
    if mode in ("plan", "hold"):  # an invalid mode is reported once, by check_settings
        notes.append(
            f"{label}: DEPLOY_MODE={mode} (yours): rollouts are recorded, not applied; "
            "set DEPLOY_MODE=apply to see them deploy"
        )
    return env, notes


def check_settings(environ: Mapping[str, str]) -> None:
    """The app's settings as replay will run it, checked before anything is delivered (exit 2 when invalid)."""
    try:
        settings_from_env(environ)
    except SettingsError as err:
        raise InputError(f"{err}; fix it in your settings file or environment (docs/configuration.md)") from None


# ---------------------------------------------------------------------------------------------- offline


@contextlib.contextmanager
def _offline(events: Sequence[dict[str, Any]]) -> Iterator[Any]:
    """Start the local stack, point the app at it, seed the models the ModelRegistered events name (with their tags)."""
    from app.wiring import reset_production_deps
    from devkit.harness import OfflineApp
    from devkit.stack import CONFLICTING_ENV, WORKSPACE_ID, DevStack, applied_env

    print("offline: starting the dev kit (AML emulator, token endpoint, Event Grid sink, Azurite) ...", flush=True)
    with DevStack() as stack:
        env, notes = offline_env(dict(os.environ), stack.env)
        for note in notes:
            print(note)
        with applied_env(env, unset=CONFLICTING_ENV):
            reset_production_deps()
            try:
                retarget(
                    events, WORKSPACE_ID, lambda name, version, tags: stack.aml.seed_model(name, version, tags=tags)
                )
                yield OfflineApp(stack)
            finally:
                reset_production_deps()


def settle(app: Any, started: float, max_ticks: int) -> list[dict[str, Any]]:
    """Fire the reconciler until no rollout is pending or deploying, printing each state change; the final rows."""
    seen: dict[str, tuple[str, str]] = {}

    def changes() -> list[dict[str, Any]]:
        rows = app.rollouts()
        for row in reversed(rows):  # oldest first
            key = f"{row['endpoint']}/{row['deployment']}"
            now = (row["state"], row["reason"])
            if seen.get(key) != now:
                seen[key] = now
                print(f"{time.monotonic() - started:7.2f}s  {key}: {row['state']} - {_short(row['reason'], 160)}")
        return rows

    app.stack.aml.wait_idle()
    rows = changes()
    if os.environ.get("DEPLOY_MODE") == "hold" and [r for r in rows if r["state"] in ACTIVE_STATES]:
        # Ticks would change nothing: hold writes nothing to Azure ML until the mode is apply again.
        print(HOLD_NOTE)
        return rows
    for tick in range(1, max_ticks + 1):
        if not [r for r in rows if r["state"] in ACTIVE_STATES]:
            return rows
        runner.tick()
        print(f"{time.monotonic() - started:7.2f}s  tick {tick}: reconcile_rollouts", flush=True)
        app.stack.aml.wait_idle()
        rows = changes()
    active = [f"{r['endpoint']}/{r['deployment']}" for r in rows if r["state"] in ACTIVE_STATES]
    if active:
        print(f"still in progress after {max_ticks} ticks: {', '.join(active)}; raise --max-ticks to wait longer")
    return rows


# ---------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.replay",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Exit codes: 0 handled; 1 a delivery failed or was rejected; 2 a bad file, setting or option.",
    )
    parser.add_argument("files", nargs="+", help="event files (JSON arrays as Event Grid delivers them)")
    parser.add_argument("--to", metavar="URL", help="POST to a running Functions host, e.g. http://localhost:7071")
    parser.add_argument("--key", default="", help="the host's eventgrid_extension system key (Azure only)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="run in-process against the dev kit's emulators (retargets events to its workspace)",
    )
    parser.add_argument(
        "--attach",
        metavar="FILE",
        help="deliver to the app a running dev kit serves: the attach file `make up` prints (.devkit/up.json)",
    )
    parser.add_argument("--settings", metavar="FILE", help=f"settings file instead of ./{local_settings.FILE_NAME}")
    parser.add_argument("--max-deliveries", type=int, default=3, help="bounded redelivery of a raising invocation")
    parser.add_argument("--max-ticks", type=int, default=10, help="--offline: reconciler ticks to wait for rollouts")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the app's log lines at INFO, not only problems"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        targets = [
            option for option, on in (("--to", args.to), ("--offline", args.offline), ("--attach", args.attach)) if on
        ]
        if len(targets) > 1:
            raise InputError(f"{' and '.join(targets)} exclude each other; pick one place to deliver to")
        events = [event for path in args.files for event in read_events(path)]
        if args.to:
            posted = post_to_host(args.to, events, key=args.key, max_deliveries=args.max_deliveries)
            for item in posted:
                print(item.line)
            return EXIT_OK if all(item.ok for item in posted) else EXIT_FAILED
        if args.attach:
            return attach(events, args.attach, args.max_deliveries)
        # Whatever replay sets (local settings, the dev kit's) is undone when it returns.
        with _environ_restored():
            _settings(args)
            return _deliver(events, args)
    except (InputError, local_settings.LocalSettingsError) as err:
        print(f"replay: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _deliver(events: list[dict[str, Any]], args: argparse.Namespace) -> int:
    from app.wiring import reset_production_deps

    started = time.monotonic()
    level = logging.INFO if args.verbose else logging.WARNING
    with _console(level) as console:
        reset_production_deps()
        try:
            target = _offline(events) if args.offline else contextlib.nullcontext()
            with target as app:
                check_settings(os.environ)
                deliveries = runner.deliver(events, max_attempts=args.max_deliveries)
                failed = 0
                for delivery in deliveries:
                    outcome = delivery.outcome
                    if console.credential_failed and _is_credential_text(outcome):
                        outcome = outcome.split(":", 1)[0] + ": no Azure credential (see above)"
                    bad = not delivery.acknowledged or delivery.kind in (OutcomeKind.FAILED, OutcomeKind.REJECTED)
                    failed += bad
                    tries = f" after {len(delivery.attempts)} deliveries" if len(delivery.attempts) > 1 else ""
                    gave_up = "; gave up, as Event Grid would after its retries" if not delivery.acknowledged else ""
                    print(
                        f"{delivery.event_id} {delivery.event_type.rsplit('.', 1)[-1]} {delivery.subject} -> "
                        f"{_short(outcome)}{tries}{gave_up}",
                        flush=True,
                    )
                if app is not None:
                    rows = settle(app, started, args.max_ticks)
                    for event in app.published():
                        print(f"  published {event['type']}: {event['data']['summary']}")
                    failed += sum(1 for r in rows if r["state"] == "failed")
        finally:
            reset_production_deps()
    return EXIT_FAILED if failed else EXIT_OK


def _is_credential_text(outcome: str) -> bool:
    return "failed to retrieve a token" in outcome or "CredentialUnavailable" in outcome


if __name__ == "__main__":
    sys.exit(main())
