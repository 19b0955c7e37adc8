"""The dashboard's web server: 127.0.0.1 only, one random token, the app's API proxied so no key reaches the browser.

Who can open it: anyone on this machine can connect to a loopback port, so the page asks for a token that only the
terminal running ``aml-rollouts dashboard`` shows (in the printed URL). The first request trades it for an
HttpOnly, SameSite=Strict session cookie and a redirect, so it leaves the address bar; every later request needs
that cookie. Requests for another Host are refused (DNS rebinding). Actions are off unless ``--allow-actions``;
then each is a POST that also needs a custom header and a same-origin ``Origin``, so another site cannot send one.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console

from aml_rollouts.client import ApiClient
from aml_rollouts.dashboard import model
from aml_rollouts.errors import CliError, Exit
from aml_rollouts.states import ACTIONS

logger = logging.getLogger(__name__)

COOKIE = "aml_rollouts_session"
ACTION_HEADER = "X-Aml-Rollouts"
MAX_BODY = 64 * 1024
#: Rollouts the page lists: the newest, one page of the API.
LISTED = 200
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
PLOTLY = "plotly.min.js"
#: How the app's answer reaches the page: a refused action keeps its meaning; anything else is the app's failure.
UPSTREAM_STATUS = {
    Exit.CONFLICT: HTTPStatus.CONFLICT,
    Exit.NOT_FOUND: HTTPStatus.NOT_FOUND,
    Exit.USAGE: HTTPStatus.BAD_REQUEST,
}
SECURITY_HEADERS = {
    # plotly.js styles its SVG inline; nothing else is inline and nothing comes from elsewhere.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def plotly_bundle() -> bytes:
    """plotly.js as the ``plotly`` package ships it (no CDN); ``CliError`` says how to install it."""
    try:
        return resources.files("plotly").joinpath("package_data", PLOTLY).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise CliError(Exit.USAGE, "the dashboard needs plotly: pip install 'aml-rollouts[dashboard]'") from None


@dataclass
class Dashboard:
    """What the handler threads share: the API client, the token and sessions, and the gates seen so far."""

    client: ApiClient
    allow_actions: bool
    refresh_s: float
    plotly: bytes
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    sessions: set[str] = field(default_factory=set)
    gates: model.GateMemory = field(default_factory=model.GateMemory)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origins(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def open_session(self) -> str:
        session = secrets.token_urlsafe(32)
        with self.lock:
            self.sessions.add(session)
        return session

    def known(self, session: str) -> bool:
        with self.lock:
            return any(secrets.compare_digest(session, s) for s in self.sessions)

    def data(self) -> dict[str, Any]:
        body = self.client.page({}, LISTED)
        return model.page(
            body,
            self.gates,
            source=self.client.connection.url,
            allow_actions=self.allow_actions,
            refresh_s=self.refresh_s,
        )

    def act(self, request: Any) -> tuple[int, dict[str, Any]]:
        if not self.allow_actions:
            return 403, {"error": "actions are off: start the dashboard with --allow-actions"}
        names = {a.name for a in ACTIONS}
        body: dict[str, Any] = request if isinstance(request, dict) else {}
        endpoint, deployment, action, reason = (body.get(k) for k in ("endpoint", "deployment", "action", "reason"))
        if not (isinstance(endpoint, str) and endpoint and isinstance(deployment, str) and deployment):
            return 400, {"error": "send the rollout's endpoint and deployment"}
        if action not in names:
            return 400, {"error": f"action must be one of {', '.join(sorted(names))}"}
        if not isinstance(reason, str) or not reason.strip():
            return 400, {"error": "say why: a reason is recorded with every action"}
        result = self.client.act(endpoint, deployment, str(action), reason.strip())
        state = result.rollout.get("state")
        return 200, {"action": result.action, "effect": result.effect, "note": result.note, "state": state}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dashboard %s", format % args)

    @property
    def board(self) -> Dashboard:
        return self.server.board

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, "Content-Type": content_type, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _refuse(self, status: int, why: str) -> None:
        self._send(status, f"{why}\n".encode(), "text/plain; charset=utf-8")

    def _session(self) -> str:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value
        return ""

    def _allowed(self) -> bool:
        """Same host (no DNS rebinding) and a session, or the token that opens one."""
        if (self.headers.get("Host") or "") not in self.board.origins:
            self._refuse(HTTPStatus.FORBIDDEN, "wrong Host: open the URL aml-rollouts dashboard printed")
            return False
        return True

    def do_GET(self) -> None:
        if not self._allowed():
            return
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        token = (parse_qs(url.query).get("token") or [""])[0]
        if url.path == "/" and token:
            if not secrets.compare_digest(token, self.board.token):
                return self._refuse(HTTPStatus.FORBIDDEN, "wrong token: open the URL aml-rollouts dashboard printed")
            cookie = f"{COOKIE}={self.board.open_session()}; HttpOnly; SameSite=Strict; Path=/"
            return self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
        if not self.board.known(self._session()):
            return self._refuse(HTTPStatus.FORBIDDEN, "no session: open the URL aml-rollouts dashboard printed")
        if url.path == "/":
            return self._static("index.html")
        if url.path == f"/static/{PLOTLY}":
            return self._send(HTTPStatus.OK, self.board.plotly, "text/javascript", {"Cache-Control": "max-age=3600"})
        if url.path.startswith("/static/") and url.path.removeprefix("/static/") in STATIC:
            return self._static(url.path.removeprefix("/static/"))
        if url.path == "/data/rollouts":
            return self._call(self.board.data)
        return self._refuse(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        # The body is read first, whatever the answer: left unread it would be taken for the next request.
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "an action is a small JSON object")
        raw = self.rfile.read(length) if length else b""
        if not self._allowed():
            return
        origin = urlsplit(self.headers.get("Origin") or "").netloc
        if not self.board.known(self._session()) or self.headers.get(ACTION_HEADER) != "action":
            return self._refuse(HTTPStatus.FORBIDDEN, "not from the dashboard's own page")
        if origin and origin not in self.board.origins:
            return self._refuse(HTTPStatus.FORBIDDEN, "another origin may not act")
        if urlsplit(self.path).path != "/data/action":
            return self._refuse(HTTPStatus.NOT_FOUND, "not found")
        try:
            request = json.loads(raw or b"null")
        except ValueError:
            return self._json(400, {"error": "the body must be JSON"})
        self._call(lambda: self.board.act(request), pair=True)

    def _static(self, name: str) -> None:
        body = resources.files("aml_rollouts.dashboard").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, f"{STATIC[name]}; charset=utf-8")

    def _call(self, work: Callable[[], Any], pair: bool = False) -> None:
        """Run ``work`` against the app; its one-line error (and exit code) goes to the page as JSON."""
        try:
            answer = work()
        except CliError as err:
            status = UPSTREAM_STATUS.get(err.code, HTTPStatus.BAD_GATEWAY)
            return self._json(status, {"error": err.message, "code": int(err.code)})
        if pair:
            status, body = answer
            return self._json(status, body)
        return self._json(200, answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, board: Dashboard, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.board = board
        board.port = self.server_address[1]


def start(
    client: ApiClient, *, port: int = 0, allow_actions: bool = False, refresh_s: float = 5.0
) -> tuple[_Server, str]:
    """A running dashboard server (in a thread) and the URL, token included, to open it with."""
    board = Dashboard(client, allow_actions, refresh_s, plotly_bundle())
    server = _Server(board, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="dashboard").start()
    return server, f"http://127.0.0.1:{board.port}/?token={board.token}"


def serve(
    client: ApiClient, *, port: int, allow_actions: bool, refresh_s: float, open_browser: bool, out: Console
) -> Exit:
    """``aml-rollouts dashboard``: serve until Ctrl-C."""
    client.page({}, 1)  # fail now, in one line, if the app cannot be reached or refuses the key
    server, url = start(client, port=port, allow_actions=allow_actions, refresh_s=refresh_s)
    mode = "actions enabled (each asks a reason and a confirmation)" if allow_actions else "read-only"
    out.print(f"Dashboard for {client.connection.url}, {mode}:")
    out.print(f"  {url}", soft_wrap=True, highlight=False)
    out.print("Only this URL opens it: its token is the key to the page. Ctrl-C stops it.", style="dim")
    if open_browser:
        webbrowser.open(url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        out.print("dashboard stopped")
    finally:
        server.shutdown()
        server.server_close()
    return Exit.OK
