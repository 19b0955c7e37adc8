"""The demo's status table: traffic and state agree, reasons wrap at word boundaries, lines fit the terminal."""

from __future__ import annotations

from typing import Any

from devkit import status_table

LONG = (
    "invalid tags, nothing was written to Azure ML: tag 'instance_type'='Standard_NC96ads_A100_v4': not in "
    "ALLOWED_INSTANCE_TYPES (standard_ds2_v2, standard_ds3_v2); tag 'instance_count'='40': must be a whole number"
)


def row(deployment: str, state: str, reason: str, traffic: int = 100) -> dict[str, Any]:
    return {"endpoint": "loans", "deployment": deployment, "model": "loans", "version": deployment[-1],
            "state": state, "reason": reason, "traffic": traffic}  # fmt: skip


def test_a_rollout_that_ended_live_but_lost_its_traffic_says_so_beside_its_share() -> None:
    split = {"loans-v2": 100}
    lines = status_table.render(
        [row("loans-v2", "live", "serving 100% of traffic"), row("loans-v1", "live", "serving 100% of traffic")],
        lambda r: split,
        120,
    )
    v1 = next(line for line in lines if line.startswith("loans     loans-v1"))
    assert v1.split()[3:5] == ["live", "0%"]
    assert v1.endswith("ended live at 100%; now 0%: loans-v2 100% since")
    v2 = next(line for line in lines if "loans-v2" in line.split()[1])
    assert v2.endswith("100%     serving 100% of traffic")


def test_long_reasons_wrap_at_word_boundaries_within_the_width() -> None:
    for width in (70, 100, 140):
        lines = status_table.render([row("loans-v3", "rejected", LONG)], lambda r: {}, width)
        assert all(len(line) <= width for line in lines), width
        words = {word for line in lines for word in line.split()}
        assert set(LONG.split()) <= words, width  # every word whole, none cut


def test_a_narrow_terminal_puts_the_reasons_under_their_rows() -> None:
    lines = status_table.render([row("loans-v3", "rejected", LONG)], lambda r: {}, 70)
    assert lines[1].split() == ["loans", "loans-v3", "loans:3", "rejected", "0%"]
    assert all(line.startswith(" " * status_table.BELOW) for line in lines[2:])
    wide = status_table.render([row("loans-v3", "rejected", LONG)], lambda r: {}, 140)
    assert wide[1].split()[5] == "invalid"  # wide enough: the reason column sits beside the row
