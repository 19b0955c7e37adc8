"""The fakes themselves: time moves operations on, faults look to the app as Azure's do, tables filter and page."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from app.platform.errors import error_source, is_retryable, permission_problem, status_code_of
from app.platform.tables import Row
from app.rollout.decide.followup import FollowUp
from tests.fakes import WORKSPACE, WORKSPACE_ID, FakeAzureML, FakeClock, FakeFollowUpQueue, FakeMetrics, make_plan
from tests.fakes.table import FakeTableStore

pytestmark = pytest.mark.fast


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aml(clock: FakeClock) -> FakeAzureML:
    aml = FakeAzureML(clock, WORKSPACE)
    for version in (1, 2):
        aml.register_model("credit", version)
    return aml


def _live(aml: FakeAzureML, clock: FakeClock, *versions: int) -> None:
    aml.create_endpoint("credit")
    clock.advance(aml.seconds_to_idle())
    for version in versions:
        aml.create_deployment(make_plan(version), clock())
        clock.advance(aml.seconds_to_idle())
    aml.set_traffic("credit", {f"credit-v{versions[0]}": 100}, {})
    clock.advance(aml.seconds_to_idle())


def test_an_operation_ends_when_the_clock_passes_its_duration(aml: FakeAzureML, clock: FakeClock) -> None:
    aml.create_endpoint("credit")
    clock.advance(89)
    assert aml.state("credit") == "Creating" and aml.busy("credit")
    clock.advance(1)
    assert aml.state("credit") == "Succeeded" and not aml.busy("credit")


def test_an_injected_error_is_what_the_apps_error_policy_sees_from_azure(aml: FakeAzureML) -> None:
    aml.fail_next("observe", 503)
    with pytest.raises(HttpResponseError) as raised:
        aml.observe("credit")
    assert status_code_of(raised.value) == 503 and error_source(raised.value) == "azureml"
    assert is_retryable(raised.value)
    assert aml.observe("credit") is None  # one fault, one call


def test_a_denied_call_names_the_refused_action(aml: FakeAzureML) -> None:
    aml.deny_next("create_endpoint")
    with pytest.raises(HttpResponseError) as raised:
        aml.create_endpoint("credit")
    problem = permission_problem(raised.value)
    assert problem is not None and "onlineEndpoints/write" in problem
    assert aml.endpoints == {}


@pytest.mark.parametrize("landed", [True, False])
def test_a_lost_answer_is_a_network_error_whether_or_not_the_write_landed(aml: FakeAzureML, landed: bool) -> None:
    aml.drop_answer("create_endpoint", landed=landed)
    with pytest.raises(ServiceResponseError) as raised:
        aml.create_endpoint("credit")
    assert status_code_of(raised.value) is None and is_retryable(raised.value)
    assert error_source(raised.value) == "network"
    assert (aml.state("credit") is not None) is landed


def test_a_held_traffic_write_lands_after_the_writes_sent_meanwhile(aml: FakeAzureML, clock: FakeClock) -> None:
    _live(aml, clock, 1, 2)
    aml.hold_next("set_traffic")
    with pytest.raises(ServiceResponseError):
        aml.set_traffic("credit", {"credit-v2": 100}, {})
    assert aml.traffic("credit") == {"credit-v1": 100}
    aml.set_traffic("credit", {"credit-v1": 50, "credit-v2": 50}, {})
    clock.advance(aml.seconds_to_idle())

    [late] = aml.land_held()
    assert late.landed and aml.traffic("credit") == {"credit-v2": 100}


def test_a_held_write_that_breaks_a_rule_when_it_lands_is_refused_then(aml: FakeAzureML, clock: FakeClock) -> None:
    _live(aml, clock, 1, 2)
    aml.hold_next("set_traffic")
    with pytest.raises(ServiceResponseError):
        aml.set_traffic("credit", {"credit-v2": 100}, {})
    aml.set_traffic("credit", {"credit-v1": 100}, {})  # still updating when the held write arrives

    [late] = aml.land_held()
    assert not late.landed and status_code_of(late.error or Exception()) == 409


def test_a_scaling_deployment_holds_its_endpoint_for_as_long_as_it_scales(aml: FakeAzureML, clock: FakeClock) -> None:
    _live(aml, clock, 1)
    aml.set_state("credit", "credit-v1", state="Scaling", seconds=120)
    with pytest.raises(HttpResponseError) as raised:
        aml.set_traffic("credit", {"credit-v1": 100}, {})
    assert status_code_of(raised.value) == 409
    clock.advance(120)
    aml.set_traffic("credit", {"credit-v1": 100}, {})


def test_every_call_is_recorded_with_its_answer(aml: FakeAzureML, clock: FakeClock) -> None:
    aml.create_endpoint("credit")
    with pytest.raises(HttpResponseError):
        aml.create_endpoint("credit")  # busy

    assert [(c.op, c.status, c.is_write) for c in aml.calls] == [
        ("create_endpoint", 200, True),
        ("create_endpoint", 409, True),
    ]


def test_table_queries_filter_by_keys_and_properties_in_key_order_a_page_at_a_time() -> None:
    store = FakeTableStore()
    for pk in ("b", "a"):
        for rk, active in (("2", True), ("1", False), ("3", True)):
            store.upsert(pk, rk, {"Active": active, "When": dt.datetime(2026, 1, int(rk), tzinfo=dt.UTC)})

    active = store.query("PartitionKey eq @pk and Active eq true", pk="a")
    assert [(r.partition, r.key) for r in active] == [("a", "2"), ("a", "3")]
    rows, token = store.page("Active eq true", limit=3)
    assert [(r.partition, r.key) for r in rows] == [("a", "2"), ("a", "3"), ("b", "2")]
    rest, end = store.page("Active eq true", limit=3, continuation=token)
    assert [(r.partition, r.key) for r in rest] == [("b", "3")] and end is None
    early = store.query("When lt @cutoff or RowKey eq '3'", cutoff=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert sorted((r.partition, r.key) for r in early) == [("a", "1"), ("a", "3"), ("b", "1"), ("b", "3")]
    selected = store.get("a", "1", select=["When"])
    assert selected is not None and set(selected.data) == {"When"}


def test_a_table_write_on_a_changed_row_is_a_conflict() -> None:
    from app.platform.tables import Conflict

    store = FakeTableStore()
    first = store.insert("p", "k", {"n": 1})
    store.replace(first, {"n": 2})
    with pytest.raises(Conflict):
        store.replace(first, {"n": 3})
    with pytest.raises(Conflict):
        store.delete(Row("p", "k", etag=first.etag))


def test_metrics_follow_the_traffic_in_force_each_minute_and_only_complete_minutes(
    aml: FakeAzureML, clock: FakeClock
) -> None:
    _live(aml, clock, 1, 2)
    start = clock().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    clock.now = start + dt.timedelta(minutes=2)
    aml.set_traffic("credit", {"credit-v1": 50, "credit-v2": 50}, {})
    clock.advance(minutes=2, seconds=30)
    metrics = FakeMetrics(aml, rpm=100, lag=dt.timedelta(minutes=1))
    metrics.set_health("credit-v2", error_rate=10)

    window = metrics.read_window(f"{WORKSPACE_ID}/onlineEndpoints/credit", start, clock())
    minutes = sorted({p.timestamp for p in window.requests})
    assert len(minutes) == 3  # 4.5 minutes have passed, one is still being ingested
    per_deployment = {(p.deployment, p.server_error): p.count for p in window.requests if p.timestamp == minutes[-1]}
    assert per_deployment == {("credit-v1", False): 50, ("credit-v2", False): 45, ("credit-v2", True): 5}


def test_follow_ups_fall_due_in_order_as_the_clock_passes_their_delay(clock: FakeClock) -> None:
    queue = FakeFollowUpQueue(clock)
    queue.schedule(FollowUp(WORKSPACE_ID, "credit", "deployment"), 300)
    queue.schedule(FollowUp(WORKSPACE_ID, "credit", "endpoint"), dt.timedelta(seconds=90))
    assert queue.take_due() == []
    clock.advance(300)

    assert [f.reason for f in queue.take_due()] == ["endpoint", "deployment"]
    assert queue.take_due() == [] and queue.next_due() is None
