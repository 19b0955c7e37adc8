"""Deterministic, always-valid AML endpoint and deployment names from model name and version.

AML's rule (azure.ai.ml EndpointConfigurations.NAME_REGEX_PATTERN): 3-32 characters, a letter
first, letters/digits/hyphens, ending in a letter or digit. Names are folded to lower case and
every run of other characters becomes one hyphen, so ``credit_risk.v2`` version ``7`` gives
``credit-risk-v2-v7``. A name that would be too long, or that does not start with a letter (it
gets an ``m-`` prefix), is given a 6-character hash of the full (name, version), so distinct
inputs keep distinct names. Inputs that differ only in
case or punctuation (``a_b`` vs ``a.b``) fold to the same readable name; the rollout refuses to
touch a deployment whose name it shares with a different model rather than overwrite it.
"""

from __future__ import annotations

import hashlib
import re

MIN_LENGTH, MAX_LENGTH = 3, 32
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_HASH_LENGTH = 6
_MAX_VERSION_PART = 12


def is_valid_name(name: str) -> bool:
    """Does ``name`` satisfy AML's endpoint/deployment naming rule?"""
    return MIN_LENGTH <= len(name) <= MAX_LENGTH and bool(NAME_PATTERN.match(name))


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


def endpoint_name(model_name: str) -> str:
    """The default endpoint for a model when its ``endpoint`` tag is not set."""
    base = slug(model_name)
    name = base if len(base) >= MIN_LENGTH else f"{base}-endpoint".lstrip("-")
    if base[:1].isalpha() and is_valid_name(name):
        return name
    name = _letter_first(name)
    room = MAX_LENGTH - _HASH_LENGTH - 1
    return f"{name[:room].rstrip('-')}-{_short_hash(model_name)}"
