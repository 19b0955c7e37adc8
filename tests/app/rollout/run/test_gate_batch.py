"""The tick's gates read together: one batch per region from two gates on, the engine answered from it, each gate
still read alone where nothing batches; a bake's follow-up leaves its gate to the tick's batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from app.platform.tables import Row
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.gate import MetricWindow, RequestPoint
from app.rollout.ledger.indexes import ActiveEndpoint
from app.rollout.run import gate_batch
from app.rollout.run.triage import GateDue, Priority, Work
from tests.fakes import make_deps

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
SUB = "00000000-0000-0000-0000-00000000de71"


def ws(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/{name}"


class Gateways:
    """``Deps.aml``: one workspace's region each (``None``: its region cannot be read)."""

    def __init__(self, regions: dict[str, str | None]) -> None:
        self.regions = regions
        self.reads: list[str] = []

    def __call__(self, workspace: WorkspaceRef) -> Any:
        outer = self

        class Gateway:
            def location(self) -> str:
                outer.reads.append(workspace.workspace_name)
                region = outer.regions[workspace.workspace_name]
                if region is None:
                    raise ConnectionError("ARM unreachable")
                return region

        return Gateway()


class FakeBatch:
    """The batch reader: records each call, answers a window per endpoint (or fails as told)."""

    def __init__(self, fail: Exception | None = None, leave_out: str = "") -> None:
        self.calls: list[tuple[str, list[str], dt.datetime, dt.datetime]] = []
        self.fail = fail
        self.leave_out = leave_out

    def read_windows(
        self, region: str, ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> dict[str, MetricWindow]:
        self.calls.append((region, list(ids), start, end))
        if self.fail is not None:
            raise self.fail
        point = RequestPoint("new", start, "2xx", "200", 10.0)
        return {i.lower(): MetricWindow(start, end, requests=(point,)) for i in ids if i != self.leave_out}


class PerResource:
    def __init__(self) -> None:
        self.reads: list[str] = []

    def read_window(self, endpoint_id: str, start: dt.datetime, end: dt.datetime) -> MetricWindow:
        self.reads.append(endpoint_id)
        return MetricWindow(start, end)


@pytest.fixture(autouse=True)
def batch_enabled() -> Iterator[None]:
    gate_batch._disabled.clear()
    yield
    gate_batch._disabled.clear()


def gate(workspace: str, endpoint: str, minutes: int = 10) -> Work:
    due = GateDue(f"{ws(workspace)}/onlineEndpoints/{endpoint}", NOW - dt.timedelta(minutes=minutes), NOW)
    return Work(ws(workspace), endpoint, Priority.DECIDES, (due,))


def test_two_gates_in_a_region_are_read_in_one_batch_a_lone_one_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = FakeBatch()
    deps = replace(
        make_deps(aml=Gateways({"east1": "East US", "east2": "eastus", "west": "westus2"})), metrics_batch=lambda: batch
    )
    works = [gate("east1", "a", 12), gate("east2", "b", 10), gate("west", "c"), Work(ws("east1"), "d", Priority.IDLE)]
    windows = gate_batch.prefetch(deps, works, NOW)
    assert [(region, len(ids)) for region, ids, _, _ in batch.calls] == [("eastus", 2)]
    assert batch.calls[0][2] == NOW - dt.timedelta(minutes=12)  # the widest window: the earliest bake's start
    assert set(windows) == {f"{ws('east1')}/onlineEndpoints/a".lower(), f"{ws('east2')}/onlineEndpoints/b".lower()}


def test_the_engine_s_reader_answers_from_the_batch_for_its_own_window_and_reads_the_rest_itself() -> None:
    per_resource = PerResource()
    endpoint = f"{ws('east1')}/onlineEndpoints/a"
    batched = MetricWindow(NOW - dt.timedelta(minutes=12), NOW, requests=(RequestPoint("new", NOW, "2xx", "200", 1),))
    reader = gate_batch.PrefetchedReader({endpoint.lower(): batched}, per_resource)
    mine = reader.read_window(endpoint.upper(), NOW - dt.timedelta(minutes=10), NOW + dt.timedelta(seconds=5))
    assert (mine.start, mine.end, mine.requests) == (NOW - dt.timedelta(minutes=10), NOW, batched.requests)
    assert per_resource.reads == []
    # Not in the batch, or asked from before the batch's start: read on its own.
    reader.read_window(f"{ws('east1')}/onlineEndpoints/b", NOW - dt.timedelta(minutes=10), NOW)
    reader.read_window(endpoint, NOW - dt.timedelta(minutes=20), NOW)
    assert len(per_resource.reads) == 2


def test_with_prefetch_gives_the_engine_the_batch_and_keeps_an_injected_reader_behind_it() -> None:
    per_resource = PerResource()
    deps = make_deps()
    deps = type(deps)(**{**deps.__dict__, "metrics": lambda workspace: per_resource})
    reader = gate_batch.with_prefetch(deps, {}).metrics
    assert reader is not None
    reader(WorkspaceRef.from_arm_id(ws("east1"))).read_window("x", NOW, NOW)
    assert per_resource.reads == ["x"]


def test_a_forbidden_batch_api_turns_batching_off_for_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    class Forbidden(Exception):
        status_code = 403

    batch = FakeBatch(fail=Forbidden("AuthorizationFailed"))
    deps = replace(make_deps(aml=Gateways({"east1": "eastus", "east2": "eastus"})), metrics_batch=lambda: batch)
    works = [gate("east1", "a"), gate("east2", "b")]
    assert gate_batch.prefetch(deps, works, NOW) == {}
    assert gate_batch.prefetch(deps, works, NOW) == {}
    assert len(batch.calls) == 1  # not tried again: each gate is read on its own from now on


def test_a_failed_batch_leaves_each_gate_to_its_own_read(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = FakeBatch(fail=ConnectionError("reset"))
    deps = replace(make_deps(aml=Gateways({"east1": "eastus", "east2": "eastus"})), metrics_batch=lambda: batch)
    assert gate_batch.prefetch(deps, [gate("east1", "a"), gate("east2", "b")], NOW) == {}
    assert gate_batch.prefetch(deps, [gate("east1", "a"), gate("east2", "b")], NOW) == {}
    assert len(batch.calls) == 2  # a transient failure does not turn batching off


def entry(workspace: str, endpoint: str, gate_in: dt.timedelta | None = dt.timedelta(0)) -> ActiveEndpoint:
    """An active endpoint whose noted gate falls due ``gate_in`` from NOW (None: no gate noted)."""
    due = NOW + gate_in if gate_in is not None else None
    return ActiveEndpoint(ws(workspace), endpoint, NOW, Row("~active", endpoint), due)


def test_a_bake_s_end_waits_for_the_tick_only_when_another_gate_of_its_region_falls_due_with_it() -> None:
    deps = make_deps(aml=Gateways({"east1": "eastus", "east2": "eastus", "west": "westus2", "lost": None}))
    mine = entry("east1", "a")

    def waits(*others: ActiveEndpoint, workspace: str = "east1", endpoint: str = "a") -> bool:
        return gate_batch.batched_in_tick(deps, ws(workspace), endpoint, [mine, *others], NOW)

    assert waits(entry("east2", "b"))
    assert waits(entry("east2", "b", gate_batch.PARTNER_WINDOW))  # one timer period apart: neighbouring ticks
    assert waits(entry("east2", "b", -gate_batch.PARTNER_WINDOW))
    assert not waits(entry("east2", "b", gate_batch.PARTNER_WINDOW * 3))  # its gate is far off: mine is read now
    assert not waits(entry("east2", "b", None))  # active, but no gate noted (deploying, say)
    assert not waits(entry("west", "c"))  # another region
    assert not waits()  # its own entry is no partner
    assert not waits(entry("east2", "b"), workspace="lost", endpoint="x")  # its region cannot be read
    gate_batch._disabled.set()
    assert not waits(entry("east2", "b"))


def test_gates_that_fall_due_while_the_tick_runs_are_read_in_one_more_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = FakeBatch()
    clock = [NOW]
    deps = replace(
        make_deps(aml=Gateways({"east1": "eastus", "east2": "eastus"}), clock=lambda: clock[0]),
        metrics_batch=lambda: batch,
    )
    later = NOW + dt.timedelta(minutes=1)

    def upcoming(workspace: str, endpoint: str) -> Work:
        gate = GateDue(f"{ws(workspace)}/onlineEndpoints/{endpoint}", NOW - dt.timedelta(minutes=9), later)
        return Work(ws(workspace), endpoint, Priority.IDLE, (), (gate,))

    gates = gate_batch.TickGates(deps, [gate("east1", "a"), upcoming("east1", "b"), upcoming("east2", "c")])
    assert gates.prefetch(NOW) == {} and batch.calls == []  # one gate due alone: read on its own
    per_resource = PerResource()
    reader = gate_batch.PrefetchedReader(gates.windows, per_resource, gates)
    clock[0] = later  # the tick is still running when b's and c's bakes end
    b = f"{ws('east1')}/onlineEndpoints/b"
    reader.read_window(b, NOW - dt.timedelta(minutes=9), later)
    assert [sorted(ids) for _, ids, _, _ in batch.calls] == [sorted([f"{ws('east1')}/onlineEndpoints/a", b,
                                                                     f"{ws('east2')}/onlineEndpoints/c"])]  # fmt: skip
    reader.read_window(f"{ws('east2')}/onlineEndpoints/c", NOW - dt.timedelta(minutes=9), later)
    assert len(batch.calls) == 1 and per_resource.reads == []  # c came with b's batch
