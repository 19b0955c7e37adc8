"""The emulator's optional request limits: ARM's token buckets per principal (429) and the batch API's (529)."""

from __future__ import annotations

import pytest

from devkit.aml_emulator import ARM_AUDIENCE
from devkit.aml_emulator.limits import ARM_LIMITS, TokenBucket, operation_kind
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession

pytestmark = pytest.mark.integration


def test_a_bucket_spends_a_token_a_request_and_refills_with_time() -> None:
    bucket = TokenBucket(size=2, refill=1, tokens=2, at=0.0)
    assert bucket.take(0.0) == (True, 0.0)
    assert bucket.take(0.0) == (True, 0.0)
    taken, wait = bucket.take(0.25)
    assert not taken and wait == pytest.approx(0.75)
    assert bucket.take(1.0)[0]
    assert bucket.tokens == pytest.approx(0.0)
    assert bucket.take(100.0)[0] and bucket.tokens == pytest.approx(1.0)  # never more than the bucket holds


def test_operation_kinds_follow_arm_s_quotas() -> None:
    assert [operation_kind(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads", "reads", "writes", "writes", "writes", "deletes",
    ]  # fmt: skip
    assert ARM_LIMITS == {"reads": (250, 25), "writes": (200, 10), "deletes": (200, 10)}


def test_no_limit_by_default_and_no_ratelimit_headers(stack: DevStack, arm: ArmSession) -> None:
    answers = [arm.call("GET", "") for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert "x-ms-ratelimit-remaining-subscription-reads" not in answers[0].headers


def test_past_the_bucket_arm_answers_429_with_retry_after_for_that_principal_only(
    stack: DevStack, arm: ArmSession
) -> None:
    stack.aml.set_clock(frozen=True)  # no refill while the test runs
    stack.aml.set_request_limits({"reads": (3, 1), "writes": (200, 10)})
    answers = [arm.call("GET", "") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ms-ratelimit-remaining-subscription-reads"] for a in answers[:3]] == ["2", "1", "0"]
    refused = answers[3]
    assert refused.json()["error"]["code"] == "TooManyRequests"
    assert int(refused.headers["Retry-After"]) >= 1 and int(refused.headers["retry-after-ms"]) == 1000
    # Writes have their own bucket; another principal has its own buckets too.
    assert arm.call("PUT", "/models/m1", {"properties": {}}).status_code in (200, 201)
    other = ArmSession(stack, ARM_AUDIENCE)
    other.session.headers["Authorization"] = f"Bearer {stack.issuer.issue(ARM_AUDIENCE, 'another-client')[0]}"
    assert other.call("GET", "").status_code == 200
    # The bucket refills on the emulated clock.
    stack.aml.advance_clock(2)
    assert [arm.call("GET", "").status_code for _ in range(3)] == [200, 200, 429]
    principals = {r.principal for r in stack.aml.requests()}
    assert len(principals) == 2 and "" not in principals


def test_retry_after_is_in_wall_seconds_when_the_clock_runs_fast(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_clock(frozen=True, rate=100)
    stack.aml.set_request_limits({"reads": (1, 0.5)})
    assert arm.call("GET", "").status_code == 200
    refused = arm.call("GET", "")
    assert refused.status_code == 429
    # 2 emulated seconds to the next token, at 100 emulated seconds a second: 20 ms of the caller's time.
    assert int(refused.headers["retry-after-ms"]) == 20


def test_the_subscription_s_global_bucket_binds_every_principal(stack: DevStack, arm: ArmSession) -> None:
    stack.aml.set_clock(frozen=True)
    stack.aml.set_request_limits({"reads": (1, 0.001)})  # each principal 1, all of them together 15
    sessions = []
    for n in range(16):
        session = ArmSession(stack, ARM_AUDIENCE)
        session.session.headers["Authorization"] = f"Bearer {stack.issuer.issue(ARM_AUDIENCE, f'client-{n}')[0]}"
        sessions.append(session)
    statuses = [s.call("GET", "").status_code for s in sessions]
    assert statuses == [200] * 15 + [429]
    assert sessions[14].call("GET", "").headers["x-ms-ratelimit-remaining-subscription-global-reads"] == "0"


def test_the_control_api_sets_the_documented_limits(stack: DevStack, arm: ArmSession) -> None:
    import requests

    assert stack.ca is not None
    url = f"{stack.aml.url}/_emulator/limits"
    assert requests.put(url, json={"arm": "documented"}, verify=str(stack.ca.ca_path), timeout=10).status_code == 204
    assert arm.call("GET", "").headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert requests.delete(url, verify=str(stack.ca.ca_path), timeout=10).status_code == 204
    assert "x-ms-ratelimit-remaining-subscription-reads" not in arm.call("GET", "").headers
