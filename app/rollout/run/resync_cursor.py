"""Where each resync run starts: the models a run looks at move on from run to run, so every model is reached.

A run looks at no more than ``RESYNC_MAX_MODELS`` models (one version read each). With more models than that,
a run that always started from the first would never reach the rest. The models are ordered by name
(case-insensitively: the container list's own order is not documented), and each run looks at the next
``RESYNC_MAX_MODELS`` after the last model the previous run looked at, wrapping around at the end; so with ``n``
models every one is looked at within ``ceil(n / RESYNC_MAX_MODELS)`` runs. The last model looked at is kept per
workspace in the idempotency table (``resync-cursor`` / workspace scope); undated, so retention leaves it alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from app.platform.tables import Table, workspace_scope
from app.platform.workspace import WorkspaceRef

CURSOR_PARTITION = "resync-cursor"


@dataclass(frozen=True)
class Turn:
    """The models one run looks at, in order, and where the next run starts (after ``next_after``; "" from the
    first)."""

    names: tuple[str, ...]
    next_after: str

    @property
    def partial(self) -> bool:
        return bool(self.next_after)


def models_in_turn(names: Iterable[str], after: str, limit: int) -> Turn:
    """The next ``limit`` models after ``after`` in name order, wrapping around (pure)."""
    ordered = sorted(dict.fromkeys(names), key=lambda name: (name.lower(), name))
    if len(ordered) <= limit:
        return Turn(tuple(ordered), "")
    key = after.lower()
    start = next((index for index, name in enumerate(ordered) if after and name.lower() > key), 0)
    chosen = tuple(ordered[(start + offset) % len(ordered)] for offset in range(limit))
    return Turn(chosen, chosen[-1])


class ResyncCursor:
    """The last model a resync run looked at in one workspace."""

    def __init__(self, table: Table, workspace: WorkspaceRef) -> None:
        self._table = table
        self._key = workspace_scope(workspace)

    def after(self) -> str:
        row = self._table.get(CURSOR_PARTITION, self._key)
        return str(row.data.get("After") or "") if row is not None else ""

    def save(self, after: str, now: dt.datetime) -> None:
        self._table.upsert(CURSOR_PARTITION, self._key, {"After": after, "UpdatedAt": now})
