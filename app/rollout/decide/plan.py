"""The tag contract: a registered model's tags and the settings decide the rollout plan (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from app.platform.quoting import quoted
from app.platform.settings import Settings
from app.platform.workspace import WorkspaceRef
from app.rollout.decide.model import NO_CODE_TYPES, ModelInfo, Reject, RolloutPlan, Skip
from app.rollout.decide.naming import deployment_name, endpoint_name, is_valid_name
from app.rollout.decide.promotion_tags import parse_promotion_tags
from app.rollout.decide.skus import SKU_LIST_URL, VM_SIZE_PATTERN, is_managed_online_sku
from app.rollout.decide.stepping_tags import parse_progressive_tags
from app.rollout.decide.tag_keys import check_tag_keys, resembles

OPT_IN_TAGS = ("deploy", "ncd")  # ``ncd=true`` is the original sample's opt-in
MAX_MIRROR = 50


def plan_rollout(workspace: WorkspaceRef, model: ModelInfo, settings: Settings) -> RolloutPlan | Skip | Reject:
    """Decide what to do with a registered model. No I/O."""
    tags = {key.strip().lower(): value.strip() for key, value in model.tags.items()}
    opt_in = next((tags[key] for key in OPT_IN_TAGS if key in tags), None)
    if (opt_in is None and not _misspelled_opt_in(model.tags)) or (opt_in is not None and opt_in.lower() != "true"):
        shown = "absent" if opt_in is None else quoted(opt_in)
        return Skip(f"not opted in: tag 'deploy' is {shown}; set deploy=true to deploy this model")
    if settings.deploy_stage and tags.get("stage", "").lower() != settings.deploy_stage:
        stage = quoted(tags.get("stage", ""))
        return Skip(f"not for this stage: tag 'stage' is {stage}, DEPLOY_STAGE is {settings.deploy_stage!r}")
    # AML spells the type either way (``mlflow_model``, ``MLFlow_Model``): compare case-insensitively.
    if model.type.lower() not in NO_CODE_TYPES:
        return Skip(
            f"model type {quoted(model.type)} is not no-code deployable (it needs an environment and a scoring "
            f"script); only {' and '.join(NO_CODE_TYPES)} are deployed"
        )

    problems = [problem.message for problem in check_tag_keys(model.tags, strict=settings.strict_tags)]
    endpoint = _endpoint(tags, model.name, workspace, problems)
    instance_type = _instance_type(tags, settings, problems)
    instance_count = _integer(tags, "instance_count", 1, 1, settings.max_instance_count, problems, "MAX_INSTANCE_COUNT")
    traffic = _integer(tags, "traffic", 100, 0, 100, problems)
    mirror = _integer(tags, "mirror", 0, 0, MAX_MIRROR, problems)
    if mirror and traffic:
        problems.append(f"tag 'mirror'={quoted(tags['mirror'])}: mirror traffic is only allowed with traffic=0")
    progressive = parse_progressive_tags(tags, traffic, settings, problems)
    promotion = parse_promotion_tags(tags, problems)
    plan = RolloutPlan(
        workspace_id=workspace.arm_id,
        endpoint=endpoint,
        deployment=deployment_name(model.name, model.version),
        model_name=model.name,
        model_version=model.version,
        model_type=model.type,
        model_created_at=model.created_at.isoformat() if model.created_at else "",
        instance_type=instance_type,
        instance_count=instance_count,
        traffic=traffic,
        mirror=0 if traffic else mirror,
        traffic_steps=progressive.traffic_steps,
        bake_seconds=progressive.bake_seconds,
        smoke_request=progressive.smoke_request,
        max_error_rate=progressive.max_error_rate,
        max_p99_ms=progressive.max_p99_ms,
        promote=promotion.promote,
        promote_tags=promotion.carry,
        approval_requested=promotion.approval,
    )
    return Reject(tuple(problems), plan) if problems else plan


def _misspelled_opt_in(tags: Mapping[str, str]) -> bool:
    """``deplyo=true``: the model was meant to deploy, so it is refused with the spelling, not silently skipped."""
    return any(value.strip().lower() == "true" and resembles(key) in OPT_IN_TAGS for key, value in tags.items())


def _endpoint(tags: Mapping[str, str], model_name: str, workspace: WorkspaceRef, problems: list[str]) -> str:
    value = tags.get("endpoint", "")
    if not value:
        return endpoint_name(model_name, workspace.arm_id)
    if not is_valid_name(value):
        problems.append(
            f"tag 'endpoint'={quoted(value)}: must be 3-32 characters, start with a letter, contain only letters, "
            "digits and hyphens, and end with a letter or digit"
        )
        return endpoint_name(model_name, workspace.arm_id)
    return value.lower()


def _instance_type(tags: Mapping[str, str], settings: Settings, problems: list[str]) -> str:
    """The VM size: a size name always; with ``ALLOWED_INSTANCE_TYPES`` set, one of those (the operator's list wins
    over the built-in one, so a size Azure added since still works); else one managed online endpoints support."""
    tagged = tags.get("instance_type", "")
    value = tagged or settings.default_instance_type
    source = f"tag 'instance_type'={quoted(value)}" if tagged else f"DEFAULT_INSTANCE_TYPE={quoted(value)}"
    problem = ""
    if not VM_SIZE_PATTERN.match(value):
        problem = "not a VM size name (Standard_ then letters, digits and _, e.g. Standard_DS3_v2)"
    elif settings.allowed_instance_types:
        if value.lower() not in settings.allowed_instance_types:
            problem = f"not in ALLOWED_INSTANCE_TYPES ({', '.join(sorted(settings.allowed_instance_types))})"
    elif not is_managed_online_sku(value):
        problem = f"not a VM size managed online endpoints support ({SKU_LIST_URL})"
    if problem:
        problems.append(f"{source}: {problem}")
        # The rejected plan only keys the ledger row; it must not carry the bad value into notifications.
        return settings.default_instance_type
    return value


def _integer(
    tags: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str], setting: str = ""
) -> int:
    raw = tags.get(name, "")
    if raw == "":
        return default
    text = raw.removesuffix("%").strip()
    rule = f"must be a whole number from {low} to {high}" + (f" ({setting})" if setting else "")
    if not (text.isdigit() and text.isascii()):
        problems.append(f"tag '{name}'={quoted(raw)}: {rule}")
        return default
    value = int(text)
    if not low <= value <= high:
        problems.append(f"tag '{name}'={quoted(raw)}: {rule}")
        return default
    return value
