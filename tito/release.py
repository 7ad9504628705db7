"""`tito release --learner OUT`: the learner edition, generated from the reference sources.

Every answer region becomes a stub that keeps the signature, docstring and TODO/HINT text and
raises NotImplementedError naming the module and function; hidden tests are removed; the
edition's package is exported from the stripped modules; each module also gets an .ipynb with
nbgrader cell metadata. The edition is assembled in a temporary folder and moved into place
only when complete, so a failed release leaves nothing behind.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tinytorch_base.files import write_atomic
from tinytorch_base.manifest import CourseModule
from tito.errors import TitoError
from tito.exporter import export_modules, generated_files
from tito.project import project_manifest
from tito.source import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    STUB_MARK,
    SourceError,
    check_syntax,
    enclosing_functions,
    find_regions,
    function_of,
)
from tito.testing import project_env

# What a learner receives: the course, its tooling and the public tests (not the tooling's own tests).
RELEASE_ENTRIES = ("README.md", "LICENSE", "pyproject.toml", "tito", "tinytorch", "tinytorch_base", "modules", "milestones",
                   "benchmarks", "tests/__init__.py", "tests/conftest.py", "tests/support.py", "tests/modules",
                   "tests/checkpoints")
PRISTINE = Path(".tito") / "pristine"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.ipynb")
LEARNER_GITIGNORE = "__pycache__/\n*.pyc\n.ipynb_checkpoints/\n.tito/progress*.json\n.tito/*.lock\n.tito/backups/\n.venv/\n"


class ReleaseError(TitoError):
    """The release could not be written; nothing was left behind."""


def learner_source(module: CourseModule, text: str) -> str:
    """The module's source with answers replaced by stubs and hidden tests removed."""
    check_syntax(text, module.source)
    regions = find_regions(text, module.source)
    functions = enclosing_functions(text)
    lines = text.splitlines()
    # Work from the bottom up so that earlier line numbers stay valid.
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        if region.kind == "hidden":
            lines[region.begin - 1 : region.end] = []
            continue
        name = function_of(region, functions)
        if name is None:
            raise SourceError(f"{module.source}:{region.begin}: an answer region must sit inside a function")
        message = (
            f"Module {module.number} ({module.title}): {name} is not implemented yet; "
            f"write it in {module.source.as_posix()} (see its TODO and HINT)"
        )
        lines[region.begin - 1 : region.end] = [
            f"{region.indent}{STUB_MARK}",
            f"{region.indent}raise NotImplementedError({message!r})",
        ]
    stripped = "\n".join(lines) + "\n"
    check_syntax(stripped, module.source)
    return stripped


def notebook_json(text: str, slug: str) -> str:
    """The module as an .ipynb (paired with its .py) carrying nbgrader cell metadata.

    `text` is the learner edition (stubs under `# YOUR CODE HERE`) or the instructor's source
    (answers between `### BEGIN SOLUTION` / `### END SOLUTION`): both give the same cells and
    grade ids, so the instructor's notebook is nbgrader's source version of the learner's.
    """
    import jupytext

    notebook = jupytext.reads(text, fmt="py:percent")
    notebook.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    for index, cell in enumerate(notebook.cells):
        cell.source = _defuse_mentions(cell.source)
        if cell.cell_type != "code":
            continue
        grade_id = f"{slug}-{index:03d}"
        if STUB_MARK in cell.source or any(line.strip() == BEGIN_SOLUTION for line in cell.source.splitlines()):
            cell.metadata["nbgrader"] = {
                "grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
                "solution": True, "task": False,
            }
        else:
            tests = _test_functions(cell.source)
            if tests or any(line.strip() == BEGIN_HIDDEN for line in cell.source.splitlines()):
                cell.metadata["nbgrader"] = {
                    "grade": True, "grade_id": grade_id, "locked": True, "points": max(1, len(tests)),
                    "schema_version": 3, "solution": False, "task": False,
                }
    return jupytext.writes(notebook, fmt="ipynb")


REGION_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)


def _defuse_mentions(source: str) -> str:
    """A marker named in prose gets no-break spaces between its words (it reads the same).

    nbgrader takes any line that *contains* `BEGIN SOLUTION` (or `BEGIN HIDDEN TESTS`, ...) for
    the marker itself, and refuses a notebook whose prose names one outside an answer cell.
    Lines that are a marker stay as they are.
    """
    lines = source.split("\n")
    for number, line in enumerate(lines):
        if line.strip() not in REGION_MARKERS:
            for marker in REGION_MARKERS:
                line = line.replace(marker, marker.replace(" ", "\u00a0"))
            lines[number] = line
    return "\n".join(lines)


def _test_functions(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def release_learner(root: Path, out_dir: Path, verify_import: bool = True) -> list[Path]:
    """Write the learner edition of the project at `root` into `out_dir` (new or empty)."""
    root, out_dir = root.resolve(), out_dir.resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ReleaseError(f"{out_dir} exists and is not empty; choose a new folder or remove it first")
    if root == out_dir or root in out_dir.parents:
        raise ReleaseError(f"{out_dir} is inside the project {root}; write the release somewhere else")
    manifest = project_manifest(root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _copy_entries(root, staging)
        for path in generated_files(staging):  # re-made below from the stripped sources
            (staging / path).unlink()
        written = []
        for module in manifest.available_modules:
            text = (root / module.source).read_text(encoding="utf-8")
            stripped = learner_source(module, text)
            write_atomic(staging / module.source, stripped)
            write_atomic(staging / PRISTINE / module.source, stripped)
            notebook = staging / module.source.with_suffix(".ipynb")
            write_atomic(notebook, notebook_json(stripped, module.slug))
            written += [module.source, module.source.with_suffix(".ipynb")]
        export_modules(staging, manifest)
        write_atomic(staging / ".gitignore", LEARNER_GITIGNORE)
        if verify_import:
            _check_imports(staging)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
        return written
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_entries(root: Path, staging: Path) -> None:
    for entry in RELEASE_ENTRIES:
        source = root / entry
        target = staging / entry
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _check_imports(staging: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import tinytorch"], check=False, cwd=staging, env=project_env(staging),
        text=True, capture_output=True,
    )
    if completed.returncode != 0:
        last = completed.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise ReleaseError(f"the learner edition's package does not import: {last[0]}")


def answer_lines(text: str, path: Path | str) -> set[str]:
    """The stripped lines inside the answer regions of a source (for checking a release)."""
    lines = text.splitlines()
    found = set()
    for region in find_regions(text, path):
        if region.kind == "solution":
            found.update(re.sub(r"\s+", " ", line).strip() for line in lines[region.begin : region.end - 1])
    return {line for line in found if line and not line.startswith("#")}
