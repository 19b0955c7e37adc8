"""Fixtures for the contract tests: the SDK-derived contract, a raw ARM session, SDK clients that record answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from devkit.contract import Contract
from devkit.stack import SUBSCRIPTION_ID, DevStack

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineResponse
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient


@dataclass(frozen=True)
class Exchange:
    """One request an SDK sent and the emulator's answer, as seen on the wire."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """A ``raw_response_hook`` for azure-core clients: keeps every response the real SDK received."""

    exchanges: list[Exchange] = field(default_factory=list)

    def __call__(self, pipeline_response: PipelineResponse[Any, Any]) -> None:
        from azure.core.exceptions import ResponseNotReadError

        response = pipeline_response.http_response
        try:
            text = response.text()
        except ResponseNotReadError:  # a streamed answer (LRO initial call): read it; the SDK reads the cache
            response.read()
            text = response.text()
        self.exchanges.append(
            Exchange(
                method=pipeline_response.http_request.method,
                url=pipeline_response.http_request.url,
                status=response.status_code,
                headers=dict(response.headers),
                body=json.loads(text) if text else None,
            )
        )


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def recorded_mgmt(stack: DevStack, recorder: Recorder) -> MachineLearningServicesMgmtClient:
    """The management SDK the app writes with, pointed at the emulator, recording every response."""
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    return MachineLearningServicesMgmtClient(
        DefaultAzureCredential(), SUBSCRIPTION_ID, base_url=stack.aml.url, retry_total=0, raw_response_hook=recorder
    )
