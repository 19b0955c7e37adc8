"""Time budgets of Azure calls: per-call timeouts and retry caps, and the check that they fit the endpoint lease."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.pipeline.policies import RetryPolicy

#: Instances compare a lease's expiry with their own clock; this much slack covers clock skew and the
#: ledger write that follows the last call.
LEASE_MARGIN_SECONDS = 30.0
#: Defaults of the two settings that tune the budget (docs/configuration.md).
DEFAULT_LEASE_SECONDS = 180
DEFAULT_ARM_READ_TIMEOUT_SECONDS = 20.0
#: Methods whose lost answer must not be resent in the same call: the write may have landed, and the
#: engine re-decides from a fresh observation instead (docs/rollout.md, "Fencing").
WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


@dataclass(frozen=True)
class CallBudget:
    """Timeouts and retries of one client. ``longest_seconds`` bounds one call, retries and pauses included."""

    name: str
    retry_total: int
    backoff_factor: float
    backoff_max: float
    connection_timeout: float
    read_timeout: float

    @property
    def attempts(self) -> int:
        return self.retry_total + 1

    @property
    def longest_seconds(self) -> float:
        """Every attempt waiting its full connect and read timeouts, every pause at its cap.

        azure-core pauses ``backoff_factor * 2**n`` capped at ``retry_backoff_max`` between attempts, or the
        server's ``Retry-After``; ``bounded_retry_policy`` gives up rather than wait a ``Retry-After``
        longer than the cap (the engine's own back-off takes over).
        """
        return self.attempts * (self.connection_timeout + self.read_timeout) + self.retry_total * self.backoff_max

    def client_kwargs(self) -> dict[str, Any]:
        """The azure-core keyword arguments every SDK client accepts at construction."""
        return {
            "retry_total": self.retry_total,
            "retry_backoff_factor": self.backoff_factor,
            "retry_backoff_max": self.backoff_max,
            "connection_timeout": self.connection_timeout,
            "read_timeout": self.read_timeout,
        }


def arm(read_timeout: float = DEFAULT_ARM_READ_TIMEOUT_SECONDS) -> CallBudget:
    """ARM (the AML management client, azure-ai-ml). azure-core defaults: 10 retries, 120 s pauses, 300 s reads."""
    return CallBudget("ARM", 2, 0.8, 8.0, min(5.0, read_timeout), read_timeout)


#: Azure Table Storage (the ledger and the idempotency records).
TABLES = CallBudget("Table Storage", 2, 0.5, 4.0, 5.0, 10.0)
#: The Event Grid topic the app publishes its notifications to.
EVENT_GRID = CallBudget("Event Grid publisher", 2, 0.5, 4.0, 5.0, 10.0)
#: The webhook (requests): one try plus ``WEBHOOK_RETRY_DELAYS``, each with these timeouts.
WEBHOOK_RETRY_DELAYS = (0.3, 0.9)
WEBHOOK = CallBudget("webhook", len(WEBHOOK_RETRY_DELAYS), 0.0, max(WEBHOOK_RETRY_DELAYS), 5.0, 10.0)


def notification_in_flight_seconds() -> float:
    """How long a notification's sender may still be sending it: the topic's and the webhook's whole budgets (they
    are tried one after the other), the Table write that records the outcome, and ``LEASE_MARGIN_SECONDS`` for the
    instances' clocks. Until then the outbox lets no other instance retry it (app/notify/outbox.py)."""
    return EVENT_GRID.longest_seconds + WEBHOOK.longest_seconds + TABLES.longest_seconds + LEASE_MARGIN_SECONDS


def budget_problems(lease_seconds: float, arm_read_timeout: float) -> list[str]:
    """Why these settings cannot fence writes, or [] when they can.

    A write is sent after renewing the lease (one Table call), so the renewal plus the longest ARM call
    must end, with ``LEASE_MARGIN_SECONDS`` to spare, before the lease runs out; otherwise another
    instance could take the endpoint while the write is still being retried.
    """
    arm_budget = arm(arm_read_timeout)
    needed = TABLES.longest_seconds + arm_budget.longest_seconds + LEASE_MARGIN_SECONDS
    problems = []
    if needed >= lease_seconds:
        problems.append(
            f"ENDPOINT_LEASE_SECONDS={lease_seconds:g} is too short for ARM_READ_TIMEOUT_SECONDS={arm_read_timeout:g}: "
            f"a lease renewal ({TABLES.longest_seconds:g} s) plus the longest ARM call "
            f"({arm_budget.longest_seconds:g} s) plus a {LEASE_MARGIN_SECONDS:g} s margin need {needed:g} s; "
            "raise the lease or lower the timeout"
        )
    for other in (EVENT_GRID, WEBHOOK):
        if other.longest_seconds + LEASE_MARGIN_SECONDS >= lease_seconds:
            problems.append(
                f"ENDPOINT_LEASE_SECONDS={lease_seconds:g} is shorter than the longest {other.name} call "
                f"({other.longest_seconds:g} s) plus the {LEASE_MARGIN_SECONDS:g} s margin"
            )
    return problems


def bounded_retry_policy(budget: CallBudget) -> RetryPolicy:
    """azure-core's retry policy with ``budget``'s caps, which never waits longer than the budget allows.

    Two differences from the stock policy: a ``Retry-After`` longer than ``backoff_max`` ends the call
    (the engine backs off on the ledger instead of holding the lease), and a write whose request reached
    the server but whose answer was lost is not resent (it may have been applied; the next observation
    tells, and the engine decides again).
    """
    # SDK on first use, not at import: keeps cold start light.
    from azure.core.exceptions import ServiceResponseError
    from azure.core.pipeline.policies import RetryPolicy

    class BoundedRetryPolicy(RetryPolicy):
        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            retry_after = self.get_retry_after(response)
            if retry_after is not None and retry_after > self.backoff_max:
                return False
            return bool(super().is_retry(settings, response))

        def increment(self, settings: dict[str, Any], response: Any = None, error: Any = None) -> bool:
            request = getattr(response, "http_request", None)
            if isinstance(error, ServiceResponseError) and request is not None and request.method in WRITE_METHODS:
                return False
            return bool(super().increment(settings, response=response, error=error))

    return BoundedRetryPolicy(
        retry_total=budget.retry_total,
        retry_backoff_factor=budget.backoff_factor,
        retry_backoff_max=budget.backoff_max,
        timeout=budget.longest_seconds,
    )


# The defaults must fence writes; a change to any number above that breaks this fails at import.
assert not budget_problems(DEFAULT_LEASE_SECONDS, DEFAULT_ARM_READ_TIMEOUT_SECONDS), budget_problems(
    DEFAULT_LEASE_SECONDS, DEFAULT_ARM_READ_TIMEOUT_SECONDS
)
