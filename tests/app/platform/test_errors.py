"""The error policy's classification: what is a permission problem, and where an error came from."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import CredentialUnavailableError

from app.platform.errors import describe_error, error_source, is_retryable, permission_problem

pytestmark = pytest.mark.fast


def test_a_credential_that_cannot_get_a_token_is_a_retryable_identity_problem() -> None:
    for err in (CredentialUnavailableError("no managed identity endpoint"), ClientAuthenticationError("expired")):
        assert error_source(err) == "permission"
        assert is_retryable(err)
        problem = permission_problem(err)
        assert problem is not None and type(err).__name__ in problem  # the credential's own error, for the operator


def test_a_bug_is_an_internal_error_named_by_its_type() -> None:
    err = KeyError("instance_type")
    assert (error_source(err), permission_problem(err), is_retryable(err)) == ("internal", None, False)
    assert "KeyError" in describe_error(err) and "instance_type" in describe_error(err)


def test_a_network_failure_is_network() -> None:
    err = ServiceRequestError("connection refused")
    assert error_source(err) == "network"
    assert is_retryable(err)
