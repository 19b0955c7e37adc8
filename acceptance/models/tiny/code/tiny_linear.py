"""A two-weight linear model loaded by MLflow's pyfunc flavor (``loader_module``) from a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class TinyLinear:
    """``predict`` takes rows of ``x1, x2`` (a pandas DataFrame or a list of lists) and returns one score per row."""

    def __init__(self, features: list[str], weights: list[float], bias: float) -> None:
        self.features = features
        self.weights = weights
        self.bias = bias

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> list[float]:
        rows = model_input[self.features].values.tolist() if hasattr(model_input, "columns") else model_input
        return [self.bias + sum(w * float(x) for w, x in zip(self.weights, row, strict=True)) for row in rows]


def _load_pyfunc(data_path: str) -> TinyLinear:
    """MLflow calls this with the flavor's ``data`` path."""
    spec = json.loads(Path(data_path).read_text(encoding="utf-8"))
    return TinyLinear(spec["features"], spec["weights"], spec["bias"])
