"""The dev kit's queue trigger behaves as the Functions host's: host.json's settings, batches in parallel, retries
with the dequeue count, the poison queue, and several instances on one queue each message once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from devkit.queue_trigger import HostQueueSettings, QueueTrigger, queue_client
from devkit.stack import DevStack

ROOT = Path(__file__).parents[2]


def test_host_json_s_queue_settings_are_the_trigger_s(tmp_path: Path) -> None:
    shipped = HostQueueSettings.read(ROOT / "host.json")
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert (shipped.batch_size, shipped.new_batch_threshold, shipped.max_dequeue) == (
        queues["batchSize"], queues["newBatchThreshold"], queues["maxDequeueCount"],
    )  # fmt: skip
    assert shipped.max_polling_s == 2.0
    bare = tmp_path / "host.json"
    bare.write_text('{"version": "2.0"}')
    assert HostQueueSettings.read(bare) == HostQueueSettings(16, 8, 5, 60.0)  # the host's defaults


@pytest.mark.integration
def test_two_instances_share_a_queue_and_handle_each_message_once(stack: DevStack) -> None:
    connection = stack.env["AzureWebJobsStorage"]
    queue = queue_client(connection, "trigger-test")
    for n in range(40):
        queue.send_message(json.dumps({"n": n}))
    seen: Counter[int] = Counter()
    lock = threading.Lock()
    in_flight, most = [0], [0]

    def function(message_id: str, body: str, dequeue_count: int) -> None:
        with lock:
            seen[json.loads(body)["n"]] += 1
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.02)  # a pass takes a moment, so the batch runs in parallel
        with lock:
            in_flight[0] -= 1

    stop = threading.Event()
    triggers = [
        QueueTrigger(queue_client(connection, "trigger-test"), lambda: None, function, batch_size=8, max_polling_s=0.1)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=t.serve, args=(stop,)) for t in triggers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while sum(seen.values()) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert sorted(seen) == list(range(40)) and set(seen.values()) == {1}
    assert 1 < most[0] <= 2 * 8  # parallel within a batch, never more than a batch per instance
    assert sum(t.stats.handled for t in triggers) == 40


@pytest.mark.integration
def test_a_raising_message_is_retried_then_poisoned_after_the_last_try(stack: DevStack) -> None:
    connection = stack.env["AzureWebJobsStorage"]
    queue, poison = queue_client(connection, "trigger-fail"), queue_client(connection, "trigger-fail-poison")
    queue.send_message("bad")
    tries: list[int] = []

    def function(message_id: str, body: str, dequeue_count: int) -> None:
        tries.append(dequeue_count)
        raise RuntimeError("cannot handle it")

    trigger = QueueTrigger(queue, lambda: poison, function, max_dequeue=3)
    assert trigger.drain(wait_s=5) == 0
    assert tries == [1, 2, 3]
    assert (trigger.stats.retried, trigger.stats.poisoned) == (2, 1)
    assert [m.content for m in poison.peek_messages()] == ["bad"]
