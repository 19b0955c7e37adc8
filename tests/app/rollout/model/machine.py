"""The rollout engine as a state machine to explore: registrations, timers, follow-ups, redeliveries, operator actions,
the kill switch, hand-made traffic changes and Azure's faults, in any order, against the fakes of ``tests/fakes``.

After every rule the invariants of ``checks.py`` hold; at the end of each example the faults stop and the
engine must bring every rollout to rest within a bound (``settle``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from app.api.controls import operator_action
from app.rollout.decide.approval import APPROVAL_ACTIONS
from app.rollout.decide.model import State
from app.rollout.decide.operator import ACTIONS
from tests.app.rollout.model import checks
from tests.app.rollout.model.harness import ENDPOINT, FOREIGN, MODELS, Harness
from tests.app.rollout.model.stats import EXPLORED
from tests.fakes import WORKSPACE_ID

SAMPLE = json.dumps({"input_data": {"columns": ["a"], "data": [[1]]}})
#: Valid tag sets: blue/green, a canary, steps with bakes, dark with or without a mirror; a smoke sample or not.
SHAPES = st.sampled_from(
    [
        {},
        {"traffic": "20"},
        {"traffic": "20", "bake": "10m"},
        {"bake": "10m"},
        {"traffic_steps": "10,50,100", "bake": "10m"},
        {"traffic_steps": "10,100", "bake": "10m"},
        {"traffic": "20", "traffic_steps": "10,20", "bake": "10m"},
        {"traffic": "0"},
        {"traffic": "0", "mirror": "10", "bake": "10m"},
        {"traffic": "20", "approval": "required"},
        {"traffic_steps": "10,50,100", "bake": "10m", "approval": "required"},
    ]
)
FAULTS = ("arm", "lost_answer", "stall", "metrics", "smoke", "deployment_fails", "second_instance")
OPS = ("observe", "create_endpoint", "create_deployment", "set_traffic", "delete_deployment", "get_logs", "get_model")
WRITE_OPS = ("create_endpoint", "create_deployment", "set_traffic", "delete_deployment")
#: Ticks (of SETTLE_TICK_S) the engine gets, per rollout still in progress when the faults stop, to bring it to rest.
SETTLE_TICKS_PER_ROLLOUT = 24
SETTLE_TICK_S = 300.0


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness.build()
        self.calls_seen = self.changes_seen = self.splits_seen = self.breaches_seen = 0
        #: The endpoint's deployments and their states as the last check saw them.
        self.shown: dict[str, str] = {}
        #: Deployments an operator promoted while baking: the metric reads there were then (no gate judges after).
        self.promoted: dict[str, int] = {}
        EXPLORED.examples += 1

    @initialize(inconclusive=st.sampled_from(["hold", "promote", "rollback"]), approval=st.sampled_from([0, 0, 0, 1]))
    def configure(self, inconclusive: str, approval: int) -> None:
        """The platform's settings: what an inconclusive gate does, and (in one example of four) REQUIRE_APPROVAL."""
        self.h.world.configure(gate_inconclusive=inconclusive, require_approval=bool(approval))

    def _fired(self, name: str) -> None:
        EXPLORED.rules[name] += 1
        EXPLORED.steps += 1

    def _fault(self, name: str) -> None:
        EXPLORED.faults[name] += 1
        self.h.faults[name] += 1

    # ------------------------------------------------------------------------------------ people and events

    @rule(model=st.sampled_from(MODELS), shape=SHAPES, smoke=st.booleans(), quiet=st.booleans(), foreign=st.booleans())
    def register(self, model: str, shape: dict[str, str], smoke: bool, quiet: bool, foreign: bool) -> None:
        """A version is registered with valid tags; its event comes now, or later (``quiet``)."""
        self._fired("register_quietly" if quiet else "register")
        endpoint = FOREIGN if foreign and not quiet and model == "score" else ENDPOINT
        tags = {"deploy": "true", "endpoint": endpoint, **shape, **({"smoke_request": SAMPLE} if smoke else {})}
        self.h.register(model, tags, deliver=not quiet)

    @precondition(lambda self: any(self.h.versions.values()))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """An event delivered again, or late, after newer ones (Event Grid: at least once, in no order)."""
        self._fired("deliver")
        model, version = data.draw(st.sampled_from(sorted(self.h.tags)))
        self.h.deliver(model, version)

    @rule(seconds=st.sampled_from([30, 90, 300, 600, 1200]), rounds=st.integers(1, 4))
    def tick(self, seconds: int, rounds: int) -> None:
        """Time passes (Azure ML's operations go on) and the reconciler's timer fires, ``rounds`` times."""
        self._fired("tick")
        for _ in range(rounds):
            self.h.world.clock.advance(seconds)
            self.h.tick()

    @precondition(lambda self: State.AWAITING_APPROVAL in self.h.states.values())
    @rule()
    def nobody_decides(self) -> None:
        """Nobody approves or rejects for longer than APPROVAL_TIMEOUT (the default 7 days), and the timer fires."""
        self._fired("nobody_decides")
        self.h.world.clock.advance(self.h.world.settings.approval_timeout.total_seconds() + 60)
        self.h.tick()

    @precondition(lambda self: self.h.world.queue.next_due() is not None)
    @rule()
    def follow_up(self) -> None:
        """The next follow-up message becomes visible and is delivered."""
        self._fired("follow_up")
        due = self.h.world.queue.next_due()
        if due is None:
            return
        self.h.world.clock.now = max(self.h.world.clock(), due)
        self.h.world.deliver_followups()

    @precondition(lambda self: bool(self.h.states))
    @rule(action=st.sampled_from((*ACTIONS, *APPROVAL_ACTIONS)), data=st.data())
    def operator(self, action: str, data: st.DataObject) -> None:
        """An operator acts on one rollout (the API answers 202, 404 or 409; all are fine)."""
        self._fired(f"operator_{action}")
        endpoint, deployment = data.draw(st.sampled_from(sorted(self.h.states)))
        before = self.h.states.get((endpoint, deployment))
        status, body = operator_action(endpoint, deployment, action, b"", {}, self.h.world.deps)
        self.promoted.pop(deployment, None)  # any later action is the operator's newer word
        if status == 202 and before is State.BAKING and json.loads(body)["effect"] == "request_promote":
            self.promoted[deployment] = len(self.h.world.metrics.reads)

    @precondition(lambda self: bool(self.h.states))
    @rule(mode=st.sampled_from(["hold", "apply", "apply", "apply"]))
    def kill_switch(self, mode: str) -> None:
        """An operator sets ``DEPLOY_MODE``: hold (the kill switch) or apply."""
        self._fired(f"kill_switch_{mode}")
        self.h.world.configure(deploy_mode=mode)

    @precondition(lambda self: bool(self.h.idle_deployments()))
    @rule(data=st.data(), split=st.sampled_from([(100,), (70, 30), (50, 50)]))
    def hand_traffic(self, data: st.DataObject, split: tuple[int, ...]) -> None:
        """Someone changes the endpoint's split by hand (the portal, the CLI)."""
        self._fired("hand_traffic")
        idle = self.h.idle_deployments()
        if len(idle) < len(split):
            return
        chosen = data.draw(st.permutations(idle))[: len(split)]
        self.h.world.aml.set_traffic_by_hand(ENDPOINT, dict(zip(chosen, split, strict=True)))
        self._fault("traffic changed by hand")

    # ------------------------------------------------------------------------------------ Azure's faults

    @rule(kind=st.sampled_from(FAULTS), data=st.data())
    def fault(self, kind: str, data: st.DataObject) -> None:
        """One of Azure's faults: an ARM error, a lost answer, a stalled write (and its late landing), a metrics
        error or outage, a failing or unreachable smoke request, a deployment that goes Failed, a lease that runs
        out while a second instance acts."""
        self._fired(f"fault_{kind}")
        getattr(self, f"_{kind}")(data)

    def _arm(self, data: st.DataObject) -> None:
        op, status = data.draw(st.sampled_from(OPS)), data.draw(st.sampled_from([400, 403, 409, 429, 500, 503]))
        aml = self.h.world.aml
        aml.deny_next(op) if status == 403 else aml.fail_next(op, status)
        self._fault(f"ARM {status} on {op}")

    def _lost_answer(self, data: st.DataObject) -> None:
        op, landed = data.draw(st.sampled_from(WRITE_OPS)), data.draw(st.booleans())
        self.h.world.aml.drop_answer(op, landed=landed)
        self._fault(f"no answer to {op} ({'landed' if landed else 'lost'})")

    def _stall(self, data: st.DataObject) -> None:
        aml = self.h.world.aml
        if aml.held:
            landed = aml.land_held()
            self._fault("a late write landed" if any(w.landed for w in landed) else "a late write was refused")
        else:
            aml.hold_next("set_traffic")
            self._fault("a traffic write stalled")

    def _metrics(self, data: st.DataObject) -> None:
        status = data.draw(st.sampled_from([503, 429, 403, None]))
        minutes = data.draw(st.sampled_from([0, 15, 45]))
        metrics, clock = self.h.world.metrics, self.h.world.clock
        if minutes:
            metrics.fail_until(clock() + dt.timedelta(minutes=minutes), status)
        else:
            metrics.failures.append(status)
        self._fault(f"metrics {status or 'no answer'}" + (f" for {minutes} min" if minutes else ""))

    def _smoke(self, data: st.DataObject) -> None:
        if not self.h.tags:
            return
        model, version = data.draw(st.sampled_from(sorted(self.h.tags)))
        connects = data.draw(st.booleans())
        self.h.world.smoke.answer(f"{model}-v{version}", 500 if connects else None, b"{}", connects=connects)
        self._fault("smoke 500" if connects else "smoke cannot connect")

    def _deployment_fails(self, data: st.DataObject) -> None:
        aml = self.h.world.aml
        idle = [name for name, state in aml.deployments(ENDPOINT).items() if state == "Succeeded"]
        if data.draw(st.booleans()) and idle and not aml.busy(ENDPOINT):
            aml.set_state(ENDPOINT, data.draw(st.sampled_from(sorted(idle))), state="Failed")
            self._fault("a deployment went Failed")
        elif self.h.tags:
            model, version = data.draw(st.sampled_from(sorted(self.h.tags)))
            aml.fail_deployment(f"{model}-v{version}")
            self._fault("a deployment's next operation fails")

    def _second_instance(self, data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(["observe", "set_traffic", "create_deployment"]))
        self.h.world.aml.interleave(op, self.h.second_instance)
        self._fault(f"lease expired at {op}; a second instance acts")

    @precondition(lambda self: any(self.h.versions.values()))
    @rule(data=st.data(), health=st.sampled_from(["errors", "slow", "healthy", "quiet", "busy"]))
    def health(self, data: st.DataObject, health: str) -> None:
        """How a version's model answers from now on, as the metrics show it; or the endpoint's request rate: too
        low for any verdict, or plenty."""
        self._fired(f"health_{health}")
        if health in ("quiet", "busy"):
            self.h.world.metrics.rpm = 2.0 if health == "quiet" else 600.0
            return
        model, version = data.draw(st.sampled_from(sorted(self.h.tags)))
        shape = {"errors": {"error_rate": 20.0}, "slow": {"p99_ms": 900.0}, "healthy": {}}[health]
        self.h.world.metrics.set_health(f"{model}-v{version}", **shape)

    # ------------------------------------------------------------------------------------ invariants

    @invariant()
    def holds(self) -> None:
        h = self.h
        calls = h.world.aml.calls[self.calls_seen :]
        changes = h.transitions[self.changes_seen :]
        problems = [
            *checks.accepted(calls),
            *checks.owned_only(calls),
            *checks.hold_writes_nothing(calls, h.world.settings.deploy_mode),
            *checks.rollbacks_exact(changes, h),
            *checks.no_downgrade(h, self.splits_seen),
            *checks.nothing_ended_serves(changes),
            *checks.notified_once(h),
            *checks.dark_never_bakes(h),
            *checks.approval_kept(h, self.splits_seen),
            *checks.previous_kept(h, calls, self.shown),
            *self._promote_kept(),
            *h.lease_breaches[self.breaches_seen :],
        ]
        self.calls_seen, self.changes_seen = len(h.world.aml.calls), len(h.transitions)
        self.splits_seen, self.breaches_seen = len(h.world.aml.traffic_log), len(h.lease_breaches)
        self.shown = h.world.aml.deployments(ENDPOINT)
        for change in changes:
            EXPLORED.transitions[f"{change.before.value if change.before else 'new'} -> {change.after.value}"] += 1
        for state in {state for state in h.states.values()}:
            EXPLORED.states[state.value] += 1
        assert not problems, problems

    def _promote_kept(self) -> list[str]:
        """The operator's promote is kept: once accepted during a bake, no gate judges that rollout any more."""
        problems = []
        reads = len(self.h.world.metrics.reads)
        for deployment, then in list(self.promoted.items()):
            state = self.h.states.get((ENDPOINT, deployment))
            if reads > then:
                problems.append(f"{deployment} was promoted, and a gate read the metrics after that")
            if state is not State.BAKING:
                del self.promoted[deployment]
        return problems

    def teardown(self) -> None:
        """The faults stop: within a bound every rollout comes to rest (final, or waiting for an operator, said)."""
        ticks = settle(self.h)
        EXPLORED.quiesce_ticks[ticks] += 1
        EXPLORED.lists_skipped += len(self.h.world.aml.lists_skipped)


def settle(h: Harness) -> int:
    """Stop every fault, then tick until nothing is in progress that the engine itself should end; the ticks taken."""
    world = h.world
    aml = world.aml
    aml.faults.clear()
    aml.interleaved.clear()
    aml.failing.clear()
    aml.land_held()
    world.metrics.failures.clear()
    world.metrics.outage = None
    world.smoke.answers.clear()
    world.configure(deploy_mode="apply")
    moving = [r for r in h.rollouts() if not r.state.terminal and not waits_for_people(h, r)]
    bound = SETTLE_TICKS_PER_ROLLOUT * (len(moving) + 1)
    for ticks in range(bound + 1):
        moving = [r for r in h.rollouts() if not r.state.terminal and not waits_for_people(h, r)]
        if not moving:
            return ticks
        world.clock.advance(SETTLE_TICK_S)
        world.tick()
        world.deliver_followups()
    raise AssertionError(f"still in progress after {bound} ticks of {SETTLE_TICK_S:g} s with no faults: {moving}")


def waits_for_people(h: Harness, rollout: Any, depth: int = 0) -> bool:
    """A rollout that waits for an operator, and has said so: paused, held, stuck, or its rollback held by drift; or
    one queued behind such a rollout, which holds the endpoint's write turn."""
    if rollout.state is State.PENDING and depth == 0:
        holders = [
            r
            for r in h.rollouts()
            if r.plan.endpoint == rollout.plan.endpoint and r.state in (State.DEPLOYING, State.BAKING)
        ]
        if holders and all(waits_for_people(h, holder, 1) for holder in holders):
            return True
    told = {n.type for n in h.world.sink.received if n.subject.endswith(f"/{rollout.plan.deployment}")}
    retries = sum(1 for entry in rollout.progress.history if entry.get("action") == "retry")
    attempt = f"#retry{retries}" if retries else ""
    stuck_now = any(  # told in this attempt of the rollout (a retry starts a new one)
        n.type == "AmlEvents.Rollout.Stuck"
        and n.subject.endswith(f"/{rollout.plan.deployment}")
        and (re.search(f"{attempt}(#|$)", n.source_event_id) if attempt else "#retry" not in n.source_event_id)
        for n in h.world.sink.received
    )
    progress = rollout.progress
    if rollout.state is State.AWAITING_APPROVAL and progress.requested in ("", "promote"):
        return "AmlEvents.Rollout.AwaitingApproval" in told  # a promote asked before the approval waits for it
    if progress.requested == "promote":
        return False  # an operator's promote is carried out, never left waiting
    if progress.paused:
        return "AmlEvents.Rollout.Paused" in told
    if progress.held:
        return "AmlEvents.Rollout.GateInconclusive" in told
    if stuck_now:
        return True
    drift = h.world.ledger.leases.read(WORKSPACE_ID, ENDPOINT).drift is not None
    return drift and any(n.type == "AmlEvents.Rollout.TrafficDrift" for n in h.world.sink.received)
