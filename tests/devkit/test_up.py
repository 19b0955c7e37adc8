"""``make up``: the app's HTTP API on localhost with a printed URL and key, an owner-only attach file that the CLI
finds, one dev kit per attach file, and everything stopped on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aml_rollouts import cli
from devkit import up


@pytest.fixture
def attach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "devkit" / "up.json"
    monkeypatch.setenv(up.ATTACH_ENV, str(path))
    return path


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_second_make_up_on_the_same_attach_file_is_refused_in_one_line(
    attach: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attach.parent.mkdir(parents=True)
    attach.write_text(json.dumps({"DevKit": {"pid": os.getppid()}}))  # a live process owns it

    assert up.main(["--port", "0"]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already up" in err[0] and str(os.getppid()) in err[0]
    assert attach.exists(), "the running dev kit's file was left alone"


def test_a_file_left_by_a_dead_make_up_is_replaced(attach: Path) -> None:
    attach.parent.mkdir(parents=True)
    attach.write_text(json.dumps({"DevKit": {"pid": _dead_pid()}}))
    up.claim(attach)
    assert not attach.exists()


@pytest.mark.integration
def test_make_up_prints_the_url_and_key_and_the_cli_finds_it_with_no_arguments(
    attach: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def pause(seconds: float) -> None:
        out = capsys.readouterr().out
        seen["banner"] = out
        seen["mode"] = stat.S_IMODE(attach.stat().st_mode)
        seen["body"] = json.loads(attach.read_text())
        printed = StringIO()
        # The CLI with no --url and no key: it finds the dev kit from the attach file.
        seen["cli"] = cli.main(
            ["list"], env={up.ATTACH_ENV: str(attach)}, out=Console(file=printed, width=120), err=Console(file=printed)
        )
        seen["cli_out"] = printed.getvalue()
        raise KeyboardInterrupt

    assert up.main(["--port", "0"], pause=pause) == 130

    banner, host = seen["banner"], seen["body"]["DevKit"]
    url = re.search(r"^  URL +(http://127\.0\.0\.1:\d+)", banner, re.MULTILINE)
    key = re.search(r"^  function key +(\S+)", banner, re.MULTILINE)
    assert url and key and (url[1], key[1]) == (host["url"], host["functionKey"])
    assert seen["mode"] == 0o600
    assert seen["body"]["Values"]["AZUREML_DEV_URL_MFE"].startswith("https://127.0.0.1:")
    assert seen["cli"] == 0, seen["cli_out"]
    assert "no rollouts yet" in seen["cli_out"]
    assert not attach.exists(), "the attach file outlived make up"
    assert capsys.readouterr().out.rstrip().endswith("stopped everything `make up` started.")


@pytest.mark.integration
def test_a_taken_port_falls_back_to_a_free_one(stack: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = up.start_host(stack, port)
        try:
            assert host.url.startswith("http://127.0.0.1:") and not host.url.endswith(f":{port}")
        finally:
            host._server.stop()
