"""Promotion's decisions (pure): the tags that ask for it and for approval, whether a finished staging rollout is
promoted and with what evidence, which registry versions production takes, and how their rollout is planned.

The staging app's side: ``promotion_refusal`` says why a rollout that ended is not promoted (None: it is), and
``promotion_evidence`` is what the registry version records. The production side: ``registry_version_refusal``
says why a registry version is not rolled out here, and ``plan_from_registry`` plans it with production's own
settings, referencing the registry's version and remembering where it was proven.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.platform.quoting import quoted
from app.platform.settings import Settings
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import ModelInfo, Reject, Rollout, RolloutPlan, Skip, State
from app.rollout.decide.plan import plan_rollout
from app.rollout.decide.registry_model import (
    EVIDENCE_PREFIX,
    GateEvidence,
    PromotionEvidence,
    PromotionSource,
    RegistryModelVersion,
    SmokeEvidence,
)

#: The states a promoted rollout ends in: its new version serves (all of the traffic, or its canary share).
PROMOTABLE_STATES = (State.LIVE, State.CANARY)
#: The operator action that skips gates: a rollout it touched is never promoted.
SKIPS_GATES = "promote"


def requires_approval(plan: RolloutPlan, settings: Settings) -> bool:
    """Does this rollout wait for an operator's approval? The setting or the tag; neither can waive the other."""
    return settings.require_approval or plan.approval_requested


# ---------------------------------------------------------------------------------------------- staging side


def promotion_refusal(rollout: Rollout, settings: Settings) -> str | None:
    """Why ``rollout`` is not promoted into ``PROMOTE_TO_REGISTRY``; None when it is."""
    plan, registry = rollout.plan, settings.promote_to_registry
    if not registry:
        return "PROMOTE_TO_REGISTRY is empty"
    if not (plan.promote or settings.promote_all):
        return "not asked for: tag promote is not true and PROMOTE_ALL is false"
    if settings.deploy_mode == "plan":
        return "DEPLOY_MODE=plan"
    if rollout.state not in PROMOTABLE_STATES:
        return f"the rollout is {rollout.state.value}, not live or canary"
    if any(entry.get("action") == SKIPS_GATES for entry in rollout.progress.history):
        return "an operator promote skipped its gates"
    failed = failed_gates(rollout)
    if failed:
        return f"not every gate passed ({'; '.join(failed)})"
    if plan.source is not None and plan.source.registry.lower() == registry.lower():
        return f"its model is already registry {registry}'s version"
    return None


def failed_gates(rollout: Rollout) -> list[str]:
    """The steps whose last gate verdict was not a pass (the bake windows of one step share their start)."""
    last: dict[str, Mapping[str, Any]] = {}
    for entry in gate_trail(rollout.progress.gates, rollout.progress.gate):
        last[str(entry.get("windowStart"))] = entry
    return [
        f"window from {start}: {entry.get('outcome')}" for start, entry in last.items() if entry["outcome"] != "pass"
    ]


def gate_trail(gates: tuple[Mapping[str, Any], ...], gate: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Every gate verdict of a rollout, oldest first: its trail, and its last gate if the trail lacks it (rows
    recorded before the trail existed)."""
    trail = list(gates)
    if gate is not None:
        entry = gate_trail_entry(gate)
        if not trail or trail[-1] != entry:
            trail.append(entry)
    return trail


def gate_trail_entry(gate: Mapping[str, Any]) -> dict[str, Any]:
    """One gate's verdict and figures, compact (the whole evidence stays on the row's ``gate`` until the next)."""
    evidence = gate.get("evidence") or {}
    window, p99 = evidence.get("window") or {}, evidence.get("p99Ms") or {}
    return {
        "outcome": gate.get("outcome"),
        "windowStart": window.get("start"),
        "windowEnd": window.get("end"),
        "requests": (evidence.get("requests") or {}).get("new"),
        "errorSharePct": evidence.get("errorSharePct"),
        "p99Ms": p99.get("new"),
        "stableP99Ms": p99.get("stable"),
        "latencyRatio": evidence.get("latencyRatio"),
    }


#: Gate verdicts a rollout's trail keeps (10 steps with their extensions fit).
MAX_TRAIL = 40


def with_gate_trail(rollout: Rollout) -> Rollout:
    """``rollout`` with its last gate appended to its trail of verdicts when that gate is new to the trail."""
    progress = rollout.progress
    if progress.gate is None:
        return rollout
    entry = gate_trail_entry(progress.gate)
    if progress.gates and progress.gates[-1] == entry:
        return rollout
    return replace(rollout, progress=replace(progress, gates=(*progress.gates, entry)[-MAX_TRAIL:]))


def promotion_evidence(rollout: Rollout, now: dt.datetime, status_host: str = "") -> PromotionEvidence:
    """What the registry version records of ``rollout``: every gate (one per bake window), the smoke test, when."""
    plan = rollout.plan
    gates = tuple(
        GateEvidence(name=f"gate{number}", verdict=str(entry.get("outcome")), figures=_figures(entry))
        for number, entry in enumerate(gate_trail(rollout.progress.gates, rollout.progress.gate), start=1)
    )
    smoke = rollout.progress.smoke
    link = f"https://{status_host}/api/rollouts?endpoint={plan.endpoint}&model={plan.model_name}" if status_host else ""
    return PromotionEvidence(
        source_workspace=plan.workspace_id,
        rollout_id=f"{plan.endpoint}/{plan.deployment}",
        time=now,
        gates=gates,
        # A smoke test skipped (no sample) is recorded as not run, not as passed.
        smoke=None
        if smoke is None or smoke.get("skipped")
        else SmokeEvidence(bool(smoke.get("passed")), str(smoke.get("reason") or "")),
        status_link=link,
    )


def _figures(entry: Mapping[str, Any]) -> dict[str, float | int | str]:
    """A gate's figures as evidence: its bake window as one ISO 8601 interval, and the measured values."""
    figures: dict[str, float | int | str] = {}
    if entry.get("windowStart") and entry.get("windowEnd"):
        figures["window"] = f"{_second(entry['windowStart'])}/{_second(entry['windowEnd'])}"
    for key in ("requests", "errorSharePct", "p99Ms", "stableP99Ms", "latencyRatio"):
        value = entry.get(key)
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            figures[key] = value
    return figures


def _second(text: Any) -> str:
    """An ISO 8601 time to the second, in UTC's ``Z`` form (``2026-12-07T12:03:05Z``)."""
    try:
        return dt.datetime.fromisoformat(str(text)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return str(text)


# ---------------------------------------------------------------------------------------------- production side


#: What a registry version must carry to be rolled out: the staging app's evidence (or the same tags set by hand).
NO_EVIDENCE = "it carries no promotion evidence (promotion.rollout, promotion.source_workspace tags)"


def registry_version_refusal(version: RegistryModelVersion, settings: Settings) -> str | None:
    """Why a registry version is not rolled out by this app; None when it may be (its tags still decide how).

    The registry must be one of ``PROMOTION_REGISTRIES``, and the version must carry promotion evidence whose source
    workspace is one of ``PROMOTION_SOURCES``: the staging app writes it when it promotes; a team that promotes by
    hand writes those tags itself (docs/promotion.md). A version without evidence is not rolled out: it may be one
    whose copy has just landed and whose evidence is still being written.
    """
    if not settings.reads_registry(version.registry):
        return f"registry {version.registry} is not in PROMOTION_REGISTRIES"
    evidence = version.evidence
    if evidence is None:
        return NO_EVIDENCE
    try:
        source = WorkspaceRef.from_arm_id(evidence.source_workspace)
    except ValueError:
        return f"its evidence names no workspace ({quoted(evidence.source_workspace)})"
    if not settings.promotes_from(source):
        return f"it was promoted from workspace {source.arm_id}, which is not in PROMOTION_SOURCES"
    return None


def plan_from_registry(
    workspace: WorkspaceRef, version: RegistryModelVersion, settings: Settings
) -> RolloutPlan | Skip | Reject:
    """Production's plan for a registry version: its tags under this app's settings and gates, its deployment
    naming the registry's version (not a copy), and where it was proven."""
    # The evidence tags are the registry's record, not the tag contract (STRICT_TAGS would refuse them).
    tags = {key: value for key, value in version.tags.items() if not key.lower().startswith(EVIDENCE_PREFIX)}
    if version.evidence is not None and not any(key.strip().lower() in ("deploy", "ncd") for key in tags):
        tags["deploy"] = "true"  # the staging app's evidence is the opt-in, whatever tags it carried
    model = ModelInfo(version.name, version.version, version.model_type, tags, version.created_at)
    decision = plan_rollout(workspace, model, settings)
    if isinstance(decision, Skip):
        return decision
    evidence = version.evidence
    source = PromotionSource(
        registry=version.registry,
        source_workspace=evidence.source_workspace if evidence else "",
        staging_rollout=evidence.rollout_id if evidence else "",
        status_link=evidence.status_link if evidence else "",
        digest=evidence.digest if evidence else "",
        promoted_at=evidence.time.isoformat() if evidence and evidence.time else "",
        gates=dict(evidence.gates) if evidence else {},
        smoke=evidence.smoke if evidence else "",
    )
    if isinstance(decision, Reject):
        return Reject(decision.problems, replace(decision.plan, source=source))
    return replace(decision, source=source)


def promotion_status(plan: RolloutPlan) -> dict[str, Any] | None:
    """What the status API shows of a rollout from a registry: where it was proven, with links; None otherwise."""
    source = plan.source
    if source is None:
        return None
    links: dict[str, str] = {}
    if source.source_workspace:
        staging = WorkspaceRef.from_arm_id(source.source_workspace)
        links["sourceModel"] = staging.studio_link(f"model/{plan.model_name}:{plan.model_version}/details")
        endpoint = source.staging_rollout.split("/", 1)[0]
        if endpoint:
            links["stagingEndpoint"] = staging.studio_link(f"endpoints/realtime/{endpoint}/detail")
    if source.status_link:
        links["stagingRollout"] = source.status_link
    return {
        "registry": source.registry,
        "model": plan.model_ref,
        "sourceWorkspace": source.source_workspace or None,
        "stagingRollout": source.staging_rollout or None,
        "promotedAt": source.promoted_at or None,
        "stagingEvidence": {
            "gates": dict(source.gates),
            "smoke": source.smoke or None,
            "digest": source.digest or None,
        },
        "links": links,
    }
