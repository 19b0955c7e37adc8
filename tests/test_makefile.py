"""make refuses a wrong interpreter or a missing node before installing anything, and rebuilds a stale venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

# A stand-in interpreter: answers make's version probes with VERSION, "creates" a venv by copying
# itself into it, and logs every pip call instead of installing, so no test touches the network.
FAKE_PYTHON = """#!/bin/sh
case "$1 $2" in
  "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0 ;;
  "-m pip") echo "pip $*" >> "{log}"; exit 0 ;;
esac
case "$2" in *ensurepip*) exit 0 ;; esac
printf '%s' "{version}"
"""


def fake_python(directory: Path, version: str) -> Path:
    path = directory / f"python{version}"
    path.write_text(FAKE_PYTHON.replace("{version}", version).replace("{log}", str(directory / "pip.log")))
    path.chmod(0o755)
    return path


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # An outer make (make test runs pytest) must not leak its flags or variables into this one.
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def pip_calls(directory: Path) -> list[str]:
    log = directory / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("version", ["3.10", "3.14"])
def test_an_unsupported_python_stops_make_demo_before_any_install(tmp_path: Path, version: str) -> None:
    venv = tmp_path / "venv"
    result = make("demo", f"PYTHON={fake_python(tmp_path, version)}", f"VENV={venv}")
    assert result.returncode != 0
    assert f"is Python {version}, but this app supports Python 3.11 3.12 3.13" in result.stderr
    assert "pass PYTHON=" in result.stderr  # the fix
    assert not venv.exists()
    assert pip_calls(tmp_path) == []


def test_a_python_that_does_not_run_is_named(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = make("venv", f"PYTHON={tmp_path / 'python3.13'}", f"VENV={venv}")
    assert result.returncode != 0
    assert f"no working Python at PYTHON='{tmp_path / 'python3.13'}'" in result.stderr
    assert "pyenv prefix 3.13" in result.stderr
    assert not venv.exists()


def test_a_missing_node_stops_make_install_before_the_python_install(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    missing = tmp_path / "no-such-node"
    result = make("install", f"PYTHON={fake_python(tmp_path, '3.13')}", f"VENV={venv}", f"NODE={missing}")
    assert result.returncode != 0
    assert f"'{missing}' and 'npm' are needed to install Azurite" in result.stderr
    assert "install Node.js" in result.stderr
    assert not venv.exists()
    assert pip_calls(tmp_path) == []


def test_the_venv_is_rebuilt_when_the_interpreter_changes(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "left-by-a-failed-run").touch()  # a half-made venv of unknown origin is not trusted

    first = make("venv", f"PYTHON={fake_python(tmp_path, '3.12')}", f"VENV={venv}")
    assert first.returncode == 0, first.stderr
    assert not (venv / "left-by-a-failed-run").exists()
    assert (venv / ".python").read_text().startswith("3.12")
    installs = [call for call in pip_calls(tmp_path) if "-r requirements-dev.txt" in call]
    assert len(installs) == 1

    (venv / "kept-while-the-interpreter-stays").touch()
    again = make("venv", f"PYTHON={fake_python(tmp_path, '3.12')}", f"VENV={venv}")
    assert again.returncode == 0, again.stderr
    assert (venv / "kept-while-the-interpreter-stays").exists()
    assert len([call for call in pip_calls(tmp_path) if "-r requirements-dev.txt" in call]) == 1

    switched = make("venv", f"PYTHON={fake_python(tmp_path, '3.13')}", f"VENV={venv}")
    assert switched.returncode == 0, switched.stderr
    assert "was made by another interpreter; recreating it" in switched.stdout
    assert not (venv / "kept-while-the-interpreter-stays").exists()
    assert (venv / ".python").read_text().startswith("3.13")
    assert len([call for call in pip_calls(tmp_path) if "-r requirements-dev.txt" in call]) == 2


def test_replay_without_files_says_how_to_call_it_and_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = make("replay", f"PYTHON={sys.executable}", f"VENV={venv}")
    assert result.returncode != 0
    assert "make replay ARGS='--offline tests/events/" in result.stderr
    assert not venv.exists()


def test_help_lists_every_target_a_reader_is_told_to_run() -> None:
    result = make("help")
    assert result.returncode == 0
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("make ")}
    assert {"test", "demo", "bench", "replay", "venv", "lock", "clean"} <= listed
    phony = {
        target
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith(".PHONY:")
        for target in line.split()[1:]
    }
    named = {word for line in result.stdout.splitlines() for word in line.split()}
    assert phony - {"help", "check-python", "check-node"} <= named, "a target is missing from make help"
