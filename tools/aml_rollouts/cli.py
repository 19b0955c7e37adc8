"""``aml-rollouts``: list, get, watch and steer the app's rollouts, gate CI on one, and open the dashboard.

Exit codes (documented in docs/operations.md): 0 ok / serving; 1 ended without serving; 2 still in progress;
3 bad usage; 4 unreachable; 5 credentials refused; 6 not found; 7 the action does not apply (409); 8 app error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from rich.console import Console

from aml_rollouts import __version__, follow, render
from aml_rollouts.client import ApiClient
from aml_rollouts.connection import KEY_ENV, SCOPE_ENV, URL_ENV, environ, resolve
from aml_rollouts.errors import CliError, Exit
from aml_rollouts.states import ACTIONS, STATES

PROG = "aml-rollouts"
OBSERVE_HELP = "read the traffic from Azure ML now, not as the last tick saw it (shows drift)"
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
EPILOG = (
    f"Connection: --url or {URL_ENV}, the function key in {KEY_ENV} (never a flag); --auth entra adds an Entra ID "
    f"token for --scope / {SCOPE_ENV}. With neither, the dev kit `make up` started. Exit codes: 0 ok or serving, "
    "1 ended without serving, 2 still in progress, 3 bad usage, 4 unreachable, 5 credentials refused, 6 not found, "
    "7 the action does not apply (409), 8 app error."
)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line with the fix, and exit 3 (2 means "still in progress" to ``status``)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(Exit.USAGE, f"{self.prog}: {message}; see {self.prog} --help")


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h30m`` → seconds."""
    raw = text.strip().lower()
    if raw.replace(".", "", 1).isdigit():
        return float(raw)
    match = DURATION.match(raw)
    if not raw or not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _common(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Connection and output options, accepted before and after the command (the command's win)."""
    keep: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("--url", help=f"the app's base URL (default: ${URL_ENV}, else the dev kit)", **keep)
    parser.add_argument(
        "--auth",
        choices=("key", "entra"),
        help=f"key: ${KEY_ENV} only; entra: also an Entra ID token",
        **({"default": "key"} if defaults else keep),
    )
    parser.add_argument("--scope", help=f"--auth entra: the app's scope (default: ${SCOPE_ENV})", **keep)
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        help="human tables (default) or JSON for scripts",
        **({"default": "table"} if defaults else keep),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=(__doc__ or "").splitlines()[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)
    common = _Parser(add_help=False)
    _common(common, defaults=False)

    listing = commands.add_parser("list", parents=[common], help="rollouts, newest first, filtered and paged")
    listing.add_argument("--endpoint", default="")
    listing.add_argument("--model", default="")
    listing.add_argument("--state", default="", help=f"one of {', '.join(STATES)}")
    listing.add_argument("--limit", type=int, default=50, help="rollouts per page, 1-500 (default 50)")
    listing.add_argument("--continuation", default="", help="the token the previous page printed")
    listing.add_argument("--all", action="store_true", help="follow every page to the end")
    listing.add_argument("--observe", action="store_true", help=OBSERVE_HELP)

    def one(name: str, summary: str, *, deployment_required: bool = False) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=[common], help=summary, description=summary)
        command.add_argument("endpoint", metavar="ENDPOINT")
        if deployment_required:
            command.add_argument("deployment", metavar="DEPLOYMENT")
        else:
            command.add_argument("deployment", metavar="DEPLOYMENT", nargs="?", help="default: the newest rollout")
        return command

    one("get", "one rollout: plan, state, step, split, gate evidence, next decision, history").add_argument(
        "--observe", action="store_true", help=OBSERVE_HELP
    )
    for name, wait_help in (
        ("watch", "redraw as the rollout moves; exits when it ends"),
        ("status", "exit 0 serving, 1 ended without serving, 2 still in progress"),
    ):
        command = one(name, wait_help)
        command.add_argument("--interval", type=duration, default=5.0, help="between two looks (default 5s)")
        command.add_argument(
            "--timeout",
            type=duration,
            default=None if name == "watch" else 1800.0,
            help="stop waiting after this long" + ("" if name == "watch" else " (default 30m)"),
        )
        if name == "status":
            command.add_argument("--no-wait", action="store_true", help="answer now; 2 while still in progress")
    for action in ACTIONS:
        command = one(action.name, action.summary, deployment_required=True)
        command.add_argument("--reason", default="", help="recorded in the rollout's history with who did it")

    board = commands.add_parser("dashboard", parents=[common], help="a read-only web page on 127.0.0.1")
    board.add_argument("--port", type=int, default=0, help="default: a free port")
    board.add_argument("--allow-actions", action="store_true", help="show action buttons (each asks a reason)")
    board.add_argument("--interval", type=duration, default=5.0, help="how often the page refreshes (default 5s)")
    board.add_argument("--no-browser", action="store_true", help="only print the URL")
    return parser


Handler = Callable[[argparse.Namespace, ApiClient, Console], Exit]


def cmd_list(args: argparse.Namespace, client: ApiClient, out: Console) -> Exit:
    filters = {"endpoint": args.endpoint, "model": args.model, "state": args.state}
    query = {**filters, "observe": "true" if args.observe else ""}
    if args.all:
        pages = list(client.pages(query))
        body = {
            "count": sum(p["count"] for p in pages),
            "rollouts": [r for p in pages for r in p["rollouts"]],
            "endpoints": [e for p in pages for e in p.get("endpoints") or []],
            "continuation": None,
        }
    else:
        body = client.page(query, args.limit, args.continuation)
    if args.output == "json":
        out.print_json(json.dumps(body))
        return Exit.OK
    if not body["rollouts"]:
        out.print("no rollouts" + (" match these filters" if any(filters.values()) else " yet"))
    else:
        out.print(render.list_table(body["rollouts"], body.get("endpoints") or []))
    if body.get("continuation"):
        out.print(f"more: {PROG} list --continuation {body['continuation']} (same filters), or --all", style="dim")
    return Exit.OK


def cmd_get(args: argparse.Namespace, client: ApiClient, out: Console) -> Exit:
    rollout, endpoints = client.find(args.endpoint, args.deployment, observe=args.observe)
    if args.output == "json":
        out.print_json(json.dumps({"rollout": rollout, "endpoints": endpoints}))
    else:
        out.print(render.detail(rollout, endpoints))
    return Exit.OK


def _poll(args: argparse.Namespace, client: ApiClient, sleep: Callable[[float], None] | None) -> follow.Poll:
    poll = follow.Poll(client, args.endpoint, args.deployment, args.interval, args.timeout)
    if sleep is not None:
        poll.sleep = sleep
    return poll


def cmd_action(args: argparse.Namespace, client: ApiClient, out: Console) -> Exit:
    result = client.act(args.endpoint, args.deployment, args.command, args.reason)
    if args.output == "json":
        out.print_json(json.dumps(result.__dict__))
    else:
        out.print(render.action_result(result))
    return Exit.OK


def cmd_dashboard(args: argparse.Namespace, client: ApiClient, out: Console) -> Exit:
    # The dashboard (and plotly's bundle) is loaded only for this command.
    from aml_rollouts.dashboard.server import serve

    return serve(
        client,
        port=args.port,
        allow_actions=args.allow_actions,
        refresh_s=args.interval,
        open_browser=not args.no_browser,
        out=out,
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: Console | None = None,
    err: Console | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    out = out or Console()
    err = err or Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        connection = resolve(args.url, args.auth, args.scope, environ() if env is None else env)
        client = ApiClient(connection, sleep=sleep) if sleep else ApiClient(connection)
        handlers: dict[str, Handler] = {"list": cmd_list, "get": cmd_get, "dashboard": cmd_dashboard}
        handlers.update({action.name: cmd_action for action in ACTIONS})
        if args.command == "status":
            return follow.status(
                _poll(args, client, sleep), wait=not args.no_wait, out=out, as_json=args.output == "json"
            )
        if args.command == "watch":
            return follow.watch(_poll(args, client, sleep), out=out, as_json=args.output == "json")
        return handlers[args.command](args, client, out)
    except CliError as error:
        err.print(f"{PROG}: {error.message}", markup=False, highlight=False)
        return error.code
    except KeyboardInterrupt:
        err.print(f"{PROG}: interrupted", markup=False)
        return 130
