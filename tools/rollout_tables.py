"""docs/rollout.md's state diagram and operator table, generated from the tables the code is.

``python -m tools.rollout_tables`` rewrites the two generated blocks of docs/rollout.md from ``app/rollout/decide/
table.py`` (every change of state) and ``app/rollout/decide/operator.py`` (every operator action in every state);
``--check`` only says whether they are up to date (a test runs it). Edit the tables, never the blocks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app.rollout.decide.approval import ApprovalAction, Decided, decide_approval
from app.rollout.decide.model import State
from app.rollout.decide.operator import OPERATOR_RULES, OperatorAction
from app.rollout.decide.table import ROWS

DOC = Path(__file__).resolve().parents[1] / "docs" / "rollout.md"
BEGIN = "<!-- generated from {} by python -m tools.rollout_tables: do not edit -->"
END = "<!-- end of generated {} -->"
DIAGRAM, OPERATORS = "the state table", "the operator rules"


def diagram() -> str:
    """The transition table as a mermaid state diagram: one arrow per (from, to), its labels joined."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for row in ROWS:
        key = (row.source.value if row.source else "[*]", row.target.value)
        labels = arrows.setdefault(key, [])
        if row.label not in labels:
            labels.append(row.label)
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f"    {source} --> {target}: {' / '.join(labels)}" for (source, target), labels in arrows.items()]
    lines += ["    note right of baking: paused is a flag; bakes do not advance while it is set", "```"]
    return "\n".join(lines)


def operator_table() -> str:
    """The operator rules as a table: one row per action, one column per group of states the rules treat alike."""
    columns: list[list[State]] = []
    for state in State:
        same = next((group for group in columns if _rules_of(group[0]) == _rules_of(state)), None)
        if same is None:
            columns.append([state])
        else:
            same.append(state)
    header = "| action | " + " | ".join(", ".join(s.value for s in group) for group in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for action in OperatorAction:
        cells = [OPERATOR_RULES[action][group[0]].cell for group in columns]
        lines.append(f"| `{action.value}` | " + " | ".join(cells) + " |")
    for decision in ApprovalAction:
        cells = [_approval_cell(decision, group[0]) for group in columns]
        lines.append(f"| `{decision.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _approval_cell(decision: ApprovalAction, state: State) -> str:
    """An approval's rule in ``state`` (``decide/approval.py``), undecided so far; a decision is not taken back."""
    if isinstance(decide_approval(decision.value, state.value, "", ()), Decided):
        then = "its first step follows" if decision is ApprovalAction.APPROVE else "→ `rejected`, deployment deleted"
        return f"recorded (who, when, why); {then}; the same again: 202, no change; the other one: 409"
    return "409"


def _rules_of(state: State) -> tuple[str, ...]:
    operators = tuple(OPERATOR_RULES[action][state].cell for action in OperatorAction)
    return operators + tuple(_approval_cell(decision, state) for decision in ApprovalAction)


def rendered(text: str) -> str:
    """``text`` with both generated blocks replaced by what the tables say now."""
    for name, block in ((DIAGRAM, diagram()), (OPERATORS, operator_table())):
        begin, end = BEGIN.format(name), END.format(name)
        start, stop = text.index(begin) + len(begin), text.index(end)
        text = f"{text[:start]}\n{block}\n{text[stop:]}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/rollout.md is not up to date")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    fresh = rendered(text)
    if args.check:
        if fresh != text:
            print(f"{DOC} is out of date: run python -m tools.rollout_tables", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
