"""``pip install .`` gives the CLI alone, with its own small dependency list; it imports no app code; the dev
virtualenv has its console script; the deployed function package leaves it out."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.test_locks import pins

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tools" / "aml_rollouts"
APP_PACKAGES = {"shared", "handlers", "devkit", "function_app", "acceptance", "bench", "tests"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy of what the package is made of, so the build leaves nothing in the checkout.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "tools", source / "tools", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "-w", str(out), str(source)], check=True, capture_output=True, timeout=180)
    [built] = out.glob("aml_rollouts-*.whl")
    return zipfile.ZipFile(built)


def _metadata(wheel: zipfile.ZipFile, name: str) -> str:
    [path] = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_the_wheel_holds_the_cli_alone_with_its_dashboard_assets(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"aml_rollouts", next(t for t in tops if t.endswith(".dist-info"))}
    names = set(wheel.namelist())
    assert {"aml_rollouts/cli.py", "aml_rollouts/dashboard/server.py", "aml_rollouts/dashboard/static/app.js"} <= names
    assert {"aml_rollouts/dashboard/static/index.html", "aml_rollouts/dashboard/static/app.css"} <= names


def test_its_dependencies_are_small_and_the_heavy_ones_are_extras(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(_metadata(wheel, "METADATA"))
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    core = {r.name for r in requires if r.marker is None}
    extras = {r.name: str(r.marker) for r in requires if r.marker is not None}
    assert core == {"requests", "rich"}
    assert 'extra == "entra"' in extras["azure-identity"] and 'extra == "dashboard"' in extras["plotly"]
    assert "aml-rollouts = aml_rollouts.cli:main" in _metadata(wheel, "entry_points.txt")


def test_the_dev_lock_satisfies_the_cli_s_ranges() -> None:
    """`make install` tests the CLI with what `pip install .` would accept."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    locked = {p.requirement.name: p.requirement for p in pins("requirements-dev.txt")}
    for text in ranges:
        wanted = Requirement(text)
        pinned = next(iter(locked[wanted.name].specifier)).version
        assert wanted.specifier.contains(pinned), f"{wanted} does not accept the dev lock's {pinned}"


def test_the_cli_imports_no_app_code() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & APP_PACKAGES, f"{path.name} imports {names}"


def test_the_console_script_is_installed_and_the_function_package_leaves_it_out() -> None:
    script = Path(sys.executable).parent / "aml-rollouts"
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0 and ran.stdout.startswith("aml-rollouts ")
    assert "tools/" in (ROOT / ".funcignore").read_text().split()
