"""A recording local HTTP server for tests: keeps every POST, answers with queued statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    method: str = "POST"
    status: int = 200  # what the receiver answered


class Receiver(ThreadingHTTPServer):
    """Records POSTs; answers each with the next of ``statuses`` (then ``default_status``).

    A 3xx answer carries ``Location: /moved``; a GET (a client that followed it) is recorded and answered 200.
    """

    def __init__(self, default_status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.default_status = default_status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def bodies(self) -> list[Any]:
        return [item.body for item in self.received if item.method == "POST"]

    @property
    def accepted(self) -> list[Any]:
        """Bodies of the POSTs answered 2xx: the messages that actually arrived."""
        return [item.body for item in self.received if item.method == "POST" and 200 <= item.status < 300]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {name.lower(): value for name, value in self.headers.items()}  # HTTP names are case-insensitive
        status = self.server.statuses.pop(0) if self.server.statuses else self.server.default_status
        self.server.received.append(Received(self.path, headers, body, "POST", status))
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/moved")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(Received(self.path, headers, None, "GET", 200))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def running(default_status: int = 200) -> Iterator[Receiver]:
    server = Receiver(default_status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
