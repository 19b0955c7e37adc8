"""A ledger's history in bulk: finished rollouts written as the ledger writes them (rows and index entries), batched.

``make bench`` and the tests of what history costs fill a ledger this way: 100 entities a transaction per
partition (Azure Tables' batch limit) instead of one round trip per write.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from app.rollout.ledger.ledger import entities_of

if TYPE_CHECKING:
    from app.azure.tables import TableStore
    from app.rollout.decide.model import Rollout

#: Azure Tables takes at most 100 operations, all in one partition, in one batch transaction.
BATCH = 100


def load_finished(
    store: TableStore, rollouts: Iterable[Rollout], progress: Callable[[int, int], None] | None = None
) -> int:
    """Upsert ``rollouts`` (each finished) with their index entries; returns the entities written.

    ``progress(loaded, total)`` is called after each batch, for a caller that shows how far it has got."""
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):  # a reset may have deleted the table under a cached client
        store.client.create_table()
    batches: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for rollout in rollouts:
        for partition, key, data in entities_of(rollout):
            batches[partition].append(("upsert", {"PartitionKey": partition, "RowKey": key, **data}))
    loaded, total = 0, sum(len(operations) for operations in batches.values())
    for operations in batches.values():
        for start in range(0, len(operations), BATCH):
            store.client.submit_transaction(operations[start : start + BATCH])
            loaded += len(operations[start : start + BATCH])
            if progress is not None:
                progress(loaded, total)
    return total
