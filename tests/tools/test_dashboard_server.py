"""Who can open the dashboard and what it lets through: 127.0.0.1 only, the printed token traded for an HttpOnly
session, no other Host, the app's key never sent to the browser, actions only with --allow-actions, a reason and
the page's own header and origin."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from aml_rollouts.client import ApiClient
from aml_rollouts.connection import Connection
from aml_rollouts.dashboard.server import ACTION_HEADER, COOKIE, start
from devkit import runner
from devkit.harness import app_environment, model_registered
from devkit.host import LocalHost
from devkit.stack import DevStack
from tests.tools.conftest import KEYS

pytestmark = pytest.mark.integration


def _board(host: LocalHost, *, allow_actions: bool) -> Iterator[tuple[str, str]]:
    client = ApiClient(Connection(host.url, KEYS.function, None, "--url"))
    server, url = start(client, allow_actions=allow_actions, refresh_s=1)
    try:
        yield url, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def board(host: LocalHost) -> Iterator[tuple[str, str]]:
    yield from _board(host, allow_actions=True)


@pytest.fixture
def read_only(host: LocalHost) -> Iterator[tuple[str, str]]:
    yield from _board(host, allow_actions=False)


def _signed_in(url: str) -> requests.Session:
    session = requests.Session()
    first = session.get(url, allow_redirects=False, timeout=30)
    assert first.status_code == 303 and first.headers["Location"] == "/"
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return session


def test_only_the_printed_token_opens_a_session_and_only_for_this_host(board: tuple[str, str]) -> None:
    url, base = board
    assert urlsplit(url).hostname == "127.0.0.1"
    for path in ("/", "/data/rollouts", "/static/app.js", "/?token=guessed"):
        assert requests.get(base + path, timeout=30).status_code == 403, path
    rebound = requests.get(url, headers={"Host": f"evil.example:{urlsplit(base).port}"}, timeout=30)
    assert rebound.status_code == 403  # a page on another name resolving to 127.0.0.1 gets nothing
    session = _signed_in(url)
    page = session.get(base + "/", timeout=30)
    assert page.status_code == 200 and "<title>AML rollouts</title>" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    bundle = session.get(base + "/static/plotly.min.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000  # the library itself, from the package


def test_the_page_s_data_is_the_app_s_status_without_its_key(
    board: tuple[str, str], host: LocalHost, stack: DevStack
) -> None:
    url, base = board
    stack.aml.seed_model("credit", 1, tags={"deploy": "true", "endpoint": "credit"})
    runner.deliver([model_registered("credit", 1)])
    session = _signed_in(url)
    data = session.get(base + "/data/rollouts", timeout=30)
    assert data.status_code == 200
    [group] = data.json()["endpoints"]
    assert group["endpoint"] == "credit" and group["rollouts"][0]["deployment"] == "credit-v1"
    for response in (data, session.get(base + "/", timeout=30), session.get(base + "/static/app.js", timeout=30)):
        assert KEYS.function not in response.text and KEYS.master not in response.text


def test_actions_need_the_flag_a_reason_the_page_s_header_and_origin(
    board: tuple[str, str], read_only: tuple[str, str], host: LocalHost, stack: DevStack
) -> None:
    with app_environment(stack, DEPLOY_MODE="hold"):
        stack.aml.seed_model("credit", 7, tags={"deploy": "true", "endpoint": "credit"})
        runner.deliver([model_registered("credit", 7)])
        url, base = board
        session = _signed_in(url)
        action = {"endpoint": "credit", "deployment": "credit-v7", "action": "pause", "reason": "incident 42"}
        own = {ACTION_HEADER: "action", "Origin": base}

        assert session.post(base + "/data/action", json=action, timeout=30).status_code == 403  # no header
        foreign = {ACTION_HEADER: "action", "Origin": "https://evil.example"}
        assert session.post(base + "/data/action", json=action, headers=foreign, timeout=30).status_code == 403
        assert requests.post(base + "/data/action", json=action, headers=own, timeout=30).status_code == 403
        no_reason = session.post(base + "/data/action", json={**action, "reason": " "}, headers=own, timeout=30)
        assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]

        done = session.post(base + "/data/action", json=action, headers=own, timeout=30)
        assert done.status_code == 200 and done.json()["effect"] == "pause"
        aborted = session.post(base + "/data/action", json={**action, "action": "abort"}, headers=own, timeout=30)
        assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
        refused = session.post(base + "/data/action", json=action, headers=own, timeout=30)
        assert refused.status_code == 409 and "(state aborted)" in refused.json()["error"]  # the app's own 409

        ro_url, ro_base = read_only
        ro = _signed_in(ro_url)
        blocked = ro.post(ro_base + "/data/action", json=action, headers={ACTION_HEADER: "action"}, timeout=30)
        assert blocked.status_code == 403 and "--allow-actions" in blocked.json()["error"]
        _, body = runner.get_status({"endpoint": "credit"})
        history = body["rollouts"][0]["progress"]["history"]
        assert [(h["action"], h["reason"]) for h in history] == [("pause", "incident 42"), ("abort", "incident 42")]
