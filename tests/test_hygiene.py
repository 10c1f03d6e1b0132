"""Lint, format, types and the API reference site, on every CI run (the tools come with the
``test`` extra; a user who installed pytest alone skips them with the reason)."""

import importlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, timeout: int = 600) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    p = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{module} {' '.join(args)}:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"


def test_ruff_lint():
    _run("ruff", "check", ".")


def test_ruff_format():
    _run("ruff", "format", "--check", ".")


def _lint_imports(src: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(src)}  # the contract in pyproject.toml, over the package in src
    return subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_the_layering_contract_holds():
    """[tool.importlinter] in pyproject.toml: the layers of docs/design.md and no cycle inside a package."""
    p = _lint_imports(ROOT / "src")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


@pytest.mark.slow
def test_the_layering_contract_fails_on_an_import_cycle_and_an_import_up_the_layers(tmp_path):
    """The two the contract was written against (main before issue 42): train/step <-> train/labelled, and a
    data set importing the trainer."""
    shutil.copytree(ROOT / "src" / "vaelab", tmp_path / "vaelab", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "vaelab" / "train" / "labelled.py", "a") as f:
        f.write("\nfrom .step import compute_bound  # noqa\n")
    with open(tmp_path / "vaelab" / "train" / "step.py", "a") as f:  # as step.py's bound imported M2's then
        f.write("\nfrom .labelled import semi_supervised_bound  # noqa\n")
    with open(tmp_path / "vaelab" / "data" / "arrays.py", "a") as f:
        f.write("\nfrom ..train import load_run  # noqa\n")
    out = _lint_imports(tmp_path).stdout
    assert "vaelab.data is not allowed to import vaelab.train" in out
    assert "No cycles are allowed in vaelab.train" in out and "Contracts: 0 kept, 2 broken." in out


@pytest.mark.slow
def test_mypy_on_the_public_api():
    _run("mypy")  # files and settings: [tool.mypy] in pyproject.toml


@pytest.mark.slow
def test_api_reference_site_builds_without_warnings(tmp_path):
    _run("mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))


PACKAGES = [
    "vaelab",
    "vaelab.config",
    "vaelab.data",
    "vaelab.distributions",
    "vaelab.models",
    "vaelab.nets",
    "vaelab.objectives",
    "vaelab.estimators",
    "vaelab.train",
    "vaelab.evaluation",
    "vaelab.inference",
    "vaelab.vi",
    "vaelab.text",
    "vaelab.errors",
    "vaelab.checkpoint",
]


def test_every_public_class_and_function_has_a_docstring():
    missing = []
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")]):
            obj = getattr(module, attr)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
                missing.append(f"{name}.{attr}")
    assert not missing, f"public API without a docstring: {missing}"
