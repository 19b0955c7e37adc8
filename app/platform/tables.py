"""The table port: rows with ETag concurrency, and what every table store does on top of its primitives.

The Azure Tables adapter (``app/azure/tables.py``) and the tests' in-memory table implement ``Table``; the
ledger, the idempotency records and the outbox are written against it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.platform.errors import EventValidationError, RetryableError
from app.platform.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

_NOT_IN_TABLE_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def workspace_scope(workspace: WorkspaceRef) -> str:
    """``{name}~{hash}``: a readable partition-key part unique per workspace (ids compare case-insensitively)."""
    return f"{workspace.workspace_name}~{hashlib.sha256(workspace.key.encode()).hexdigest()[:8]}"


def checked_key(value: str, field: str, what: str) -> str:
    """``value`` if Azure Tables accepts it as a key; else an ``EventValidationError`` naming ``field``."""
    if not value or _NOT_IN_TABLE_KEYS.search(value) or len(value) > 255:
        raise EventValidationError(field, f"{value!r} is not {what}")
    return value


def backoff(attempt: int) -> None:
    """A short jittered pause after an ETag conflict, so contending writers stop colliding."""
    time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))


class Conflict(Exception):
    """The row changed (ETag mismatch) or already exists: re-read and decide again."""


@dataclass(frozen=True)
class Row:
    """A table entity: keys, user properties and the ETag it was read with."""

    partition: str
    key: str
    data: Mapping[str, Any] = field(default_factory=dict)
    etag: str = ""


class Table(ABC):
    """A table with ETag concurrency: the primitives each store implements, and what is built on them."""

    @abstractmethod
    def get(self, partition: str, key: str, *, select: list[str] | None = None) -> Row | None:
        """The row, or None. ``select`` names the properties to read (the others are left on the server)."""

    @abstractmethod
    def upsert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        """Insert or replace the row whatever its ETag: for rows whose every writer writes the same meaning."""

    @abstractmethod
    def insert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        """Create the row; ``Conflict`` if it exists already."""

    @abstractmethod
    def replace(self, row: Row, data: Mapping[str, Any]) -> Row:
        """Replace the row if it is unchanged since ``row`` was read; ``Conflict`` otherwise."""

    @abstractmethod
    def delete(self, row: Row) -> None:
        """Delete the row if it is unchanged since ``row`` was read; ``Conflict`` otherwise. Gone already is fine."""

    @abstractmethod
    def page(
        self,
        filter: str,
        *,
        limit: int | None = None,
        select: list[str] | None = None,
        continuation: dict[str, str] | None = None,
        **parameters: Any,
    ) -> tuple[list[Row], dict[str, str] | None]:
        """One request: up to ``limit`` rows from ``continuation`` on, and the token for the next page (None at
        the end). A store may answer fewer rows than ``limit`` with a token: keep following it."""

    def query(self, filter: str, *, select: list[str] | None = None, **parameters: Any) -> Iterator[Row]:
        """Every row ``filter`` matches, page by page (each page is one transaction)."""
        continuation: dict[str, str] | None = None
        while True:
            rows, continuation = self.page(filter, select=select, continuation=continuation, **parameters)
            yield from rows
            if continuation is None:
                return

    def partition(self, partition: str, *, select: list[str] | None = None) -> list[Row]:
        return list(self.query("PartitionKey eq @pk", select=select, pk=partition))

    def update(
        self, partition: str, key: str, change: Callable[[Row | None], Mapping[str, Any] | None], *, tries: int = 8
    ) -> Row | None:
        """Read-modify-write with ETags: ``change`` sees the current row (or None) and returns the new
        properties, or None to leave it alone. Retried on ``Conflict``, so no update is lost."""
        for attempt in range(tries):
            current = self.get(partition, key)
            data = change(current)
            if data is None:
                return current
            try:
                return self.replace(current, data) if current else self.insert(partition, key, data)
            except Conflict:
                logger.debug("%s/%s changed under us; re-reading", partition, key)
                backoff(attempt)
        raise RetryableError(f"{partition}/{key} kept changing under concurrent updates")
