"""The follow-up queue: ``ROLLOUT_QUEUE`` in the Function App's storage account (azure-storage-queue)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from app.azure.throttle import throttle_policy
from app.platform import budgets, clock
from app.platform.errors import SettingsError
from app.rollout.decide.followup import FollowUp, visibility

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from app.platform.settings import Settings


class FollowUpQueue:
    """The ``ROLLOUT_QUEUE`` queue in the Function App's storage account. Creates the queue on first use."""

    #: Messages sent, process-wide (``make bench`` and the tests read it).
    sent: ClassVar[Counter[str]] = Counter()

    def __init__(self, client_factory: Callable[[], QueueClient]) -> None:
        self._client_factory = client_factory
        self._client: QueueClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, credential: Callable[[], TokenCredential]) -> FollowUpQueue:
        """Connect the way the Functions host does: ``AzureWebJobsStorage`` as a connection string, or
        identity-based with ``AzureWebJobsStorage__queueServiceUri`` / ``__accountName``."""

        def connect() -> QueueClient:
            # SDK on first use, not at import: keeps cold start light.
            from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

            # The Functions host's queue trigger expects Base64 bodies by default (host.json
            # extensions.queues.messageEncoding, "base64"); the SDK sends plain text unless told.
            codec: dict[str, Any] = {
                "message_encode_policy": TextBase64EncodePolicy(),
                "message_decode_policy": TextBase64DecodePolicy(),
                **budgets.TABLES.client_kwargs(),
                "per_retry_policies": [throttle_policy()],
            }
            if settings.storage_connection_string:
                return QueueClient.from_connection_string(
                    settings.storage_connection_string, settings.rollout_queue, **codec
                )
            endpoint = settings.storage_queue_uri or (
                f"https://{settings.storage_account_name}.queue.core.windows.net"
                if settings.storage_account_name
                else ""
            )
            if not endpoint:
                raise SettingsError(
                    [
                        "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__accountName "
                        "(or __queueServiceUri) for identity-based access"
                    ]
                )
            return QueueClient(endpoint, settings.rollout_queue, credential=credential(), **codec)

        return cls(connect)

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            # SDK on first use, not at import: keeps cold start light.
            from azure.core.exceptions import ResourceExistsError

            client = self._client_factory()
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._client = client
        return self._client

    def schedule(self, followup: FollowUp, delay: dt.timedelta | float) -> None:
        """Send ``followup``, invisible until ``delay`` (on the app's clock) has passed. Raises what the SDK raises."""
        # SDK on first use, not at import: keeps cold start light.
        from azure.core.exceptions import ResourceNotFoundError

        seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else float(delay)
        hidden = visibility(clock.wall_seconds(seconds))  # the queue hides a message for wall-clock seconds
        try:
            self.client.send_message(followup.to_json(), visibility_timeout=hidden)
        except ResourceNotFoundError:
            # The queue was deleted under us (an operator, a dev-kit reset): create it and send again.
            self.client.create_queue()
            self.client.send_message(followup.to_json(), visibility_timeout=hidden)
        FollowUpQueue.sent[followup.kind] += 1
