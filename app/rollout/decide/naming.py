"""Deterministic, always-valid AML endpoint and deployment names from model name and version.

AML's rule (azure.ai.ml EndpointConfigurations.NAME_REGEX_PATTERN): 3-32 characters, a letter
first, letters/digits/hyphens, ending in a letter or digit. Names are folded to lower case and
every run of other characters becomes one hyphen, so ``credit_risk.v2`` version ``7`` gives
``credit-risk-v2-v7``. A name that would be too long, or that does not start with a letter (it
gets an ``m-`` prefix), is given a 6-character hash of the full (name, version), so distinct
inputs keep distinct names. Inputs that differ only in
case or punctuation (``a_b`` vs ``a.b``) fold to the same readable name; the rollout refuses to
touch a deployment whose name it shares with a different model rather than overwrite it.

Endpoint names are unique per Azure region, not per workspace, so a default endpoint name carries a suffix
derived from the workspace (see ``endpoint_name``).
"""

from __future__ import annotations

import hashlib
import re

from app.platform.errors import PermanentError
from app.platform.names import MAX_LENGTH, is_valid_name

__all__ = ["EndpointNameTaken", "deployment_name", "endpoint_name", "is_valid_name", "slug"]
_HASH_LENGTH = 6
_MAX_VERSION_PART = 12


class EndpointNameTaken(PermanentError):
    """AML refused to create an endpoint: its name is held in the region by another workspace (or was, recently)."""

    #: AML's validation message for it (see devkit/aml_emulator/rules.py for where it is documented).
    MARKER = "unique within a region"

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"endpoint name {endpoint} is already taken in this Azure region: endpoint names are unique per region "
            "across all workspaces, and another workspace holds it (or deleted it recently); nothing was written. "
            "Set the model's endpoint tag to a name of your own and register a new version"
        )
        self.endpoint = endpoint


def slug(text: str) -> str:
    """Lower-case ``text`` with each run of characters other than a-z0-9 turned into one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:_HASH_LENGTH]


def _letter_first(base: str) -> str:
    return base if base[:1].isalpha() else f"m-{base}".rstrip("-")


def deployment_name(model_name: str, model_version: str) -> str:
    """The deployment name for one model version, e.g. ``credit-risk-v2-v7``."""
    model_part = slug(model_name)
    version_part = "v" + (slug(model_version) or _short_hash(model_version))
    name = f"{model_part}-{version_part}"
    # A prefixed name could equal another model's plain one, so it always carries the hash.
    if model_part[:1].isalpha() and is_valid_name(name):
        return name
    model_part = _letter_first(model_part)
    version_part = version_part[:_MAX_VERSION_PART].rstrip("-")
    room = MAX_LENGTH - len(version_part) - _HASH_LENGTH - 2
    return f"{model_part[:room].rstrip('-')}-{version_part}-{_short_hash(model_name, model_version)}"


def endpoint_name(model_name: str, workspace_id: str) -> str:
    """The default endpoint for a model when its ``endpoint`` tag is not set: ``{model slug}-{workspace suffix}``.

    AML endpoint names are unique per Azure region, across workspaces, so the model's slug alone (``credit``)
    collides with any other team's ``credit``. The suffix is 6 hex characters of a hash of the workspace's ARM id
    (compared case-insensitively), the same for every endpoint of one workspace: ``credit`` in one workspace is
    e.g. ``credit-3f9a1c``. A slug too long for the 32 characters, or not starting with a letter (it gets an ``m-``
    prefix), also gets a hash of the full model name, so distinct names stay distinct:
    ``{first 18 characters}-{model hash}-{workspace suffix}``.
    """
    suffix = _short_hash(workspace_id.lower())
    base = slug(model_name)
    if base[:1].isalpha() and len(base) + 1 + _HASH_LENGTH <= MAX_LENGTH:
        return f"{base}-{suffix}"
    # Cut or prefixed: the model hash keeps it apart from the plain name of another model.
    room = MAX_LENGTH - 2 * (_HASH_LENGTH + 1)
    return f"{_letter_first(base)[:room].rstrip('-')}-{_short_hash(model_name)}-{suffix}"
