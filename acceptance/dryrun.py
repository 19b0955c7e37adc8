"""A stand-in for "the deployed app plus Event Grid", so the live target's code path can run against the dev kit.

``HostedApp`` is the dev kit's local Functions host (``devkit.host.LocalHost``: the unchanged app's HTTP functions
behind a function key, the Event Grid webhook behind the system key, ``/admin/functions/{timer}`` behind the master
key, the emulator's events forwarded to the webhook, the reconciler's timer on a short period) plus what this suite
needs of the emulator: model deletion, and scoring containers that fail or answer slowly for the shipped models.
Point a ``LiveTarget`` at ``url`` and at the emulator's ARM URL and it runs unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from acceptance.emulator import ContainerSimulator, teach_model_deletion
from devkit.host import HostKeys, LocalHost

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from devkit.stack import DevStack


class HostedApp(LocalHost):
    """The in-process app behind HTTP, an Event Grid forwarder and a timer; a context manager."""

    def __init__(
        self,
        stack: DevStack,
        ml: MLClient,
        *,
        function_key: str,
        eventgrid_key: str,
        master_key: str = "",
        tick_s: float = 0.3,
        forward_s: float = 0.1,
        emulated_s_per_tick: float = 0.0,
    ) -> None:
        keys = HostKeys(function_key, eventgrid_key, master_key or secrets.token_urlsafe(24))
        super().__init__(stack, keys=keys, tick_s=tick_s, followup_s=forward_s, emulated_s_per_tick=emulated_s_per_tick)
        self.containers = ContainerSimulator(stack.aml, ml)

    def __enter__(self) -> HostedApp:
        teach_model_deletion(self.stack.aml)
        super().__enter__()
        return self

    def published(self, event: Mapping[str, Any]) -> None:
        self.containers.on_event(event)
