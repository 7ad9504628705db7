"""Reading a module source: cells, export marks, answer regions and hidden tests.

A module is one Python file in jupytext's percent format. Cells start with a line `# %%`;
a code cell whose first line is `#| export` becomes part of the package. Reference answers sit
between `### BEGIN SOLUTION` and `### END SOLUTION`, hidden tests between
`### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS` (nbgrader's markers).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tito.errors import TitoError

EXPORT_MARK = "#| export"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
STUB_MARK = "# YOUR CODE HERE"  # nbgrader's line above a learner's stub


class SourceError(TitoError, ValueError):
    """A module source is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Cell:
    kind: str  # "code" or "markdown"
    first_line: int  # 1-based line number of the cell's `# %%` header (0: before any header)
    lines: tuple[str, ...]  # the cell's body, without the header

    @property
    def exported(self) -> bool:
        body = [line for line in self.lines if line.strip()]
        return self.kind == "code" and bool(body) and body[0].strip() == EXPORT_MARK

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Region:
    kind: str  # "solution" or "hidden"
    begin: int  # 1-based line of the BEGIN marker
    end: int  # 1-based line of the END marker
    indent: str


def check_syntax(text: str, path: Path | str) -> None:
    """Raise SourceError naming file and line if the module is not valid Python."""
    try:
        compile(text, str(path), "exec", dont_inherit=True)
    except SyntaxError as error:
        line = (error.text or "").rstrip()
        raise SourceError(f"{path}:{error.lineno}: syntax error: {error.msg}\n    {line}") from None


def split_cells(text: str) -> list[Cell]:
    """Split percent-format text into cells (the jupytext header comment block is dropped)."""
    cells: list[Cell] = []
    kind, first, body = "code", 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            if first or any(part.strip() for part in body):
                cells.append(Cell(kind, first, tuple(body)))
            kind = "markdown" if "[markdown]" in line else "code"
            first, body = number, []
        else:
            body.append(line)
    if first or any(part.strip() for part in body):
        cells.append(Cell(kind, first, tuple(body)))
    # Before the first `# %%` sits jupytext's YAML header: metadata, not content.
    return [cell for cell in cells if cell.first_line > 0]


def find_regions(text: str, path: Path | str) -> list[Region]:
    """Locate answer and hidden-test regions; unbalanced or nested markers are errors."""
    regions: list[Region] = []
    open_kind, open_line, open_indent = None, 0, ""
    pairs = {BEGIN_SOLUTION: ("solution", END_SOLUTION), BEGIN_HIDDEN: ("hidden", END_HIDDEN)}
    ends = {END_SOLUTION: "solution", END_HIDDEN: "hidden"}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped in pairs:
            if open_kind is not None:
                raise SourceError(f"{path}:{number}: '{stripped}' inside the region opened at line {open_line}")
            open_kind, open_line = pairs[stripped][0], number
            open_indent = line[: len(line) - len(line.lstrip())]
        elif stripped in ends:
            if open_kind != ends[stripped]:
                raise SourceError(f"{path}:{number}: '{stripped}' without a matching BEGIN marker")
            regions.append(Region(open_kind, open_line, number, open_indent))
            open_kind = None
    if open_kind is not None:
        raise SourceError(f"{path}:{open_line}: region is never closed (missing END marker)")
    return regions


def enclosing_functions(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function in the source."""
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    return found


def function_of(region: Region, functions: list[tuple[int, int, str]]) -> str | None:
    """The innermost function that contains a region, or None."""
    # A function's last line is its last statement; the END marker comment may follow it.
    inside = [f for f in functions if f[0] < region.begin <= f[1]]
    return max(inside, key=lambda f: f[0])[2] if inside else None


def public_names(code: str) -> list[str]:
    """Top-level public classes, functions and assigned names, in order (for `__all__`)."""
    names: list[str] = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            candidates = [node.name]
        elif isinstance(node, ast.Assign):
            candidates = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            candidates = [node.target.id]
        else:
            candidates = []
        names += [n for n in candidates if not n.startswith("_") and n not in names and n != "__all__"]
    return names


TEACHING_NOTES = ("TODO:", "HINT:")  # the learner's instructions in a docstring


def strip_teaching_notes(code: str) -> str:
    """`code` with the TODO: / HINT: paragraphs of its docstrings removed.

    The module file keeps them for the learner; the exported package reads as a library. A
    note runs from its keyword to the next line that is indented no deeper than the keyword
    (the closing quotes, or the next paragraph); a blank line left just before the closing
    quotes goes too.
    """
    lines = code.splitlines()
    docstring_lines = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    kept, note_indent = [], None
    for number, line in enumerate(lines, start=1):
        indent = len(line) - len(line.lstrip())
        if note_indent is not None and line.strip() and indent > note_indent:
            continue  # the note goes on
        note_indent = None
        if number in docstring_lines and line.lstrip().startswith(TEACHING_NOTES):
            note_indent = indent
            continue
        if line.strip() in ('"""', "'''") and kept and not kept[-1].strip() and number in docstring_lines:
            kept.pop()  # the blank line that separated the notes from the description
        kept.append(line)
    return "\n".join(kept)
