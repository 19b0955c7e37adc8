"""The CLI's exit codes and its one error type: each failure is one line naming the problem and the fix."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Exit codes, documented in docs/operations.md ("The aml-rollouts command line"). Scripts rely on them."""

    OK = 0
    #: ``status``/``watch``: the rollout ended without serving as planned (failed, rolled back, aborted, ...).
    ENDED_BADLY = 1
    #: ``status``: still in progress (``--no-wait``, or when ``--timeout`` ran out).
    IN_PROGRESS = 2
    #: Bad usage: an unknown option, a bad value, no app to talk to, a 400 from the app.
    USAGE = 3
    #: The app could not be reached (connection refused, DNS, TLS, timeout).
    UNREACHABLE = 4
    #: The app refused the credentials (401 or 403).
    AUTH = 5
    #: No such rollout (404, or not in the status).
    NOT_FOUND = 6
    #: The action does not apply to the rollout's state (409).
    CONFLICT = 7
    #: The app answered a server error (5xx) after the retries, or something that is not its API.
    APP_ERROR = 8


class CliError(Exception):
    """A failure the CLI reports as one line, with its exit code."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
