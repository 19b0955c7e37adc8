"""Naming: always valid for AML, deterministic, and collision-free on distinct inputs."""

from __future__ import annotations

import random
import string

import pytest
from azure.ai.ml.entities._endpoint._endpoint_helpers import validate_endpoint_or_deployment_name
from hypothesis import given, settings
from hypothesis import strategies as st

from app.rollout.decide.naming import deployment_name, endpoint_name, is_valid_name, slug
from tests.fakes import OTHER_WORKSPACE_ID, WORKSPACE_ID

pytestmark = pytest.mark.fast

# AML model names: letters, digits, '-', '_', '.'; versions are strings (often numbers).
MODEL_NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=255)
VERSIONS = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=60),
)


def test_the_documented_example() -> None:
    assert deployment_name("credit_risk.v2", "7") == "credit-risk-v2-v7"


@pytest.mark.parametrize(
    ("model", "version", "expected"),
    [("Fraud", "1", "fraud-v1"), ("m", "2026.11.rc1", "m-v2026-11-rc1"), ("ab", "1", "ab-v1")],
)
def test_readable_names(model: str, version: str, expected: str) -> None:
    assert deployment_name(model, version) == expected


@pytest.mark.parametrize(("model", "prefix"), [("1st-model", "m-1st-model-v3-"), ("__", "m-v3-")])
def test_names_not_starting_with_a_letter_get_a_prefix_and_a_hash(model: str, prefix: str) -> None:
    name = deployment_name(model, "3")
    assert name.startswith(prefix)
    assert len(name) == len(prefix) + 6
    assert deployment_name("m-1st-model", "3") == "m-1st-model-v3"  # the plain name it could have equalled


def test_long_names_are_shortened_with_a_stable_hash() -> None:
    name = deployment_name("a_really_long_model_name_for_credit_risk_scoring", "12")
    assert len(name) <= 32
    assert name.startswith("a-really-long-model-")
    assert "-v12-" in name
    assert name == deployment_name("a_really_long_model_name_for_credit_risk_scoring", "12")
    assert name != deployment_name("a_really_long_model_name_for_credit_risk_scoring_b", "12")


@settings(max_examples=500, deadline=None)
@given(MODEL_NAMES, VERSIONS)
def test_deployment_names_are_always_valid_for_the_sdk(model: str, version: str) -> None:
    name = deployment_name(model, version)
    assert is_valid_name(name)
    validate_endpoint_or_deployment_name(name, is_deployment=True)  # the SDK's own check raises if not
    assert deployment_name(model, version) == name


@settings(max_examples=500, deadline=None)
@given(MODEL_NAMES)
def test_endpoint_names_are_always_valid_for_the_sdk(model: str) -> None:
    name = endpoint_name(model, WORKSPACE_ID)
    assert is_valid_name(name)
    validate_endpoint_or_deployment_name(name)
    assert name.endswith(endpoint_name("credit", WORKSPACE_ID).removeprefix("credit"))  # the workspace's suffix


def test_the_default_endpoint_differs_per_workspace_and_is_stable() -> None:
    # Endpoint names are unique per Azure region, across workspaces: two teams' "credit" must not collide.
    mine, theirs = endpoint_name("credit", WORKSPACE_ID), endpoint_name("credit", OTHER_WORKSPACE_ID)
    assert mine != theirs
    assert mine.startswith("credit-") and len(mine) == len("credit-") + 6
    assert endpoint_name("credit", WORKSPACE_ID.upper()) == mine  # ARM ids compare case-insensitively


def test_long_or_prefixed_endpoint_names_keep_distinct_models_apart() -> None:
    long_a = endpoint_name("a_really_long_model_name_for_credit_risk_scoring", WORKSPACE_ID)
    long_b = endpoint_name("a_really_long_model_name_for_credit_risk_scoring_b", WORKSPACE_ID)
    assert long_a != long_b and len(long_a) <= 32 and len(long_b) <= 32
    assert endpoint_name("1st", WORKSPACE_ID) != endpoint_name("m-1st", WORKSPACE_ID)


def test_no_collisions_on_distinct_inputs_in_a_large_random_sample() -> None:
    """Distinct means distinct after folding case and punctuation, which AML names commonly vary in
    and which fold on purpose (``credit_risk`` and ``credit-risk`` read the same); the rollout
    refuses a deployment name that another model already uses (see test_step)."""
    rng = random.Random(20261122)
    alphabet = string.ascii_lowercase + string.digits + "-_."
    seen: dict[str, tuple[str, str]] = {}
    for _ in range(200_000):
        model = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        version = (
            str(rng.randint(1, 5000))
            if rng.random() < 0.8
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        )
        key = (slug(model), slug(version) or version)
        name = deployment_name(model, version)
        if name in seen:
            assert (slug(seen[name][0]), slug(seen[name][1]) or seen[name][1]) == key, (name, seen[name], key)
        seen[name] = (model, version)
    assert len(seen) > 190_000
