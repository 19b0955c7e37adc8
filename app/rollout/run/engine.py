"""Applies the state machine: under an endpoint lease, observe AML once, take one action per rollout, record it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from app.platform.errors import describe_error, error_source, is_retryable, permission_problem, status_code_of
from app.platform.workspace import WorkspaceRef
from app.rollout.decide import intents as intent_rules
from app.rollout.decide.followup import MAX_RECHECKS, FollowUp
from app.rollout.decide.intents import Intent, Verdict
from app.rollout.decide.model import Cleanup, Rollout, State
from app.rollout.decide.naming import EndpointNameTaken
from app.rollout.decide.step import (
    RETIRABLE_STATES,
    WRITE_ACTIONS,
    Action,
    CreateDeployment,
    CreateEndpoint,
    Delete,
    Evaluate,
    Extend,
    Fail,
    Finish,
    Hold,
    Nothing,
    Observation,
    RollBack,
    SetTraffic,
    StartBake,
    Wait,
    cleanup_step,
    step,
    step_policy,
)
from app.rollout.decide.stepping import bake_deadline
from app.rollout.ledger.ledger import Lease, LeaseLost, StaleRollout, ledger_of
from app.rollout.run import telemetry
from app.rollout.run.notifications import (
    SMOKE_FAILED,
    cleanup_failed_notification,
    endpoint_notification,
    rollout_notification,
)
from app.rollout.run.stepping import ProgressiveRunner

if TYPE_CHECKING:
    from app.notify.notifier import Notification
    from app.ports import AzureMl, Deps
    from app.rollout.decide.model import EndpointView

#: States in which a rollout waits on an AML operation (or its turn) rather than on a bake or a person.
_WAITING_ON_AML = (State.PENDING, State.DEPLOYING)
logger = logging.getLogger(__name__)

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=10)
#: Waiting for a role assignment to apply: come back often, it usually takes a few minutes.
PERMISSION_BACKOFF_CAP = dt.timedelta(minutes=2)


class RolloutEngine:
    """Advances the rollouts of one endpoint at a time. One instance per invocation."""

    def __init__(self, deps: Deps, *, followup: FollowUp | None = None) -> None:
        self.deps = deps
        #: The follow-up message this pass answers, if a follow-up (not the timer or an event) started it.
        self.followup = followup
        self._due_followups: dict[str, float] = {}
        self._rollouts: dict[str, Rollout] = {}
        self._busy = False
        self.ledger = ledger_of(deps)
        self.policy = step_policy(deps.settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = deps.settings.endpoint_lease_seconds
        self._lease: Lease | None = None
        self._observed: dict[str, object] = {}
        self.progressive = ProgressiveRunner(self)

    def advance(self, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
        """Take one step for every active rollout on the endpoint. Returns one line per rollout touched."""
        now = self.deps.clock()
        lease = self.ledger.acquire_lease(workspace_id, endpoint, self.owner, now, self.lease_seconds)
        if lease is None:
            return [f"{endpoint}: another instance is advancing this endpoint"]
        self._lease, self._observed = lease, {}
        self._due_followups, self._rollouts, self._busy = {}, {}, False
        try:
            return self._advance(workspace_id, endpoint, deadline)
        except LeaseLost as err:
            logger.warning("endpoint %s: %s; no write sent, another instance carries on", endpoint, err)
            return [f"{endpoint}: lease lost ({err}); no write sent"]
        except StaleRollout as err:
            logger.warning("endpoint %s: %s; decided again from a fresh observation next time", endpoint, err)
            return [f"{endpoint}: {err}; decided again next time"]
        finally:
            if self._lease is not None:
                # The observation is cached on the endpoint's row for the status API.
                self.ledger.release_lease(self._lease, self.deps.clock(), **self._observed)
            self._lease = None
            self._schedule_followups(workspace_id, endpoint)

    def follow_up_after(self, kind: str, seconds: float | None = None, reason: str = "") -> None:
        """Ask for a look at this endpoint when a write of ``kind`` should have finished (or in ``seconds``)."""
        delay = self.deps.settings.followup_delay(kind) if seconds is None else seconds
        if delay is not None and self.deps.followups is not None:
            key = reason or kind
            self._due_followups[key] = min(delay, self._due_followups.get(key, delay))

    def _schedule_followups(self, workspace_id: str, endpoint: str) -> None:
        """Send this pass's follow-ups; best effort: a failure is logged and the timer carries on."""
        rechecks = 0
        came = self.followup
        # A follow-up came too early (AML still busy, or a turn still to take): look again, a bounded number of
        # times; then the timer alone carries on.
        if not self._due_followups and came is not None and came.rechecks < MAX_RECHECKS and self._still_waiting():
            rechecks = came.rechecks + 1
            self.follow_up_after("recheck", reason=f"recheck {rechecks}/{MAX_RECHECKS}")
        if not self._due_followups or self.deps.followups is None:
            return
        try:
            queue = self.deps.followups()
            for reason, delay in self._due_followups.items():
                queue.schedule(FollowUp(workspace_id, endpoint, reason, rechecks), delay)
                logger.info("endpoint %s: follow-up (%s) scheduled in %.0f s", endpoint, reason, delay)
        except Exception as err:
            logger.warning(
                "endpoint %s: follow-up not scheduled (%s: %s); the reconciler's timer picks it up",
                endpoint,
                type(err).__name__,
                err,
            )
        finally:
            self._due_followups = {}

    def _still_waiting(self) -> bool:
        """After this pass: is a rollout on the endpoint still waiting on AML (not on a bake or a person)?"""
        if self._busy:
            return True
        return any(r.state in _WAITING_ON_AML and not r.progress.paused for r in self._rollouts.values())

    def _advance(self, workspace_id: str, endpoint: str, deadline: float) -> list[str]:
        rollouts = {r.plan.deployment: r for r in self.ledger.endpoint_rollouts(workspace_id, endpoint)}
        self._rollouts = rollouts  # updated in place as the pass goes; the follow-ups look at it afterwards
        now = self.deps.clock()
        due = [
            r
            for r in rollouts.values()
            if (not r.state.terminal or r.progress.requested) and not (r.next_attempt_at and now < r.next_attempt_at)
        ]
        assert self._lease is not None
        watching = intent_rules.watching(self._lease.record.intents, now)
        if not due and not watching and not _cleanup_due(rollouts.values(), now):
            return []
        gateway = self.deps.aml(WorkspaceRef.from_arm_id(workspace_id))
        try:
            view = gateway.observe(endpoint)
        except Exception as err:
            # The same policy as for actions: back off and count transient errors, wait a bounded time for a
            # missing permission, fail on permanent ones. Cleanup simply tries again next tick.
            failed = [self._failed_attempt(rollout, err, now) for rollout in due]
            if not due:
                logger.warning("endpoint %s (a write in doubt) not observed: %s: %s", endpoint, type(err).__name__, err)
            return [f"{r.plan.deployment}: {r.state.value} ({r.reason})" for r in failed]
        # The step also weighs the records of the deployments AML shows (supersede, cleanup, the owner of a
        # restored split); the endpoint's history of deleted deployments is not read. These come without logs.
        shown = [d.name for d in view.deployments if d.name not in rollouts] if view else []
        rollouts.update((r.plan.deployment, r) for r in self.ledger.deployment_rollouts(workspace_id, endpoint, shown))
        self._busy = bool(view is not None and view.busy_reason)
        if view is not None:
            self._observed = {
                "observed_traffic": dict(view.traffic),
                "observed_mirror": dict(view.mirror_traffic),
                "observed_at": self.deps.clock(),
            }
        verdict, lines = self._judge(view, gateway, rollouts, due)
        if verdict is not None and verdict.kind == "late":
            return lines  # the restore was this pass's write; the rollouts decide on a fresh observation
        wrote = False
        for rollout in sorted(due, key=lambda r: (r.state is not State.DEPLOYING, r.created_at)):
            if time.monotonic() > deadline:
                lines.append(f"{rollout.plan.deployment}: out of time budget; next tick")
                break
            current = rollouts[rollout.plan.deployment]
            siblings = [r for name, r in rollouts.items() if name != current.plan.deployment]
            seen = Observation(view, siblings)
            try:
                action = step(current, seen, self.deps.clock(), self.policy)
                # Reads and the smoke test happen here, between decisions; each ends in the step's next action.
                current, action = self.progressive.prepare(current, action, seen, gateway, deadline)
            except (LeaseLost, StaleRollout):
                raise
            except Exception as err:
                # One bad row (a hand edit, a tag the rules never met) fails its own rollout, not the endpoint.
                logger.exception("rollout %s/%s: deciding its next step raised", endpoint, current.plan.deployment)
                action = Fail(f"internal error while deciding the next step: {type(err).__name__}: {err}")
            if wrote and isinstance(action, (*WRITE_ACTIONS, RollBack)):
                action = Wait("another write went to this endpoint in this pass")
            if isinstance(action, (SetTraffic, RollBack)) and self._lease is not None and self._lease.record.drift:
                action = Wait(
                    "traffic drifted from the app's split (changed outside the app); no traffic write until "
                    "an operator action or a new rollout on this endpoint (docs/operations.md)"
                )
            if self.deps.settings.deploy_mode == "hold" and isinstance(action, (*WRITE_ACTIONS, RollBack)):
                action = Wait("DEPLOY_MODE=hold: no writes to Azure ML; the rollout resumes here when set to apply")
            with telemetry.step_span(current, action, siblings) as step_done:
                updated = self._apply(current, action, view, gateway)
                step_done(updated)
            wrote = wrote or bool(updated.actions != current.actions)
            rollouts[updated.plan.deployment] = updated
            lines.append(f"{updated.plan.deployment}: {updated.state.value} ({updated.reason})")
            applied = (
                updated.actions != current.actions
                if isinstance(action, (SetTraffic, RollBack))
                else updated.state is not current.state
            )
            if isinstance(action, (SetTraffic, Finish)) and action.retire and applied:
                self._retire(rollouts, action.retire, updated)
        if time.monotonic() <= deadline and self.deps.settings.deploy_mode != "hold":
            lines.extend(self._cleanup(rollouts, view, gateway, wrote))
        return lines

    def _retire(self, rollouts: dict[str, Rollout], names: tuple[str, ...], by: Rollout) -> None:
        """Mark the earlier canaries and mirrors that ``by``'s traffic write retired as superseded."""
        for name, rollout in list(rollouts.items()):
            if name.lower() in names and rollout.state in RETIRABLE_STATES:
                reason = f"retired: version {by.plan.model_version} ({by.plan.deployment}) took over its traffic"
                rollouts[name] = self._transition(rollout, State.SUPERSEDED, reason, self.deps.clock())

    def _cleanup(
        self, rollouts: dict[str, Rollout], view: EndpointView | None, gateway: AzureMl, wrote: bool
    ) -> list[str]:
        """Best-effort cleanup owed after rollouts ended: at most one delete per pass, never in a pass that wrote.

        Its failure is reported once (a warning and an ``AmlEvents.Rollout.CleanupFailed`` notification) and retried
        with back-off; it never changes a rollout's state and never holds the endpoint's write turn.
        """
        now = self.deps.clock()
        owed = sorted((r for r in rollouts.values() if r.cleanup is not None), key=lambda r: r.updated_at)
        if not owed or not _cleanup_due(owed, now):
            return []
        if wrote:
            return ["cleanup: next pass (a write went to this endpoint in this pass)"]
        decision = cleanup_step(view, list(rollouts.values()), self.policy)
        if isinstance(decision, Wait):
            return [f"cleanup: {decision.reason}"]
        carrier, others = owed[-1], owed[:-1]
        for rollout in others:  # one row carries what is owed
            rollouts[rollout.plan.deployment] = self.ledger.save(replace(rollout, cleanup=None), now)
        if isinstance(decision, Nothing):
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=None), now)
            return []
        assert isinstance(decision, Delete)
        self._fence()  # a delete is a write: only under a lease this instance still holds
        try:
            gateway.delete_deployment(carrier.plan.endpoint, decision.deployment)
        except Exception as err:
            return [self._cleanup_failed(rollouts, carrier, decision, err, now)]
        logger.info("endpoint %s cleanup: %s", carrier.plan.endpoint, decision.reason)
        self.follow_up_after("delete")
        sent = f"DELETE deployment {decision.deployment}"
        rollouts[carrier.plan.deployment] = self.ledger.save(
            replace(carrier, actions=(*carrier.actions, sent), cleanup=Cleanup()), now
        )
        return [f"cleanup: {decision.reason}"]

    def _cleanup_failed(
        self, rollouts: dict[str, Rollout], carrier: Rollout, decision: Delete, err: Exception, now: dt.datetime
    ) -> str:
        endpoint, owed = carrier.plan.endpoint, carrier.cleanup or Cleanup()
        error = f"{describe_error(err)}"[:2000]
        if status_code_of(err) == 409:
            logger.info("endpoint %s cleanup: AML answered 409 (busy) to %s; next tick", endpoint, decision.reason)
            return f"cleanup: waiting, AML answered 409 to DELETE {decision.deployment}"
        attempts = owed.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error(
                "endpoint %s cleanup gave up after %d attempts to delete %s; delete it by hand: %s",
                endpoint,
                attempts,
                decision.deployment,
                error,
            )
            rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=None), now)
            return f"cleanup: gave up deleting {decision.deployment} after {attempts} attempts: {error}"
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
        if attempts == 1:
            logger.warning(
                "endpoint %s cleanup: deleting %s failed, retrying with back-off (the rollouts are unaffected): %s",
                endpoint,
                decision.deployment,
                error,
            )
            self._send(cleanup_failed_notification(carrier, decision.deployment, error, self._status_host), carrier)
        else:
            logger.info("endpoint %s cleanup attempt %d failed: %s", endpoint, attempts, error)
        owed = Cleanup(attempts=attempts, next_attempt_at=now + delay, last_error=error)
        rollouts[carrier.plan.deployment] = self.ledger.save(replace(carrier, cleanup=owed), now)
        return f"cleanup: deleting {decision.deployment} failed (attempt {attempts}), retrying after {delay}: {error}"

    def _judge(
        self, view: EndpointView | None, gateway: AzureMl, rollouts: dict[str, Rollout], due: list[Rollout]
    ) -> tuple[Verdict | None, list[str]]:
        """Compare the observed split with the app's intents: confirm, restore after a late write, or flag drift."""
        lease, now = self._lease, self.deps.clock()
        assert lease is not None
        if view is None or view.busy_reason:
            return None, []  # an endpoint being updated shows a split in flux; judge it when it is idle
        endpoint = view.name
        verdict = intent_rules.judge(view.traffic, view.mirror_traffic, lease.record.intents, now)
        observed = intent_rules.describe(view.traffic, view.mirror_traffic)
        drift = lease.record.drift
        if verdict.kind == "landed" and verdict.matched:
            logger.info("endpoint %s: the app's write #%d landed: %s", endpoint, verdict.matched.seq, observed)
            intents = intent_rules.with_status(lease.record.intents, verdict.matched.seq, intent_rules.LANDED)
            self._lease = self.ledger.update_lease(lease, now, intents=intents, drift=None)
            return verdict, []
        if verdict.kind == "late" and verdict.matched and verdict.current:
            return verdict, [self._restore(view, verdict, gateway, rollouts)]
        if verdict.kind == "ours" and drift:
            logger.info("endpoint %s: traffic is back at the app's split (%s); drift cleared", endpoint, observed)
            self._lease = self.ledger.update_lease(lease, now, drift=None)
            return verdict, [f"{endpoint}: traffic back at the app's split; drift cleared"]
        if verdict.kind != "drift" or verdict.current is None:
            return verdict, []
        since = dt.datetime.fromisoformat(str(drift["at"])) if drift else None
        # A new rollout, or an operator's action, after the drift is the go-ahead (issue 10 §14, issue 11 §5).
        newer = [r for r in due if since and (r.created_at > since or _acted_since(r, since))]
        if newer:
            # A new rollout after the drift is the go-ahead: it starts from the split as it is now.
            adopted = intent_rules.new_intent(
                lease.record.intents, lease.token, "", view.traffic, view.mirror_traffic, now, intent_rules.ADOPTED
            )
            self._lease = self.ledger.update_lease(
                lease, now, intents=(*lease.record.intents, adopted)[-intent_rules.INTENT_LIMIT :], drift=None
            )
            logger.info("endpoint %s: drift cleared by the new rollout %s", endpoint, newer[0].plan.deployment)
            return verdict, [f"{endpoint}: drift cleared by the new rollout {newer[0].plan.deployment}"]
        if drift:
            return verdict, [f"{endpoint}: traffic drifted ({observed}); left alone"]
        intended = intent_rules.describe(verdict.current.traffic, verdict.current.mirror)
        # The change happened after the last observation: a rollout recorded since then is a new one.
        since = lease.record.observed_at or now
        flagged = {
            "at": since.isoformat(),
            "seenAt": now.isoformat(),
            "observed": verdict.observed,
            "intended": verdict.current.as_json(),
        }
        self._lease = self.ledger.update_lease(lease, now, drift=flagged)
        reason = (
            f"traffic drifted: AML shows {observed}, the app set {intended}; the app leaves this endpoint's "
            "traffic alone until an operator action or a new rollout"
        )
        logger.warning("endpoint %s: %s", endpoint, reason)
        self.notify_endpoint(lease.workspace_id, endpoint, "AmlEvents.Rollout.TrafficDrift", "warning", reason, flagged)
        return verdict, [f"{endpoint}: {reason}"]

    def _restore(self, view: EndpointView, verdict: Verdict, gateway: AzureMl, rollouts: dict[str, Rollout]) -> str:
        """A superseded write of the app landed late: put the current split back (the one traffic write
        the app sends on an endpoint whose split it did not just set itself)."""
        assert verdict.current is not None and verdict.matched is not None and self._lease is not None
        current, stale, now = verdict.current, verdict.matched, self.deps.clock()
        endpoint = view.name
        self._lease = self.ledger.update_lease(
            self._lease, now, intents=intent_rules.with_status(self._lease.record.intents, stale.seq, "landed")
        )
        reason = (
            f"restored traffic {intent_rules.describe(current.traffic, current.mirror)} after the app's own "
            f"earlier write #{stale.seq} ({intent_rules.describe(stale.traffic, stale.mirror)}, lease token "
            f"{stale.token}) landed late"
        )
        logger.warning("endpoint %s: %s", endpoint, reason)
        self._send_traffic(gateway, endpoint, "", current.traffic, current.mirror)
        owner = rollouts.get(current.by) if current.by else None
        if owner is not None:
            try:
                restored = f"PUT endpoint {endpoint} {reason}"
                self.ledger.save(
                    replace(owner, reason=f"{owner.reason}; {reason}"[-2000:], actions=(*owner.actions, restored)), now
                )
            except StaleRollout:
                logger.info("rollout %s/%s changed meanwhile; its reason is left as is", endpoint, current.by)
        facts = {"restored": current.as_json(), "late": stale.as_json()}
        self.notify_endpoint(
            self._lease.workspace_id if self._lease else "",
            endpoint,
            "AmlEvents.Rollout.TrafficRestored",
            "warning",
            reason,
            facts,
        )
        return f"{endpoint}: {reason}"

    def _fence(self, intent: Intent | None = None) -> None:
        """Before every ARM write: renew the lease (recording ``intent`` with it), or raise ``LeaseLost``."""
        assert self._lease is not None, "writes are sent only under the endpoint's lease"
        self._lease = self.ledger.renew_lease(self._lease, self.deps.clock(), self.lease_seconds, intent)

    def _send_traffic(
        self, gateway: AzureMl, endpoint: str, by: str, traffic: Mapping[str, int], mirror: Mapping[str, int]
    ) -> None:
        """Record the split as an intent under a renewed lease, send it, then record AML's answer."""
        assert self._lease is not None
        now = self.deps.clock()
        intent = intent_rules.new_intent(self._lease.record.intents, self._lease.token, by, traffic, mirror, now)
        self._fence(intent)
        try:
            gateway.set_traffic(endpoint, traffic, mirror)
            self.follow_up_after("traffic")
        except Exception as err:
            if status_code_of(err) is not None:  # answered: never applied
                self._settle(intent, intent_rules.REFUSED)
            raise  # unanswered: it stays in doubt, and the endpoint is watched until it is not
        self._settle(intent, intent_rules.ACCEPTED)

    def _settle(self, intent: Intent, status: str) -> None:
        assert self._lease is not None
        self._lease = self.ledger.settle_intent(self._lease, intent.seq, status, self.deps.clock())

    def _apply(self, rollout: Rollout, action: Action, view: EndpointView | None, gateway: AzureMl) -> Rollout:
        plan, now = rollout.plan, self.deps.clock()
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        try:
            if isinstance(action, Nothing):
                return rollout
            if isinstance(action, Wait):
                logger.info("%s waits: %s", label, action.reason)
                if rollout.reason == action.reason and rollout.denied_since is None:
                    return rollout
                return self.ledger.save(replace(rollout, reason=action.reason, denied_since=None), now)
            if isinstance(action, (StartBake, Extend, Hold, RollBack)):
                applied = self.progressive.apply(rollout, action, gateway, now)
                if isinstance(action, (StartBake, Extend)):
                    self._follow_bake(applied, now)
                return applied
            if isinstance(action, Evaluate):
                return self.ledger.save(replace(rollout, reason=action.reason), now)
            if isinstance(action, WRITE_ACTIONS):
                rollout = self._claim_turn(rollout, now, view)
                try:
                    sent = self._write(action, rollout, gateway, now)
                except Exception as err:
                    if status_code_of(err) is not None or not is_retryable(err):
                        raise
                    return self._unanswered(rollout, err, now)
                logger.info("%s sent %s", label, sent)
                retry = getattr(action, "retry", "")
                if isinstance(action, SetTraffic):
                    rollout = self.progressive.stepped(rollout, action, now)
                return self.ledger.save(
                    replace(
                        rollout,
                        reason=f"sent {sent}",
                        actions=(*rollout.actions, sent),
                        retries=(*rollout.retries, retry) if retry else rollout.retries,
                        attempts=0,
                        next_attempt_at=None,
                        last_error="",
                        error_source="",
                        denied_since=None,
                    ),
                    now,
                )
            if isinstance(action, Finish):
                progress = replace(rollout.progress, requested="", paused=False)
                if action.gate is not None:
                    progress = replace(progress, gate=action.gate.as_dict())
                facts = {"gate": action.gate.as_dict()} if action.gate is not None else None
                return self._transition(
                    replace(
                        rollout, attempts=0, next_attempt_at=None, last_error="", denied_since=None, progress=progress
                    ),
                    action.state,
                    action.reason,
                    now,
                    facts=facts,
                )
            if isinstance(action, Fail):
                return self._fail(rollout, action, gateway, now)
            raise AssertionError(f"unhandled action {action!r}")
        except (LeaseLost, StaleRollout):
            raise  # not this rollout's failure: the pass stops and the next one decides afresh
        except EndpointNameTaken as err:
            # Not a failure of the rollout but of its plan: the user must choose another endpoint name.
            logger.error("%s rejected: %s", label, err)
            return self._transition(replace(rollout, last_error=str(err)), State.REJECTED, str(err), now)
        except Exception as err:
            return self._failed_attempt(rollout, err, now)

    def _follow_bake(self, rollout: Rollout, now: dt.datetime) -> None:
        """A bake started or was extended: look again when it ends, not at the timer tick after that."""
        started = rollout.progress.bake_started_at
        if started is None or rollout.plan.bake_seconds <= 0 or self.deps.followups is None:
            return
        ends = bake_deadline(started, dt.timedelta(seconds=rollout.plan.bake_seconds), rollout.progress.extensions)
        self.follow_up_after("bake", max(0.0, (ends - now).total_seconds()), reason=f"bake end {ends.isoformat()}")

    def _write(self, action: Action, rollout: Rollout, gateway: AzureMl, now: dt.datetime) -> str:
        plan = rollout.plan
        if isinstance(action, SetTraffic):
            self._send_traffic(gateway, plan.endpoint, plan.deployment, action.traffic, action.mirror)
            return f"PUT endpoint {plan.endpoint} {action.reason}"
        self._fence()
        if isinstance(action, CreateEndpoint):
            gateway.create_endpoint(plan.endpoint)
            self.follow_up_after("endpoint")
            return f"PUT endpoint {plan.endpoint}"
        assert isinstance(action, CreateDeployment)
        gateway.create_deployment(plan, now)
        self.follow_up_after("deployment")
        return f"PUT deployment {plan.deployment} ({plan.instance_count} x {plan.instance_type})"

    def _unanswered(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
        """A write sent without an answer may have landed: no back-off, the next tick observes and decides."""
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            return self._failed_attempt(rollout, err, now)
        error = f"{type(err).__name__}: {err}"[:2000]
        logger.warning(
            "rollout %s/%s: a write got no answer (%s); the next tick observes what AML did",
            rollout.plan.endpoint,
            rollout.plan.deployment,
            error,
        )
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=None,
                last_error=error,
                reason="a write got no answer in time; its outcome is observed next tick",
            ),
            now,
        )

    def _claim_turn(self, rollout: Rollout, now: dt.datetime, view: EndpointView | None) -> Rollout:
        if rollout.state in (State.DEPLOYING, State.BAKING):
            return rollout
        # The split a rollback returns to: the endpoint's as the rollout takes its write turn (issue 11 §4).
        before = replace(
            rollout.progress,
            before_traffic=view.live_traffic() if view else {},
            before_mirror=view.live_mirror() if view else {},
        )
        return self._transition(
            replace(rollout, turn_taken_at=now, progress=before),
            State.DEPLOYING,
            "started: holds the endpoint's write turn",
            now,
        )

    def _fail(self, rollout: Rollout, action: Fail, gateway: AzureMl, now: dt.datetime) -> Rollout:
        plan, logs = rollout.plan, ""
        if action.fetch_logs:
            try:
                logs = gateway.get_logs(plan.endpoint, plan.deployment)
            except Exception as err:
                logs = f"(container logs unavailable: {type(err).__name__}: {err})"
        smoke = rollout.progress.smoke
        failed_smoke = smoke is not None and not smoke.get("passed")
        return self._transition(
            replace(rollout, logs=logs, progress=replace(rollout.progress, requested="", paused=False)),
            State.FAILED,
            action.reason,
            now,
            kind=SMOKE_FAILED if failed_smoke else "",
            facts={"smoke": dict(smoke)} if failed_smoke and smoke is not None else None,
        )

    def _failed_attempt(self, rollout: Rollout, err: Exception, now: dt.datetime) -> Rollout:
        plan, status = rollout.plan, status_code_of(err)
        error = f"{type(err).__name__}: {err}"[:2000]
        source, described = error_source(err), describe_error(err)[:2000]
        label = f"rollout {plan.endpoint}/{plan.deployment}"
        if status == 409 and source == "azureml":
            # One operation at a time per endpoint: a 409 is waited out, never failed on.
            logger.info("%s: AML answered 409 (busy); will try again next tick", label)
            return self.ledger.save(replace(rollout, reason="waiting: AML answered 409 Conflict (busy)"), now)
        rollout = replace(rollout, last_error=error, error_source=source)
        problem = permission_problem(err)
        if problem:
            return self._denied(rollout, problem, now)
        if not is_retryable(err):
            logger.error("%s failed permanently: %s", label, error)
            return self._transition(rollout, State.FAILED, described, now)
        attempts = rollout.attempts + 1
        if attempts >= self.deps.settings.rollout_max_attempts:
            logger.error("%s failed after %d attempts: %s", label, attempts, error)
            return self._transition(
                replace(rollout, attempts=attempts),
                State.FAILED,
                f"gave up after {attempts} failed attempts: {described}",
                now,
            )
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
        logger.warning("%s attempt %d failed, retrying after %s: %s", label, attempts, delay, error)
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=now + delay,
                reason=f"retrying after a transient error (attempt {attempts}): {described}",
            ),
            now,
        )

    def _denied(self, rollout: Rollout, problem: str, now: dt.datetime) -> Rollout:
        """A permission or identity error: wait (a role assignment takes minutes to apply), within a budget."""
        label = f"rollout {rollout.plan.endpoint}/{rollout.plan.deployment}"
        since = rollout.denied_since or now
        budget = dt.timedelta(minutes=self.deps.settings.permission_retry_minutes)
        if now - since >= budget:
            minutes = self.deps.settings.permission_retry_minutes
            logger.error("%s failed: permission denied for %d minutes: %s", label, minutes, problem)
            return self._transition(
                replace(rollout, denied_since=since),
                State.FAILED,
                f"permission denied for {minutes} minutes (PERMISSION_RETRY_MINUTES), giving up: {problem}",
                now,
            )
        attempts = rollout.attempts + 1
        delay = min(BACKOFF_BASE * 2 ** (attempts - 1), PERMISSION_BACKOFF_CAP, since + budget - now)
        logger.warning("%s waits for a permission, retrying after %s: %s", label, delay, problem)
        return self.ledger.save(
            replace(
                rollout,
                attempts=attempts,
                next_attempt_at=now + delay,
                denied_since=since,
                reason=f"waiting for a permission until {(since + budget).isoformat()}: {problem}",
            ),
            now,
        )

    def _transition(
        self,
        rollout: Rollout,
        state: State,
        reason: str,
        now: dt.datetime,
        *,
        kind: str = "",
        facts: Mapping[str, object] | None = None,
    ) -> Rollout:
        if state.terminal and rollout.cleanup is None:
            rollout = replace(rollout, cleanup=Cleanup())  # whatever it leaves behind is cleaned up after it
        saved = self.ledger.save(replace(rollout, state=state, reason=reason), now)
        telemetry.rollout_transitioned(saved, now)
        logger.info("rollout %s/%s is now %s: %s", rollout.plan.endpoint, rollout.plan.deployment, state.value, reason)
        self.notify(saved, state, reason, kind=kind, facts=facts)
        return saved

    def notify_endpoint(
        self, workspace_id: str, endpoint: str, kind: str, severity: str, reason: str, facts: Mapping[str, object]
    ) -> None:
        """An endpoint-level notification (drift, a restored split). Its failure is reported, never raised."""
        try:
            self.deps.notifier.send(
                endpoint_notification(
                    workspace_id, endpoint, kind, severity, reason, facts, status_host=self.deps.settings.status_host
                )
            )
        except Exception as err:
            logger.error("notification %s for endpoint %s failed: %s", kind, endpoint, err)

    def notify(
        self,
        rollout: Rollout,
        state: State,
        reason: str,
        *,
        kind: str = "",
        facts: Mapping[str, object] | None = None,
        occurrence: str = "",
    ) -> None:
        """Send the transition's notification. Its failure is reported, and never undoes the transition."""
        self._send(
            rollout_notification(
                rollout,
                state,
                reason,
                rollout.logs,
                status_host=self._status_host,
                kind=kind,
                facts=facts,
                occurrence=occurrence,
            ),
            rollout,
        )

    @property
    def _status_host(self) -> str:
        return self.deps.settings.status_host

    def _send(self, notification: Notification, rollout: Rollout) -> None:
        try:
            self.deps.notifier.send(notification)
        except Exception as err:
            logger.error(
                "notification %s for rollout %s/%s failed: %s",
                notification.type,
                rollout.plan.endpoint,
                rollout.plan.deployment,
                err,
            )


def _acted_since(rollout: Rollout, since: dt.datetime) -> bool:
    """Did an operator act on ``rollout`` after ``since``?"""
    return any(dt.datetime.fromisoformat(str(h.get("at"))) > since for h in rollout.progress.history if h.get("at"))


def _cleanup_due(rollouts: Iterable[Rollout], now: dt.datetime) -> bool:
    """Is cleanup owed by any of ``rollouts`` and not backing off?"""
    owed = [r.cleanup for r in rollouts if r.cleanup is not None]
    return bool(owed) and all(not c.next_attempt_at or now >= c.next_attempt_at for c in owed)
