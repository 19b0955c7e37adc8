"""Tag keys (pure): a key that looks like a misspelled tag of the contract is refused, with the tag it resembles.

Model tags also carry users' own keys (owner, dataset, framework), so an unknown key cannot simply be refused:
only a key that is *close* to a tag the app knows is. Close means, after lower-casing and dropping separators
(``-``, ``_``, ``.``, spaces): equal (``instanceType``), a known tag followed by a unit word that belongs to it
(``bake_time``, ``traffic_pct``), or within a small edit distance (``trafic``, ``traffic_step``). Short tags
(``bake``, ``ncd``) match only the first two ways, so ``base`` stays a user's key. A ``strategy`` key whose
value names a deployment strategy (``strategy=shadow``) is refused too: the app has no such tag, and a
shadow meant as ``traffic=0 mirror=10`` would otherwise go live at 100%.

``STRICT_TAGS=true`` refuses every key that is not a tag of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.platform.quoting import quoted

#: Every tag the app reads (README, "The tag contract"; ``ncd`` is the original sample's opt-in).
KNOWN_TAGS = (
    "deploy",
    "ncd",
    "stage",
    "endpoint",
    "instance_type",
    "instance_count",
    "traffic",
    "mirror",
    "traffic_steps",
    "bake",
    "smoke_request",
    "max_error_rate",
    "max_p99_ms",
    "promote",
    "promote_tags",
    "approval",
)
#: Words that, appended to a known tag, still mean that tag (``bake_time`` is ``bake``).
UNIT_WORDS: Mapping[str, tuple[str, ...]] = {
    "bake": ("time", "duration", "period", "seconds", "secs", "minutes", "mins"),
    "traffic": ("percent", "percentage", "pct", "share", "weight"),
    "mirror": ("percent", "percentage", "pct", "share", "weight", "traffic"),
    "endpoint": ("name",),
    "stage": ("name",),
}
#: Keys people use for a deployment strategy elsewhere, and the values that mean one; each maps to the tag
#: that does it here.
STRATEGY_KEYS = frozenset({"strategy", "deploymentstrategy", "deploystrategy", "rolloutstrategy"})
STRATEGIES: Mapping[str, tuple[str, str]] = {
    "shadow": ("mirror", "a shadow deployment is traffic=0 with mirror=<1..50>"),
    "mirror": ("mirror", "a shadow deployment is traffic=0 with mirror=<1..50>"),
    "mirrored": ("mirror", "a shadow deployment is traffic=0 with mirror=<1..50>"),
    "dark": ("traffic", "a dark deployment is traffic=0"),
    "canary": ("traffic", "a canary is traffic=<1..99>, in steps with traffic_steps=10,50,... and bake"),
    "progressive": ("traffic_steps", "steps are traffic_steps=10,50,100 with bake"),
    "rolling": ("traffic_steps", "steps are traffic_steps=10,50,100 with bake"),
    "ab": ("traffic", "a split is traffic=<1..99>"),
    "bluegreen": ("traffic", "blue/green is the default, traffic=100"),
}


@dataclass(frozen=True)
class TagKeyProblem:
    """A tag key the app refuses: ``suggestion`` is the tag it resembles, None when it only is unknown (strict)."""

    key: str
    suggestion: str | None
    hint: str = ""

    @property
    def message(self) -> str:
        if self.suggestion is None:
            return (
                f"tag {quoted(self.key)} is not a tag of the contract, and STRICT_TAGS=true refuses unknown keys; "
                f"the tags are: {', '.join(KNOWN_TAGS)}"
            )
        why = f" ({self.hint})" if self.hint else ""
        return (
            f"tag {quoted(self.key)} is not a tag of the contract: did you mean {quoted(self.suggestion)}?{why} "
            "Rename it, or use a key of your own that is not this close to a tag the app reads"
        )


def check_tag_keys(tags: Mapping[str, str], *, strict: bool) -> list[TagKeyProblem]:
    """The keys of ``tags`` (as registered) that the app refuses, in the order given."""
    problems: list[TagKeyProblem] = []
    for key, value in tags.items():
        name = key.strip().lower()
        if name in KNOWN_TAGS:
            continue
        problem = _strategy(key, value) or _near_miss(key)
        if problem is None and strict:
            problem = TagKeyProblem(key, None)
        if problem is not None:
            problems.append(problem)
    return problems


def resembles(key: str) -> str | None:
    """The known tag ``key`` looks like a misspelling of, or None."""
    problem = _near_miss(key)
    return problem.suggestion if problem else None


def _near_miss(key: str) -> TagKeyProblem | None:
    squashed = _squash(key)
    if not squashed:
        return None
    for name in KNOWN_TAGS:
        target = _squash(name)
        if squashed == target or any(squashed == target + unit for unit in UNIT_WORDS.get(name, ())):
            return TagKeyProblem(key, name)
    best, distance = None, 0
    for name in KNOWN_TAGS:
        target = _squash(name)
        allowed = _allowed_distance(target)
        found = _distance(squashed, target, allowed)
        if found <= allowed and (best is None or found < distance):
            best, distance = name, found
    return TagKeyProblem(key, best) if best else None


def _strategy(key: str, value: str) -> TagKeyProblem | None:
    if _squash(key) not in STRATEGY_KEYS:
        return None
    meant = STRATEGIES.get(_squash(value))
    return TagKeyProblem(key, meant[0], meant[1]) if meant else None


def _allowed_distance(target: str) -> int:
    """Edits a key may be away from a known tag: none for short tags (``bake``/``base``), more for long ones."""
    if len(target) <= 4:
        return 0
    return 1 if len(target) <= 7 else 2


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _distance(a: str, b: str, cap: int) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment); anything above ``cap`` is cap + 1."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i, *([0] * len(b))]
        for j, right in enumerate(b, 1):
            cost = 0 if left == right else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and left == b[j - 2] and a[i - 2] == right:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
        if min(previous) > cap:
            return cap + 1
    return min(previous[-1], cap + 1)
