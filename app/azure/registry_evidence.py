"""What a promoted registry version carries: the staging evidence as tags (within Azure ML's limits), its provenance.

A shared registry version can only change its ``tags``, ``description`` and ``stage`` afterwards ("For models, only
``description`` and ``tags`` can be updated. All other properties are immutable",
https://learn.microsoft.com/azure/machine-learning/how-to-manage-models), and its properties are the source's, copied
by the share. So the staging evidence goes into **tags**, under the ``promotion.`` prefix.

Azure ML documents no tag limits for models; the tightest ones it documents for its assets are a run's: at most
**50 tags**, a key of at most **100** characters and a value of at most **1,000** ("Service limits in Azure Machine
Learning", Runs, https://learn.microsoft.com/azure/machine-learning/resource-limits-capacity). The tags written here
stay within those. When the evidence does not fit, it is summarized, always the same way for the same input: the
gates collapse into one ``promotion.gates`` tag (verdicts only), long values are cut with a marker that says how much
was cut, and ``promotion.digest`` (SHA-256 of the whole evidence) lets a reader check a full copy kept elsewhere
(the staging ledger) against what the registry shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from app.rollout.decide.registry_model import (
    EVIDENCE_PREFIX,
    GateEvidence,
    PromotionEvidence,
    RecordedEvidence,
    SmokeEvidence,
)

# The evidence types live with the promotion's decisions, which build them; re-exported for the adapter's users.
__all__ = [
    "CORE_KEYS",
    "EvidenceTooLarge",
    "GateEvidence",
    "PromotionEvidence",
    "RecordedEvidence",
    "SmokeEvidence",
    "content_differences",
    "evidence_digest",
    "promotion_tags",
    "read_evidence",
]

MAX_TAGS = 50
MAX_KEY_LENGTH = 100
MAX_VALUE_LENGTH = 1000
PREFIX = EVIDENCE_PREFIX
SOURCE_WORKSPACE = f"{PREFIX}source_workspace"
SOURCE_MODEL = f"{PREFIX}source_model"
ROLLOUT = f"{PREFIX}rollout"
TIME = f"{PREFIX}time"
SMOKE = f"{PREFIX}smoke"
DIGEST = f"{PREFIX}digest"
#: The staging rollout in its app's status API (only when the staging app knows its host name).
STATUS = f"{PREFIX}status"
GATE = f"{PREFIX}gate."
GATES = f"{PREFIX}gates"
#: The evidence tags every promoted version carries, whatever else must give way.
CORE_KEYS = (SOURCE_WORKSPACE, SOURCE_MODEL, ROLLOUT, TIME, SMOKE, DIGEST)


class EvidenceTooLarge(ValueError):
    """The model's tags leave no room for the evidence: the message says how many tags to carry at most."""


def promotion_tags(
    model_tags: Mapping[str, str],
    evidence: PromotionEvidence,
    source_model: str,
    *,
    carry: Sequence[str] | None = None,
) -> dict[str, str]:
    """The registry version's tags: the model's (all of them, or those named in ``carry``) plus the evidence.

    The model's own tags are kept as they are (Azure accepted them on the source); any ``promotion.`` tag among them
    gives way to the evidence. Raises :class:`EvidenceTooLarge` when the carried tags leave no room for it.
    """
    wanted = None if carry is None else {name.lower() for name in carry}  # tag keys compare case-insensitively
    carried = {
        key: value
        for key, value in model_tags.items()
        if (wanted is None or key.lower() in wanted) and not key.startswith(PREFIX)
    }
    core = {
        SOURCE_WORKSPACE: evidence.source_workspace,
        SOURCE_MODEL: source_model,
        ROLLOUT: evidence.rollout_id,
        TIME: _iso(evidence.time),
        SMOKE: _smoke(evidence.smoke),
        DIGEST: evidence_digest(evidence, source_model),
    }
    if evidence.status_link:
        core[STATUS] = evidence.status_link
    room = MAX_TAGS - len(carried) - len(core)
    needed = min(len(evidence.gates), 1)
    if room < needed:
        raise EvidenceTooLarge(
            f"the model carries {len(carried)} tags and the promotion evidence needs {len(core) + needed} of Azure "
            f"ML's {MAX_TAGS}: carry at most {MAX_TAGS - len(core) - needed} of the model's tags (promote_tags)"
        )
    tags = {**carried, **{key: _fit(value) for key, value in core.items()}}
    tags.update(_gate_tags(evidence.gates, room))
    return tags


def _gate_tags(gates: Sequence[GateEvidence], room: int) -> dict[str, str]:
    """One tag per gate when they all fit, else one summary tag of the verdicts."""
    if not gates:
        return {}
    keys = [_gate_key(gate.name) for gate in gates]
    if len(gates) <= room and len(set(keys)) == len(keys):
        return {key: _fit(_gate_value(gate)) for key, gate in zip(keys, gates, strict=True)}
    return {GATES: _fit("; ".join(f"{gate.name}={gate.verdict}" for gate in gates))}


def _gate_key(name: str) -> str:
    key = f"{GATE}{name}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    suffix = "~" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return key[: MAX_KEY_LENGTH - len(suffix)] + suffix


def _gate_value(gate: GateEvidence) -> str:
    figures = "; ".join(f"{key}={_figure(gate.figures[key])}" for key in sorted(gate.figures))
    return f"{gate.verdict}; {figures}" if figures else gate.verdict


def _figure(value: float | int | str) -> str:
    return format(value, ".6g") if isinstance(value, float) else str(value)


def _smoke(smoke: SmokeEvidence | None) -> str:
    if smoke is None:
        return "not run"
    state = "passed" if smoke.passed else "failed"
    return f"{state}: {smoke.detail}" if smoke.detail else state


def _fit(value: str) -> str:
    """``value`` cut to the value limit, with a marker of how much was cut (the same cut for the same value)."""
    if len(value) <= MAX_VALUE_LENGTH:
        return value
    cut = len(value) - MAX_VALUE_LENGTH
    while True:  # the marker's own length depends on the number it shows
        marker = f" ...[{cut} more chars]"
        kept = MAX_VALUE_LENGTH - len(marker)
        if len(value) - kept == cut:
            return value[:kept] + marker
        cut = len(value) - kept


def _iso(when: datetime) -> str:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def evidence_digest(evidence: PromotionEvidence, source_model: str) -> str:
    """SHA-256 of the whole evidence in a canonical JSON form: equal evidence, equal digest."""
    document = {
        "source_workspace": evidence.source_workspace,
        "source_model": source_model,
        "rollout": evidence.rollout_id,
        "time": _iso(evidence.time),
        "smoke": _smoke(evidence.smoke),
        "gates": [
            {"name": g.name, "verdict": g.verdict, "figures": {k: _figure(v) for k, v in g.figures.items()}}
            for g in evidence.gates
        ],
    }
    if evidence.status_link:  # absent when unset, so that evidence without a link keeps the digest it always had
        document["status"] = evidence.status_link
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_evidence(tags: Mapping[str, str]) -> RecordedEvidence | None:
    """The evidence a version's tags carry, or None when it has none (shared by hand, or not yet tagged)."""
    if not tags.get(ROLLOUT):
        return None
    gates = {key[len(GATE) :]: value for key, value in tags.items() if key.startswith(GATE)}
    if GATES in tags:
        gates.update(part.split("=", 1) for part in tags[GATES].split("; ") if "=" in part)  # type: ignore[misc]
    return RecordedEvidence(
        rollout_id=tags[ROLLOUT],
        source_workspace=tags.get(SOURCE_WORKSPACE, ""),
        source_model=tags.get(SOURCE_MODEL, ""),
        time=_parse_time(tags.get(TIME, "")),
        smoke=tags.get(SMOKE, ""),
        gates=gates,
        digest=tags.get(DIGEST, ""),
        status_link=tags.get(STATUS, ""),
    )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def content_differences(
    version_tags: Mapping[str, str],
    version: Mapping[str, object],
    source: Mapping[str, object],
    source_model: str,
) -> list[str]:
    """How a registry version differs from the workspace version it should be a copy of ([] when it is one).

    A share copies the type, the training job (lineage) and the properties, and none of them can change afterwards;
    our own provenance tag, when present, names the source. ``version`` and ``source`` map ``model_type``,
    ``job_name`` and ``properties``. A version made by hand that matches all of these is taken for a copy.
    """
    found: list[str] = []
    recorded = version_tags.get(SOURCE_MODEL)
    if recorded and recorded.lower() != source_model.lower():
        found.append(f"it was promoted from {recorded}")
    if str(version.get("model_type") or "").lower() != str(source.get("model_type") or "").lower():
        found.append(f"its type is {version.get('model_type')}, not {source.get('model_type')}")
    if source.get("job_name") and version.get("job_name") != source.get("job_name"):
        found.append(f"it was trained by job {version.get('job_name')}, not {source.get('job_name')}")
    copied = version.get("properties") or {}
    wanted = source.get("properties") or {}
    assert isinstance(copied, Mapping) and isinstance(wanted, Mapping)
    changed = sorted(key for key, value in wanted.items() if copied.get(key) != value)
    if changed:
        found.append(f"its properties differ ({', '.join(changed)})")
    return found
