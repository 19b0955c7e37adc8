"""Requests to online endpoints: an emulated clock, routing by live and mirror traffic, synthetic load, samples."""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from devkit._server import Response
from devkit.aml_emulator.base import AreaBase
from devkit.aml_emulator.health import (
    Health,
    HealthError,
    Outcome,
    cached_tag_health,
    model_outcome,
    unavailable_outcome,
)
from devkit.aml_emulator.state import ArmError, Resource, _iso, _parse_time

#: Deployment states whose container answers requests (a rolling update keeps the old instances serving).
SERVING_STATES = frozenset({"Succeeded", "Updating"})
#: The most synthetic requests one catch-up may generate (a day at 1,000 requests a minute is 1.44 million).
MAX_CATCH_UP_REQUESTS = 2_000_000


class EmulatedClock:
    """The emulated workspace's time: operations, jobs, fault windows, held names, scoring and metrics all run on it.

    Wall-clock time by default; tests freeze it and advance it, so a 10-minute bake takes milliseconds, and
    ``wait_idle`` jumps it to the end of the operations in progress, so a 90 s operation takes no real time. The
    request log and the credentials keep the wall clock: they speak of real requests and real clients. Running, it
    may also run faster than the wall clock (``rate``): a benchmark lets emulated minutes pass in seconds while
    every process that reads the clock (:meth:`reading`) agrees on the time without asking again.
    """

    def __init__(self) -> None:
        self._anchor = (time.time(), time.time())  # (wall, emulated) when the rate or the time was last set
        self._rate = 1.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Seconds since the epoch, as the scoring, traffic and metrics rooms see it."""
        if self._frozen_at is not None:
            return self._frozen_at
        wall, emulated = self._anchor
        return emulated + (time.time() - wall) * self._rate

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    @property
    def rate(self) -> float:
        """Emulated seconds per wall-clock second while the clock runs (1: wall-clock speed)."""
        return self._rate

    def reading(self) -> dict[str, float | bool]:
        """What another process needs to compute :meth:`now` itself: the anchor, the rate and whether it is frozen."""
        wall, emulated = self._anchor
        if self._frozen_at is not None:
            wall, emulated = time.time(), self._frozen_at
        return {"wall": wall, "emulated": emulated, "rate": self._rate, "frozen": self.frozen}

    def set(self, now: float | None = None, frozen: bool | None = None, rate: float | None = None) -> None:
        """Jump to ``now`` (if given), freeze or unfreeze (if given) and set the running speed (if given)."""
        if rate is not None and not 0 < rate <= 10_000:
            raise ValueError(f"rate={rate}: the clock runs at 0 < rate <= 10000 emulated seconds per second")
        current = self.now() if now is None else now
        freeze = self.frozen if frozen is None else frozen
        self._rate = self._rate if rate is None else float(rate)
        self._frozen_at = current if freeze else None
        self._anchor = (time.time(), current)

    def advance(self, seconds: float) -> None:
        """Move time forward (never backward: metrics already produced would change)."""
        if seconds < 0:
            raise ValueError(f"seconds={seconds}: the emulated clock only moves forward")
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            wall, emulated = self._anchor
            self._anchor = (wall, emulated + seconds)


@dataclass(frozen=True)
class Sample:
    """One request a deployment answered (mirrored copies included), as the metrics room aggregates them."""

    time: float
    deployment: str
    status: int
    model_status: int
    latency_ms: float
    mirrored: bool = False
    synthetic: bool = False


@dataclass
class LoadGenerator:
    """``rpm`` requests a minute, evenly spaced from ``start``; request ``k`` draws from ``Random(seed, k)``."""

    endpoint: str
    rpm: float
    seed: int
    start: float
    generated: int = 0  # how many requests (k = 0 .. generated-1) exist already

    def time_of(self, k: int) -> float:
        return self.start + k * 60.0 / self.rpm


def pick_deployment(traffic: Mapping[str, int], u: float) -> str | None:
    """The deployment a request lands on for a uniform draw ``u`` in [0, 1) (``None`` when no traffic is set)."""
    live = sorted((name, pct) for name, pct in traffic.items() if pct > 0)
    total = sum(pct for _, pct in live)
    if total <= 0:
        return None
    target, acc = u * total, 0
    for name, pct in live:
        acc += pct
        if target < acc:
            return name
    return live[-1][0]


def pick_mirror(mirror: Mapping[str, int], u: float) -> str | None:
    """The deployment that gets a copy of this request (``mirrorTraffic`` percent of requests), if any."""
    for name, pct in sorted(mirror.items()):
        if pct > 0 and u * 100.0 < pct:
            return name
    return None


def follow_reading(reading: Mapping[str, Any]) -> float:
    """Now on an emulated clock whose :meth:`EmulatedClock.reading` another process sent (epoch seconds)."""
    if reading.get("frozen"):
        return float(reading["emulated"])
    return float(reading["emulated"]) + (time.time() - float(reading["wall"])) * float(reading["rate"])


class NoRoute(Exception):
    """No deployment can take the request (unknown deployment in the header, or no live traffic)."""


class TrafficArea(AreaBase):
    """Health per deployment, routing, the per-endpoint load generators and the samples metrics are made of."""

    _samples: dict[str, list[Sample]]
    _loads: dict[str, LoadGenerator]
    _health: dict[tuple[str, str], Health]

    def _reset_traffic(self) -> None:
        # One clock for every workspace served on one URL: the host's (see AmlEmulator.add_workspace).
        host = getattr(self, "_host", None)
        self._clock = host._clock if host is not None else EmulatedClock()
        self._samples = {}
        self._loads = {}
        self._health = {}

    # ------------------------------------------------------------------ clock

    def clock_now(self) -> float:
        """The emulated time (epoch seconds) used by scoring, synthetic load and metrics."""
        with self._lock:
            return self._clock.now()

    def set_clock(
        self, now: str | float | datetime | None = None, *, frozen: bool | None = None, rate: float | None = None
    ) -> None:
        """Jump the emulated clock to ``now`` and/or freeze it (``frozen=False`` lets it run again); ``rate``: how
        many emulated seconds pass per wall-clock second while it runs (a benchmark's time lapse)."""
        with self._lock:
            target = None if now is None else _parse_time(now)
            if target is not None and target < self._clock.now():
                raise ValueError("the emulated clock only moves forward; metrics already produced would change")
            self._run_load(self._clock.now())
            self._clock.set(target, frozen, rate)

    def clock_reading(self) -> dict[str, float | bool]:
        """The clock's anchor, rate and state (``EmulatedClock.reading``): another process follows it with
        :func:`follow_reading` without asking the emulator again."""
        with self._lock:
            return self._clock.reading()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulated clock forward; synthetic load for the skipped time is generated when next needed."""
        with self._lock:
            self._run_load(self._clock.now())
            self._clock.advance(seconds)

    # ------------------------------------------------------------------ health

    def set_health(self, endpoint: str, deployment: str, **fields: Any) -> Health:
        """Override a deployment's health (``error_rate`` percent, ``p50_ms``, ``p99_ms``, ``fail_all``,
        ``fail_status``); fields not given keep the value its model's tags (or the defaults) give."""
        with self._lock:
            self._run_load(self._clock.now())
            key = (endpoint.lower(), deployment.lower())
            base = self._health.get(key) or self._tag_health(endpoint, deployment)
            self._health[key] = base.with_changes(fields)
            return self._health[key]

    def clear_health(self, endpoint: str, deployment: str) -> None:
        """Drop the override: the deployment behaves as its model's ``emulator.*`` tags say again."""
        with self._lock:
            self._run_load(self._clock.now())
            self._health.pop((endpoint.lower(), deployment.lower()), None)

    def deployment_health(self, endpoint: str, deployment: str) -> Health:
        """The health a deployment answers with now (control override, else model tags, else defaults)."""
        with self._lock:
            override = self._health.get((endpoint.lower(), deployment.lower()))
            return override or self._tag_health(endpoint, deployment)

    def _tag_health(self, endpoint: str, deployment: str) -> Health:
        dep = self._deployments.get(endpoint.lower(), {}).get(deployment.lower())
        if dep is None:
            return Health()
        match = re.search(r"/models/([^/]+)/versions/([^/]+)$", str(dep.body["properties"].get("model", "")), re.I)
        model = self._models.get(match[1].lower(), {}).get(match[2]) if match else None
        try:
            return cached_tag_health(model.tags if model else {})
        except HealthError as err:
            raise ArmError(400, "BadArgument", f"deployment '{deployment}': {err}") from err

    # ------------------------------------------------------------------ synthetic load

    def start_load(self, endpoint: str, rpm: float, seed: int = 0) -> None:
        """Send ``rpm`` synthetic requests a minute to the endpoint from now on, routed like real ones."""
        if rpm <= 0:
            raise ValueError(f"rpm={rpm}: the load must be a positive number of requests per minute")
        with self._lock:
            self._get_endpoint_resource(endpoint)
            now = self._clock.now()
            self._run_load(now)
            self._loads[endpoint.lower()] = LoadGenerator(endpoint, float(rpm), int(seed), now)

    def stop_load(self, endpoint: str) -> None:
        """Stop the endpoint's synthetic load (what it generated so far stays in the metrics)."""
        with self._lock:
            self._run_load(self._clock.now())
            self._loads.pop(endpoint.lower(), None)

    def samples(self, endpoint: str, since: float | None = None, until: float | None = None) -> list[Sample]:
        """Every request the endpoint's deployments answered in [since, until), oldest first."""
        with self._lock:
            self._run_load(self._clock.now())
            return [
                s
                for s in self._samples.get(endpoint.lower(), [])
                if (since is None or s.time >= since) and (until is None or s.time < until)
            ]

    def _run_load(self, until: float) -> None:
        """Generate every synthetic request due before ``until`` with the traffic and health in force now.

        Called before anything that changes routing or health, so each request sees the state of its time.
        """
        for gen in list(self._loads.values()):
            budget = MAX_CATCH_UP_REQUESTS
            while gen.time_of(gen.generated) < until and budget > 0:
                k = gen.generated
                rng = random.Random(f"{gen.seed}:{gen.endpoint.lower()}:{k}")
                ep = self._endpoints.get(gen.endpoint.lower())
                # Without live traffic a request gets AML's 404 and shows in no deployment's metrics.
                if ep is not None:
                    with contextlib.suppress(NoRoute):
                        self._route_and_record(ep, None, rng, at=gen.time_of(k), synthetic=True)
                gen.generated += 1
                budget -= 1

    # ------------------------------------------------------------------ routing

    def _route_and_record(
        self,
        ep: Resource,
        header: str | None,
        rng: random.Random,
        *,
        at: float,
        bad_input: bool = False,
        synthetic: bool = False,
    ) -> tuple[Resource, Outcome]:
        """Route one request (header, else live traffic), copy it to the mirror, record both; the answer.

        Safe rollout (learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints): the
        ``azureml-model-deployment`` header picks the deployment whatever its share, and such requests are not
        mirrored; otherwise ``traffic`` splits requests and ``mirrorTraffic`` copies a share to a shadow whose
        answers are discarded.
        """
        deployments = self._deployments.get(ep.name.lower(), {})
        props = ep.body["properties"]
        u_route, u_mirror = rng.random(), rng.random()
        if header is not None:
            target = deployments.get(header.strip().lower())
            if target is None:
                raise NoRoute(header)
            mirror_name = None
        else:
            name = pick_deployment({k: int(v) for k, v in (props.get("traffic") or {}).items()}, u_route)
            target = deployments.get(name.lower()) if name else None
            if target is None:
                raise NoRoute("")
            mirror_name = pick_mirror({k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}, u_mirror)
        outcome = self._answer(ep.name, target, rng, bad_input)
        self._record(ep.name, Sample(at, target.name, outcome.status, outcome.model_status,
                                     outcome.latency_ms, False, synthetic))  # fmt: skip
        shadow = deployments.get(mirror_name.lower()) if mirror_name else None
        if shadow is not None and shadow is not target:
            copy = self._answer(ep.name, shadow, rng, bad_input)
            self._record(ep.name, Sample(at, shadow.name, copy.status, copy.model_status,
                                         copy.latency_ms, True, synthetic))  # fmt: skip
        return target, outcome

    def _answer(self, endpoint: str, dep: Resource, rng: random.Random, bad_input: bool) -> Outcome:
        if dep.state not in SERVING_STATES:
            return unavailable_outcome(dep.state)
        return model_outcome(self.deployment_health(endpoint, dep.name), rng, bad_input=bad_input)

    def _record(self, endpoint: str, sample: Sample) -> None:
        self._samples.setdefault(endpoint.lower(), []).append(sample)

    # ------------------------------------------------------------------ control API

    def _delivery_control(self, method: str, route: str, body: Mapping[str, Any]) -> Response | None:
        """The progressive-delivery control routes (``None`` when ``route`` is not one of them):

        - ``GET /_emulator/clock``; ``PUT /_emulator/clock`` ``{"now": ISO or epoch, "frozen": bool, "rate": float}``;
          ``POST /_emulator/clock/advance`` ``{"seconds"}``
        - ``PUT /_emulator/load/{endpoint}`` ``{"rpm", "seed"}``; ``DELETE /_emulator/load/{endpoint}``
        - ``GET|PUT|DELETE /_emulator/health/{endpoint}/{deployment}``, PUT body ``{"error_rate" (percent),
          "p50_ms", "p99_ms", "fail_all", "fail_status", "timeout_rate", "overload_rate" (percents answered 408/429)}``
        - ``PUT /_emulator/delivery`` ``{"metric_lag_s", "scoring_seed", "scoring_sleep_scale"}``
        - ``GET /_emulator/samples/{endpoint}``: every request its deployments answered, mirrored copies included
        """
        parts = route.strip("/").split("/")
        head, rest = parts[0], parts[1:]
        if head == "clock" and not rest and method in {"GET", "PUT"}:
            if method == "PUT":
                self.set_clock(body.get("now"), frozen=body.get("frozen"), rate=body.get("rate"))
            with self._lock:
                now, reading = self._clock.now(), self._clock.reading()
            return Response(200, {"now": _iso(now), "epoch": now, **reading})
        if head == "clock" and rest == ["advance"] and method == "POST":
            self.advance_clock(float(body["seconds"]))
            return Response(200, {"now": _iso(self.clock_now()), "epoch": self.clock_now()})
        if head == "load" and len(rest) == 1 and method in {"PUT", "DELETE"}:
            if method == "DELETE":
                self.stop_load(rest[0])
                return Response(204)
            self.start_load(rest[0], float(body["rpm"]), int(body.get("seed", 0)))
            return Response(204)
        if head == "health" and len(rest) == 2 and method in {"GET", "PUT", "DELETE"}:
            if method == "PUT":
                self.set_health(rest[0], rest[1], **body)
            elif method == "DELETE":
                self.clear_health(rest[0], rest[1])
            return Response(200, asdict(self.deployment_health(rest[0], rest[1])))
        if head == "delivery" and not rest and method == "PUT":
            if "metric_lag_s" in body:
                self.set_metric_lag(float(body["metric_lag_s"]))
            self.configure_scoring(seed=body.get("scoring_seed"), sleep_scale=body.get("scoring_sleep_scale"))
            return Response(204)
        if head == "samples" and len(rest) == 1 and method == "GET":
            return Response(200, {"value": [asdict(s) for s in self.samples(rest[0])]})
        return None
