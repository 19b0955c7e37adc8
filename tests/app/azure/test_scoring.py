"""The smoke test: the pure classification and sample choice, then the real requests client against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from app.azure.aml import AmlGateway
from app.azure.scoring import SmokeTester, read_input_example
from app.platform.errors import RetryableError
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.smoke import SmokeSample, choose_sample, classify, no_sample, request_from_input_example
from devkit.stack import DevStack
from tests.devkit.arm_session import ArmSession
from tests.devkit.endpoint_setup import make_endpoint

SAMPLE = SmokeSample('{"input_data": {"columns": ["a", "b"], "data": [[1, 2]]}}', "tag smoke_request")


# ------------------------------------------------------------------------------------------------ pure


@pytest.mark.parametrize(
    ("status", "elapsed", "passed"),
    [
        (200, 0.1, True),
        (201, 0.1, True),
        (299, 0.1, True),
        (200, 30.5, False),
        (301, 0.1, False),
        (404, 0.1, False),
        (424, 0.1, False),
        (500, 0.1, False),
        (None, 30.0, False),
    ],
)
def test_classify_passes_only_a_2xx_within_the_timeout(status: int | None, elapsed: float, passed: bool) -> None:
    result = classify(status, b'{"message": "boom"}', elapsed, 30)
    assert result.passed is passed and result.status == status and result.elapsed_s == elapsed
    if status is None:
        assert result.excerpt == ""
    elif not passed and elapsed < 30:
        assert "boom" in result.excerpt and "boom" in result.reason  # what the deployment answered, for the operator


def test_only_the_first_bytes_of_the_body_are_kept() -> None:
    result = classify(500, b"x" * 10_000 + "é".encode(), 0.1, 30)
    assert len(result.excerpt) == 512 and result.as_dict()["bodyExcerpt"] == "x" * 512


def test_the_tag_wins_over_the_input_example() -> None:
    assert choose_sample(' {"a": 1} ', '{"b": 2}') == SmokeSample('{"a": 1}', "tag smoke_request")
    assert choose_sample("", '{"b": 2}') == SmokeSample('{"b": 2}', "MLflow input example")
    assert choose_sample("", None) is None


def test_no_sample_is_skipped_or_fails_when_required() -> None:
    skipped = no_sample(required=False)
    assert skipped.passed and skipped.skipped
    required = no_sample(required=True)
    assert not required.passed and "SMOKE_REQUIRED=true" in required.reason


def test_input_examples_become_azure_ml_scoring_requests() -> None:
    frame = {"columns": ["a", "b"], "data": [[1, 2]]}
    info = {
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
        }
    }
    assert json.loads(request_from_input_example(info, frame) or "") == {"input_data": frame}
    tensor = {"saved_input_example_info": {"type": "ndarray"}}
    assert json.loads(request_from_input_example(tensor, {"inputs": [[1.0, 2.0]]}) or "") == {
        "input_data": [[1.0, 2.0]]
    }
    records = {"saved_input_example_info": {"type": "dataframe", "pandas_orient": "records"}}
    assert request_from_input_example(records, [{"a": 1}]) is None
    assert request_from_input_example({}, frame) is None


def test_read_input_example_from_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "artifact_path: model\nflavors: {}\nsaved_input_example_info:\n  artifact_path: input_example.json\n"
        "  pandas_orient: split\n  type: dataframe\n"
    )
    assert read_input_example(tmp_path) is None  # the artifact is missing
    (tmp_path / "input_example.json").write_text('{"columns": ["x"], "data": [[3]]}')
    assert json.loads(read_input_example(tmp_path) or "") == {"input_data": {"columns": ["x"], "data": [[3]]}}
    (tmp_path / "input_example.json").write_text("not json")
    assert read_input_example(tmp_path) is None
    assert read_input_example(tmp_path / "nowhere") is None


# ------------------------------------------------------------------------------------------------ emulator


def _tester(stack: DevStack, timeout_s: float = 5, session: requests.Session | None = None) -> SmokeTester:
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    gateway = AmlGateway(WorkspaceRef.from_arm_id(stack.aml.workspace_id), credential)
    return SmokeTester(gateway, credential, timeout_s, session)


@pytest.mark.integration
@pytest.mark.parametrize("auth_mode", ["Key", "AADToken"])
def test_smoke_passes_on_the_new_deployment_alone(stack: DevStack, arm: ArmSession, auth_mode: str) -> None:
    # green has no live traffic: only the header can reach it.
    make_endpoint(stack, arm, "ep-smoke", {"blue": {}, "green": {}}, traffic={"blue": 100}, auth_mode=auth_mode)
    stack.aml.clear_requests()

    result = _tester(stack).run("ep-smoke", "green", SAMPLE)

    assert result.passed and result.status == 200, result
    assert json.loads(result.excerpt)["deployment"] == "green"
    assert [s.deployment for s in stack.aml.samples("ep-smoke")] == ["green"]
    arm_reads = [r.path for r in stack.aml.requests() if "/onlineEndpoints/" in r.path]
    assert arm_reads[0].endswith("/onlineEndpoints/ep-smoke")  # the scoringUri is read, never built
    assert any(p.endswith("/listKeys") for p in arm_reads) is (auth_mode == "Key")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("health", "status"), [({"fail_all": True}, 424), ({"fail_all": True, "fail_status": 503}, 424)]
)
def test_a_failing_model_fails_the_smoke_test_with_a_body_excerpt(
    stack: DevStack, arm: ArmSession, health: dict[str, object], status: int
) -> None:
    make_endpoint(stack, arm, "ep-fail", {"blue": {}, "green": {}}, traffic={"blue": 100})
    stack.aml.set_health("ep-fail", "green", **health)

    result = _tester(stack).run("ep-fail", "green", SAMPLE)

    assert not result.passed and result.status == status
    assert "An unexpected error occurred in scoring script" in result.excerpt
    assert all(s.deployment == "green" for s in stack.aml.samples("ep-fail"))  # blue's traffic never touched


@pytest.mark.integration
def test_an_unknown_deployment_fails_with_404(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-down", {"blue": {}}, traffic={"blue": 100})
    result = _tester(stack).run("ep-down", "nosuch", SAMPLE)
    assert not result.passed and result.status == 404


@pytest.mark.integration
def test_a_slow_answer_times_out(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-slow", {"blue": {}, "green": {}}, traffic={"blue": 100})
    stack.aml.set_health("ep-slow", "green", p50_ms=3000, p99_ms=3500)
    stack.aml.configure_scoring(sleep_scale=1.0)

    result = _tester(stack, timeout_s=0.5).run("ep-slow", "green", SAMPLE)

    assert not result.passed and result.status is None and result.excerpt == ""


@pytest.mark.integration
def test_an_unreachable_scoring_uri_is_retryable(stack: DevStack, arm: ArmSession) -> None:
    make_endpoint(stack, arm, "ep-gone", {"blue": {}}, traffic={"blue": 100})
    assert _tester(stack).target("ep-gone").scoring_uri.endswith("/inference/ep-gone/score")

    class Unreachable(requests.Session):
        def post(self, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            return super().post("https://127.0.0.1:9/score", *args, **kwargs)  # type: ignore[arg-type]

    with pytest.raises(RetryableError, match="could not connect"):
        _tester(stack, session=Unreachable()).run("ep-gone", "blue", SAMPLE)
