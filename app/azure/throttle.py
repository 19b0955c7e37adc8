"""Throttling, honoured by the whole process: one back-off per service host, shared by every client that calls it.

Azure Resource Manager throttles per principal and subscription with token buckets and answers 429 with
``Retry-After`` past them; each answer reports the reads (or writes) left in ``x-ms-ratelimit-remaining-subscription-*``
(learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling). Azure Monitor's batch
metrics API answers 529 (learn.microsoft.com/azure/azure-monitor/essentials/migrate-to-batch-api) and Azure Storage
503 ``ServerBusy``. azure-core's retry policy honours ``Retry-After`` for the one call that got it; every other
thread of the process would keep sending and be refused too. :class:`ThrottleGate` remembers, per host, until when
the service asked to be left alone, and :func:`throttle_policy` (an azure-core policy placed after each client's
retry policy) makes every request to that host wait for it first. A wait longer than ``max_wait_s`` is not waited
in the call: it raises :class:`Throttled` (retryable), so a tick's pass gives way instead of holding its lease.

The gate also keeps the last ``x-ms-ratelimit-remaining-subscription-reads`` ARM reported, so the tick can spend
what is left on what decides traffic (gates, operations in flight) and leave idle polling for later
(:meth:`ThrottleGate.reads_short`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.platform.errors import RetryableError

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineRequest, PipelineResponse

logger = logging.getLogger(__name__)

#: Answers that mean "too many requests, come back later": ARM and most services 429, Azure Monitor's batch
#: metrics API 529, Azure Storage 503 (ServerBusy) when it carries a Retry-After.
THROTTLED_STATUSES = frozenset({429, 503, 529})
#: Without a Retry-After, a throttled host is left alone this long (azure-core's own first back-off is 0.8 s).
DEFAULT_PAUSE_S = 1.0
#: A request waits at most this long for a throttled host before giving way (the ARM call budget's back-off cap).
MAX_WAIT_S = 8.0
#: Below this many reads left (ARM's remaining-reads header), the tick keeps its reads for what decides traffic.
READ_RESERVE = 50
REMAINING_READS = "x-ms-ratelimit-remaining-subscription-reads"


class Throttled(RetryableError):
    """The service asked this process to wait longer than a call may: nothing was sent; a later pass retries."""

    status_code = 429

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(f"{host} is throttling this app for {seconds:.1f} s more (Retry-After); not sent")
        self.host = host
        self.seconds = seconds


class ThrottleGate:
    """Per host: until when requests wait (monotonic time), and the reads ARM said were left. Thread-safe."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._reads_left: dict[str, int] = {}
        #: Throttled answers seen and seconds waited, per host (read by the bench and the tests).
        self.throttled: dict[str, int] = {}
        self.waited_s: dict[str, float] = {}

    def wait(self, host: str, max_wait_s: float = MAX_WAIT_S) -> None:
        """Return when ``host`` may be called; raise :class:`Throttled` if that is more than ``max_wait_s`` away."""
        with self._lock:
            left = self._until.get(host, 0.0) - self._clock()
        if left <= 0:
            return
        if left > max_wait_s:
            raise Throttled(host, left)
        self._sleep(left)
        with self._lock:
            self.waited_s[host] = self.waited_s.get(host, 0.0) + left

    def observe(self, host: str, status: int, headers: Any) -> None:
        """Learn from an answer: a throttled status pauses ``host``; ARM's remaining-reads header is kept."""
        remaining = _header(headers, REMAINING_READS)
        with self._lock:
            if remaining is not None and remaining.isdigit():
                self._reads_left[host] = int(remaining)
            if status not in THROTTLED_STATUSES:
                return
            pause = retry_after_s(headers)
            if pause is None and status == 503:
                return  # a 503 without Retry-After is an outage, not throttling: the retry policy's back-off applies
            now = self._clock()
            until = now + (pause if pause is not None else DEFAULT_PAUSE_S)
            fresh = self._until.get(host, 0.0) <= now  # a new pause, not one more answer within it
            self._until[host] = max(self._until.get(host, 0.0), until)
            self.throttled[host] = self.throttled.get(host, 0) + 1
        if fresh:
            logger.warning("%s answered %d: every call to it from this process waits %.1f s", host, status, until - now)

    def paused_s(self, host: str) -> float:
        """Seconds ``host`` still asks to be left alone (0 when it does not)."""
        with self._lock:
            return max(0.0, self._until.get(host, 0.0) - self._clock())

    def reads_short(self, host: str, reserve: int = READ_RESERVE) -> bool:
        """Is ``host`` throttling, or has it reported fewer than ``reserve`` reads left? Then idle polling waits."""
        with self._lock:
            left = self._reads_left.get(host)
        return self.paused_s(host) > 0 or (left is not None and left < reserve)

    def reset(self) -> None:
        with self._lock:
            self._until.clear()
            self._reads_left.clear()
            self.throttled.clear()
            self.waited_s.clear()


#: The process's gate: every client built with :func:`throttle_policy` shares it.
GATE = ThrottleGate()


def host_of(url: str) -> str:
    """The throttling scope of a request: its host and port (ARM, one regional metrics endpoint, one account)."""
    return urlsplit(url).netloc.lower()


def retry_after_s(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms``, ``x-ms-retry-after-ms`` or ``Retry-After``, as azure-core reads them."""
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _header(headers, name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: left to azure-core's own retry policy
    return None


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return None if value is None else str(value)


def throttle_policy(gate: ThrottleGate | None = None) -> Any:
    """An azure-core policy sharing ``gate`` (the process's by default); give it to a client with
    ``per_retry_policies=[throttle_policy()]`` so every attempt, retries included, passes the gate."""
    # azure-core on first use, not at import: keeps cold start light.
    from azure.core.pipeline.policies import HTTPPolicy

    chosen = gate or GATE

    class ThrottlePolicy(HTTPPolicy):
        def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
            host = host_of(request.http_request.url)
            chosen.wait(host)
            response = self.next.send(request)
            answer = response.http_response
            chosen.observe(host, answer.status_code, answer.headers)
            return response

    return ThrottlePolicy()
