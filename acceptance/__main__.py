"""``python -m acceptance [--target offline|live] [--yes] [--only SCENARIO] [--keep]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from acceptance.cost import PRICES_AS_OF, estimate, price_per_hour
from acceptance.scenarios import SCENARIOS, Scenario
from acceptance.suite import new_run_id, run_suite, sigterm_as_interrupt
from acceptance.target import Target, TargetError

USAGE_ERROR = 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(
        prog="python -m acceptance",
        description="Acceptance scenarios for the app, offline (dev kit) or against a real workspace and app.",
    )
    parser.add_argument("--target", choices=("offline", "live"), default="offline")
    parser.add_argument("--yes", action="store_true", help="live: do not ask before creating billable resources")
    parser.add_argument(
        "--only", action="append", default=[], metavar="SCENARIO", help=f"run only these (repeatable): {names}"
    )
    parser.add_argument("--keep", action="store_true", help="leave what the run created in place (prints commands)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the suite and the app do")
    return parser.parse_args(argv)


def select(only: Sequence[str]) -> list[Scenario]:
    """The scenarios named by ``--only`` (comma-separated or repeated), all when none; ValueError names unknowns."""
    wanted = [name.strip() for item in only for name in item.split(",") if name.strip()]
    known = {s.name: s for s in SCENARIOS}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [s for s in SCENARIOS if not wanted or s.name in wanted]


def confirm_live(
    target: Target,
    scenarios: Sequence[Scenario],
    run_id: str,
    price: float | None,
    *,
    yes: bool,
    out: Callable[[str], None],
    ask: Callable[[str], str],
) -> bool:
    """Print what a live run creates, its cost and time; ask unless ``yes``. False: do not run."""
    ws = target.workspace
    out(
        f"Live run {run_id} in workspace {ws.workspace_name} (resource group {ws.resource_group}, "
        f"subscription {ws.subscription_id}). It will create, and delete afterwards:"
    )
    if price is None:
        out(f"  (no price known for {target.instance_type}; set ACCEPTANCE_PRICE_PER_HOUR to estimate the cost)")
    # A scenario this target skips before creating anything costs nothing.
    runnable = [s for s in scenarios if not (s.scripts_faults and target.cannot_script_faults())]
    production = getattr(getattr(target, "settings", None), "production", None) is not None
    plan = estimate(runnable, run_id, target.instance_type, price or 0.0, production=production)
    for line in plan.lines:
        out(line)
    cost = f"at most about ${plan.dollars:.2f}" if price is not None else "unknown"
    out(
        f"Instances: {target.instance_type}, 1 per deployment, priced at ${price or 0:.2f}/hour "
        f"(conservative list price as of {PRICES_AS_OF}, see acceptance/cost.py)."
    )
    out(f"Expected time: about {plan.minutes} minutes; expected cost: {cost}.")
    if yes:
        return True
    if not sys.stdin.isatty():
        out("Not a terminal and no --yes: refusing to create billable resources.")
        return False
    return ask("Proceed? [y/N] ").strip().lower() in ("y", "yes")


def build_target(kind: str, env: Mapping[str, str]) -> Target:
    if kind == "live":
        from acceptance.live import LiveSettings, LiveTarget

        return LiveTarget(LiveSettings.from_env(env))
    from acceptance.offline import OfflineTarget

    return OfflineTarget()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # The handler's own level: the dev kit raises the dispatcher's logger to INFO to read its outcomes.
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if args.verbose else logging.ERROR)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, handlers=[console])
    try:
        scenarios = select(args.only)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    from acceptance.live import LiveSettingsError

    try:
        target = build_target(args.target, os.environ if env is None else env)
    except LiveSettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    run_id = new_run_id()
    with sigterm_as_interrupt():
        if args.target == "live":
            from acceptance.live import LiveTarget

            assert isinstance(target, LiveTarget)
            price = price_per_hour(target.instance_type, target.settings.price_per_hour)
            if not confirm_live(target, scenarios, run_id, price, yes=args.yes, out=print, ask=input):
                print("Nothing was created.")
                return 1
        else:
            print("Starting the offline stack (AML emulator, token endpoint, Event Grid sink, Azurite) ...", flush=True)
        try:
            target.start()
            target.check()
        except TargetError as err:
            print(f"error: {err}", file=sys.stderr)
            target.stop()
            return USAGE_ERROR
        except KeyboardInterrupt:
            target.stop()
            return 130
        try:
            report = run_suite(target, scenarios, run_id=run_id, keep=args.keep)
        finally:
            target.stop()
    passed = sum(1 for r in report.results if r.outcome == "PASS")
    waiting = sum(1 for r in report.results if r.outcome == "XFAIL")
    expected = f", {waiting} failed as expected (waiting for a fix)" if waiting else ""
    print(f"{passed}/{len(scenarios)} passed{expected} on {target.name} in {report.seconds:.1f}s (run {run_id})")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
