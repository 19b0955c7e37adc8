"""The acceptance scenarios: what a user of the app relies on, asserted through the ``Target`` interface only.

Add a scenario by writing ``def my_scenario(t: Target, names: Names) -> None`` and listing it in ``SCENARIOS``
with what it creates live (deployments) and how long it takes live (minutes), for the cost estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from acceptance.target import Target
from shared.rollout.naming import deployment_name


class ScenarioFailed(AssertionError):
    """An outcome the user would notice is not what it should be; the message says what was seen."""


def check(condition: bool, message: str) -> None:
    """Like ``assert``, but survives ``python -O``."""
    if not condition:
        raise ScenarioFailed(message)


@dataclass(frozen=True)
class Names:
    """Run-unique names, so a run never touches what it did not create (endpoint names are unique per region)."""

    run_id: str
    scenario: str

    @property
    def model(self) -> str:
        return f"acc-{self.run_id}-{self.scenario}"

    @property
    def endpoint(self) -> str:
        return f"acc-{self.run_id}-{self.scenario}"

    def deployment(self, version: str) -> str:
        return deployment_name(self.model, version)


def tags(t: Target, names: Names, **extra: str) -> dict[str, str]:
    """The tag contract for a model this run deploys (see the README's tag table)."""
    return {"deploy": "true", "endpoint": names.endpoint, "instance_type": t.instance_type, **t.extra_tags, **extra}


def _state(t: Target, names: Names, rows: Mapping[str, Mapping[str, object]], version: str, expected: str) -> None:
    row = rows.get(version)
    check(row is not None, f"no rollout of {names.model}:{version} in the status API")
    assert row is not None
    check(
        row["state"] == expected,
        f"rollout {row['deployment']} is {row['state']!r}, expected {expected!r} (reason: {row['reason']})",
    )


def _traffic(t: Target, names: Names, expected: Mapping[str, int]) -> None:
    seen = t.traffic(names.endpoint)
    want = {names.deployment(version): pct for version, pct in expected.items()}
    check(seen == want, f"endpoint {names.endpoint} traffic is {seen}, expected {want}")


def _go_live(t: Target, names: Names, version: str, **extra: str) -> dict[str, dict[str, object]]:
    registration = t.register(names.model, version, tags(t, names, **extra))
    t.await_delivery(registration)
    return t.settle(names.model)


# ---------------------------------------------------------------------- scenarios


def blue_green(t: Target, names: Names) -> None:
    """v1 goes live on a new endpoint with 100%; v2 (no traffic tag) takes over all traffic."""
    t.track_endpoint(names.endpoint)
    rows = _go_live(t, names, "1")
    _state(t, names, rows, "1", "live")
    _traffic(t, names, {"1": 100})
    rows = _go_live(t, names, "2")
    _state(t, names, rows, "2", "live")
    _traffic(t, names, {"2": 100})


def canary(t: Target, names: Names) -> None:
    """v2 tagged traffic=20 is deployed beside the live v1 and gets 20%; v1 keeps 80%."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    rows = _go_live(t, names, "2", traffic="20")
    _state(t, names, rows, "2", "canary")
    _traffic(t, names, {"1": 80, "2": 20})


def duplicate_delivery(t: Target, names: Names) -> None:
    """The same ModelRegistered delivered again while the rollout runs: one deployment, one rollout, live."""
    t.track_endpoint(names.endpoint)
    registration = t.register(names.model, "1", tags(t, names))
    t.await_delivery(registration)
    t.redeliver(registration)
    rows = t.settle(names.model)
    t.redeliver(registration)  # ... and once more after it went live
    rows = t.settle(names.model)
    check(len(rows) == 1, f"expected one rollout of {names.model}, the status API shows {sorted(rows)}")
    _state(t, names, rows, "1", "live")
    deployments = t.deployments(names.endpoint)
    check(
        list(deployments) == [names.deployment("1")],
        f"expected exactly one deployment on {names.endpoint}, ARM shows {deployments}",
    )
    _traffic(t, names, {"1": 100})


def out_of_order(t: Target, names: Names) -> None:
    """v2's event arrives before v1's: v1 is superseded, never deployed, and v2 keeps 100%."""
    t.track_endpoint(names.endpoint)
    newer = t.register(names.model, "2", tags(t, names))
    t.await_delivery(newer)
    older = t.register(names.model, "1", tags(t, names))
    t.await_delivery(older)
    rows = t.settle(names.model)
    _state(t, names, rows, "2", "live")
    _state(t, names, rows, "1", "superseded")
    deployments = t.deployments(names.endpoint)
    check(names.deployment("1") not in deployments, f"the older version was deployed anyway: {deployments}")
    _traffic(t, names, {"2": 100})


def failed_deployment(t: Target, names: Names) -> None:
    """v2's container cannot load its model: the rollout fails with the container's logs, v1 keeps 100%."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    registration = t.register(names.model, "2", tags(t, names), source="broken")
    t.await_delivery(registration)
    rows = t.settle(names.model)
    _state(t, names, rows, "2", "failed")
    row = rows["2"]
    check(bool(row["logs"]), f"the failed rollout carries no container logs (reason: {row['reason']})")
    _traffic(t, names, {"1": 100})


def guardrails(t: Target, names: Names) -> None:
    """Tags outside every allowed range: the rollout is rejected, naming each tag, and nothing is created."""
    t.track_endpoint(names.endpoint)  # it must not exist; if the app created it anyway, cleanup removes it
    registration = t.register(names.model, "1", tags(t, names, traffic="150", instance_count="1000"))
    row = t.await_delivery(registration)
    check(row["state"] == "rejected", f"rollout is {row['state']!r}, expected 'rejected' (reason: {row['reason']})")
    reason = str(row["reason"])
    for tag in ("traffic", "instance_count"):
        check(f"'{tag}'" in reason, f"the rejection does not name tag {tag!r}: {reason}")
    check(not t.endpoint_exists(names.endpoint), f"endpoint {names.endpoint} was created for a rejected model")


@dataclass(frozen=True)
class Scenario:
    """A scenario, with what it costs live: deployments it creates (1 instance each) and expected minutes."""

    name: str
    run: Callable[[Target, Names], None]
    short: str  # part of the names it creates (endpoint names are at most 32 characters)
    deployments: int
    minutes: int
    redelivers: bool = False  # hands the app an event itself (live: needs the Event Grid system key)
    versions: int = 2  # model versions it registers

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("blue-green", blue_green, "bg", deployments=2, minutes=35),
    Scenario("canary", canary, "canary", deployments=2, minutes=35),
    Scenario("duplicate-delivery", duplicate_delivery, "dup", deployments=1, minutes=20, redelivers=True, versions=1),
    Scenario("out-of-order", out_of_order, "order", deployments=1, minutes=20),
    Scenario("failed-deployment", failed_deployment, "failed", deployments=2, minutes=45),
    Scenario("guardrails", guardrails, "guard", deployments=0, minutes=2, versions=1),
)
