"""The endpoint lease: one holder at a time, a new token per acquisition, fenced writes, intents settled."""

from __future__ import annotations

import datetime as dt

import pytest

from app.platform.tables import Conflict
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.intents import Intent
from app.rollout.decide.model import DeploymentView
from app.rollout.ledger.indexes import ACTIVE_INDEX
from app.rollout.ledger.leases import MAX_LISTED_CHARS, EndpointLeases, EndpointRecord, Lease, LeaseLost
from app.rollout.ledger.ledger import RolloutLedger
from app.rollout.ledger.rows import LEASE_KEY, partition_key
from tests.fakes import WORKSPACE_ID, FakeTableStore

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
PK = partition_key(WORKSPACE_ID, "credit")


@pytest.fixture
def leases(ledger: RolloutLedger) -> EndpointLeases:
    return ledger.leases


def _acquire(leases: EndpointLeases, owner: str = "instance-a", at: dt.datetime = NOW) -> Lease:
    lease = leases.acquire(WORKSPACE_ID, "credit", owner, at, 60)
    assert lease is not None
    return lease


def _intent(lease: Lease, traffic: dict[str, int]) -> Intent:
    return intent_rules.new_intent(lease.record.intents, lease.token, "credit-v2", traffic, {}, NOW)


def test_an_endpoint_never_leased_has_an_empty_record(leases: EndpointLeases) -> None:
    assert leases.read(WORKSPACE_ID, "credit") == EndpointRecord()


def test_only_one_instance_holds_the_lease_until_it_expires(leases: EndpointLeases) -> None:
    first = _acquire(leases)
    assert (first.token, first.record.owner, first.record.until) == (1, "instance-a", NOW + 60 * SECOND)
    assert leases.acquire(WORKSPACE_ID, "credit", "instance-b", NOW + 59 * SECOND, 60) is None
    again = _acquire(leases, "instance-a", NOW + 30 * SECOND)  # its holder may take it again
    assert again.token == 2
    taken = _acquire(leases, "instance-b", NOW + 91 * SECOND)  # expired: taken over, with a new token
    assert (taken.token, taken.record.owner) == (3, "instance-b")
    assert leases.read(WORKSPACE_ID, "credit").owner == "instance-b"


def test_two_instances_acquiring_at_once_get_one_lease(leases: EndpointLeases, store: FakeTableStore) -> None:
    other = RolloutLedger(store).leases
    won: list[Lease | None] = []
    store.before_writing(PK, LEASE_KEY, lambda: won.append(other.acquire(WORKSPACE_ID, "credit", "b", NOW, 60)))
    assert leases.acquire(WORKSPACE_ID, "credit", "a", NOW, 60) is None
    [lease] = won
    assert lease is not None and leases.read(WORKSPACE_ID, "credit").owner == "b"


def test_a_lease_taken_over_fences_every_write_of_the_old_holder(leases: EndpointLeases, store: FakeTableStore) -> None:
    old = _acquire(leases)
    renewed = leases.renew(old, NOW + 30 * SECOND, 60)
    assert renewed.record.until == NOW + 90 * SECOND
    later = NOW + 91 * SECOND
    new = _acquire(leases, "instance-b", later)
    assert new.token == old.token + 1
    writes = len(store.writes)
    with pytest.raises(LeaseLost) as caught:
        leases.renew(renewed, NOW + 60 * SECOND, 60, _intent(renewed, {"credit-v2": 100}))
    assert isinstance(caught.value, Conflict)
    with pytest.raises(LeaseLost):
        leases.update(renewed, NOW + 60 * SECOND, drift={"at": "now"})
    assert [op for op, _, _ in store.writes[writes:]] == ["upsert"]  # the index entry only; no lease write
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.owner, record.token, record.intents, record.drift) == ("instance-b", new.token, (), None)


def test_an_expired_lease_sends_no_write_even_if_nobody_took_it(leases: EndpointLeases, store: FakeTableStore) -> None:
    lease = _acquire(leases)
    writes = len(store.writes)
    with pytest.raises(LeaseLost):
        leases.renew(lease, NOW + 60 * SECOND, 60)
    with pytest.raises(LeaseLost):
        leases.update(lease, NOW + 60 * SECOND, drift={"at": "now"})
    assert len(store.writes) == writes


def test_an_intent_is_recorded_with_the_renewal_and_indexes_the_endpoint_first(
    leases: EndpointLeases, store: FakeTableStore
) -> None:
    lease = _acquire(leases)
    del store.writes[:]
    intent = _intent(lease, {"credit-v2": 100})
    renewed = leases.renew(lease, NOW, 60, intent)
    assert renewed.record.intents == (intent,)
    assert [(op, p) for op, p, _ in store.writes] == [("upsert", ACTIVE_INDEX), ("replace", PK)]
    assert store.rows[(PK, LEASE_KEY)].data["Active"] is True  # a write in doubt: observed every tick
    assert leases.read(WORKSPACE_ID, "credit").intents == (intent,)


def test_only_the_newest_intents_are_kept(leases: EndpointLeases) -> None:
    lease = _acquire(leases)
    for n in range(intent_rules.INTENT_LIMIT + 3):
        lease = leases.renew(lease, NOW, 60, _intent(lease, {f"credit-v{n}": 100}))
    assert len(lease.record.intents) == intent_rules.INTENT_LIMIT
    assert lease.record.intents[-1].traffic == {f"credit-v{intent_rules.INTENT_LIMIT + 2}": 100}


def test_an_intent_settled_under_the_lease_is_no_longer_in_doubt(leases: EndpointLeases, store: FakeTableStore) -> None:
    lease = _acquire(leases)
    intent = _intent(lease, {"credit-v2": 100})
    lease = leases.renew(lease, NOW, 60, intent)
    settled = leases.settle_intent(lease, intent.seq, intent_rules.ACCEPTED, NOW)
    assert settled is not None
    assert [i.status for i in settled.record.intents] == [intent_rules.ACCEPTED]
    assert store.rows[(PK, LEASE_KEY)].data["Active"] is False
    assert intent_rules.current(leases.read(WORKSPACE_ID, "credit").intents) == settled.record.intents[0]


def test_an_intent_settled_after_the_lease_was_lost_is_recorded_on_the_fresh_row(
    leases: EndpointLeases, store: FakeTableStore
) -> None:
    lease = _acquire(leases)
    intent = _intent(lease, {"credit-v2": 100})
    lease = leases.renew(lease, NOW, 60, intent)
    new = _acquire(leases, "instance-b", NOW + 61 * SECOND)
    assert leases.settle_intent(lease, intent.seq, intent_rules.REFUSED, NOW + 62 * SECOND) is None
    record = leases.read(WORKSPACE_ID, "credit")
    assert [i.status for i in record.intents] == [intent_rules.REFUSED]
    assert (record.owner, record.token) == ("instance-b", new.token)  # the new holder's lease is untouched


def test_a_release_keeps_the_record_and_frees_the_endpoint(leases: EndpointLeases) -> None:
    lease = _acquire(leases)
    leases.release(lease, NOW + SECOND, observed_traffic={"credit-v1": 100}, observed_at=NOW)
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.owner, record.until, record.token) == ("", NOW + SECOND, lease.token)
    assert (record.observed_traffic, record.observed_at) == ({"credit-v1": 100}, NOW)
    assert _acquire(leases, "instance-b", NOW + 2 * SECOND).token == lease.token + 1


def test_a_release_after_a_takeover_changes_nothing(leases: EndpointLeases) -> None:
    old = _acquire(leases)
    new = _acquire(leases, "instance-b", NOW + 61 * SECOND)
    leases.release(old, NOW + 62 * SECOND, observed_traffic={"credit-v9": 100})
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.owner, record.token, record.observed_traffic) == ("instance-b", new.token, None)
    assert leases.acquire(WORKSPACE_ID, "credit", "instance-c", NOW + 62 * SECOND, 60) is None


def test_drift_and_observation_are_kept_on_the_record(leases: EndpointLeases) -> None:
    lease = _acquire(leases)
    drift = {"at": NOW.isoformat(), "observed": {"credit-v1": 100}, "intended": {"credit-v2": 100}}
    lease = leases.update(lease, NOW, drift=drift, observed_traffic={"credit-v1": 100}, observed_mirror={"x": 5})
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.drift, record.observed_traffic, record.observed_mirror) == (drift, {"credit-v1": 100}, {"x": 5})
    leases.update(lease, NOW, drift=None)
    assert leases.read(WORKSPACE_ID, "credit").drift is None


def test_the_deployments_list_is_kept_with_the_observation_and_survives_the_next_acquisition(
    leases: EndpointLeases,
) -> None:
    listed = (
        DeploymentView("credit-v1", "Succeeded", {"model-name": "credit", "model-version": "1"}, "azureml:credit:1"),
        DeploymentView("credit-v2", "Creating"),
    )
    leases.release(_acquire(leases), NOW, observed_traffic={"credit-v1": 100}, observed_deployments=listed)
    assert leases.read(WORKSPACE_ID, "credit").observed_deployments == listed
    assert _acquire(leases, "instance-b", NOW + SECOND).record.observed_deployments == listed


def test_a_renewal_before_a_deployment_write_drops_the_kept_list_at_once_and_a_split_s_keeps_it(
    leases: EndpointLeases,
) -> None:
    listed = (DeploymentView("credit-v1", "Succeeded"),)
    leases.release(_acquire(leases), NOW, observed_traffic={"credit-v1": 100}, observed_deployments=listed)
    lease = _acquire(leases, at=NOW + SECOND)
    lease = leases.renew(lease, NOW + SECOND, 60, _intent(lease, {"credit-v1": 100}))
    assert leases.read(WORKSPACE_ID, "credit").observed_deployments == listed

    leases.renew(lease, NOW + 2 * SECOND, 60, forget_list=True)
    # On the row before the write is sent: a lease lost before its release cannot leave a list from before it.
    assert leases.read(WORKSPACE_ID, "credit").observed_deployments is None


@pytest.mark.parametrize(
    "listed",
    [
        (DeploymentView("credit-v1", "Succeeded", {"note": "x" * MAX_LISTED_CHARS}),),  # too long for the row
        None,
    ],
    ids=["too-long", "none"],
)
def test_a_list_not_kept_reads_back_as_unknown(leases: EndpointLeases, listed: tuple[DeploymentView, ...]) -> None:
    leases.release(_acquire(leases), NOW, observed_traffic={"credit-v1": 100}, observed_deployments=listed)
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.observed_traffic, record.observed_deployments) == ({"credit-v1": 100}, None)


@pytest.mark.parametrize("listed", ['"a string"', '[["only", "two"]]', "[[1, 2, 3, 4]]"])
def test_an_unreadable_deployments_list_is_unknown_and_the_split_is_kept(
    leases: EndpointLeases, store: FakeTableStore, listed: str
) -> None:
    leases.release(_acquire(leases), NOW, observed_traffic={"credit-v1": 100})
    row = store.rows[(PK, LEASE_KEY)]
    store.replace(row, {**row.data, "Observed": f'{{"traffic": {{"credit-v1": 100}}, "deployments": {listed}}}'})
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.observed_traffic, record.observed_deployments) == ({"credit-v1": 100}, None)


def test_an_unreadable_intents_property_leaves_the_lease_working(leases: EndpointLeases, store: FakeTableStore) -> None:
    lease = _acquire(leases)
    row = store.rows[(PK, LEASE_KEY)]
    store.replace(row, {**row.data, "Intents": "{not json", "Until": NOW - SECOND})
    record = leases.read(WORKSPACE_ID, "credit")
    assert (record.intents, record.observed_traffic, record.token) == ((), None, lease.token)
    assert _acquire(leases, "instance-b").token == lease.token + 1


def test_the_engines_lease_names_on_the_ledger_reach_the_same_leases(ledger: RolloutLedger) -> None:
    lease = ledger.acquire_lease(WORKSPACE_ID, "credit", "instance-a", NOW, 60)
    assert lease is not None
    intent = _intent(lease, {"credit-v2": 100})
    lease = ledger.renew_lease(lease, NOW, 60, intent)
    lease = ledger.update_lease(lease, NOW, drift={"at": "now"})
    settled = ledger.settle_intent(lease, intent.seq, intent_rules.ACCEPTED, NOW)
    assert settled is not None
    ledger.release_lease(settled, NOW + SECOND)
    record = ledger.leases.read(WORKSPACE_ID, "credit")
    assert (record.owner, record.drift, [i.status for i in record.intents]) == (
        "",
        {"at": "now"},
        [intent_rules.ACCEPTED],
    )
