"""The promotion records on the in-memory table: owed once, claimed by one invocation at a time, a claim that outlives
its invocation taken over, a dropped one owed again, and only open ones listed."""

from __future__ import annotations

import datetime as dt

import pytest

from app.rollout.ledger.promotions import CLAIM_FOR, PromotionRecords, PromotionStatus, promotion_key
from tests.fakes import WORKSPACE_ID, FakeTableStore

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
KEY = promotion_key(WORKSPACE_ID, "credit", "credit-v2")


@pytest.fixture
def records() -> PromotionRecords:
    return PromotionRecords(FakeTableStore())


def _owe(records: PromotionRecords, at: dt.datetime = NOW) -> None:
    records.owe(WORKSPACE_ID, "credit", "credit-v2", "reg-promo", at)


def test_a_promotion_is_owed_once(records: PromotionRecords) -> None:
    _owe(records)
    _owe(records, NOW + dt.timedelta(minutes=5))  # the transition decided again: nothing changes

    [record] = records.open()
    assert (record.status, record.registry, record.next_attempt_at) == (PromotionStatus.OWED, "reg-promo", NOW)


def test_one_invocation_holds_it_and_another_takes_over_after_the_claim(records: PromotionRecords) -> None:
    _owe(records)

    first = records.claim(KEY, NOW)
    second = records.claim(KEY, NOW + dt.timedelta(minutes=1))
    late = records.claim(KEY, NOW + CLAIM_FOR)

    assert first is not None and first.status is PromotionStatus.SHARING
    assert second is None  # held
    assert late is not None and late.claimed_until == NOW + 2 * CLAIM_FOR  # the first invocation is gone


def test_a_postponed_promotion_is_not_due_before_its_time(records: PromotionRecords) -> None:
    _owe(records)
    claimed = records.claim(KEY, NOW)
    assert claimed is not None

    records.postpone(claimed, NOW + dt.timedelta(minutes=2), "HttpResponseError: 500")

    assert records.claim(KEY, NOW + dt.timedelta(minutes=1)) is None
    again = records.claim(KEY, NOW + dt.timedelta(minutes=2))
    assert again is not None and again.attempts == 1 and again.last_error.startswith("HttpResponseError")


def test_a_wait_that_is_no_failure_counts_no_attempt(records: PromotionRecords) -> None:
    _owe(records)
    claimed = records.claim(KEY, NOW)
    assert claimed is not None

    records.postpone(claimed, NOW, "DEPLOY_MODE=hold", attempt=False)

    found = records.get(KEY)
    assert found is not None and found.attempts == 0 and found.status is PromotionStatus.OWED


def test_a_finished_promotion_is_not_listed_or_claimed(records: PromotionRecords) -> None:
    _owe(records)
    claimed = records.claim(KEY, NOW)
    assert claimed is not None

    records.finish(
        claimed, PromotionStatus.PROMOTED, asset_id="azureml://registries/reg-promo/models/credit/versions/2"
    )

    assert records.open() == [] and records.claim(KEY, NOW + CLAIM_FOR) is None
    done = records.get(KEY)
    assert done is not None and done.asset_id.endswith("/versions/2")
    _owe(records)  # a promoted one is not owed again
    assert records.open() == []


def test_a_dropped_promotion_is_owed_again_when_its_rollout_is_proven_again(records: PromotionRecords) -> None:
    _owe(records)
    claimed = records.claim(KEY, NOW)
    assert claimed is not None
    records.finish(claimed, PromotionStatus.DROPPED, error="the rollout is rolled_back")

    _owe(records, NOW + dt.timedelta(hours=1))  # an operator's retry brought it live again

    [record] = records.open()
    assert record.status is PromotionStatus.OWED and record.attempts == 0
