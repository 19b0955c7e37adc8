"""The shipped MLflow models: a few hundred bytes of text, loadable the way MLflow's pyfunc flavor loads them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from acceptance.target import MODELS, source_of

pytestmark = pytest.mark.fast


def _mlmodel(name: str) -> dict:
    return yaml.safe_load((MODELS[name].path / "MLmodel").read_text())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_is_small_text_with_an_environment(name: str) -> None:
    files = [p for p in MODELS[name].path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 8 * 1024
    names = {p.name for p in files}
    assert {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "model.json"} <= names
    flavor = _mlmodel(name)["flavors"]["python_function"]
    assert (MODELS[name].path / flavor["data"]).is_file()


def _load_tiny(monkeypatch: pytest.MonkeyPatch, name: str = "tiny") -> Any:
    """What mlflow.pyfunc.load_model does: put ``code`` on sys.path, import ``loader_module``, call _load_pyfunc."""
    root = MODELS[name].path
    flavor = _mlmodel(name)["flavors"]["python_function"]
    monkeypatch.syspath_prepend(str(root / flavor["code"]))
    module = importlib.import_module(flavor["loader_module"])
    monkeypatch.delitem(sys.modules, flavor["loader_module"])
    return module._load_pyfunc(str(root / flavor["data"]))


def test_the_tiny_model_loads_and_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _load_tiny(monkeypatch)
    assert model.predict([[2.0, 4.0], [0.0, 0.0]]) == [1.0, 1.0]  # 1 + 0.5*2 - 0.25*4 and the bias alone
    assert model.predict([[4.0, 0.0]]) == [3.0]


def test_the_broken_model_names_a_loader_that_is_not_shipped() -> None:
    flavor = _mlmodel("broken")["flavors"]["python_function"]
    assert "code" not in flavor
    assert importlib.util.find_spec(flavor["loader_module"]) is None


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("azureml://datastores/workspaceblobstore/paths/acceptance-models/broken/", "broken"),
        ("azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/LocalUpload/abc/tiny", "tiny"),
        (str(Path("acceptance") / "models" / "tiny"), "tiny"),
        ("azureml://jobs/run-1/outputs/artifacts/paths/model/", None),
    ],
)
def test_a_registered_path_is_traced_back_to_its_shipped_model(uri: str, expected: str | None) -> None:
    source = source_of(uri)
    assert (source.name if source else None) == expected


def test_the_slow_model_answers_like_tiny_but_a_second_late(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    model = _load_tiny(monkeypatch, "slow")
    assert model.predict([[2.0, 4.0], [0.0, 0.0]]) == [1.0, 1.0]
    assert slept == [1.0]  # far above 1.5x tiny's P99, far below the endpoint's 5 s request timeout
    assert MODELS["slow"].loads and MODELS["slow"].slow
    assert _mlmodel("slow")["signature"] == _mlmodel("tiny")["signature"]
