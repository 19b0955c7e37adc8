"""The dashboard in a real browser (headless Chromium), against the dev kit during a canary and a rollback: what a
person sees (the step, the split, the gate verdict), and an action taken from the page with its reason.

Each scene leaves a screenshot in .artifacts/dashboard/ (git-ignored). Without Chromium and its driver the test is
skipped with one line; CI installs them (.ci/run).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aml_rollouts.client import ApiClient
from aml_rollouts.connection import Connection
from aml_rollouts.dashboard.server import start
from devkit import runner
from devkit.harness import app_environment
from devkit.host import LocalHost
from devkit.stack import DevStack
from devkit.up import SAMPLES
from tests.tools.conftest import KEYS

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DASHBOARD_ARTIFACTS") or ROOT / ".artifacts" / "dashboard")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1300",
)
WAIT_S = 90
#: What a person reads on the page, taken in one script: the page redraws between two scripts, never during one.
SHOWN = """
const text = (id) => document.getElementById(id).innerText.trim();
const all = (css, read) => Array.from(document.querySelectorAll(css), read);
return {
  state: text("detail-state"),
  step: text("detail-step"),
  split: text("detail-split"),
  gate: text("detail-gate"),
  steps: all("#steps li", (li) => li.dataset.status),
  passCharts: all(".gate[data-outcome=pass] .gate-chart", () => 1).length,
  history: all("#history tbody tr", (tr) => tr.innerText),
};
"""


@pytest.fixture(scope="module")
def chromium_present() -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("no chromium/chromedriver: apt-get install chromium chromium-driver (CI installs them)")


@pytest.fixture
def browser(chromium_present: None) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass(frozen=True)
class Dashboard:
    url: str
    host: LocalHost


@pytest.fixture
def dashboard(stack: DevStack) -> Iterator[Dashboard]:
    """``make up``'s host (time lapse, synthetic load) and ``aml-rollouts dashboard --allow-actions`` on it."""
    with (
        app_environment(stack, GATE_MIN_REQUESTS="20"),
        LocalHost(stack, keys=KEYS, tick_s=1.0, followup_s=0.2, emulated_s_per_tick=60, load_rpm=120) as host,
    ):
        client = ApiClient(Connection(host.url, KEYS.function, None, "--url"))
        server, url = start(client, allow_actions=True, refresh_s=1)
        try:
            yield Dashboard(url, host)
        finally:
            server.shutdown()
            server.server_close()


def replay(stack: DevStack, sample: str) -> None:
    """What ``replay --attach`` does with a quick-start sample: register its model, deliver its event."""
    [event] = runner.load_events(SAMPLES / sample)
    data = event["data"]
    stack.aml.seed_model(data["modelName"], data["modelVersion"], tags=data["modelTags"])
    [delivery] = runner.deliver([event])
    assert delivery.acknowledged, delivery.attempts


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def until(driver: WebDriver, check: Callable[[WebDriver], Any], what: str) -> None:
    """Wait on what the page shows (the page refreshes itself every second)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(check, message=what)


def seen(driver: WebDriver, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Wait until one read of the page (``SHOWN``) passes ``check``, and return that read: what a person saw at
    one moment, never a mix of two refreshes."""
    shown: dict[str, Any] = {}

    def read(d: WebDriver) -> bool:
        page = d.execute_script(SHOWN)
        shown.update(page)
        return check(page)

    until(driver, read, what)
    return shown


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def select(driver: WebDriver, key: str) -> None:
    """Click the rollout in the list (redrawn every second: a click on a replaced button is tried again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def clicked(d: WebDriver) -> bool:
        try:
            d.find_element("css selector", f'button.rollout[data-key="{key}"]').click()
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return text(d, "detail-key") == key

    until(driver, clicked, f"{key} shown")


def test_a_canary_shows_its_step_split_and_gate_and_is_promoted_from_the_page(
    browser: WebDriver, dashboard: Dashboard, stack: DevStack
) -> None:
    replay(stack, "credit-v1.json")
    browser.get(dashboard.url)
    until(browser, lambda d: text(d, "detail-state") == "live", "credit-v1 live")
    replay(stack, "credit-v2-canary.json")
    select(browser, "credit/credit-v2")

    at_step_2 = seen(
        browser,
        lambda page: page["step"] == "step 2/3 at 50%" and page["split"].startswith("credit-v1 50%, credit-v2 50%"),
        "the canary's second step, with a 50/50 split",
    )
    # From here the app's clock runs at wall speed: the step's 5-minute bake outlasts the reads and the promote.
    dashboard.host.emulated_s_per_tick = 0
    assert at_step_2["state"] == "baking"
    assert at_step_2["gate"].startswith("gate pass")  # step 1's verdict
    assert at_step_2["steps"] == ["done", "current", "next"]
    assert at_step_2["passCharts"] == 3
    until(browser, lambda d: d.find_elements("css selector", "#traffic-chart .scatterlayer .trace"), "traffic chart")
    screenshot(browser, "canary.png")

    # The page refreshes every second; the button a person is about to click stays the same one meanwhile.
    promote = browser.find_element("css selector", '#actions button[data-action="promote"]')
    observed = at_step_2["split"]
    seen(browser, lambda page: page["split"] != observed, "a refresh with a newer observation")
    promote.click()
    until(browser, lambda d: d.find_element("id", "confirm").get_attribute("open") is not None, "the dialog")
    browser.find_element("id", "confirm-go").click()  # no reason yet: refused on the page
    assert "Say why" in text(browser, "confirm-problem")
    browser.find_element("id", "confirm-reason").send_keys("metrics fine, verified by hand")
    browser.find_element("id", "confirm-go").click()

    promoted = seen(
        browser,
        lambda page: page["state"] == "live" and any("metrics fine, verified by hand" in r for r in page["history"]),
        "promoted to live, the action in the history",
    )
    assert "promote" in promoted["history"][0] and "function key" in promoted["history"][0]
    assert promoted["split"].startswith("credit-v2 100%")
    screenshot(browser, "promoted.png")


def test_a_bad_canary_shows_the_failed_gate_and_the_rollback(
    browser: WebDriver, dashboard: Dashboard, stack: DevStack
) -> None:
    replay(stack, "credit-v1.json")
    browser.get(dashboard.url)
    until(browser, lambda d: text(d, "detail-state") == "live", "credit-v1 live")
    replay(stack, "credit-v3-bad.json")
    select(browser, "credit/credit-v3")

    until(browser, lambda d: text(d, "detail-state") == "rolled_back", "the rollback")
    assert text(browser, "detail-step") == "step 1/3 at 10%"
    assert text(browser, "detail-gate").startswith("gate fail: P99")
    until(browser, lambda d: text(d, "detail-split").startswith("credit-v1 100%"), "traffic back as it was")
    steps = browser.find_elements("css selector", "#steps li")
    assert [s.get_attribute("data-status") for s in steps] == ["failed", "skipped", "skipped"]
    badge = browser.find_element("css selector", 'button.rollout[data-key="credit/credit-v3"] .badge')
    assert badge.text == "rolled_back" and "bad" in str(badge.get_attribute("class"))
    assert browser.find_elements("css selector", ".gate[data-outcome=fail] .gate-chart")
    screenshot(browser, "rollback.png")
