"""The live target: a real workspace and the deployed Function App, described by ACCEPTANCE_* variables."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from acceptance.promotion import ProductionSide, production_settings
from acceptance.target import NOT_CONFIGURED, SCORING_REQUEST, ModelSource, Target, TargetError, Unavailable
from app.platform.workspace import WorkspaceRef

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

EVENT_FUNCTION = "on_aml_event"
HTTP_TIMEOUT_S = 30


class LiveSettingsError(Exception):
    """The live target's settings are missing or wrong; the message names every variable and its fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the live target needs:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


#: (variable, what it is) for the required settings, in the order they are reported.
REQUIRED = (
    ("ACCEPTANCE_SUBSCRIPTION_ID", "the workspace's subscription id"),
    ("ACCEPTANCE_RESOURCE_GROUP", "the workspace's resource group"),
    ("ACCEPTANCE_WORKSPACE", "the Azure ML workspace name (it must be on the app's AML_ALLOWED_WORKSPACES)"),
    ("ACCEPTANCE_APP_URL", "the Function App's base URL, e.g. https://func-xyz.azurewebsites.net"),
    ("ACCEPTANCE_FUNCTION_KEY", "a function key of rollout_status (az functionapp function keys list)"),
)


@dataclass(frozen=True)
class LiveSettings:
    """Where the live target runs. Built from the environment with every problem reported at once."""

    subscription_id: str
    resource_group: str
    workspace: str
    app_url: str
    function_key: str = field(repr=False)
    eventgrid_key: str = field(default="", repr=False)
    instance_type: str = "Standard_DS2_v2"
    timeout_minutes: float = 45.0
    poll_seconds: float = 20.0
    model_uri_base: str = ""
    price_per_hour: float | None = None
    stage: str = ""
    load_rps: float = 5.0
    #: The promotion scenario's production side (``ACCEPTANCE_REGISTRY``, ``ACCEPTANCE_PROD_*``); None: not set.
    production: Mapping[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LiveSettings:
        problems: list[str] = []
        values: dict[str, str] = {}
        for name, what in REQUIRED:
            value = (env.get(name) or "").strip()
            if not value:
                problems.append(f"{name}: {what}")
            values[name] = value
        url = values["ACCEPTANCE_APP_URL"].rstrip("/")
        if url and not url.lower().startswith(("https://", "http://")):
            problems.append(f"ACCEPTANCE_APP_URL={url!r}: must be an http(s) URL")

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{name}={raw!r}: must be a number from {low:g} to {high:g}")
                return default
            if not low <= value <= high:
                problems.append(f"{name}={raw!r}: must be a number from {low:g} to {high:g}")
            return value

        timeout = number("ACCEPTANCE_TIMEOUT_MINUTES", 45.0, 0.1, 240)
        load_rps = number("ACCEPTANCE_LOAD_RPS", 5.0, 0.1, 100)
        poll = number("ACCEPTANCE_POLL_SECONDS", 20.0, 0.05, 300)
        price_raw = (env.get("ACCEPTANCE_PRICE_PER_HOUR") or "").strip()
        price = number("ACCEPTANCE_PRICE_PER_HOUR", 0.0, 0.0, 1000) if price_raw else None
        base = (env.get("ACCEPTANCE_MODEL_URI") or "").strip()
        if base and not base.startswith("azureml://"):
            problems.append(f"ACCEPTANCE_MODEL_URI={base!r}: must be an azureml:// path holding tiny/ and broken/")
        try:
            production = production_settings(env)
        except ValueError as err:
            problems.append(str(err))
            production = None
        if problems:
            raise LiveSettingsError(problems)
        return cls(
            subscription_id=values["ACCEPTANCE_SUBSCRIPTION_ID"],
            resource_group=values["ACCEPTANCE_RESOURCE_GROUP"],
            workspace=values["ACCEPTANCE_WORKSPACE"],
            app_url=url,
            function_key=values["ACCEPTANCE_FUNCTION_KEY"],
            eventgrid_key=(env.get("ACCEPTANCE_EVENTGRID_KEY") or "").strip(),
            instance_type=(env.get("ACCEPTANCE_INSTANCE_TYPE") or "").strip() or "Standard_DS2_v2",
            timeout_minutes=timeout,
            poll_seconds=poll,
            model_uri_base=base.rstrip("/"),
            price_per_hour=price,
            stage=(env.get("ACCEPTANCE_STAGE") or "").strip(),
            load_rps=load_rps,
            production=production,
        )


class LiveTarget(Target):
    """A real workspace: models are registered (and uploaded) with azure-ai-ml, Event Grid delivers their events
    to the deployed app, and the suite follows the app through ``GET /api/rollouts`` and ARM.
    """

    name = "live"

    def __init__(self, settings: LiveSettings, credential: TokenCredential | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.instance_type = settings.instance_type
        self.extra_tags = {"stage": settings.stage} if settings.stage else {}
        self.settle_timeout_s = settings.timeout_minutes * 60
        self.delivery_timeout_s = min(300.0, self.settle_timeout_s)
        self.cleanup_timeout_s = self.settle_timeout_s
        self._credential = credential
        self._http = requests.Session()

    @property
    def workspace(self) -> WorkspaceRef:
        s = self.settings
        return WorkspaceRef(s.subscription_id, s.resource_group, s.workspace)

    def credential(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def model_path(self, source: ModelSource) -> str:
        if self.settings.model_uri_base:
            return f"{self.settings.model_uri_base}/{source.name}/"
        return str(source.path)  # azure-ai-ml uploads the folder to the workspace's default datastore

    def check(self) -> None:
        """Fail fast, with the variable to fix, if the app or the workspace cannot be reached."""
        self.status({})
        self.mgmt.workspaces.get(*self._scope)

    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        query = dict(params)
        while True:  # the answer is paged: follow the continuations
            body = self._status_page(query)
            found.extend(body["rollouts"])
            if not body.get("continuation"):
                return found
            query["continuation"] = body["continuation"]

    def _status_page(self, params: Mapping[str, str]) -> dict[str, Any]:
        return status_page(self._http, self.settings.app_url, self.settings.function_key, params)

    def promotion(self) -> ProductionSide:
        if self.settings.production is None:
            raise Unavailable(NOT_CONFIGURED)
        if self.production is None:
            self.production = LiveProduction(self.settings, self.credential(), self._http)
        return self.production

    def cannot_redeliver(self) -> str | None:
        if self.settings.eventgrid_key:
            return None
        return (
            "re-delivering an event needs ACCEPTANCE_EVENTGRID_KEY, the app's eventgrid_extension system key "
            "(az functionapp keys list -g RG -n APP --query systemKeys.eventgrid_extension)"
        )

    def post_event(self, event: Mapping[str, Any]) -> None:
        if reason := self.cannot_redeliver():
            raise Unavailable(reason)
        response = self._http.post(
            f"{self.settings.app_url}/runtime/webhooks/eventgrid",
            params={"functionName": EVENT_FUNCTION, "code": self.settings.eventgrid_key},
            headers={"aeg-event-type": "Notification"},
            json=[dict(event)],
            timeout=HTTP_TIMEOUT_S,
        )
        if response.status_code >= 300:
            raise AssertionError(f"the app answered {response.status_code} to a delivery of {event.get('subject')}")

    def pass_time(self) -> None:
        time.sleep(self.settings.poll_seconds)

    def _post_control(self, endpoint: str, deployment: str, action: str, body: bytes) -> tuple[int, dict[str, Any]]:
        url = f"{self.settings.app_url}/api/rollouts/{endpoint}/{deployment}/{action}"
        response = self._http.post(
            url,
            data=body,
            headers={"x-functions-key": self.settings.function_key, "Content-Type": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )
        if response.status_code in (401, 403):
            raise TargetError(
                f"{url} refused ACCEPTANCE_FUNCTION_KEY ({response.status_code}): operator actions need a key of "
                "rollout_control too; use the app's default host key (az functionapp keys list -g RG -n APP "
                "--query functionKeys.default)"
            )
        return response.status_code, response.json() if response.content else {}

    @contextlib.contextmanager
    def scoring_load(self, endpoint: str) -> Iterator[None]:
        """Score the endpoint ``ACCEPTANCE_LOAD_RPS`` times a second from a background thread, with its key, as
        its callers would: the metric gates judge what Azure Monitor records of these requests."""
        load = ScoringLoad(self.scoring_uri(endpoint), self.endpoint_key(endpoint), self.settings.load_rps)
        load.start()
        try:
            yield
        finally:
            load.stop()
            logger.info("scoring load on %s: %s", endpoint, dict(load.answers))

    def scoring_uri(self, endpoint: str) -> str:
        raw = self.mgmt.online_endpoints.get(*self._scope, endpoint)
        return str(raw.properties.scoring_uri)

    def endpoint_key(self, endpoint: str) -> str:
        """The endpoint's primary key (``listKeys``); the suite's endpoints use key auth, the app's default."""
        return str(self.mgmt.online_endpoints.list_keys(*self._scope, endpoint).primary_key)

    def stop(self) -> None:
        self._http.close()


def status_page(
    http: requests.Session, app_url: str, key: str, params: Mapping[str, str], prefix: str = "ACCEPTANCE"
) -> dict[str, Any]:
    """One page of an app's ``GET /api/rollouts``; a ``TargetError`` naming the variable to check."""
    url = f"{app_url}/api/rollouts"
    try:
        response = http.get(url, params=dict(params), headers={"x-functions-key": key}, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as err:
        raise TargetError(f"cannot reach {url} ({prefix}_APP_URL): {err}") from err
    if response.status_code in (401, 403):
        raise TargetError(f"{url} refused {prefix}_FUNCTION_KEY ({response.status_code})")
    if response.status_code == 404:
        raise TargetError(f"{url} does not exist: is {prefix}_APP_URL the Function App's base URL?")
    response.raise_for_status()
    return dict(response.json())


class LiveProduction(ProductionSide):
    """A production workspace and its deployed app; Event Grid delivers the staging app's promotions to it."""

    def __init__(self, settings: LiveSettings, credential: TokenCredential, http: requests.Session) -> None:
        prod = settings.production or {}
        workspace = WorkspaceRef(
            prod["ACCEPTANCE_PROD_SUBSCRIPTION_ID"],
            prod["ACCEPTANCE_PROD_RESOURCE_GROUP"],
            prod["ACCEPTANCE_PROD_WORKSPACE"],
        )
        super().__init__(prod["ACCEPTANCE_REGISTRY"], workspace, credential)
        self.app_url = prod["ACCEPTANCE_PROD_APP_URL"].rstrip("/")
        self._key = prod["ACCEPTANCE_PROD_FUNCTION_KEY"]
        self._poll_s = settings.poll_seconds
        self._http = http
        self.timeout_s = settings.timeout_minutes * 60

    def status(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            body = status_page(self._http, self.app_url, self._key, query, prefix="ACCEPTANCE_PROD")
            found.extend(body["rollouts"])
            if not body.get("continuation"):
                return found
            query["continuation"] = body["continuation"]

    def decide(self, row: Mapping[str, Any], action: str, reason: str) -> tuple[int, dict[str, Any]]:
        url = f"{self.app_url}/api/rollouts/{row['endpoint']}/{row['deployment']}/{action}"
        try:
            response = self._http.post(
                url, json={"reason": reason}, headers={"x-functions-key": self._key}, timeout=HTTP_TIMEOUT_S
            )
        except requests.RequestException as err:
            raise TargetError(f"cannot reach {url} (ACCEPTANCE_PROD_APP_URL): {err}") from err
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        return response.status_code, dict(body) if isinstance(body, dict) else {"body": body}

    def pass_time(self) -> None:
        time.sleep(self._poll_s)


class ScoringLoad:
    """Paced scoring requests from a few threads until stopped; counts the answers by status (never logs the key)."""

    THREADS = 4

    def __init__(self, uri: str, key: str, rps: float) -> None:
        self.uri = uri
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.interval_s = self.THREADS / rps
        self.answers: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"scoring-load-{n}", daemon=True) for n in range(self.THREADS)
        ]
        self._lock = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT_S)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    answer = str(
                        session.post(self.uri, json=SCORING_REQUEST, headers=self._headers, timeout=10).status_code
                    )
                except requests.RequestException as err:
                    answer = type(err).__name__  # counted, not raised: the gates judge what the endpoint answered
                with self._lock:
                    self.answers[answer] += 1
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
