"""The acceptance scenarios: what a user of the app relies on, asserted through the ``Target`` interface only.

Add a scenario by writing ``def my_scenario(t: Target, names: Names) -> None`` and listing it in ``SCENARIOS``
with what it creates live (deployments) and how long it takes live (minutes), for the cost estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acceptance.target import PROGRESSIVE_STATES, Target
from app.rollout.decide.naming import deployment_name


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


def _steps(t: Target) -> dict[str, str]:
    """The progressive-delivery tags: three steps, each baked and judged on the endpoint's metrics."""
    return {"traffic_steps": "10,50,100", "bake": t.bake}


def canary_with_gates(t: Target, names: Names) -> None:
    """v2 in steps 10/50/100 under load: each step judged on its metrics and promoted; v2 ends with 100%."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    with t.scoring_load(names.endpoint):
        registration = t.register(names.model, "2", tags(t, names, **_steps(t)))
        t.await_delivery(registration)
        rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "2", "live")
    _traffic(t, names, {"2": 100})
    progress = rows["2"]["progress"]
    check(bool(progress["smoke"] and progress["smoke"]["passed"]), f"no passing smoke test on the row: {progress}")
    gate = progress["gate"] or {}
    check(gate.get("outcome") == "pass", f"the last gate is not a pass: {gate}")
    evidence = gate["evidence"]
    check(
        evidence["requests"]["new"] >= evidence["thresholds"]["minRequests"] and evidence["p99Ms"]["new"] is not None,
        f"the gate passed without enough evidence: {evidence}",
    )
    promoted = [a for a in rows["2"]["actions"] if "traffic" in a and "(step " in a]
    check(len(promoted) == 3, f"expected a traffic write per step (10, 50, 100), the row shows {promoted}")


def rollback(t: Target, names: Names) -> None:
    """A slow v2 rolled back by its gate to v1's 100%; then an operator rolls back v3 mid-bake."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    with t.scoring_load(names.endpoint):
        slow = t.register(names.model, "2", tags(t, names, **_steps(t)), source="slow")
        t.await_delivery(slow)
        rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "2", "rolled_back")
    _traffic(t, names, {"1": 100})
    gate = rows["2"]["progress"]["gate"] or {}
    check(gate.get("outcome") == "fail", f"rolled back, but not by a failing gate: {gate}")
    check(any("P99" in reason for reason in gate["reasons"]), f"the gate did not judge the latency: {gate}")

    # The operator: v3 (a good model) bakes at 10%; POST .../rollback puts the traffic back as it was.
    registration = t.register(names.model, "3", tags(t, names, **_steps(t)))
    t.await_delivery(registration)
    t.await_state(names.model, "3", frozenset({"baking"}))
    _traffic(t, names, {"1": 90, "3": 10})
    code, answer = t.control(names.endpoint, names.deployment("3"), "rollback", "acceptance: operator rollback")
    check(code == 202, f"POST .../rollback answered {code}: {answer}")
    rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "3", "rolled_back")
    _traffic(t, names, {"1": 100})
    history = rows["3"]["progress"]["history"]
    check(
        [h["action"] for h in history] == ["rollback"] and history[0]["reason"] == "acceptance: operator rollback",
        f"the operator's rollback is not on the row's history: {history}",
    )


def promotion(t: Target, names: Names) -> None:
    """A model proven in staging reaches production through the registry, with its staging evidence, after an
    operator's approval there."""
    prod = t.promotion()  # the production workspace, its app and the registry: SKIP when the target has none
    t.track_endpoint(names.endpoint)
    prod.track(names.model, "1")
    # Production names its own endpoint (another workspace, maybe the same region: names are unique per region).
    carried = {"promote": "true", "promote_tags": "deploy,instance_type,stage"}
    rows = _go_live(t, names, "1", **carried)
    _state(t, names, rows, "1", "live")
    version = prod.wait_for(lambda: prod.evidenced_version(names.model, "1"), "the version's evidence")
    evidence = version.evidence
    assert evidence is not None
    staged = f"{names.endpoint}/{names.deployment('1')}"
    check(evidence.rollout_id == staged, f"the evidence names rollout {evidence.rollout_id}, expected {staged}")
    check(
        evidence.source_workspace.lower() == t.workspace.arm_id.lower(),
        f"the evidence names workspace {evidence.source_workspace}, expected {t.workspace.arm_id}",
    )
    # Production asks for an approval before any traffic (REQUIRE_APPROVAL=true on its app).
    row = prod.wait_for(lambda: prod.awaiting_or_settled(names.model, "1"), "production's rollout to await approval")
    check(
        row["state"] == "awaiting_approval",
        f"production's rollout is {row['state']!r}, not awaiting_approval: set REQUIRE_APPROVAL=true on its app",
    )
    check(not prod.traffic(prod.endpoint(names.model)), "production's endpoint took traffic before the approval")
    status, answer = prod.decide(row, "approve", "acceptance: staging evidence reviewed")
    check(status == 202, f"approve answered {status}: {answer}")
    row = prod.wait_for(lambda: prod.settled_rollout(names.model, "1"), "production's rollout to settle")
    check(row["state"] == "live", f"production's rollout is {row['state']!r} (reason: {row['reason']})")
    decided = [e for e in row["progress"]["history"] if e.get("action") == "approve"]
    check(len(decided) == 1 and decided[0].get("reason"), f"the approval is not recorded: {row['progress']['history']}")
    shown: Any = row["promotion"] or {}
    check(
        shown.get("stagingRollout") == staged and str(shown.get("sourceWorkspace")).lower() == t.workspace.key,
        f"production's status does not show where it was proven: {shown}",
    )
    endpoint = prod.endpoint(names.model)
    traffic = prod.traffic(endpoint)
    check(traffic == {names.deployment("1"): 100}, f"production endpoint {endpoint} traffic is {traffic}")
    model = prod.deployment_model(endpoint, names.deployment("1"))
    check(
        model.lower() == version.asset_id.lower(), f"production deploys {model}, not the registry's {version.asset_id}"
    )


# ---------------------------------------------------------------------- where two features meet


def metrics_outage(t: Target, names: Names) -> None:
    """Azure Monitor fails during v2's bake: the gate waits it out, then promotes v2 to its 20%."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    with t.scoring_load(names.endpoint):
        registration = t.register(names.model, "2", tags(t, names, traffic="20", bake=t.bake))
        t.await_delivery(registration)
        t.await_state(names.model, "2", frozenset({"baking"}))
        t.metrics_outage(minutes=7)  # past the bake's end: the gate's first reads meet it
        rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "2", "canary")
    _traffic(t, names, {"1": 80, "2": 20})
    gate = rows["2"]["progress"]["gate"] or {}
    check(gate.get("outcome") == "pass", f"promoted without a passing gate after the outage: {gate}")


def abort_retry_rollback(t: Target, names: Names) -> None:
    """v2 aborted at its first step, retried, then rolled back by its gate: v1 gets exactly its 100% back."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    with t.scoring_load(names.endpoint):
        slow = t.register(names.model, "2", tags(t, names, **_steps(t)), source="slow")
        t.await_delivery(slow)
        t.await_state(names.model, "2", frozenset({"baking"}))
        code, answer = t.control(names.endpoint, names.deployment("2"), "abort", "acceptance: abort")
        check(code == 202, f"POST .../abort answered {code}: {answer}")
        _traffic(t, names, {"1": 90, "2": 10})  # aborted where it was
        code, answer = t.control(names.endpoint, names.deployment("2"), "retry", "acceptance: retry")
        check(code == 202, f"POST .../retry answered {code}: {answer}")
        rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "2", "rolled_back")
    _traffic(t, names, {"1": 100})
    gate = rows["2"]["progress"]["gate"] or {}
    check(gate.get("outcome") == "fail", f"rolled back, but not by a failing gate: {gate}")


def promote_final_bake(t: Target, names: Names) -> None:
    """An operator promotes a single-step canary during its only bake: it ends a canary, gated no further."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    with t.scoring_load(names.endpoint):
        # The slow model would fail its gate: only the operator's promote can make it a canary.
        slow = t.register(names.model, "2", tags(t, names, traffic="20", bake=t.bake), source="slow")
        t.await_delivery(slow)
        t.await_state(names.model, "2", frozenset({"baking"}))
        code, answer = t.control(names.endpoint, names.deployment("2"), "promote", "acceptance: promote")
        check(code == 202, f"POST .../promote answered {code}: {answer}")
        rows = t.settle(names.model, PROGRESSIVE_STATES)
    _state(t, names, rows, "2", "canary")
    _traffic(t, names, {"1": 80, "2": 20})
    check(not rows["2"]["progress"]["requested"], f"the promote is still pending: {rows['2']['progress']}")


def dark_then_new_version(t: Target, names: Names) -> None:
    """v2 deployed dark with a bake (as under BAKE_DEFAULT=10m) has nothing to bake; v3 then goes live."""
    t.track_endpoint(names.endpoint)
    _go_live(t, names, "1")
    # The bake tag stands for BAKE_DEFAULT=10m (the template's default), which only supplies this tag's default.
    dark = t.register(names.model, "2", tags(t, names, traffic="0", bake="10m"))
    t.await_delivery(dark)
    row = t.await_state(names.model, "2", frozenset({"dark", "baking", "failed"}))
    check(row["state"] == "dark", f"a dark deployment is {row['state']!r}, expected 'dark' ({row['reason']})")
    rows = _go_live(t, names, "3")
    _state(t, names, rows, "3", "live")
    _traffic(t, names, {"3": 100})


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
    production: bool = False  # needs a production side (live: ACCEPTANCE_REGISTRY and ACCEPTANCE_PROD_*)
    scripts_faults: bool = False  # makes Azure fail on cue: the dev kit can, a real workspace cannot (skipped live)
    #: Waits for a fix named here: it must fail (XFAIL), and passing (XPASS) fails the run, as pytest's
    #: ``xfail(strict=True)``; remove it with the fix.
    xfail: str = ""

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
    # Live: two deployments, then three bakes of 5 min plus the metric lag (about 8 min a step) under load.
    Scenario("canary-with-gates", canary_with_gates, "gates", deployments=2, minutes=60),
    # Live: v1, v2 rolled back after one bake, v3 rolled back by the operator during its first bake.
    Scenario("rollback", rollback, "rb", deployments=3, minutes=60, versions=3),
    # Live: staging's deployment (about 15 min), the share into the registry (a few), production's (about 15 min).
    Scenario("promotion", promotion, "promo", deployments=2, minutes=50, versions=1, production=True),
    # Offline only (Azure Monitor cannot be made to fail live): one bake under an outage.
    Scenario(
        "metrics-outage",
        metrics_outage,
        "outage",
        deployments=2,
        minutes=35,
        scripts_faults=True,
    ),
    Scenario(
        "abort-retry-rollback",
        abort_retry_rollback,
        "abort",
        deployments=2,
        minutes=50,
    ),
    Scenario(
        "promote-final-bake",
        promote_final_bake,
        "promote",
        deployments=2,
        minutes=35,
    ),
    Scenario(
        "dark-then-new",
        dark_then_new_version,
        "dark",
        deployments=3,
        minutes=45,
        versions=3,
    ),
)
