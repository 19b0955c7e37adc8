"""The ledger on the in-memory table: no sockets, no sleeps."""

from __future__ import annotations

import pytest

from app.rollout.ledger.ledger import RolloutLedger
from tests.fakes import FakeTableStore


@pytest.fixture
def store() -> FakeTableStore:
    return FakeTableStore()


@pytest.fixture
def ledger(store: FakeTableStore) -> RolloutLedger:
    return RolloutLedger(store)


@pytest.fixture(autouse=True)
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The attempts after which a writer paused (an ETag conflict), recorded instead of slept."""
    attempts: list[int] = []
    monkeypatch.setattr("app.rollout.ledger.ledger.backoff", attempts.append)
    monkeypatch.setattr("app.platform.tables.backoff", attempts.append)
    return attempts
