"""The tests that grade a module, gathered from the instructor's edition.

By default a module is graded by
- its test file, tests/modules/test_NN_slug.py (the learner has it: its tests are *visible*);
- the test functions of the module's own test cells, as the instructor's edition writes them:
  those holding a `### BEGIN HIDDEN TESTS` region are *hidden* (the learner's copy lacks their
  hidden lines), the others visible.
`--hidden PATH` (a test file, or a folder of test_*.py files) replaces that suite; its tests
are all hidden. Every source travels to the sandbox on the harness's standard input: none of
them is ever written to the sandbox's file system.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch_base.manifest import CourseModule
from tito.errors import TitoError
from tito.source import check_syntax, find_regions, split_cells

VISIBLE, HIDDEN = "visible", "hidden"
MAX_TEST_FILE = 4 * 1024 * 1024


@dataclass
class Suite:
    module: CourseModule
    modules: list[dict]  # {"path": relative path, "module": import name, "source": text}
    kinds: dict[str, str] = field(default_factory=dict)  # "path::function" -> visible / hidden
    support: dict[str, dict] = field(default_factory=dict)  # importable helpers (tests.support, ...)
    plugins: list[dict] = field(default_factory=list)  # the course's tests/conftest.py

    def kind(self, test_id: str) -> str:
        function = test_id.split("[", 1)[0]
        return self.kinds.get(function, HIDDEN)  # unknown: hidden, the safe side

    def payload(self, tree: str) -> tuple[dict, dict]:
        """(suites, support) as the harness reads them, with paths under `tree`."""
        def where(path: str) -> str:
            return f"{tree}/{path}"

        suites = {
            "modules": [{"path": where(m["path"]), "module": m["module"], "source": m["source"]}
                        for m in self.modules],
            "plugins": [{"name": p["name"], "path": where(p["path"]), "source": p["source"]} for p in self.plugins],
        }
        support = {name: {**entry, "path": where(entry["path"])} for name, entry in self.support.items()}
        return suites, support


def default_suite(root: Path, module: CourseModule) -> Suite:
    suite = Suite(module, [])
    test_file = root / module.test_file
    if test_file.is_file():
        _add_file(suite, test_file, module.test_file.as_posix(), ".".join(module.test_file.with_suffix("").parts),
                  VISIBLE)
    inline, kinds = inline_tests(module, (root / module.source).read_text(encoding="utf-8"))
    if inline is not None:
        path = module.source.as_posix()
        suite.modules.append({"path": path, "module": f"tito_inline_tests.{module.slug}", "source": inline})
        suite.kinds.update({f"{path}::{name}": kind for name, kind in kinds.items()})
    _add_support(root, suite)
    if not suite.modules:
        raise TitoError(f"module {module.name} has no tests to grade with: neither {module.test_file.as_posix()} "
                        "nor test cells in its source; give some with --hidden PATH")
    return suite


def hidden_suite(root: Path, module: CourseModule, hidden: Path) -> Suite:
    hidden = hidden.resolve()
    if hidden.is_dir():
        files = sorted(p for p in hidden.rglob("test_*.py") if "__pycache__" not in p.parts)
    elif hidden.is_file():
        files = [hidden]
    else:
        raise TitoError(f"--hidden {hidden}: no such file or folder")
    if not files:
        raise TitoError(f"--hidden {hidden}: no test_*.py files in it")
    suite = Suite(module, [])
    base = hidden if hidden.is_dir() else hidden.parent
    for number, path in enumerate(files):
        relative = path.relative_to(base).as_posix()
        _add_file(suite, path, f"hidden/{relative}", f"tito_hidden_tests.t{number}_{path.stem}", HIDDEN)
    if hidden.is_dir() and (hidden / "conftest.py").is_file():
        suite.plugins.append({"name": "tito_hidden_tests.conftest", "path": "hidden/conftest.py",
                              "source": (hidden / "conftest.py").read_text(encoding="utf-8")})
    _add_support(root, suite)
    return suite


def _add_file(suite: Suite, path: Path, inside: str, name: str, kind: str) -> None:
    if path.stat().st_size > MAX_TEST_FILE:
        raise TitoError(f"{path}: a test file over {MAX_TEST_FILE // 1024**2} MB; is it the right file?")
    source = path.read_text(encoding="utf-8")
    check_syntax(source, path)
    suite.modules.append({"path": inside, "module": name, "source": source})
    for function in _test_names(source):
        suite.kinds[f"{inside}::{function}"] = kind
    for class_name, methods in _test_classes(source):
        for method in methods:
            suite.kinds[f"{inside}::{class_name}::{method}"] = kind


def _test_names(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")]


def _test_classes(source: str) -> list[tuple[str, list[str]]]:
    return [(n.name, [m.name for m in n.body if isinstance(m, ast.FunctionDef) and m.name.startswith("test")])
            for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")]


def _add_support(root: Path, suite: Suite) -> None:
    """tests/*.py and tests/modules/*.py that are not tests: what test files import (tests.support)."""
    for folder in ("tests", "tests/modules"):
        for path in sorted((root / folder).glob("*.py")):
            if path.name.startswith("test_"):
                continue
            relative = path.relative_to(root).as_posix()
            source = path.read_text(encoding="utf-8")
            if path.name == "conftest.py":
                if folder == "tests":
                    suite.plugins.append({"name": "tests.conftest", "path": relative, "source": source})
                continue
            parts = path.relative_to(root).with_suffix("").parts
            package = path.name == "__init__.py"
            name = ".".join(parts[:-1] if package else parts)
            suite.support[name] = {"path": relative, "source": source, "package": package}


def inline_tests(module: CourseModule, text: str) -> tuple[str | None, dict[str, str]]:
    """The test functions of a module's test cells, as one test file run against the package.

    The file imports the learner's exported package (every name of it, private helpers too),
    the imports of the module's cells, and the helper functions and classes of its test cells,
    then defines the tests. Returns (source, {test name: visible/hidden}); None without tests.
    """
    check_syntax(text, module.source)
    hidden_lines = {n for r in find_regions(text, module.source) if r.kind == "hidden" for n in range(r.begin, r.end + 1)}
    imports, helpers, tests, kinds = [], [], [], {}
    lines = text.splitlines()
    for cell in split_cells(text):
        if cell.kind != "code":
            continue
        body = "\n".join(cell.lines)
        try:
            tree = ast.parse(body)
        except SyntaxError:
            continue  # a cell that only parses with its neighbours: not a test cell
        offset = cell.first_line  # the cell's body starts on the line after its header
        for node in tree.body:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
            segment = "\n".join(lines[offset + first - 1: offset + node.end_lineno])
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(segment)
            elif cell.exported:
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                tests.append(segment)
                span = range(offset + node.lineno, offset + node.end_lineno + 1)
                kinds[node.name] = HIDDEN if any(n in hidden_lines for n in span) else VISIBLE
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                helpers.append(segment)
    if not tests:
        return None, {}
    header = [
        f'"""The test cells of {module.source.as_posix()} (instructor\'s edition), run on the learner\'s package."""',
        *imports,
        "import importlib as _tito_importlib",
        f"_tito_package = _tito_importlib.import_module({module.package!r})",
        "globals().update({_k: _v for _k, _v in vars(_tito_package).items() if not _k.startswith('__')})",
        "del _tito_importlib, _tito_package",
    ]
    source = "\n".join(header) + "\n\n\n" + "\n\n\n".join(helpers + tests) + "\n"
    check_syntax(source, module.source)
    return source, kinds
