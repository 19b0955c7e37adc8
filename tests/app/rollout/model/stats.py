"""What the model-based test explored: rules fired, states reached and faults injected, over all examples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Explored:
    examples: int = 0
    steps: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    quiesce_ticks: Counter[int] = field(default_factory=Counter)
    #: Observations that reused the deployments list kept on the endpoint's row (a traffic write's follow-up).
    lists_skipped: int = 0

    def report(self) -> str:
        def table(title: str, counts: Counter[str]) -> list[str]:
            width = max((len(key) for key in counts), default=0)
            return [f"{title} ({len(counts)}):", *(f"  {key:<{width}}  {n:>9}" for key, n in counts.most_common())]

        slowest = max(self.quiesce_ticks, default=0)
        lines = [
            f"examples: {self.examples}, steps: {self.steps}",
            *table("rules fired", self.rules),
            *table("states reached (rollouts seen in them after a step)", self.states),
            *table("transitions", self.transitions),
            *table("faults injected", self.faults),
            f"ticks to settle once faults stopped: at most {slowest}, "
            f"median {_median(self.quiesce_ticks)} over {sum(self.quiesce_ticks.values())} examples",
            f"observations that reused the kept deployments list: {self.lists_skipped}",
        ]
        return "\n".join(lines)


def _median(counts: Counter[int]) -> int:
    ordered = sorted(counts.elements())
    return ordered[len(ordered) // 2] if ordered else 0


EXPLORED = Explored()
