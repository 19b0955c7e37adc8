"""What a failure means for a rollout and its traffic, in one place (pure).

- A 409 is waited out, never counted. A write without an answer may have landed: it is observed next pass.
  Transient errors back off (30 s, 1, 2, 4 … 10 minutes) and count; a missing permission is waited for within
  ``PERMISSION_RETRY_MINUTES``. The endpoint's name taken rejects the plan.
- What no retry fixes (or retries used up): a rollout that moved no traffic fails. One that did is rolled back,
  and the rollback itself, or a read of the endpoint, is tried again at the back-off's cap for as long as it takes
  (reported once as an error): after traffic moved a rollout ends only promoted, rolled back or aborted.
- A metric read that fails is read again with back-off; an outage longer than ``GATE_MAX_EXTENSIONS`` bakes (at
  least one) is an inconclusive gate with the extensions used up, and ``GATE_INCONCLUSIVE`` decides.
- Container logs that cannot be fetched are noted in their place; nothing waits for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from app.rollout.decide import effects as fx
from app.rollout.decide.effects import Answer, Decision, Notice, Notify, Purpose
from app.rollout.decide.failures import BACKOFF_CAP, PERMISSION_BACKOFF_CAP, ErrorKind, Failure, backoff_delay
from app.rollout.decide.gate import GateEvidence, GateResult, Outcome
from app.rollout.decide.model import Rollout
from app.rollout.decide.moves import changed, waited
from app.rollout.decide.policy import Policy
from app.rollout.decide.seen import Observation
from app.rollout.decide.step import traffic_moved
from app.rollout.decide.table import Trigger

BUSY = "waiting: AML answered 409 Conflict (busy)"
UNANSWERED = "a write got no answer in time; its outcome is observed next tick"


def might_serve(rollout: Rollout, seen: Observation) -> bool:
    """May the new deployment be serving? As the rules judge it, as the app's own split says (a write answered but not
    recorded, or one still in doubt), or, unobserved, as the last pass saw the split."""
    me = rollout.plan.deployment.lower()
    if traffic_moved(rollout, seen.endpoint) or me in seen.intended:
        return True
    last = {name.lower() for name, pct in seen.last_traffic.items() if pct}
    return not seen.observed and me in last


def after_failure(rollout: Rollout, seen: Observation, answer: Answer, policy: Policy, now: dt.datetime) -> Decision:
    """The record after ``answer``'s request failed."""
    request, failure = answer.request, answer.failure
    assert failure is not None
    if isinstance(request, fx.FetchLogs):
        return Decision(replace(rollout, logs=f"(container logs unavailable: {failure.detail})"), again=True)
    if isinstance(request, fx.ReadMetrics):
        return _metrics_down(rollout, seen, failure, policy, now)
    if failure.kind is ErrorKind.BUSY:
        return waited(rollout, BUSY)
    failed = replace(rollout, last_error=failure.error, error_source=failure.source)
    if failure.kind is ErrorKind.NAME_TAKEN:
        record, notes = changed(failed, Trigger.NAME_TAKEN, failure.detail)
        return Decision(record, notes, Trigger.NAME_TAKEN)
    if failure.kind is ErrorKind.DENIED:
        return _denied(failed, seen, request, failure, policy, now)
    if failure.kind is ErrorKind.NO_ANSWER and request.writes:
        return _unanswered(failed, seen, request, failure, policy, now)
    if failure.kind in (ErrorKind.TRANSIENT, ErrorKind.NO_ANSWER):
        return _transient(failed, seen, request, failure, policy, now)
    return give_up(failed, seen, request, failure.detail, policy, now)


def broken(rollout: Rollout, seen: Observation, failure: Failure, policy: Policy, now: dt.datetime) -> Decision:
    """Deciding the next step raised (a bug, a row the rules never met): this rollout alone fails, or, once its
    deployment may serve, waits for an operator, reported once as an error."""
    reason = f"internal error while deciding the next step: {failure.detail}"
    failed = replace(rollout, last_error=failure.error, error_source=failure.source)
    if might_serve(rollout, seen):
        if rollout.reason == reason:
            return Decision(rollout)
        return Decision(replace(failed, reason=reason), (Notify(Notice.STUCK, reason, severity="error"),))
    record, notes = changed(failed, Trigger.GAVE_UP, reason)
    return Decision(record, notes, Trigger.GAVE_UP)


def give_up(
    rollout: Rollout, seen: Observation, request: fx.Request, reason: str, policy: Policy, now: dt.datetime
) -> Decision:
    """No retry fixes it (or retries are used up): fail, roll back, or keep trying what must not be given up."""
    if _must_persist(rollout, seen, request):
        return _persist(rollout, reason, policy, now)
    if rollout.state.terminal:  # an operator's rollback of an ended rollout: dropped, and reported
        dropped = f"rollback not carried out: {reason}; traffic left as it is"
        record = replace(rollout, reason=dropped, attempts=0, next_attempt_at=None)
        record = replace(record, progress=replace(rollout.progress, requested=""))
        return Decision(record, (Notify(Notice.STUCK, dropped, severity="error", occurrence=f"drop@{now}"),))
    if might_serve(rollout, seen):
        progress = replace(rollout.progress, requested="rollback", paused=False, held=False)
        record = replace(rollout, progress=progress, attempts=0, next_attempt_at=None, reason=f"rolling back: {reason}")
        return Decision(record)
    record, notes = changed(rollout, Trigger.GAVE_UP, reason)
    return Decision(record, notes, Trigger.GAVE_UP)


def _must_persist(rollout: Rollout, seen: Observation, request: fx.Request) -> bool:
    """The rollback of a running rollout, and reads of an endpoint it may serve on, are never given up."""
    rollback = isinstance(request, fx.PutTraffic) and request.purpose is Purpose.ROLLBACK
    if rollback:
        return not rollout.state.terminal
    return isinstance(request, fx.Observe) and might_serve(rollout, seen) and not rollout.state.terminal


def _persist(rollout: Rollout, reason: str, policy: Policy, now: dt.datetime) -> Decision:
    """Try again at the back-off's cap; say so once, as an error, when the retries a rollout gets are used up."""
    attempts = max(rollout.attempts, 1)
    record = replace(
        rollout,
        attempts=attempts,
        next_attempt_at=now + backoff_delay(attempts),
        reason=f"{reason}; tried again every {int(backoff_delay(attempts).total_seconds())} s until it works or an "
        "operator acts",
    )
    if attempts != policy.max_attempts:
        return Decision(record)
    notify = Notify(Notice.STUCK, record.reason, severity="error", occurrence=f"stuck{rollout.progress.step}")
    return Decision(record, (notify,))


def _transient(
    rollout: Rollout, seen: Observation, request: fx.Request, failure: Failure, policy: Policy, now: dt.datetime
) -> Decision:
    attempts = rollout.attempts + 1
    counted = replace(rollout, attempts=attempts)
    if attempts >= policy.max_attempts:
        return give_up(
            counted, seen, request, f"gave up after {attempts} failed attempts: {failure.detail}", policy, now
        )
    delay = backoff_delay(attempts)
    reason = f"retrying after a transient error (attempt {attempts}): {failure.detail}"
    return Decision(replace(counted, next_attempt_at=now + delay, reason=reason))


def _unanswered(
    rollout: Rollout, seen: Observation, request: fx.Request, failure: Failure, policy: Policy, now: dt.datetime
) -> Decision:
    """A write sent without an answer may have landed: no back-off, the next pass observes and decides. (A traffic
    write of the app's that lands after a newer one is put right by the endpoint's intents, ``intents.py``.)"""
    attempts = rollout.attempts + 1
    counted = replace(rollout, attempts=attempts)
    if attempts >= policy.max_attempts:
        reason = f"gave up after {attempts} failed attempts: {failure.detail}"
        return give_up(counted, seen, request, reason, policy, now)
    return Decision(replace(counted, next_attempt_at=None, reason=UNANSWERED))


def _denied(
    rollout: Rollout, seen: Observation, request: fx.Request, failure: Failure, policy: Policy, now: dt.datetime
) -> Decision:
    """A permission or identity error: wait (a role assignment takes minutes to apply), within a budget."""
    since = rollout.denied_since or now
    budget = policy.permission_wait
    problem = failure.problem or failure.detail
    if now - since >= budget:
        minutes = int(budget.total_seconds() // 60)
        reason = f"permission denied for {minutes} minutes (PERMISSION_RETRY_MINUTES), giving up: {problem}"
        return give_up(replace(rollout, denied_since=since), seen, request, reason, policy, now)
    attempts = rollout.attempts + 1
    delay = min(backoff_delay(attempts, PERMISSION_BACKOFF_CAP), since + budget - now)
    return Decision(
        replace(
            rollout,
            attempts=attempts,
            next_attempt_at=now + delay,
            denied_since=since,
            reason=f"waiting for a permission until {(since + budget).isoformat()}: {problem}",
        )
    )


def _metrics_down(rollout: Rollout, seen: Observation, failure: Failure, policy: Policy, now: dt.datetime) -> Decision:
    """Azure Monitor could not be read: read again with back-off; a long outage is an inconclusive gate."""
    progress = rollout.progress
    since = progress.reads_failing_since or now
    until = since + dt.timedelta(seconds=rollout.plan.bake_seconds) * max(1, policy.gate.max_extensions)
    failed = replace(rollout, last_error=failure.error, error_source=failure.source)
    if now >= until:
        gate = unavailable(rollout, seen, policy, now, since, failure)
        used = max(progress.extensions, policy.gate.max_extensions)
        progress = replace(progress, reads_failing_since=None, extensions=used)
        return Decision(replace(failed, attempts=0, next_attempt_at=None, progress=progress), gate=gate, again=True)
    attempts = rollout.attempts + 1
    delay = max(min(backoff_delay(attempts, BACKOFF_CAP), until - now), dt.timedelta(seconds=1))
    reason = (
        f"metrics unavailable since {since.isoformat()} ({failure.detail}); read again after "
        f"{int(delay.total_seconds())} s, inconclusive from {until.isoformat()}"
    )
    progress = replace(progress, reads_failing_since=since)
    return Decision(replace(failed, attempts=attempts, next_attempt_at=now + delay, reason=reason, progress=progress))


def unavailable(
    rollout: Rollout, seen: Observation, policy: Policy, now: dt.datetime, since: dt.datetime, failure: Failure
) -> GateResult:
    """The gate's verdict when Azure Monitor stayed unreadable: inconclusive, with no measurements."""
    plan, view = rollout.plan, seen.endpoint
    stable = sorted(name for name in (view.live_traffic() if view else {}) if name != plan.deployment.lower())
    gate, _ = policy.gate.tightened(plan.max_error_rate, plan.max_p99_ms)
    started = rollout.progress.bake_started_at or since
    evidence = GateEvidence(
        window_start=started,
        window_end=now,
        counted_until=now,
        new_deployment=plan.deployment,
        stable_deployments=tuple(stable),
        new_requests=0,
        new_errors=0,
        error_share_pct=None,
        new_p99_ms=None,
        stable_requests=0,
        stable_p99_ms=None,
        latency_ratio=None,
        baseline=False,
        max_error_rate=gate.max_error_rate,
        max_latency_ratio=gate.max_latency_ratio,
        max_p99_ms=gate.max_p99_ms,
        min_requests=gate.min_requests,
        points_used=0,
        points_outside_window=0,
        points_dropped_for_lag=0,
        notes=(f"Azure Monitor unreadable since {since.isoformat()}: {failure.detail}",),
    )
    return GateResult(Outcome.INCONCLUSIVE, (f"metrics unavailable since {since.isoformat()}",), evidence)
