"""The app's own traffic writes, recorded before they are sent, and what an observed split means against them (pure).

A write that timed out may still land, after a newer decision (a write on the wire can't be fenced). So
each traffic split is recorded as an intent first; an observation is then one of: the app's current
split (``ours``), a write of the app that was in doubt and has landed in order (``landed``) or late,
after a newer one (``late``: restore the current split), or a split the app never sent (``drift``:
report it and leave the endpoint's traffic alone). Rules and examples: docs/rollout.md, "Fencing".
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: Intents kept per endpoint (oldest dropped first).
INTENT_LIMIT = 20
#: How long a write without an answer may still land. ARM answers or drops a request within minutes;
#: beyond this an unanswered write no longer counts as the app's own when it is seen.
LATE_WRITE_WATCH = dt.timedelta(minutes=15)

SENT = "sent"  # recorded, then sent; no answer yet (or none ever: in doubt)
ACCEPTED = "accepted"  # AML answered 2xx: applied in order
REFUSED = "refused"  # AML answered an error: never applied
LANDED = "landed"  # was in doubt, and an observation showed it
ADOPTED = "adopted"  # an observed split the app took over (a new rollout after drift)
#: An intent in one of these states can be the endpoint's current split.
CURRENT_STATUSES = frozenset({ACCEPTED, LANDED, ADOPTED})

Shares = tuple[tuple[str, int], ...]


def shares(traffic: Mapping[str, int]) -> Shares:
    """Non-zero shares keyed by lower-cased deployment name, sorted: how two splits are compared."""
    return tuple(sorted((str(name).lower(), int(pct)) for name, pct in traffic.items() if int(pct)))


@dataclass(frozen=True)
class Intent:
    """One traffic split the app decided to set on an endpoint, and what became of it."""

    seq: int
    token: int  # the lease token of the instance that sent it
    by: str  # the deployment whose rollout asked for it; "" for a restore or an adoption
    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    at: str  # ISO 8601, when it was recorded
    status: str = SENT

    @property
    def split(self) -> tuple[Shares, Shares]:
        return shares(self.traffic), shares(self.mirror)

    def in_doubt(self, now: dt.datetime) -> bool:
        """Sent without an answer, recently enough that it may still land."""
        return self.status == SENT and now - dt.datetime.fromisoformat(self.at) < LATE_WRITE_WATCH

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "token": self.token,
            "by": self.by,
            "traffic": dict(self.traffic),
            "mirror": dict(self.mirror),
            "at": self.at,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Intent:
        return cls(
            seq=int(data["seq"]),
            token=int(data.get("token") or 0),
            by=str(data.get("by") or ""),
            traffic={str(k): int(v) for k, v in (data.get("traffic") or {}).items()},
            mirror={str(k): int(v) for k, v in (data.get("mirror") or {}).items()},
            at=str(data["at"]),
            status=str(data.get("status") or SENT),
        )


def encode_intents(intents: Sequence[Intent]) -> str:
    return json.dumps([intent.as_json() for intent in intents[-INTENT_LIMIT:]])


def decode_intents(text: str) -> tuple[Intent, ...]:
    return tuple(Intent.from_json(item) for item in json.loads(text or "[]"))


def new_intent(
    intents: Sequence[Intent],
    token: int,
    by: str,
    traffic: Mapping[str, int],
    mirror: Mapping[str, int],
    now: dt.datetime,
    status: str = SENT,
) -> Intent:
    seq = max((intent.seq for intent in intents), default=0) + 1
    return Intent(seq, token, by, dict(traffic), dict(mirror), now.isoformat(), status)


def with_status(intents: Sequence[Intent], seq: int, status: str) -> tuple[Intent, ...]:
    return tuple(replace(intent, status=status) if intent.seq == seq else intent for intent in intents)


def current(intents: Sequence[Intent]) -> Intent | None:
    """The split the app currently wants: its newest write known to be applied (or adopted)."""
    return max((i for i in intents if i.status in CURRENT_STATUSES), key=lambda i: i.seq, default=None)


def watching(intents: Sequence[Intent], now: dt.datetime) -> bool:
    """Is a write of the app still in doubt? Then the endpoint is observed every tick until it is not."""
    return any(intent.in_doubt(now) for intent in intents)


@dataclass(frozen=True)
class Verdict:
    """What an observed split is. ``kind``: none | ours | landed | late | drift."""

    kind: str
    current: Intent | None = None
    matched: Intent | None = None  # landed/late: the app's write that the observation shows
    observed: Mapping[str, Any] = field(default_factory=dict)


def judge(
    traffic: Mapping[str, int], mirror: Mapping[str, int], intents: Sequence[Intent], now: dt.datetime
) -> Verdict:
    """Compare an observed split (of an idle endpoint) with the app's intents.

    - ``ours``: it is the current split.
    - ``landed``: it is an in-doubt write of the app newer than the current split: it landed in order.
    - ``late``: it is an in-doubt write older than the current split: it landed after a newer decision,
      so the current split must be restored.
    - ``drift``: the app never sent it (or sent it and was answered long ago): someone else set it.
    - ``none``: the app has no current split on this endpoint yet, so nothing to compare with.
    """
    seen = (shares(traffic), shares(mirror))
    observed = {"traffic": dict(seen[0]), "mirror": dict(seen[1])}
    now_split = current(intents)
    if now_split is not None and seen == now_split.split:
        return Verdict("ours", now_split, observed=observed)
    doubtful = [i for i in intents if i.in_doubt(now) and i.split == seen]
    if doubtful:
        matched = max(doubtful, key=lambda i: i.seq)
        if now_split is None or matched.seq > now_split.seq:
            return Verdict("landed", now_split, matched, observed)
        return Verdict("late", now_split, matched, observed)
    if now_split is None:
        return Verdict("none", observed=observed)
    return Verdict("drift", now_split, observed=observed)


def intended(intents: Sequence[Intent], now: dt.datetime) -> frozenset[str]:
    """The deployments the app's current split, or a traffic write of its still in doubt, gives a share to."""
    splits = [intent for intent in intents if intent.in_doubt(now)]
    now_split = current(intents)
    if now_split is not None:
        splits.append(now_split)
    return frozenset(name for intent in splits for name, pct in (*intent.split[0], *intent.split[1]) if pct)


def to_restore(verdict: Verdict, writes: bool) -> Intent | None:
    """After a late write of the app's (``late``): the split to put back, in this pass's one write. None when there is
    nothing to restore, or while writes are held (``DEPLOY_MODE=hold``): the restore waits like every write (and once
    the late write is no longer in doubt, the split it left is reported as drift instead)."""
    if verdict.kind != "late" or verdict.current is None or verdict.matched is None or not writes:
        return None
    return verdict.current


def describe(traffic: Mapping[str, int], mirror: Mapping[str, int] | None = None) -> str:
    live = ", ".join(f"{name}={pct}%" for name, pct in shares(traffic)) or "none"
    mirrored = ", ".join(f"{name}={pct}%" for name, pct in shares(mirror or {}))
    return live + (f"; mirror {mirrored}" if mirrored else "")
