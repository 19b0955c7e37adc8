"""The local Functions host: the app's own HTTP functions behind the host's key rules, the Event Grid webhook, the
admin route, and the triggers it keeps moving (timer, follow-up queue, forwarded events, synthetic load)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devkit import runner
from devkit.harness import app_environment, model_registered
from devkit.host import HostKeys, LocalHost, _template, route_prefix
from devkit.stack import DevStack

KEYS = HostKeys(function="fn-key", eventgrid="eg-key", master="master-key")


def eventually(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Wait on a condition (never a fixed sleep): ``check()``'s first truthy value, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def test_route_templates_match_as_the_host_routes_them() -> None:
    pattern = _template("api/rollouts/{endpoint}/{deployment}/{action}")
    match = pattern.fullmatch("/api/rollouts/credit/credit-v7/rollback")
    assert match and match.groupdict() == {"endpoint": "credit", "deployment": "credit-v7", "action": "rollback"}
    assert pattern.fullmatch("/api/rollouts/credit/rollback") is None
    assert _template("api/items/{id:int}").fullmatch("/API/items/7")  # case-insensitive, constraint kept as a segment
    optional = _template("api/things/{name?}")
    assert optional.fullmatch("/api/things") and optional.fullmatch("/api/things/x")


def test_the_app_s_http_functions_are_found_from_their_bindings() -> None:
    found = {fn.name: fn for fn in runner.http_functions()}
    assert set(found) == {"rollout_status", "rollout_control"}
    assert (found["rollout_status"].route, found["rollout_status"].methods) == ("rollouts", ("GET",))
    assert found["rollout_control"].route == "rollouts/{endpoint}/{deployment}/{action}"
    assert {fn.auth_level for fn in found.values()} == {"function"}
    assert route_prefix() == "api"


@pytest.fixture
def host(stack: DevStack) -> Iterator[LocalHost]:
    with app_environment(stack), LocalHost(stack, keys=KEYS, tick_s=0.3, followup_s=0.1) as served:
        yield served


def _get(host: LocalHost, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(f"{host.url}{path}", timeout=30, **kwargs)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({}, 401),
        ({"headers": {"x-functions-key": "wrong"}}, 401),
        ({"headers": {"x-functions-key": KEYS.eventgrid}}, 401),  # a system key opens only its extension
        ({"headers": {"x-functions-key": KEYS.function}}, 200),
        ({"params": {"code": KEYS.function}}, 200),
        ({"headers": {"x-functions-key": KEYS.master}}, 200),
    ],
    ids=["none", "wrong", "system-key", "header", "code", "master"],
)
def test_function_level_routes_take_a_function_or_master_key_as_the_host_does(
    host: LocalHost, how: dict[str, Any], expected: int
) -> None:
    response = _get(host, "/api/rollouts", **how)
    assert response.status_code == expected
    if expected == 200:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["rollouts"] == []


@pytest.mark.integration
def test_unknown_routes_and_methods_are_404_and_the_app_s_own_answers_pass_through(host: LocalHost) -> None:
    auth = {"x-functions-key": KEYS.function}
    assert _get(host, "/api/nothing-here", headers=auth).status_code == 404
    assert requests.delete(f"{host.url}/api/rollouts", headers=auth, timeout=30).status_code == 404
    refused = _get(host, "/api/rollouts", headers=auth, params={"state": "nonsense"})
    assert refused.status_code == 400 and "state" in refused.json()["error"]
    missing = requests.post(f"{host.url}/api/rollouts/credit/credit-v9/pause", headers=auth, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]


@pytest.mark.integration
def test_the_event_grid_webhook_checks_its_key_answers_validation_and_delivers(
    host: LocalHost, stack: DevStack
) -> None:
    url = f"{host.url}/runtime/webhooks/EventGrid"
    event = model_registered("credit", 1, {"deploy": "true", "endpoint": "credit"}, eid="evt-webhook-1")
    notification = {"aeg-event-type": "Notification"}
    params = {"functionName": runner.EVENT_FUNCTION, "code": KEYS.eventgrid}
    assert (
        requests.post(
            url, params={**params, "code": KEYS.function}, json=[event], headers=notification, timeout=30
        ).status_code
        == 401
    )
    validation = requests.post(
        url,
        params=params,
        headers={"aeg-event-type": "SubscriptionValidation"},
        json=[
            {
                "id": "v",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": "512d38b6"},
            }
        ],
        timeout=30,
    )
    assert validation.status_code == 200 and validation.json() == {"validationResponse": "512d38b6"}
    other = requests.post(
        url, params={**params, "functionName": "nope"}, json=[event], headers=notification, timeout=30
    )
    assert other.status_code == 404
    assert (
        requests.post(url, params=params, json={"not": "an array"}, headers=notification, timeout=30).status_code == 400
    )

    stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
    assert requests.post(url, params=params, json=[event], headers=notification, timeout=30).status_code == 202
    assert [d.event_id for d in host.deliveries] == ["evt-webhook-1"]

    # Nobody ticks here: the host's timer and follow-ups take the rollout to live.
    def live() -> bool:
        rollouts = _get(host, "/api/rollouts", headers={"x-functions-key": KEYS.function}).json()["rollouts"]
        return bool(rollouts) and rollouts[0]["state"] == "live"

    eventually(live)
    assert host.ticks >= 1 and host.errors == []


@pytest.mark.integration
def test_the_admin_route_runs_a_timer_with_the_master_key_only(host: LocalHost) -> None:
    url = f"{host.url}/admin/functions/resync_models"
    assert (
        requests.post(url, headers={"x-functions-key": KEYS.function}, json={"input": ""}, timeout=30).status_code
        == 401
    )
    assert (
        requests.post(url, headers={"x-functions-key": KEYS.master}, json={"input": ""}, timeout=60).status_code == 202
    )
    unknown = requests.post(
        f"{host.url}/admin/functions/on_aml_event", headers={"x-functions-key": KEYS.master}, timeout=30
    )
    assert unknown.status_code == 404


@pytest.mark.integration
def test_a_synthetic_load_reaches_each_endpoint_once_it_exists(stack: DevStack) -> None:
    with app_environment(stack), LocalHost(stack, keys=KEYS, tick_s=0.3, followup_s=0.1, load_rpm=600) as host:
        stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
        runner.deliver([model_registered("credit", 1)])
        eventually(lambda: stack.aml.samples("credit"))
        assert host.errors == []
