"""The trusted harness that `tito grade` runs inside the sandbox, one learner at a time.

This file is never run from disk: the grader sends its text and a JSON payload (the limits, the
test sources, the hidden tests among them) on standard input, and a two-line bootstrap
(`BOOTSTRAP`) executes it. It imports nothing of `tito`, only the standard library and pytest.

Two processes:
- the keeper (this process) reads the payload, closes standard input, then forks;
- the runner (the child) sets the resource limits, drops to an unprivileged user, imports the
  learner's package and runs the tests with pytest, sending one JSON line per event (test
  outcome, import error, end of session) to the keeper on a pipe.
The keeper alone holds the report descriptor. When the runner has gone, whatever the way
(finished, `os._exit(0)`, killed by a limit, crashed), the keeper writes what it saw and how
the runner ended; the grader outside decides the status from that. The runner's exit code
means nothing: only a "finished" event sent after pytest returned counts as a report.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

# The whole of `python -I -c BOOTSTRAP`. The harness source comes first on standard input,
# preceded by its length (8 bytes, big-endian). The payload is handed over in a list that
# `main` empties, so that no frame or global keeps a reference to the test sources.
BOOTSTRAP = (
    "import sys\n"
    "def _boot():\n"
    "    box = [sys.stdin.buffer.read()]\n"
    "    size = int.from_bytes(box[0][:8], 'big')\n"
    "    namespace = {'__name__': '__tito_harness__'}\n"
    "    exec(compile(box[0][8:8 + size], '<tito grade harness>', 'exec'), namespace)\n"
    "    box[0] = box[0][8 + size:]\n"
    "    namespace['main'](box)\n"
    "_boot()\n"
)

MAX_EVENT_BYTES = 8 * 1024 * 1024  # what the keeper accepts from the runner in all
MAX_MESSAGE = 2000  # characters kept of a failure's one-line message
MAX_DETAIL = 8000  # characters kept of a failure's traceback (instructor's log only)
PR_SET_DUMPABLE = 4


def main(box: list) -> None:
    payload = box.pop()
    config = json.loads(payload.decode("utf-8"))
    del payload
    report_fd = int(config["report_fd"])
    _stdin_to_devnull()
    _not_dumpable()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the runner: it never returns into the keeper's code
        code = 3
        try:
            os.close(read_end)
            os.close(report_fd)
            _runner(config, write_end)
            code = 0
        except BaseException:  # noqa: BLE001  (SystemExit at import included: no report)
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    del config
    events, truncated, status, usage = _keep(read_end, pid)
    report = {
        "harness": 1,
        "events": events,
        "truncated": truncated,
        "runner": {
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_kib": usage.ru_maxrss,
            "seconds": round(time.monotonic() - started, 3),
        },
    }
    data = json.dumps(report).encode("utf-8")
    view = memoryview(data)
    while view:
        view = view[os.write(report_fd, view):]
    os.close(report_fd)
    os._exit(0)


def _stdin_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _not_dumpable() -> None:
    """Keep the runner from reading the keeper's memory through /proc (best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError, ImportError):
        pass


def _keep(read_end: int, pid: int):
    """Collect the runner's events until it has ended; its descendants may keep the pipe open."""
    chunks, size, truncated, status, usage = [], 0, False, None, None
    while status is None:
        ready, _, _ = select.select([read_end], [], [], 0.1)
        if ready:
            data = os.read(read_end, 65536)
            if data:
                if size < MAX_EVENT_BYTES:
                    chunks.append(data)
                    size += len(data)
                else:
                    truncated = True
                continue
        waited, code, rusage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            status, usage = code, rusage
    os.set_blocking(read_end, False)
    while size < MAX_EVENT_BYTES:  # what the runner wrote just before it ended
        try:
            data = os.read(read_end, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
        size += len(data)
    events = []
    for line in b"".join(chunks)[:MAX_EVENT_BYTES].split(b"\n"):
        try:
            event = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue  # a partial last line, or bytes that are not ours
        if isinstance(event, dict):
            events.append(event)
    return events, truncated, status, usage


# ---- the runner -----------------------------------------------------------------------------
def _runner(config: dict, events_fd: int) -> None:
    import resource

    limits = config["limits"]
    cpu = int(limits["cpu_seconds"])
    for name, soft, hard in (
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_AS", limits["memory_bytes"], limits["memory_bytes"]),
        ("RLIMIT_NPROC", limits["processes"], limits["processes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"], limits["file_bytes"]),
        ("RLIMIT_NOFILE", 256, 256),
    ):
        resource.setrlimit(getattr(resource, name), (soft, hard))
    work = config["work"]
    os.makedirs(work, mode=0o700, exist_ok=True)
    if config["drop_to"] is not None and os.geteuid() == 0:
        uid, gid = config["drop_to"]
        os.chown(work, uid, gid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if 0 in os.getresuid():
            raise SystemExit("could not drop root")
    os.chdir(work)
    os.environ.update(config["env"])
    os.environ["PYTHONPATH"] = config["tree"]  # a test's own `python -c "import tinytorch"` finds the tree

    def send(event: dict) -> None:
        data = (json.dumps(event) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(events_fd, view):]

    send({"event": "start", "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid()})
    sys.path[:0] = [config["tree"]]
    sys.meta_path.insert(0, _MemorySources(config["support"]))
    sys.dont_write_bytecode = True

    import importlib

    import pytest

    # Compile every test module now and drop its text, before any of the learner's code runs:
    # from then on no frame, global or object holds a hidden test's source.
    suites = config["suites"]
    compiled = _compile_suites(suites)
    plugins = _load_plugins(suites)
    package = config["package"]
    for entry in (*suites["modules"], *suites["plugins"]):
        entry.pop("source", None)
    pytest_args = _pytest_args(work, suites["root"])
    config.clear()
    del config, suites
    try:
        importlib.import_module(package)
    except Exception as error:  # noqa: BLE001  (SystemExit and the like end the runner: no report)
        send({"event": "import-error", "type": type(error).__name__, "message": _text(error)[:MAX_MESSAGE]})
        send({"event": "finished", "pytest_exit": None})
        return
    plugin = _Plugin(compiled, send)
    code = pytest.main(pytest_args, plugins=[plugin, *plugins])
    send({"event": "finished", "pytest_exit": int(code)})


def _compile_suites(suites: dict) -> dict:
    """{path: (module name, code object)}, with pytest's assertion rewriting."""
    import ast

    from _pytest.assertion.rewrite import rewrite_asserts

    compiled = {}
    for entry in suites["modules"]:
        path = entry["path"]
        tree = ast.parse(entry["source"], path)
        rewrite_asserts(tree, entry["source"].encode("utf-8"), path, None)
        compiled[path] = (entry["module"], compile(tree, path, "exec", dont_inherit=True))
    return compiled


def _load_plugins(suites: dict) -> list:
    """The course's tests/conftest.py (fixtures, markers, hypothesis profile) as plugin modules."""
    import types

    modules = []
    for entry in suites["plugins"]:
        module = types.ModuleType(entry["name"])
        module.__file__ = entry["path"]
        exec(compile(entry["source"], entry["path"], "exec", dont_inherit=True), module.__dict__)  # noqa: S102
        modules.append(module)
    return modules


def _text(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001  (a learner's __str__ may raise)
        return type(error).__name__


def _pytest_args(work: str, root: str) -> list[str]:
    ini = os.path.join(work, "pytest.ini")
    with open(ini, "w", encoding="utf-8") as stream:
        stream.write("[pytest]\n")
    return ["-q", "-s", "-c", ini, "--rootdir", root, "-p", "no:cacheprovider",
            "-p", "no:pastebin", "-p", "no:doctest", "--tb=short", "-m", "not torch"]


class _MemorySources:
    """Serves the course's test support modules (tests, tests.support, ...) from memory."""

    def __init__(self, files: dict):
        self.files = files  # module name -> {"path", "source", "package"}

    def find_spec(self, name, path=None, target=None):
        if name not in self.files:
            return None
        import importlib.util

        entry = self.files[name]
        return importlib.util.spec_from_loader(name, self, origin=entry["path"], is_package=entry["package"])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        entry = self.files[module.__name__]
        module.__file__ = entry["path"]
        if entry["package"]:
            module.__path__ = []
        exec(compile(entry["source"], entry["path"], "exec", dont_inherit=True), module.__dict__)  # noqa: S102


class _Plugin:
    """Collects the compiled test modules and sends each test's outcome to the keeper."""

    def __init__(self, compiled: dict, send):
        self.compiled = compiled
        self.send = send
        self.outcomes: dict[str, dict] = {}

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "torch: compares with PyTorch")

    def pytest_collection(self, session):
        from pathlib import Path

        import pytest

        compiled = {Path(path): entry for path, entry in self.compiled.items()}

        class MemoryModule(pytest.Module):
            def _getobj(self):
                import types

                name, code = compiled[self.path]
                module = types.ModuleType(name)
                module.__file__ = str(self.path)
                sys.modules[name] = module
                exec(code, module.__dict__)  # noqa: S102  (running the tests is the harness's job)
                return module

        session._initialpaths = frozenset()
        session._initialpaths_with_parents = frozenset()
        session.items = []
        for path in compiled:
            node = MemoryModule.from_parent(session, path=path)
            session.items.extend(session.genitems(node))
        hook = session.config.hook
        hook.pytest_collection_modifyitems(session=session, config=session.config, items=session.items)
        hook.pytest_collection_finish(session=session)
        session.testscollected = len(session.items)
        return True

    def pytest_collectreport(self, report):
        if report.failed:
            self.send({"event": "collect-error", "id": report.nodeid,
                       "message": str(report.longreprtext)[:MAX_DETAIL]})

    def pytest_runtest_logreport(self, report):
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "message": "", "detail": ""})
        if report.failed and entry["outcome"] != "failed":
            entry["outcome"] = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            message = getattr(crash, "message", None)
            if not isinstance(message, str):
                lines = str(report.longreprtext).strip().splitlines()
                message = lines[-1] if lines else "failed"
            entry["message"] = message[:MAX_MESSAGE]
            entry["detail"] = str(report.longreprtext)[-MAX_DETAIL:]
            entry["phase"] = report.when
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
        if report.when == "teardown":
            self.send({"event": "test", "id": report.nodeid, **self.outcomes.pop(report.nodeid)})
