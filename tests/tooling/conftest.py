"""Fixtures for the tooling tests: the repository itself, and throwaway copies of it."""

import shutil
from pathlib import Path

import pytest

from tito.project import project_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def manifest():
    return project_manifest(ROOT)


@pytest.fixture
def project_copy(tmp_path):
    """A copy of the parts of the project that export and release read."""
    target = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for entry in ("tinytorch", "tinytorch_base", "modules", "tito", "tests"):
        shutil.copytree(ROOT / entry, target / entry, ignore=ignore)
    for entry in ("pyproject.toml", "README.md"):
        if (ROOT / entry).exists():
            shutil.copy2(ROOT / entry, target / entry)
    return target
