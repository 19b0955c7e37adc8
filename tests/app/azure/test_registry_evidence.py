"""Promotion evidence as registry tags: what is kept, what is summarized, the limits, reading it back, provenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.azure.registry_evidence import (
    CORE_KEYS,
    DIGEST,
    GATES,
    MAX_KEY_LENGTH,
    MAX_TAGS,
    MAX_VALUE_LENGTH,
    ROLLOUT,
    SMOKE,
    SOURCE_MODEL,
    TIME,
    EvidenceTooLarge,
    GateEvidence,
    PromotionEvidence,
    SmokeEvidence,
    content_differences,
    evidence_digest,
    promotion_tags,
    read_evidence,
)

WS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/mlw-staging"
SOURCE = f"{WS}/models/credit/versions/3"
AT = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
GATE_P99 = GateEvidence("p99", "passed", {"p99_ms": 412.25, "baseline_ms": 400.0, "samples": 3000})
GATE_ERR = GateEvidence("errors", "passed", {"error_rate": 0.2})


def _evidence(*gates: GateEvidence, smoke: SmokeEvidence | None = None) -> PromotionEvidence:
    return PromotionEvidence(WS, "rollout-7", AT, gates, smoke or SmokeEvidence(passed=True))


def test_the_model_tags_are_kept_and_the_evidence_added():
    tags = promotion_tags({"deploy": "true", "traffic": "10"}, _evidence(GATE_P99, GATE_ERR), SOURCE)

    assert {k: tags[k] for k in ("deploy", "traffic")} == {"deploy": "true", "traffic": "10"}
    assert set(CORE_KEYS) <= set(tags)
    assert (tags[SOURCE_MODEL], tags[ROLLOUT], tags[TIME], tags[SMOKE]) == (
        SOURCE,
        "rollout-7",
        "2026-12-07T10:30:00Z",
        "passed",
    )
    assert tags["promotion.gate.p99"] == "passed; baseline_ms=400; p99_ms=412.25; samples=3000"
    assert tags["promotion.gate.errors"] == "passed; error_rate=0.2"


def test_carry_keeps_only_the_named_model_tags_and_never_a_model_promotion_tag():
    model = {"deploy": "true", "traffic": "10", "owner": "risk", "promotion.rollout": "forged"}

    tags = promotion_tags(model, _evidence(), SOURCE, carry=["deploy", "owner", "absent"])

    assert {k: v for k, v in tags.items() if not k.startswith("promotion.")} == {"deploy": "true", "owner": "risk"}
    assert tags[ROLLOUT] == "rollout-7"


def test_gates_that_do_not_fit_are_summarized_in_one_tag():
    model = {f"t{i}": "x" for i in range(40)}
    gates = tuple(GateEvidence(f"gate{i}", "passed" if i % 2 else "extended", {"v": i}) for i in range(8))

    tags = promotion_tags(model, _evidence(*gates), SOURCE)

    assert len(tags) == MAX_TAGS - 3  # 40 + 6 core + 1 summary
    assert not any(key.startswith("promotion.gate.") for key in tags)
    assert tags[GATES].startswith("gate0=extended; gate1=passed;")
    recorded = read_evidence(tags)
    assert recorded is not None and recorded.gates["gate7"] == "passed"


def test_no_room_for_the_evidence_is_a_clear_error_naming_how_many_tags_fit():
    model = {f"t{i}": "x" for i in range(44)}

    with pytest.raises(EvidenceTooLarge) as refused:
        promotion_tags(model, _evidence(GATE_P99), SOURCE)
    assert "43" in str(refused.value)  # 50 - 6 core - 1 gate
    assert len(promotion_tags(model, _evidence(GATE_P99), SOURCE, carry=[f"t{i}" for i in range(43)])) == MAX_TAGS


def test_long_values_are_cut_the_same_way_each_time_and_say_how_much():
    detail = "x" * 5000
    first = promotion_tags({}, _evidence(smoke=SmokeEvidence(passed=False, detail=detail)), SOURCE)
    second = promotion_tags({}, _evidence(smoke=SmokeEvidence(passed=False, detail=detail)), SOURCE)

    assert first == second
    assert len(first[SMOKE]) == MAX_VALUE_LENGTH
    cut = int(first[SMOKE].rsplit("[", 1)[1].split()[0])
    assert len("failed: " + detail) - cut == len(first[SMOKE].rsplit(" ...[", 1)[0])


def test_a_long_gate_name_gets_a_short_unique_key():
    gates = (GateEvidence("g" * 150 + "a", "passed"), GateEvidence("g" * 150 + "b", "failed"))

    tags = promotion_tags({}, _evidence(*gates), SOURCE)

    gate_keys = [key for key in tags if key.startswith("promotion.gate.")]
    assert len(gate_keys) == 2 and all(len(key) <= MAX_KEY_LENGTH for key in gate_keys)


def test_the_digest_covers_every_figure():
    base = evidence_digest(_evidence(GATE_P99), SOURCE)

    assert evidence_digest(_evidence(GATE_P99), SOURCE) == base
    changed = GateEvidence("p99", "passed", {**GATE_P99.figures, "p99_ms": 412.26})
    assert evidence_digest(_evidence(changed), SOURCE) != base
    assert evidence_digest(_evidence(GATE_P99), SOURCE.replace("/3", "/4")) != base


def test_the_evidence_reads_back_from_the_tags():
    tags = promotion_tags({"deploy": "true"}, _evidence(GATE_P99), SOURCE)

    recorded = read_evidence(tags)

    assert recorded is not None
    assert (recorded.rollout_id, recorded.source_workspace, recorded.source_model, recorded.time) == (
        "rollout-7",
        WS,
        SOURCE,
        AT,
    )
    assert recorded.gates == {"p99": tags["promotion.gate.p99"]} and recorded.digest == tags[DIGEST]
    assert read_evidence({"deploy": "true"}) is None


def test_a_naive_time_is_taken_as_utc():
    naive = PromotionEvidence(WS, "r", datetime(2026, 1, 2, 3, 4, 5), ())
    aware = PromotionEvidence(WS, "r", datetime(2026, 1, 2, 4, 4, 5, tzinfo=UTC) - timedelta(hours=1), ())

    assert promotion_tags({}, naive, SOURCE)[TIME] == promotion_tags({}, aware, SOURCE)[TIME] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, 0),
        ({"model_type": "custom_model"}, 1),
        ({"job_name": "train-other"}, 1),
        ({"properties": {"auc": "0.5"}}, 1),
        ({"tags": {SOURCE_MODEL: SOURCE.replace("mlw-staging", "mlw-other")}}, 1),
        ({"model_type": "MLFLOW_MODEL", "properties": {"auc": "0.91", "added": "by the registry"}}, 0),
    ],
)
def test_content_differences(change: dict[str, object], expected: int):
    source = {"model_type": "mlflow_model", "job_name": "train-42", "properties": {"auc": "0.91"}}
    version = {**source, **{k: v for k, v in change.items() if k != "tags"}}
    tags = change.get("tags", {SOURCE_MODEL: SOURCE.upper()})
    assert isinstance(tags, dict)

    assert len(content_differences(tags, version, source, SOURCE)) == expected


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=1500)


@settings(max_examples=150, deadline=None)
@given(
    model=st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=50), max_size=43),
    gates=st.lists(
        st.builds(GateEvidence, _text, _text, st.dictionaries(st.text(max_size=20), st.floats(allow_nan=False))),
        max_size=60,
    ),
    detail=st.text(max_size=3000),
)
def test_any_evidence_fits_azure_limits_the_same_way_each_time(
    model: dict[str, str], gates: list[GateEvidence], detail: str
):
    evidence = _evidence(*gates, smoke=SmokeEvidence(passed=False, detail=detail))

    tags = promotion_tags(model, evidence, SOURCE)

    assert tags == promotion_tags(model, evidence, SOURCE)
    assert len(tags) <= MAX_TAGS
    evidence_tags = {k: v for k, v in tags.items() if k.startswith("promotion.")}
    assert all(len(k) <= MAX_KEY_LENGTH and len(v) <= MAX_VALUE_LENGTH for k, v in evidence_tags.items())
    assert read_evidence(tags) is not None
