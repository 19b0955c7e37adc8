"""The fast layer's Azure ML fake answers as the dev kit's emulator does, call for call, through the same gateway.

Each scenario is played twice: on ``tests.fakes.FakeAzureML``, and through the app's real ``AmlGateway`` (the real
management SDK) against the emulator, which is itself held to Azure's published contract. The statuses of every
call and what ``observe`` shows at the end must be the same, so a rule the fake enforces is Azure ML's rule, and a
rule the emulator learns must be taught to the fake too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.azure.aml import AmlGateway
from app.platform.errors import status_code_of
from app.rollout.decide.model import DeploymentView, EndpointView
from app.rollout.decide.naming import EndpointNameTaken
from devkit.stack import DevStack
from tests.fakes import WORKSPACE, FakeAzureML, FakeClock, make_plan

pytestmark = pytest.mark.integration

WAIT = ("wait",)
Step = tuple[Any, ...]

SCENARIOS: dict[str, list[Step]] = {
    "one operation at a time": [
        ("create_endpoint", "fidel"),
        ("create_deployment", "fidel", "fidel-v1"),  # the endpoint is still creating
        WAIT,
        ("create_deployment", "fidel", "fidel-v1"),
        ("set_traffic", "fidel", {"fidel-v1": 100}, {}),  # the deployment is still creating
        WAIT,
        ("create_deployment", "fidel", "fidel-v2"),
        ("set_traffic", "fidel", {"fidel-v1": 100}, {}),  # another deployment is still creating
        WAIT,
        ("set_traffic", "fidel", {"fidel-v1": 100}, {}),
        ("delete_deployment", "fidel", "fidel-v2"),  # the traffic update is still running
        WAIT,
        ("delete_deployment", "fidel", "fidel-v1"),  # it has live traffic
        ("delete_deployment", "fidel", "fidel-v2"),
        ("delete_deployment", "fidel", "fidel-v9"),  # nothing to delete
        WAIT,
    ],
    "traffic rules": [
        ("create_endpoint", "fidel"),
        WAIT,
        ("create_deployment", "fidel", "fidel-v1"),
        WAIT,
        ("create_deployment", "fidel", "fidel-v2"),
        WAIT,
        ("set_traffic", "fidel", {"fidel-v1": 60}, {}),  # sums to 60
        ("set_traffic", "fidel", {"fidel-v1": 100}, {"fidel-v2": 60}),  # mirror over 50%
        ("set_traffic", "fidel", {"fidel-v1": 100}, {"fidel-v1": 10}),  # live and mirrored
        ("set_traffic", "fidel", {"fidel-v9": 100}, {}),  # no such deployment
        ("set_traffic", "fidel", {"fidel-v1": 100}, {"fidel-v2": 10}),
        WAIT,
        ("set_traffic", "fidel", {"fidel-v1": 50, "fidel-v2": 50}, {}),
        WAIT,
        ("set_traffic", "fidel", {}, {}),  # 0 is allowed
        WAIT,
    ],
    "deployments and models": [
        ("create_deployment", "fidel", "fidel-v1"),  # no endpoint
        ("create_endpoint", "fidel"),
        WAIT,
        ("create_deployment", "fidel", "fidel-v7"),  # no such model version
        ("create_deployment", "fidel", "fidel-v3"),  # a custom model is not no-code
        ("create_deployment", "fidel", "fidel-v4"),  # fails in Azure ML
        WAIT,
        ("set_traffic", "fidel", {"fidel-v4": 100}, {}),  # not succeeded
        ("get_logs", "fidel", "fidel-v4"),
        ("get_logs", "fidel", "fidel-v9"),
        ("create_endpoint", "Fidel_Bad"),  # not a valid name
        WAIT,
    ],
    "a deployments list kept from before": [
        ("create_endpoint", "fidel"),
        WAIT,
        ("create_deployment", "fidel", "fidel-v1"),
        WAIT,
        ("set_traffic", "fidel", {"fidel-v1": 100}, {}),
        WAIT,
        ("observe", "fidel", ["fidel-v1"]),  # it covers the split: the list is not read
        ("create_deployment", "fidel", "fidel-v2"),
        WAIT,
        ("observe", "fidel", ["fidel-v1"]),  # still covers the split, which does not name v2 yet
        ("set_traffic", "fidel", {"fidel-v1": 50, "fidel-v2": 50}, {}),
        WAIT,
        ("observe", "fidel", ["fidel-v1"]),  # the split names v2, which it lacks: listed again
        ("observe", "fidel", []),
        ("observe", "fidel9", ["fidel-v1"]),  # no such endpoint
    ],
}
#: The state a kept list's deployments are given here, which no list from Azure ML shows: a shape with it was
#: observed without listing.
KEPT = "Kept"


class Player:
    """Plays a scenario's calls on one Azure ML (the fake, or the emulator through the real gateway)."""

    def __init__(self, gateway: Any, wait: Callable[[], None]) -> None:
        self.gateway, self.wait = gateway, wait

    def play(self, steps: list[Step]) -> tuple[list[Any], tuple[Any, ...] | None]:
        statuses: list[Any] = []
        for step in steps:
            if step == WAIT:
                self.wait()
                continue
            op, *args = step
            if op == "observe":
                endpoint, names = args
                known = tuple(DeploymentView(name, KEPT) for name in names)
                statuses.append(_shape(self.gateway.observe(endpoint, known)))
                continue
            if op == "create_deployment":
                endpoint, deployment = args
                args = [make_plan(deployment.rsplit("-v", 1)[1], endpoint, "fidel"), _now()]
            try:
                getattr(self.gateway, op)(*args)
                statuses.append(200)
            except EndpointNameTaken:
                statuses.append("taken")
            except Exception as err:
                statuses.append(status_code_of(err) or type(err).__name__)
        return statuses, _shape(self.gateway.observe("fidel"))


def _now() -> Any:
    import datetime as dt

    return dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def _shape(view: EndpointView | None) -> tuple[Any, ...] | None:
    if view is None:
        return None
    deployments = tuple(sorted((d.name, d.provisioning_state) for d in view.deployments))
    live = {k: v for k, v in view.traffic.items() if v}
    mirror = {k: v for k, v in view.mirror_traffic.items() if v}
    return view.provisioning_state, live, mirror, deployments


def _models(register: Callable[..., Any]) -> None:
    for version in (1, 2, 4):
        register("fidel", version)
    register("fidel", 3, model_type="custom_model")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_fake_answers_every_call_as_the_emulator_does(stack: DevStack, name: str) -> None:
    from azure.identity import DefaultAzureCredential

    steps = SCENARIOS[name]
    clock = FakeClock()
    fake = FakeAzureML(clock, WORKSPACE)
    _models(lambda model, version, **kw: fake.register_model(model, version, **kw))
    fake.fail_deployment("fidel-v4")
    expected = Player(fake, lambda: clock.advance(fake.seconds_to_idle())).play(steps)

    aml = stack.aml
    _models(lambda model, version, **kw: aml.seed_model(model, version, **kw))
    aml.fail_deployments("fidel-v4")
    gateway = AmlGateway(WORKSPACE, DefaultAzureCredential())
    observed = Player(gateway, aml.wait_idle).play(steps)

    assert observed == expected
