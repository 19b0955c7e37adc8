"""What a live run creates and what it is expected to cost, printed before anything is created."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from acceptance.scenarios import Names, Scenario

#: Conservative USD per instance-hour for managed online endpoint instances (Linux, pay-as-you-go).
#: Source: the "Managed online endpoints" table of https://azure.microsoft.com/pricing/details/machine-learning/
#: and the Linux VM price list it refers to (East US list prices, about 0.073 / 0.146 / 0.293 / 0.169 USD/h),
#: as known on 2026-11-26; they could not be re-checked from the machine this was written on (no internet), so
#: each is rounded UP by a third or more. Other regions cost up to about 30% more. Set ACCEPTANCE_PRICE_PER_HOUR
#: to use your own figure.
PRICES_AS_OF = "2026-11-26"
PRICE_PER_HOUR_USD = {
    "standard_ds1_v2": 0.10,
    "standard_ds2_v2": 0.20,
    "standard_ds3_v2": 0.40,
    "standard_f2s_v2": 0.12,
    "standard_f4s_v2": 0.25,
    "standard_e2s_v3": 0.17,
}
CLEANUP_MINUTES = 10


@dataclass(frozen=True)
class Estimate:
    """Instance-hours and dollars (an upper bound: every deployment is billed for its scenario's whole duration)."""

    lines: tuple[str, ...]
    minutes: int
    dollars: float


def price_per_hour(instance_type: str, override: float | None = None) -> float | None:
    return override if override is not None else PRICE_PER_HOUR_USD.get(instance_type.lower())


def estimate(
    scenarios: Sequence[Scenario], run_id: str, instance_type: str, price: float, *, production: bool = False
) -> Estimate:
    """What each scenario creates and costs; a scenario that needs a production side and has none is skipped."""
    lines = []
    dollars, minutes = 0.0, CLEANUP_MINUTES
    for scenario in scenarios:
        names = Names(run_id, scenario.short)
        if scenario.production and not production:
            lines.append(f"  {scenario.name:<19} skipped: no production side (ACCEPTANCE_REGISTRY, ACCEPTANCE_PROD_*)")
            continue
        cost = scenario.deployments * scenario.minutes / 60 * price
        dollars += cost
        minutes += scenario.minutes
        versions = f"versions 1-{scenario.versions}" if scenario.versions > 1 else "version 1"
        creates = (
            f"model {names.model} ({versions}), endpoint {names.endpoint}, "
            f"{scenario.deployments} deployment(s) x 1 instance"
            if scenario.deployments
            else f"model {names.model} ({versions}); no endpoint, no deployment"
        )
        if scenario.production:
            creates += " (one in staging, one in production), its registry version"
        lines.append(f"  {scenario.name:<19} {creates}; ~{scenario.minutes} min, <= ${cost:.2f}")
    return Estimate(tuple(lines), minutes, dollars)
