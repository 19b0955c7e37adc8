"""Every error an effect raises, classified once into ``ErrorKind`` (what it means is decided in
``app/rollout/decide/failure_policy.py``)."""

from __future__ import annotations

from app.platform.errors import describe_error, error_source, is_retryable, permission_problem, status_code_of
from app.rollout.decide.failures import ErrorKind, Failure
from app.rollout.decide.naming import EndpointNameTaken


def classify(err: Exception) -> Failure:
    """What ``err`` is: busy, unanswered, transient, denied, refused, the name taken, or a bug of the app."""
    source, status = error_source(err), status_code_of(err)
    text = f"{type(err).__name__}: {err}"[:2000]
    detail = describe_error(err)[:2000]
    if isinstance(err, EndpointNameTaken):
        return Failure(ErrorKind.NAME_TAKEN, str(err), "azureml", text)
    problem = permission_problem(err)
    if problem:
        return Failure(ErrorKind.DENIED, detail, source, text, problem)
    if status == 409 and source == "azureml":
        return Failure(ErrorKind.BUSY, detail, source, text)
    if not is_retryable(err):
        kind = ErrorKind.INTERNAL if status is None and source == "internal" else ErrorKind.REFUSED
        return Failure(kind, detail, source, text)
    kind = ErrorKind.NO_ANSWER if status is None else ErrorKind.TRANSIENT
    return Failure(kind, detail, source, text)
