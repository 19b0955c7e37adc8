"""The proxy worker's side of the FunctionRpc contract, for the real Python worker runtime (3.13+): message classes
built at run time, length-prefixed frames over a pipe, and the loop that hands each host message to the runtime.

``python -m devkit.worker_host`` runs ``serve_worker`` in the worker process; ``devkit/worker_host.py`` is the host.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import IO, Any

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
ANSWER_FIELDS = {
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


def write_frame(stream: IO[bytes], message: Any) -> None:
    data = message.SerializeToString()
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes], message_class: Any) -> Any | None:
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
            write_frame(outbox, message)

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_RpcLogHandler(send, protos))
    loop = asyncio.new_event_loop()
    runtime.start_threadpool_executor()
    try:
        while (message := read_frame(inbox, protos.StreamingMessage)) is not None:
            name = message.WhichOneof("content")
            if name not in ANSWER_FIELDS:
                root.error("unknown StreamingMessage content %r", name)
                continue
            request = _WorkerRequest(name, message, {"host": "127.0.0.1", "protos": protos})
            response = loop.run_until_complete(getattr(runtime, name)(request))
            send(protos.StreamingMessage(request_id=message.request_id, **{ANSWER_FIELDS[name]: response}))
    finally:
        runtime.stop_threadpool_executor()
        loop.close()
