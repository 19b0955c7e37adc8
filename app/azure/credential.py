"""The one credential the app uses: DefaultAzureCredential, i.e. the managed identity in Azure."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@functools.cache
def get_credential() -> TokenCredential:
    """A process-wide ``DefaultAzureCredential`` (token caching is per instance, so share one).

    In Azure it resolves to the Function App's user-assigned identity via ``AZURE_CLIENT_ID``.
    Offline, the dev kit's token endpoint speaks the same App Service managed-identity protocol,
    so there is no second code path.
    """
    # SDK on first use, not at import: keeps cold start light.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
