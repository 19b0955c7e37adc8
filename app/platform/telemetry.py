"""OpenTelemetry: set up once per process, a span per event and per tick, ARM request counts, the app's meter."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

# Nothing from opentelemetry is imported at module level: dispatch.py imports this module when
# function_app is imported, and the OpenTelemetry API and SDK are loaded on first use instead (cold start).
if TYPE_CHECKING:
    from opentelemetry.metrics import Counter
    from opentelemetry.trace import Span

    from app.platform.settings import Settings

logger = logging.getLogger(__name__)

#: The instrumentation scope of the app's spans and metrics, and its service name on the console.
SCOPE = "aml-event-handler"
#: Every span and log record is kept: the decisions the operator reads must never be sampled out. The distro's
#: own default is a rate limit of 5 traces per second (azure-monitor-opentelemetry 1.8, RateLimitedSampler).
SAMPLING_RATIO = 1.0

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
#: The tracer provider ``setup`` last saw (after installing), and the exporter it chose for it.
_state: tuple[object, str] | None = None


class EventFields(Protocol):
    """What an event span records of an event (the intake's ``Envelope`` has these)."""

    @property
    def id(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def topic(self) -> str: ...


def choose_exporter(settings: Settings, provider_installed: bool) -> str:
    """Where the telemetry goes: a pure decision from the settings and what the process already has.

    - ``existing``: an SDK provider is installed already. In Azure the Functions worker configured the Azure
      Monitor distro itself (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``); in tests, the in-memory one.
    - ``azure-monitor``: ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set and nothing configured it yet.
    - ``console``: ``TELEMETRY_CONSOLE=true``, for local runs.
    - ``off``: no-op spans and metrics, which cost next to nothing.
    """
    if provider_installed:
        return "existing"
    if settings.appinsights_connection_string:
        return "azure-monitor"
    if settings.telemetry_console:
        return "console"
    return "off"


def setup(settings: Settings) -> str:
    """Install the exporter ``choose_exporter`` names, once per process. Returns its name.

    Cheap after the first call. It runs again only if another tracer provider was installed since (a test's
    in-memory one), so that the ARM request metrics and the Azure SDK's spans reach that one too.
    """
    global _state
    from opentelemetry import trace

    with _lock:
        provider = trace.get_tracer_provider()
        if _state is None or _state[0] is not provider:
            installed = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
            exporter = choose_exporter(settings, installed)
            try:
                _install(exporter, settings)
            except Exception as err:
                # Telemetry must never stop events from being handled; the app runs on, without it.
                logger.error("telemetry: setting up %s failed, none is sent: %s: %s", exporter, type(err).__name__, err)
                exporter = "off"
            _state = (trace.get_tracer_provider(), exporter)
            logger.info("telemetry: traces and metrics go to %s", _EXPORTER_WORDS[exporter])
        return _state[1]


_EXPORTER_WORDS = {
    "existing": "the provider already installed (the Functions worker's Azure Monitor distro, or a test's)",
    "azure-monitor": "Azure Monitor (APPLICATIONINSIGHTS_CONNECTION_STRING)",
    "console": "the console (TELEMETRY_CONSOLE=true)",
    "off": "nowhere (set APPLICATIONINSIGHTS_CONNECTION_STRING, or TELEMETRY_CONSOLE=true locally)",
}


def _install(exporter: str, settings: Settings) -> None:
    if exporter == "off":
        return
    if exporter == "azure-monitor":
        # The call Azure Functions documents for Python (learn.microsoft.com/azure/azure-functions/opentelemetry-howto),
        # made at first use rather than at import, to keep the distro's ~0.6 s of imports out of cold start.
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=settings.appinsights_connection_string,
            sampling_ratio=SAMPLING_RATIO,
            span_processors=[_arm_request_metrics()],
        )
        return
    from opentelemetry import trace

    if exporter == "console":
        _install_console()
    provider = trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if callable(add):
        add(_arm_request_metrics())
    _trace_azure_sdk()


def _install_console() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create({"service.name": SCOPE})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=resource))


def _trace_azure_sdk() -> None:
    """Azure SDK calls and HTTP requests become spans (what the distro turns on with its ``azure_sdk`` option)."""
    from azure.core.settings import settings as azure_settings

    if azure_settings.tracing_implementation() is None:
        from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

        azure_settings.tracing_implementation = OpenTelemetrySpan


def _arm_request_metrics() -> Any:
    """A span processor counting ARM requests and retries from the Azure SDK's own HTTP spans."""
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.trace import SpanKind

    class ArmRequestMetrics(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
            if span.kind is not SpanKind.CLIENT or not scope.startswith("azure"):
                return
            attributes = span.attributes or {}
            url = str(attributes.get("url.full") or attributes.get("http.url") or "")
            # ARM paths start with /subscriptions/ (Tables, tokens and Event Grid topics do not).
            if not urlsplit(url).path.lower().startswith("/subscriptions/"):
                return
            method = attributes.get("http.request.method") or attributes.get("http.method") or ""
            status = attributes.get("http.response.status_code") or attributes.get("http.status_code") or 0
            labels: dict[str, str | int] = {
                "http.request.method": str(method),
                "http.response.status_code": int(str(status) or 0),
            }
            instruments = _arm_instruments()
            instruments.requests.add(1, labels)
            if attributes.get("http.request.resend_count"):
                instruments.retries.add(1, labels)

    return ArmRequestMetrics()


# ---- spans ------------------------------------------------------------------------------------------------


def tracer() -> Any:
    """The app's tracer (the OpenTelemetry API on first use)."""
    from opentelemetry import trace

    return trace.get_tracer(SCOPE)


def meter() -> Any:
    """The app's meter (the OpenTelemetry API on first use)."""
    from opentelemetry import metrics

    return metrics.get_meter(SCOPE)


@contextlib.contextmanager
def event_span(envelope: EventFields) -> Iterator[Span]:
    """One span per event: id, type, subject and workspace; the caller adds the outcome with ``set_outcome``."""
    with tracer().start_as_current_span(
        "aml_event",
        attributes={
            "aml.event.id": envelope.id,
            "aml.event.type": envelope.event_type,
            "aml.event.subject": envelope.subject,
            "aml.workspace": envelope.topic,
        },
    ) as span:
        yield span


def set_outcome(span: Span, outcome: str, kind: str) -> None:
    """The one-line account of what was done with the event, and its kind (handled, ignored, rejected ...)."""
    span.set_attribute("aml.event.outcome", outcome[:1000])
    span.set_attribute("aml.event.outcome_kind", str(kind))


@contextlib.contextmanager
def tick_span() -> Iterator[Span]:
    """One span per reconciler tick; the rollout steps it takes are its children."""
    with tracer().start_as_current_span("reconcile_tick") as span:
        yield span


def in_current_context(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run under the caller's span even in another thread (a thread pool does not carry it)."""
    from opentelemetry import context

    captured = context.get_current()

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = context.attach(captured)
        try:
            return function(*args, **kwargs)
        finally:
            context.detach(token)

    return run


# ---- metrics ----------------------------------------------------------------------------------------------


# ---- metrics ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArmInstruments:
    requests: Counter
    retries: Counter


@functools.cache
def _arm_instruments() -> _ArmInstruments:
    app_meter = meter()
    return _ArmInstruments(
        requests=app_meter.create_counter(
            "arm.requests", unit="{request}", description="HTTP requests sent to Azure Resource Manager"
        ),
        retries=app_meter.create_counter(
            "arm.retries", unit="{request}", description="ARM requests that were retries of an earlier attempt"
        ),
    )
