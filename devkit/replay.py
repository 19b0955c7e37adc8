"""Replay Event Grid event files into the app: in-process (default), or POSTed to a running Functions host.

    python -m devkit.replay tests/events/run_status_changed.eventgrid.camel.json
    python -m devkit.replay --offline tests/events/model_registered.*.json   # against the local emulators
    python -m devkit.replay --to http://localhost:7071 my-event.json          # to `func start`

A file holds a JSON array of events exactly as Event Grid delivers them, in either schema; a
single object (as the app logs a rejected event) is accepted too. An invocation that raises is
redelivered, as Event Grid would, up to --max-deliveries times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from devkit import runner

WEBHOOK_PATH = "/runtime/webhooks/EventGrid"


def post_to_host(
    base_url: str,
    events: Sequence[dict[str, Any]],
    *,
    function: str = runner.EVENT_FUNCTION,
    key: str = "",
    max_deliveries: int = 3,
    timeout: float = 30.0,
) -> list[str]:
    """POST each event to the Functions host's Event Grid webhook, as Event Grid does (one per request)."""
    if not base_url.lower().startswith(("http://", "https://")):
        raise ValueError(f"--to must be an http(s) URL of a Functions host, got {base_url!r}")
    query = f"?functionName={function}" + (f"&code={key}" if key else "")
    url = base_url.rstrip("/") + WEBHOOK_PATH + query
    lines = []
    for event in events:
        body = json.dumps([event]).encode()
        outcome = ""
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
                    outcome = f"HTTP {response.status}"
                    break
            except urllib.error.HTTPError as err:
                outcome = f"HTTP {err.code}"
                if err.code < 500:
                    break  # Event Grid does not retry 4xx either
            except OSError as err:
                outcome = f"unreachable: {err}"
            if attempt < max_deliveries:
                time.sleep(min(2**attempt, 10))
        lines.append(f"{event.get('id')} {event.get('eventType') or event.get('type')} -> {outcome}")
    return lines


@contextlib.contextmanager
def _offline(events: Sequence[dict[str, Any]]) -> Iterator[Any]:
    """Start the local stack, seed the models the ModelRegistered events name (with the events' tags)."""
    from devkit.harness import OfflineApp, app_environment
    from devkit.stack import WORKSPACE_ID, DevStack

    with DevStack() as stack, app_environment(stack):
        for event in events:
            data = event.get("data") or {}
            name = data.get("modelName") or data.get("ModelName")
            version = data.get("modelVersion") or data.get("ModelVersion")
            if name and version is not None:
                stack.aml.seed_model(name, str(version), tags=data.get("modelTags") or data.get("ModelTags") or {})
            for key in ("topic", "source"):
                if key in event:
                    event[key] = WORKSPACE_ID
        yield OfflineApp(stack)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="event files (JSON arrays as Event Grid delivers them)")
    parser.add_argument("--to", metavar="URL", help="POST to a running Functions host, e.g. http://localhost:7071")
    parser.add_argument("--key", default="", help="the host's eventgrid_extension system key (Azure only)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="run in-process against the dev kit's emulators (retargets events to its workspace)",
    )
    parser.add_argument("--max-deliveries", type=int, default=3, help="bounded redelivery of a raising invocation")
    args = parser.parse_args(argv)
    events = list(runner.expand(args.files))
    if args.to:
        for line in post_to_host(args.to, events, key=args.key, max_deliveries=args.max_deliveries):
            print(line)
        return 0
    with _offline(events) if args.offline else contextlib.nullcontext() as app:
        deliveries = runner.deliver(events, max_attempts=args.max_deliveries)
        for delivery in deliveries:
            tries = f" after {len(delivery.attempts)} deliveries" if len(delivery.attempts) > 1 else ""
            print(
                f"{delivery.event_id} {delivery.event_type.rsplit('.', 1)[-1]} {delivery.subject} -> "
                f"{delivery.outcome}{tries}"
            )
        if app is not None:
            for event in app.published():
                print(f"  published {event['type']}: {event['data']['summary']}")
    return 0 if all(d.acknowledged for d in deliveries) else 1


if __name__ == "__main__":
    sys.exit(main())
