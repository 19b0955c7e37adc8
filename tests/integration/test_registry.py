"""The registry adapter with the real azure-ai-ml and management SDKs against the emulator: share, share again,
conflicts, shares failing half-way, lagging reads, and the bounded listing of versions promoted since a cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError

from app.azure.registry import (
    ModelRegistry,
    RegistryBusy,
    RegistryConflict,
    RegistryNotFound,
    RegistryVersionNotFound,
    SourceModelNotFound,
    WorkspaceModelRef,
)
from app.azure.registry_evidence import GateEvidence, PromotionEvidence, SmokeEvidence
from app.platform.errors import is_retryable
from devkit.stack import RESOURCE_GROUP, SUBSCRIPTION_ID, WORKSPACE_NAME, DevStack

if TYPE_CHECKING:
    from devkit.aml_emulator.registries import EmulatedRegistry

pytestmark = pytest.mark.integration

REGISTRY = "reg-promo"
SOURCE = WorkspaceModelRef(SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME, "credit", "3")
EVIDENCE = PromotionEvidence(
    source_workspace=SOURCE.workspace_id,
    rollout_id="rollout-7",
    time=datetime(2026, 12, 7, 10, 30, tzinfo=UTC),
    gates=(GateEvidence("p99", "passed", {"p99_ms": 412.0}),),
    smoke=SmokeEvidence(passed=True),
)


class RecordingSleep:
    """The adapter's pauses, recorded instead of slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def registry(stack: DevStack) -> EmulatedRegistry:
    stack.aml.seed_model("credit", 3, tags={"deploy": "true", "traffic": "10"}, properties={"auc": "0.91"},
                         job_name="train-42")  # fmt: skip
    return stack.aml.add_registry(REGISTRY)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def adapter(stack: DevStack, sleep: RecordingSleep) -> ModelRegistry:
    from azure.identity import DefaultAzureCredential

    return ModelRegistry(DefaultAzureCredential(), REGISTRY, client_kwargs={"retry_total": 0}, sleep=sleep)


def _start_slow_import(stack: DevStack, registry: EmulatedRegistry) -> None:
    """An import of credit:3 that copies for a minute, as another instance's share would start it."""
    registry.set_import_duration(60)
    asset = f"azureml://locations/{stack.aml.location}/workspaces/{stack.aml.workspace_guid}/models/credit/versions/3"
    registry.start_import({"properties": {"referenceType": "Id", "sourceAssetId": asset}}, "")


def _imports(stack: DevStack) -> list[int]:
    return [r.status for r in stack.aml.requests(method="POST", path_contains="/import")]


def test_share_records_the_evidence_and_keeps_the_model_tags(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    result = adapter.share(SOURCE, EVIDENCE)

    assert result.shared
    version = result.version
    assert (version.name, version.version, version.job_name) == ("credit", "3", "train-42")
    assert version.asset_id == f"azureml://registries/{REGISTRY}/models/credit/versions/3"
    assert {k: version.tags[k] for k in ("deploy", "traffic")} == {"deploy": "true", "traffic": "10"}
    assert version.evidence is not None and version.evidence.rollout_id == "rollout-7"
    assert version.evidence.gates == {"p99": "passed; p99_ms=412"}
    stored = registry.model("credit", 3)
    assert stored is not None and stored.tags == dict(version.tags) and stored.source == SOURCE.model_id


def test_carry_tags_and_stage(registry: EmulatedRegistry, adapter: ModelRegistry):
    version = adapter.share(SOURCE, EVIDENCE, carry_tags=["deploy"], stage="Staging-proven").version

    assert "traffic" not in version.tags and version.tags["deploy"] == "true"
    assert version.stage == "Staging-proven"


def test_sharing_again_changes_nothing(stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry):
    first = adapter.share(SOURCE, EVIDENCE)
    later = PromotionEvidence(SOURCE.workspace_id, "rollout-8", EVIDENCE.time, ())

    again = adapter.share(SOURCE, later)

    assert not again.shared
    assert again.version.tags == first.version.tags  # the first promotion's evidence stays
    assert _imports(stack) == [202]
    assert [(m.name, m.version) for m in registry.models()] == [("credit", "3")]


def test_the_same_name_and_version_with_other_content_is_a_permanent_conflict(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    registry.seed_model("credit", 3, job_name="train-other", properties={"auc": "0.91"})

    with pytest.raises(RegistryConflict) as conflict:
        adapter.share(SOURCE, EVIDENCE)

    assert not is_retryable(conflict.value)
    assert _imports(stack) == []
    model = registry.model("credit", 3)
    assert model is not None and model.job_name == "train-other" and model.tags == {}


def test_a_copy_failing_half_way_is_retried_without_a_duplicate(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    registry.fail_next_imports(1, how="copy")

    with pytest.raises(HttpResponseError) as failed:
        adapter.share(SOURCE, EVIDENCE)
    assert is_retryable(failed.value)  # the app's policy: Event Grid redelivers, the engine's next tick retries
    assert registry.model("credit", 3) is None

    result = adapter.share(SOURCE, EVIDENCE)

    assert result.shared and result.version.evidence is not None
    assert [(m.name, m.version) for m in registry.models()] == [("credit", "3")]


def test_a_lost_import_answer_leaves_one_version(stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry):
    registry.fail_next_imports(1, how="answer")

    result = adapter.share(SOURCE, EVIDENCE)

    assert result.version.evidence is not None
    assert _imports(stack) == [500, 202]
    assert [(m.name, m.version) for m in registry.models()] == [("credit", "3")]


def test_a_share_whose_tagging_was_cut_short_is_finished_later(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    _sdk_share("credit", "3")  # the copy landed; the evidence was never written

    result = adapter.share(SOURCE, EVIDENCE)

    assert not result.shared and result.version.evidence is not None
    assert _imports(stack) == [202]


def test_a_copy_still_running_is_busy_and_retryable(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    _start_slow_import(stack, registry)  # another instance's share, still copying

    with pytest.raises(RegistryBusy) as busy:
        adapter.share(SOURCE, EVIDENCE)

    assert is_retryable(busy.value)


def test_reads_that_lag_a_share_are_retried(registry: EmulatedRegistry, adapter: ModelRegistry, sleep: RecordingSleep):
    registry.set_read_lag(reads=2)

    result = adapter.share(SOURCE, EVIDENCE)

    assert result.shared and result.version.evidence is not None
    assert sleep.delays == [1.0]  # the SDK's own closing read met the first lagging read, the adapter the second


def test_get_retries_a_lagging_read_then_gives_up(stack: DevStack, registry: EmulatedRegistry, sleep: RecordingSleep):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.identity import DefaultAzureCredential

    adapter = ModelRegistry(DefaultAzureCredential(), REGISTRY, read_delays_s=(0.5, 0.5), sleep=sleep)
    stack.aml.seed_model("fraud", 1)
    registry.set_read_lag(reads=3)
    for name, version in (("credit", "3"), ("fraud", "1")):  # shared elsewhere; each SDK read meets the lag once
        with pytest.raises(ResourceNotFoundError):
            _sdk_share(name, version)
        registry.set_read_lag(reads=9)

    assert adapter.get("credit", "3").version == "3" and sleep.delays == [0.5, 0.5]
    with pytest.raises(RegistryVersionNotFound) as missing:
        adapter.get("fraud", "1")
    assert missing.value.waited_s == 1.0 and not is_retryable(missing.value)


def _sdk_share(name: str, version: str) -> None:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME).models.share(
        name, version, registry_name=REGISTRY, share_with_name=name, share_with_version=version
    )


def test_unknown_registry_and_missing_source_are_permanent(stack: DevStack, registry: EmulatedRegistry):
    from azure.identity import DefaultAzureCredential

    with pytest.raises(RegistryNotFound):
        ModelRegistry(DefaultAzureCredential(), "reg-missing").get("credit", "3")
    missing = WorkspaceModelRef(SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME, "credit", "9")
    with pytest.raises(SourceModelNotFound) as err:
        ModelRegistry(DefaultAzureCredential(), REGISTRY).share(missing, EVIDENCE)
    assert not is_retryable(err.value)


def _seed_versions(registry: EmulatedRegistry) -> None:
    for name, version, day in (("credit", "1", 1), ("credit", "2", 3), ("fraud", "1", 2), ("fraud", "2", 4)):
        registry.seed_model(name, version, created_at=f"2026-11-0{day}T00:00:00Z")


def _day(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def test_list_promoted_since_a_cursor_oldest_first(registry: EmulatedRegistry, adapter: ModelRegistry):
    _seed_versions(registry)

    everything = adapter.list_promoted(None)
    later = adapter.list_promoted(_day(3))

    assert [(v.name, v.version) for v in everything.versions] == [
        ("credit", "1"), ("fraud", "1"), ("credit", "2"), ("fraud", "2"),
    ]  # fmt: skip
    assert everything.complete and everything.cursor == _day(4)
    assert [(v.name, v.version) for v in later.versions] == [("credit", "2"), ("fraud", "2")]  # the cursor is inclusive
    assert adapter.list_promoted(later.cursor).versions[0].version == "2"


def test_list_promoted_bounds_and_the_cursor_they_leave(registry: EmulatedRegistry, adapter: ModelRegistry):
    _seed_versions(registry)

    truncated = adapter.list_promoted(None, max_versions=2)
    one_model = adapter.list_promoted(_day(1), max_models=1)
    one_read = adapter.list_promoted(_day(1), max_reads=1)

    assert [v.version for v in truncated.versions] == ["1", "1"] and not truncated.complete
    assert truncated.cursor == _day(2)  # the next call starts at the last one returned
    assert [v.name for v in one_model.versions] == ["credit", "credit"]
    assert not one_model.complete and one_model.cursor == _day(1)  # fraud was not read: the cursor stays
    assert one_read.versions == () and not one_read.complete and one_read.cursor == _day(1)


def test_list_promoted_stops_reading_at_the_cursor(stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry):
    for n in range(150):
        registry.seed_model("credit", n + 1, created_at=datetime(2026, 10, 1, tzinfo=UTC).timestamp() + n)
    registry.seed_model("credit", 200, created_at="2026-11-05T00:00:00Z")
    stack.aml.clear_requests()

    found = adapter.list_promoted(_day(1))

    assert [v.version for v in found.versions] == ["200"] and found.complete
    assert len(stack.aml.requests(path_contains="/models/credit/versions")) == 1  # one page of 100, newest first


def test_list_promoted_leaves_a_copy_in_progress_for_later(
    stack: DevStack, registry: EmulatedRegistry, adapter: ModelRegistry
):
    registry.seed_model("fraud", 1, created_at="2026-11-01T00:00:00Z")
    _start_slow_import(stack, registry)  # another instance's share, still copying
    copying = registry.model("credit", 3)
    assert copying is not None and copying.state == "Creating"

    found = adapter.list_promoted(_day(1))

    assert [(v.name, v.version) for v in found.versions] == [("fraud", "1")]
    assert found.cursor is not None and found.cursor <= datetime.fromtimestamp(copying.created_at, tz=UTC)
