"""Azurite (npm, pinned in package.json) on free loopback ports, in memory and silent, for Blob/Queue/Table."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "devstoreaccount1"
#: Azurite's well-known, public development key (documented by Microsoft; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started; the message says why."""


def azurite_bin(root: Path = REPO_ROOT) -> Path:
    """Path of the Azurite launcher installed by ``npm ci``."""
    return root / "node_modules" / ".bin" / "azurite"


def ensure_installed(root: Path = REPO_ROOT) -> Path:
    """Run ``npm ci`` in ``root`` if Azurite is missing; return the launcher path."""
    launcher = azurite_bin(root)
    if launcher.exists():
        return launcher
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteError("Azurite is not installed and npm is not on PATH (install Node.js 20+ and npm)")
    logger.info("installing Azurite with npm ci in %s", root)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=root, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0 or not launcher.exists():
        raise AzuriteError(f"npm ci failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return launcher


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    """The ``AzureWebJobsStorage`` connection string for an Azurite on these ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT_NAME};"
    )


class Azurite:
    """One Azurite process on 127.0.0.1 with OS-chosen free ports (so parallel runs never collide)."""

    def __init__(self, root: Path = REPO_ROOT) -> None:
        self.root = root
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def connection_string(self) -> str:
        """Connection string with explicit Blob/Queue/Table endpoints (raises if not started)."""
        if not self._ready.is_set():
            raise AzuriteError("Azurite is not running")
        return connection_string(self.ports["blob"], self.ports["queue"], self.ports["table"])

    @property
    def env(self) -> dict[str, str]:
        """App settings that point the app's storage at this Azurite."""
        return {"AzureWebJobsStorage": self.connection_string}

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Azurite:
        """Install if needed, start, and wait until all three services listen; returns self."""
        if self._process is not None:
            return self
        launcher = ensure_installed(self.root)
        node = shutil.which("node")
        if node is None:
            raise AzuriteError("node is not on PATH (install Node.js 20+)")
        # --silent: no access-log line per request, which Azurite would format and this process read and drop
        # (measured on a loaded 2-core machine: 600 Table calls, median 2.5 s instead of 3.3 s).
        args = [
            node,
            str(launcher.resolve()),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]
        for service in ("blob", "queue", "table"):
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
        self._process = subprocess.Popen(
            args,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group, so stop() can end node and any children
            env={k: v for k, v in os.environ.items() if k != "AZURITE_ACCOUNTS"},  # only the well-known account
        )
        self._reader = threading.Thread(target=self._read_output, name="devkit-azurite-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                reason = "exited" if self._process.poll() is not None else f"not ready after {timeout_s:.0f} s"
                output = "\n".join(self._output)
                self.stop()
                raise AzuriteError(f"Azurite {reason}; its output:\n{output}")
        logger.info("Azurite listening: %s", self.ports)
        return self

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip()
            self._output.append(line)
            logger.debug("azurite: %s", line)
            match = _LISTENING.search(line)
            if match:
                self.ports[match[1].lower()] = int(match[2])
                if len(self.ports) == 3:
                    self._ready.set()

    def stop(self) -> None:
        """Terminate the process group and wait for it (kill after 5 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        self._ready.clear()
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=5)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()
        logger.info("Azurite stopped")

    def clear(self) -> None:
        """Delete every table, queue and blob container (state between tests)."""
        from azure.data.tables import TableServiceClient

        with TableServiceClient.from_connection_string(self.connection_string) as tables:
            for table in list(tables.list_tables()):
                tables.delete_table(table.name)
        from azure.storage.queue import QueueServiceClient

        with QueueServiceClient.from_connection_string(self.connection_string) as queues:
            for queue in list(queues.list_queues()):
                queues.delete_queue(queue.name)
        try:
            from azure.storage.blob import BlobServiceClient
        except ImportError:  # blob clearing is best effort: the app's own state lives in tables
            return
        with BlobServiceClient.from_connection_string(self.connection_string) as blobs:
            for container in list(blobs.list_containers()):
                blobs.delete_container(container.name)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
