"""docs/rollout.md's state diagram and operator table are what the tables of the code say."""

from __future__ import annotations

import pytest

from app.rollout.decide.model import State
from app.rollout.decide.table import ROWS
from tools import rollout_tables

pytestmark = pytest.mark.fast


def test_the_generated_blocks_of_docs_rollout_md_are_up_to_date() -> None:
    assert rollout_tables.main(["--check"]) == 0, "run python -m tools.rollout_tables and commit docs/rollout.md"


def test_the_diagram_draws_every_row_and_the_table_every_state() -> None:
    drawn = rollout_tables.diagram()
    for row in ROWS:
        source = row.source.value if row.source else "[*]"
        assert f"{source} --> {row.target.value}: " in drawn
    header = rollout_tables.operator_table().splitlines()[0]
    assert all(state.value in header for state in State)
