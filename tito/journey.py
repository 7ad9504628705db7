"""The learner's journey: checkpoints, milestone unlocks and `tito checkpoint` / `tito milestone`.

Every figure here comes from two places only: the manifest (which modules and milestones exist,
what each needs) and the one progress file that `tito module complete` writes. The functions
compute; the `cmd_*` handlers print what they computed with rich, and stay plain (no escape
codes) when the output is not a terminal or NO_COLOR is set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tito import progress as progress_store
from tito.exporter import ExportError, check_all
from tinytorch_base.manifest import TIERS, CourseModule, Manifest, Milestone
from tito.errors import TitoError
from tito.project import find_root, project_manifest
from tito.testing import project_env, run_tests

CHECKPOINT_TESTS = Path("tests") / "checkpoints"

# Checkpoint states, with the word the terminal shows and its (optional) colour.
DONE, NEXT, LOCKED, PLANNED = "done", "next", "locked", "planned"
STATE_WORDS = {DONE: "done", NEXT: "next", LOCKED: "locked", PLANNED: "not built yet"}
STATE_STYLES = {DONE: "green", NEXT: "bold cyan", LOCKED: "yellow", PLANNED: "dim"}
STATE_MARKS = {DONE: "●", NEXT: "◉", LOCKED: "○", PLANNED: "·"}


# ---- checkpoints ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """One module's checkpoint as the progress file sees it."""

    module: CourseModule
    state: str  # done | next | locked | planned
    waiting_for: tuple[str, ...]  # prerequisites not completed yet
    completed_at: str | None = None
    tests_passed: int | None = None

    @property
    def label(self) -> str:
        """The state in words, e.g. 'locked (needs 02, 03)'."""
        if self.state == LOCKED:
            return f"locked (needs {', '.join(self.waiting_for)})"
        return STATE_WORDS[self.state]


def checkpoint_states(manifest: Manifest, progress: progress_store.Progress) -> list[Checkpoint]:
    """done = completed; planned = not built yet; locked = a prerequisite not completed; else next."""
    completed = progress.completed_numbers()
    states = []
    for module in manifest.modules:
        entry = progress.modules.get(module.number, {})
        waiting = tuple(n for n in module.prerequisites if n not in completed)
        if module.number in completed:
            state = DONE
        elif not module.available:
            state = PLANNED
        elif waiting:
            state = LOCKED
        else:
            state = NEXT
        states.append(Checkpoint(module, state, waiting, entry.get("completed_at"), entry.get("tests_passed")))
    return states


# ---- milestones ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MilestoneReadiness:
    """Whether a milestone can run for this learner, and if not, what stands in the way."""

    milestone: Milestone
    missing: tuple[CourseModule, ...]  # required modules not completed in the progress file
    unbuilt: tuple[CourseModule, ...]  # required modules whose manifest status is planned

    @property
    def built(self) -> bool:
        """The milestone's script and every module it uses exist in this course."""
        return self.milestone.available and not self.unbuilt

    @property
    def runnable(self) -> bool:
        return self.built and not self.missing


def milestone_readiness(manifest: Manifest, milestone: Milestone, completed: Iterable[str]) -> MilestoneReadiness:
    completed = set(completed)
    required = [manifest.module(number) for number in milestone.requires]
    return MilestoneReadiness(
        milestone,
        missing=tuple(m for m in required if m.number not in completed),
        unbuilt=tuple(m for m in required if not m.available),
    )


def unlocked_after(manifest: Manifest, completed_before: Iterable[str],
                   completed_after: Iterable[str]) -> tuple[str, list[Milestone]]:
    """What completing modules unlocked: a capability message, and the milestones now runnable.

    The message names each newly completed module's capability and answers its question, then
    the built modules whose checkpoints opened ("now open"); it is empty when nothing new was
    completed (a module completed again). The milestones are those runnable after and not before.
    """
    before, after = set(completed_before), set(completed_after)
    lines = []
    for module in manifest.modules:
        if module.number in after and module.number not in before:
            lines.append(f"Capability unlocked: {module.capability} (checkpoint {module.number}). "
                         f"{module.question} Yes.")
    if lines:
        opened = [m for m in manifest.modules
                  if m.available and m.number not in after and set(m.prerequisites) <= after
                  and not set(m.prerequisites) <= before]
        for module in opened:
            lines.append(f"Now open: module {module.number} {module.title} (tito module start {module.number})")
    milestones = [
        milestone for milestone in manifest.milestones
        if milestone_readiness(manifest, milestone, after).runnable
        and not milestone_readiness(manifest, milestone, before).runnable
    ]
    return "\n".join(lines), milestones


# ---- terminal output -----------------------------------------------------------------------------
def make_console() -> Console:
    """A console that drops every escape code when NO_COLOR is set (and, as rich does, off a TTY)."""
    plain = os.environ.get("NO_COLOR", "") != ""
    return Console(highlight=False, color_system=None if plain else "auto")


def _styled(text: str, state: str) -> Text:
    return Text(text, style=STATE_STYLES[state])


def _summary(checkpoints: list[Checkpoint]) -> str:
    done = sum(c.state == DONE for c in checkpoints)
    built = sum(c.module.available for c in checkpoints)
    total = len(checkpoints)
    return f"{done} of {total} checkpoints done; {built} of {total} modules built so far"


def _next_step(checkpoints: list[Checkpoint]) -> str | None:
    upcoming = [c for c in checkpoints if c.state == NEXT]
    if not upcoming:
        return None
    first = upcoming[0].module
    return f"Next: module {first.number} {first.title}. Begin with: tito module start {first.number}"


def render_status(console: Console, checkpoints: list[Checkpoint], detailed: bool = False) -> None:
    """A table of every checkpoint; `detailed` adds each question, completion time and test count."""
    if detailed:
        _detailed_status(console, checkpoints)
    else:
        table = Table(title="TinyTorch checkpoints", title_justify="left")
        for column in ("#", "module", "capability", "checkpoint"):
            table.add_column(column)
        for checkpoint in checkpoints:
            module = checkpoint.module
            table.add_row(module.number, module.title, module.capability,
                          _styled(checkpoint.label, checkpoint.state))
        console.print(table)
    console.print(_summary(checkpoints))
    step = _next_step(checkpoints)
    if step:
        console.print(step)


def _detailed_status(console: Console, checkpoints: list[Checkpoint]) -> None:
    # One short block per checkpoint reads at any terminal width, where a wide table would wrap.
    console.print(Text("TinyTorch checkpoints", style="bold"))
    for checkpoint in checkpoints:
        module = checkpoint.module
        heading = Text(f"{module.number} {module.title} - {module.capability}: ")
        heading.append(checkpoint.label, style=STATE_STYLES[checkpoint.state])
        console.print(heading)
        console.print(Text(f"    {module.question}", style="italic"))
        if checkpoint.state == DONE:
            when = (checkpoint.completed_at or "unknown time").replace("T", " ")[:16]
            tests = f"{checkpoint.tests_passed} tests passed" if checkpoint.tests_passed is not None else "tests not recorded"
            console.print(f"    completed {when}, {tests}")


def _legend() -> Text:
    legend = Text("legend:")
    for state in (DONE, NEXT, LOCKED, PLANNED):
        legend.append("  ")
        legend.append(f"{STATE_MARKS[state]} {STATE_WORDS[state]}", style=STATE_STYLES[state])
    return legend


def render_timeline(console: Console, checkpoints: list[Checkpoint], horizontal: bool = False) -> None:
    """The checkpoints as a path: down the screen, or across it one tier per row."""
    console.print(Text("TinyTorch journey", style="bold"))
    tiers = [t for t in TIERS if any(c.module.tier == t for c in checkpoints)]
    width = max(len(f"{c.module.number} {c.module.title}") for c in checkpoints)
    for tier in tiers:
        row = [c for c in checkpoints if c.module.tier == tier]
        console.print()
        console.print(Text(tier.capitalize(), style="bold"))
        if horizontal:
            _horizontal_row(console, row)
        else:
            _vertical_rows(console, row, width)
    console.print()
    console.print(_legend())
    console.print(_summary(checkpoints))


def _vertical_rows(console: Console, row: list[Checkpoint], width: int) -> None:
    for index, checkpoint in enumerate(row):
        module = checkpoint.module
        style = STATE_STYLES[checkpoint.state]
        line = Text("  ")
        line.append(STATE_MARKS[checkpoint.state], style=style)
        line.append(f"  {module.number} {module.title}".ljust(width + 4))
        line.append(f"{module.capability:<16}")
        line.append(checkpoint.label, style=style)
        console.print(line)
        if index < len(row) - 1:
            console.print(Text("  │", style=style))


CELL = 10  # characters per checkpoint in the horizontal timeline


def _horizontal_row(console: Console, row: list[Checkpoint]) -> None:
    marks, numbers, words = Text("  "), Text("  "), Text("  ")
    for index, checkpoint in enumerate(row):
        style = STATE_STYLES[checkpoint.state]
        last = index == len(row) - 1
        marks.append(STATE_MARKS[checkpoint.state], style=style)
        if not last:
            marks.append("─" * (CELL - 1), style=style)
        word = "planned" if checkpoint.state == PLANNED else checkpoint.state
        numbers.append(checkpoint.module.number if last else f"{checkpoint.module.number:<{CELL}}")
        words.append(word if last else f"{word:<{CELL}}", style=style)
    for line in (marks, numbers, words):
        console.print(line, no_wrap=True, crop=False)


def render_milestones(console: Console, manifest: Manifest, completed: set[str]) -> None:
    table = Table(title="TinyTorch milestones", title_justify="left")
    for column in ("name", "milestone", "requires", "state"):
        table.add_column(column)
    for milestone in manifest.milestones:
        readiness = milestone_readiness(manifest, milestone, completed)
        description = Text(f"{milestone.title} ({milestone.year})")
        description.append(f"\nbar: {milestone.bar}", style="italic")
        table.add_row(milestone.name, description, compact_numbers(milestone.requires), _milestone_state(readiness))
    console.print(table)


def compact_numbers(numbers: Iterable[str]) -> str:
    """Module numbers as runs: ['01', '02', '03', '05'] -> '01-03, 05'."""
    runs: list[list[str]] = []
    for number in sorted(numbers):
        if runs and int(number) == int(runs[-1][-1]) + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _milestone_state(readiness: MilestoneReadiness) -> Text:
    if not readiness.milestone.available:
        return Text("not built yet", style=STATE_STYLES[PLANNED])
    if readiness.unbuilt:
        return Text(f"not built yet (modules {', '.join(m.number for m in readiness.unbuilt)})",
                    style=STATE_STYLES[PLANNED])
    if readiness.missing:
        return Text(f"needs {', '.join(m.number for m in readiness.missing)}", style=STATE_STYLES[LOCKED])
    return Text(f"runnable: tito milestone run {readiness.milestone.name}", style=STATE_STYLES[DONE])


def show_progress_warning(console: Console, progress: progress_store.Progress) -> None:
    """Say loudly that a corrupt progress file was backed up, and what was kept (if that happened)."""
    if progress.warning:
        # soft_wrap: the backup's path is printed whole, for the learner to copy.
        console.print(f"[yellow]warning:[/yellow] {escape(progress.warning)}", soft_wrap=True)


# ---- command handlers ---------------------------------------------------------------------------
# A handler raises TitoError to stop with a message; `tito.cli.main` prints it and returns 1.
def _load() -> tuple[Console, Path, Manifest, progress_store.Progress]:
    """What every handler starts from: a console, the project, and its progress (warned about)."""
    console = make_console()
    root = find_root()
    manifest = project_manifest(root)
    progress = progress_store.load_progress(root)
    show_progress_warning(console, progress)
    return console, root, manifest, progress


def _module(manifest: Manifest, key: str) -> CourseModule:
    try:
        return manifest.module(key)
    except KeyError as error:
        raise TitoError(str(error.args[0])) from None


def cmd_checkpoint_status(args) -> int:
    console, _, manifest, progress = _load()
    render_status(console, checkpoint_states(manifest, progress), detailed=args.detailed)
    return 0


def cmd_checkpoint_timeline(args) -> int:
    console, _, manifest, progress = _load()
    render_timeline(console, checkpoint_states(manifest, progress), horizontal=args.horizontal)
    return 0


def checkpoint_test_file(module: CourseModule) -> Path:
    """The capability test of a module's checkpoint, relative to the project root."""
    return CHECKPOINT_TESTS / f"test_checkpoint_{module.number}.py"


def cmd_checkpoint_test(args) -> int:
    console, root, manifest, progress = _load()
    module = _module(manifest, args.module)
    if not module.available:
        raise TitoError(f"checkpoint {module.number} ({module.title}) is not built yet: its module is "
                        "planned; `tito checkpoint status` shows the checkpoints you can reach")
    test_file = checkpoint_test_file(module)
    if not (root / test_file).is_file():
        raise TitoError(f"no capability test for checkpoint {module.number} at {test_file.as_posix()}")
    console.print(f"[bold]Checkpoint {module.number}: {escape(module.capability)}[/bold]. "
                  f"{escape(module.question)}")
    if out_of_sync(root, manifest, [module]):
        console.print(f"[yellow]note:[/yellow] the package differs from {module.source.as_posix()}; this tests "
                      f"the exported package as it is (update it with: tito export {module.number})")
    report = run_tests(root, [test_file])
    console.print(report.summary)
    if not report.ok:
        for failure in report.failures[:10]:
            console.print(f"  [red]x[/red] {escape(failure)}")
        if not report.failures and report.output:
            console.print(escape(report.output.strip()[-2000:]))
        console.print(f"[red]Checkpoint {module.number} not reached yet.[/red] Its test uses your exported "
                      f"package; fix the module and run `tito module complete {module.number}`.")
        return 1
    console.print(f"[green]Checkpoint {module.number} reached[/green]: {escape(module.question)} Yes.")
    if not progress.completed(module.number):
        console.print(f"Record it with: tito module complete {module.number}")
    return 0


def cmd_milestone_list(args) -> int:
    console, _, manifest, progress = _load()
    render_milestones(console, manifest, progress.completed_numbers())
    return 0


def out_of_sync(root: Path, manifest: Manifest, modules: list[CourseModule]) -> dict[str, list[str]]:
    """Per module number, check_all's problems with that module's source or package file."""
    try:
        problems = check_all(root, replace(manifest, modules=tuple(modules)))
    except ExportError as error:  # a source is missing altogether
        problems = [str(error)]
    found = {}
    for module in modules:
        own_paths = {module.source.as_posix(), module.package_file.as_posix()}
        mine = [p for p in problems if p.split(":", 1)[0] in own_paths or p.startswith(f"module {module.name} ")]
        if mine:
            found[module.number] = mine
    return found


def _refuse_missing(console: Console, modules: tuple[CourseModule, ...]) -> None:
    for module in modules:
        if module.available:
            console.print(f"  missing module {module.number} {escape(module.title)}: "
                          f"complete it with: tito module complete {module.number}")
        else:
            console.print(f"  missing module {module.number} {escape(module.title)}: not built yet in this course")


def cmd_milestone_run(args) -> int:
    console, root, manifest, progress = _load()
    extra = list(args.extra)
    force = args.force or "--force" in extra  # tito's own flag may also follow NAME
    extra = [word for word in extra if word != "--force"]
    try:
        milestone = manifest.milestone(args.name)
    except KeyError as error:
        raise TitoError(f"{error.args[0]}; `tito milestone list` shows them") from None
    readiness = milestone_readiness(manifest, milestone, progress.completed_numbers())
    title = f"{milestone.name} ({milestone.title}, {milestone.year})"

    if not readiness.built:
        what = "its script is" if not milestone.available else "modules it uses are"
        console.print(f"[red]Milestone {escape(title)} is not built yet[/red] ({what} planned in the manifest).")
        if readiness.missing:
            console.print("When it is, it needs modules you have not completed:")
            _refuse_missing(console, readiness.missing)
        return 1
    if readiness.missing and not force:
        console.print(f"[red]Milestone {escape(title)} cannot run yet[/red]: it uses modules "
                      f"{', '.join(milestone.requires)}, and these are not completed:")
        _refuse_missing(console, readiness.missing)
        console.print("Nothing was run.")
        return 1
    if readiness.missing:
        console.print(f"[yellow]--force:[/yellow] running without completed modules "
                      f"{', '.join(m.number for m in readiness.missing)} (the build is still checked)")

    required = [manifest.module(number) for number in milestone.requires]
    stale = out_of_sync(root, manifest, required)
    if stale:
        console.print(f"[red]Milestone {escape(title)} will not run on a half-built package[/red]:")
        for problem in (p for problems in stale.values() for p in problems):
            console.print(f"  {escape(problem)}")
        lost = [n for n in stale if not (root / manifest.module(n).source).is_file()]
        exportable = [n for n in stale if n not in lost]
        if exportable:
            console.print(f"Fix it with: tito export {' '.join(exportable)}")
        for number in lost:
            console.print(f"Module {number}'s source is missing: restore it, or start again from the original "
                          f"with: tito module reset {number}")
        return 1
    script = root / milestone.script
    if not script.is_file():
        raise TitoError(f"milestone {milestone.name} has no script at {milestone.script}; "
                        "the manifest says it is available, so the project is incomplete")

    console.print(f"[bold]Milestone {escape(title)}[/bold]")
    console.print(f"bar: {escape(milestone.bar)}")
    command = [sys.executable, str(script), *extra]
    sys.stdout.flush()
    completed = subprocess.run(command, cwd=root, env=project_env(root))
    return completed.returncode


# ---- wiring into `tito` ----------------------------------------------------------------------------
def register(commands) -> None:
    """Add `tito checkpoint` and `tito milestone` to tito's top-level subparsers object."""
    checkpoint = commands.add_parser("checkpoint", help="your checkpoints: status, timeline, capability tests")
    checkpoint_commands = checkpoint.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    status = checkpoint_commands.add_parser("status", help="every checkpoint: done, next, locked or not built yet")
    status.add_argument("--detailed", action="store_true", help="add each question, completion time and tests")
    status.set_defaults(handler=cmd_checkpoint_status)
    timeline = checkpoint_commands.add_parser("timeline", help="your journey drawn as a path")
    timeline.add_argument("--horizontal", action="store_true", help="one row per tier, left to right")
    timeline.set_defaults(handler=cmd_checkpoint_timeline)
    test = checkpoint_commands.add_parser("test", help="run a checkpoint's capability test on the exported package")
    test.add_argument("module", help="module number, e.g. 01")
    test.set_defaults(handler=cmd_checkpoint_test)

    milestone = commands.add_parser("milestone", help="the historical milestones: list, run")
    milestone_commands = milestone.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    milestone_commands.add_parser("list", help="every milestone and whether you can run it").set_defaults(
        handler=cmd_milestone_list)
    run = milestone_commands.add_parser(
        "run", help="run a milestone once its modules are completed",
        description="Run milestones/<script> with your exported package. Arguments after NAME go to the "
                    "script (e.g. --quick); tito's own --force may come before or after NAME.")
    run.add_argument("--force", action="store_true",
                     help="for instructors and CI: skip the progress check (the build check still runs)")
    run.add_argument("name", help="milestone name, e.g. perceptron")
    run.add_argument("extra", nargs=argparse.REMAINDER, help="passed to the milestone script, e.g. --quick")
    run.set_defaults(handler=cmd_milestone_run)
