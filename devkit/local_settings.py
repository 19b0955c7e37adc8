"""Read ``local.settings.json`` ``Values`` into the environment the way ``func start`` does.

Core Tools (``StartHostAction.UpdateEnvironmentVariables`` in Azure/azure-functions-core-tools) copies each
value into the process environment only when that variable is unset or empty; otherwise it prints "Skipping
'NAME' from local settings as it's already defined in current environment variables." Real environment
variables therefore win over the file, and so they do here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "local.settings.json"
#: Where the function app lives: the folder that holds function_app.py and host.json.
APP_ROOT = Path(__file__).resolve().parents[1]


class LocalSettingsError(ValueError):
    """``local.settings.json`` cannot be used; the message is one line naming the file, the problem and the fix."""


@dataclass
class LoadedSettings:
    """What was read, and what the environment kept."""

    path: Path | None = None
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already set in the environment, which wins


def find(cwd: Path | None = None) -> Path | None:
    """The file ``func start`` would read: in the current directory, else in the app's root folder."""
    for folder in (cwd or Path.cwd(), APP_ROOT):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def read_values(path: Path) -> dict[str, str]:
    """The ``Values`` object of ``path``, checked: every value must be a string, as Core Tools expects."""
    fix = f"fix it, or start from local.settings.sample.json (copy it to {FILE_NAME})"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LocalSettingsError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); {fix}"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise LocalSettingsError(f"{path}: cannot be read ({err}); {fix}") from None
    if not isinstance(body, dict):
        raise LocalSettingsError(f'{path}: must be a JSON object with a "Values" object; {fix}')
    if body.get("IsEncrypted") is True:
        raise LocalSettingsError(f"{path}: its values are encrypted; run `func settings decrypt` first")
    values = body.get("Values", {})
    if not isinstance(values, dict):
        raise LocalSettingsError(f'{path}: "Values" must be an object of NAME: "value" pairs; {fix}')
    wrong = sorted(name for name, value in values.items() if not isinstance(value, str))
    if wrong:
        raise LocalSettingsError(
            f'{path}: Values.{wrong[0]} is not a string; quote it (app settings are strings, e.g. "3", "true")'
        )
    return dict(values)


def apply(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Copy ``values`` into ``environ`` where the variable is unset or empty. Returns (applied, skipped)."""
    env = os.environ if environ is None else environ
    applied, skipped = [], []
    for name, value in values.items():
        if env.get(name):
            skipped.append(name)
        else:
            env[name] = value
            applied.append(name)
    return applied, skipped


def load(cwd: Path | None = None, environ: MutableMapping[str, str] | None = None) -> LoadedSettings:
    """Find, read and apply ``local.settings.json``; no file is fine (nothing is applied)."""
    path = find(cwd)
    if path is None:
        return LoadedSettings()
    applied, skipped = apply(read_values(path), environ)
    return LoadedSettings(path, applied, skipped)
