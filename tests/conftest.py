"""Shared pytest configuration: the dev kit's fixtures and paths to event fixtures."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from devkit.stack import DevStack
    from tests.devkit.arm_session import ArmSession
    from tests.fakes import FakeWorld

pytest_plugins = ["devkit.pytest_plugin", "tests.fast_layer"]

EVENTS = Path(__file__).parent / "events"


@pytest.fixture
def events_dir() -> Path:
    return EVENTS


@pytest.fixture
def world() -> FakeWorld:
    """The app's dependencies, every one a fake, on one fake clock (``tests/fakes/world.py``)."""
    from tests.fakes import FakeWorld

    return FakeWorld()


@pytest.fixture
def arm(stack: DevStack) -> Iterator[ArmSession]:
    """Raw ARM requests to the emulator, signed with a token for the ARM audience."""
    from devkit.aml_emulator import ARM_AUDIENCE
    from tests.devkit.arm_session import ArmSession

    session = ArmSession(stack, ARM_AUDIENCE)
    yield session
    session.session.close()


@dataclass(frozen=True)
class Telemetry:
    """The SDK's in-memory exporters, installed as the process's providers: what the app exported."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def points(self, metric: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The metric's current points, keyed by their sorted attributes (sums are cumulative)."""
        found: dict[tuple[tuple[str, Any], ...], Any] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        for point in item.data.data_points:
                            found[tuple(sorted((point.attributes or {}).items()))] = point
        return found


@functools.cache
def _in_memory_telemetry() -> Telemetry:
    # Global providers can be set once per process, so the whole session shares these.
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return Telemetry(spans, reader)


@pytest.fixture
def telemetry() -> Telemetry:
    """In-memory spans and metrics for this test (spans cleared; metric sums are cumulative per session)."""
    captured = _in_memory_telemetry()
    captured.spans.clear()
    return captured
