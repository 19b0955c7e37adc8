"""The smoke test's scoring client on fakes: one request to one deployment, answered as its state says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.platform.errors import RetryableError
from app.rollout.decide.smoke import SmokeResult, classify

if TYPE_CHECKING:
    from app.rollout.decide.smoke import SmokeSample
    from tests.fakes.aml import FakeAzureML

#: The status the endpoint answers for a deployment in each provisioning state (the dev kit's emulator does the
#: same): a deployment being created is not serving yet, a failed one has no container.
NOT_SERVING = {"Creating": 503, "Updating": 200, "Deleting": 503, "Failed": 502, "Canceled": 502}


@dataclass(frozen=True)
class Answer:
    """A scripted answer: an HTTP status and body, or no answer at all (``status`` None), or no connection."""

    status: int | None
    body: bytes = b""
    connects: bool = True


class FakeSmoke:
    """``Deps.smoke``: ``fake(workspace)`` returns it. Records every request; ``answer`` scripts a deployment's."""

    def __init__(self, aml: FakeAzureML, *, timeout_s: float = 30.0) -> None:
        self.aml = aml
        self.timeout_s = timeout_s
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, str, str]] = []  # (endpoint, deployment, body)

    def __call__(self, gateway: Any) -> FakeSmoke:
        return self

    def answer(self, deployment: str, status: int | None, body: bytes = b"", *, connects: bool = True) -> None:
        """From now on, ``deployment`` answers ``status`` (None: nothing within the timeout)."""
        self.answers[deployment.lower()] = Answer(status, body, connects)

    def run(self, endpoint: str, deployment: str, sample: SmokeSample, wait_s: float | None = None) -> SmokeResult:
        self.requests.append((endpoint, deployment, sample.body))
        scripted = self.answers.get(deployment.lower())
        if scripted is not None and not scripted.connects:
            raise RetryableError(f"smoke request to {endpoint}/{deployment} could not connect")
        if scripted is None:
            state = self.aml.state(endpoint, deployment)
            status = 404 if state is None else NOT_SERVING.get(state, 200)
            scripted = Answer(status, b'{"predictions": [0.5]}' if status == 200 else b'{"error": "not serving"}')
        if scripted.status is None:
            return classify(None, b"", self.timeout_s, self.timeout_s)
        return classify(scripted.status, scripted.body, 0.05, self.timeout_s)
