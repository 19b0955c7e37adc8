"""Where an error came from, judged on real SDK errors: Azurite's answers through azure-data-tables."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from app.platform.errors import describe_error, error_source, is_retryable, permission_problem
from devkit.azurite import ACCOUNT_KEY
from devkit.stack import DevStack

if TYPE_CHECKING:
    from azure.data.tables import TableClient

pytestmark = pytest.mark.integration


def _table(connection_string: str, name: str) -> TableClient:
    # SDK on first use, as the app does.
    from azure.data.tables import TableServiceClient

    return TableServiceClient.from_connection_string(connection_string, retry_total=0).get_table_client(name)


def test_a_table_403_is_a_retryable_permission_problem_of_storage(stack: DevStack) -> None:
    wrong_key = base64.b64encode(b"not the account key at all, 32b").decode()
    table = _table(stack.env["AzureWebJobsStorage"].replace(ACCOUNT_KEY, wrong_key), "rollouts")
    with pytest.raises(HttpResponseError) as caught:
        table.get_entity("p", "r")
    err = caught.value
    assert err.status_code == 403
    assert error_source(err) == "permission"
    assert is_retryable(err)
    problem = permission_problem(err)
    assert problem is not None and "storage" in problem and "403" in problem  # which service refused, and how


def test_a_table_error_is_reported_as_storage_not_azure_ml(stack: DevStack) -> None:
    table = _table(stack.env["AzureWebJobsStorage"], "nosuchtable")
    with pytest.raises(ResourceNotFoundError) as caught:
        table.get_entity("p", "r")
    assert error_source(caught.value) == "storage"
    assert "ResourceNotFoundError" in describe_error(caught.value)
