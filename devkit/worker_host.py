"""A minimal stand-in for the Functions host: FunctionRpc messages to the real Python worker runtime (3.13+)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

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


# The subset of the FunctionRpc contract (azure-functions-language-worker-protobuf, FunctionRpc.proto) that
# the runtime reads and writes. Field names are the contract's; the numbering is ours, since nothing here
# is serialized. A field the runtime sets that is not listed fails loudly (protobuf rejects unknown names).
_ENUMS: dict[str, dict[str, dict[str, int]]] = {
    "StatusResult": {"Status": {"Failure": 0, "Success": 1, "Cancelled": 2}},
    "BindingInfo": {
        "Direction": {"in": 0, "out": 1, "inout": 2},
        "DataType": {"undefined": 0, "string": 1, "binary": 2, "stream": 3},
    },
    "RpcHttpCookie": {"SameSite": {"None": 0, "Lax": 1, "Strict": 2, "ExplicitNone": 3}},
    "RpcRetryOptions": {"RetryStrategy": {"exponential_backoff": 0, "fixed_delay": 1}},
    "RpcLog": {"Level": {"Trace": 0, "Debug": 1, "Information": 2, "Warning": 3, "Error": 4, "Critical": 5, "None": 6}},
}
# (name, type, oneof or "" or "repeated"); "map:T" is map<string, T>; "enum:E" an enum of the same message.
_MESSAGES: dict[str, list[tuple[str, str, str]]] = {
    "NullableString": [("value", "string", "string")],
    "NullableDouble": [("value", "double", "double")],
    "NullableBool": [("value", "bool", "bool")],
    "NullableTimestamp": [("value", ".google.protobuf.Timestamp", "timestamp")],
    "RpcException": [
        ("source", "string", ""),
        ("stack_trace", "string", ""),
        ("message", "string", ""),
        ("is_user_exception", "bool", ""),
        ("type", "string", ""),
    ],
    "StatusResult": [("status", "enum:Status", ""), ("result", "string", ""), ("exception", "RpcException", "")],
    "WorkerMetadata": [
        ("runtime_name", "string", ""),
        ("runtime_version", "string", ""),
        ("worker_version", "string", ""),
        ("worker_bitness", "string", ""),
        ("custom_properties", "map:string", ""),
    ],
    "WorkerInitRequest": [
        ("host_version", "string", ""),
        ("capabilities", "map:string", ""),
        ("worker_directory", "string", ""),
        ("function_app_directory", "string", ""),
    ],
    "WorkerInitResponse": [
        ("worker_version", "string", ""),
        ("capabilities", "map:string", ""),
        ("result", "StatusResult", ""),
        ("worker_metadata", "WorkerMetadata", ""),
    ],
    "BindingInfo": [
        ("type", "string", ""),
        ("direction", "enum:Direction", ""),
        ("data_type", "enum:DataType", ""),
        ("properties", "map:string", ""),
    ],
    "RpcRetryOptions": [
        ("max_retry_count", "int32", ""),
        ("delay_interval", ".google.protobuf.Duration", ""),
        ("minimum_interval", ".google.protobuf.Duration", ""),
        ("maximum_interval", ".google.protobuf.Duration", ""),
        ("retry_strategy", "enum:RetryStrategy", ""),
    ],
    "RpcFunctionMetadata": [
        ("name", "string", ""),
        ("directory", "string", ""),
        ("script_file", "string", ""),
        ("entry_point", "string", ""),
        ("bindings", "map:BindingInfo", ""),
        ("is_proxy", "bool", ""),
        ("status", "StatusResult", ""),
        ("language", "string", ""),
        ("raw_bindings", "string", "repeated"),
        ("function_id", "string", ""),
        ("managed_dependency_enabled", "bool", ""),
        ("retry_options", "RpcRetryOptions", ""),
        ("properties", "map:string", ""),
    ],
    "FunctionsMetadataRequest": [("function_app_directory", "string", "")],
    "FunctionMetadataResponse": [
        ("function_metadata_results", "RpcFunctionMetadata", "repeated"),
        ("result", "StatusResult", ""),
        ("use_default_metadata_indexing", "bool", ""),
    ],
    "FunctionLoadRequest": [
        ("function_id", "string", ""),
        ("metadata", "RpcFunctionMetadata", ""),
        ("managed_dependency_enabled", "bool", ""),
    ],
    "FunctionLoadResponse": [
        ("function_id", "string", ""),
        ("result", "StatusResult", ""),
        ("is_dependency_downloaded", "bool", ""),
    ],
    "CollectionString": [("string", "string", "repeated")],
    "CollectionBytes": [("bytes", "bytes", "repeated")],
    "CollectionDouble": [("double", "double", "repeated")],
    "CollectionSInt64": [("sint64", "sint64", "repeated")],
    "TypedData": [
        ("string", "string", "data"),
        ("json", "string", "data"),
        ("bytes", "bytes", "data"),
        ("stream", "bytes", "data"),
        ("http", "RpcHttp", "data"),
        ("int", "sint64", "data"),
        ("double", "double", "data"),
        ("collection_bytes", "CollectionBytes", "data"),
        ("collection_string", "CollectionString", "data"),
        ("collection_double", "CollectionDouble", "data"),
        ("collection_sint64", "CollectionSInt64", "data"),
    ],
    "RpcHttpCookie": [
        ("name", "string", ""),
        ("value", "string", ""),
        ("domain", "NullableString", ""),
        ("path", "NullableString", ""),
        ("expires", "NullableTimestamp", ""),
        ("secure", "NullableBool", ""),
        ("http_only", "NullableBool", ""),
        ("same_site", "enum:SameSite", ""),
        ("max_age", "NullableDouble", ""),
    ],
    "RpcHttp": [
        ("method", "string", ""),
        ("url", "string", ""),
        ("headers", "map:string", ""),
        ("body", "TypedData", ""),
        ("params", "map:string", ""),
        ("status_code", "string", ""),
        ("query", "map:string", ""),
        ("enable_content_negotiation", "bool", ""),
        ("rawBody", "TypedData", ""),
        ("cookies", "RpcHttpCookie", "repeated"),
    ],
    "ParameterBinding": [("name", "string", ""), ("data", "TypedData", "rpc_data")],
    "RpcTraceContext": [
        ("trace_parent", "string", ""),
        ("trace_state", "string", ""),
        ("attributes", "map:string", ""),
    ],
    "RetryContext": [("retry_count", "int32", ""), ("max_retry_count", "int32", ""), ("exception", "RpcException", "")],
    "InvocationRequest": [
        ("invocation_id", "string", ""),
        ("function_id", "string", ""),
        ("input_data", "ParameterBinding", "repeated"),
        ("trigger_metadata", "map:TypedData", ""),
        ("trace_context", "RpcTraceContext", ""),
        ("retry_context", "RetryContext", ""),
    ],
    "InvocationResponse": [
        ("invocation_id", "string", ""),
        ("output_data", "ParameterBinding", "repeated"),
        ("return_value", "TypedData", ""),
        ("result", "StatusResult", ""),
    ],
    "RpcLog": [
        ("invocation_id", "string", ""),
        ("category", "string", ""),
        ("level", "enum:Level", ""),
        ("message", "string", ""),
    ],
    "StreamingMessage": [
        ("request_id", "string", ""),
        ("worker_init_request", "WorkerInitRequest", "content"),
        ("worker_init_response", "WorkerInitResponse", "content"),
        ("functions_metadata_request", "FunctionsMetadataRequest", "content"),
        ("function_metadata_response", "FunctionMetadataResponse", "content"),
        ("function_load_request", "FunctionLoadRequest", "content"),
        ("function_load_response", "FunctionLoadResponse", "content"),
        ("invocation_request", "InvocationRequest", "content"),
        ("invocation_response", "InvocationResponse", "content"),
        ("rpc_log", "RpcLog", "content"),
    ],
}
_PACKAGE = "devkit.worker_rpc"


@functools.cache
def rpc_messages() -> SimpleNamespace:
    """The FunctionRpc message classes the runtime expects as its ``protos`` module, built at run time."""
    from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2

    fdp = descriptor_pb2.FieldDescriptorProto
    scalars = {
        "string": fdp.TYPE_STRING,
        "bytes": fdp.TYPE_BYTES,
        "bool": fdp.TYPE_BOOL,
        "int32": fdp.TYPE_INT32,
        "sint64": fdp.TYPE_SINT64,
        "double": fdp.TYPE_DOUBLE,
    }

    def set_type(field: Any, type_name: str, scope: str) -> None:
        if type_name in scalars:
            field.type = scalars[type_name]
        elif type_name.startswith("enum:"):
            field.type = fdp.TYPE_ENUM
            field.type_name = f".{_PACKAGE}.{scope}.{type_name[5:]}"
        else:
            field.type = fdp.TYPE_MESSAGE
            field.type_name = type_name if type_name.startswith(".") else f".{_PACKAGE}.{type_name}"

    file = descriptor_pb2.FileDescriptorProto(name="devkit_worker_rpc.proto", package=_PACKAGE, syntax="proto3")
    file.dependency.extend(["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"])
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for enum_name, values in _ENUMS.get(name, {}).items():
            enum = message.enum_type.add(name=enum_name)
            for label, number in values.items():
                enum.value.add(name=label, number=number)
        oneofs: list[str] = []
        for number, (field_name, type_name, group) in enumerate(fields, start=1):
            field = message.field.add(name=field_name, number=number, label=fdp.LABEL_OPTIONAL)
            if type_name.startswith("map:"):
                entry = message.nested_type.add(name="".join(p.title() for p in field_name.split("_")) + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=fdp.LABEL_OPTIONAL, type=fdp.TYPE_STRING)
                set_type(entry.field.add(name="value", number=2, label=fdp.LABEL_OPTIONAL), type_name[4:], name)
                field.label = fdp.LABEL_REPEATED
                field.type = fdp.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{name}.{entry.name}"
                continue
            set_type(field, type_name, name)
            if group == "repeated":
                field.label = fdp.LABEL_REPEATED
            elif group:
                if group not in oneofs:
                    oneofs.append(group)
                    message.oneof_decl.add(name=group)
                field.oneof_index = oneofs.index(group)
    pool = descriptor_pool.DescriptorPool()
    for known in (duration_pb2, timestamp_pb2):
        pool.AddSerializedFile(known.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return SimpleNamespace(
        **{
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES
        }
    )


# The pipe carries one serialized StreamingMessage per frame, each preceded by its length (4 bytes, big-endian).
_FRAME = struct.Struct(">I")
# Which runtime call answers which host message, and the StreamingMessage field the answer goes in.
_HANDLERS = {
    "worker_init_request": "worker_init_response",
    "functions_metadata_request": "function_metadata_response",
    "function_load_request": "function_load_response",
    "invocation_request": "invocation_response",
}
_LOG_LEVELS = (
    (logging.CRITICAL, "Critical"),
    (logging.ERROR, "Error"),
    (logging.WARNING, "Warning"),
    (logging.INFO, "Information"),
    (logging.DEBUG, "Debug"),
)


def _write_frame(stream: IO[bytes], message: Any) -> None:
    data = message.SerializeToString()
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes], message_class: Any) -> Any | None:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    return message_class.FromString(stream.read(size))


@dataclass
class _WorkerRequest:
    """What the proxy worker hands the runtime: the message's name, the message, and the host's properties."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class _RpcLogHandler(logging.Handler):
    """Sends every log record to the host as an ``RpcLog`` message, tagged with its invocation, as the worker does."""

    def __init__(self, send: Any, protos: SimpleNamespace) -> None:
        super().__init__(logging.DEBUG)
        self.send = send
        self.protos = protos

    def emit(self, record: logging.LogRecord) -> None:
        from azure_functions_runtime import invocation_id_cv

        level = next((name for number, name in _LOG_LEVELS if record.levelno >= number), "Trace")
        log = self.protos.RpcLog(
            invocation_id=invocation_id_cv.get() or "",
            category=record.name,
            level=getattr(self.protos.RpcLog, level),
            message=record.getMessage(),
        )
        self.send(self.protos.StreamingMessage(rpc_log=log))


def serve_worker(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """The worker process: hand each host message to ``azure_functions_runtime``, send back its answer."""
    import azure_functions_runtime as runtime

    protos = rpc_messages()
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            _write_frame(outbox, message)

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_RpcLogHandler(send, protos))
    loop = asyncio.new_event_loop()
    runtime.start_threadpool_executor()
    try:
        while (message := _read_frame(inbox, protos.StreamingMessage)) is not None:
            name = message.WhichOneof("content")
            if name not in _HANDLERS:
                root.error("unknown StreamingMessage content %r", name)
                continue
            request = _WorkerRequest(name, message, {"host": "127.0.0.1", "protos": protos})
            response = loop.run_until_complete(getattr(runtime, name)(request))
            send(protos.StreamingMessage(request_id=message.request_id, **{_HANDLERS[name]: response}))
    finally:
        runtime.stop_threadpool_executor()
        loop.close()


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
        while (message := _read_frame(stdout, self.protos.StreamingMessage)) is not None:
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
        _write_frame(self._process.stdin, self.protos.StreamingMessage(request_id=request_id, **{name: content}))
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
        return getattr(answer, _HANDLERS[name])

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
