"""The rollout state machine: exact cases, then every combination of observed states against invariants."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from typing import Any

import pytest

from shared.rollout.model import APP_TAG, APP_TAG_VALUE, DeploymentView, EndpointView, Rollout, RolloutPlan, State
from shared.rollout.step import (
    CreateDeployment,
    CreateEndpoint,
    Fail,
    Finish,
    Nothing,
    Observation,
    Policy,
    SetTraffic,
    Wait,
    desired_traffic,
    is_newer,
    step,
)
from tests.fakes import WORKSPACE

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POLICY = Policy()


def plan(version: str = "2", traffic: int = 100, mirror: int = 0, model: str = "credit") -> RolloutPlan:
    return RolloutPlan(
        workspace_id=WORKSPACE.arm_id,
        endpoint="credit",
        deployment=f"{model}-v{version}",
        model_name=model,
        model_version=version,
        model_type="mlflow_model",
        model_created_at="",
        instance_type="Standard_DS3_v2",
        instance_count=1,
        traffic=traffic,
        mirror=mirror,
    )


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
) -> EndpointView:
    return EndpointView(
        name="credit",
        provisioning_state=state,
        traffic=traffic or {},
        mirror_traffic=mirror or {},
        deployments=deployments,
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
    assert decide(r, endpoint(deployment("2"))) == SetTraffic({"credit-v2": 100}, {}, "traffic credit-v2=100%")
    assert isinstance(decide(r, endpoint(deployment("2"), state="Updating", traffic={"credit-v2": 100})), Wait)
    done = decide(r, endpoint(deployment("2"), traffic={"credit-v2": 100}))
    assert done == Finish(State.LIVE, "serving 100% of traffic", delete=None)


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
    assert decide(r, endpoint(deployment("2"))) == SetTraffic({"credit-v2": 100}, {}, "traffic credit-v2=100%")
    finish = decide(r, endpoint(deployment("2"), traffic={"credit-v2": 100}))
    assert isinstance(finish, Finish)
    assert finish.state is State.LIVE
    assert "nothing else was live" in finish.reason


def test_dark_deploy_leaves_traffic_and_mirrors() -> None:
    r = rollout(plan(traffic=0, mirror=10))
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    assert decide(r, view) == SetTraffic(
        {"credit-v1": 100}, {"credit-v2": 10}, "traffic credit-v1=100%; mirror credit-v2=10%"
    )
    done = decide(r, replace(view, mirror_traffic={"credit-v2": 10}))
    assert isinstance(done, Finish)
    assert done.state is State.DARK


def test_dark_deploy_without_mirror_finishes_without_a_traffic_write() -> None:
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
    assert isinstance(decide(rollout(plan(traffic=0)), view), Finish)


def test_blue_green_moves_traffic_from_hand_made_deployments_too() -> None:
    view = endpoint(deployment("blue", owned=False), deployment("2"), traffic={"credit-vblue": 100})
    assert decide(rollout(), view) == SetTraffic({"credit-v2": 100}, {}, "traffic credit-v2=100%")


def test_live_mirror_moves_off_a_deployment_that_takes_live_traffic() -> None:
    view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100}, mirror={"credit-v2": 10})
    action = decide(rollout(), view)
    assert isinstance(action, SetTraffic)
    assert action.mirror == {}


# -- cleanup -------------------------------------------------------------------------------------


def test_cut_over_deletes_the_oldest_own_idle_deployment_beyond_keep() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    done = decide(rollout(plan("3")), view)
    assert done == Finish(State.LIVE, "serving 100% of traffic; deleting old deployment credit-v1", delete="credit-v1")


def test_cleanup_never_touches_hand_made_or_active_deployments() -> None:
    view = endpoint(deployment("1", owned=False), deployment("3"), traffic={"credit-v3": 100})
    done = decide(rollout(plan("3")), view, policy=Policy(keep_deployments=1))
    assert isinstance(done, Finish)
    assert done.delete is None
    view = endpoint(deployment("1"), deployment("3"), traffic={"credit-v3": 100})
    sibling = rollout(plan("1", model="credit", traffic=0), State.PENDING)
    done = decide(rollout(plan("3")), view, sibling, policy=Policy(keep_deployments=1))
    assert isinstance(done, Finish)
    assert done.delete is None


def test_superseded_and_failed_deployments_are_cleaned_before_the_previous_live_one() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v3": 100})
    superseded_v2 = rollout(plan("2"), State.SUPERSEDED)
    done = decide(rollout(plan("3")), view, superseded_v2)
    assert done.delete == "credit-v2"


def test_canary_does_not_clean_up() -> None:
    view = endpoint(deployment("1"), deployment("2"), deployment("3"), traffic={"credit-v2": 80, "credit-v3": 20})
    assert decide(rollout(plan("3", traffic=20)), view).delete is None


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
        "deployment credit-v2 ended Failed; deleting deployment credit-v2", fetch_logs=True, delete="credit-v2"
    )


def test_failed_deployment_is_kept_when_asked() -> None:
    view = endpoint(deployment("2", "Failed"))
    action = decide(rollout(), view, policy=Policy(keep_failed_deployments=True))
    assert isinstance(action, Fail)
    assert action.delete is None
    assert action.fetch_logs


def test_timeout_fails_and_leaves_a_busy_deployment_in_place() -> None:
    old = rollout(created_at=NOW - dt.timedelta(minutes=61), reason="waiting")
    action = decide(old, endpoint(deployment("2", "Creating")))
    assert isinstance(action, Fail)
    assert action.reason.startswith("timed out after 60 minutes")
    assert action.delete is None


def test_name_collision_with_another_model_is_refused() -> None:
    stranger = DeploymentView(
        name="credit-v2", provisioning_state="Succeeded", tags={}, model=f"{WORKSPACE.arm_id}/models/other/versions/1"
    )
    action = decide(rollout(), endpoint(stranger))
    assert isinstance(action, Fail)
    assert "already used by another model" in action.reason


def test_failed_endpoint_fails_the_rollout() -> None:
    assert isinstance(decide(rollout(), endpoint(state="Failed")), Fail)


def test_backoff_waits_until_the_next_attempt_time() -> None:
    r = rollout(next_attempt_at=NOW + dt.timedelta(seconds=30), attempts=1)
    assert isinstance(decide(r, None), Wait)
    assert decide(replace(r, next_attempt_at=NOW), None) == CreateEndpoint()


@pytest.mark.parametrize("state", [s for s in State if s.terminal])
def test_terminal_rollouts_do_nothing(state: State) -> None:
    assert isinstance(decide(rollout(state=state), None), Nothing)


# -- every combination ---------------------------------------------------------------------------

ENDPOINT_STATES = [None, "Creating", "Updating", "Deleting", "Succeeded", "Failed", "Canceled"]
DEPLOYMENT_STATES = [None, "Creating", "Updating", "Deleting", "Succeeded", "Failed", "Canceled"]
TRAFFIC = ["none", "previous", "mine", "canary-done"]
OTHER_BUSY = [False, True]
HOLDER = [False, True]
ROLLOUT_STATES = [State.PENDING, State.DEPLOYING]
PLANS = [plan("2", 100), plan("2", 20), plan("2", 0, 10)]


def _combinations() -> Any:
    yield from itertools.product(ENDPOINT_STATES, DEPLOYMENT_STATES, TRAFFIC, OTHER_BUSY, HOLDER, ROLLOUT_STATES, PLANS)


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
    for ep, mine, traffic, other_busy, holder, state, p in _combinations():
        view = _build(ep, mine, traffic, other_busy, p)
        siblings = (rollout(plan("7", model="fraud"), State.DEPLOYING),) if holder else ()
        action = decide(rollout(p, state), view, *siblings)
        context = (ep, mine, traffic, other_busy, holder, state, p.traffic, action)
        busy = view is not None and view.busy_reason is not None
        writes = isinstance(action, (CreateEndpoint, CreateDeployment, SetTraffic)) or getattr(action, "delete", None)
        # Never a write while another rollout holds the endpoint, or while AML is busy with it (409).
        if holder or busy:
            assert not writes or isinstance(action, Fail), context
        if holder:
            assert isinstance(action, Wait), context
        # Each write only when its precondition holds.
        if isinstance(action, CreateEndpoint):
            assert view is None, context
        if isinstance(action, CreateDeployment):
            assert view is not None and ep == "Succeeded" and mine is None, context
        if isinstance(action, SetTraffic):
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
        if mine in ("Failed", "Canceled") and not holder and not busy and ep == "Succeeded":
            assert isinstance(action, Fail), context
        if ep in ("Failed", "Canceled") and not holder and not busy:
            assert isinstance(action, Fail), context
        checked += 1
    assert checked == len(ENDPOINT_STATES) * len(DEPLOYMENT_STATES) * 4 * 2 * 2 * 2 * 3


def test_step_is_a_fixed_point_once_traffic_is_right() -> None:
    """After SetTraffic is applied, the next step finishes instead of writing again."""
    for p in PLANS:
        view = endpoint(deployment("1"), deployment("2"), traffic={"credit-v1": 100})
        action = decide(rollout(p), view)
        assert isinstance(action, (SetTraffic, Finish)), action
        if isinstance(action, SetTraffic):
            view = replace(view, traffic=action.traffic, mirror_traffic=action.mirror)
        assert isinstance(decide(rollout(p), view), Finish)
