"""What the rules of a rollout choose (pure data): one action per decision; ``transition`` turns it into a record
and effects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.rollout.decide.gate import GateResult
from app.rollout.decide.model import State


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class CreateEndpoint:
    reason: str = "endpoint does not exist"


@dataclass(frozen=True)
class CreateDeployment:
    reason: str = "deployment does not exist"
    retry: str = ""  # "deployment": this PUT is the one retry of a Canceled deployment


@dataclass(frozen=True)
class SetTraffic:
    """PUT the endpoint with this live and mirror traffic. ``retire`` names the earlier canaries and mirrors of the
    same model whose share this write takes away (their rollouts become superseded). ``retry`` "endpoint": this PUT
    is the one re-PUT of a Failed endpoint, traffic unchanged."""

    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    reason: str = ""
    retire: tuple[str, ...] = ()
    retry: str = ""
    step: int | None = None  # the plan step this write sets (recorded on the row); None: not a step's write
    smoke: bool = False  # smoke-test the new deployment first; if it fails, this write is never sent
    gate: GateResult | None = None  # the passed gate this step's promotion rests on
    approval: bool = False  # the first traffic of a rollout that needs approval: await it instead (after the smoke)


@dataclass(frozen=True)
class Finish:
    """Mark the rollout ``state``. ``retire``: as for ``SetTraffic`` (already out of traffic)."""

    state: State
    reason: str
    retire: tuple[str, ...] = ()
    gate: GateResult | None = None


@dataclass(frozen=True)
class StartBake:
    """The step's traffic is in place: the rollout is ``baking`` and this step's bake starts now (no write).
    ``retire``: the earlier canaries and mirrors of the same model that split leaves out (as for ``SetTraffic``)."""

    step: int
    reason: str
    retire: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluate:
    """The bake is over: read the window's metrics and decide again with the gate's result (reads only)."""

    reason: str


@dataclass(frozen=True)
class Extend:
    """An inconclusive gate: bake longer (``extensions`` used after this), keeping the evidence (no write)."""

    extensions: int
    reason: str
    gate: GateResult


@dataclass(frozen=True)
class Hold:
    """Stay at this step until an operator acts (GATE_INCONCLUSIVE=hold); the evidence is kept (no write)."""

    reason: str
    gate: GateResult


@dataclass(frozen=True)
class RollBack:
    """One traffic write back to the split recorded when the rollout took its write turn, then ``rolled_back``."""

    traffic: Mapping[str, int]
    mirror: Mapping[str, int]
    reason: str
    gate: GateResult | None = None


@dataclass(frozen=True)
class Fail:
    """Mark the rollout failed. Traffic is untouched; container logs are fetched when there is a deployment.
    Nothing is written: the failed deployment is left to cleanup (``cleanup_step``)."""

    reason: str
    fetch_logs: bool = False


@dataclass(frozen=True)
class Stuck:
    """Nothing the app may do helps (the split to roll back to is gone, the endpoint is no longer the app's): wait for
    an operator, and say so once, as an error."""

    reason: str


@dataclass(frozen=True)
class DropRequest:
    """An operator's request on an ended rollout that cannot be carried out: cleared, and reported as an error."""

    reason: str


@dataclass(frozen=True)
class Delete:
    """Cleanup: delete this surplus deployment of the app's own (one per pass, best effort)."""

    deployment: str
    reason: str


@dataclass(frozen=True)
class AwaitApproval:
    """The deployment is warm and its smoke test passed, no traffic moved: wait for an operator's decision."""

    reason: str


@dataclass(frozen=True)
class Approved:
    """An operator approved it: queue for the endpoint's write turn again, then take the first traffic step."""

    reason: str


@dataclass(frozen=True)
class Nothing:
    reason: str = "rollout is finished"


Action = (
    Wait | CreateEndpoint | CreateDeployment | SetTraffic | Finish | Fail | Nothing | StartBake | Evaluate | Extend
) | (Hold | RollBack | Stuck | DropRequest | AwaitApproval | Approved)
WRITE_ACTIONS = (CreateEndpoint, CreateDeployment, SetTraffic)
