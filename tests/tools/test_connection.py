"""Where the CLI connects: --url or the environment with a key from the environment only, an Entra token from the
dev kit's managed-identity endpoint, or the dev kit's attach file found with no arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aml_rollouts.connection import DEVKIT_FILE, Connection, read_attach, resolve
from aml_rollouts.errors import CliError, Exit
from devkit.stack import DevStack
from tests.tools.conftest import ScriptedApp, run_cli

EMPTY_PAGE = {"count": 0, "rollouts": [], "endpoints": [], "continuation": None}


def _attach(folder: Path, *, mode: int = 0o600, body: object = None) -> Path:
    path = folder / DEVKIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body or {"DevKit": {"url": "http://127.0.0.1:7071", "functionKey": "k"}}))
    path.chmod(mode)
    return path


def test_the_url_flag_wins_over_the_environment_and_the_key_comes_from_the_environment() -> None:
    env = {"AML_ROLLOUTS_URL": "https://other.example", "AML_ROLLOUTS_KEY": "s3cret"}
    connection = resolve("https://app.example/", "key", None, env)
    assert connection == Connection("https://app.example", "s3cret", None, "--url")
    assert connection.headers() == {"x-functions-key": "s3cret"}
    assert resolve(None, "key", None, env).url == "https://other.example"


def test_the_cli_has_no_flag_for_a_key() -> None:
    ran = run_cli(["list", "--key", "s3cret"], {"AML_ROLLOUTS_URL": "http://127.0.0.1:9"})
    assert ran.code == Exit.USAGE
    assert "unrecognized arguments: --key" in ran.err


def test_with_no_url_the_dev_kit_s_attach_file_is_found_from_a_subfolder(tmp_path: Path) -> None:
    _attach(tmp_path)
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    connection = resolve(None, "key", None, {}, cwd=deeper)
    assert (connection.url, connection.key) == ("http://127.0.0.1:7071", "k")
    assert connection.source.startswith("the dev kit")


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda folder: None, "no app to talk to"),
        (lambda folder: _attach(folder, mode=0o644), "readable by others"),
        (lambda folder: _attach(folder, body={"Values": {}}), "not a dev kit attach file"),
    ],
    ids=["nothing", "group-readable", "not-an-attach-file"],
)
def test_no_usable_connection_is_a_usage_error_naming_the_fix(tmp_path: Path, setup: object, problem: str) -> None:
    setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(CliError) as raised:
        resolve(None, "key", None, {}, cwd=tmp_path)
    assert raised.value.code == Exit.USAGE and problem in raised.value.message


def test_a_url_that_is_not_http_and_entra_without_a_scope_are_usage_errors() -> None:
    with pytest.raises(CliError, match="not an http"):
        resolve("ftp://app", "key", None, {})
    with pytest.raises(CliError, match="--scope") as raised:
        resolve("https://app", "entra", None, {})
    assert raised.value.code == Exit.USAGE


def test_an_attach_file_names_its_dev_kit_as_the_source(tmp_path: Path) -> None:
    path = _attach(tmp_path)
    assert read_attach(path)["source"] == f"the dev kit ({path})"


@pytest.mark.integration
def test_auth_entra_sends_a_token_for_the_scope_from_default_azure_credential(
    stack: DevStack, scripted: tuple[ScriptedApp, str]
) -> None:
    # The stack's settings are applied: DefaultAzureCredential gets its token from the dev kit's identity endpoint.
    app, url = scripted
    app.answers.append((200, EMPTY_PAGE))
    env = {
        "AML_ROLLOUTS_URL": url,
        "AML_ROLLOUTS_KEY": "fn-key",
        "AML_ROLLOUTS_SCOPE": "api://aml-rollouts-app/.default",
    }
    ran = run_cli(["list", "--auth", "entra"], env)
    assert ran.code == Exit.OK, ran.err
    [request] = app.requests
    assert request.headers["x-functions-key"] == "fn-key"
    assert stack.issuer.verify_authorization(request.headers["authorization"], "api://aml-rollouts-app")
