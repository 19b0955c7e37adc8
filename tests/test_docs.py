"""The docs tell the truth: one settings table that matches the code, the sample and the Bicep; links resolve.

The settings rules, each a test below:

- Every setting the code reads has exactly one row in the table of ``docs/configuration.md``. "Read by the
  code" is derived, not hand-kept: the setting-name literals in ``app/platform/settings.py``, the ``%NAME%`` binding
  expressions in ``function_app.py``, and any ``os.environ`` read of a literal name in ``function_app.py``
  or ``app/``.
- Every row names a setting the code reads or the template sets (no stale rows).
- ``local.settings.sample.json`` holds every setting the code reads, except the identity-based
  ``AzureWebJobsStorage__*`` alternatives to the connection string it sets, and the rows whose *in Azure*
  cell says ``the platform`` or ``never (dev kit only)``; those must be absent (an empty
  ``AZUREML_DEV_URL_MFE`` would point azure-ai-ml at no host at all).
- Where a Bicep parameter feeds a setting unchanged (``infra/main.bicep``'s ``appSettings`` maps the setting
  to a parameter), the parameter's ``@description`` **leads** the table's meaning: the meaning, with Markdown
  code and emphasis marks removed, equals the description or starts with it followed by a space. So the
  portal and the docs say the same thing, and the table may add detail after it.
- The *in Azure* cell is true: a setting fed by a parameter names ``azd env set <the azd variable that
  main.parameters.json feeds to that parameter>``; any other setting the template sets says ``the template``;
  a setting the template does not set does not claim it does.
- No other page (README included) carries a settings table.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

pytestmark = pytest.mark.fast

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])

# UPPER_CASE env names, plus the host's AzureWebJobs* names that the app also reads.
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobs\w+")
ENVIRON_READ = re.compile(r"environ(?:\.get\(|\[)\s*\"([A-Za-z_][A-Za-z0-9_]*)\"")
TABLE_ROW = re.compile(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|(.*)\|\s*$", re.MULTILINE)
NOT_IN_SAMPLE = ("the platform", "never (dev kit only)")
README_MAX_LINES = 250


def settings_the_code_reads() -> set[str]:
    settings_py = ROOT / "app" / "platform" / "settings_reader.py"
    literals = {
        node.value
        for node in ast.walk(ast.parse(settings_py.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    names = {value for value in literals if SETTING_NAME.fullmatch(value)}
    app = (ROOT / "function_app.py").read_text()
    names |= set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", app))
    sources = [ROOT / "function_app.py", *(ROOT / "app").rglob("*.py")]
    for source in sources:
        names |= set(ENVIRON_READ.findall(source.read_text()))
    return names


@dataclass(frozen=True)
class Row:
    setting: str
    default: str
    meaning: str
    in_azure: str

    @property
    def plain_meaning(self) -> str:
        return re.sub(r"[`*]", "", self.meaning)


def table_rows(text: str) -> list[Row]:
    rows = []
    for match in TABLE_ROW.finditer(text):
        cells = [cell.strip() for cell in match.group(2).split("|")]
        assert len(cells) == 3, f"row {match.group(1)}: expected default | meaning | in Azure, got {cells}"
        rows.append(Row(match.group(1), *cells))
    return rows


def configuration_rows() -> dict[str, Row]:
    rows = table_rows(CONFIGURATION.read_text())
    return {row.setting: row for row in rows}


@cache
def bicep(name: str) -> dict[str, Any]:
    return BicepParser().parse(file_path=ROOT / "infra" / name)


def bicep_text(value: str) -> str:
    """A Bicep string literal as pycep keeps it, unescaped."""
    return value.replace("\\'", "'").replace("\\\\", "\\")


def app_settings_in_bicep() -> dict[str, Any]:
    """Setting -> its Bicep value expression: main.bicep's appSettings and function.bicep's hostSettings."""
    app = bicep("main.bicep")["variables"]["appSettings"]["value"]
    host = bicep("app/function.bicep")["variables"]["hostSettings"]["value"]
    return {key.strip("'"): value for key, value in {**app, **host}.items()}


def parameter_fed_settings() -> dict[str, str]:
    """Setting -> the main.bicep parameter that feeds it unchanged."""
    parameters = bicep("main.bicep")["parameters"]
    app = bicep("main.bicep")["variables"]["appSettings"]["value"]
    return {key.strip("'"): value for key, value in app.items() if isinstance(value, str) and value in parameters}


def azd_variable_of(parameter: str) -> str:
    value = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"][parameter]["value"]
    match = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)(?:=.*)?\}", value)
    assert match, f"main.parameters.json: {parameter} is not fed from an azd variable: {value!r}"
    return match.group(1)


def test_the_settings_the_code_reads_are_found() -> None:
    found = settings_the_code_reads()
    # One from each source: the Settings reader, the host binding expression, a direct environ read.
    assert {"AML_ALLOWED_WORKSPACES", "RETRAIN_JOB_TAGS", "RECONCILE_SCHEDULE", "AZUREML_DEV_URL_MFE"} <= found


def test_every_setting_the_code_reads_has_exactly_one_row_in_the_configuration_table() -> None:
    rows = [row.setting for row in table_rows(CONFIGURATION.read_text())]
    missing = settings_the_code_reads() - set(rows)
    twice = sorted({name for name in rows if rows.count(name) > 1})
    assert not missing, f"add a row to docs/configuration.md for: {sorted(missing)}"
    assert not twice, f"describe each setting once in docs/configuration.md: {twice}"


def test_every_row_is_a_setting_the_code_reads_or_the_template_sets() -> None:
    stale = set(configuration_rows()) - settings_the_code_reads() - set(app_settings_in_bicep())
    assert not stale, f"docs/configuration.md describes settings nothing reads or sets: {sorted(stale)}"


def test_the_sample_lists_every_setting_except_the_platforms_and_the_dev_kits() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    rows = configuration_rows()
    left_out = {name for name, row in rows.items() if row.in_azure.startswith(NOT_IN_SAMPLE)}
    # Identity-based storage is the alternative to the connection string the sample uses.
    expected = {name for name in settings_the_code_reads() if not name.startswith("AzureWebJobsStorage__")} - left_out
    missing = expected - set(values)
    assert not missing, f"add to local.settings.sample.json: {sorted(missing)}"
    wrongly_set = left_out & set(values)
    assert not wrongly_set, (
        f"remove from local.settings.sample.json (the platform or the dev kit sets them): {wrongly_set}"
    )


def test_the_sample_holds_no_secret() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert values["NOTIFY_TOPIC_KEY"] == ""
    assert values["NOTIFY_WEBHOOK_URL"] == ""
    assert "AccountKey=" not in values["AzureWebJobsStorage"]


def test_each_bicep_parameter_description_leads_its_settings_row() -> None:
    rows, parameters = configuration_rows(), bicep("main.bicep")["parameters"]
    fed = parameter_fed_settings()
    assert len(fed) >= 20, f"expected main.bicep to feed most settings from parameters, found {sorted(fed)}"
    differ = []
    for setting, parameter in sorted(fed.items()):
        descriptions = [d["argument"] for d in parameters[parameter]["decorators"] if d["type"] == "description"]
        assert descriptions, f"main.bicep: parameter {parameter} (feeds {setting}) has no @description"
        row = rows.get(setting)
        if row is None:
            differ.append(f"{setting} ({parameter}): no row in docs/configuration.md")
            continue
        description, meaning = bicep_text(descriptions[0]), row.plain_meaning
        if not (meaning == description or meaning.startswith(description + " ")):
            differ.append(f"{setting} ({parameter}):\n  bicep: {description}\n  table: {meaning}")
    assert not differ, "the Bicep @description must lead the table's meaning:\n" + "\n".join(differ)


def test_the_in_azure_column_says_how_the_template_sets_each_setting() -> None:
    rows, in_bicep, fed = configuration_rows(), app_settings_in_bicep(), parameter_fed_settings()
    wrong = []
    for name, row in rows.items():
        if name in fed:
            expected = f"`azd env set {azd_variable_of(fed[name])}`"
            if expected not in row.in_azure:
                wrong.append(f"{name}: should name {expected}, says {row.in_azure!r}")
        elif name in in_bicep:
            if not row.in_azure.startswith("the template"):
                wrong.append(f"{name}: the template sets it, the table says {row.in_azure!r}")
        elif row.in_azure.startswith(("the template", "`azd env set")):
            wrong.append(f"{name}: the template does not set it, the table says {row.in_azure!r}")
    assert not wrong, "fix the 'in Azure' column of docs/configuration.md:\n" + "\n".join(wrong)


def test_no_other_page_carries_a_settings_table() -> None:
    settings = settings_the_code_reads() | set(configuration_rows())
    tables = {
        page.relative_to(ROOT).as_posix(): sorted(row.group(1) for row in TABLE_ROW.finditer(page.read_text()))
        for page in PAGES
        if page != CONFIGURATION
    }
    offenders = {page: [n for n in names if n in settings] for page, names in tables.items()}
    offenders = {page: names for page, names in offenders.items() if names}
    assert not offenders, f"settings are described only in docs/configuration.md; table rows found in {offenders}"


def test_the_readme_stays_a_front_door() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move depth to docs/ (limit {README_MAX_LINES})"


def _without_code(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors_of(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, duplicates numbered."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def test_the_anchor_rule_matches_github() -> None:
    page = DOCS / "rollout.md"
    assert "how-a-rollout-proceeds" in anchors_of(page)


def test_every_relative_link_points_to_an_existing_file_and_anchor() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)} -> {target}"
            if not resolved.exists():
                broken.append(f"{where}: no such file")
                continue
            if anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
                broken.append(f"{where}: no heading with that anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)
