"""The table port (``app/platform/tables.py``) over Azure Tables, with the Functions host's connection settings."""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from app.azure.throttle import throttle_policy
from app.platform import budgets
from app.platform.errors import SettingsError
from app.platform.tables import Conflict, Row, Table

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient

    from app.platform.settings import Settings

logger = logging.getLogger(__name__)

_NOT_IN_TABLE_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class TableStore(Table):
    """A table in the Function App's storage account. Creates the table on first use."""

    #: Storage transactions by kind, process-wide (``make bench`` reports them). Every page of a query is one
    #: transaction; a query that does not name one partition is counted as a ``scan`` (Azure reads the table).
    operations: ClassVar[Counter[str]] = Counter()
    #: Entities the queries and reads returned, process-wide: what a request cost in data, not in calls.
    rows_read: ClassVar[Counter[str]] = Counter()
    #: Writes refused because the row changed or existed (ETag mismatch), process-wide: contention, by kind.
    conflicts: ClassVar[Counter[str]] = Counter()

    def __init__(self, client_factory: Callable[[], TableClient]) -> None:
        self._client_factory = client_factory
        self._client: TableClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, table: str, credential: Callable[[], TokenCredential]) -> TableStore:
        """Connect the way the Functions host does: ``AzureWebJobsStorage`` as a connection string,
        or identity-based with ``AzureWebJobsStorage__tableServiceUri`` / ``__accountName``."""

        def connect() -> TableClient:
            # SDK on first use, not at import: keeps cold start light.
            from azure.data.tables import TableClient

            # Explicit caps: azure-core's defaults (10 retries, 300 s reads) could outlast the endpoint lease.
            # Every attempt waits while storage asks this process to back off (app/azure/throttle.py).
            limits = {**budgets.TABLES.client_kwargs(), "per_retry_policies": [throttle_policy()]}
            if settings.storage_connection_string:
                return TableClient.from_connection_string(
                    settings.storage_connection_string, table_name=table, **limits
                )
            endpoint = settings.storage_table_uri or (
                f"https://{settings.storage_account_name}.table.core.windows.net"
                if settings.storage_account_name
                else ""
            )
            if not endpoint:
                raise SettingsError(
                    [
                        "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__accountName "
                        "(or __tableServiceUri) for identity-based access"
                    ]
                )
            return TableClient(endpoint=endpoint, table_name=table, credential=credential(), **limits)

        return cls(connect)

    @property
    def client(self) -> TableClient:
        if self._client is None:
            self._client = self._client_factory()
            self._create_table()
        return self._client

    def _create_table(self) -> None:
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.client.create_table()

    def _retry_if_table_missing(self, call: Callable[[], Any]) -> Any:
        """Run ``call``; if the table was deleted under us (an operator, a reset), create it and run it again."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import HttpResponseError

        try:
            return call()
        except HttpResponseError as err:
            # Depending on the operation this is a ResourceNotFoundError or a bare 404 HttpResponseError.
            if err.status_code != 404 or "TableNotFound" not in f"{getattr(err, 'error_code', '')} {err}":
                raise
            # Expected on first use and after an operator or a dev-kit reset deleted it: information, not a fault.
            logger.info(
                "table %s did not exist (new, or deleted since); created it and carried on", self.client.table_name
            )
            self._create_table()
            return call()

    def get(self, partition: str, key: str, *, select: list[str] | None = None) -> Row | None:
        """The row, or None. ``select`` names the properties to read (the others are left on the server)."""
        TableStore.operations["get"] += 1
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.client.get_entity(partition, key, select=select)
        except ResourceNotFoundError:
            return None
        row = _row(entity)
        row = Row(partition, key, row.data, row.etag)  # $select leaves the keys out of the answer
        TableStore.rows_read["get"] += 1
        return row

    def upsert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        """Insert or replace the row whatever its ETag: for rows whose every writer writes the same meaning."""
        TableStore.operations["upsert"] += 1
        # SDK on first use, not at import: keeps cold start light.
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": partition, "RowKey": key, **data}
        metadata = self._retry_if_table_missing(lambda: self.client.upsert_entity(entity, mode=UpdateMode.REPLACE))
        return Row(partition, key, dict(data), str(metadata.get("etag", "")))

    def insert(self, partition: str, key: str, data: Mapping[str, Any]) -> Row:
        """Create the row; ``Conflict`` if it exists already."""
        TableStore.operations["insert"] += 1
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceExistsError

        try:
            metadata = self._retry_if_table_missing(
                lambda: self.client.create_entity({"PartitionKey": partition, "RowKey": key, **data})
            )
        except ResourceExistsError as err:
            TableStore.conflicts["insert"] += 1
            raise Conflict(f"{partition}/{key} exists") from err
        return Row(partition, key, dict(data), str(metadata.get("etag", "")))

    def replace(self, row: Row, data: Mapping[str, Any]) -> Row:
        """Replace the row if it is unchanged since ``row`` was read; ``Conflict`` otherwise."""
        TableStore.operations["replace"] += 1
        # SDK on first use, not at import: keeps cold start light.
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            metadata = self.client.update_entity(
                {"PartitionKey": row.partition, "RowKey": row.key, **data},
                mode=UpdateMode.REPLACE,
                etag=row.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            TableStore.conflicts["replace"] += 1
            raise Conflict(f"{row.partition}/{row.key} changed since it was read") from err
        return Row(row.partition, row.key, dict(data), str(metadata.get("etag", "")))

    def delete(self, row: Row) -> None:
        """Delete the row if it is unchanged since ``row`` was read; ``Conflict`` otherwise. Gone already is fine."""
        TableStore.operations["delete"] += 1
        # SDK on first use, not at import: keeps cold start light.
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        try:
            self.client.delete_entity(
                row.partition, row.key, etag=row.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError as err:
            TableStore.conflicts["delete"] += 1
            raise Conflict(f"{row.partition}/{row.key} changed since it was read") from err

    def page(
        self,
        filter: str,
        *,
        limit: int | None = None,
        select: list[str] | None = None,
        continuation: dict[str, str] | None = None,
        **parameters: Any,
    ) -> tuple[list[Row], dict[str, str] | None]:
        """One request: up to ``limit`` rows from ``continuation`` on, and Azure's token for the next page
        (None at the end). Azure may answer fewer rows than ``limit`` with a token: keep following it."""
        kind = "query" if filter.startswith("PartitionKey eq ") else "scan"
        TableStore.operations[kind] += 1

        def fetch() -> tuple[list[Row], dict[str, str] | None]:
            pages = self.client.query_entities(
                filter, parameters=parameters or None, results_per_page=limit, select=select
            ).by_page(continuation_token=continuation)  # type: ignore[arg-type]  # the SDK takes its dict
            rows = [_row(entity) for entity in next(pages, [])]
            return rows, pages.continuation_token  # type: ignore[attr-defined]

        rows, token = self._retry_if_table_missing(fetch)
        TableStore.rows_read[kind] += len(rows)
        return rows, token or None


def _row(entity: Any) -> Row:
    data = {key: value for key, value in entity.items() if key not in ("PartitionKey", "RowKey")}
    # A query with $select returns only the keys it names.
    partition, key = entity.get("PartitionKey", ""), entity.get("RowKey", "")
    return Row(partition, key, data, str(entity.metadata.get("etag", "")))
