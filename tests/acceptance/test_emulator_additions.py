"""Model deletion as ARM documents it, served by the emulator for the suite's cleanup (real mgmt SDK)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from acceptance.emulator import teach_model_deletion
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack

pytestmark = pytest.mark.integration


def test_deleting_model_versions_then_the_model_removes_it(stack: DevStack) -> None:
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    teach_model_deletion(stack.aml)
    teach_model_deletion(stack.aml)  # idempotent
    stack.aml.seed_model("credit", 1)
    stack.aml.seed_model("credit", 2)
    mgmt = MachineLearningServicesMgmtClient(DefaultAzureCredential(), SUBSCRIPTION_ID, base_url=stack.aml.url)
    scope = (RESOURCE_GROUP, WORKSPACE_NAME)
    mgmt.model_versions.delete(*scope, "credit", "1")
    assert [v.name for v in mgmt.model_versions.list(*scope, "credit")] == ["2"]
    with pytest.raises(HttpResponseError) as refused:
        mgmt.model_containers.delete(*scope, "credit")
    assert refused.value.status_code == 409
    mgmt.model_versions.delete(*scope, "credit", "2")
    mgmt.model_versions.delete(*scope, "credit", "2")  # nothing left to delete: still no error
    mgmt.model_containers.delete(*scope, "credit")
    assert stack.aml.snapshot()["models"] == []
    assert [c.name for c in mgmt.model_containers.list(*scope)] == []
