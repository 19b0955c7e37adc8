"""The demo's rollout status table (pure): one row per rollout, the traffic it has now beside a state that agrees
with it, reasons wrapped at word boundaries, every line within the terminal's width."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

COLUMNS = ("endpoint", "deployment", "model", "state", "traffic")
#: States whose rollout ended serving its planned share; the traffic may have moved on since.
SERVING = ("live", "canary", "dark")
#: A reason column narrower than this would cut long words (an instance type, a tag): the reasons then go on
#: their own lines under each row, across the whole width.
MIN_REASON = 40
BELOW = 4


def terminal_width(default: int = 120) -> int:
    return shutil.get_terminal_size((default, 24)).columns


def reason_now(rollout: Mapping[str, Any], split: Mapping[str, int]) -> str:
    """The rollout's reason, or, when it ended serving a share its deployment no longer has, what happened since."""
    state, deployment = rollout["state"], rollout["deployment"]
    now, planned = split.get(deployment, 0), int(rollout.get("traffic") or 0)
    if state not in SERVING or now == planned:
        return str(rollout["reason"])
    others = ", ".join(f"{name} {pct}%" for name, pct in sorted(split.items()) if name != deployment and pct)
    return f"ended {state} at {planned}%; now {now}%" + (f": {others} since" if others else "")


def render(
    rollouts: Sequence[Mapping[str, Any]], traffic_of: Callable[[Mapping[str, Any]], Mapping[str, int]], width: int
) -> list[str]:
    """The table's lines. ``traffic_of`` gives a rollout's endpoint split now ({} when it has no endpoint)."""
    rows = []
    for rollout in rollouts:
        split = traffic_of(rollout)
        cells = [
            str(rollout["endpoint"]),
            str(rollout["deployment"]),
            f"{rollout['model']}:{rollout['version']}",
            str(rollout["state"]),
            f"{split.get(rollout['deployment'], 0)}%",
        ]
        rows.append((cells, reason_now(rollout, split)))
    widths = [max([len(name), *(len(cells[i]) for cells, _ in rows)]) for i, name in enumerate(COLUMNS)]
    indent = sum(widths) + 2 * len(widths)
    below = width - indent < MIN_REASON
    lines = [_line([*COLUMNS, "" if below else "reason"], widths)]
    for cells, reason in rows:
        wrapped = _wrap(reason, width - BELOW if below else width - indent)
        if below:
            lines += [_line([*cells, ""], widths), *(" " * BELOW + part for part in wrapped)]
        else:
            lines += [_line([*cells, wrapped[0]], widths), *(" " * indent + part for part in wrapped[1:])]
    return lines


def _wrap(text: str, width: int) -> list[str]:
    """Whole words per line; only a word longer than the whole line is cut."""
    return textwrap.wrap(text, max(width, 1), break_on_hyphens=False) or [""]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join([*padded, cells[-1]]).rstrip()
