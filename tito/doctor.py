"""`tito system doctor | info`: is this machine ready for the course, and if not, how to fix it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tito.exporter import ExportError, check_all
from tito.project import project_manifest
from tito.testing import project_env


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # the exact command that fixes it
    required: bool = True


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def collect_checks(root: Path) -> list[Check]:
    checks = []
    python_ok = sys.version_info >= (3, 10)
    checks.append(Check("Python >= 3.10", python_ok, platform.python_version(),
                        "install Python 3.10 or newer, then: pip install -e ."))
    for package in ("numpy", "rich", "matplotlib", "safetensors"):  # pyproject.toml's dependencies
        version = _version(package)
        checks.append(Check(package, version is not None, version or "missing", 'pip install -e .'))

    imported = subprocess.run([sys.executable, "-c", "import tinytorch"], cwd=root,
                              env=project_env(root), capture_output=True, text=True)
    detail = "imports" if imported.returncode == 0 else (imported.stderr.strip().splitlines() or ["?"])[-1]
    checks.append(Check("tinytorch package importable", imported.returncode == 0, detail,
                        "tito export --all"))

    try:
        problems = check_all(root, project_manifest(root))
        sync_detail = "in sync" if not problems else "; ".join(problems)
    except ExportError as error:
        problems, sync_detail = [str(error)], str(error)
    checks.append(Check("modules and package in sync", not problems, sync_detail, "tito export --all"))

    for package in ("pytest", "hypothesis"):
        checks.append(Check(f"{package} (test suite)", _installed(package), _version(package) or "missing",
                            'pip install -e ".[test]"'))
    notebooks = _installed("jupytext") and _installed("jupyterlab")
    checks.append(Check("jupyterlab + jupytext (modules as notebooks)", notebooks,
                        f"jupytext {_version('jupytext') or 'missing'}, jupyterlab {_version('jupyterlab') or 'missing'}",
                        'pip install -e ".[notebooks]"', required=False))
    checks.append(Check("torch (reference for parity tests)", _installed("torch"), _version("torch") or "missing",
                        "pip install torch==2.13.0", required=False))
    return checks


def system_info(root: Path | None) -> list[tuple[str, str]]:
    rows = [
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("Platform", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("numpy", _version("numpy") or "missing"),
        ("tinytorch", _version("tinytorch") or "not installed (pip install -e .)"),
    ]
    if root is not None:
        manifest = project_manifest(root)
        rows.append(("Project", str(root)))
        rows.append(("Modules built", f"{len(manifest.available_modules)} of {len(manifest.modules)}"))
    return rows
