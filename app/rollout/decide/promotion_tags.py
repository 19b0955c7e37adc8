"""The model tags of promotion and approval (pure): ``promote``, ``promote_tags`` and ``approval``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.platform.quoting import quoted

PROMOTE_TAG = "promote"
PROMOTE_TAGS_TAG = "promote_tags"
APPROVAL_TAG = "approval"
#: The one value of the ``approval`` tag: a tag can ask for an approval, never waive one.
APPROVAL_REQUIRED = "required"
#: ``promote_tags=none``: the registry version keeps none of the model's tags (the evidence only).
CARRY_NONE = "none"


@dataclass(frozen=True)
class PromotionTags:
    promote: bool = False
    carry: tuple[str, ...] | None = None  # None: every tag of the model
    approval: bool = False


def parse_promotion_tags(tags: Mapping[str, str], problems: list[str]) -> PromotionTags:
    """``promote``, ``promote_tags`` and ``approval`` from a model's tags (keys lower-cased, values stripped)."""
    promote = tags.get(PROMOTE_TAG, "")
    if promote.lower() not in ("", "true", "false"):
        problems.append(f"tag '{PROMOTE_TAG}'={quoted(promote)}: must be true or false")
    carry: tuple[str, ...] | None = None
    raw = tags.get(PROMOTE_TAGS_TAG)
    if raw is not None:
        names = [name.strip() for name in raw.split(",") if name.strip()]
        if raw.strip().lower() == CARRY_NONE:
            carry = ()
        elif not names:
            problems.append(
                f"tag '{PROMOTE_TAGS_TAG}'={quoted(raw)}: list the tags the registry version keeps, comma-separated "
                f"(e.g. deploy,endpoint,traffic), or '{CARRY_NONE}'; leave the tag out to keep them all"
            )
        else:
            carry = tuple(dict.fromkeys(names))
    approval = tags.get(APPROVAL_TAG, "")
    if approval and approval.lower() != APPROVAL_REQUIRED:
        problems.append(
            f"tag '{APPROVAL_TAG}'={quoted(approval)}: the only value is '{APPROVAL_REQUIRED}'; a tag can ask for an "
            "approval but never waive one (REQUIRE_APPROVAL=true asks for every rollout)"
        )
    return PromotionTags(promote.lower() == "true", carry, approval.lower() == APPROVAL_REQUIRED)
