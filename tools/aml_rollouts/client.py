"""The app's operator API over HTTP: ``GET /api/rollouts`` and ``POST /api/rollouts/{endpoint}/{deployment}/{action}``.

Every answer the API documents becomes data or a ``CliError`` with its exit code and a one-line fix. A network
error, a 429 or a 5xx is retried a bounded number of times (every action is idempotent, so a repeated POST is
safe); a 4xx is not.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from aml_rollouts.connection import KEY_ENV, Connection
from aml_rollouts.errors import CliError, Exit

logger = logging.getLogger(__name__)

API = "/api/rollouts"
ATTEMPTS = 3
TIMEOUT_S = 30.0
#: The most a Retry-After header may make the CLI wait between two attempts.
MAX_BACKOFF_S = 10.0
#: ``limit`` per page when the CLI reads every page (the API's maximum).
PAGE = 500


@dataclass(frozen=True)
class ActionResult:
    """202: what the app recorded (``effect`` ``none`` when it was already so) and the rollout after it."""

    action: str
    effect: str
    note: str
    rollout: dict[str, Any]


class ApiClient:
    """One app's operator API; ``sleep`` is a parameter so tests never wait on a real clock."""

    def __init__(
        self,
        connection: Connection,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.session = session or requests.Session()
        self.sleep = sleep

    # ------------------------------------------------------------------ reads

    def page(self, filters: Mapping[str, str], limit: int | None = None, continuation: str = "") -> dict[str, Any]:
        """One page of ``GET /api/rollouts``: ``{"count", "rollouts", "endpoints", "continuation"}``."""
        params = {k: v for k, v in filters.items() if v}
        if limit is not None:
            params["limit"] = str(limit)
        if continuation:
            params["continuation"] = continuation
        body = self._call("GET", API, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("rollouts"), list):
            raise CliError(Exit.APP_ERROR, f"{self.connection.url}{API} answered something that is not the status API")
        return body

    def pages(self, filters: Mapping[str, str], limit: int = PAGE) -> Iterator[dict[str, Any]]:
        """Every page, following the continuations to the end."""
        continuation = ""
        while True:
            body = self.page(filters, limit, continuation)
            yield body
            continuation = body.get("continuation") or ""
            if not continuation:
                return

    def find(
        self, endpoint: str, deployment: str | None, *, observe: bool = False
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The rollout of ``deployment`` on ``endpoint`` (its newest when no deployment is named), with the
        endpoint's traffic entries (read from Azure ML now with ``observe``); ``CliError`` when there is none."""
        endpoints: list[dict[str, Any]] = []
        for body in self.pages({"endpoint": endpoint, "observe": "true" if observe else ""}):
            endpoints.extend(body.get("endpoints") or [])
            for rollout in body["rollouts"]:
                if deployment is None or str(rollout.get("deployment", "")).lower() == deployment.lower():
                    return rollout, endpoints
        what = f"deployment {deployment!r} on endpoint {endpoint!r}" if deployment else f"endpoint {endpoint!r}"
        raise CliError(Exit.NOT_FOUND, f"no rollout of {what}; see which there are with: aml-rollouts list")

    # ------------------------------------------------------------------ actions

    def act(self, endpoint: str, deployment: str, action: str, reason: str = "") -> ActionResult:
        """``POST .../{action}`` with ``{"reason"}``; 202 → the result, else a ``CliError`` with the app's reason."""
        path = f"{API}/{_segment(endpoint)}/{_segment(deployment)}/{_segment(action)}"
        body = self._call("POST", path, json_body={"reason": reason} if reason else None)
        if not isinstance(body, dict) or not isinstance(body.get("rollout"), dict):
            raise CliError(Exit.APP_ERROR, f"{self.connection.url}{path} answered 202 without the rollout's status")
        return ActionResult(str(body.get("action")), str(body.get("effect")), str(body.get("note")), body["rollout"])

    # ------------------------------------------------------------------ the exchange

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None) -> Any:
        url = self.connection.url + path
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self.session.request(
                    method, url, params=params, json=json_body, headers=self.connection.headers(), timeout=TIMEOUT_S
                )
            except requests.RequestException as err:
                if attempt == ATTEMPTS:
                    raise CliError(Exit.UNREACHABLE, self._unreachable(err)) from None
                self._back_off(attempt, None)
                continue
            if (response.status_code == 429 or response.status_code >= 500) and attempt < ATTEMPTS:
                self._back_off(attempt, response.headers.get("Retry-After"))
                continue
            return self._answer(method, path, response)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _back_off(self, attempt: int, retry_after: str | None) -> None:
        delay = 0.5 * 2 ** (attempt - 1)
        if retry_after and retry_after.strip().isdigit():
            delay = min(float(retry_after), MAX_BACKOFF_S)
        self.sleep(delay)

    def _answer(self, method: str, path: str, response: requests.Response) -> Any:
        status, body = response.status_code, _json(response)
        error = body.get("error") if isinstance(body, dict) else None
        where = f"{method} {self.connection.url}{path}"
        if 200 <= status < 300:
            if body is None:
                raise CliError(Exit.APP_ERROR, f"{where} answered {status} without JSON; is this the app's URL?")
            return body
        if status in (401, 403):
            raise CliError(Exit.AUTH, f"{where} answered {status}: {self._auth_fix()}")
        if status == 404:
            if error:
                raise CliError(Exit.NOT_FOUND, f"{error}; see which there are with: aml-rollouts list")
            raise CliError(
                Exit.NOT_FOUND,
                f"{where} answered 404 with no rollout API there; check the URL ({self.connection.source})",
            )
        if status == 409:
            state = (body.get("rollout") or {}).get("state") if isinstance(body, dict) else None
            at = f" (state {state})" if state else ""
            raise CliError(Exit.CONFLICT, f"refused{at}: {error or 'conflict'}")
        if status == 400:
            raise CliError(Exit.USAGE, f"the app refused the request: {error or response.text[:200]}")
        raise CliError(Exit.APP_ERROR, f"{where} answered {status} after {ATTEMPTS} attempts; check the app's logs")

    def _auth_fix(self) -> str:
        if self.connection.source.startswith("the dev kit"):
            return "the dev kit's key changed; it was restarted: run the command again, or `make up` again"
        if self.connection.token is not None:
            return "the Entra token was refused; check --scope and that your account may call the app"
        if not self.connection.key:
            return f"no function key was sent: set {KEY_ENV} (az functionapp keys list -g RG -n APP)"
        return (
            f"the function key in {KEY_ENV} was refused; take a current one from az functionapp keys list -g RG -n APP"
        )

    def _unreachable(self, err: requests.RequestException) -> str:
        kind = type(err).__name__
        hint = (
            "is it running? start it with `make up`"
            if self.connection.source.startswith("the dev kit")
            else f"check the URL ({self.connection.source}) and your network"
        )
        return f"cannot reach {self.connection.url} ({kind}) after {ATTEMPTS} attempts; {hint}"


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _segment(value: str) -> str:
    """A route segment, percent-encoded (names are letters, digits and hyphens; anything else is escaped)."""
    return quote(value, safe="")
