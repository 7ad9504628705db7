"""`tito grade SUBMISSIONS --module NN`: grade every learner's module in a sandbox.

For each learner folder of SUBMISSIONS: read modules/NN_slug/slug.py (without following a
symbolic link), export it together with the reference of every module it builds on (and the
learner-edition stubs of the others) into a fresh tree, and run the suite there through the
sandbox's harness. The suite first runs on the reference: the tests that pass there are the
ones counted, so a learner's score never depends on the machine (skipped tests count for
nobody) and a broken suite stops the grading before any learner is graded.
"""

from __future__ import annotations

import ast
import hashlib
import queue
import shutil
import signal
import tempfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinytorch_base.files import write_atomic
from tinytorch_base.manifest import CourseModule, Manifest
from tito.errors import TitoError
from tito.exporter import generated_files, render_module
from tito.grading import sandbox as sandboxes
from tito.grading.suite import HIDDEN, Suite, default_suite, hidden_suite
from tito.release import learner_source
from tito.source import BEGIN_SOLUTION, find_regions

STATUSES = ("ok", "failed", "timeout", "out-of-memory", "crash", "no-report")
MAX_SUBMISSION = 2 * 1024 * 1024  # bytes of a learner's module file
REFERENCE = "(reference)"
SKIPPED_FOLDERS = {".git", "__pycache__", ".ipynb_checkpoints", "__MACOSX"}
# What a module's code rarely needs and a submission that games the grader often does.
REVIEW_IMPORTS = ("ctypes", "gc", "inspect", "_pytest", "pytest", "socket", "subprocess", "multiprocessing",
                  "signal", "builtins", "importlib", "urllib", "http", "requests", "shutil", "threading")
REVIEW_CALLS = ("_getframe", "_exit", "fork", "kill", "killpg", "system", "setrlimit", "execv", "popen")


@dataclass(frozen=True)
class GradeOptions:
    module: str
    hidden: Path | None = None
    out: Path | None = None
    jobs: int = 1
    limits: sandboxes.Limits = field(default_factory=sandboxes.Limits)
    sandbox: str = "auto"
    points: float | None = None  # the module's points; default one per test


@dataclass(frozen=True)
class GradedTest:
    id: str
    kind: str  # visible / hidden
    passed: bool
    message: str  # one line, for the learner (visible tests only)
    detail: str  # the traceback, for the instructor's log


@dataclass
class LearnerResult:
    learner: str  # the folder's name, as given (printable)
    stem: str  # a safe file name made from it
    module: CourseModule
    status: str
    passed: int
    total: int
    points: float
    max_points: float
    seconds: float
    sandbox: str
    note: str
    tests: list[GradedTest] = field(default_factory=list)
    output: str = ""  # the head of what the learner's run printed
    output_bytes: int = 0
    extra: str = ""  # import and collection errors, runner details (instructor's log)


# ---- names from submissions -------------------------------------------------------------------
def printable(name: str) -> str:
    """A folder name as text: undecodable bytes and control characters made visible."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def safe_stem(name: str, taken: set[str]) -> str:
    """A file name for a learner: letters, digits, '-', '_' and '.', never a path, never a duplicate."""
    text = unicodedata.normalize("NFC", printable(name))
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).lstrip(".")[:64] or "learner"
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    if cleaned != name or cleaned.casefold() in taken:
        cleaned = f"{cleaned}-{digest}"
    taken.add(cleaned.casefold())
    return cleaned


def inside(folder: Path, *parts: str) -> Path:
    """folder/parts, refused if it would land outside `folder`."""
    target = folder.joinpath(*parts).resolve()
    base = folder.resolve()
    if base != target and base not in target.parents:
        raise TitoError(f"refusing to write {target}: outside {base}")
    return target


def read_submission(submissions: Path, learner: str, module: CourseModule) -> str:
    """The learner's module file, opened one component at a time without following links."""
    import errno
    import os
    import stat

    parts = [learner, "modules", module.name]
    shown = "/".join(["modules", module.name, f"{module.slug}.py"])
    fd = os.open(submissions, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise TitoError(f"no {shown} in the submission") from None
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise TitoError(f"{part!r} in the submission is a symbolic link or not a folder; "
                                    "submit plain folders and files") from None
                raise TitoError(f"cannot open {part!r} in the submission: {error.strerror}") from None
            os.close(fd)
            fd = child
        try:
            handle = os.open(f"{module.slug}.py", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except FileNotFoundError:
            raise TitoError(f"no {shown} in the submission") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise TitoError(f"{shown} is a symbolic link; submit the file itself") from None
            raise TitoError(f"cannot open {shown}: {error.strerror}") from None
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                raise TitoError(f"{shown} is not a regular file")
            if info.st_size > MAX_SUBMISSION:
                raise TitoError(f"{shown} is {info.st_size} bytes, over the {MAX_SUBMISSION} allowed")
            with os.fdopen(handle, "rb", closefd=False) as stream:
                data = stream.read(MAX_SUBMISSION + 1)
        finally:
            os.close(handle)
    finally:
        os.close(fd)
    if len(data) > MAX_SUBMISSION:
        raise TitoError(f"{shown} is over the {MAX_SUBMISSION} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TitoError(f"{shown} is not UTF-8 text ({error.reason} at byte {error.start})") from None


# CPython 3.11's parser is not safe in several threads at once: parallel ast.parse calls fail
# with "SystemError: AST constructor recursion depth mismatch". The learners' jobs run in
# threads, so every parse (export, review) takes this lock; the sandboxed runs stay parallel.
_PARSE_LOCK = threading.Lock()


def review_flags(text: str, reference: str) -> list[str]:
    """Imports and calls that the learner's file uses and the reference does not (for the instructor)."""
    def uses(source: str) -> set[str]:
        try:
            with _PARSE_LOCK:
                tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return set()
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(f"imports {a.name.split('.')[0]}" for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(f"imports {node.module.split('.')[0]}")
            elif isinstance(node, ast.Attribute) and node.attr in REVIEW_CALLS:
                found.add(f"uses .{node.attr}")
        return {f for f in found if f.split(" ", 1)[1].lstrip(".") in REVIEW_IMPORTS + REVIEW_CALLS}

    return sorted(uses(text) - uses(reference))


# ---- the trees ---------------------------------------------------------------------------------
def prerequisites(manifest: Manifest, module: CourseModule) -> set[str]:
    """Every module that `module` builds on, directly or not."""
    seen: set[str] = set()
    stack = list(module.prerequisites)
    while stack:
        number = stack.pop()
        if number not in seen:
            seen.add(number)
            stack.extend(manifest.module(number).prerequisites)
    return seen


def build_base(root: Path, manifest: Manifest, module: CourseModule, base: Path) -> None:
    """The tree every learner's run starts from: the package without the graded module.

    The hand-written package files and tinytorch_base are copied; each other module is exported
    from the reference when `module` builds on it, from its learner-edition stubs otherwise.
    """
    generated = set(generated_files(root))
    for folder in ("tinytorch", "tinytorch_base"):
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and "__pycache__" not in path.parts and relative not in generated \
                    and path.suffix in (".py", ".toml", ".json", ".txt"):
                write_atomic(base / relative, path.read_bytes())
    needed = prerequisites(manifest, module)
    for other in manifest.available_modules:
        if other.number == module.number or not (root / other.source).is_file():
            continue
        text = (root / other.source).read_text(encoding="utf-8")
        if other.number not in needed:
            text = learner_source(other, text)
        write_atomic(base / other.package_file, render_module(other, text))


def export_learner(module: CourseModule, text: str, tree: Path) -> None:
    """The learner's module into the tree; TitoError with the reason when it does not export."""
    try:
        with _PARSE_LOCK:
            rendered = render_module(module, text)
    except TitoError as error:
        raise TitoError(f"export failed: {error}") from None
    except (ValueError, RecursionError, MemoryError, SyntaxError) as error:
        raise TitoError(f"export failed: {type(error).__name__}: {error}") from None
    write_atomic(tree / module.package_file, rendered)


# ---- one learner --------------------------------------------------------------------------------
@dataclass
class Context:
    root: Path
    manifest: Manifest
    module: CourseModule
    suite: Suite
    options: GradeOptions
    sandbox: sandboxes.Sandbox
    staging: Path
    base: Path
    reference_text: str
    expected: list[str] = field(default_factory=list)  # the test ids that pass on the reference

    def max_points(self) -> float:
        return float(self.options.points if self.options.points is not None else len(self.expected))


def run_tree(context: Context, text: str, slot: str, uid: int | None = None) -> sandboxes.RunResult:
    """Export `text` as the graded module into a fresh tree and run the suite on it.

    Raises TitoError (with the reason) when the module does not export.
    """
    folder = context.staging / slot
    tree = folder / "tree"
    shutil.copytree(context.base, tree)
    try:
        export_learner(context.module, text, tree)
        where = sandboxes.TREE_INSIDE if context.sandbox.mode == "bwrap" else str(tree)
        suites, support = context.suite.payload(where)
        payload = {"package": context.module.package, "suites": suites, "support": support}
        return sandboxes.run(context.sandbox, tree, folder, payload, context.options.limits, uid)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def blank(context: Context, learner: str, stem: str, status: str, note: str) -> LearnerResult:
    """A learner whose tests did not run: nothing passed."""
    tests = [GradedTest(t, context.suite.kind(t), False, f"not run: {note}", "") for t in context.expected]
    return LearnerResult(printable(learner), stem, context.module, status, 0, len(context.expected), 0.0,
                         context.max_points(), 0.0, context.sandbox.label, note, tests)


def classify(context: Context, learner: str, stem: str, run: sandboxes.RunResult) -> LearnerResult:
    """The status and score of a run, from the keeper's report alone (never an exit code)."""
    limits = context.options.limits
    report = run.report or {}
    events = report.get("events", []) if isinstance(report.get("events"), list) else []
    runner = report.get("runner", {}) if isinstance(report.get("runner"), dict) else {}
    finished = any(e.get("event") == "finished" for e in events)
    import_errors = [e for e in events if e.get("event") == "import-error"]
    collect_errors = [e for e in events if e.get("event") == "collect-error"]
    outcomes: dict[str, dict] = {}
    for event in events:
        if event.get("event") == "test" and isinstance(event.get("id"), str):
            outcomes.setdefault(event["id"], event)
    memory = any(str(e.get("type")) == "MemoryError" for e in import_errors) or any(
        str(e.get("message", "")).startswith("MemoryError") for e in outcomes.values())
    lost = signal_name = None
    if run.timed_out:
        status, lost = "timeout", f"stopped at the wall-clock limit of {limits.wall_seconds:g} s"
    elif run.report is None:
        status, lost = "no-report", "the sandbox wrote no report" + _tail(run.output)
    elif runner.get("signal"):
        number = int(runner["signal"])
        try:
            signal_name = signal.Signals(number).name
        except ValueError:
            signal_name = f"signal {number}"
        cpu = float(runner.get("cpu_seconds") or 0)
        if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu >= limits.cpu_seconds - 0.5):
            status, lost = "timeout", f"stopped after {limits.cpu_seconds} s of CPU time (an endless loop?)"
        elif memory or number == signal.SIGKILL:
            status, lost = ("out-of-memory" if memory else "crash"), f"killed by {signal_name}"
        else:
            status, lost = "crash", f"crashed ({signal_name})"
    elif not finished:
        status = "no-report"
        lost = (f"the test run ended (exit code {runner.get('exit')}) before reporting: the code exits "
                "(os._exit, sys.exit) or ends the process")
    else:
        status = ""
    tests = []
    passed = 0
    for test_id in context.expected:
        kind = context.suite.kind(test_id)
        outcome = outcomes.get(test_id)
        if lost is not None:
            ok, message = False, f"not counted: {lost}"
        elif import_errors:
            ok, message = False, f"the module does not import: {import_errors[0].get('message', '')}"
        elif outcome is None:
            why = "collection failed" if collect_errors else "did not run"
            ok, message = False, f"not run ({why})"
        else:
            ok = outcome.get("outcome") == "passed"
            message = "" if ok else str(outcome.get("message", "")) or "failed"
        passed += ok
        tests.append(GradedTest(test_id, kind, ok, message[:2000], str((outcome or {}).get("detail", ""))))
    if not status:
        status = "ok" if passed == len(context.expected) else ("out-of-memory" if memory else "failed")
    if lost is not None:
        passed = 0
    total = len(context.expected)
    max_points = context.max_points()
    points = round(max_points * passed / total, 2) if total else 0.0
    notes = [lost] if lost else []
    if import_errors:
        notes.append(f"import failed: {import_errors[0].get('message', '')}"[:300])
    if report.get("truncated"):
        notes.append("the run sent too much; its report was cut")
    extra = [f"runner: {runner}"] + [f"import error: {e.get('message')}" for e in import_errors] + [
        f"collection error in {e.get('id')}:\n{e.get('message')}" for e in collect_errors]
    uid = next((e.get("uid") for e in events if e.get("event") == "start"), None)
    extra.append(f"the learner's code ran as uid {uid}")
    return LearnerResult(printable(learner), stem, context.module, status, passed, total, points, max_points,
                         round(run.seconds, 2), context.sandbox.label, "; ".join(notes), tests, run.output,
                         run.output_bytes, "\n".join(extra))


def _tail(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return f" ({lines[-1][:200]})" if lines else ""


# ---- the whole class ---------------------------------------------------------------------------
def learner_folders(submissions: Path) -> list[tuple[str, bool]]:
    """(name, is a plain folder) of each learner entry, sorted; files are ignored, links flagged."""
    import os

    found = []
    with os.scandir(submissions) as entries:
        for entry in entries:
            if entry.name in SKIPPED_FOLDERS:
                continue
            if entry.is_symlink():
                found.append((entry.name, False))
            elif entry.is_dir(follow_symlinks=False):
                found.append((entry.name, True))
    return sorted(found, key=lambda item: printable(item[0]))


def prepare_out(out: Path, submissions: Path) -> Path:
    out = out.resolve()
    submissions = submissions.resolve()
    if out == submissions or submissions in out.parents or out in submissions.parents:
        raise TitoError(f"the output folder {out} and the submissions {submissions} must not contain each other; "
                        "choose another --out")
    if out.exists():
        if not out.is_dir():
            raise TitoError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not (out / "gradebook.csv").is_file():
            raise TitoError(f"{out} is not empty and holds no gradebook.csv (not an earlier `tito grade` "
                            "output); choose a new or empty folder")
        for name in ("feedback", "results", "logs"):
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)
    return out


def grade(root: Path, manifest: Manifest, submissions: Path, options: GradeOptions, progress=None) -> tuple[
        Path, list[LearnerResult], sandboxes.Sandbox]:
    """Grade every learner of `submissions`; returns (output folder, results, sandbox used)."""
    from tito.grading import outputs

    options.limits.check()
    if options.jobs < 1:
        raise TitoError(f"-j must be at least 1, got {options.jobs}")
    try:
        module = manifest.module(options.module)
    except KeyError as error:
        raise TitoError(str(error.args[0])) from None
    if not module.available or not (root / module.source).is_file():
        raise TitoError(f"module {module.name} is not built yet: nothing to grade")
    reference_text = (root / module.source).read_text(encoding="utf-8")
    if not any(r.kind == "solution" for r in find_regions(reference_text, module.source)):
        raise TitoError(f"{module.source.as_posix()} holds no answers ({BEGIN_SOLUTION}): run `tito grade` "
                        "in the instructor's edition of the course, not in a learner edition")
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise TitoError(f"{submissions}: no such folder (it should hold one folder per learner)")
    out = prepare_out(options.out or Path("grades") / module.name, submissions)
    _require_pytest()
    suite = hidden_suite(root, module, options.hidden) if options.hidden else default_suite(root, module)
    chosen = sandboxes.choose(options.sandbox)
    staging = Path(tempfile.mkdtemp(prefix="tito-grade-"))
    try:
        staging.chmod(0o711)  # nobody may pass through (fallback levels), not list
        base = staging / "base"
        build_base(root, manifest, module, base)
        context = Context(root, manifest, module, suite, options, chosen, staging, base, reference_text)
        free_uids: queue.Queue[int | None] = queue.Queue()
        for uid in sandboxes.sandbox_uids(options.jobs) if chosen.drop_to else [None] * options.jobs:
            free_uids.put(uid)

        def sandboxed(text: str, slot: str) -> sandboxes.RunResult:
            uid = free_uids.get()
            try:
                return run_tree(context, text, slot, uid)
            finally:
                free_uids.put(uid)

        taken: set[str] = set()
        entries = [(name, plain, safe_stem(name, taken)) for name, plain in learner_folders(submissions)]
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            # The reference runs first, and the learners beside it; each learner's run is scored
            # once the reference has said which tests count.
            calibration = pool.submit(calibrate, context, sandboxed)

            def one(job: tuple[int, tuple[str, bool, str]]) -> LearnerResult:
                number, (name, plain, stem) = job
                run, status, note, flags = None, "no-report", "", []
                if not plain:
                    note = "the learner's folder is a symbolic link; not graded"
                else:
                    try:
                        text = read_submission(submissions, name, module)
                        flags = review_flags(text, reference_text)
                        if not calibration.done() or calibration.exception() is None:
                            run = sandboxed(text, f"{number:05d}")
                    except TitoError as error:  # unreadable (no-report) or not exportable (failed)
                        status = "failed" if str(error).startswith("export failed") else "no-report"
                        note = str(error)
                calibration.result()  # the reference's verdict first (raises if the suite is broken)
                result = classify(context, name, stem, run) if run is not None else blank(
                    context, name, stem, status, note)
                if flags:
                    result.note = "; ".join(p for p in (result.note, "review: " + ", ".join(flags)) if p)
                if progress is not None:
                    progress(result)
                return result

            futures = [pool.submit(one, job) for job in enumerate(entries)]
            calibration.result()
            results = [future.result() for future in futures]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    outputs.write_all(out, results, context)
    return out, results, chosen


def calibrate(context: Context, sandboxed) -> list[str]:
    """Run the suite on the reference; its passing tests are the ones every learner is graded on."""
    probe = replace(context, expected=["(every test)"])
    run = sandboxed(context.reference_text, "reference")
    result = classify(probe, REFERENCE, "reference", run)
    events = (run.report or {}).get("events", [])
    outcomes = {e["id"]: e for e in events if e.get("event") == "test" and isinstance(e.get("id"), str)}
    finished = any(e.get("event") == "finished" for e in events)
    failed = [f"{i}: {e.get('message', '')}" for i, e in outcomes.items() if e.get("outcome") == "failed"]
    errors = [f"{e.get('id')}: {str(e.get('message', ''))[-500:]}" for e in events if e.get("event") == "collect-error"]
    errors += [str(e.get("message")) for e in events if e.get("event") == "import-error"]
    if not finished or failed or errors:
        why = result.note if not finished else "; ".join((failed + errors)[:5])
        raise TitoError(f"the suite does not pass on the reference of module {context.module.name}, so it cannot "
                        f"grade: {why}" + _tail(run.output))
    context.expected = sorted(i for i, e in outcomes.items() if e.get("outcome") == "passed")
    if not context.expected:
        raise TitoError(f"no test of the suite ran on the reference of module {context.module.name}")
    return context.expected


def _require_pytest() -> None:
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        raise TitoError("tito grade runs the tests with pytest, which is not installed here: "
                        "pip install -e '.[test]'")


__all__ = ["HIDDEN", "STATUSES", "GradeOptions", "GradedTest", "LearnerResult", "grade", "safe_stem"]
