"""The smoke test's decisions (pure): which sample to send, and what an answer means.

The request itself is sent by the scoring adapter, ``app/azure/scoring.py``, which documents where and how.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEPLOYMENT_HEADER = "azureml-model-deployment"
#: The audience of Entra tokens for scoring AADToken endpoints.
INFERENCE_SCOPE = "https://ml.azure.com/.default"
EXCERPT_BYTES = 512
#: The reason of a smoke call cut short by the caller's time budget (not a verdict: it is sent again).
UNFINISHED = "smoke test not finished within this pass's time budget; sent again next pass"


@dataclass(frozen=True)
class SmokeSample:
    body: str  # JSON text sent as is
    source: str  # where it came from, for the ledger: "tag smoke_request" / "MLflow input example"


@dataclass(frozen=True)
class SmokeResult:
    """What the ledger row and the notification carry. ``status`` is None when no answer came."""

    passed: bool
    status: int | None
    excerpt: str  # the first bytes of the body, decoded leniently
    elapsed_s: float
    reason: str
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "skipped": self.skipped,
            "status": self.status,
            "bodyExcerpt": self.excerpt,
            "elapsedSeconds": round(self.elapsed_s, 3),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ScoringTarget:
    """The endpoint as the smoke test needs it: its scoring URI and auth mode, read from ARM."""

    scoring_uri: str
    auth_mode: str  # "key" or "aadtoken" (lower case)


# ------------------------------------------------------------------------------------------------ pure


def choose_sample(tag_sample: str, input_example: str | None) -> SmokeSample | None:
    """The tag wins; then the MLflow input example; else there is none."""
    if tag_sample.strip():
        return SmokeSample(tag_sample.strip(), "tag smoke_request")
    if input_example:
        return SmokeSample(input_example, "MLflow input example")
    return None


def no_sample(required: bool) -> SmokeResult:
    """The result when there is no sample: skipped, or failed when ``SMOKE_REQUIRED=true``."""
    if required:
        return SmokeResult(
            False,
            None,
            "",
            0.0,
            "no sample request: the model has no smoke_request tag and no "
            "readable MLflow input example, and SMOKE_REQUIRED=true",
        )
    return SmokeResult(
        True,
        None,
        "",
        0.0,
        "smoke test skipped: the model has no smoke_request tag and no readable "
        "MLflow input example (set SMOKE_REQUIRED=true to reject such rollouts)",
        skipped=True,
    )


def classify(status: int | None, body: bytes, elapsed_s: float, timeout_s: float) -> SmokeResult:
    """Pass: a 2xx within the timeout. ``status`` None means no answer came within ``timeout_s``."""
    excerpt = body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    if status is None:
        return SmokeResult(False, None, "", elapsed_s, f"smoke test failed: no answer within {timeout_s:g} s")
    if elapsed_s > timeout_s:
        return SmokeResult(
            False,
            status,
            excerpt,
            elapsed_s,
            f"smoke test failed: answered {status} after {elapsed_s:.1f} s, over {timeout_s:g} s",
        )
    if 200 <= status < 300:
        return SmokeResult(True, status, excerpt, elapsed_s, f"smoke test passed: {status} in {elapsed_s:.2f} s")
    return SmokeResult(
        False, status, excerpt, elapsed_s, f"smoke test failed: the new deployment answered {status}: {excerpt[:200]}"
    )


def request_from_input_example(mlmodel: dict[str, Any], example: Any) -> str | None:
    """The scoring request for a managed MLflow deployment (``{"input_data": ...}``) from a stored input example.

    MLflow saves a DataFrame example in pandas' ``split`` orient (``{"columns", "data"}``) and a tensor example
    as ``{"inputs": ...}``; Azure ML's MLflow scoring server takes both under ``input_data``.
    """
    info = mlmodel.get("saved_input_example_info") or {}
    kind = str(info.get("type", ""))
    if kind == "dataframe" and isinstance(example, dict) and "data" in example:
        if info.get("pandas_orient", "split") != "split":
            return None
        return json.dumps({"input_data": example})
    if kind in {"ndarray", "sparse_matrix_csc", "sparse_matrix_csr", "json_object"} and isinstance(example, dict):
        return json.dumps({"input_data": example.get("inputs", example)})
    return None
