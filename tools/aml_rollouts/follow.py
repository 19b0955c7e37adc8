"""Following one rollout until it ends: ``status`` (a CI gate) and ``watch`` (a live view that redraws)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.rule import Rule
from rich.text import Text

from aml_rollouts import render, view
from aml_rollouts.client import ApiClient
from aml_rollouts.errors import Exit
from aml_rollouts.states import STATES, Phase, phase_of

#: What each phase exits with (docs/operations.md, "Exit codes").
EXIT_OF = {Phase.SERVING: Exit.OK, Phase.ENDED: Exit.ENDED_BADLY, Phase.RUNNING: Exit.IN_PROGRESS}


@dataclass
class Poll:
    """How to follow a rollout: which, how often, for how long; the clock and the pause are parameters."""

    client: ApiClient
    endpoint: str
    deployment: str | None
    interval_s: float = 5.0
    timeout_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    started: float = field(default=0.0, init=False)

    def snapshots(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], bool]]:
        """(rollout, endpoints, last) at each poll; ``last`` when it ended or the time ran out."""
        self.started = self.clock()
        while True:
            rollout, endpoints = self.client.find(self.endpoint, self.deployment)
            timed_out = self.timeout_s is not None and self.clock() - self.started >= self.timeout_s
            ended = phase_of(rollout) is not Phase.RUNNING
            yield rollout, endpoints, ended or timed_out
            if ended or timed_out:
                return
            self.sleep(self.interval_s)


def status(poll: Poll, *, wait: bool, out: Console, as_json: bool) -> Exit:
    """One line (or the rollout's JSON) when it ends or the wait does; the exit code says how it ended."""
    rollout: dict[str, Any] = {}
    for snapshot, _endpoints, last in poll.snapshots():
        rollout = snapshot
        if not wait or last:
            break
    phase = phase_of(rollout)
    if as_json:
        out.print_json(json.dumps({"phase": phase.value, "exitCode": int(EXIT_OF[phase]), "rollout": rollout}))
        return EXIT_OF[phase]
    state = str(rollout.get("state"))
    line = Text.assemble((view.key_of(rollout), "bold"), " ")
    line.append_text(render.state_text(state))
    line.append(f" ({view.step_text(rollout)}): {rollout.get('reason') or '-'}")
    if phase is Phase.RUNNING:
        waited = f" after {poll.clock() - poll.started:.0f}s" if wait else ""
        unknown = "" if state in STATES else f"; state {state!r} is unknown to this aml-rollouts: upgrade it"
        line.append(f"  still in progress{waited}{unknown}", style="yellow")
    out.print(line)
    return EXIT_OF[phase]


def watch(poll: Poll, *, out: Console, as_json: bool) -> Exit:
    """Redraw the rollout at each change until it ends (or ``--timeout``); exits as ``status`` would."""
    rollout: dict[str, Any] = {}
    if as_json:
        previous = None
        for rollout, endpoints, _last in poll.snapshots():
            current = json.dumps({"rollout": rollout, "endpoints": endpoints}, sort_keys=True)
            if current != previous:
                out.print(current, soft_wrap=True, highlight=False, markup=False)
                previous = current
        return EXIT_OF[phase_of(rollout)]
    if not out.is_terminal:
        return _watch_lines(poll, out)
    with Live(console=out, auto_refresh=False, transient=False) as live:
        for rollout, endpoints, last in poll.snapshots():
            footer = (
                "ended" if last else f"watching every {poll.interval_s:g}s; Ctrl-C stops watching (not the rollout)"
            )
            live.update(Group(render.detail(rollout, endpoints), Text(footer, style="dim")), refresh=True)
    return EXIT_OF[phase_of(rollout)]


def _watch_lines(poll: Poll, out: Console) -> Exit:
    """Not a terminal (a pipe, a CI log): the whole view again at each change, below a rule with the time."""
    rollout: dict[str, Any] = {}
    previous = None
    for rollout, endpoints, _last in poll.snapshots():
        fingerprint = json.dumps([rollout, view.endpoint_entry(rollout, endpoints)], sort_keys=True)
        if fingerprint != previous:
            out.print(Rule(f"{view.key_of(rollout)} updated {view.clock(rollout.get('updatedAt'))}", align="left"))
            out.print(render.detail(rollout, endpoints))
            previous = fingerprint
    return EXIT_OF[phase_of(rollout)]
