"""Replayed events to a running app: POSTed to a Functions host's Event Grid webhook (``--to``), or to the app a
running dev kit serves (``--attach``, after registering the events' models in its emulator)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit import local_settings, runner

WEBHOOK_PATH = "/runtime/webhooks/EventGrid"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: What a --attach file must hold: where the running dev kit's emulator is, its CA, and its workspace ...
ATTACH_NEEDS = ("AZUREML_DEV_URL_MFE", "REQUESTS_CA_BUNDLE", "AML_ALLOWED_WORKSPACES")
#: ... and the app it serves: its URL and the Event Grid system key of its webhook.
ATTACH_HOST = ("url", "eventGridKey")
ATTACH_HINT = "start the dev kit with `make up` (or `python -m devkit.demo --keep`) and pass the file it prints"


class InputError(ValueError):
    """A file, setting or option replay cannot use: one line naming it, the problem and the fix."""


@dataclass(frozen=True)
class Posted:
    """One event POSTed to a Functions host, and how the host answered."""

    event_id: str
    event_type: str
    outcome: str
    ok: bool

    @property
    def line(self) -> str:
        return f"{self.event_id} {self.event_type} -> {self.outcome}"


def post_to_host(
    base_url: str,
    events: Sequence[dict[str, Any]],
    *,
    function: str = runner.EVENT_FUNCTION,
    key: str = "",
    max_deliveries: int = 3,
    timeout: float = 30.0,
) -> list[Posted]:
    """POST each event to the Functions host's Event Grid webhook, as Event Grid does (one per request)."""
    if not base_url.lower().startswith(("http://", "https://")):
        raise InputError(
            f"--to must be an http(s) URL of a Functions host, got {base_url!r}; e.g. http://localhost:7071"
        )
    query = f"?functionName={function}" + (f"&code={key}" if key else "")
    url = base_url.rstrip("/") + WEBHOOK_PATH + query
    posted = []
    for event in events:
        body = json.dumps([event]).encode()
        outcome, ok = "", False
        for attempt in range(1, max_deliveries + 1):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "aeg-event-type": "Notification",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    outcome, ok = f"HTTP {response.status}", 200 <= response.status < 300
                    break
            except urllib.error.HTTPError as err:
                outcome = f"HTTP {err.code}"
                if err.code < 500:
                    break  # Event Grid does not retry 4xx either
            except OSError as err:
                outcome = f"unreachable: {getattr(err, 'reason', err)}"
            if attempt < max_deliveries:
                time.sleep(min(2**attempt, 10))
        if not ok and max_deliveries > 1 and not outcome.startswith("HTTP 4"):
            outcome += f" after {max_deliveries} deliveries"
        posted.append(Posted(str(event.get("id")), str(event.get("eventType") or event.get("type")), outcome, ok))
    return posted


def retarget(
    events: Sequence[dict[str, Any]], workspace_id: str, seed: Callable[[str, str, dict[str, str]], object]
) -> None:
    """Register the models the ModelRegistered events name (with their tags), and point the events at the dev kit."""
    for event in events:
        # Data that is not an object registers nothing: the app rejects the event and says why.
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = data.get("modelName") or data.get("ModelName")
        version = data.get("modelVersion") or data.get("ModelVersion")
        if isinstance(name, str) and name and isinstance(version, str | int):
            seed(name, str(version), {str(k): str(v) for k, v in _tags(event).items()})
        for key in ("topic", "source"):
            if key in event:
                event[key] = workspace_id


def attach_values(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """The running dev kit's settings and its app's URL and key, from an --attach file; ``InputError`` names the
    file, the problem and the fix."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file; {ATTACH_HINT}")
    values = local_settings.read_values(file)
    host = json.loads(file.read_text(encoding="utf-8")).get("DevKit")
    host = host if isinstance(host, dict) else {}
    missing = [name for name in ATTACH_NEEDS if not values.get(name)]
    missing += [f"DevKit.{name}" for name in ATTACH_HOST if not isinstance(host.get(name), str) or not host[name]]
    if missing:
        raise InputError(f"{path}: not a dev kit's settings ({', '.join(missing)} missing); {ATTACH_HINT}")
    return values, {name: str(host[name]) for name in ATTACH_HOST}


def _seed_remote(values: Mapping[str, str], name: str, version: str, tags: dict[str, str]) -> None:
    """Register a model in the running emulator through its control API (``POST /_emulator/models``)."""
    url = values["AZUREML_DEV_URL_MFE"].rstrip("/") + "/_emulator/models"
    body = json.dumps({"name": name, "version": version, "tags": tags}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        context = ssl.create_default_context(cafile=values["REQUESTS_CA_BUNDLE"])
        with urllib.request.urlopen(request, timeout=10, context=context):
            pass
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "reason", None) or err
        raise InputError(f"cannot reach the dev kit's emulator at {url} ({reason}); {ATTACH_HINT}") from None


def attach(events: list[dict[str, Any]], path: str, max_deliveries: int) -> int:
    """Register the events' models in the running dev kit's emulator, then POST the events to its app's webhook."""
    values, host = attach_values(path)
    retarget(events, values["AML_ALLOWED_WORKSPACES"], lambda *model: _seed_remote(values, *model))
    print(f"attach: delivering to the app at {host['url']} (its Event Grid webhook)", flush=True)
    posted = post_to_host(host["url"], events, key=host["eventGridKey"], max_deliveries=max_deliveries)
    for item in posted:
        print(item.line)
    endpoints = sorted({str(tags["endpoint"]) for tags in map(_tags, events) if tags.get("endpoint")})
    if endpoints and all(item.ok for item in posted):
        print(f"follow the rollout: aml-rollouts watch {endpoints[0]}  (the dev kit's timer moves it)")
    return EXIT_OK if all(item.ok for item in posted) else EXIT_FAILED


def _tags(event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    tags = (data.get("modelTags") or data.get("ModelTags")) if isinstance(data, dict) else None
    return tags if isinstance(tags, dict) else {}
