"""The pinned locks agree with the hand-edited ranges, on every supported Python, and deploy as intended."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.fast

ROOT = Path(__file__).parents[1]
LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}


def supported_pythons() -> list[str]:
    match = re.search(r"^SUPPORTED_PYTHONS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile has no SUPPORTED_PYTHONS line"
    return match.group(1).split()


SUPPORTED = supported_pythons()


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    via: tuple[str, ...]  # the lock's "# via" annotation: who asked for it


def ranges(in_file: str) -> list[Requirement]:
    """The requirements of an .in file, following -r includes (-c constraints are not requirements)."""
    found: list[Requirement] = []
    for raw in (ROOT / in_file).read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#") or line.startswith("-c "):
            continue
        if line.startswith("-r "):
            found += ranges(line[3:].strip())
            continue
        found.append(Requirement(line))
    return found


def pins(lock: str) -> list[Pin]:
    found: list[Pin] = []
    requirement: Requirement | None = None
    via: list[str] = []
    for line in [*(ROOT / lock).read_text().splitlines(), "<end>"]:
        if line.startswith("    #"):
            via += [part.strip() for part in line.strip("# ").removeprefix("via").split("\n") if part.strip()]
            continue
        if line.startswith("#") or not line.strip():
            continue
        if requirement is not None:
            found.append(Pin(requirement, tuple(via)))
        requirement, via = (None if line == "<end>" else Requirement(line)), []
    return found


def environment(python: str) -> dict[str, str]:
    return {**default_environment(), "python_version": python, "python_full_version": f"{python}.0"}


def applies(requirement: Requirement, python: str) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(environment(python))


def pinned_versions(lock: str, python: str) -> dict[str, str]:
    versions: dict[str, str] = {}
    for pin in pins(lock):
        if not applies(pin.requirement, python):
            continue
        name = canonicalize_name(pin.requirement.name)
        (specifier,) = pin.requirement.specifier
        assert specifier.operator == "==", f"{lock}: {pin.requirement} is not pinned with =="
        assert name not in versions, f"{lock}: {name} is pinned twice for Python {python}"
        versions[name] = specifier.version
    return versions


@pytest.mark.parametrize("python", SUPPORTED)
@pytest.mark.parametrize(("in_file", "lock"), LOCKS.items())
def test_every_range_is_pinned_within_it(in_file: str, lock: str, python: str) -> None:
    versions = pinned_versions(lock, python)
    for wanted in ranges(in_file):
        if not applies(wanted, python):
            continue
        name = canonicalize_name(wanted.name)
        assert name in versions, f"{lock} has no pin for {wanted} on Python {python}: run make lock"
        assert wanted.specifier.contains(versions[name], prereleases=True), (
            f"{lock} pins {name}=={versions[name]} outside {in_file}'s {wanted} on Python {python}: run make lock"
        )


@pytest.mark.parametrize(("in_file", "lock"), LOCKS.items())
def test_the_lock_asks_for_nothing_the_ranges_dropped(in_file: str, lock: str) -> None:
    wanted = {canonicalize_name(requirement.name) for requirement in ranges(in_file)}
    direct = {
        canonicalize_name(pin.requirement.name)
        for pin in pins(lock)
        if any(source.startswith("-r requirements") for source in pin.via)
    }
    assert direct == wanted, f"{lock} and {in_file} disagree on the direct requirements: run make lock"


@pytest.mark.parametrize("python", SUPPORTED)
def test_the_dev_lock_tests_what_is_deployed(python: str) -> None:
    deployed = pinned_versions("requirements.txt", python)
    tested = pinned_versions("requirements-dev.txt", python)
    assert deployed, "requirements.txt pins nothing"
    differ = {name: (version, tested.get(name)) for name, version in deployed.items() if tested.get(name) != version}
    assert not differ, f"requirements-dev.txt differs from requirements.txt (deployed, tested): {differ}"


def test_python_313_gets_the_functions_2x_library_and_a_pinned_worker() -> None:
    on_311 = pinned_versions("requirements.txt", "3.11")
    on_313 = pinned_versions("requirements.txt", "3.13")
    assert on_311["azure-functions"].startswith("1.")
    assert "azure-functions-runtime" not in on_311
    assert on_313["azure-functions"].startswith("2.")
    assert "azure-functions-runtime" in on_313
    assert on_313["azure-mgmt-machinelearningservices"] == "2.0.0b2"


def test_the_deployed_python_is_the_newest_supported_one() -> None:
    bicep = (ROOT / "infra/app/function.bicep").read_text()
    runtime = re.search(r"runtime: \{\s*name: 'python'\s*version: '([\d.]+)'", bicep)
    assert runtime, "infra/app/function.bicep sets no Python runtime"
    assert runtime.group(1) == max(SUPPORTED, key=lambda version: tuple(map(int, version.split("."))))


def test_the_deploy_package_carries_the_lock_and_leaves_the_dev_files_out() -> None:
    ignored = set((ROOT / ".funcignore").read_text().split())
    assert "requirements.txt" not in ignored  # Azure's remote build installs it
    assert {"requirements.in", "requirements-dev.in", "requirements-dev.txt", "Makefile", "tests/"} <= ignored
