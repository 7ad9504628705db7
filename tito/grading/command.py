"""The `tito grade` command line: grade a module's submissions, or show the gradebooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tito.errors import TitoError
from tito.grading import outputs
from tito.grading.grade import GradeOptions, grade
from tito.grading.sandbox import MODES, Limits
from tito.project import find_root, project_manifest

console = Console(highlight=False, soft_wrap=True)
STATUS_STYLE = {"ok": "green", "failed": "yellow"}

DESCRIPTION = """\
Grade every learner's module in a sandbox, with tests the learner never sees.

  tito grade SUBMISSIONS --module NN [--hidden TESTS] [--out DIR] [-j N]
  tito grade report DIR

SUBMISSIONS holds one folder per learner (its name is the learner's id), each with at least
modules/NN_slug/slug.py; a learner-edition checkout works as it is. Run it in the instructor's
edition: the reference solutions grade the suite first. Outputs: DIR/gradebook.csv,
DIR/feedback/<learner>.md, DIR/results/<learner>/results.json (Gradescope's format) and
DIR/logs/<learner>.txt (for the instructor). `tito grade report DIR` prints the roster x
module matrix of DIR/gradebook.csv and DIR/*/gradebook.csv and writes DIR/report.html.
(A submissions folder named `report` is given as ./report.)"""


def register(commands) -> None:
    """Add `tito grade` to tito's top-level subparsers object."""
    parser = commands.add_parser("grade", help="instructors: grade submissions in a sandbox; `grade report DIR`",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="+", metavar="SUBMISSIONS", help="the learners' folders (or: report DIR)")
    parser.add_argument("--module", help="module number, e.g. 01")
    parser.add_argument("--hidden", metavar="TESTS", type=Path,
                        help="a test file or folder of test_*.py that replaces the default suite "
                             "(default: the module's tests plus its hidden-test regions)")
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: grades/NN_slug)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="learners graded at once (default 1)")
    parser.add_argument("--points", type=float, help="the module's points (default: one per test)")
    defaults = Limits()
    parser.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds,
                        help=f"CPU time of one learner's run (default {defaults.cpu_seconds})")
    parser.add_argument("--wall-seconds", type=float, default=defaults.wall_seconds,
                        help=f"wall-clock time of one learner's run (default {defaults.wall_seconds:g})")
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_bytes // 2**20,
                        help=f"address space of one run in MiB (default {defaults.memory_bytes // 2**20})")
    parser.add_argument("--max-processes", type=int, default=defaults.processes,
                        help=f"processes and threads of the sandbox user (default {defaults.processes})")
    parser.add_argument("--sandbox", choices=MODES, default="auto",
                        help="auto (default: the best that runs here), bwrap, unshare or none")
    parser.set_defaults(handler=cmd_grade)


def cmd_grade(args) -> int:
    if args.target[0] == "report":
        if len(args.target) != 2:
            raise TitoError("usage: tito grade report DIR")
        return cmd_report(Path(args.target[1]))
    if len(args.target) != 1:
        raise TitoError("give one SUBMISSIONS folder (`tito grade SUBMISSIONS --module NN`)")
    if not args.module:
        raise TitoError("say which module to grade: `tito grade SUBMISSIONS --module 01`")
    root = find_root()
    manifest = project_manifest(root)
    limits = Limits(cpu_seconds=args.cpu_seconds, wall_seconds=args.wall_seconds,
                    memory_bytes=args.memory_mb * 2**20, processes=args.max_processes)
    options = GradeOptions(module=args.module, hidden=args.hidden, out=args.out, jobs=args.jobs, limits=limits,
                           sandbox=args.sandbox, points=args.points)

    def progress(result) -> None:
        style = STATUS_STYLE.get(result.status, "red")
        console.print(f"  {escape(result.learner)}: [{style}]{result.status}[/{style}] "
                      f"{result.passed}/{result.total} ({result.seconds:.1f} s)")

    console.print(f"grading {escape(str(Path(args.target[0])))} (module {escape(args.module)}) ...")
    out, results, sandbox = grade(root, manifest, Path(args.target[0]), options, progress=progress)
    if sandbox.warning:
        console.print(f"[bold red]{escape(sandbox.warning)}[/bold red]")
    counts = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no learner folders"
    console.print(f"{len(results)} learner(s) graded in the {sandbox.mode} sandbox: {summary}")
    console.print(f"gradebook: {escape(str(out / 'gradebook.csv'))}; feedback, results and logs beside it")
    return 0


def cmd_report(folder: Path) -> int:
    rows = outputs.read_gradebooks(folder)
    learners, modules, cells = outputs.matrix(rows)
    table = Table(title="TinyTorch gradebook")
    table.add_column("learner")
    for module in modules:
        table.add_column(module)
    for learner in learners:
        table.add_row(escape(learner), *(escape(outputs.cell_text(cells.get((learner, m)))) for m in modules))
    console.print(table)
    for warning in sorted({r.get("sandbox", "") for r in rows if "WARNING" in r.get("sandbox", "")}):
        console.print(f"[bold red]{escape(warning)}[/bold red]")
    page = Path(folder) / "report.html"
    from tinytorch_base.files import write_atomic

    write_atomic(page, outputs.report_html(rows))
    console.print(f"written {escape(str(page))}")
    return 0
