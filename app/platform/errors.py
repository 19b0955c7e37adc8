"""The app's single error policy: what a redelivery can fix, and what it cannot."""

from __future__ import annotations

import re

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
    if permission_problem(err):
        # Role assignments take minutes to apply (right after `azd up`, say): retryable within
        # PERMISSION_RETRY_MINUTES, which the event path and the rollout engine each enforce.
        return True
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


#: ARM's 403 text names the refused action ("Troubleshoot Azure RBAC",
#: https://learn.microsoft.com/azure/role-based-access-control/troubleshooting).
_ARM_DENIED_ACTION = re.compile(r"does not have authorization to perform action '([^']+)'")
ARM_PATH = "/subscriptions/"
#: Azure Tables (``https://{account}.table.core.windows.net``, sovereign clouds alike) and Azurite's dev account.
_TABLE_URL = re.compile(r"^[a-z]+://[^/]*\.table\.|^[a-z]+://[^/]+/devstoreaccount1\b", re.IGNORECASE)
SOURCES = ("azureml", "storage", "permission", "network", "notification", "internal")


def permission_problem(err: BaseException) -> str | None:
    """What identity or permission problem ``err`` is, naming the missing permission when ARM says which; None
    when it is none: an ARM or Table 401/403, or a credential that cannot get a token at all."""
    # Imported lazily: azure.core is not needed to import function_app.
    from azure.core.exceptions import ClientAuthenticationError

    status, where = status_code_of(err), _source_by_url(err)
    if where == "notification":
        return None  # a notification sink's key or URL: its own policy (app/notify/notifier.py) decides
    if status not in (401, 403) and not isinstance(err, ClientAuthenticationError):
        return None
    text = str(err)
    found = _ARM_DENIED_ACTION.search(text)
    if found:
        return (
            f"the app's identity lacks permission '{found.group(1)}' (ARM 403 AuthorizationFailed; a new role "
            "assignment takes minutes to apply)"
        )
    where = "storage" if where == "storage" else "Azure ML"
    if status == 403:
        code = _error_code(err)
        return f"{where} answered 403 Forbidden{f' ({code})' if code else ''}: the app's identity lacks a role there"
    if status == 401:
        return f"{where} answered 401 Unauthorized: the app's token was not accepted"
    return f"the app's identity could not get a token ({type(err).__name__}: {_first_line(text)})"


def error_source(err: BaseException) -> str:
    """Where ``err`` came from, one of ``SOURCES``: Azure ML, storage, identity/permission, network or the app."""
    if permission_problem(err):
        return "permission"
    # Imported lazily: azure.core and requests are not needed to import function_app.
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    by_url = _source_by_url(err)
    if by_url:
        return by_url
    if type(err).__name__ == "Conflict" and type(err).__module__ == "app.azure.tables":
        return "storage"
    if isinstance(err, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
        return "network"
    return "internal"


def describe_error(err: BaseException) -> str:
    """One line for a ledger reason that names the error's source and its details."""
    source = error_source(err)
    if source == "permission":
        return f"permission denied: {permission_problem(err)}"
    if source == "azureml":
        code, status = _error_code(err), status_code_of(err)
        message = getattr(getattr(err, "error", None), "message", None) or _first_line(str(err))
        refused = status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUSES
        return f"Azure ML {'refused' if refused else 'error'} ({status} {code or 'no error code'}): {message}"
    if source == "storage":
        return f"storage error: {type(err).__name__}: {_first_line(str(err))}"
    if source == "network":
        return f"network error: {type(err).__name__}: {_first_line(str(err))}"
    if source == "notification":
        return f"notification sink error: {type(err).__name__}: {_first_line(str(err))}"
    return f"internal error: {type(err).__name__}: {_first_line(str(err))}"


def _source_by_url(err: BaseException) -> str | None:
    """Who answered: ``azureml`` (ARM: its paths start with /subscriptions/), ``storage`` (Tables), else
    ``notification`` (the Event Grid topic or the webhook, the app's only other peers); None without a response."""
    response = getattr(err, "response", None)
    url = str(getattr(getattr(response, "request", None), "url", "") or "")
    if not url:
        return None
    if ARM_PATH in url.lower():
        return "azureml"
    return "storage" if _TABLE_URL.search(url) else "notification"


def _error_code(err: BaseException) -> str:
    return str(getattr(getattr(err, "error", None), "code", None) or getattr(err, "error_code", None) or "")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:500]
