"""Tiny threaded HTTP(S) server shared by the devkit stand-ins: requests in, responses out."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

#: How long a keep-alive connection may sit idle before its handler thread gives up.
IDLE_CONNECTION_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Request:
    """One HTTP request as the stand-ins see it (headers keys are lower-cased)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    """One HTTP response; ``body`` is JSON-encoded unless it is already bytes."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        """Return the wire body and its content type."""
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_TIMEOUT_S
    # Headers and body go out in separate writes; without TCP_NODELAY the client's delayed ACK adds ~40 ms to
    # every keep-alive request (1,000 scoring calls took 46 s instead of about 2).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.server.name, format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception:
            logger.exception("%s failed on %s %s", self.server.name, request.method, request.path)
            response = Response(500, {"error": {"code": "InternalServerError", "message": "devkit bug"}})
        payload, content_type = response.encode()
        self.send_response(response.status)
        headers = {"Content-Type": content_type, **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, app: App, ssl_context: ssl.SSLContext | None, port: int = 0) -> None:
        self.name = name
        self.app = app
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow client cannot stall accept().
        with self._lock:
            self._connections.add(request)
        try:
            if self.ssl_context is not None:
                raw = request
                request = self.ssl_context.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._connections.discard(raw)
                    self._connections.add(request)
            self.finish_request(request, client_address)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as err:
            logger.debug("%s connection from %s ended: %s", self.name, client_address, err)
        finally:
            with self._lock:
                self._connections.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)


class BackgroundServer:
    """Runs an :data:`App` on 127.0.0.1 on ``port`` (default: a free one) in a background thread until :meth:`stop`."""

    def __init__(self, name: str, app: App, ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.name = name
        self._server = _Server(name, app, ssl_context, port)
        self._thread: threading.Thread | None = None
        self.port: int = self._server.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"devkit-{self.name}"
            )
            self._thread.daemon = True
            self._thread.start()
            logger.info("%s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close idle keep-alive connections and join the serving thread."""
        if self._thread is None:
            self._server.server_close()
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._thread = None
        logger.info("%s stopped", self.name)
