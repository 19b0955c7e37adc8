"""The invariants the model-based test holds the engine to, each a function of the harness's record: it returns the
problems it found (none: it holds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from app.rollout.decide.awaiting import approval_given
from app.rollout.decide.model import State
from app.rollout.decide.traffic import scale
from tests.app.rollout.model.harness import ENDPOINT, FOREIGN, Harness, Transition, actions_of, progress_of
from tests.fakes.aml_faults import ArmCall

#: The notification types that tell each state was entered (a failed smoke test is the failure's own).
ENTERED = {
    State.PLANNED: {"AmlEvents.Rollout.Planned"},
    State.REJECTED: {"AmlEvents.Rollout.Rejected"},
    State.DEPLOYING: {"AmlEvents.Rollout.Started"},
    State.BAKING: {"AmlEvents.Rollout.Baking"},
    State.LIVE: {"AmlEvents.Rollout.Live"},
    State.CANARY: {"AmlEvents.Rollout.Canary"},
    State.DARK: {"AmlEvents.Rollout.Dark"},
    State.FAILED: {"AmlEvents.Rollout.Failed", "AmlEvents.Rollout.SmokeTestFailed"},
    State.SUPERSEDED: {"AmlEvents.Rollout.Superseded"},
    State.ROLLED_BACK: {"AmlEvents.Rollout.RolledBack"},
    State.ABORTED: {"AmlEvents.Rollout.Aborted"},
    State.AWAITING_APPROVAL: {"AmlEvents.Rollout.AwaitingApproval"},
    State.EXPIRED: {"AmlEvents.Rollout.ApprovalExpired"},
}
#: Final states in which the new deployment must serve no live traffic the app set (an operator's abort may).
NOT_SERVING = (State.FAILED, State.SUPERSEDED, State.REJECTED, State.ROLLED_BACK, State.PLANNED, State.EXPIRED)


def accepted(calls: Sequence[ArmCall]) -> list[str]:
    """Every write the app sends is one Azure ML accepts (only injected faults refuse one)."""
    return [f"{c.op} {c.endpoint}/{c.deployment} refused with {c.status}" for c in calls if _refused(c)]


def _refused(call: ArmCall) -> bool:
    return call.is_write and call.status == 400 and not call.injected


def owned_only(calls: Sequence[ArmCall]) -> list[str]:
    """The app writes only to endpoints it created or adopted."""
    return [f"{c.op} sent to the foreign endpoint {c.endpoint}" for c in calls if c.is_write and c.endpoint == FOREIGN]


def hold_writes_nothing(calls: Sequence[ArmCall], mode: str) -> list[str]:
    """Under the kill switch the app sends no write at all."""
    if mode != "hold":
        return []
    return [f"{c.op} {c.endpoint}/{c.deployment} sent with DEPLOY_MODE=hold" for c in calls if c.is_write]


def rollbacks_exact(transitions: Sequence[Transition], harness: Harness) -> list[str]:
    """A rollback's one write restores the split recorded before the rollout, without the new deployment."""
    problems = []
    shown = set(harness.world.aml.deployments(ENDPOINT))
    for change in transitions:
        if change.after is not State.ROLLED_BACK or change.endpoint != ENDPOINT or change.split is None:
            continue
        actions = actions_of(change.row)
        if not actions or "rolled back" not in actions[-1]:
            continue  # nothing had moved: nothing written
        before = progress_of(change.row).before_traffic or {}
        others = {name: pct for name, pct in before.items() if name != change.deployment and pct}
        if not set(others) <= shown:
            continue  # a deployment of the split is gone: the others are scaled up, checked below as a split
        written = {name: pct for name, pct in change.split.items() if pct}
        expected = scale(others, 100) if others else {}
        if written != expected:
            problems.append(f"{change.deployment} rolled back to {written}, not {expected} (recorded {before})")
    return problems


def no_downgrade(harness: Harness, since: int) -> list[str]:
    """A traffic write of the app's never moves share from a version that ended live or canary to an older one of
    the same model, below the share its rollout set (retiring a canary into a newer version, sharing a retired one's
    share out in proportion, or bringing a canary back to its planned share after a hand-made change, is no
    downgrade)."""
    problems = []
    ended: dict[str, list[int]] = {}
    planned: dict[str, int] = {}  # the share each of those rollouts set for its own deployment
    for r in harness.rollouts():
        if r.plan.endpoint == ENDPOINT and r.state in (State.LIVE, State.CANARY):
            ended.setdefault(r.plan.model_name, []).append(int(r.plan.model_version))
            planned[r.plan.deployment] = r.plan.traffic
    log = harness.world.aml.traffic_log
    for index, live, _ in harness.app_splits():
        if index < since:
            continue
        before = next((split for _, name, split, _ in reversed(log[:index]) if name == ENDPOINT), {})
        served: dict[str, int] = {}
        for name in live:
            model, _, version = name.rpartition("-v")
            served[model] = max(served.get(model, 0), int(version))
        for name, pct in live.items():
            model, _, version = name.rpartition("-v")
            if pct <= before.get(name, 0):
                continue
            for newer in (v for v in ended.get(model, []) if v > int(version) and served[model] <= v):
                kept = live.get(f"{model}-v{newer}", 0)
                # Below what its own rollout set: a canary brought back to its planned share (from more someone gave
                # it by hand) has lost nothing of its own.
                lost = kept < before.get(f"{model}-v{newer}", 0) and kept < planned[f"{model}-v{newer}"]
                if lost:
                    problems.append(f"{name} got {pct}% from {model}-v{newer}, which ended live or canary")
    return problems


def approval_kept(harness: Harness, since: int) -> list[str]:
    """No write of the app's gives live traffic to a rollout's deployment that needs approval (REQUIRE_APPROVAL or the
    tag) and had none, before an operator approved its current attempt. (A share someone gave it by hand is theirs:
    the app's later writes keep it, scaled as any other.)"""
    problems = []
    needs = harness.world.settings.require_approval
    rows = {r.plan.deployment: r for r in harness.rollouts() if r.plan.endpoint == ENDPOINT}
    log = harness.world.aml.traffic_log
    for index, live, _ in harness.app_splits():
        if index < since:
            continue
        before = next((split for _, name, split, _ in reversed(log[:index]) if name == ENDPOINT), {})
        for name, pct in live.items():
            row = rows.get(name)
            if row is None or before.get(name, 0) or not (needs or row.plan.approval_requested):
                continue
            if not approval_given(row.progress):
                problems.append(f"{name} got {pct}% before an operator approved it")
    return problems


def nothing_ended_serves(transitions: Sequence[Transition]) -> list[str]:
    """No rollout ends failed, superseded, rejected or rolled back with its deployment serving live traffic the app set
    (what someone set by hand, or a write of the app's landing late before it is undone, is not the app's doing; nor
    is a share someone gave by hand to a rollout that never wrote traffic itself, which the app's later writes for
    other rollouts keep, scaled, as they keep every deployment's)."""
    problems = []
    for change in transitions:
        if change.after not in NOT_SERVING or change.endpoint != ENDPOINT or change.setter != "app":
            continue
        if not any(" traffic " in action for action in actions_of(change.row)):
            continue  # it sent no traffic write of its own (awaiting approval, say): whatever it serves, it was given
        share = (change.split or {}).get(change.deployment, 0)
        if share:
            problems.append(f"{change.deployment} ended {change.after.value} serving {share}%")
    return problems


def notified_once(harness: Harness) -> list[str]:
    """Each change of state is notified exactly once (a new row's pending state is not a change)."""
    entered: Counter[tuple[str, State]] = Counter()
    for change in harness.transitions:
        if change.after is not State.PENDING:
            entered[(change.deployment, change.after)] += 1
    received: Counter[tuple[str, str]] = Counter()
    for notification in harness.world.sink.received:
        received[(notification.subject.rpartition("/")[2], notification.type)] += 1
    problems = []
    for deployment in {key[0] for key in entered} | {key[0] for key in received}:
        for state, kinds in ENTERED.items():
            told = sum(received[(deployment, kind)] for kind in kinds)
            if told != entered[(deployment, state)]:
                problems.append(f"{deployment}: entered {state.value} {entered[(deployment, state)]}x, told {told}x")
    return problems


def dark_never_bakes(harness: Harness) -> list[str]:
    """A rollout with no live traffic (``traffic=0``) has nothing to bake: it is never ``baking``."""
    return [
        f"{r.plan.deployment} (traffic 0) is baking"
        for r in harness.rollouts()
        if r.plan.traffic == 0 and r.state is State.BAKING
    ]


#: Rollouts whose deployment is of no further use to a rollback once it serves nothing.
#: The model's own list, apart from the app's: a rejected or expired rollout's deployment is of no use either.
GARBAGE = (State.SUPERSEDED, State.FAILED, State.ROLLED_BACK, State.ABORTED, State.REJECTED, State.EXPIRED)


def previous_kept(harness: Harness, calls: Sequence[ArmCall], shown: Mapping[str, str]) -> list[str]:
    """Cleanup never deletes the deployment the newest finished rollout replaced (its rollback's target) while a
    deployment of no further use (its rollout superseded, failed, rolled back or aborted, and it serves nothing) is
    kept instead: garbage goes first. A target that failed in Azure ML (``shown``: the states before the rule) can
    take no traffic back, so it may go."""
    deletes = [c for c in calls if c.op == "delete_deployment" and c.endpoint == ENDPOINT]
    if not deletes:
        return []
    rollouts = [r for r in harness.rollouts() if r.plan.endpoint == ENDPOINT]
    ended = [r for r in rollouts if r.state in (State.LIVE, State.CANARY, State.DARK)]
    if not ended:
        return []
    newest = max(ended, key=lambda r: (r.turn_taken_at or r.created_at, r.created_at))
    states = {r.plan.deployment: r.state for r in rollouts}
    targets = {
        name
        for name, pct in (newest.progress.before_traffic or {}).items()
        if pct and states.get(name) not in GARBAGE and shown.get(name) not in ("Failed", "Canceled")
    }
    aml = harness.world.aml
    serving = {**aml.traffic(ENDPOINT), **aml.mirror(ENDPOINT)}
    garbage = [name for name in aml.deployments(ENDPOINT) if states.get(name) in GARBAGE and not serving.get(name)]
    return [
        f"deleted {c.deployment}, the rollback target of {newest.plan.deployment}, and kept {', '.join(garbage)}"
        for c in deletes
        if c.deployment in targets and garbage
    ]
