"""Where the CLI connects and how it signs in: a URL and a function key, an Entra token, or the local dev kit.

- ``--url`` or ``AML_ROLLOUTS_URL``: a deployed app's base URL; a function key only from ``AML_ROLLOUTS_KEY``
  (never a flag: a flag shows in the process list and the shell history).
- ``--auth entra``: also send an Entra ID token from azure-identity's ``DefaultAzureCredential`` for the scope
  ``--scope`` / ``AML_ROLLOUTS_SCOPE`` (an app behind App Service authentication, "Easy Auth").
- Neither: the dev kit ``make up`` started, from its attach file ``.devkit/up.json`` (searched from the current
  folder upwards; ``AML_ROLLOUTS_DEVKIT`` names another file).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aml_rollouts.errors import CliError, Exit

URL_ENV = "AML_ROLLOUTS_URL"
KEY_ENV = "AML_ROLLOUTS_KEY"
SCOPE_ENV = "AML_ROLLOUTS_SCOPE"
DEVKIT_ENV = "AML_ROLLOUTS_DEVKIT"
#: The attach file ``make up`` writes (owner-only) in the repository's ``.devkit`` folder.
DEVKIT_FILE = Path(".devkit") / "up.json"
NO_APP = (
    f"no app to talk to: pass --url or set {URL_ENV} (a deployed app, with its function key in {KEY_ENV}), "
    "or start the dev kit with `make up` in the repository"
)

TokenProvider = Callable[[], str]


@dataclass(frozen=True)
class Connection:
    """The app's base URL, the headers that sign a request in, and where they came from (for error lines)."""

    url: str
    key: str = ""
    token: TokenProvider | None = None
    source: str = ""

    def headers(self) -> dict[str, str]:
        headers = {"x-functions-key": self.key} if self.key else {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token()}"
        return headers


def resolve(
    url: str | None,
    auth: str,
    scope: str | None,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> Connection:
    """The connection the options and the environment describe; ``CliError`` (usage) names what is missing."""
    base = url or env.get(URL_ENV, "")
    key = env.get(KEY_ENV, "")
    source = "--url" if url else URL_ENV if base else ""
    if not base:
        devkit = _devkit(env, cwd or Path.cwd())
        if devkit is None:
            raise CliError(Exit.USAGE, NO_APP)
        base, key, source = devkit["url"], key or devkit["functionKey"], devkit["source"]
    if not base.lower().startswith(("http://", "https://")):
        raise CliError(
            Exit.USAGE, f"{source or 'the URL'} {base!r} is not an http(s) URL; e.g. https://<app>.azurewebsites.net"
        )
    token = None
    if auth == "entra":
        scope = scope or env.get(SCOPE_ENV, "")
        if not scope:
            raise CliError(
                Exit.USAGE,
                f"--auth entra needs the app's scope: pass --scope or set {SCOPE_ENV}, "
                "e.g. api://<app client id>/.default",
            )
        token = entra_token(scope)
    return Connection(base.rstrip("/"), key, token, source)


def entra_token(scope: str) -> TokenProvider:
    """A token provider for ``scope``; azure-identity is an optional extra, imported only for ``--auth entra``."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise CliError(Exit.USAGE, "--auth entra needs azure-identity: pip install 'aml-rollouts[entra]'") from None
    credential = DefaultAzureCredential()

    def token() -> str:
        try:
            return str(credential.get_token(scope).token)
        except Exception as err:  # azure.core's ClientAuthenticationError and the chain's own errors
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CliError(
                Exit.AUTH,
                f"no Entra ID token for {scope}: {first}; sign in with `az login` (or set a managed identity)",
            ) from None

    return token


def _devkit(env: Mapping[str, str], cwd: Path) -> dict[str, str] | None:
    """The dev kit's URL and key from its attach file, or None when there is none."""
    named = env.get(DEVKIT_ENV)
    candidates = [Path(named)] if named else [folder / DEVKIT_FILE for folder in (cwd, *cwd.parents)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if named:
            raise CliError(Exit.USAGE, f"{DEVKIT_ENV}={named}: no such file; start the dev kit with `make up`")
        return None
    return read_attach(path)


def read_attach(path: Path) -> dict[str, str]:
    """``{"url", "functionKey", "source"}`` from an attach file, checked; ``CliError`` names the problem."""
    fix = "start the dev kit again with `make up` (it rewrites the file)"
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CliError(Exit.USAGE, f"{path}: readable by others; it holds a key: chmod 600 {path}, or {fix}")
        body: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CliError(Exit.USAGE, f"{path}: cannot be read ({err}); {fix}") from None
    host = body.get("DevKit") if isinstance(body, dict) else None
    if not isinstance(host, dict) or not all(isinstance(host.get(k), str) for k in ("url", "functionKey")):
        raise CliError(Exit.USAGE, f"{path}: not a dev kit attach file (no DevKit url and functionKey); {fix}")
    return {"url": host["url"], "functionKey": host["functionKey"], "source": f"the dev kit ({path})"}


def environ() -> dict[str, str]:
    return dict(os.environ)
