"""replay --attach: what it says when the dev kit it should attach to is missing, wrong or gone.

The attach itself (a second process delivering to the app ``make up`` or ``python -m devkit.demo --keep`` serves)
is proved end to end in tests/devkit/test_up.py and tests/devkit/test_demo.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from devkit import local_settings
from tools import replay

MODEL_REGISTERED = Path(__file__).parents[1] / "events" / "model_registered.eventgrid.camel.json"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No local.settings.json of the developer's."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(local_settings, "APP_ROOT", tmp_path / "no-app-root")
    return work


def _attach_file(folder: Path, values: dict[str, str], host: dict[str, str] | None = None) -> Path:
    path = folder / "up.json"
    body = {"IsEncrypted": False, "Values": values, **({"DevKit": host} if host else {})}
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_a_missing_attach_file_says_to_start_the_dev_kit(capsys: pytest.CaptureFixture[str]) -> None:
    code = replay.main(["--attach", "gone/up.json", str(MODEL_REGISTERED)])

    assert code == replay.EXIT_BAD_INPUT
    line = _error_line(capsys)
    assert "gone/up.json: no such file" in line and "make up" in line


def test_a_file_that_is_not_a_dev_kits_settings_names_what_it_lacks(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _attach_file(isolated, {"DEPLOY_MODE": "apply", "AZUREML_DEV_URL_MFE": "https://127.0.0.1:1"})

    code = replay.main(["--attach", str(path), str(MODEL_REGISTERED)])

    assert code == replay.EXIT_BAD_INPUT
    line = _error_line(capsys)
    assert (
        f"{path}: not a dev kit's settings (REQUESTS_CA_BUNDLE, AML_ALLOWED_WORKSPACES, DevKit.url, "
        "DevKit.eventGridKey missing)" in line
    )


def test_a_dev_kit_that_stopped_is_one_line_and_nothing_is_delivered(
    isolated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered: list[object] = []
    monkeypatch.setattr(replay.runner, "deliver", lambda *a, **k: delivered.append(a) or [])
    url = f"https://127.0.0.1:{_closed_port()}"
    path = _attach_file(
        isolated,
        {
            "AZUREML_DEV_URL_MFE": url,
            "REQUESTS_CA_BUNDLE": str(isolated / "ca-of-a-stopped-stack.pem"),
            "AML_ALLOWED_WORKSPACES": "/subscriptions/s/resourceGroups/r/providers/x/workspaces/w",
        },
        {"url": f"http://127.0.0.1:{_closed_port()}", "eventGridKey": "k"},
    )

    code = replay.main(["--attach", str(path), str(MODEL_REGISTERED)])

    assert code == replay.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"replay: cannot reach the dev kit's emulator at {url}/_emulator/models (")
    assert "make up" in err and "Traceback" not in err
    assert delivered == []


@pytest.mark.parametrize(
    "options", [["--offline", "--attach", "x.json"], ["--to", "http://localhost:7071", "--attach", "x.json"]]
)
def test_attach_excludes_the_other_targets(options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = replay.main([*options, str(MODEL_REGISTERED)])

    assert code == replay.EXIT_BAD_INPUT
    assert "exclude each other; pick one place to deliver to" in _error_line(capsys)
