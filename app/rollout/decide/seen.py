"""What the transition function sees of the world in one decision (pure data)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.rollout.decide.effects import Answer
from app.rollout.decide.model import EndpointView, Rollout


@dataclass(frozen=True)
class Observation:
    """The endpoint as observed this pass (None: it does not exist), the endpoint's other rollouts, and the pass.

    ``answer`` is what came of the request the previous decision made; ``wrote``: a write already went to the
    endpoint in this pass (one write per pass); ``drift``: the endpoint's lease row flags its split as changed outside
    the app; ``observed`` False: the endpoint could not be read (``answer`` says why, ``last_traffic`` is the split
    the last pass saw).
    """

    endpoint: EndpointView | None
    siblings: Sequence[Rollout] = field(default_factory=tuple)
    observed: bool = True
    drift: bool = False
    wrote: bool = False
    time_left: float = math.inf  # seconds left in the pass's budget (the smoke test waits at most this)
    answer: Answer | None = None
    last_traffic: Mapping[str, int] = field(default_factory=dict)
    #: Deployments the app's own split gives a share to: its current one, and any traffic write still in doubt
    #: (``intents.intended``). A rollout whose write was answered but not recorded still knows it may serve.
    intended: frozenset[str] = frozenset()
