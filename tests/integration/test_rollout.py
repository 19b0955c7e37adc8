"""ModelRegistered → rollout, end to end: real azure-ai-ml / mgmt / data-tables / eventgrid SDKs, local emulators."""

from __future__ import annotations

import pytest

from devkit.harness import OfflineApp, model_registered

pytestmark = pytest.mark.integration


def test_new_endpoint_goes_live_blue_green(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit_risk.v2", 1, tags={"deploy": "true", "endpoint": "credit"})
    [delivery] = app.deliver(model_registered("credit_risk.v2", 1))
    assert delivery.acknowledged, delivery.attempts
    ticks = app.run_until_settled()
    rollout = app.rollout("credit-risk-v2-v1")
    assert rollout["state"] == "live", rollout
    assert app.traffic("credit") == {"credit-risk-v2-v1": 100}
    assert ticks <= 3
    assert app.published_types() == ["AmlEvents.Rollout.Started", "AmlEvents.Rollout.Live"]
