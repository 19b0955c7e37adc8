"""The App Service managed-identity token endpoint, as DefaultAzureCredential uses it."""

from __future__ import annotations

import os

import pytest
import requests
from azure.identity import DefaultAzureCredential

from devkit.identity import DEVKIT_CLIENT_ID, TokenEndpoint
from devkit.stack import CONFLICTING_ENV, DevStack, applied_env

pytestmark = pytest.mark.integration


def test_default_azure_credential_gets_its_token_here(stack: DevStack) -> None:
    token = DefaultAzureCredential().get_token("https://management.azure.com/.default")

    claims = stack.issuer.verify(token.token, "https://management.azure.com")
    assert claims is not None and claims["appid"] == DEVKIT_CLIENT_ID
    assert token.expires_on > claims["iat"]
    [request] = stack.identity.requests  # type: ignore[union-attr]
    assert (request.resource, request.api_version, request.client_id, request.status) == (
        "https://management.azure.com",
        "2019-08-01",
        DEVKIT_CLIENT_ID,
        200,
    )


def test_wrong_identity_header_or_missing_resource_is_refused() -> None:
    with TokenEndpoint() as endpoint:
        wrong = requests.get(
            endpoint.url,
            params={"resource": "https://management.azure.com", "api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": "guess"},
            timeout=5,
        )
        missing = requests.get(
            endpoint.url,
            params={"api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": endpoint.identity_header},
            timeout=5,
        )
        assert (wrong.status_code, missing.status_code) == (401, 400)
        assert [r.status for r in endpoint.requests] == [401, 400]


def test_applied_env_removes_rival_credentials_and_restores_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-a-real-secret")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://previous")
    monkeypatch.delenv("AZUREML_DEV_URL_MFE", raising=False)

    with applied_env({"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token", "AZUREML_DEV_URL_MFE": "https://x"}):
        assert not any(key in os.environ for key in CONFLICTING_ENV)
        assert os.environ["IDENTITY_ENDPOINT"] == "http://127.0.0.1:1/msi/token"

    assert os.environ["AZURE_CLIENT_SECRET"] == "not-a-real-secret"
    assert os.environ["IDENTITY_ENDPOINT"] == "http://previous"
    assert "AZUREML_DEV_URL_MFE" not in os.environ
