"""Run scenarios against a target, one result line each, and remove what the run created whatever happens."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType

from acceptance.scenarios import Names, Scenario, ScenarioFailed
from acceptance.target import Target, Timeout, Unavailable

logger = logging.getLogger(__name__)

Print = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    scenario: str
    outcome: str  # PASS, FAIL, ERROR, SKIP; XFAIL/XPASS for a scenario marked as waiting for a fix
    seconds: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("PASS", "SKIP", "XFAIL")

    def line(self) -> str:
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.outcome:<5} {self.scenario:<19} {self.seconds:7.1f}s{detail}"


@dataclass
class Report:
    run_id: str
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.results and all(r.ok for r in self.results) and not self.leftovers else 1


def new_run_id() -> str:
    return secrets.token_hex(3)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the block, so ``finally`` cleanup runs on both (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_scenario(target: Target, scenario: Scenario, run_id: str) -> Result:
    started = time.monotonic()

    def result(outcome: str, detail: str = "") -> Result:
        return Result(scenario.name, outcome, time.monotonic() - started, detail)

    if scenario.redelivers and (reason := target.cannot_redeliver()):
        return result("SKIP", reason)
    if scenario.scripts_faults and (reason := target.cannot_script_faults()):
        return result("SKIP", reason)  # before it creates anything
    try:
        scenario.run(target, Names(run_id, scenario.short))
    except (ScenarioFailed, Timeout) as err:
        # Like pytest's xfail(strict=True): a scenario waiting for a fix may fail for what it waits for...
        return result("XFAIL", f"{scenario.xfail}: {err}") if scenario.xfail else result("FAIL", str(err))
    except Unavailable as err:
        return result("SKIP", str(err))
    except Exception as err:
        logger.exception("scenario %s raised", scenario.name)
        return result("ERROR", f"{type(err).__name__}: {err}")
    if scenario.xfail:  # ... and must fail: once it passes, its mark goes
        return result("XPASS", f"passes now: remove its xfail ({scenario.xfail})")
    return result("PASS", scenario.summary)


def say(line: str) -> None:
    """Print one line now, also to a pipe (a CI log shows each scenario as it starts, not at the end)."""
    print(line, flush=True)


def run_suite(
    target: Target, scenarios: Sequence[Scenario], *, run_id: str, keep: bool = False, out: Print = say
) -> Report:
    """Run ``scenarios`` in order, saying which one starts and how it ended; on any exit (failure, Ctrl-C,
    SIGTERM) delete what was created unless ``keep``."""
    report = Report(run_id)
    started = time.monotonic()
    try:
        for number, scenario in enumerate(scenarios, start=1):
            out(f"[{number}/{len(scenarios)}] {scenario.name}: {scenario.summary} ...")
            result = run_scenario(target, scenario, run_id)
            report.results.append(result)
            out(result.line())
    except KeyboardInterrupt:
        report.interrupted = True
        out("interrupted: removing what this run created (interrupt again to stop and get the commands instead)")
    finally:
        report.leftovers = _clean_up(target, keep, out)
        report.seconds = time.monotonic() - started
    return report


def _clean_up(target: Target, keep: bool, out: Print) -> list[str]:
    if not target.created:
        return []
    if keep:
        out("--keep: left in place; delete them later with:")
        for command in target.leftover_commands():
            out(f"  {command}")
        return []
    cleaning = time.monotonic()
    try:
        leftovers = target.cleanup()
    except KeyboardInterrupt:
        out("cleanup interrupted; these may remain, delete them with:")
        for command in target.leftover_commands():
            out(f"  {command}")
        raise
    if leftovers:
        out("cleanup could not delete everything:")
        for item in leftovers:
            out(f"  {item}")
        for command in target.leftover_commands():
            out(f"  {command}")
    else:
        out(f"cleanup: removed every endpoint and model version this run created ({time.monotonic() - cleaning:.1f}s)")
    return leftovers
