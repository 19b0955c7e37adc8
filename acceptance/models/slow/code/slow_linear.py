"""The tiny linear model, one second slower per request: a latency regression for the rollback scenario."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: Far above 1.5x the tiny model's P99 (GATE_MAX_LATENCY_RATIO's default), well below the 5 s request timeout.
DELAY_S = 1.0


class SlowLinear:
    """Answers like ``tiny``'s model (``x1, x2`` rows in, one score per row out), after ``DELAY_S``."""

    def __init__(self, features: list[str], weights: list[float], bias: float) -> None:
        self.features = features
        self.weights = weights
        self.bias = bias

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> list[float]:
        time.sleep(DELAY_S)
        rows = model_input[self.features].values.tolist() if hasattr(model_input, "columns") else model_input
        return [self.bias + sum(w * float(x) for w, x in zip(self.weights, row, strict=True)) for row in rows]


def _load_pyfunc(data_path: str) -> SlowLinear:
    """MLflow calls this with the flavor's ``data`` path."""
    spec = json.loads(Path(data_path).read_text(encoding="utf-8"))
    return SlowLinear(spec["features"], spec["weights"], spec["bias"])
