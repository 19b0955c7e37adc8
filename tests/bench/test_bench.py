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
    assert "import azure.functions" in _rows(seen_before["second import"])[-1]
    assert _rows(seen_before["rollouts"])[-1].startswith("import function_app")
    assert seen_before["rollouts"].splitlines()[-1].startswith("  .. ")  # says what it measures next
    rest = capsys.readouterr()
    assert rest.out.splitlines()[0].startswith("idle reconciler tick")
    assert "did not exist" not in rest.out + rest.err  # routine information is not shown as a problem


def _rows(text: str) -> list[str]:
    """The table's lines, without the progress lines between them."""
    return [line for line in text.splitlines() if not line.startswith("  .. ")]


def test_a_figure_that_misses_its_goal_says_so_on_its_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def imports(runs: int) -> Iterator[bench.Row]:
        yield ("import azure.functions", "200 ms", "28 MiB", "1.00x", "")
        yield ("import function_app", "340 ms", "29 MiB", "1.70x", "1.70x > 1.5x azure.functions")

    _run_bench(monkeypatch, imports, lambda quiet_seconds: iter(()))
    lines = {line.split()[1]: line for line in _rows(capsys.readouterr().out) if line.startswith("import ")}
    assert lines["function_app"].endswith("[MISSES GOAL: 1.70x > 1.5x azure.functions]")
    assert "MISSES GOAL" not in lines["azure.functions"]


def test_the_import_row_is_checked_against_its_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = iter([0.1, 0.1, 0.17, 0.17, 1.0, 1.0])

    class Done:
        def __init__(self, seconds: float) -> None:
            self.stdout = f'{{"seconds": {seconds}, "rss_mib": 30, "aml_loaded": false}}'

    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: Done(next(samples)))
    rows = {row[0]: row for row in bench.cold_import(2)}
    assert rows["import function_app"][4] == "1.70x > 1.5x azure.functions"
    assert rows["import azure.functions"][4] == "" and rows["import azure.ai.ml"][4] == ""


def test_the_flags_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for wrong in (["--scale", "--bursts", "10,x"], ["--scale", "--workers", "0"], ["--scale", "--lapse", "500"]):
        with pytest.raises(SystemExit) as refused:
            bench.main(wrong)
        assert refused.value.code == 2
    assert "--bursts" in capsys.readouterr().err


def test_a_real_warning_reaches_the_console_labelled_as_the_apps_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rollouts(quiet_seconds: float) -> Iterator[bench.Row]:
        logging.getLogger("app.rollout.run.engine").warning("rollout credit/credit-v1 attempt 1 failed")
        yield ("idle reconciler tick", "0 ARM requests", "", "")

    _run_bench(monkeypatch, lambda runs: iter(()), rollouts)
    out = capsys.readouterr().out
    assert "  (app log) WARNING app.rollout.run.engine: rollout credit/credit-v1 attempt 1 failed" in out
