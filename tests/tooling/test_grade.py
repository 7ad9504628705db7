"""`tito grade`: every learner gets the status and the points they earned, and no more.

The fixture submissions are built here from module 01's reference: the reference itself, the
learner-edition stubs, a wrong answer, and the attacks (endless loops, a memory hog, a fork
bomb, a network connection, reading the hidden tests, a planted conftest.py, writes outside
the sandbox, exits at import, megabytes of output, hostile folder names, symbolic links). Most
runs use a small hidden suite, so the whole file stays short; one grades with the default suite.
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tito.cli import main
from tito.errors import TitoError
from tito.grading import outputs
from tito.grading import sandbox as sandboxes
from tito.grading.grade import (
    Context,
    GradedTest,
    GradeOptions,
    LearnerResult,
    classify,
    grade,
    inside,
    read_submission,
    review_flags,
    safe_stem,
)
from tito.grading.sandbox import Limits, RunResult
from tito.grading.suite import HIDDEN, VISIBLE, default_suite, inline_tests
from tito.release import learner_source, notebook_json, release_learner

MODULE = "01"
LIMITS = Limits(cpu_seconds=2, wall_seconds=8, memory_bytes=1536 * 2**20, processes=8)
NEEDLE = "grading-fixture-secret"  # the learner's code knows this prefix, not the token after it
HIDDEN_TESTS = """\
# {needle}: {token}
import numpy as np

from tinytorch.core.tensor import Tensor


def test_add():
    assert (Tensor([1.0, 2.0]) + Tensor([3.0, 4.0])).numpy().tolist() == [4.0, 6.0]


def test_matmul():
    a = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert (a @ a).numpy().tolist() == [[7.0, 10.0], [15.0, 22.0]]  # {needle}: {token}


def test_sum():
    assert float(Tensor([[1.0, 2.0], [3.0, 4.0]]).sum().numpy()) == 10.0


def test_shape():
    assert Tensor(np.zeros((2, 3))).shape == (2, 3)
"""


def with_cell(text, code):
    """The module with one more exported cell at its end: code that runs when the package is imported."""
    return text.rstrip("\n") + "\n\n\n# %%\n#| export\n" + textwrap.dedent(code).strip() + "\n"


def write_submission(folder, name, module, text, extra=None):
    path = folder / name / module.source
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    for relative, content in (extra or {}).items():
        target = folder / name / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return folder / name


PLANTED_CONFTEST = """\
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""


def attacks(reference, paths):
    """learner id -> module text, for every fixture that runs."""
    peek = f"""
    import gc as _gc
    import os as _os
    import sys as _sys

    _NEEDLE = "grading-fixture" + "-secret"
    _found = []

    def _scan_text(where, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if isinstance(data, str) and _NEEDLE in data and data != _NEEDLE:
            _found.append(where + ": " + data[data.index(_NEEDLE):][:100])

    def _scan_file(path):
        try:
            if _os.path.isfile(path) and _os.path.getsize(path) < 1 << 20:
                with open(path, "rb") as stream:
                    _scan_text(path, stream.read())
        except OSError:
            pass

    def _scan_deep(value, depth=0):
        if depth > 4:
            return
        if isinstance(value, (str, bytes)):
            _scan_text("memory", value)
        elif isinstance(value, dict):
            for item in list(value.values()):
                _scan_deep(item, depth + 1)
        elif isinstance(value, (list, tuple, set)):
            for item in list(value):
                _scan_deep(item, depth + 1)

    for _path in [{str(paths["hidden"])!r}, {str(paths["instructor_source"])!r}, "/dev/stdin",
                  "/proc/self/fd/0", "/proc/1/cmdline", "/proc/1/environ", "/proc/2/environ"]:
        _scan_file(_path)
    try:
        _scan_text("stdin", _sys.stdin.read())
    except (OSError, ValueError):
        pass
    for _pid in [p for p in _os.listdir("/proc") if p.isdigit()]:
        for _what in ("cmdline", "environ"):
            _scan_file(f"/proc/{{_pid}}/{{_what}}")
        try:
            for _fd in _os.listdir(f"/proc/{{_pid}}/fd"):
                _scan_file(f"/proc/{{_pid}}/fd/{{_fd}}")
        except OSError:
            pass
    _count = 0
    for _top in ("/tmp", "/grade", "/root", "/home", "/work", "/srv", "/opt", "/var/tmp", "/dev/shm", _os.getcwd()):
        for _dir, _dirs, _files in _os.walk(_top):
            _dirs[:] = [d for d in _dirs if d not in ("site-packages", "python3.11", "__pycache__", "proc")]
            for _name in _files[:200]:
                _count += 1
                if _count < 4000:
                    _scan_file(_os.path.join(_dir, _name))
    _frame = _sys._getframe()
    while _frame is not None:
        _scan_deep(dict(_frame.f_locals))
        _frame = _frame.f_back
    import __main__ as _main
    _scan_deep(dict(vars(_main)))
    for _object in _gc.get_objects():
        if isinstance(_object, dict):
            _scan_deep(_object, depth=3)
    print("PEEK FOUND", len(_found), _found[:5])
    if _found:
        def _leak(self, other):
            raise AssertionError(" | ".join(_found))
        Tensor.__add__ = _leak
    """
    write = f"""
    import os as _os

    print("UID=%d GID=%d" % (_os.getuid(), _os.getgid()))
    _results = []
    for _target in {[str(p) for p in paths["escapes"]]!r} + [_os.path.join(_os.path.dirname(__file__), "pwned.txt")]:
        try:
            with open(_target, "w") as _stream:
                _stream.write("pwned")
            _results.append(("WROTE", _target))
        except OSError as _error:
            _results.append((type(_error).__name__, _target))
    try:
        _os.chmod(__file__, 0o777)
        _results.append(("CHMOD", __file__))
    except OSError as _error:
        _results.append((type(_error).__name__, "chmod"))
    print("WRITE RESULTS", _results)
    """
    network = f"""
    import socket as _socket

    try:
        _connection = _socket.create_connection(("127.0.0.1", {paths["port"]}), timeout=2)
        _connection.sendall(b"leaked")
        _connection.close()
        print("NETWORK: connected")
    except OSError as _error:
        print("NETWORK: refused", _error)
    """
    return {
        "reference": reference,
        "wrong-answer": with_cell(reference, """
            def _wrong_matmul(self, other):
                return Tensor([[0.0]])
            Tensor.__matmul__ = _wrong_matmul
        """),
        "loop-at-import": with_cell(reference, "while True:\n    pass"),
        "loop-in-function": with_cell(reference, """
            def _spin(self, other):
                while True:
                    pass
            Tensor.__matmul__ = _spin
        """),
        "memory-hog": with_cell(reference, "_hog = np.ones(1 << 34)"),
        "fork-bomb": with_cell(reference, """
            import os as _os
            while True:
                try:
                    _os.fork()
                except OSError:
                    pass
        """),
        "network": with_cell(reference, network),
        "peek-at-hidden-tests": with_cell(reference, peek),
        "write-outside": with_cell(reference, write),
        "os-exit-at-import": with_cell(reference, "import os as _os\n_os._exit(0)"),
        "sys-exit-at-import": with_cell(reference, "import sys as _sys\n_sys.exit(0)"),
        "megabytes-of-output": with_cell(reference, """
            import sys as _sys
            for _ in range(16):
                _sys.stdout.write("spam" * (1 << 18))
            _sys.stdout.flush()
        """),
        "..\\..\\..\\tmp\\dot-dot": reference,
        "Zoë 李雷 🙂": reference,
    }


class Listener:
    """A TCP port on this machine's loopback that records whether anyone connected."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]

    def connected(self):
        try:
            connection, _ = self.socket.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True


def harness_processes(patience=5.0):
    """Processes of the grading harness still alive on this machine (after `patience` seconds at most:
    the kernel ends a killed sandbox's processes a moment after its bubblewrap is gone)."""
    deadline = time.monotonic() + patience
    while True:
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if b"tito grade harness" in (entry / "cmdline").read_bytes():
                        alive.append(f"{entry.name}: {(entry / 'status').read_text().splitlines()[:3]}")
                except OSError:
                    continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, root, manifest):
    """One grading run of module 01 with every fixture submission (small hidden suite, -j 4)."""
    base = tmp_path_factory.mktemp("grading")
    module = manifest.module(MODULE)
    reference = (root / module.source).read_text(encoding="utf-8")
    token = uuid.uuid4().hex
    hidden = base / "instructor" / "test_hidden_01.py"
    hidden.parent.mkdir()
    hidden.write_text(HIDDEN_TESTS.format(needle=NEEDLE, token=token), encoding="utf-8")
    submissions, out = base / "submissions", base / "out"
    submissions.mkdir()
    listener = Listener()
    escapes = [base / "escaped.txt", submissions / "pwned.txt", out / "pwned.txt",
               Path(f"/tmp/tito-grade-escape-{uuid.uuid4().hex}.txt")]
    paths = {"hidden": hidden, "instructor_source": root / module.source, "escapes": escapes,
             "port": listener.port}
    texts = attacks(reference, paths)
    for name, text in texts.items():
        write_submission(submissions, name, module, text)
    stubs = learner_source(module, reference)
    write_submission(submissions, "stubs", module, stubs)
    planted = {name: PLANTED_CONFTEST for name in ("conftest.py", "modules/conftest.py",
                                                   "modules/01_tensor/conftest.py", "tests/conftest.py")}
    planted["tests/modules/test_01_tensor.py"] = "def test_nothing():\n    pass\n"
    planted[module.package_file.as_posix()] = (root / module.package_file).read_text(encoding="utf-8")
    write_submission(submissions, "planted-conftest", module, stubs, planted)
    (submissions / "linked-folder").symlink_to(root)  # the instructor's edition, answers included
    linked = submissions / "linked-file" / module.source
    linked.parent.mkdir(parents=True)
    linked.symlink_to(root / module.source)
    (submissions / "not-a-learner.txt").write_text("ignored")
    before = sorted(str(p.relative_to(submissions)) for p in submissions.rglob("*"))
    options = GradeOptions(module=MODULE, hidden=hidden, out=out, jobs=4, limits=LIMITS)
    folder, results, chosen = grade(root, manifest, submissions, options)
    yield {"out": folder, "results": {r.learner: r for r in results}, "sandbox": chosen, "token": token,
           "listener": listener, "escapes": escapes, "submissions": submissions, "before": before,
           "base": base, "hidden": hidden}
    listener.socket.close()
    for path in escapes:
        path.unlink(missing_ok=True)


def result(graded, name):
    return graded["results"][name]


def needs_bwrap(graded):
    if graded["sandbox"].mode != "bwrap":
        pytest.skip(f"bubblewrap is not usable here (sandbox: {graded['sandbox'].mode}); this isolation needs it")


def needs_unprivileged(graded):
    """Skip where the learner's code runs as root: without bubblewrap, root drops to nobody only when
    nobody can read this Python (a virtual environment made from a Python under /root cannot be)."""
    chosen = graded["sandbox"]
    if os.geteuid() == 0 and chosen.mode != "bwrap" and chosen.drop_to is None:
        pytest.skip(f"the learner's code runs as root here ({chosen.warning}); install bubblewrap or use a Python "
                    "that every user can read")


# ---- statuses and points ----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "status", "passed"), [
    ("reference", "ok", 4),
    ("stubs", "failed", 0),
    ("wrong-answer", "failed", 3),
    ("loop-at-import", "timeout", 0),
    ("loop-in-function", "timeout", 0),
    ("memory-hog", "out-of-memory", 0),
    ("fork-bomb", "timeout", 0),
    ("os-exit-at-import", "no-report", 0),
    ("sys-exit-at-import", "no-report", 0),
    ("planted-conftest", "failed", 0),
    ("megabytes-of-output", "ok", 4),
    ("network", "ok", 4),
    ("peek-at-hidden-tests", "ok", 4),
    ("write-outside", "ok", 4),
    ("..\\..\\..\\tmp\\dot-dot", "ok", 4),
    ("Zoë 李雷 🙂", "ok", 4),
    ("linked-folder", "no-report", 0),
    ("linked-file", "no-report", 0),
])
def test_each_submission_gets_its_status_and_only_the_points_it_earned(graded, name, status, passed):
    if name == "peek-at-hidden-tests":  # as root it can read the hidden tests
        needs_unprivileged(graded)
    graded_result = result(graded, name)
    assert (graded_result.status, graded_result.passed, graded_result.total) == (status, passed, 4), \
        f"{name}: {graded_result.note}"
    assert graded_result.points == passed


def test_the_gradebook_has_one_row_per_learner_and_nothing_else(graded):
    with (graded["out"] / "gradebook.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["learner"] for r in rows] == sorted(graded["results"])
    assert "not-a-learner.txt" not in graded["results"], "files beside the learner folders are not learners"
    assert set(rows[0]) >= {"learner", "module", "passed", "total", "points", "status", "seconds"}
    by_name = {r["learner"]: r for r in rows}
    assert by_name["reference"]["points"] == "4" and by_name["reference"]["module"] == "01_tensor"
    assert by_name["loop-at-import"]["status"] == "timeout" and float(by_name["loop-at-import"]["seconds"]) > 0
    assert {r["status"] for r in rows} <= {"ok", "failed", "timeout", "out-of-memory", "crash", "no-report"}


def test_no_report_is_explained_and_the_exit_code_means_nothing(graded):
    for name in ("os-exit-at-import", "sys-exit-at-import"):
        assert "before reporting" in result(graded, name).note
    assert "exit code 0" in result(graded, "os-exit-at-import").note, "exit code 0, and still no points"
    assert re.search("CPU time|wall-clock", result(graded, "loop-at-import").note)
    assert "symbolic link" in result(graded, "linked-folder").note
    assert "symbolic link" in result(graded, "linked-file").note


# ---- the sandbox ------------------------------------------------------------------------------------
def test_the_learner_code_runs_as_an_unprivileged_user(graded):
    log = (graded["out"] / "logs" / f"{result(graded, 'write-outside').stem}.txt").read_text(encoding="utf-8")
    uid = int(re.search(r"UID=(\d+) GID=(\d+)", log).group(1))
    needs_unprivileged(graded)
    assert uid != 0, "the learner's code must not run as root"
    if graded["sandbox"].drop_to is not None:
        assert uid in sandboxes.sandbox_uids(4), "nobody, or a free uid just below it (-j 4)"


def test_no_write_escapes_the_sandbox(graded):
    needs_bwrap(graded)
    for path in graded["escapes"]:
        assert not path.exists(), f"the learner's code wrote {path}"
    after = sorted(str(p.relative_to(graded["submissions"])) for p in graded["submissions"].rglob("*"))
    assert after == graded["before"], "the submissions must be left as they were"
    log = (graded["out"] / "logs" / f"{result(graded, 'write-outside').stem}.txt").read_text(encoding="utf-8")
    assert "WRITE RESULTS" in log and "'CHMOD'" not in log
    wrote = re.findall(r"\('WROTE', '([^']*)'\)", log)
    assert wrote == [str(graded["escapes"][-1])], "only the sandbox's own private /tmp takes a write"


def test_no_network_from_the_sandbox(graded):
    needs_bwrap(graded)
    assert not graded["listener"].connected(), "the learner's code reached this machine's network"
    log = (graded["out"] / "logs" / f"{result(graded, 'network').stem}.txt").read_text(encoding="utf-8")
    assert "NETWORK: refused" in log


def test_the_hidden_tests_never_reach_the_learner(graded):
    """The peeking submission finds nothing, and no output holds a hidden test's text."""
    needs_bwrap(graded)
    log = (graded["out"] / "logs" / f"{result(graded, 'peek-at-hidden-tests').stem}.txt").read_text(encoding="utf-8")
    assert "PEEK FOUND 0" in log, log[-2000:]
    for path in graded["out"].rglob("*"):
        if path.is_file():
            assert graded["token"] not in path.read_text(encoding="utf-8"), f"{path} holds the hidden tests"


def test_megabytes_of_output_are_cut_in_the_log(graded):
    megabytes = result(graded, "megabytes-of-output")
    assert megabytes.output_bytes >= 16 * 2**20
    log = graded["out"] / "logs" / f"{megabytes.stem}.txt"
    assert log.stat().st_size < 2 * LIMITS.output_bytes + 100_000


def test_the_machine_is_unharmed(graded):
    assert harness_processes() == [], "no process of a learner's run may outlive the grading"
    assert not list(graded["base"].glob("pwned*"))
    assert graded["hidden"].read_text(encoding="utf-8").startswith(f"# {NEEDLE}")


# ---- outputs ---------------------------------------------------------------------------------------
def test_every_output_file_stays_in_the_output_folder(graded):
    out = graded["out"].resolve()
    names = {p.name for p in out.rglob("*")}
    for path in out.rglob("*"):
        assert out in path.resolve().parents
    assert not (graded["base"] / "tmp").exists() and not any(n.startswith("..") for n in names)
    assert len(list((out / "feedback").glob("*.md"))) == len(graded["results"])
    assert len(list((out / "results").glob("*/results.json"))) == len(graded["results"])
    stems = [r.stem for r in graded["results"].values()]
    assert len(set(stems)) == len(stems)
    assert "Zoë" in result(graded, "Zoë 李雷 🙂").stem


def test_feedback_names_failed_tests_and_hides_the_hidden_ones(graded):
    wrong = result(graded, "wrong-answer")
    text = (graded["out"] / "feedback" / f"{wrong.stem}.md").read_text(encoding="utf-8")
    assert "test_hidden_01.py::test_matmul" in text and "hidden test" in text
    assert "7.0, 10.0" not in text and "assert" not in text, "a hidden test's code or values must not be shown"
    assert "test_add" not in text, "only failed tests are listed"
    assert "Points: 3 of 4" in text


def test_results_json_follows_gradescopes_format(graded):
    wrong = result(graded, "wrong-answer")
    data = json.loads((graded["out"] / "results" / wrong.stem / "results.json").read_text(encoding="utf-8"))
    assert data["score"] == 3
    assert len(data["tests"]) == 4
    for test in data["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed") and test["max_score"] == 1
    failed = [t for t in data["tests"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["test_hidden_01.py::test_matmul"] and failed[0]["score"] == 0
    assert "7.0" not in failed[0]["output"]


def test_report_prints_the_matrix_and_writes_a_static_page(graded, tmp_path, capsys):
    book = tmp_path / "02_activations"
    book.mkdir()
    (book / "gradebook.csv").write_text("learner,module,passed,total,points,max_points,status,seconds,sandbox,note\n"
                                        "reference,02_activations,1,2,1,2,failed,1.0,bwrap,\n", encoding="utf-8")
    shutil.copytree(graded["out"], tmp_path / "01_tensor")
    assert main(["grade", "report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "01_tensor" in printed and "02_activations" in printed and "4/4" in printed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "Zoë 李雷 🙂" in page and "1/2 failed" in page and "0/4 timeout" in page


# ---- the default suite ------------------------------------------------------------------------------
def test_the_default_suite_gives_the_reference_full_points_and_the_stubs_none(tmp_path, root, manifest):
    module = manifest.module(MODULE)
    reference = (root / module.source).read_text(encoding="utf-8")
    submissions = tmp_path / "submissions"
    write_submission(submissions, "reference", module, reference)
    write_submission(submissions, "stubs", module, learner_source(module, reference))
    options = GradeOptions(module=MODULE, out=tmp_path / "out", jobs=3,
                           limits=Limits(cpu_seconds=30, wall_seconds=120))
    out, results, _ = grade(root, manifest, submissions, options)
    by_name = {r.learner: r for r in results}
    suite = default_suite(root, module)
    assert by_name["reference"].status == "ok" and by_name["reference"].passed == by_name["reference"].total
    assert by_name["stubs"].status == "failed" and by_name["stubs"].passed == 0 and by_name["stubs"].points == 0
    kinds = {t.id: t.kind for t in by_name["stubs"].tests}
    assert any(i.startswith("tests/modules/test_01_tensor.py::") for i in kinds), "the module's test file"
    hidden = sorted(i for i, kind in kinds.items() if kind == HIDDEN)
    assert hidden and all(i.startswith("modules/01_tensor/tensor.py::") for i in hidden), "the hidden regions"
    assert all(suite.kind(i) == kinds[i] for i in kinds)
    feedback = (out / "feedback" / "stubs.md").read_text(encoding="utf-8")
    assert "NotImplementedError" in feedback and "hidden test" in feedback


def test_inline_tests_carry_the_hidden_regions_and_are_marked_hidden(root, manifest):
    module = manifest.module(MODULE)
    source, kinds = inline_tests(module, (root / module.source).read_text(encoding="utf-8"))
    assert kinds["test_unit_creation"] == HIDDEN and kinds["test_unit_matmul"] == VISIBLE
    assert "### BEGIN HIDDEN TESTS" in source
    assert not re.search(r"^test_unit_creation\(\)", source, re.MULTILINE), "the tests are defined, not called"
    compile(source, "inline", "exec")


# ---- fallbacks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["unshare", "none"])
def test_the_fallbacks_keep_the_limits_and_warn_loudly(mode, tmp_path, root, manifest, capsys, monkeypatch):
    try:
        sandboxes.choose(mode)
    except sandboxes.SandboxError as error:
        pytest.skip(str(error))
    module = manifest.module(MODULE)
    reference = (root / module.source).read_text(encoding="utf-8")
    hidden = tmp_path / "test_hidden_01.py"
    hidden.write_text(HIDDEN_TESTS.format(needle=NEEDLE, token="fallback"), encoding="utf-8")
    submissions = tmp_path / "submissions"
    write_submission(submissions, "reference", module, reference)
    write_submission(submissions, "loop", module, with_cell(reference, "while True:\n    pass"))
    monkeypatch.chdir(root)
    code = main(["grade", str(submissions), "--module", MODULE, "--hidden", str(hidden), "--out", str(tmp_path / "out"),
                 "-j", "2", "--sandbox", mode, "--cpu-seconds", "1", "--wall-seconds", "8", "--max-processes", "8"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "WARNING" in printed
    with (tmp_path / "out" / "gradebook.csv").open(encoding="utf-8", newline="") as stream:
        rows = {r["learner"]: r for r in csv.DictReader(stream)}
    assert {n: (r["status"], r["points"]) for n, r in rows.items()} == {
        "reference": ("ok", "4"), "loop": ("timeout", "0")}
    assert all(r["sandbox"].startswith(mode) and "WARNING" in r["sandbox"] for r in rows.values())
    assert harness_processes() == []


# ---- small parts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../etc/passwd", "..", ".", "", "a/b", "\x00", "con", "x" * 300,
                                  "..\\..\\evil", "\udcff\udcfe", "new\nline", "=cmd|' -C calc'!A0"])
def test_safe_stem_never_builds_a_path_out_of_the_folder(tmp_path, name):
    stem = safe_stem(name, set())
    assert stem and "/" not in stem and "\\" not in stem and not stem.startswith(".")
    assert len(stem) <= 80
    assert inside(tmp_path, "feedback", f"{stem}.md").parent == (tmp_path / "feedback").resolve()


def test_safe_stems_do_not_collide():
    taken = set()
    stems = [safe_stem(name, taken) for name in ("Ann", "ann", "a_b", "a b", "a?b")]
    assert len({s.casefold() for s in stems}) == len(stems)


def test_inside_refuses_to_leave_the_folder(tmp_path):
    with pytest.raises(TitoError, match="outside"):
        inside(tmp_path, "..", "x")


def test_read_submission_refuses_links_and_oversized_files(tmp_path, manifest, root):
    module = manifest.module(MODULE)
    learner = tmp_path / "ann" / module.source
    learner.parent.mkdir(parents=True)
    learner.write_bytes(b"x" * (3 * 1024 * 1024))
    with pytest.raises(TitoError, match="over the"):
        read_submission(tmp_path, "ann", module)
    learner.unlink()
    learner.write_bytes(b"\xff\xfe not text")
    with pytest.raises(TitoError, match="not UTF-8"):
        read_submission(tmp_path, "ann", module)
    learner.unlink()
    os.mkfifo(learner)
    with pytest.raises(TitoError, match="not a regular file"):
        read_submission(tmp_path, "ann", module)
    learner.unlink()
    (tmp_path / "ann" / "modules").rename(tmp_path / "elsewhere")
    (tmp_path / "ann" / "modules").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TitoError, match="symbolic link"):
        read_submission(tmp_path, "ann", module)
    with pytest.raises(TitoError, match="no modules/01_tensor/tensor.py"):
        read_submission(tmp_path, "bob", module)


def test_review_flags_name_what_the_reference_does_not_use():
    reference = "import numpy as np\n"
    learner = "import numpy as np\nimport ctypes\nimport os\nos._exit(0)\nfrom _pytest import main\n"
    assert review_flags(learner, reference) == ["imports _pytest", "imports ctypes", "uses ._exit"]
    assert review_flags(reference, reference) == []


def test_the_gradebook_defuses_spreadsheet_formulas_and_feedback_fences(manifest):
    module = manifest.module(MODULE)
    tests = [GradedTest("tests/modules/test_x.py::test_a", VISIBLE, False, "```\n# injected heading", ""),
             GradedTest("hidden/test_y.py::test_b", HIDDEN, False, "secret value 42", "")]
    learner = LearnerResult("=HYPERLINK(\"http://x\")", "evil", module, "failed", 0, 2, 0.0, 2.0, 1.0, "bwrap",
                            "+note", tests)
    text = outputs.gradebook_csv([learner])
    row = next(csv.DictReader(text.splitlines()))
    assert row["learner"].startswith("'=") and row["note"] == "'+note"
    feedback = outputs.feedback(learner)
    assert "````text" in feedback, "a fence longer than the message's backticks"
    assert "secret value 42" not in feedback and "test_y.py::test_b" in feedback
    page = outputs.report_html([{**dict(zip(outputs.COLUMNS, ["<b>x</b>", "01_tensor", "0", "2", "0", "2",
                                                              "failed", "1", "bwrap", "\"><script>"]))}])
    assert "<b>x</b>" not in page and "<script>" not in page


def _context(root, manifest, expected):
    module = manifest.module(MODULE)
    suite = default_suite(root, module)
    return Context(root, manifest, module, suite, GradeOptions(module=MODULE, limits=LIMITS),
                   sandboxes.Sandbox("bwrap", (), None, ""), Path("/nonexistent"), Path("/nonexistent"), "",
                   expected)


@pytest.mark.parametrize(("report", "timed_out", "status"), [
    (None, True, "timeout"),
    (None, False, "no-report"),
    ({"events": [], "runner": {"signal": int(signal.SIGXCPU), "cpu_seconds": 3.0}}, False, "timeout"),
    ({"events": [], "runner": {"signal": int(signal.SIGSEGV), "cpu_seconds": 0.5}}, False, "crash"),
    ({"events": [{"event": "import-error", "type": "MemoryError", "message": "MemoryError"},
                 {"event": "finished"}], "runner": {"exit": 0}}, False, "out-of-memory"),
    ({"events": [{"event": "test", "id": "a", "outcome": "passed"}], "runner": {"exit": 0}}, False, "no-report"),
    ({"events": [{"event": "test", "id": "a", "outcome": "passed"}, {"event": "finished"}],
      "runner": {"exit": 1}}, False, "ok"),
])
def test_the_status_comes_from_the_report_never_the_exit_code(root, manifest, report, timed_out, status):
    context = _context(root, manifest, ["a"])
    graded_result = classify(context, "ann", "ann", RunResult(report, "", 0, 1.0, timed_out, 0))
    assert graded_result.status == status
    assert graded_result.points == (1.0 if status == "ok" else 0.0)


def test_a_forged_report_line_for_an_unknown_test_counts_nothing(root, manifest):
    context = _context(root, manifest, ["a"])
    report = {"events": [{"event": "test", "id": "forged", "outcome": "passed"}, {"event": "finished"}],
              "runner": {"exit": 0}}
    graded_result = classify(context, "ann", "ann", RunResult(report, "", 0, 1.0, False, 0))
    assert (graded_result.status, graded_result.passed) == ("failed", 0)


def test_grade_refuses_a_learner_edition_and_bad_folders(tmp_path, root, manifest, monkeypatch):
    edition = tmp_path / "edition"
    for entry in ("modules", "tinytorch_base"):
        shutil.copytree(root / entry, edition / entry, ignore=shutil.ignore_patterns("__pycache__"))
    module = manifest.module(MODULE)
    (edition / module.source).write_text(learner_source(module, (root / module.source).read_text()))
    (tmp_path / "subs").mkdir()
    with pytest.raises(TitoError, match="instructor's edition"):
        grade(edition, manifest, tmp_path / "subs", GradeOptions(module=MODULE, out=tmp_path / "out"))
    with pytest.raises(TitoError, match="must not contain each other"):
        grade(root, manifest, tmp_path / "subs", GradeOptions(module=MODULE, out=tmp_path / "subs" / "out"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(TitoError, match="not empty"):
        grade(root, manifest, tmp_path / "subs", GradeOptions(module=MODULE, out=busy))
    monkeypatch.chdir(root)
    assert main(["grade", str(tmp_path / "subs")]) == 1  # no --module
    assert main(["grade", "report"]) == 1


# ---- nbgrader ------------------------------------------------------------------------------------------
@pytest.mark.nbgrader
def test_nbgrader_gives_the_reference_full_marks_and_the_released_stubs_zero(tmp_path, root, manifest):
    """The real nbgrader: generate_assignment on the instructor's notebook, autograde two students."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[grade]')")
    tools = Path(sys.executable).parent
    assert (tools / "nbgrader").exists(), "nbgrader is importable but its command is not beside this Python"
    module = manifest.module(MODULE)
    edition = tmp_path / "edition"
    release_learner(root, edition, verify_import=False)
    released = edition / module.source.with_suffix(".ipynb")
    course = tmp_path / "course"
    slug = module.slug
    instructor = notebook_json((root / module.source).read_text(encoding="utf-8"), slug)
    for folder, text in (("source", instructor), ("submitted/reference", instructor),
                         ("submitted/stubs", released.read_text(encoding="utf-8"))):
        target = course / folder / slug / f"{slug}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(text, encoding="utf-8")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.CourseDirectory.course_id = 'tinytorch'\n",
        encoding="utf-8")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}", "OPENBLAS_NUM_THREADS": "1"}

    def nbgrader(*words):
        done = subprocess.run([str(tools / "nbgrader"), *words], cwd=course, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr[-3000:]

    nbgrader("generate_assignment", slug, "--force")
    generated = json.loads((course / "release" / slug / f"{slug}.ipynb").read_text(encoding="utf-8"))
    text = "\n".join("".join(cell["source"]) for cell in generated["cells"])
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "raise NotImplementedError" in text
    nbgrader("autograde", slug, "--create", "--force")
    nbgrader("export")
    with (course / "grades.csv").open(encoding="utf-8", newline="") as stream:
        grades = {row["student_id"]: row for row in csv.DictReader(stream)}
    maximum = float(grades["reference"]["max_score"])
    assert maximum > 0 and float(grades["reference"]["score"]) == maximum
    assert float(grades["stubs"]["score"]) == 0.0 and float(grades["stubs"]["max_score"]) == maximum
