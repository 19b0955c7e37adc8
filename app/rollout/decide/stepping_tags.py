"""Progressive-delivery tags (pure): traffic_steps, bake, smoke_request, max_error_rate, max_p99_ms.

Each problem names the tag, the value and the rule, like the rest of the tag contract in ``plan.py``.

Tighten-only thresholds are **rejected at plan time** when they are looser than the platform's settings,
rather than silently ignored at gate time: the ML engineer who wrote ``max_error_rate=5`` learns at once,
from the rejection notification, that the platform allows 1%, instead of discovering weeks later that the
tag never did anything. The gate still takes the stricter of tag and setting (``GatePolicy.tightened``), so
a setting tightened after the plan was made wins, with a note in the evidence.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from app.platform.durations import RULE as DURATION_RULE
from app.platform.durations import parse_duration
from app.platform.settings import Settings

MAX_STEPS = 10
MAX_BAKE = dt.timedelta(hours=24)
MAX_SMOKE_REQUEST_CHARS = 100_000


@dataclass(frozen=True)
class ProgressiveTags:
    """The validated values, as ``RolloutPlan`` stores them (empty steps: one step at ``traffic``)."""

    traffic_steps: tuple[int, ...] = ()
    bake_seconds: int = 0
    smoke_request: str = ""
    max_error_rate: float | None = None
    max_p99_ms: float | None = None


def parse_progressive_tags(
    tags: Mapping[str, str], traffic: int, settings: Settings, problems: list[str]
) -> ProgressiveTags:
    """Read the progressive-delivery tags of a model (keys already lower-cased and stripped)."""
    if settings.smoke_required and not tags.get("smoke_request", "").strip():
        # The app's identity cannot read the model's stored input example, so the tag is the only sample: reject
        # before anything is written rather than deploy a model that could never pass its smoke test.
        problems.append(
            "tag 'smoke_request' is absent: SMOKE_REQUIRED=true needs a sample request for the smoke test; add "
            "smoke_request=<the JSON body of one scoring request>"
        )
    return ProgressiveTags(
        traffic_steps=parse_traffic_steps(tags.get("traffic_steps", ""), traffic, problems),
        bake_seconds=int(parse_bake(tags.get("bake", ""), settings.bake_default, problems).total_seconds()),
        smoke_request=parse_smoke_request(tags.get("smoke_request", ""), problems),
        max_error_rate=parse_max_error_rate(tags.get("max_error_rate", ""), settings.gate_max_error_rate, problems),
        max_p99_ms=parse_max_p99_ms(tags.get("max_p99_ms", ""), settings.gate_max_p99_ms, problems),
    )


def parse_traffic_steps(raw: str, traffic: int, problems: list[str]) -> tuple[int, ...]:
    """``10,50,100``: whole percentages 1..100, strictly increasing, ending at the final share ``traffic``."""
    if not raw.strip():
        return ()
    items = [item.strip().removesuffix("%").strip() for item in raw.split(",")]
    rule = (
        f"must be comma-separated whole percentages from 1 to 100, strictly increasing, at most {MAX_STEPS}, "
        f"ending at the final share (tag 'traffic', here {traffic})"
    )
    if not all(item.isascii() and item.isdigit() for item in items):
        problems.append(f"tag 'traffic_steps'={raw!r}: {rule}")
        return ()
    steps = tuple(int(item) for item in items)
    if traffic == 0:
        problems.append(f"tag 'traffic_steps'={raw!r}: steps need live traffic; a dark rollout (traffic=0) has none")
        return ()
    ordered = all(b > a for a, b in itertools.pairwise(steps))
    if not (ordered and steps[0] >= 1 and steps[-1] == traffic and len(steps) <= MAX_STEPS):
        problems.append(f"tag 'traffic_steps'={raw!r}: {rule}")
        return ()
    return steps


def parse_bake(raw: str, default: dt.timedelta, problems: list[str]) -> dt.timedelta:
    """How long each step is watched: ``90s``, ``10m``, ``1h``; ``BAKE_DEFAULT`` when absent."""
    if not raw.strip():
        return default
    try:
        value = parse_duration(raw)
    except ValueError:
        problems.append(f"tag 'bake'={raw!r}: must be {DURATION_RULE}, at most 24h")
        return default
    if value > MAX_BAKE:
        problems.append(f"tag 'bake'={raw!r}: must be {DURATION_RULE}, at most 24h")
        return default
    return value


def parse_smoke_request(raw: str, problems: list[str]) -> str:
    """Inline JSON (an object or an array) sent as the smoke test's request body."""
    text = raw.strip()
    if not text:
        return ""
    rule = "must be inline JSON (an object or an array), the body of one scoring request"
    if len(text) > MAX_SMOKE_REQUEST_CHARS:
        problems.append(f"tag 'smoke_request' ({len(text)} characters): {rule}, at most {MAX_SMOKE_REQUEST_CHARS}")
        return ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(f"tag 'smoke_request'={_excerpt(text)!r}: {rule} ({err.msg} at character {err.pos})")
        return ""
    if not isinstance(value, (dict, list)):
        problems.append(f"tag 'smoke_request'={_excerpt(text)!r}: {rule}")
        return ""
    return text


def parse_max_error_rate(raw: str, platform: float, problems: list[str]) -> float | None:
    """A stricter server-error share, in percent: 0 up to ``GATE_MAX_ERROR_RATE``."""
    value = _number(raw, "%")
    if raw.strip() == "":
        return None
    if value is None or not 0 <= value <= platform:
        problems.append(
            f"tag 'max_error_rate'={raw!r}: must be a percentage from 0 to {platform:g} "
            f"(GATE_MAX_ERROR_RATE; tags may only tighten the platform's gate)"
        )
        return None
    return value


def parse_max_p99_ms(raw: str, platform: float | None, problems: list[str]) -> float | None:
    """A stricter P99 latency limit in milliseconds: above 0, and at most ``GATE_MAX_P99_MS`` when that is set."""
    value = _number(raw, "ms")
    if raw.strip() == "":
        return None
    limit = f"up to {platform:g} (GATE_MAX_P99_MS; tags may only tighten the platform's gate)" if platform else ""
    if value is None or value <= 0 or (platform is not None and value > platform):
        problems.append(f"tag 'max_p99_ms'={raw!r}: must be a number of milliseconds above 0 {limit}".rstrip())
        return None
    return value


def _number(raw: str, unit: str) -> float | None:
    text = raw.strip().removesuffix(unit).strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
