"""What promotion tells people: ``AmlEvents.Model.Promoted`` (the staging app's hand-over to production, with the
evidence) and ``AmlEvents.Model.PromotionFailed``."""

from __future__ import annotations

from typing import Any

from app.notify.notifier import Notification
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import Rollout
from app.rollout.decide.registry_model import PromotionEvidence, SharedVersion, registry_asset_id

PROMOTED = "AmlEvents.Model.Promoted"
PROMOTION_FAILED = "AmlEvents.Model.PromotionFailed"


def registry_subject(registry: str, name: str, version: str) -> str:
    """The Promoted event's subject: ``registries/{registry}/models/{name}/versions/{version}``."""
    return f"registries/{registry}/models/{name}/versions/{version}"


def evidence_facts(evidence: PromotionEvidence) -> dict[str, Any]:
    """The evidence as a notification's facts (what the registry version's tags record, in full)."""
    smoke = evidence.smoke
    return {
        "sourceWorkspace": evidence.source_workspace,
        "rollout": evidence.rollout_id,
        "time": evidence.time.isoformat(),
        "gates": [{"name": g.name, "verdict": g.verdict, "figures": dict(g.figures)} for g in evidence.gates],
        "smoke": None if smoke is None else {"passed": smoke.passed, "detail": smoke.detail},
    }


def promoted_notification(rollout: Rollout, shared: SharedVersion, evidence: PromotionEvidence) -> Notification:
    """The staging app's ``AmlEvents.Model.Promoted``: published to its topic, which production subscribes to.

    Its ``source`` (the notification's workspace) is the staging workspace, which production's
    ``PROMOTION_SOURCES`` lists; production treats the event as a hint and reads the registry itself.
    """
    plan, version = rollout.plan, shared.version
    workspace = WorkspaceRef.from_arm_id(plan.workspace_id)
    recorded = version.evidence
    links = {
        "sourceModel": workspace.studio_link(f"model/{plan.model_name}:{plan.model_version}/details"),
        "stagingEndpoint": workspace.studio_link(f"endpoints/realtime/{plan.endpoint}/detail"),
    }
    if evidence.status_link:
        links["stagingRollout"] = evidence.status_link
    return Notification(
        type=PROMOTED,
        subject=registry_subject(version.registry, version.name, version.version),
        summary=f"{plan.model_name}:{plan.model_version}, proven by rollout {plan.endpoint}/{plan.deployment}, is "
        f"promoted into registry {version.registry} as {version.asset_id}",
        workspace=workspace,
        source_event_id=f"promotion:{plan.endpoint}/{plan.deployment}",
        facts={
            "registry": version.registry,
            "model": version.name,
            "version": version.version,
            "assetId": version.asset_id,
            "copied": shared.shared,
            "sourceModel": f"{plan.workspace_id}/models/{plan.model_name}/versions/{plan.model_version}",
            # What the registry version records: the first promotion's evidence when it was promoted before.
            "evidenceDigest": recorded.digest if recorded else "",
            "evidence": evidence_facts(evidence),
        },
        links=links,
    )


def promotion_failed_notification(rollout: Rollout, registry: str, error: str, attempts: int) -> Notification:
    """A promotion that will not happen: a permanent error, or too many failed attempts."""
    plan = rollout.plan
    workspace = WorkspaceRef.from_arm_id(plan.workspace_id)
    return Notification(
        type=PROMOTION_FAILED,
        subject=registry_subject(registry, plan.model_name, plan.model_version),
        summary=f"{plan.model_name}:{plan.model_version} (rollout {plan.endpoint}/{plan.deployment}) was not promoted "
        f"into registry {registry} after {attempts} attempt(s): {error}",
        workspace=workspace,
        source_event_id=f"promotion:{plan.endpoint}/{plan.deployment}",
        severity="error",
        facts={
            "registry": registry,
            "model": plan.model_name,
            "version": plan.model_version,
            "assetId": registry_asset_id(registry, plan.model_name, plan.model_version),
            "rollout": f"{plan.endpoint}/{plan.deployment}",
            "attempts": attempts,
            "error": error,
        },
        links={"sourceModel": workspace.studio_link(f"model/{plan.model_name}:{plan.model_version}/details")},
    )
