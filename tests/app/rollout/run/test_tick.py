"""A tick over many endpoints: passes in the order of what they owe, idle looks left out while ARM's reads run
short, and what does not fit the budget handed to the follow-up queue instead of waiting for the next tick."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from app.azure.aml import arm_endpoint
from app.azure.throttle import GATE, host_of
from app.intake.outcome import OutcomeKind
from app.platform.settings import DEFAULT_DELAYS
from app.rollout.decide.followup import FollowUp
from app.rollout.decide.gate import MetricWindow
from app.rollout.decide.model import Progress, State
from app.rollout.ledger.indexes import ACTIVE_INDEX, INDEX_BUILT
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.run import followup, gate_batch, tick
from app.rollout.run.outcomes import Note, Noted, PassOutcome
from tests.fakes import WORKSPACE_ID, FakeTableStore, make_deps, make_plan, make_settings

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


class Queue:
    """``Deps.followups``: keeps what was scheduled."""

    def __init__(self) -> None:
        self.sent: list[tuple[FollowUp, float]] = []

    def __call__(self) -> Queue:
        return self

    def schedule(self, message: FollowUp, delay: float) -> None:
        self.sent.append((message, delay))


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The endpoints the engine was asked to advance, in order (the engine itself is not run)."""
    seen: list[str] = []

    def advance(deps: Any, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
        seen.append(endpoint)
        return [f"{endpoint}: advanced"]

    monkeypatch.setattr(tick, "_pass", advance)
    return seen


@pytest.fixture(autouse=True)
def fresh_gate() -> Iterator[None]:
    GATE.reset()
    tick._handed.clear()
    gate_batch._disabled.clear()
    followup.forget_active_view()
    yield
    GATE.reset()
    tick._handed.clear()
    followup.forget_active_view()


def ledger_with(store: FakeTableStore, **states: State) -> None:
    """One active rollout per endpoint: ``deploying`` in flight, ``baking`` mid-bake (idle), ``pending``..."""
    ledger = RolloutLedger(store)
    for endpoint, state in states.items():
        plan = replace(make_plan(2, endpoint=endpoint, model=endpoint), traffic_steps=(10, 100), bake_seconds=600)
        rollout, _ = ledger.record(plan, State.PENDING, f"evt-{endpoint}", NOW)
        progress = Progress(step=0, bake_started_at=NOW - dt.timedelta(minutes=1)) if state is State.BAKING else None
        ledger.save(replace(rollout, state=state, progress=progress or rollout.progress), NOW)


def deps_for(store: FakeTableStore, queue: Queue | None = None, **settings: Any) -> Any:
    deps = make_deps(make_settings(**settings), table=lambda name: store, clock=lambda: NOW)
    return replace(deps, followups=queue)


def busy_region(store: FakeTableStore, partner_gate_due: dt.datetime) -> str:
    """Endpoint "one" active; "two", in another workspace, noted a gate due at ``partner_gate_due``; the index
    built. Returns the other workspace's id."""
    ledger = RolloutLedger(store)
    other_workspace = WORKSPACE_ID.replace("mlw-devkit", "mlw-other")
    ledger.active.add(WORKSPACE_ID, "one", NOW)
    ledger.active.add(other_workspace, "two", NOW, gate_due=partner_gate_due)
    store.insert(ACTIVE_INDEX, INDEX_BUILT, {"BuiltAt": NOW})
    return other_workspace


def endpoints(*names: str) -> list[tuple[str, str]]:
    return [(WORKSPACE_ID, name) for name in names]


def test_passes_go_in_the_order_of_what_each_endpoint_owes(passes: list[str]) -> None:
    store = FakeTableStore()
    ledger_with(store, idle=State.BAKING, deploying=State.DEPLOYING, pending=State.PENDING)
    lines = tick.run(deps_for(store, reconcile_concurrency=1), endpoints("idle", "pending", "deploying"),
                     time.monotonic() + 60)  # fmt: skip
    assert passes[-1] == "idle" and set(passes) == {"idle", "pending", "deploying"}
    assert len(lines) == 3


def test_what_the_budget_cannot_fit_is_handed_to_the_queue_due_now(passes: list[str]) -> None:
    store, queue = FakeTableStore(), Queue()
    ledger_with(store, one=State.DEPLOYING, two=State.DEPLOYING)
    lines = tick.run(deps_for(store, queue), endpoints("one", "two"), time.monotonic() - 1)  # the budget is spent
    assert passes == []
    assert sorted(m.endpoint for m, _ in queue.sent) == ["one", "two"]
    assert {(m.reason, m.kind, delay) for m, delay in queue.sent} == {(tick.FANNED_OUT, "tick", 0)}
    assert all("fanned out" in line for line in lines)
    # The next tick finds them still in the queue: not sent again (a backlog would only grow).
    again = tick.run(deps_for(store, queue), endpoints("one", "two"), time.monotonic() - 1)
    assert len(queue.sent) == 2 and all("already handed" in line for line in again)


def test_without_follow_ups_what_does_not_fit_waits_for_the_next_tick(passes: list[str]) -> None:
    store = FakeTableStore()
    ledger_with(store, one=State.DEPLOYING, two=State.DEPLOYING)
    lines = tick.run(deps_for(store, None), endpoints("one", "two"), time.monotonic() - 1)
    assert passes == [] and all("next tick" in line for line in lines)


def test_while_arm_reads_run_short_idle_looks_wait_and_what_decides_goes_on(passes: list[str]) -> None:
    store = FakeTableStore()
    ledger_with(store, idle=State.BAKING, deploying=State.DEPLOYING)
    # What the wiring reads from the process-wide throttle once ARM answered with few reads left.
    GATE.observe(host_of(arm_endpoint()), 200, {"x-ms-ratelimit-remaining-subscription-reads": "3"})
    short = replace(deps_for(store), arm_reads_short=lambda: GATE.reads_short(host_of(arm_endpoint())))
    lines = tick.run(short, endpoints("idle", "deploying"), time.monotonic() + 60)
    assert passes == ["deploying"]
    assert any(line.startswith("idle: idle polling deferred") for line in lines)


def test_an_endpoint_waiting_for_its_write_s_follow_up_is_not_looked_at(passes: list[str]) -> None:
    store = FakeTableStore()
    ledger = RolloutLedger(store)
    ledger_with(store, waiting=State.DEPLOYING, pending=State.PENDING)
    [row] = ledger.endpoint_rollouts(WORKSPACE_ID, "waiting")
    ledger.save(replace(row, actions=("PUT deployment waiting-v2 (1 x Standard_DS3_v2)",)), NOW)
    delays = tuple(DEFAULT_DELAYS.items())
    lines = tick.run(deps_for(store, Queue(), followup_delays=delays), endpoints("waiting", "pending"),
                     time.monotonic() + 60)  # fmt: skip
    assert passes == ["pending"]
    assert any(line.startswith("waiting: not looked at") for line in lines)
    del passes[:]  # the setting off (the dev kit's harness): every endpoint is looked at
    off = deps_for(store, Queue(), followup_delays=delays, tick_waits_for_followups=False)
    tick.run(off, endpoints("waiting", "pending"), time.monotonic() + 60)
    assert sorted(passes) == ["pending", "waiting"]
    del passes[:]  # without follow-ups the tick is the only one to advance it
    tick.run(deps_for(store, None, followup_delays=delays), endpoints("waiting", "pending"), time.monotonic() + 60)
    assert sorted(passes) == ["pending", "waiting"]


def test_one_endpoint_is_advanced_alone_without_a_triage_read(passes: list[str]) -> None:
    store = FakeTableStore()
    tick.run(deps_for(store), endpoints("only"), time.monotonic() + 60)
    assert passes == ["only"] and store.writes == []


def test_a_bake_s_follow_up_leaves_its_gate_to_the_tick_when_its_region_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FakeTableStore()
    other_workspace = busy_region(store, NOW + dt.timedelta(seconds=20))  # its gate falls due too
    advanced: list[str] = []
    monkeypatch.setattr(gate_batch, "region_of", lambda deps, workspace_id: ("sub", "eastus"))
    monkeypatch.setattr(
        "app.rollout.run.engine.RolloutEngine.advance",
        lambda self, ws, ep, deadline: advanced.append(ep) or PassOutcome(ep),
    )
    deps = deps_for(store)
    bake_end = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "one", "reason": f"bake end {NOW.isoformat()}"})
    assert followup.follow_up(bake_end, 1, deps).kind is OutcomeKind.DEFERRED
    assert advanced == []
    other = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "one", "reason": "traffic"})
    followup.follow_up(other, 1, deps)
    assert advanced == ["one"]  # only a gate waits for the batch; every other follow-up advances at once
    later = json.dumps(
        {"workspaceId": WORKSPACE_ID, "endpoint": "one", "reason": f"bake end {(NOW + HOUR).isoformat()}"}
    )
    assert followup.follow_up(later, 1, deps).kind is OutcomeKind.HANDLED  # no other gate then: read at once
    regions = {WORKSPACE_ID: ("sub", "eastus"), other_workspace: ("sub", "westus2")}
    monkeypatch.setattr(gate_batch, "region_of", lambda deps, workspace_id: regions[workspace_id])
    followup.forget_active_view()
    assert followup.follow_up(bake_end, 1, deps).kind is not OutcomeKind.DEFERRED  # alone in its region: read now


def test_any_follow_up_whose_pass_finds_a_gate_due_in_a_busy_region_is_deferred_to_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FakeTableStore()
    other_workspace = busy_region(store, NOW)
    asked: list[bool] = []

    def advance(self: Any, ws: str, ep: str, deadline: float) -> PassOutcome:
        asked.append(self.gates_to_tick)  # the engine leaves a gate due to the tick only when told to
        return PassOutcome(ep, (Noted(Note.GATE_TO_TICK, f"{ep}: gate left"),) if self.gates_to_tick else ())

    monkeypatch.setattr("app.rollout.run.engine.RolloutEngine.advance", advance)
    late = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "one", "reason": "traffic"})
    monkeypatch.setattr(gate_batch, "region_of", lambda deps, workspace_id: ("sub", "eastus"))
    assert followup.follow_up(late, 1, deps_for(store)).kind is OutcomeKind.DEFERRED
    regions = {WORKSPACE_ID: ("sub", "eastus"), other_workspace: ("sub", "westus2")}
    monkeypatch.setattr(gate_batch, "region_of", lambda deps, workspace_id: regions[workspace_id])
    followup.forget_active_view()
    assert followup.follow_up(late, 1, deps_for(store)).kind is OutcomeKind.HANDLED  # alone: nothing to batch with
    assert asked == [True, False]


def test_follow_ups_find_their_endpoint_with_a_point_read_and_share_one_read_of_the_whole_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FakeTableStore()
    ledger_with(store, one=State.DEPLOYING, two=State.DEPLOYING)
    RolloutLedger(store).active.endpoints(NOW)  # built
    monkeypatch.setattr(gate_batch, "region_of", lambda deps, workspace_id: ("sub", "eastus"))
    monkeypatch.setattr("app.rollout.run.engine.RolloutEngine.advance", lambda self, ws, ep, deadline: PassOutcome(ep))
    clock = [NOW]
    deps = replace(deps_for(store), clock=lambda: clock[0])
    del store.queries[:]
    for endpoint in ("one", "two", "one", "two"):
        body = json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": endpoint, "reason": "deployment"})
        assert followup.follow_up(body, 1, deps).kind is OutcomeKind.HANDLED
    assert len(store.queries) == 1  # the region's view, read once; each endpoint by its own entry
    clock[0] += followup.ACTIVE_VIEW  # on the app's clock
    followup.follow_up(json.dumps({"workspaceId": WORKSPACE_ID, "endpoint": "one", "reason": "deployment"}), 1, deps)
    assert len(store.queries) == 2  # as old as ACTIVE_VIEW: read again


def test_an_endpoint_spelled_otherwise_than_its_entry_is_found_in_the_whole_index() -> None:
    store = FakeTableStore()
    ledger_with(store, Credit=State.DEPLOYING)
    deps = deps_for(store)
    assert followup.active_endpoint(deps, WORKSPACE_ID.upper(), "credit") == (WORKSPACE_ID, "Credit")
    assert followup.active_endpoint(deps, WORKSPACE_ID, "Credit") == (WORKSPACE_ID, "Credit")
    assert followup.active_endpoint(deps, WORKSPACE_ID, "fraud") is None


def test_a_gate_read_in_the_tick_s_batch_is_judged_in_the_tick_even_past_its_budget(
    passes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, queue = FakeTableStore(), Queue()
    ledger_with(store, gated=State.BAKING, deploying=State.DEPLOYING)
    gated = f"{WORKSPACE_ID}/onlineEndpoints/gated".lower()

    def batched(self: gate_batch.TickGates, now: dt.datetime) -> dict[str, MetricWindow]:
        self.windows[gated] = MetricWindow(now - dt.timedelta(minutes=10), now)
        return self.windows

    monkeypatch.setattr(gate_batch.TickGates, "prefetch", batched)
    monkeypatch.setattr("app.rollout.run.triage._bake_end", lambda rollout: NOW - dt.timedelta(seconds=1))
    tick.run(deps_for(store, queue), endpoints("gated", "deploying"), time.monotonic() - 1)
    assert passes == ["gated"]  # its metrics are read: judged now, not read again by a follow-up
    assert [m.endpoint for m, _ in queue.sent] == ["deploying"]


def test_past_the_budget_an_idle_look_waits_for_the_next_tick_and_is_not_queued(passes: list[str]) -> None:
    store, queue = FakeTableStore(), Queue()
    ledger_with(store, idle=State.BAKING, deploying=State.DEPLOYING)
    lines = tick.run(deps_for(store, queue), endpoints("idle", "deploying"), time.monotonic() - 1)
    assert [m.endpoint for m, _ in queue.sent] == ["deploying"] and passes == []
    assert any(line.startswith("idle: idle look left for the next tick") for line in lines)


def test_a_handed_on_endpoint_advanced_since_by_another_pass_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeTableStore()
    ledger = RolloutLedger(store)
    ledger.active.add(WORKSPACE_ID, "one", NOW)
    store.insert(ACTIVE_INDEX, INDEX_BUILT, {"BuiltAt": NOW})
    advanced: list[str] = []
    monkeypatch.setattr(
        "app.rollout.run.engine.RolloutEngine.advance",
        lambda self, ws, ep, deadline: advanced.append(ep) or PassOutcome(ep),
    )
    deps = deps_for(store)
    sent = FollowUp(WORKSPACE_ID, "one", tick.FANNED_OUT, sent_at=NOW - dt.timedelta(seconds=30))
    assert FollowUp.parse(sent.to_json()) == sent
    followup.follow_up(sent.to_json(), 1, deps)
    assert advanced == ["one"]  # no pass since it was sent: this one advances it
    lease = ledger.acquire_lease(WORKSPACE_ID, "one", "other-instance", NOW - dt.timedelta(seconds=10), 180)
    assert lease is not None
    ledger.release_lease(lease, NOW - dt.timedelta(seconds=5))  # another pass ran after the message was sent
    assert followup.follow_up(sent.to_json(), 1, deps).kind is OutcomeKind.DROPPED  # nothing to do
    assert advanced == ["one"]
