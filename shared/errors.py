"""The app's single error policy: what a redelivery can fix, and what it cannot."""

from __future__ import annotations

#: HTTP statuses that a later attempt can succeed on. 409 is AML's "endpoint busy".
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failure that a later attempt (an Event Grid redelivery or a later tick) can fix."""


class PermanentError(Exception):
    """A failure no retry can fix; it is reported and the event is acknowledged."""


class EventValidationError(PermanentError):
    """An event payload that cannot be understood. The message names the field and the fix."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class SettingsError(RetryableError):
    """The app's configuration is invalid.

    Retryable on purpose: the operator can fix an app setting, and Event Grid keeps
    redelivering (for up to 24 h) instead of the event being lost.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid app settings: " + "; ".join(problems))
        self.problems = problems


def status_code_of(err: BaseException) -> int | None:
    """The HTTP status carried by an SDK or requests exception, if any."""
    status = getattr(err, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else None


def is_retryable(err: BaseException) -> bool:
    """Decide whether ``err`` is worth a redelivery.

    Network failures (no response at all) and the statuses in ``RETRYABLE_STATUSES`` are
    retryable; every other failure is permanent. The SDKs have already retried with
    back-off by the time an exception reaches us, so this only decides what happens next.
    """
    if isinstance(err, RetryableError):
        return True
    if isinstance(err, PermanentError):
        return False
    status = status_code_of(err)
    if status is not None:
        return status in RETRYABLE_STATUSES
    # Imported lazily: azure.core and requests are not needed to import function_app.
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError
    from requests import ConnectionError as RequestsConnectionError
    from requests import Timeout as RequestsTimeout

    return isinstance(
        err,
        (
            ServiceRequestError,
            ServiceResponseError,
            RequestsConnectionError,
            RequestsTimeout,
            ConnectionError,
            TimeoutError,
        ),
    )
