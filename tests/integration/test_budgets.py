"""The Azure ML clients keep their call budget against a stalled ARM: reads give up and retry, writes are not resent."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import ServiceResponseError

from app.platform.workspace import WorkspaceRef
from app.wiring import production_deps
from devkit.harness import OfflineApp, app_environment, model_registered
from devkit.stack import WORKSPACE_ID
from tests.conditions import wait_until

pytestmark = pytest.mark.integration


def test_a_stalled_read_is_given_up_on_and_retried_within_the_budget(app: OfflineApp) -> None:
    app.stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
    app.deliver(model_registered("credit", 1))
    app.stack.aml.wait_idle()
    with app_environment(app.stack, ARM_READ_TIMEOUT_SECONDS="1", ENDPOINT_LEASE_SECONDS="120"):
        gateway = production_deps().aml(WorkspaceRef.from_arm_id(WORKSPACE_ID))
        app.stack.aml.stall_requests(15, methods=["GET"], path_pattern=r"/onlineEndpoints/credit$")
        started = time.monotonic()
        view = gateway.observe("credit")
        elapsed = time.monotonic() - started
    assert view is not None and view.name == "credit"
    assert elapsed < 6, elapsed  # azure-core's default would wait out the 15 s stall (300 s read timeout)


def test_a_write_without_an_answer_is_not_resent(app: OfflineApp) -> None:
    with app_environment(app.stack, ARM_READ_TIMEOUT_SECONDS="1", ENDPOINT_LEASE_SECONDS="120"):
        gateway = production_deps().aml(WorkspaceRef.from_arm_id(WORKSPACE_ID))
        gateway.location()
        app.stack.aml.stall_requests(4, methods=["PUT"], path_pattern=r"/onlineEndpoints/credit$", count=None)
        started = time.monotonic()
        with pytest.raises(ServiceResponseError):
            gateway.create_endpoint("credit")
        elapsed = time.monotonic() - started
        app.stack.aml.release_stalls()  # the stalled PUT is applied when its stall ends, as ARM would
        wait_until(lambda: app.stack.aml.endpoint_state("credit") is not None, what="the stalled PUT to land")
    assert elapsed < 3, elapsed
    assert len(app.stack.aml.requests(method="PUT", path_contains="/onlineEndpoints/credit")) == 1
    assert app.stack.aml.endpoint_state("credit") is not None
