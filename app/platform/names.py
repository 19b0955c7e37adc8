"""Azure ML's rule for online endpoint and deployment names, shared by the settings reader and the planner (pure).

The rule is azure.ai.ml's ``EndpointConfigurations.NAME_REGEX_PATTERN``: 3-32 characters, a letter first,
letters/digits/hyphens, ending in a letter or digit.
"""

from __future__ import annotations

import re

MIN_LENGTH, MAX_LENGTH = 3, 32
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def is_valid_name(name: str) -> bool:
    """Does ``name`` satisfy AML's endpoint/deployment naming rule?"""
    return MIN_LENGTH <= len(name) <= MAX_LENGTH and bool(NAME_PATTERN.match(name))
