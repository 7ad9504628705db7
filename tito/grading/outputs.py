"""What `tito grade` writes, and `tito grade report DIR`.

OUT/gradebook.csv              one row per learner (learner, module, passed, total, points, ...)
OUT/feedback/<learner>.md      for the learner: each failed test's name and message (hidden
                               tests named, their code and message not shown)
OUT/results/<learner>/results.json   the same in Gradescope's autograder format
OUT/logs/<learner>.txt         for the instructor only: every failure in full, hidden ones
                               included, and the head of what the learner's code printed
OUT/report.html                `tito grade report OUT`: the roster x module matrix

Every name under OUT is made from the learner's folder name by `safe_stem`, and `inside`
checks that it stays in OUT. Text from submissions is escaped for CSV (no spreadsheet
formulas), Markdown (code fences longer than any run of backticks) and HTML.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from tinytorch_base.files import write_atomic
from tito.errors import TitoError
from tito.grading.grade import Context, LearnerResult, inside
from tito.grading.suite import HIDDEN

COLUMNS = ("learner", "module", "passed", "total", "points", "max_points", "status", "seconds", "sandbox", "note")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPLAIN = {
    "ok": "Every test passed.",
    "failed": "Some tests failed; each one is listed below.",
    "timeout": "Your code ran out of time (an endless loop, or much slower than it should be), so no test "
               "was counted.",
    "out-of-memory": "Your code ran out of memory (it asked for far more than the task needs).",
    "crash": "The Python process running your code crashed, so no test was counted.",
    "no-report": "The tests could not report: your code ended the process (os._exit, sys.exit at import), "
                 "or nothing could be graded; no test was counted.",
}


def write_all(out: Path, results: list[LearnerResult], context: Context) -> None:
    for result in results:
        write_atomic(inside(out, "feedback", f"{result.stem}.md"), feedback(result))
        write_atomic(inside(out, "results", result.stem, "results.json"),
                     json.dumps(gradescope(result), indent=2, ensure_ascii=False) + "\n")
        write_atomic(inside(out, "logs", f"{result.stem}.txt"), log(result))
    write_atomic(inside(out, "gradebook.csv"), gradebook_csv(results))


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def gradebook_csv(results: list[LearnerResult]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in sorted(results, key=lambda r: r.learner):
        writer.writerow([_cell(v) for v in (r.learner, r.module.name, r.passed, r.total, f"{r.points:g}",
                                            f"{r.max_points:g}", r.status, f"{r.seconds:.2f}", r.sandbox, r.note)])
    return stream.getvalue()


def short_name(test_id: str) -> str:
    """`tests/modules/test_01_tensor.py::test_add[x]` -> `test_01_tensor.py::test_add[x]`."""
    path, _, name = test_id.partition("::")
    return f"{path.rsplit('/', 1)[-1]}::{name}" if name else test_id


def _fence(text: str) -> str:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def feedback(result: LearnerResult) -> str:
    module = result.module
    lines = [f"# Module {module.number} ({module.title}): feedback", "",
             f"Learner: {result.learner}", "",
             (f"Status: **{result.status}**. Tests passed: {result.passed} of {result.total}. "
              f"Points: {result.points:g} of {result.max_points:g}."), "", EXPLAIN.get(result.status, "")]
    if result.note:
        public = [part for part in result.note.split("; ") if not part.startswith("review:")]
        if public:
            lines += ["", "Note: " + "; ".join(public)]
    failed = [t for t in result.tests if not t.passed]
    if failed and result.passed < result.total:
        lines += ["", f"## Failed tests ({len(failed)})", ""]
        for test in failed:
            name = short_name(test.id)
            if test.kind == HIDDEN:
                lines += [f"- `{name}` (hidden test: its code and message are not shown)"]
            else:
                fence = _fence(test.message)
                lines += [f"- `{name}`", "", f"  {fence}text", *[f"  {line}" for line in test.message.splitlines()],
                          f"  {fence}"]
    return "\n".join(lines).rstrip() + "\n"


def gradescope(result: LearnerResult) -> dict:
    """Gradescope's autograder results format (results.json)."""
    per_test = result.max_points / result.total if result.total else 0.0
    tests = []
    for number, test in enumerate(result.tests, start=1):
        if test.passed:
            output = ""
        elif test.kind == HIDDEN:
            output = "hidden test: failed (its code and message are not shown)"
        else:
            output = test.message
        tests.append({"number": str(number), "name": short_name(test.id),
                      "score": round(per_test, 4) if test.passed else 0.0, "max_score": round(per_test, 4),
                      "status": "passed" if test.passed else "failed", "output": output, "visibility": "visible"})
    summary = f"{result.status}: {result.passed} of {result.total} tests passed. {EXPLAIN.get(result.status, '')}"
    return {"score": result.points, "execution_time": round(result.seconds), "output": summary,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"status": result.status, "module": result.module.name}}


def log(result: LearnerResult) -> str:
    lines = [f"learner: {result.learner}", f"module: {result.module.name}", f"status: {result.status}",
             f"passed: {result.passed} of {result.total}; points {result.points:g} of {result.max_points:g}",
             f"seconds: {result.seconds:.2f}", f"sandbox: {result.sandbox}", f"note: {result.note}", "",
             result.extra, ""]
    for test in result.tests:
        if not test.passed:
            lines += [f"--- FAILED ({test.kind}) {test.id}", test.message, test.detail, ""]
    lines += [f"--- output of the learner's run: {result.output_bytes} bytes"
              + (f" (the first {len(result.output.encode('utf-8'))} kept)" if result.output_bytes > len(result.output) else ""),
              result.output]
    return "\n".join(lines) + "\n"


# ---- tito grade report ----------------------------------------------------------------------------
def read_gradebooks(folder: Path) -> list[dict]:
    """Rows of folder/gradebook.csv and of folder/*/gradebook.csv (one folder per graded module)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TitoError(f"{folder}: no such folder (give the --out folder of `tito grade`, or its parent)")
    books = [folder / "gradebook.csv"] + sorted(folder.glob("*/gradebook.csv"))
    rows: dict[tuple[str, str], dict] = {}
    for book in books:
        if not book.is_file():
            continue
        with book.open(encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or not {"learner", "module", "points", "status"} <= set(reader.fieldnames):
                raise TitoError(f"{book} is not a tito gradebook (its header lacks learner, module, points, status)")
            for row in reader:
                row = {key: _uncell(value or "") for key, value in row.items() if key}
                rows[(row["learner"], row["module"])] = row
    if not rows:
        raise TitoError(f"no gradebook.csv in {folder} or its sub-folders; run `tito grade` first")
    return list(rows.values())


def matrix(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    learners = sorted({r["learner"] for r in rows})
    modules = sorted({r["module"] for r in rows})
    return learners, modules, {(r["learner"], r["module"]): r for r in rows}


def cell_text(row: dict | None) -> str:
    if row is None:
        return "-"
    points = f"{row.get('points', '?')}/{row.get('max_points') or row.get('total', '?')}"
    return points if row.get("status") == "ok" else f"{points} {row.get('status', '?')}"


def report_html(rows: list[dict]) -> str:
    learners, modules, cells = matrix(rows)
    warnings = sorted({r.get("sandbox", "") for r in rows if "WARNING" in r.get("sandbox", "")})
    escape = html.escape
    head = "".join(f"<th>{escape(m)}</th>" for m in modules)
    body = []
    for learner in learners:
        tds = []
        for module in modules:
            row = cells.get((learner, module))
            status = (row or {}).get("status", "missing")
            title = escape((row or {}).get("note", ""), quote=True)
            css = status.replace("-", "") if status.replace("-", "").isalpha() else "other"
            tds.append(f'<td class="{escape(css)}" '
                       f'title="{title}">{escape(cell_text(row))}</td>')
        body.append(f"<tr><th>{escape(learner)}</th>{''.join(tds)}</tr>")
    notes = "".join(f'<p class="warning">{escape(w)}</p>' for w in warnings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>TinyTorch gradebook</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
td.ok {{ background: #e3f6e3; }} td.failed {{ background: #fff4d6; }}
td.timeout, td.outofmemory, td.crash, td.noreport, td.other {{ background: #fbe0e0; }}
.warning {{ color: #a00; font-weight: bold; }}
</style></head><body>
<h1>TinyTorch gradebook</h1>
{notes}<table><thead><tr><th>learner</th>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p>Each cell: points / maximum, then the status when it is not ok. Hover a cell for its note.</p>
</body></html>
"""
