"""The README's "Operate it on your machine" block, run as a new user would: ``make up`` in one process, then each
line in another, with the exit code its comment promises (0 unless it says ``exit N``)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _like_a_terminal() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A shell's background job (how CI may run the suite) starts with
    SIGINT ignored, and Python then keeps ignoring it, so the Ctrl-C this test sends would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


pytestmark = pytest.mark.integration


def quickstart() -> list[tuple[list[str], int]]:
    """(argv, expected exit code) for each line of the block, ``make up`` first."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### Operate it on your machine", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    found = []
    for line in block.splitlines():
        command, _, comment = line.partition("  #")
        expected = re.search(r"\bexit (\d)", comment)
        found.append((shlex.split(command), int(expected[1]) if expected else 0))
    return found


@pytest.fixture
def made_up(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """``make up`` (its module, a faster timer), writing its attach file where this test says."""
    attach = tmp_path / "up.json"
    env = {**os.environ, "AML_ROLLOUTS_DEVKIT": str(attach)}
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "devkit.up", "--port", "0", "--tick", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        preexec_fn=_like_a_terminal,
    )
    try:
        deadline = time.monotonic() + 120
        while not attach.exists():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.1)
        yield env, attach
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 130
        log.close()
    assert not attach.exists(), "make up left its attach file"
    assert "stopped everything `make up` started" in (tmp_path / "up.log").read_text()


def _local(argv: list[str], attach: Path) -> list[str]:
    """The line as it runs here: this interpreter's venv, the test's attach file."""
    program = {".venv/bin/python": sys.executable, ".venv/bin/aml-rollouts": str(BIN / "aml-rollouts")}
    return [program.get(argv[0], argv[0]), *(str(attach) if a == ".devkit/up.json" else a for a in argv[1:])]


def test_the_readme_quick_start_works_as_written(made_up: tuple[dict[str, str], Path]) -> None:
    env, attach = made_up
    steps = quickstart()
    assert steps[0][0] == ["make", "up"]
    assert [argv[1] for argv, _ in steps[1:] if argv[0].endswith("aml-rollouts")] == [
        "watch", "get", "promote", "watch", "rollback", "status", "dashboard",
    ]  # fmt: skip
    for argv, expected in steps[1:]:
        command = _local(argv, attach)
        if argv[1:2] == ["dashboard"]:
            _dashboard(command, env)
            continue
        ran = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
        assert ran.returncode == expected, (argv, ran.stdout[-2000:], ran.stderr)


def _dashboard(command: list[str], env: dict[str, str]) -> None:
    """Start it without opening a browser, open its printed URL, stop it with Ctrl-C."""
    process = subprocess.Popen(
        [*command, "--no-browser"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=_like_a_terminal
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if "?token=" in line:
                url = line.strip()
                break
        page = requests.get(url, timeout=30)
        assert page.status_code == 200 and "AML rollouts" in page.text
        data = requests.get(url.split("?")[0] + "data/rollouts", cookies=page.history[0].cookies, timeout=30)
        assert [r["deployment"] for r in data.json()["endpoints"][0]["rollouts"]] == [
            "credit-v3",
            "credit-v2",
            "credit-v1",
        ]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
