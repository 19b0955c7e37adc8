"""DevStack wiring, Azurite through the real azure-data-tables, and clean shutdown."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devkit.azurite import Azurite
from devkit.stack import WORKSPACE_ID, DevStack

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it has exited all the same
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_env_points_the_app_at_the_stand_ins(stack: DevStack) -> None:
    env = stack.env
    assert env["AZUREML_DEV_URL_MFE"] == stack.aml.url and env["AZUREML_DEV_URL_MFE"].startswith("https://127.0.0.1:")
    assert env["NOTIFY_TOPIC_ENDPOINT"] == stack.sink.endpoint and env["NOTIFY_TOPIC_ENDPOINT"].endswith("/api/events")
    assert env["AML_ALLOWED_WORKSPACES"] == WORKSPACE_ID == stack.aml.workspace_id
    assert env["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:") and env["IDENTITY_HEADER"]
    assert "BlobEndpoint=http://127.0.0.1:" in env["AzureWebJobsStorage"]
    assert "TableEndpoint=http://127.0.0.1:" in env["AzureWebJobsStorage"]
    with open(env["REQUESTS_CA_BUNDLE"]) as ca:
        assert "BEGIN CERTIFICATE" in ca.read()
    assert all(os.environ[k] == v for k, v in env.items())


def test_tables_work_and_reset_clears_them(stack: DevStack) -> None:
    connection = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions setting's real name
    service = TableServiceClient.from_connection_string(connection)
    table = service.create_table_if_not_exists("rollouts")
    table.upsert_entity({"PartitionKey": "ep", "RowKey": "blue", "state": "Creating"})
    assert [e["state"] for e in table.list_entities()] == ["Creating"]

    stack.reset()

    assert list(service.list_tables()) == []


def test_parallel_azurites_get_their_own_ports_and_die_on_stop() -> None:
    with Azurite() as first, Azurite() as second:
        assert set(first.ports.values()).isdisjoint(second.ports.values())
        pid = first._process.pid  # type: ignore[union-attr]
        ports = list(first.ports.values())
    assert not _alive(pid)
    assert not any(_listening(p) for p in ports)


def test_stack_stops_everything_when_the_body_raises() -> None:
    threads_before = set(threading.enumerate())
    seen: dict[str, Any] = {}

    def run_and_fail() -> None:
        with DevStack() as stack:
            assert stack.azurite is not None and stack.identity is not None and stack.ca is not None
            seen["pid"] = stack.azurite._process.pid  # type: ignore[union-attr]
            seen["ports"] = [stack.aml.port, stack.sink.port, stack.identity.port, *stack.azurite.ports.values()]
            seen["ca_path"] = stack.ca.ca_path
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_and_fail()
    pid, ports, ca_path = seen["pid"], seen["ports"], seen["ca_path"]
    assert not _alive(pid)
    assert not any(_listening(p) for p in ports)
    assert not ca_path.exists()
    assert set(threading.enumerate()) <= threads_before
