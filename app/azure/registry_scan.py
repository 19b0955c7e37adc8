"""The registry adapter's ARM listing: versions created since a cursor, oldest first, bounded.

Registries raise no events (docs/research/registry-events.md), so production finds promotions whose event was lost
by polling. The ARM list of a model's versions is ordered newest first (``$orderBy=createdtime desc``, the 2023-04-01
``RegistryModelVersions_List`` parameter), so the scan reads each model's pages only until it meets a version older
than the cursor. Every page read counts against ``max_reads``; at most ``max_models`` models are looked at.

The cursor is inclusive (a version created exactly at it is listed again; the caller's ledger tells it was seen), and
it never passes a version that is still being copied, nor, when a bound stopped the scan, anything unread.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.azure.registry_versions import PromotedVersions, from_arm

if TYPE_CHECKING:
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

NEWEST_FIRST = "createdtime desc"


class _Budget:
    """Pages read so far against the bound; ``exhausted`` once a page could not be read because of it."""

    def __init__(self, max_reads: int) -> None:
        self.max_reads = max_reads
        self.reads = 0
        self.exhausted = False

    def pages(self, paged: Iterator[Any]) -> Iterator[list[Any]]:
        while True:
            if self.reads >= self.max_reads:
                self.exhausted = True
                return
            page = next(paged, None)
            if page is None:
                return
            self.reads += 1
            yield list(page)


def scan_promoted(
    mgmt: MachineLearningServicesMgmtClient,
    resource_group: str,
    registry: str,
    since: datetime | None,
    *,
    max_models: int,
    max_reads: int,
    max_versions: int,
) -> PromotedVersions:
    """Versions created at or after ``since`` (everything when None), within the bounds; see the module docstring."""
    budget = _Budget(max_reads)
    names: list[str] = []
    containers: Any = mgmt.registry_model_containers.list(resource_group, registry)  # an ItemPaged: read by page
    for page in budget.pages(iter(containers.by_page())):
        names.extend(str(container.name) for container in page)
    scanned_all = not budget.exhausted and len(names) <= max_models
    ready: list[Any] = []
    copying: list[datetime] = []
    for name in names[:max_models]:
        listed: Any = mgmt.registry_model_versions.list(resource_group, registry, name, order_by=NEWEST_FIRST)
        for page in budget.pages(iter(listed.by_page())):
            newer = [item for item in page if since is None or _created(item) >= since]
            ready += [item for item in newer if _state(item) == "Succeeded"]
            copying += [_created(item) for item in newer if _state(item) != "Succeeded"]
            if len(newer) < len(page):
                break  # the rest is older than the cursor
        if budget.exhausted:
            scanned_all = False
            break
    ready.sort(key=lambda item: (_created(item), str(item.id)))
    truncated = len(ready) > max_versions
    ready = ready[:max_versions]
    cursor: datetime | None
    if not scanned_all:
        cursor = since  # something was left unread: the next scan starts where this one did
    elif truncated:
        cursor = _created(ready[-1])
    else:
        cursor = max((_created(item) for item in ready), default=since)
    if copying and cursor is not None:
        cursor = min(cursor, *copying)
    return PromotedVersions(tuple(from_arm(registry, item) for item in ready), cursor, scanned_all and not truncated)


def _created(item: Any) -> datetime:
    created = getattr(item.system_data, "created_at", None)
    if not isinstance(created, datetime):
        raise ValueError(f"registry version {item.id} has no systemData.createdAt")
    return created


def _state(item: Any) -> str:
    return str(getattr(item.properties, "provisioning_state", None) or "Succeeded")
