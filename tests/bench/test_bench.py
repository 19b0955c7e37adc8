"""``make bench`` shows each figure as soon as it is measured, and no routine log line on the way."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

import bench.__main__ as bench

pytestmark = pytest.mark.fast


def _run_bench(
    monkeypatch: pytest.MonkeyPatch,
    imports: Callable[[int], Iterator[bench.Row]],
    rollouts: Callable[[float], Iterator[bench.Row]],
) -> int:
    """``make bench`` with these two measurements and no others (the history rows: tests/integration/
    test_history.py); the root logger's handlers, which ``main`` replaces, are put back afterwards."""
    monkeypatch.setattr(bench, "cold_import", imports)
    monkeypatch.setattr(bench, "rollouts", rollouts)
    monkeypatch.setattr(bench, "history", lambda rows: iter(()))
    monkeypatch.setattr(bench, "event_to_live", lambda: iter(()))
    monkeypatch.setattr(bench, "reads_while_baking", lambda: iter(()))
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        return bench.main(["--runs", "1", "--quiet-seconds", "0"])
    finally:
        root.handlers[:] = handlers


def test_each_row_is_printed_before_the_next_measurement_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_before: dict[str, str] = {}

    def imports(runs: int) -> Iterator[bench.Row]:
        yield ("import azure.functions", "200 ms", "28 MiB", "1.00x")
        seen_before["second import"] = capsys.readouterr().out
        yield ("import function_app", "230 ms", "29 MiB", "1.15x")

    def rollouts(quiet_seconds: float) -> Iterator[bench.Row]:
        seen_before["rollouts"] = capsys.readouterr().out
        logging.getLogger("app.azure.tables").info("table rollouts did not exist (new, or deleted since); created it")
        yield ("idle reconciler tick", "0 ARM requests", "", "")

    assert _run_bench(monkeypatch, imports, rollouts) == 0
    assert "measure" in seen_before["second import"]
    assert "import azure.functions" in seen_before["second import"].splitlines()[-1]
    assert seen_before["rollouts"].splitlines()[-1].startswith("import function_app")
    rest = capsys.readouterr()
    assert rest.out.splitlines()[0].startswith("idle reconciler tick")
    assert "did not exist" not in rest.out + rest.err  # routine information is not shown as a problem


def test_a_real_warning_reaches_the_console_labelled_as_the_apps_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rollouts(quiet_seconds: float) -> Iterator[bench.Row]:
        logging.getLogger("app.rollout.run.engine").warning("rollout credit/credit-v1 attempt 1 failed")
        yield ("idle reconciler tick", "0 ARM requests", "", "")

    _run_bench(monkeypatch, lambda runs: iter(()), rollouts)
    out = capsys.readouterr().out
    assert "  (app log) WARNING app.rollout.run.engine: rollout credit/credit-v1 attempt 1 failed" in out
