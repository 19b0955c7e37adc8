"""Two apps over one dev stack: a staging app on the stack's workspace and a production app on a second workspace in
another subscription and region, with an Azure ML registry between them (docs/promotion.md).

The two apps are the same unchanged code with two sets of settings: ``staging()`` and ``production()`` apply one
set each (their own ledger, idempotency table and follow-up queue in the one Azurite), so an ``OfflineApp`` drives
whichever is applied. ``forward()`` plays the Event Grid subscription from the staging app's topic to production:
the ``AmlEvents.Model.Promoted`` CloudEvents the staging app published (to the stack's topic sink), not yet
forwarded, as Event Grid would deliver them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.platform import clock
from devkit.aml_emulator import PROVIDER, AmlEmulator
from devkit.aml_emulator.registries import EmulatedRegistry
from devkit.harness import app_environment
from devkit.stack import WORKSPACE_ID, DevStack

REGISTRY = "reg-promo"
PRODUCTION_SUBSCRIPTION = "00000000-0000-0000-0000-0000000090d0"
PRODUCTION_RESOURCE_GROUP = "rg-prod"
PRODUCTION_WORKSPACE = "mlw-prod"
#: Another region than staging's (endpoint names are unique per region), one of the registry's.
PRODUCTION_LOCATION = "westus2"
PRODUCTION_ID = (
    f"/subscriptions/{PRODUCTION_SUBSCRIPTION}/resourceGroups/{PRODUCTION_RESOURCE_GROUP}/providers/{PROVIDER}"
    f"/workspaces/{PRODUCTION_WORKSPACE}"
)
PROMOTED = "AmlEvents.Model.Promoted"

#: The staging app: it promotes what it proved into the registry.
STAGING_SETTINGS: Mapping[str, str] = {"PROMOTE_TO_REGISTRY": REGISTRY}
#: The production app: its own workspace, ledger and queue; it takes promotions from staging, through the registry.
PRODUCTION_SETTINGS: Mapping[str, str] = {
    "AML_ALLOWED_WORKSPACES": PRODUCTION_ID,
    "PROMOTION_SOURCES": WORKSPACE_ID,
    "PROMOTION_REGISTRIES": REGISTRY,
    "ROLLOUT_TABLE": "prodrollouts",
    "IDEMPOTENCY_TABLE": "prodidempotency",
    "ROLLOUT_QUEUE": "prod-rollout-followups",
}


@dataclass
class Promotion:
    """The staging workspace (the stack's), the production workspace and the registry, and the two apps' settings."""

    stack: DevStack
    production_workspace: AmlEmulator
    registry: EmulatedRegistry
    staging_settings: dict[str, str] = field(default_factory=lambda: dict(STAGING_SETTINGS))
    production_settings: dict[str, str] = field(default_factory=lambda: dict(PRODUCTION_SETTINGS))
    forwarded: set[str] = field(default_factory=set)

    @contextlib.contextmanager
    def staging(self, **overrides: str) -> Iterator[None]:
        """Apply the staging app's settings (the stack's workspace, promoting into the registry)."""
        with app_environment(self.stack, **{**self.staging_settings, **overrides}):
            yield

    @contextlib.contextmanager
    def production(self, **overrides: str) -> Iterator[None]:
        """Apply the production app's settings (the second workspace, taking promotions from staging)."""
        with app_environment(self.stack, **{**self.production_settings, **overrides}):
            yield

    @contextlib.contextmanager
    def emulated_time(self, workspace: AmlEmulator) -> Iterator[None]:
        """Freeze ``workspace``'s clock and make the app read it (each emulated workspace keeps its own clock)."""
        workspace.set_clock(None, frozen=True)
        with clock.following(lambda: dt.datetime.fromtimestamp(workspace.clock_now(), dt.UTC)):
            try:
                yield
            finally:
                workspace.set_clock(frozen=False)

    def production_traffic(self, endpoint: str) -> dict[str, int]:
        """The live traffic of an endpoint in the production workspace (non-zero shares)."""
        state = self.production_workspace.endpoint_state(endpoint)
        assert state is not None, f"endpoint {endpoint} does not exist in {PRODUCTION_WORKSPACE}"
        return {k: v for k, v in state["properties"].get("traffic", {}).items() if v}

    def promoted(self) -> list[dict[str, Any]]:
        """Every ``AmlEvents.Model.Promoted`` CloudEvent published so far, oldest first."""
        return [event for event in self.stack.sink.events if event.get("type") == PROMOTED]

    def forward(self) -> list[dict[str, Any]]:
        """The Promoted events not forwarded yet, as the Event Grid subscription delivers them to production."""
        fresh = [event for event in self.promoted() if event["id"] not in self.forwarded]
        self.forwarded.update(event["id"] for event in fresh)
        return [_delivered(event) for event in fresh]


def _delivered(event: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudEvent as Event Grid hands it to a subscriber: its attributes, ``data`` as published."""
    keep = ("specversion", "id", "source", "subject", "type", "time", "datacontenttype", "data")
    return {key: event[key] for key in keep if key in event}


def set_up(stack: DevStack, *, registry: str = REGISTRY) -> Promotion:
    """Add the production workspace and the registry (serving both regions) to ``stack``'s emulator; those already
    served (a second call on one stack) are used as they are."""
    try:
        production = stack.aml.add_workspace(
            PRODUCTION_WORKSPACE,
            location=PRODUCTION_LOCATION,
            resource_group=PRODUCTION_RESOURCE_GROUP,
            subscription_id=PRODUCTION_SUBSCRIPTION,
        )
    except ValueError:
        production = stack.aml.workspace(PRODUCTION_WORKSPACE)
    try:
        served = stack.aml.add_registry(registry, regions=(stack.aml.location, PRODUCTION_LOCATION))
    except ValueError:
        served = stack.aml.registry(registry)
    return Promotion(stack, production, served)
