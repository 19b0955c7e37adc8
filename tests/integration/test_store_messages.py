"""What the table store tells an operator when it recreates a deleted table: information, not a warning."""

from __future__ import annotations

import logging

import pytest

from app.azure.tables import TableStore
from app.platform.settings_reader import settings_from_env
from devkit.stack import DevStack

pytestmark = pytest.mark.integration


def test_a_recreated_table_is_reported_as_information(stack: DevStack, caplog: pytest.LogCaptureFixture) -> None:
    store = TableStore.from_settings(settings_from_env(stack.env), "storemsg", lambda: pytest.fail("no credential"))
    store.insert("p", "k", {"n": 1})
    store.client.delete_table()
    caplog.set_level(logging.DEBUG, logger="app.azure.tables")
    assert list(store.query("PartitionKey eq 'p'")) == []
    records = [r for r in caplog.records if r.name == "app.azure.tables"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "table storemsg did not exist (new, or deleted since); created it and carried on")
    ]
