"""Dependencies point one way: base <- library <- CLI and scripts; module N <- module N+1.

These tests read the import statements (AST), so a forbidden import fails here even when it
sits in a branch that no other test runs.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tito.project import project_manifest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE_THE_LIBRARY = ("tito", "milestones", "benchmarks", "tests")
MANIFEST = project_manifest(ROOT)


def imported_modules(path):
    """(line, dotted name) of every module that `path` imports, at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from tinytorch.core import tensor` imports a module too
                yield node.lineno, f"{node.module}.{alias.name}"


def top(name):
    return name.split(".", 1)[0]


def python_files(folder):
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_library_imports_nothing_of_the_cli_or_the_scripts():
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in python_files("tinytorch")
                 for line, name in imported_modules(path) if top(name) in OUTSIDE_THE_LIBRARY]
    assert not offenders, "the library must know nothing of the CLI and the scripts:\n" + "\n".join(offenders)


def test_the_base_imports_only_the_standard_library():
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in python_files("tinytorch_base")
                 for line, name in imported_modules(path)
                 if top(name) not in sys.stdlib_module_names and top(name) not in ("tinytorch_base", "tomli")]
    assert not offenders, "tinytorch_base sits below everything; standard library only:\n" + "\n".join(offenders)


def package_owner():
    """Which course module each exported package file belongs to."""
    return {".".join(module.package_file.with_suffix("").parts): module for module in MANIFEST.available_modules}


@pytest.mark.parametrize("module", MANIFEST.available_modules, ids=lambda m: m.name)
def test_a_module_imports_only_modules_numbered_below_it(module):
    owners = package_owner()
    later = []
    for path in (ROOT / module.source, ROOT / module.package_file):
        for line, name in imported_modules(path):
            owner = owners.get(name)
            if owner is not None and owner.number > module.number:
                later.append(f"{path.relative_to(ROOT)}:{line} imports {name} (module {owner.name})")
    assert not later, f"module {module.name} must not import a later module:\n" + "\n".join(later)


def test_rich_is_imported_only_where_the_library_prints():
    top_level = [f"{path.relative_to(ROOT)}:{node.lineno}"
                 for path in python_files("tinytorch")
                 for node in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(node, (ast.Import, ast.ImportFrom))
                 and any(top(name) == "rich" for _, name in imported_modules_of(node))]
    assert not top_level, "import rich inside the function that prints, not at module level:\n" + "\n".join(top_level)


def imported_modules_of(node):
    if isinstance(node, ast.Import):
        return [(node.lineno, alias.name) for alias in node.names]
    return [(node.lineno, node.module or "")]


def test_the_cli_runs_when_the_package_cannot_be_imported(project_copy):
    """A learner's half-written package must not take tito down with it."""
    (project_copy / "tinytorch" / "__init__.py").write_text("raise SyntaxError('a half-written module')\n")
    completed = subprocess.run([sys.executable, "-m", "tito", "module", "list"], cwd=project_copy,
                               capture_output=True, text=True, timeout=120,
                               env={"PYTHONPATH": str(project_copy), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert completed.returncode == 0, completed.stderr
    assert "01" in completed.stdout and "Tensor" in completed.stdout


# ---- the autograd contract: every recorded op has a backward rule, every rule an op -------------
def recorded_op_names():
    """Op names that the package passes to Tensor.from_op (or to module 01's _elementwise) with inputs."""
    names = {}
    for path in python_files("tinytorch/core"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if function == "from_op" and len(node.args) >= 3:
                op, inputs = node.args[1], node.args[2]
                recorded = not (isinstance(inputs, ast.Tuple) and not inputs.elts)  # () records nothing
            elif function == "_elementwise" and node.args:
                op, recorded = node.args[0], True
            else:
                continue
            if recorded and isinstance(op, ast.Constant) and isinstance(op.value, str):
                names.setdefault(op.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return names


def test_every_recorded_op_has_a_backward_rule_and_every_rule_an_op():
    # A fresh interpreter that imports every built module's package: the package's own rules only
    # (some tests register rules of their own).
    listing = subprocess.run(
        [sys.executable, "-c", "import importlib, json, tinytorch; "
                               "from tinytorch_base.manifest import load_manifest, default_manifest_path; "
                               "[importlib.import_module(m.package) for m in load_manifest(default_manifest_path()).modules "
                               "if m.available]; "
                               "from tinytorch.core.tensor import _BACKWARD_RULES; "
                               "print(json.dumps(sorted(_BACKWARD_RULES)))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    rules = set(json.loads(listing.stdout))
    recorded = recorded_op_names()
    assert len(recorded) >= 20, f"the scan found only {sorted(recorded)}: has from_op's signature changed?"
    missing = {name: where for name, where in recorded.items() if name not in rules}
    assert not missing, f"ops recorded without a backward rule (backward() would fail on them): {missing}"
    orphans = sorted(rules - set(recorded))
    assert not orphans, f"backward rules that no op records (dead code, or a misspelt op name): {orphans}"
