"""What handlers are given: settings, notifier, clock and lazily built Azure clients."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.azure.credential import get_credential
from app.azure.sinks import sinks_from_settings
from app.azure.tables import TableStore
from app.notify.notifier import Notifier
from app.notify.outbox import OutboxNotifier
from app.platform.clock import utc_now
from app.platform.settings import Settings
from app.platform.settings_reader import get_settings
from app.platform.telemetry import setup as setup_telemetry

if TYPE_CHECKING:
    from app.azure.aml import AmlGateway
    from app.platform.workspace import WorkspaceRef
    from app.rollout.run.followup import FollowUpQueue


@dataclass(frozen=True)
class Deps:
    """Handed to every handler. Factories, so nothing Azure-facing is built unless it is used."""

    settings: Settings
    notifier: Notifier
    aml: Callable[[WorkspaceRef], AmlGateway]
    table: Callable[[str], TableStore]
    clock: Callable[[], dt.datetime] = utc_now
    #: The smoke test's scoring client per workspace gateway, and the Azure Monitor reader per workspace
    #: (issue 11). None: built on first use from the app's credential.
    smoke: Callable[[AmlGateway], Any] | None = None
    metrics: Callable[[WorkspaceRef], Any] | None = None
    #: Where follow-up checks are scheduled after each AML write (issue 11 §6); None: no follow-ups, the timer
    #: alone advances rollouts.
    followups: Callable[[], FollowUpQueue] | None = None


@functools.cache
def _aml_gateway(workspace: WorkspaceRef) -> AmlGateway:
    # The Azure ML adapter on first use: it brings the rollout model and the SDK-facing code with it.
    from app.azure.aml import AmlGateway
    from app.platform.budgets import arm

    return AmlGateway(workspace, get_credential(), arm(get_settings().arm_read_timeout_seconds))


@functools.cache
def _table_store(name: str) -> TableStore:
    return TableStore.from_settings(get_settings(), name, get_credential)


@functools.cache
def _followup_queue() -> FollowUpQueue:
    from app.rollout.run.followup import FollowUpQueue

    return FollowUpQueue.from_settings(get_settings(), get_credential)


@functools.cache
def production_deps() -> Deps:
    """The process-wide dependencies, built on first use from the environment."""
    # host.json's log levels do not reach the Python worker's loggers; keep the SDKs' HTTP chatter out here.
    for name in ("azure", "azure.core.pipeline.policies.http_logging_policy", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings = get_settings()
    setup_telemetry(settings)
    sinks = sinks_from_settings(
        settings.notify_topic_endpoint, settings.notify_topic_key, settings.notify_webhook_url, get_credential
    )
    # With a sink, each notification goes through the outbox (sent once, retried by the tick); with none, it is
    # only logged, and costs no table call.
    notifier = OutboxNotifier(sinks, lambda: _table_store(settings.idempotency_table)) if sinks else Notifier(sinks)
    return Deps(
        settings=settings,
        notifier=notifier,
        aml=_aml_gateway,
        table=_table_store,
        followups=_followup_queue if settings.followup_delays else None,
    )


def reset_production_deps() -> None:
    """Forget the cached settings and clients (the dev kit calls this after changing the environment)."""
    for cached in (production_deps, _aml_gateway, _table_store, _followup_queue, get_settings, get_credential):
        cached.cache_clear()
