"""Rollout notifications: type and severity per state, the facts, and the status link the Function App's host gives."""

from __future__ import annotations

import datetime as dt

import pytest

from app.handlers import model_registered
from app.intake import events
from app.intake.events import parse
from app.intake.outcome import OutcomeKind
from app.rollout.decide.model import ModelInfo, Rollout, State
from app.rollout.run.notifications import NOTIFY_ON, rollout_notification
from tests.envelopes import envelope
from tests.fakes import WORKSPACE, FakeNotifier, FakeTableStore, make_deps, make_plan, make_settings

pytestmark = pytest.mark.fast

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
PLAN = make_plan("2", traffic=20)
ROLLOUT = Rollout(plan=PLAN, state=State.CANARY, created_at=NOW, updated_at=NOW, event_ids=("evt-1",))


def test_every_state_but_pending_notifies() -> None:
    assert set(NOTIFY_ON) == set(State) - {State.PENDING}


def test_the_status_link_is_on_the_function_apps_host() -> None:
    sent = rollout_notification(ROLLOUT, State.CANARY, "20% live", status_host="fn-aml.azurewebsites.net")
    assert sent.links["status"] == "https://fn-aml.azurewebsites.net/api/rollouts?endpoint=credit"
    assert (sent.type, sent.severity, sent.source_event_id) == ("AmlEvents.Rollout.Canary", "info", "evt-1")
    assert sent.links["endpoint"].startswith("https://ml.azure.com/endpoints/realtime/credit/detail?wsid=")


def test_no_host_no_status_link() -> None:
    sent = rollout_notification(ROLLOUT, State.FAILED, "timed out")
    assert set(sent.links) == {"endpoint", "model"}
    assert sent.severity == "error"


def test_a_failure_carries_the_last_twenty_log_lines() -> None:
    logs = "\n".join(f"line {n}" for n in range(1, 31))
    sent = rollout_notification(ROLLOUT, State.FAILED, "crash loop", logs)
    assert sent.facts["logs"].splitlines() == [f"line {n}" for n in range(11, 31)]


class _Gateway:
    def __init__(self, model: ModelInfo) -> None:
        self.model = model

    def get_model(self, name: str, version: str) -> ModelInfo:
        assert (name, version) == (self.model.name, self.model.version)
        return self.model


@pytest.mark.parametrize(
    ("host", "link"), [("", None), ("fn.example", "https://fn.example/api/rollouts?endpoint=credit")]
)
def test_the_handler_takes_the_host_from_settings(host: str, link: str | None) -> None:
    model = ModelInfo("credit", "2", "mlflow_model", {"deploy": "true", "endpoint": "credit"})
    notifier = FakeNotifier()
    deps = make_deps(
        make_settings(deploy_mode="plan", status_host=host),
        notifier,
        aml=lambda workspace: _Gateway(model),
        table=lambda name: FakeTableStore(),
    )
    body = {
        "id": "evt-2",
        "topic": WORKSPACE.arm_id,
        "eventType": events.MODEL_REGISTERED,
        "subject": "models/credit:2",
        "data": {"modelName": "credit", "modelVersion": "2"},
    }
    outcome = model_registered.handle(parse(envelope(body)), deps)
    assert outcome.kind is OutcomeKind.PLANNED
    [sent] = notifier.sent
    assert sent.type == "AmlEvents.Rollout.Planned"
    assert sent.links.get("status") == link
