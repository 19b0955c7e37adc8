"""The replay CLI: POSTing to a Functions host the way Event Grid does, and the in-process mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import replay
from tests.receiver import Receiver, running

EVENTS = Path(__file__).parents[1] / "events"


@pytest.fixture
def host() -> Iterator[Receiver]:
    with running(default_status=202) as server:
        yield server


def test_posts_each_event_as_event_grid_does(host: Receiver) -> None:
    events = [
        json.loads((EVENTS / "run_completed.eventgrid.camel.json").read_text())[0],
        json.loads((EVENTS / "run_completed.cloudevents.camel.json").read_text())[0],
    ]
    lines = replay.post_to_host(host.url, events)
    assert [call.path for call in host.received] == ["/runtime/webhooks/EventGrid?functionName=on_aml_event"] * 2
    assert all(call.headers["aeg-event-type"] == "Notification" for call in host.received)
    assert host.bodies == [[events[0]], [events[1]]]  # an array of one, per request
    assert lines[0].endswith("-> HTTP 202")


def test_a_5xx_is_redelivered_and_a_4xx_is_not(host: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay.time, "sleep", lambda seconds: None)
    event = json.loads((EVENTS / "run_completed.eventgrid.camel.json").read_text())[0]
    host.statuses = [500, 500]
    assert replay.post_to_host(host.url, [event], max_deliveries=3)[0].endswith("-> HTTP 202")
    assert len(host.received) == 3
    host.received.clear()
    host.statuses = [400]
    assert replay.post_to_host(host.url, [event], max_deliveries=3)[0].endswith("-> HTTP 400")
    assert len(host.received) == 1


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="--to must be an http"):
        replay.post_to_host("file:///etc/passwd", [{"id": "x"}])


def test_in_process_replay_prints_one_line_per_event(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from devkit.stack import WORKSPACE_ID
    from shared.deps import reset_production_deps

    monkeypatch.setenv("AML_ALLOWED_WORKSPACES", WORKSPACE_ID)
    for name in ("NOTIFY_TOPIC_ENDPOINT", "NOTIFY_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    reset_production_deps()
    try:
        code = replay.main(
            [
                str(EVENTS / "run_status_changed.eventgrid.pascal.json"),
                str(EVENTS / "model_deployed.cloudevents.camel.json"),
            ]
        )
    finally:
        reset_production_deps()
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].endswith(
        "RunStatusChanged experiments/0fa9dfaa-cba3-4fa7-b590-23e48548f5c1/runs/train_20261122_02"
        " -> notified: run train_20261122_02 failed"
    )
    assert out[1].endswith("-> notified: service credit-svc deployed (credit_risk.v2:1, credit_risk.v2:2)")
