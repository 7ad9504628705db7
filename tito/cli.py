"""The `tito` command line: a thin shell over the functions of this package."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tinytorch_base.files import write_atomic, write_new
from tinytorch_base.manifest import CourseModule, Manifest
from tito import benchmark, grading, journey, olympics, site
from tito import progress as progress_store
from tito.doctor import collect_checks, system_info
from tito.errors import TitoError
from tito.exporter import ExportError, check_all, export_modules
from tito.project import ProjectError, find_root, project_manifest
from tito.release import PRISTINE, release_learner
from tito.testing import run_tests

console = Console(highlight=False, soft_wrap=True)  # never break a command across lines


# ---- helpers --------------------------------------------------------------------------------
def _project() -> tuple[Path, Manifest]:
    root = find_root()
    return root, project_manifest(root)


def _built_module(manifest: Manifest, key: str) -> CourseModule:
    try:
        module = manifest.module(key)
    except KeyError as error:
        raise TitoError(str(error.args[0])) from None
    if not module.available:
        raise TitoError(f"module {module.name} ({module.title}) is planned but not built yet; "
                        "`tito module list` shows the modules you can work on")
    return module


def _show_progress_warning(progress: progress_store.Progress) -> None:
    journey.show_progress_warning(console, progress)


def _report_export(results) -> None:
    for result in results:
        state = "updated" if result.changed else "unchanged"
        console.print(f"exported {result.module.source.as_posix()} -> {result.target.as_posix()} ({state})")


# ---- system ---------------------------------------------------------------------------------
def cmd_system_info(args) -> int:
    try:
        root = find_root()
    except ProjectError:
        root = None
    table = Table(title="TinyTorch system info", show_header=False)
    for key, value in system_info(root):
        table.add_row(key, value)
    console.print(table)
    return 0


def cmd_system_doctor(args) -> int:
    root, _ = _project()
    checks = collect_checks(root)
    table = Table(title="tito system doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for check in checks:
        status = "[green]ok[/green]" if check.ok else ("[red]FAIL[/red]" if check.required else "[yellow]optional[/yellow]")
        table.add_row(check.name, status, check.detail)
    console.print(table)
    fixes = [check for check in checks if not check.ok]
    for check in fixes:
        console.print(f"  to fix '{check.name}': {check.fix}", markup=False)
    failed = [check for check in fixes if check.required]
    console.print("[green]All required checks passed.[/green]" if not failed
                  else f"[red]{len(failed)} required check(s) failed.[/red]")
    return 1 if failed else 0


# ---- export -----------------------------------------------------------------------------------
def cmd_export(args) -> int:
    root, manifest = _project()
    if args.check:
        problems = check_all(root, manifest)
        for problem in problems:
            console.print(f"[red]out of sync:[/red] {problem}")
        if problems:
            console.print(f"{len(problems)} file(s) differ; run `tito export --all` and commit the package")
            return 1
        console.print(f"package in sync with {len(manifest.available_modules)} module source(s)")
        return 0
    if args.all:
        modules = None
    elif args.modules:
        modules = [_built_module(manifest, key) for key in args.modules]
    else:
        raise TitoError("name the modules to export (`tito export 01`) or use `tito export --all`")
    _report_export(export_modules(root, manifest, modules))
    return 0


def cmd_nbdev_build(args) -> int:
    args.all, args.check, args.modules = True, False, []
    return cmd_export(args)


# ---- tests -----------------------------------------------------------------------------------
def _run_module_tests(root: Path, modules: list[CourseModule], stream: bool = True):
    missing = [m.test_file for m in modules if not (root / m.test_file).is_file()]
    if missing:
        raise TitoError("no tests at " + ", ".join(p.as_posix() for p in missing))
    return run_tests(root, [m.test_file for m in modules], stream=stream)


def cmd_test(args) -> int:
    root, manifest = _project()
    if args.all:
        modules = [m for m in manifest.available_modules if (root / m.test_file).is_file()]
    elif args.module:
        modules = [_built_module(manifest, args.module)]
    else:
        raise TitoError("name a module (`tito test 01`) or use `tito test --all`")
    report = _run_module_tests(root, modules)
    console.print(report.summary)
    return 0 if report.ok else 1


# ---- module workflow ----------------------------------------------------------------------------
def cmd_module_list(args) -> int:
    root, manifest = _project()
    progress = progress_store.load_progress(root)
    _show_progress_warning(progress)
    table = Table(title="TinyTorch modules")
    for column in ("#", "module", "tier", "needs", "hours", "state"):
        table.add_column(column)
    for module in manifest.modules:
        if progress.completed(module.number):
            state = "[green]completed[/green]"
        elif progress.started(module.number):
            state = "[cyan]started[/cyan]"
        else:
            state = "available" if module.available else "[dim]planned[/dim]"
        table.add_row(module.number, module.title, module.tier, " ".join(module.prerequisites) or "-",
                      f"{module.hours:g}", state)
    console.print(table)
    return 0


def cmd_module_status(args) -> int:
    if not args.module:
        return cmd_module_list(args)
    root, manifest = _project()
    module = _built_module(manifest, args.module)
    progress = progress_store.load_progress(root)
    _show_progress_warning(progress)
    entry = progress.modules.get(module.number, {})
    console.print(f"Module {module.number}: {module.title} ({module.tier})", markup=False)
    for label, value in (
        ("question", module.question),
        ("source", module.source.as_posix()),
        ("exports", f"{module.package} ({module.package_file.as_posix()})"),
        ("tests", module.test_file.as_posix()),
        ("needs", ", ".join(module.prerequisites) or "nothing"),
        ("started", entry.get("started_at", "no")),
        ("completed", entry.get("completed_at", "no")),
    ):
        console.print(f"  {label + ':':<11}{value}", markup=False)
    return 0


def cmd_module_start(args) -> int:
    root, manifest = _project()
    module = _built_module(manifest, args.module)
    progress = progress_store.load_progress(root)
    _show_progress_warning(progress)
    missing = [n for n in module.prerequisites if not progress.completed(n)]
    if missing:
        console.print(f"[yellow]note:[/yellow] module {module.number} builds on {', '.join(missing)}, "
                      "not completed yet; you can read ahead, but its code needs theirs")
    _show_progress_warning(progress_store.mark_started(root, module.number))
    console.print(f"Module {module.number}: {module.title}. {module.question}")
    console.print(f"Open {module.source.as_posix()} in your editor, or as a notebook:")
    console.print(f"  jupyter lab {module.source.as_posix()}")
    console.print(f"When its tests pass: tito module complete {module.number}")
    return 0


def cmd_module_test(args) -> int:
    args.all = False
    return cmd_test(args)


def cmd_module_complete(args) -> int:
    root, manifest = _project()
    module = _built_module(manifest, args.module)
    before = progress_store.load_progress(root)
    _show_progress_warning(before)  # at once: the learner should not wait for the tests to learn of it
    console.print(f"[bold]Completing module {module.number}: {module.title}[/bold]")
    try:
        _report_export(export_modules(root, manifest, [module]))
    except ExportError as error:
        console.print(f"[red]{error}[/red]")
        console.print("Nothing was recorded. Fix the module and run `tito module complete "
                      f"{module.number}` again.")
        return 1
    report = _run_module_tests(root, [module])
    console.print(report.summary)
    if not report.ok:
        for failure in report.failures[:10]:
            console.print(f"  [red]x[/red] {failure}")
        console.print(f"[red]Module {module.number} is not complete yet[/red]: fix the failures above, "
                      f"then run `tito module complete {module.number}` again. Nothing was recorded.")
        return 1
    progress = progress_store.mark_completed(root, module.number, report.passed)
    _show_progress_warning(progress)
    console.print(f"[green]Module {module.number} complete[/green]: all {report.passed} tests passed.")
    capability, milestones = journey.unlocked_after(manifest, before.completed_numbers(),
                                                    progress.completed_numbers())
    if capability:
        console.print(capability, markup=False)
    for milestone in milestones:
        console.print(f"Milestone unlocked: {milestone.title} ({milestone.year}). "
                      f"Run it with: `tito milestone run {milestone.name}`", markup=False)
    return 0


def _original_source(root: Path, module: CourseModule) -> bytes:
    """The module's source as the course ships it: the learner edition's pristine copy, or git's."""
    pristine = root / PRISTINE / module.source
    if pristine.is_file():
        return pristine.read_bytes()
    try:
        shown = subprocess.run(["git", "show", f"HEAD:{module.source.as_posix()}"], cwd=root, capture_output=True,
                               check=False)
    except FileNotFoundError:  # git is not installed
        shown = None
    if shown is None or shown.returncode != 0:
        raise TitoError(f"no original of {module.source.as_posix()} to reset to (no "
                        f"{(PRISTINE / module.source).as_posix()} and no git history); copy the file from "
                        "a fresh copy of the course instead")
    return shown.stdout


def cmd_module_reset(args) -> int:
    root, manifest = _project()
    module = _built_module(manifest, args.module)
    current = root / module.source
    original = _original_source(root, module)
    mine = current.read_bytes() if current.is_file() else None
    if mine is None:
        saved = "There was no file of yours to back up"
    elif mine == original:
        saved = "Your file was the original already, so no backup was made"
    else:
        # write_new: a second reset in the same second gets its own backup, never overwrites the first.
        backup = write_new(root / ".tito" / "backups" / f"{module.name}-{time.strftime('%Y%m%d-%H%M%S')}.py", mine)
        saved = f"Your version was saved to {backup.relative_to(root).as_posix()}"
    write_atomic(current, original)
    _show_progress_warning(progress_store.clear_module(root, module.number))
    console.print(f"Module {module.number} reset to its original. {saved}; its progress was cleared.", markup=False)
    return 0


# ---- release ----------------------------------------------------------------------------------
def cmd_release(args) -> int:
    root, _ = _project()
    if not args.learner:
        raise TitoError("say which edition: `tito release --learner OUT_DIR`")
    written = release_learner(root, Path(args.learner))
    console.print(f"learner edition written to {Path(args.learner).resolve()} "
                  f"({len(written)} module files: stubs and nbgrader notebooks)")
    return 0


# ---- the parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tito", description="TinyTorch course CLI. Start small. Go deep.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    system = commands.add_parser("system", help="check and describe this machine")
    system_commands = system.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    system_commands.add_parser("info", help="versions and project facts").set_defaults(handler=cmd_system_info)
    system_commands.add_parser("doctor", help="check the setup; print the fix for each problem").set_defaults(
        handler=cmd_system_doctor)

    module = commands.add_parser("module", help="work on a module: list, status, start, test, complete, reset")
    module_commands = module.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    module_commands.add_parser("list", help="all modules and your progress").set_defaults(handler=cmd_module_list)
    status = module_commands.add_parser("status", help="one module in detail (or all, without NN)")
    status.add_argument("module", nargs="?", help="module number, e.g. 01")
    status.set_defaults(handler=cmd_module_status)
    for name, handler, text in (
        ("start", cmd_module_start, "begin a module: where its file is and how to open it"),
        ("test", cmd_module_test, "run a module's tests against the exported package"),
        ("complete", cmd_module_complete, "export, test, and record the module as done if every test passes"),
        ("reset", cmd_module_reset, "restore the module's original source (your version is backed up)"),
    ):
        sub = module_commands.add_parser(name, help=text)
        sub.add_argument("module", help="module number, e.g. 01")
        sub.set_defaults(handler=handler)

    export = commands.add_parser("export", help="export module sources to the tinytorch package")
    export.add_argument("modules", nargs="*", help="module numbers, e.g. 01 02")
    export.add_argument("--all", action="store_true", help="export every built module")
    export.add_argument("--check", action="store_true", help="only check that the package matches the sources")
    export.set_defaults(handler=cmd_export)

    nbdev = commands.add_parser("nbdev", help="the course's older name for exporting")
    nbdev_commands = nbdev.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    nbdev_commands.add_parser("build", help="same as `tito export --all`").set_defaults(handler=cmd_nbdev_build)

    test = commands.add_parser("test", help="run module tests against the exported package")
    test.add_argument("module", nargs="?", help="module number, e.g. 01")
    test.add_argument("--all", action="store_true", help="every built module")
    test.set_defaults(handler=cmd_test)

    release = commands.add_parser("release", help="write the learner edition (answers stripped)")
    release.add_argument("--learner", metavar="OUT_DIR", help="folder to write (must be new or empty)")
    release.set_defaults(handler=cmd_release)

    journey.register(commands)  # `tito checkpoint ...` and `tito milestone ...`
    grading.register(commands)  # `tito grade ...` (instructors)
    benchmark.register(commands)  # `tito benchmark` (module 19)
    olympics.register(commands)  # `tito olympics ...` (module 20)
    site.register(commands)  # `tito site build|check` (the course website)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # `tito` or `tito module` alone: show the help of what was typed.
        words = [w for w in (argv if argv is not None else sys.argv[1:]) if not w.startswith("-")]
        parser.parse_args([*words, "--help"])
        return 2
    try:
        return handler(args)
    except TitoError as error:  # ProjectError, ExportError, ReleaseError, SourceError included
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 1
    except KeyboardInterrupt:
        return 130
