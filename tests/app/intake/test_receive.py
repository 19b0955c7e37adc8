"""The trigger's first step: reading the worker's event object is under the error policy, whatever the library."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func
import pytest

from app.handlers import HANDLERS
from app.intake import events
from app.intake.dispatch import receive
from app.intake.outcome import OutcomeKind
from devkit.runner import to_function_event
from tests.fakes import WORKSPACE_ID, FakeNotifier, make_deps

pytestmark = pytest.mark.fast

# A completion notifies without an Azure ML call (a failure is re-read from Azure ML first).
RUN_COMPLETED = {"experimentId": "e", "experimentName": "credit-train", "runId": "r1", "runType": "azureml.scriptrun"}


def _body(schema: str) -> dict[str, Any]:
    if schema == "CloudEvents":
        return {
            "specversion": "1.0",
            "id": "evt-ce",
            "source": WORKSPACE_ID,
            "subject": "experiments/e/runs/r1",
            "type": events.RUN_COMPLETED,
            "time": "2026-11-22T10:00:00Z",
            "data": RUN_COMPLETED,
        }
    return {
        "id": "evt-eg",
        "topic": WORKSPACE_ID,
        "subject": "experiments/e/runs/r1",
        "eventType": events.RUN_COMPLETED,
        "eventTime": "2026-11-22T10:00:00Z",
        "data": RUN_COMPLETED,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


@pytest.mark.parametrize("schema", ["EventGrid", "CloudEvents"])
def test_an_azure_functions_without_cloud_event_still_handles_both_schemas(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's own azure-functions (Python <= 3.12, no PYTHON_ISOLATE_WORKER_DEPENDENCIES) can predate 1.25.
    event = to_function_event(_body(schema))
    monkeypatch.delattr(func, "CloudEvent")
    notifier = FakeNotifier()
    outcome = receive(event, lambda: make_deps(notifier=notifier), HANDLERS)
    assert outcome.kind is OutcomeKind.HANDLED
    assert notifier.types == ["AmlEvents.Run.Completed"]
    assert notifier.sent[0].workspace.arm_id == WORKSPACE_ID


class _Unreadable:
    """An event object whose body cannot be read (a worker/library mismatch of some other kind)."""

    id = "evt-odd"
    event_type = events.RUN_STATUS_CHANGED

    def get_json(self) -> Any:
        raise ValueError("body is not JSON")


def test_an_unreadable_event_is_acknowledged_and_logged_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    notifier = FakeNotifier()
    with caplog.at_level(logging.ERROR):
        outcome = receive(_Unreadable(), lambda: make_deps(notifier=notifier), HANDLERS)  # type: ignore[arg-type]
    assert outcome.kind is OutcomeKind.FAILED
    assert notifier.sent == []
    assert "evt-odd" in caplog.text and "acknowledged" in caplog.text
