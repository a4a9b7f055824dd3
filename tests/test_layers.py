"""The layers run one way: scripts -> suite -> architectures. Nothing in the package imports a
top-level module of the repository (datasets.py, aux.py, the scripts), and architectures/ does
not import suite/, so the package works wherever it is installed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = {path.stem for path in REPO.glob("*.py")}  # datasets, aux, train, eval, grid, ...
PACKAGE_FILES = sorted((REPO / "suite").rglob("*.py")) + sorted((REPO / "architectures").rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """First component of every absolute import (relative imports stay inside the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_scan_sees_the_package_and_the_top_level_modules():
    assert {"datasets", "aux", "train", "grid"} <= TOP_LEVEL
    assert any(p.name == "training.py" for p in PACKAGE_FILES) and any(p.name == "base.py" for p in PACKAGE_FILES)
    assert "architectures" in imported_modules(REPO / "suite" / "recipe.py")  # the scan finds real imports


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_import_runs_back_to_a_top_level_module(path: Path):
    backwards = imported_modules(path) & TOP_LEVEL
    assert not backwards, f"{path.relative_to(REPO)} imports top-level module(s) {sorted(backwards)}"
    if path.is_relative_to(REPO / "architectures"):
        assert "suite" not in imported_modules(path), f"{path.relative_to(REPO)} imports suite (a layer above)"


def test_no_module_edits_the_import_path():
    """`pip install -e .` makes the package importable: no sys.path edits, no PYTHONPATH injection."""
    offenders = [str(path.relative_to(REPO)) for path in PACKAGE_FILES + sorted((REPO / "benchmarks").glob("*.py"))
                 if "sys.path.insert" in path.read_text() or "PYTHONPATH" in path.read_text()]
    assert not offenders, offenders
