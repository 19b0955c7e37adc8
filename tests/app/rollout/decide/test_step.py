"""The rollout state machine: exact cases, then every combination of observed states against invariants."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from typing import Any

import pytest

from app.rollout.decide.actions import (
    CreateDeployment,
    CreateEndpoint,
    Delete,
    Fail,
    Finish,
    Nothing,
    RollBack,
    SetTraffic,
    Stuck,
    Wait,
)
from app.rollout.decide.cleanup import cleanup_step, surplus_deployments
from app.rollout.decide.model import APP_TAG, APP_TAG_VALUE, DeploymentView, EndpointView, Rollout, RolloutPlan, State
from app.rollout.decide.policy import Policy
from app.rollout.decide.step import Observation, step
from app.rollout.decide.traffic import desired_traffic, retiring
from app.rollout.decide.versions import is_newer
from tests.fakes import WORKSPACE, make_plan

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POLICY = Policy()


def plan(version: str = "2", traffic: int = 100, mirror: int = 0, model: str = "credit") -> RolloutPlan:
    return make_plan(version, model=model, traffic=traffic, mirror=mirror)


def rollout(p: RolloutPlan | None = None, state: State = State.PENDING, **changes: Any) -> Rollout:
    base = Rollout(
        plan=p or plan(), state=state, created_at=NOW - dt.timedelta(minutes=5), updated_at=NOW, event_ids=("e1",)
    )
    return replace(base, **changes)


def deployment(
    version: str, state: str = "Succeeded", owned: bool = True, model: str = "credit", created: str = ""
) -> DeploymentView:
    tags = (
        {
            APP_TAG: APP_TAG_VALUE,
            "model-name": model,
            "model-version": version,
            "created-at": created or f"2026-11-{10 + int(version):02d}T00:00:00+00:00",
        }
        if owned
        else {}
    )
    return DeploymentView(
        name=f"{model}-v{version}",
        provisioning_state=state,
        tags=tags,
        model=f"{WORKSPACE.arm_id}/models/{model}/versions/{version}",
    )


def endpoint(
    *deployments: DeploymentView,
    state: str = "Succeeded",
    traffic: dict[str, int] | None = None,
    mirror: dict[str, int] | None = None,
    owned: bool = True,
) -> EndpointView:
    return EndpointView(
        name="credit",
        provisioning_state=state,
        traffic=traffic or {},
        mirror_traffic=mirror or {},
        deployments=deployments,
        tags={APP_TAG: APP_TAG_VALUE} if owned else {},
    )


def decide(r: Rollout, view: EndpointView | None, *siblings: Rollout, policy: Policy = POLICY) -> Any:
    return step(r, Observation(view, siblings), NOW, policy)


# -- the happy paths -----------------------------------------------------------------------------


def test_new_endpoint_blue_green_path() -> None:
    r = rollout()
    assert decide(r, None) == CreateEndpoint()
    assert isinstance(decide(r, endpoint(state="Creating")), Wait)
    assert decide(r, endpoint()) == CreateDeployment()
    assert isinstance(decide(r, endpoint(deployment("2", "Creating"))), Wait)
    assert decide(r, endpoint(deployment("2"))) == SetTraffic(
        {"credit-v2": 100}, {}, "traffic credit-v2=100%", step=0, smoke=True
    )
    assert isinstance(decide(r, endpoint(deployment("2"), state="Updating", traffic={"credit-v2": 100})), Wait)
    done = decide(r, endpoint(deployment("2"), traffic={"credit-v2": 100}))
    assert done == Finish(State.LIVE, "serving 100% of traffic")


def test_canary_keeps_the_previous_live_deployment_on_the_rest() -> None:
    r = rollout(plan(traffic=20))
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    action = decide(r, view)
    assert isinstance(action, SetTraffic)
    assert action.traffic == {"credit-v2": 20, "credit-v1": 80}
    live = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 80, "credit-v2": 20})
    finish = decide(r, live)
    assert isinstance(finish, Finish)
    assert finish.state is State.CANARY


def test_canary_scales_several_live_deployments_proportionally() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v1": 75, "credit-v2": 25})
    traffic, _ = desired_traffic(view, plan("3", traffic=10))
    assert traffic == {"credit-v3": 10, "credit-v1": 68, "credit-v2": 22}
    assert sum(traffic.values()) == 100


def test_canary_with_nothing_else_live_takes_everything() -> None:
    r = rollout(plan(traffic=20))
    assert decide(r, endpoint(deployment("2"))) == SetTraffic(
        {"credit-v2": 100}, {}, "traffic credit-v2=100%", step=0, smoke=True
    )
    finish = decide(r, endpoint(deployment("2"), traffic={"credit-v2": 100}))
    assert isinstance(finish, Finish)
    assert finish.state is State.LIVE  # not canary: it serves everything


def test_dark_deploy_leaves_traffic_and_mirrors() -> None:
    r = rollout(plan(traffic=0, mirror=10))
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    assert decide(r, view) == SetTraffic(
        {"credit-v1": 100}, {"credit-v2": 10}, "traffic credit-v1=100%; mirror credit-v2=10%", step=0, smoke=True
    )
    done = decide(r, replace(view, mirror_traffic={"credit-v2": 10}))
    assert isinstance(done, Finish)
    assert done.state is State.DARK


def test_dark_deploy_without_mirror_finishes_without_a_traffic_write() -> None:
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    assert isinstance(decide(rollout(plan(traffic=0)), view), Finish)


def test_blue_green_moves_traffic_from_hand_made_deployments_too() -> None:
    view = endpoint(deployment("blue", owned=False), deployment("2"), traffic={"credit-vblue": 100})
    assert decide(rollout(), view) == SetTraffic({"credit-v2": 100}, {}, "traffic credit-v2=100%", step=0, smoke=True)


def test_live_mirror_moves_off_a_deployment_that_takes_live_traffic() -> None:
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100}, mirror={"credit-v2": 10})
    action = decide(rollout(), view)
    assert isinstance(action, SetTraffic)
    assert action.mirror == {}


# -- cleanup -------------------------------------------------------------------------------------


def clean(view: EndpointView | None, *rollouts: Rollout, policy: Policy = POLICY) -> Any:
    return cleanup_step(view, rollouts, policy)


def test_cut_over_finishes_without_deleting_and_cleanup_deletes_the_oldest_own_idle_deployment_beyond_keep() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    assert decide(rollout(plan("3")), view) == Finish(State.LIVE, "serving 100% of traffic")
    live = rollout(plan("3"), State.LIVE)
    assert clean(view, live) == Delete("credit-v1", "deleting surplus deployment credit-v1 (KEEP_DEPLOYMENTS=2)")


def test_cleanup_removes_every_surplus_deployment_over_later_passes_not_one_per_cut_over() -> None:
    view = endpoint(*(deployment(str(v)) for v in range(1, 6)), traffic={"credit-v5": 100})
    assert surplus_deployments(view, [], POLICY) == ["credit-v1", "credit-v2", "credit-v3"]
    assert surplus_deployments(view, [], Policy(keep_deployments=4)) == ["credit-v1"]


def test_cleanup_never_touches_hand_made_serving_mirrored_busy_or_active_deployments() -> None:
    one = Policy(keep_deployments=1)
    view = endpoint(deployment("1", owned=False), deployment("3"), traffic={"credit-v3": 100})
    assert surplus_deployments(view, [], one) == []
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 90, "credit-v1": 10})
    assert surplus_deployments(view, [], one) == ["credit-v2"]
    view = endpoint(deployment("1"), deployment("3"), traffic={"credit-v3": 100}, mirror={"credit-v1": 10})
    assert surplus_deployments(view, [], one) == []
    view = endpoint(deployment("1"), deployment("3"), traffic={"credit-v3": 100})
    assert surplus_deployments(view, [rollout(plan("1", traffic=0), State.PENDING)], one) == []


def test_cleanup_waits_for_active_rollouts_and_a_busy_endpoint() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    assert isinstance(clean(view, rollout(plan("4"), State.PENDING)), Wait)
    assert isinstance(clean(replace(view, provisioning_state="Updating")), Wait)
    assert isinstance(clean(view, rollout(plan("3"), State.LIVE)), Delete)
    assert clean(None) == Nothing("the endpoint does not exist; nothing to clean up")
    assert clean(endpoint(deployment("3"), traffic={"credit-v3": 100})) == Nothing("nothing to clean up")


def test_cleanup_deletes_nothing_under_the_kill_switch() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    held = cleanup_step(view, [rollout(plan("3"), State.LIVE)], replace(POLICY, mode="hold"))
    assert isinstance(held, Wait) and "DEPLOY_MODE=hold" in held.reason


def test_superseded_and_failed_deployments_are_cleaned_before_the_previous_live_one() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    superseded_v2 = rollout(plan("2"), State.SUPERSEDED)
    assert surplus_deployments(view, [superseded_v2], POLICY) == ["credit-v2"]  # v1 is the previous one, kept
    view = endpoint(deployment("1"), deployment("2", "Failed"), traffic={"credit-v1": 100})
    assert surplus_deployments(view, [], POLICY) == ["credit-v2"]
    assert surplus_deployments(view, [], Policy(keep_failed_deployments=True)) == []


# -- canaries and mirrors of the same model are retired, not stacked -----------------------------


def test_a_new_canary_retires_the_earlier_canary_of_the_same_model_instead_of_stacking() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v1": 80, "credit-v2": 20})
    v1, v2 = rollout(plan("1"), State.LIVE), rollout(plan("2", traffic=20), State.CANARY)
    action = decide(rollout(plan("3", traffic=20)), view, v1, v2)
    assert action == SetTraffic(
        {"credit-v3": 20, "credit-v1": 80},
        {},
        "traffic credit-v1=80%, credit-v3=20%; retiring credit-v2",
        ("credit-v2",),
        step=0,
        smoke=True,
    )
    # Without the ledger's word that v2 is a canary, it would have stacked: v1 64%, v2 16%, v3 20%.
    assert desired_traffic(view, plan("3", traffic=20))[0] == {"credit-v3": 20, "credit-v1": 64, "credit-v2": 16}
    done = replace(view, traffic={"credit-v1": 80, "credit-v3": 20})
    assert decide(rollout(plan("3", traffic=20)), done, v1, v2) == Finish(
        State.CANARY, "canary at 20%, credit-v1 keep the rest", ("credit-v2",)
    )


def test_a_cut_over_retires_an_earlier_dark_deployments_mirror() -> None:
    view = endpoint(
        deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v1": 100}, mirror={"credit-v2": 10}
    )
    dark = rollout(plan("2", traffic=0, mirror=10), State.DARK)
    action = decide(rollout(plan("3")), view, rollout(plan("1"), State.LIVE), dark)
    assert isinstance(action, SetTraffic)
    assert (action.traffic, action.mirror, action.retire) == ({"credit-v3": 100}, {}, ("credit-v2",))


def test_a_new_dark_rollout_returns_an_earlier_canarys_share_to_the_stable_deployment() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v1": 80, "credit-v2": 20})
    siblings = (rollout(plan("1"), State.LIVE), rollout(plan("2", traffic=20), State.CANARY))
    action = decide(rollout(plan("3", traffic=0, mirror=10)), view, *siblings)
    assert isinstance(action, SetTraffic)
    assert (action.traffic, action.mirror) == ({"credit-v1": 100}, {"credit-v3": 10})


def test_retiring_spares_other_models_hand_made_deployments_newer_versions_and_a_promoted_canary() -> None:
    view = endpoint(
        deployment("1"),
        deployment("2"),
        deployment("9", model="fraud"),
        deployment("blue", owned=False),
        traffic={"credit-v1": 50, "fraud-v9": 30, "credit-vblue": 20},
    )
    siblings = [
        rollout(plan("9", traffic=30, model="fraud"), State.CANARY),
        rollout(plan("1", traffic=50), State.CANARY),
    ]
    assert retiring(plan("2", traffic=10), view, siblings) == ("credit-v1",)
    assert retiring(plan("0", traffic=10), view, siblings) == ()  # v0 is older than the canary v1
    promoted = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    assert retiring(plan("2", traffic=10), promoted, [rollout(plan("1", traffic=50), State.CANARY)]) == ()


# -- endpoints the app did not create ------------------------------------------------------------


def test_an_endpoint_the_app_did_not_create_is_refused_before_any_write() -> None:
    hand_made = endpoint(deployment("blue", owned=False), traffic={"credit-vblue": 100}, owned=False)
    for r in (rollout(), rollout(state=State.DEPLOYING)):
        action = decide(r, hand_made)
        assert isinstance(action, Finish) and action.state is State.REJECTED, action
        assert "ADOPT_ENDPOINTS" in action.reason  # the setting that would let the app adopt it
    # Adoption withdrawn after a write was sent: the rollout fails, traffic untouched.
    late = decide(rollout(state=State.DEPLOYING, actions=("PUT deployment credit-v2",)), hand_made)
    assert isinstance(late, Fail)
    # Cleanup (the only thing that deletes) never picks the hand-made deployment.
    assert surplus_deployments(hand_made, [], Policy(keep_deployments=1)) == []


@pytest.mark.parametrize("adopt", [frozenset({"credit"}), frozenset({"*"})])
def test_an_adopted_endpoint_gets_traffic_as_the_tags_say(adopt: frozenset[str]) -> None:
    policy = Policy(adopt_endpoints=adopt)
    view = endpoint(deployment("blue", owned=False), deployment("2"), traffic={"credit-vblue": 100}, owned=False)
    assert decide(rollout(), view, policy=policy) == SetTraffic(
        {"credit-v2": 100}, {}, "traffic credit-v2=100%", step=0, smoke=True
    )
    canary = decide(rollout(plan(traffic=20)), view, policy=policy)
    assert canary == SetTraffic(
        {"credit-v2": 20, "credit-vblue": 80}, {}, "traffic credit-v2=20%, credit-vblue=80%", step=0, smoke=True
    )


def test_in_an_adopted_endpoint_cleanup_and_failure_never_delete_a_hand_made_deployment() -> None:
    policy = Policy(adopt_endpoints=frozenset({"credit"}), keep_deployments=1)
    # Hand-made blue is idle, old, and beyond KEEP_DEPLOYMENTS: only the app's own credit-v1 may go.
    view = endpoint(
        deployment("blue", owned=False, created="2026-01-01T00:00:00+00:00"),
        deployment("1"),
        deployment("3"),
        traffic={"credit-v3": 100},
        owned=False,
    )
    done = decide(rollout(plan("3")), view, policy=policy)
    assert isinstance(done, Finish) and done.state is State.LIVE
    finished = [rollout(plan("3"), State.LIVE), rollout(plan("1"), State.LIVE)]
    assert surplus_deployments(view, finished, policy) == ["credit-v1"]
    assert cleanup_step(view, finished, policy) == Delete(
        "credit-v1", "deleting surplus deployment credit-v1 (KEEP_DEPLOYMENTS=1)"
    )
    view = replace(view, deployments=tuple(d for d in view.deployments if d.name != "credit-v1"))
    assert surplus_deployments(view, finished, policy) == []
    # A hand-made deployment under the planned name that failed is never deleted either.
    failed = endpoint(deployment("2", "Failed", owned=False), owned=False)
    action = decide(rollout(), failed, policy=policy)
    assert isinstance(action, Fail)
    assert surplus_deployments(failed, [rollout(state=State.FAILED)], policy) == []


# -- ordering, duplicates, supersession ----------------------------------------------------------


def test_an_older_version_is_superseded_by_a_newer_live_one_and_never_gets_traffic() -> None:
    view = endpoint(deployment("3"), traffic={"credit-v3": 100})
    action = decide(rollout(plan("2")), view)
    assert isinstance(action, Finish)
    assert action.state is State.SUPERSEDED
    assert "version 3" in action.reason


def test_an_older_version_is_superseded_by_a_newer_pending_rollout() -> None:
    newer = rollout(plan("3"), State.PENDING)
    action = decide(rollout(plan("2"), State.DEPLOYING), endpoint(deployment("2", "Creating")), newer)
    assert isinstance(action, Finish)
    assert action.state is State.SUPERSEDED


def test_a_newer_dark_or_failed_rollout_does_not_supersede() -> None:
    for newer in (rollout(plan("3", traffic=0), State.DARK), rollout(plan("3"), State.FAILED)):
        assert decide(rollout(plan("2")), endpoint(), newer) == CreateDeployment()


def test_another_models_newer_version_does_not_supersede() -> None:
    view = endpoint(deployment("9", model="fraud"), traffic={"fraud-v9": 100})
    assert decide(rollout(plan("2")), view) == CreateDeployment()


def test_one_rollout_per_endpoint_writes_at_a_time() -> None:
    holder = rollout(plan("5", model="fraud"), State.DEPLOYING)
    action = decide(rollout(plan("2")), endpoint(), holder)
    assert isinstance(action, Wait)
    assert "fraud-v5" in action.reason


def test_non_numeric_versions_are_ordered_by_creation_time() -> None:
    assert is_newer("b", "2026-11-02T00:00:00+00:00", "a", "2026-11-01T00:00:00+00:00")
    assert not is_newer("z", "2026-11-01T00:00:00+00:00", "a", "2026-11-02T00:00:00+00:00")
    assert is_newer("10", "", "9", "")
    assert not is_newer("x", "", "y", "")


def test_a_naive_or_unreadable_model_created_at_tag_never_raises() -> None:
    # A hand-set tag without an offset is read as UTC; garbage counts as unknown (not newer).
    assert is_newer("b", "2026-11-02T00:00:00", "a", "2026-11-01T00:00:00+00:00")
    assert not is_newer("a", "2026-11-01T00:00:00+00:00", "b", "2026-11-02T00:00:00")
    assert not is_newer("b", "yesterday", "a", "2026-11-01T00:00:00+00:00")


# -- failure -------------------------------------------------------------------------------------


def test_failed_deployment_fails_with_logs_and_is_deleted_by_default() -> None:
    view = endpoint(deployment("1"), deployment("2", "Failed"), traffic={"credit-v1": 100})
    action = decide(rollout(plan("2"), State.DEPLOYING), view)
    assert action == Fail(
        "deployment credit-v2 ended Failed; cleanup deletes deployment credit-v2 once it is idle", fetch_logs=True
    )


def test_failed_deployment_is_kept_when_asked() -> None:
    view = endpoint(deployment("2", "Failed"))
    action = decide(rollout(), view, policy=Policy(keep_failed_deployments=True))
    assert isinstance(action, Fail)
    assert "KEEP_FAILED_DEPLOYMENTS" in action.reason  # it says why the deployment stays
    assert action.fetch_logs


def test_timeout_counts_from_taking_the_write_turn_not_from_being_queued() -> None:
    queued = NOW - dt.timedelta(minutes=300)
    old = rollout(state=State.DEPLOYING, created_at=queued, turn_taken_at=NOW - dt.timedelta(minutes=61), reason="x")
    action = decide(old, endpoint(deployment("2", "Creating")))
    assert isinstance(action, Fail) and action.fetch_logs  # while AML is busy: only the timeout fails it
    fresh = replace(old, turn_taken_at=NOW - dt.timedelta(minutes=59))
    assert isinstance(decide(fresh, endpoint(deployment("2", "Creating"))), Wait)
    waiting = rollout(state=State.PENDING, created_at=queued)  # five hours in the queue: not its own time
    assert isinstance(decide(waiting, endpoint(), rollout(plan("7", model="fraud"), State.DEPLOYING)), Wait)
    assert decide(waiting, endpoint()) == CreateDeployment()
    legacy = rollout(state=State.DEPLOYING, created_at=NOW - dt.timedelta(minutes=61))  # a row from before the field
    assert isinstance(decide(legacy, endpoint(deployment("2"))), Fail)


def test_name_collision_with_another_model_is_refused() -> None:
    stranger = DeploymentView(
        name="credit-v2", provisioning_state="Succeeded", tags={}, model=f"{WORKSPACE.arm_id}/models/other/versions/1"
    )
    action = decide(rollout(), endpoint(stranger))
    assert isinstance(action, Fail) and not action.fetch_logs  # not ours: no logs read, nothing touched
    assert "models/other/versions/1" in action.reason  # the model that holds the name


def test_a_failed_endpoint_is_put_again_once_then_fails_the_rollout() -> None:
    view = endpoint(deployment("1"), state="Failed", traffic={"credit-v1": 100})
    action = decide(rollout(), view)
    assert action == SetTraffic(
        {"credit-v1": 100}, {}, "again to recover it from Failed, traffic unchanged", retry="endpoint"
    )
    failed = decide(rollout(retries=("endpoint",)), view)
    assert failed == Fail("endpoint credit is Failed, also after one PUT to recover it")


def test_a_canceled_deployment_is_put_again_once_then_fails() -> None:
    view = endpoint(deployment("2", "Canceled"))
    assert decide(rollout(), view) == CreateDeployment(
        "deployment credit-v2 was Canceled: PUT it again once", retry="deployment"
    )
    action = decide(rollout(retries=("deployment",)), view)
    assert isinstance(action, Fail) and action.fetch_logs
    assert "Canceled" in action.reason  # the state Azure ML ended it in
    assert isinstance(decide(rollout(), endpoint(deployment("2", "Failed"))), Fail)  # Failed is not retried


def test_scaling_counts_as_busy() -> None:
    action = decide(rollout(), endpoint(deployment("1", "Scaling"), traffic={"credit-v1": 100}))
    assert action == Wait("AML is busy: deployment credit-v1 is Scaling")


def test_backoff_waits_until_the_next_attempt_time() -> None:
    r = rollout(next_attempt_at=NOW + dt.timedelta(seconds=30), attempts=1)
    assert isinstance(decide(r, None), Wait)
    assert decide(replace(r, next_attempt_at=NOW), None) == CreateEndpoint()


@pytest.mark.parametrize("state", [s for s in State if s.terminal])
def test_terminal_rollouts_do_nothing(state: State) -> None:
    assert isinstance(decide(rollout(state=state), None), Nothing)


# -- every combination ---------------------------------------------------------------------------

ENDPOINT_STATES = [None, "Creating", "Updating", "Deleting", "Succeeded", "Failed", "Canceled"]
DEPLOYMENT_STATES = [None, "Creating", "Updating", "Deleting", "Scaling", "Succeeded", "Failed", "Canceled"]
TRAFFIC = ["none", "previous", "mine", "canary-done"]
OTHER_BUSY = [False, True]
HOLDER = [False, True]
ROLLOUT_STATES = [State.PENDING, State.DEPLOYING]
PLANS = [plan("2", 100), plan("2", 20), plan("2", 0, 10)]
TIMED_OUT = [False, True]
RETRIED = [(), ("endpoint", "deployment")]


def _combinations() -> Any:
    yield from itertools.product(
        ENDPOINT_STATES, DEPLOYMENT_STATES, TRAFFIC, OTHER_BUSY, HOLDER, ROLLOUT_STATES, PLANS, TIMED_OUT, RETRIED
    )


def _build(ep: str | None, mine: str | None, traffic: str, other_busy: bool, p: RolloutPlan) -> EndpointView | None:
    if ep is None:
        return None
    deployments = [deployment("1", "Updating" if other_busy else "Succeeded")]
    if mine:
        deployments.append(deployment("2", mine))
    shares = {
        "none": {},
        "previous": {"credit-v1": 100},
        "mine": {"credit-v2": 100},
        "canary-done": {"credit-v1": 80, "credit-v2": 20},
    }[traffic]
    if not mine:
        shares = {k: v for k, v in shares.items() if k != "credit-v2"} or ({"credit-v1": 100} if shares else {})
    return endpoint(*deployments, state=ep, traffic=shares)


def test_every_combination_of_observed_states_respects_the_invariants() -> None:
    checked = 0
    for ep, mine, traffic, other_busy, holder, state, p, timed_out, retried in _combinations():
        view = _build(ep, mine, traffic, other_busy, p)
        siblings = (rollout(plan("7", model="fraud"), State.DEPLOYING),) if holder else ()
        # Queued for hours either way; only the time since it took the write turn counts.
        turn = NOW - dt.timedelta(minutes=61 if timed_out else 5) if state is State.DEPLOYING else None
        r = rollout(p, state, created_at=NOW - dt.timedelta(hours=5), turn_taken_at=turn, retries=retried)
        action = decide(r, view, *siblings)
        context = (ep, mine, traffic, other_busy, holder, state, p.traffic, timed_out, retried, action)
        busy = view is not None and view.busy_reason is not None
        writes = isinstance(action, (CreateEndpoint, CreateDeployment, SetTraffic)) or getattr(action, "delete", None)
        # Never a write while another rollout holds the endpoint, or while AML is busy with it (409): not even
        # from a rollout that timed out. A rollout's step never deletes (cleanup does, on its own).
        if holder or busy:
            assert not writes, context
        if holder and not (timed_out and state is State.DEPLOYING):
            assert isinstance(action, Wait), context
        # Time out only on the rollout's own time with the write turn, and then always (never a write instead):
        # failed when no traffic moved to it, else rolled back (never failed while it serves).
        serving = view is not None and bool(view.live_traffic().get("credit-v2"))
        if "timed out" in str(getattr(action, "reason", "")):
            assert timed_out and state is State.DEPLOYING, context
        if timed_out and state is State.DEPLOYING:
            # Nothing more is written or waited for: it fails, rolls back (waiting only for AML to be idle for
            # that), or finishes when that needs no write.
            assert isinstance(action, (Fail, RollBack, Stuck, Finish, Wait) if serving else (Fail, Finish)), context
            assert not isinstance(action, Wait) or busy, context
        # Each write only when its precondition holds.
        if isinstance(action, CreateEndpoint):
            assert view is None, context
        if isinstance(action, CreateDeployment):
            assert view is not None and ep == "Succeeded", context
            assert mine is None or (mine == "Canceled" and action.retry == "deployment" and not retried), context
        if isinstance(action, SetTraffic) and action.retry == "endpoint":
            assert view is not None and ep in ("Failed", "Canceled") and not retried, context
            assert (action.traffic, action.mirror) == (view.live_traffic(), view.live_mirror()), context
        elif isinstance(action, SetTraffic):
            assert mine == "Succeeded" and ep == "Succeeded", context
            assert sum(action.traffic.values()) in (0, 100), context
            assert all(0 < pct <= 50 for pct in action.mirror.values()), context
            if p.traffic:
                assert action.traffic.get("credit-v2") in (p.traffic, 100), context
                assert "credit-v2" not in action.mirror, context
        # A rollout only finishes well when its deployment succeeded and traffic is as planned.
        if isinstance(action, Finish) and action.state in (State.LIVE, State.CANARY, State.DARK):
            assert mine == "Succeeded" and view is not None, context
            assert desired_traffic(view, p)[0] == view.live_traffic(), context
        settled = not holder and not busy and not timed_out and ep == "Succeeded"
        if settled and (mine == "Failed" or (mine == "Canceled" and retried)):
            assert isinstance(action, (RollBack, Stuck, Finish) if serving else Fail), context
        if ep in ("Failed", "Canceled") and not holder and not busy and not timed_out:
            gave_up = (RollBack, Stuck, Finish) if serving else Fail
            assert isinstance(action, gave_up if retried else SetTraffic), context
        checked += 1
    assert checked == len(ENDPOINT_STATES) * len(DEPLOYMENT_STATES) * 4 * 2 * 2 * 2 * 3 * 2 * 2


def test_step_is_a_fixed_point_once_traffic_is_right() -> None:
    """After SetTraffic is applied, the next step finishes instead of writing again."""
    for p in PLANS:
        view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
        action = decide(rollout(p), view)
        assert isinstance(action, (SetTraffic, Finish)), action
        if isinstance(action, SetTraffic):
            view = replace(view, traffic=action.traffic, mirror_traffic=action.mirror)
        assert isinstance(decide(rollout(p), view), Finish)
