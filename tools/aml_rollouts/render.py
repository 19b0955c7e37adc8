"""Rich renderables for the terminal: the rollout list, one rollout in detail, an action's answer."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from aml_rollouts import view
from aml_rollouts.client import ActionResult
from aml_rollouts.states import style_of

Json = view.Json
STEP_MARKS = {"done": "✓", "current": "●", "failed": "✗", "stopped": "■", "next": "·", "skipped": "-"}
HISTORY_SHOWN = 10
ACTIONS_SHOWN = 6


def state_text(state: str) -> Text:
    style = style_of(state)
    label = state if style.badge != "unknown" else f"{state}?"
    return Text(label, style=f"bold {style.colour}")


def list_table(rollouts: Sequence[Json], endpoints: Sequence[Json]) -> Table:
    """One row per rollout; the traffic column is the deployment's share of the endpoint's observed traffic."""
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    for name, kwargs in (
        ("ENDPOINT", {"no_wrap": True}),
        ("DEPLOYMENT", {"no_wrap": True}),
        ("MODEL", {"no_wrap": True}),
        ("STATE", {"no_wrap": True}),
        ("STEP", {"no_wrap": True}),
        ("TRAFFIC", {"no_wrap": True, "justify": "right"}),
        ("UPDATED", {"no_wrap": True}),
        ("REASON", {"overflow": "fold", "ratio": 1}),
    ):
        table.add_column(name, **kwargs)
    for rollout in rollouts:
        split = view.split_of(view.endpoint_entry(rollout, endpoints))
        share = f"{split.share(str(rollout.get('deployment')))}%" if split.source != "unknown" else "-"
        table.add_row(
            str(rollout.get("endpoint")),
            str(rollout.get("deployment")),
            f"{rollout.get('model')}:{rollout.get('version')}",
            state_text(str(rollout.get("state"))),
            view.step_text(rollout),
            share,
            view.clock(rollout.get("updatedAt")),
            str(rollout.get("reason") or ""),
        )
    return table


def steps_line(rollout: Json) -> Text:
    text = Text()
    for index, step in enumerate(view.steps_of(rollout)):
        if index:
            text.append(" → ", style="dim")
        colour = {"done": "green", "current": "bold blue", "failed": "red", "stopped": "yellow"}.get(step.status, "dim")
        text.append(f"{step.share}% {STEP_MARKS[step.status]}", style=colour)
    return text


def detail(rollout: Json, endpoints: Sequence[Json]) -> RenderableType:
    """Plan, state, step, split, gate evidence, the next decision, history: what ``get`` and ``watch`` show."""
    progress = rollout.get("progress") or {}
    split = view.split_of(view.endpoint_entry(rollout, endpoints))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    heading = Text.assemble(
        (view.key_of(rollout), "bold"), "  ", (f"{rollout.get('model')}:{rollout.get('version')}", ""), "  "
    )
    heading.append_text(state_text(str(rollout.get("state"))))
    if progress.get("paused"):
        heading.append("  paused", style="bold yellow")
    grid.add_row("Rollout", heading)
    bake = int(progress.get("bakeSeconds") or 0)
    plan = f"{rollout.get('instanceCount')} x {rollout.get('instanceType')}, final share {rollout.get('traffic')}%"
    plan += f", bake {bake // 60}m{bake % 60:02d}s a step" if bake else ", no bake"
    if rollout.get("mirror"):
        plan += f", mirror {rollout.get('mirror')}%"
    grid.add_row("Plan", plan)
    grid.add_row("Steps", Text.assemble(steps_line(rollout), "   ", view.step_text(rollout)))
    observed = f"  ({split.source} {view.clock(split.at)})" if split.source == "observed" else f"  ({split.source})"
    grid.add_row("Split", Text.assemble(split.text(), (observed, "dim")))
    entry = view.endpoint_entry(rollout, endpoints) or {}
    if entry.get("drift"):
        intended = view.split_of({"intendedTraffic": entry.get("intendedTraffic")}).text()
        grid.add_row(
            "Drift", Text(f"changed outside the app; it intends {intended} and leaves the traffic alone", "red")
        )
    if entry.get("observeError"):
        grid.add_row("Observe", Text(f"not read from Azure ML now: {entry['observeError']}", "yellow"))
    gate = view.gate_of(progress.get("gate"))
    if gate is not None:
        colour = {"pass": "green", "fail": "red"}.get(gate.outcome, "yellow")
        grid.add_row("Gate", Text(gate.summary, style=colour))
        grid.add_row("Evidence", gate.evidence())
        grid.add_row("Window", f"{view.clock(gate.window[0])} - {view.clock(gate.window[1])}")
    due, what = view.next_decision(rollout)
    grid.add_row("Next", f"{view.clock(due)}  {what}" if due else what)
    grid.add_row("Reason", str(rollout.get("reason") or "-"))
    if rollout.get("lastError"):
        grid.add_row("Last error", Text(f"{rollout.get('errorSource') or ''} {rollout['lastError']}".strip(), "red"))
    smoke = progress.get("smoke")
    if isinstance(smoke, dict):
        grid.add_row("Smoke", _smoke(smoke))
    actions = list(rollout.get("actions") or [])
    if actions:
        grid.add_row("ARM writes", "\n".join(actions[-ACTIONS_SHOWN:]))
    history = list(progress.get("history") or [])
    parts: list[RenderableType] = [grid]
    if history:
        parts.append(history_table(history))
    return Group(*parts)


def history_table(history: Sequence[Json]) -> Table:
    table = Table(title="Operator actions", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name in ("AT", "ACTION", "BY", "EFFECT"):
        table.add_column(name, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for entry in history[-HISTORY_SHOWN:]:
        table.add_row(
            view.clock(entry.get("at")),
            str(entry.get("action")),
            str(entry.get("caller")),
            str(entry.get("effect")),
            str(entry.get("reason") or "-"),
        )
    return table


def _smoke(smoke: Json) -> str:
    if smoke.get("skipped"):
        return "skipped (no smoke_request tag)"
    verdict = "passed" if smoke.get("passed") else "failed"
    return f"{verdict}: HTTP {smoke.get('status')} in {smoke.get('elapsedSeconds')} s"


def action_result(result: ActionResult) -> RenderableType:
    rollout = result.rollout
    line = Text.assemble(
        (f"{result.action} {view.key_of(rollout)}", "bold"), f": {result.note} (effect {result.effect}); now "
    )
    line.append_text(state_text(str(rollout.get("state"))))
    return line
