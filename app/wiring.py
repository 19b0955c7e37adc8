"""The composition root: builds the adapters from the settings, on first use, and hands them in as ``Deps``."""

from __future__ import annotations

import functools
import logging

from app.azure.aml import AmlGateway, arm_endpoint
from app.azure.credential import get_credential
from app.azure.metrics import MetricsReader
from app.azure.metrics_batch import BatchMetricsReader
from app.azure.queue import FollowUpQueue
from app.azure.registry import ModelRegistry
from app.azure.scoring import SmokeTester
from app.azure.sinks import sinks_from_settings
from app.azure.tables import TableStore
from app.azure.throttle import GATE, host_of
from app.notify.notifier import Notifier
from app.notify.outbox import OutboxNotifier
from app.platform.budgets import arm
from app.platform.settings_reader import get_settings
from app.platform.tables import Table
from app.platform.telemetry import setup as setup_telemetry
from app.platform.workspace import WorkspaceRef
from app.ports import AzureMl, BatchMetricsSource, Deps, FollowUps, MetricsSource, Registry, SmokeClient


@functools.cache
def _gateway(workspace: WorkspaceRef) -> AmlGateway:
    return AmlGateway(workspace, get_credential(), arm(get_settings().arm_read_timeout_seconds))


def _aml_gateway(workspace: WorkspaceRef) -> AzureMl:
    return _gateway(workspace)


@functools.cache
def _table(name: str) -> TableStore:
    return TableStore.from_settings(get_settings(), name, get_credential)


def _table_store(name: str) -> Table:
    return _table(name)


@functools.cache
def _queue() -> FollowUpQueue:
    return FollowUpQueue.from_settings(get_settings(), get_credential)


def _followup_queue() -> FollowUps:
    return _queue()


def _smoke_client(workspace: WorkspaceRef) -> SmokeClient:
    # The scoring client reads the endpoint's scoring URI and keys through the workspace's gateway.
    return SmokeTester(_gateway(workspace), get_credential(), get_settings().smoke_timeout_seconds)


@functools.cache
def _model_registry(name: str) -> ModelRegistry:
    return ModelRegistry(get_credential(), name)


def _registry(name: str) -> Registry:
    return _model_registry(name)


def _metrics_reader(workspace: WorkspaceRef) -> MetricsSource:
    return MetricsReader(get_credential(), workspace.subscription_id)


@functools.cache
def _batch_reader() -> BatchMetricsReader:
    # One per process: it keeps a client per regional endpoint of METRICS_BATCH_ENDPOINT.
    return BatchMetricsReader(get_credential(), get_settings().metrics_batch_endpoint)


def _metrics_batch() -> BatchMetricsSource:
    return _batch_reader()


def _arm_reads_short() -> bool:
    return GATE.reads_short(host_of(arm_endpoint()))


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
        smoke=_smoke_client,
        metrics=_metrics_reader,
        followups=_followup_queue if settings.followup_delays else None,
        registry=_registry,
        metrics_batch=_metrics_batch,
        arm_reads_short=_arm_reads_short,
    )


def reset_production_deps() -> None:
    """Forget the cached settings and clients (the dev kit calls this after changing the environment)."""
    for cached in (
        production_deps,
        _gateway,
        _table,
        _queue,
        _model_registry,
        _batch_reader,
        get_settings,
        get_credential,
    ):
        cached.cache_clear()
