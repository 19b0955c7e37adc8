"""A minimal stand-in for the Functions host: FunctionRpc messages to the real Python worker runtime (3.13+)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.worker_rpc import ANSWER_FIELDS, read_frame, rpc_messages, serve_worker, write_frame

#: What the runtime needs and where it comes from (the lines to add to requirements for 3.13 only).
REQUIREMENTS = (
    'azure-functions-runtime>=1.3,<2; python_version >= "3.13"',
    'protobuf>=5.29,<8; python_version >= "3.13"',
)

# Why there is no gRPC here: on Python 3.13 the host starts a "proxy worker" that it ships itself (it is
# not published on PyPI); that worker owns the gRPC stream and hands each message to the runtime package
# `azure_functions_runtime` as a plain call: handler(WorkerRequest(name, StreamingMessage, {"host", "protos"})).
# The runtime package ships no compiled FunctionRpc messages: it uses whatever `protos` module it is given.
# So the worker process here (`python -m devkit.worker_host`) plays the proxy worker's part with protobuf
# classes built below, and exchanges serialized StreamingMessages with the host over a pipe instead of gRPC.


def unavailable_reason() -> str | None:
    """Why the worker runtime cannot run in this interpreter, or None when it can."""
    if sys.version_info < (3, 13):
        version = sys.version.split()[0]
        return f"the worker runtime package azure-functions-runtime needs Python >= 3.13 (this is {version})"
    missing = []
    for module, requirement in (("azure_functions_runtime", REQUIREMENTS[0]), ("google.protobuf", REQUIREMENTS[1])):
        try:
            __import__(module)
        except ImportError:
            missing.append(requirement.split(";")[0])
    if missing:
        return "not installed: " + ", ".join(missing) + " (pip install them to run the worker tests)"
    return None


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the worker reported it to the host (``RpcFunctionMetadata``)."""

    name: str
    function_id: str
    bindings: tuple[dict[str, Any], ...]
    """The raw bindings, each the function.json-style dict the host reads (type, direction, name, ...)."""

    @property
    def trigger(self) -> dict[str, Any]:
        [trigger] = [b for b in self.bindings if str(b.get("type", "")).endswith("Trigger")]
        return trigger


@dataclass(frozen=True)
class WorkerLog:
    """One ``RpcLog`` the worker sent the host."""

    invocation_id: str
    category: str
    level: str
    message: str


@dataclass(frozen=True)
class Invocation:
    """The worker's answer to one ``InvocationRequest``, with the logs the invocation wrote."""

    succeeded: bool
    error: str
    return_value: Any
    """The returned ``TypedData`` (an ``RpcHttp`` for an HTTP function), or None."""
    logs: tuple[WorkerLog, ...]

    @property
    def http_status(self) -> int:
        return int(self.return_value.http.status_code)

    @property
    def http_body(self) -> bytes:
        body = self.return_value.http.body
        return bytes(body.bytes) if body.WhichOneof("data") == "bytes" else body.string.encode()


class WorkerError(RuntimeError):
    """The worker answered a host request with a failure, died, or did not answer in time."""


class WorkerHost:
    """Plays the host's side of FunctionRpc for one function app: starts the worker, indexes, invokes."""

    def __init__(
        self,
        app_dir: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        timeout_s: float = 60.0,
        host_version: str = "4.1040.0",
    ) -> None:
        self.app_dir = str(Path(app_dir).resolve())
        self.env = dict(env or {})
        self.python = python
        self.timeout_s = timeout_s
        self.host_version = host_version
        self.capabilities: dict[str, str] = {}
        self.logs: list[WorkerLog] = []
        self._functions: dict[str, IndexedFunction] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[Any] = queue.Queue()

    def __enter__(self) -> WorkerHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def functions(self) -> Mapping[str, IndexedFunction]:
        return dict(self._functions)

    def start(self) -> None:
        """Start the worker, send ``WorkerInitRequest`` (the runtime indexes the app there), then metadata and loads."""
        reason = unavailable_reason()
        if reason:
            raise WorkerError(reason)
        self.protos = rpc_messages()
        devkit_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, **self.env}
        # The proxy worker puts the app directory on sys.path before it loads the runtime.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.app_dir, devkit_root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(
            [self.python, "-m", "devkit.worker_host"],
            cwd=self.app_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read_answers, daemon=True, name="worker-host-reader").start()
        init = self.protos.WorkerInitRequest(
            host_version=self.host_version, function_app_directory=self.app_dir, worker_directory=self.app_dir
        )
        response = self._call("worker_init_request", init)
        self._check("WorkerInitRequest", response.result)
        self.capabilities = dict(response.capabilities)
        metadata = self._call(
            "functions_metadata_request", self.protos.FunctionsMetadataRequest(function_app_directory=self.app_dir)
        )
        self._check("FunctionsMetadataRequest", metadata.result)
        for fn in metadata.function_metadata_results:
            loaded = self._call(
                "function_load_request", self.protos.FunctionLoadRequest(function_id=fn.function_id, metadata=fn)
            )
            self._check(f"FunctionLoadRequest({fn.name})", loaded.result)
            bindings = tuple(json.loads(raw) for raw in fn.raw_bindings)
            self._functions[fn.name] = IndexedFunction(name=fn.name, function_id=fn.function_id, bindings=bindings)

    def close(self) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _read_answers(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        while (message := read_frame(stdout, self.protos.StreamingMessage)) is not None:
            if message.WhichOneof("content") == "rpc_log":
                log = message.rpc_log
                level = self.protos.RpcLog.Level.Name(log.level)
                self.logs.append(WorkerLog(log.invocation_id, log.category, level, log.message))
            else:
                self._answers.put(message)
        self._answers.put(None)

    def _call(self, name: str, content: Any) -> Any:
        if self._process is None or self._process.stdin is None:
            raise WorkerError("the worker is not running: call start() first")
        request_id = uuid.uuid4().hex
        write_frame(self._process.stdin, self.protos.StreamingMessage(request_id=request_id, **{name: content}))
        try:
            answer = self._answers.get(timeout=self.timeout_s)
        except queue.Empty:
            raise WorkerError(f"the worker did not answer {name} within {self.timeout_s:g} s") from None
        if answer is None:
            self._process.wait(timeout=10)
            stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
            raise WorkerError(
                f"the worker exited ({self._process.returncode}) before answering {name}:\n{stderr[-3000:]}"
            )
        if answer.request_id != request_id:
            raise WorkerError(f"the worker answered request {answer.request_id}, expected {request_id}")
        return getattr(answer, ANSWER_FIELDS[name])

    def _check(self, what: str, result: Any) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise WorkerError(f"{what} failed: {result.exception.message}\n{result.exception.stack_trace}")

    def invoke(self, name: str, inputs: Mapping[str, Any]) -> Invocation:
        """Send one ``InvocationRequest``: ``inputs`` maps each binding name to its ``TypedData``."""
        fn = self._functions[name]
        invocation_id = str(uuid.uuid4())
        request = self.protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=fn.function_id,
            input_data=[self.protos.ParameterBinding(name=k, data=v) for k, v in inputs.items()],
        )
        response = self._call("invocation_request", request)
        ok = response.result.status == self.protos.StatusResult.Success
        return Invocation(
            succeeded=ok,
            error="" if ok else response.result.exception.message,
            return_value=response.return_value if response.HasField("return_value") else None,
            logs=tuple(log for log in self.logs if log.invocation_id == invocation_id),
        )

    def deliver_event(self, name: str, body: Mapping[str, Any]) -> Invocation:
        """Invoke an Event Grid-triggered function with one event, as the host does: the event as JSON ``TypedData``."""
        data = self.protos.TypedData(json=json.dumps(body))
        return self.invoke(name, {self._functions[name].trigger["name"]: data})

    def fire_timer(self, name: str, *, past_due: bool = False) -> Invocation:
        """Invoke a timer-triggered function with the host's TimerInfo payload."""
        info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": past_due}
        data = self.protos.TypedData(json=json.dumps(info))
        return self.invoke(name, {self._functions[name].trigger["name"]: data})

    def http(
        self,
        name: str,
        method: str,
        url: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Invocation:
        """Invoke an HTTP-triggered function with an ``RpcHttp`` request."""
        request = self.protos.RpcHttp(
            method=method,
            url=url,
            headers=dict(headers or {}),
            query=dict(query or {}),
            body=self.protos.TypedData(bytes=body),
            rawBody=self.protos.TypedData(bytes=body),
        )
        return self.invoke(name, {self._functions[name].trigger["name"]: self.protos.TypedData(http=request)})


def main() -> None:
    # Frames go out on the real stdout; anything the app prints goes to stderr instead of corrupting them.
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve_worker(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
