"""A 429 pauses every call of the process to that host, for Retry-After; not just the call that got it."""

from __future__ import annotations

import datetime as dt

import pytest

from app.azure.throttle import GATE, Throttled, ThrottleGate, host_of, retry_after_s


class FakeTime:
    """A monotonic clock the gate reads, and the sleep it calls (which moves the clock instead of waiting)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def gate(fake: FakeTime) -> ThrottleGate:
    return ThrottleGate(clock=fake.clock, sleep=fake.sleep)


def test_retry_after_is_read_as_azure_core_reads_it() -> None:
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"retry-after-ms": "250", "Retry-After": "1"}) == 0.25
    assert retry_after_s({"x-ms-retry-after-ms": "40"}) == 0.04
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_s({}) is None


def test_a_429_makes_every_later_call_to_that_host_wait_for_its_retry_after(gate: ThrottleGate, fake: FakeTime) -> None:
    gate.observe("arm", 429, {"Retry-After": "3"})
    gate.wait("arm")
    assert fake.slept == [3.0]
    gate.wait("arm")  # the pause is over
    gate.wait("storage")  # another host is not paused
    assert fake.slept == [3.0] and gate.throttled == {"arm": 1} and gate.waited_s == {"arm": 3.0}


def test_a_pause_longer_than_a_call_may_wait_is_not_waited_but_raised(gate: ThrottleGate, fake: FakeTime) -> None:
    gate.observe("arm", 429, {"Retry-After": "60"})
    with pytest.raises(Throttled) as raised:
        gate.wait("arm", max_wait_s=8)
    assert raised.value.status_code == 429 and raised.value.seconds == pytest.approx(60)
    assert fake.slept == []


def test_answers_that_are_not_throttling_pause_nothing(gate: ThrottleGate, fake: FakeTime) -> None:
    gate.observe("arm", 200, {"Retry-After": "5"})
    gate.observe("arm", 503, {})  # an outage without Retry-After: the retry policy's own back-off applies
    gate.observe("arm", 500, {"Retry-After": "5"})
    gate.wait("arm")
    assert fake.slept == [] and gate.paused_s("arm") == 0
    gate.observe("metrics", 529, {})  # Azure Monitor's batch API throttling, without a Retry-After
    assert gate.paused_s("metrics") == pytest.approx(1.0)


def test_reads_run_short_below_the_reserve_arm_reports_or_while_paused(gate: ThrottleGate, fake: FakeTime) -> None:
    assert not gate.reads_short("arm")
    gate.observe("arm", 200, {"x-ms-ratelimit-remaining-subscription-reads": "120"})
    assert not gate.reads_short("arm", reserve=50)
    gate.observe("arm", 200, {"x-ms-ratelimit-remaining-subscription-reads": "10"})
    assert gate.reads_short("arm", reserve=50)
    gate.observe("arm", 200, {"x-ms-ratelimit-remaining-subscription-reads": "240"})
    gate.observe("arm", 429, {"Retry-After": "2"})
    assert gate.reads_short("arm")
    fake.now += 2
    assert not gate.reads_short("arm")


def test_the_host_is_the_throttling_scope() -> None:
    assert host_of("https://management.azure.com/subscriptions/x?api-version=1") == "management.azure.com"
    assert host_of("https://127.0.0.1:4443/eastus/subscriptions/x") == "127.0.0.1:4443"


@pytest.mark.integration
def test_after_arm_s_429_no_client_of_the_process_sends_until_retry_after(stack: object) -> None:
    """The app's Azure ML client is throttled; then the app's metrics client, another client on the same ARM host,
    does not send at all while ARM asked to be left alone (a wait longer than a call may take is raised)."""
    from azure.core.exceptions import HttpResponseError

    from app.azure.aml import AmlGateway
    from app.azure.credential import get_credential
    from app.azure.metrics import MetricsReader
    from app.platform.workspace import WorkspaceRef
    from devkit.stack import SUBSCRIPTION_ID, WORKSPACE_ID, DevStack

    assert isinstance(stack, DevStack)
    get_credential.cache_clear()
    GATE.reset()
    stack.aml.set_clock(frozen=True)
    stack.aml.set_request_limits({"reads": (1, 0.01)})  # one read, then one every 100 s
    gateway = AmlGateway(WorkspaceRef.from_arm_id(WORKSPACE_ID), get_credential())
    try:
        assert gateway.observe("nothing-here") is None  # the bucket's one read (404: no such endpoint)
        with pytest.raises(HttpResponseError) as refused:
            gateway.observe("nothing-here")
        assert refused.value.status_code == 429
        sent = len(stack.aml.requests())
        reader = MetricsReader(get_credential(), SUBSCRIPTION_ID)
        with pytest.raises(Throttled):
            reader.read_window(f"{WORKSPACE_ID}/onlineEndpoints/nothing-here", *_window())
        assert len(stack.aml.requests()) == sent  # nothing was sent
    finally:
        GATE.reset()


def _window() -> tuple[dt.datetime, dt.datetime]:
    end = dt.datetime.now(dt.UTC)
    return end - dt.timedelta(minutes=5), end
