"""The Functions host's queue trigger, for the dev kit: batches, concurrency, dequeue counts and the poison queue.

What the host does with a Storage queue ("Azure Queue storage trigger for Azure Functions",
learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger: "Concurrency", "Poison messages",
and host.json ``extensions.queues``): it gets up to ``batchSize`` messages at a time
(invisible for the visibility timeout while they are worked on), runs the function on them in parallel, and gets the
next batch once the number still running falls to ``newBatchThreshold``; a message whose function raised is made
visible again after ``visibilityTimeout`` and tried again, until its dequeue count reaches ``maxDequeueCount``: then
it goes to ``{queue}-poison``. An idle queue is polled with a back-off up to ``maxPollingInterval``. Several instances
(processes) may run this on the same queue: a message is only ever handed to one of them at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: host.json's defaults: batchSize 16, newBatchThreshold batchSize/2, maxDequeueCount 5, visibilityTimeout 0.
DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_DEQUEUE = 5
#: How long a message stays invisible while its function runs (the host renews it; here, long enough).
LEASE_S = 60


@dataclass
class TriggerStats:
    """What one trigger did: messages handled, retried (the function raised) and sent to the poison queue."""

    handled: int = 0
    retried: int = 0
    poisoned: int = 0
    busy_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, float]:
        return {"handled": self.handled, "retried": self.retried, "poisoned": self.poisoned, "busy_s": self.busy_s}


class QueueTrigger:
    """Deliver ``queue``'s messages to ``function(message_id, body, dequeue_count)`` as the host would."""

    def __init__(
        self,
        queue: Any,
        poison: Callable[[], Any],
        function: Callable[[str, str, int], None],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        new_batch_threshold: int | None = None,
        max_dequeue: int = DEFAULT_MAX_DEQUEUE,
        retry_visibility_s: int = 0,
        max_polling_s: float = 2.0,
    ) -> None:
        if not 1 <= batch_size <= 32:
            raise ValueError(f"batch_size={batch_size}: the host takes 1..32 messages at a time")
        self.queue = queue
        self._poison = poison
        self.function = function
        self.batch_size = batch_size
        self.new_batch_threshold = batch_size // 2 if new_batch_threshold is None else new_batch_threshold
        self.max_dequeue = max_dequeue
        self.retry_visibility_s = retry_visibility_s
        self.max_polling_s = max_polling_s
        self.stats = TriggerStats()

    def drain(self, wait_s: float = 0.0) -> int:
        """Handle every message that is or becomes visible within ``wait_s``, one batch at a time, in this thread.

        Returns how many were handled. Keeps looking for ``wait_s`` while the queue still holds (invisible) ones.
        """
        deadline, handled = time.monotonic() + wait_s, 0
        while True:
            got = self._receive(self.batch_size)
            for message in got:
                handled += self._handle(message)
            if got:
                continue
            if time.monotonic() >= deadline or not self.queue.get_queue_properties().approximate_message_count:
                return handled
            time.sleep(0.1)

    def serve(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set: batches of up to ``batch_size`` in parallel, polling back off when idle."""
        running: set[Future[int]] = set()
        lock = threading.Lock()
        pause = 0.05
        with ThreadPoolExecutor(max_workers=self.batch_size, thread_name_prefix="queue-trigger") as pool:
            while not stop.is_set():
                with lock:
                    room = self.batch_size - len(running)
                if self.batch_size - room > self.new_batch_threshold:
                    stop.wait(0.01)
                    continue
                got = self._receive(room)
                if not got:
                    stop.wait(pause)
                    pause = min(self.max_polling_s, pause * 2)  # the host's exponential back-off on an empty queue
                    continue
                pause = 0.05
                for message in got:
                    future = pool.submit(self._handle, message)
                    with lock:
                        running.add(future)
                    future.add_done_callback(lambda done: _discard(lock, running, done))

    def _receive(self, count: int) -> list[Any]:
        """At most ``count`` visible messages, invisible to everyone else while they are worked on."""
        return list(
            self.queue.receive_messages(messages_per_page=count, max_messages=count, visibility_timeout=LEASE_S)
        )

    def _handle(self, message: Any) -> int:
        """One delivery: delete on success; on failure, visible again, or to the poison queue after the last try."""
        count = message.dequeue_count or 1
        started = time.monotonic()
        try:
            self.function(str(message.id), str(message.content), count)
        except Exception as err:
            logger.warning("queue trigger: message %s raised on delivery %d: %s", message.id, count, err)
            if count >= self.max_dequeue:
                self._poison().send_message(message.content)
                self.queue.delete_message(message)
                with self.stats.lock:
                    self.stats.poisoned += 1
            else:
                self.queue.update_message(message, visibility_timeout=self.retry_visibility_s)
                with self.stats.lock:
                    self.stats.retried += 1
            return 0
        finally:
            with self.stats.lock:
                self.stats.busy_s += time.monotonic() - started
        self.queue.delete_message(message)
        with self.stats.lock:
            self.stats.handled += 1
        return 1


@dataclass(frozen=True)
class HostQueueSettings:
    """host.json's ``extensions.queues`` as the trigger reads them (the host's defaults where absent)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    new_batch_threshold: int = DEFAULT_BATCH_SIZE // 2
    max_dequeue: int = DEFAULT_MAX_DEQUEUE
    max_polling_s: float = 60.0

    @classmethod
    def read(cls, host_json: Path) -> HostQueueSettings:
        queues = json.loads(host_json.read_text(encoding="utf-8")).get("extensions", {}).get("queues", {})
        batch = int(queues.get("batchSize", DEFAULT_BATCH_SIZE))
        hours, minutes, seconds = (float(part) for part in str(queues.get("maxPollingInterval", "00:01:00")).split(":"))
        return cls(
            batch_size=batch,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch // 2)),
            max_dequeue=int(queues.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE)),
            max_polling_s=hours * 3600 + minutes * 60 + seconds,
        )


def _discard(lock: threading.Lock, running: set[Future[int]], done: Future[int]) -> None:
    with lock:
        running.discard(done)


def queue_client(connection_string: str, name: str) -> Any:
    """A queue client as the host reads the app's queue: Base64 bodies (host.json ``messageEncoding``); created."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    client = QueueClient.from_connection_string(
        connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client
