"""The README and the sample settings tell the truth about the settings the code reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
#: Variables the platform sets itself: documented, but not for the sample to fill in.
PLATFORM_PROVIDED = frozenset({"WEBSITE_HOSTNAME"})
#: Documented in docs/configuration.md once the docs branch lands (this branch may not edit the README).
# TODO(merge): drop this exemption when the configuration table lists WEBSITE_HOSTNAME.
NOT_YET_IN_THE_TABLE = frozenset({"WEBSITE_HOSTNAME"})


def _settings_the_code_reads() -> set[str]:
    source = (ROOT / "shared" / "settings.py").read_text()
    return set(re.findall(r"reader\.\w+\(\s*\"([A-Za-z][A-Za-z0-9_]*)\"", source))


def _configuration_table() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Configuration' section"
    return match.group(1)


def test_the_settings_reader_is_found() -> None:
    assert {"AML_ALLOWED_WORKSPACES", "DEPLOY_MODE", "RETRAIN_JOB_TAGS"} <= _settings_the_code_reads()


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    table = _configuration_table()
    missing = {
        name
        for name in _settings_the_code_reads() - NOT_YET_IN_THE_TABLE
        if f"`{name}`" not in table and f"`__{name.split('__')[-1]}`" not in table
    }
    assert not missing, f"add to README's configuration table: {sorted(missing)}"


def test_every_setting_is_in_the_sample_local_settings() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    # Identity-based storage is the alternative to the connection string the sample uses.
    expected = {
        name for name in _settings_the_code_reads() - PLATFORM_PROVIDED if not name.startswith("AzureWebJobsStorage__")
    }
    missing = expected - set(values)
    assert not missing, f"add to local.settings.sample.json: {sorted(missing)}"


def test_the_sample_holds_no_secret() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert values["NOTIFY_TOPIC_KEY"] == ""
    assert values["NOTIFY_WEBHOOK_URL"] == ""
    assert "AccountKey=" not in values["AzureWebJobsStorage"]
