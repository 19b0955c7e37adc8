"""``make bench``'s ack-path row against the dev kit: the requests "after it returned" are those of the quiet window,
not the ticks that drive the rollout to live afterwards."""

from __future__ import annotations

import pytest

import bench.__main__ as bench
from devkit.harness import OfflineApp, app_environment
from devkit.stack import DevStack

pytestmark = pytest.mark.integration


def test_the_ack_path_row_counts_only_the_quiet_window_after_the_acknowledgement(stack: DevStack) -> None:
    with app_environment(stack):
        ack, live = bench._one_rollout(OfflineApp(stack), 1, "new endpoint", {"deploy": "true"}, 0.5)
    assert ack[0] == "ack path, new endpoint" and ack[3].startswith("0 ARM requests in the")
    assert ack[4] == ""  # no goal missed: nothing was sent in the quiet window
    assert live[1].endswith("ticks") and int(live[1].split()[0]) >= 1  # the ticks did send requests, afterwards
