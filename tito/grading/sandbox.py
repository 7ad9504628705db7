"""Running the harness on one learner's tree in a sandbox, with limits and a wall clock.

Three levels, the best this machine allows (or the one asked for):
- `bwrap`: bubblewrap with no network, new PID/IPC/UTS namespaces, a read-only /usr, /etc and
  virtual environment, a private size-limited /tmp, the learner's tree read-only, and nothing
  else of the machine's files; the learner's code runs as nobody (65534).
- `unshare`: where bubblewrap cannot run (no user namespaces, or bwrap missing), `unshare -n`
  (with its own PID namespace where that works): no network, but the machine's files are
  readable by the learner's code.
- `none`: resource limits alone, with a loud warning.
In every level the harness sets the same resource limits before the learner's code runs, and
the grader kills the whole process group at the wall-clock limit.
"""

from __future__ import annotations

import functools
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tito.errors import TitoError
from tito.grading.harness import BOOTSTRAP

MODES = ("auto", "bwrap", "unshare", "none")
NOBODY = (65534, 65534)
TREE_INSIDE = "/grade/tree"  # where the learner's tree appears in the bwrap sandbox
WORK_INSIDE = "/tmp/work"
HARNESS = Path(__file__).with_name("harness.py")
MAX_REPORT_BYTES = 32 * 1024 * 1024

WARNINGS = {
    "unshare": "WARNING: no file-system sandbox (bubblewrap could not run): the learner's code had no "
               "network but could read this machine's files, the reference solutions included",
    "none": "WARNING: NO SANDBOX: the learner's code ran with resource limits only; it could reach the "
            "network and read this machine's files, the reference solutions included",
    "root": "WARNING: the learner's code ran as root: user nobody cannot read this Python installation",
}


class SandboxError(TitoError):
    """The sandbox asked for cannot run on this machine; the message says what to install."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    wall_seconds: float = 300.0
    memory_bytes: int = 2 * 1024**3
    processes: int = 64
    file_bytes: int = 64 * 1024**2
    tmp_bytes: int = 256 * 1024**2  # the private /tmp (bwrap)
    output_bytes: int = 64 * 1024  # the head of the learner's output kept for the instructor's log

    def check(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_bytes", "processes", "file_bytes"):
            if not getattr(self, name) > 0:
                raise TitoError(f"the sandbox limit {name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Sandbox:
    mode: str  # "bwrap", "unshare" or "none"
    prefix: tuple[str, ...]  # the unshare command (unshare mode)
    drop_to: tuple[int, int] | None  # the harness drops from root to this uid/gid
    warning: str  # empty in the full sandbox

    @property
    def label(self) -> str:
        return self.mode if not self.warning else f"{self.mode}: {self.warning}"


@dataclass(frozen=True)
class RunResult:
    report: dict | None  # what the harness's keeper wrote, None if nothing came
    output: str  # the head of everything the sandbox printed
    output_bytes: int  # how much it printed in all
    seconds: float
    timed_out: bool  # killed at the wall-clock limit
    returncode: int | None


# ---- choosing the sandbox --------------------------------------------------------------------
def python_dirs() -> list[Path]:
    """The folders the interpreter needs: its installation and the virtual environment."""
    found = []
    for prefix in (sys.base_prefix, sys.prefix, sys.exec_prefix):
        path = Path(prefix).resolve()
        if path == Path("/usr") or Path("/usr") in path.parents or path in found:
            continue
        found.append(path)
    return found


def bwrap_command(tree: Path, limits: Limits, as_root: bool) -> list[str]:
    """The bubblewrap command line for a learner's tree (without the Python command)."""
    command = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "tito-grade",
               "--clearenv"]
    if as_root:  # the harness drops to nobody itself; it keeps only what that needs
        command += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                    "--cap-add", "CAP_CHOWN"]
    else:
        command += ["--unshare-user", "--disable-userns", "--uid", str(NOBODY[0]), "--gid", str(NOBODY[1])]
    command += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            command += ["--ro-bind", str(path), str(path)]
    command += ["--ro-bind", "/etc", "/etc", "--dev", "/dev", "--proc", "/proc",
                "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    made: set[str] = set()
    for source, target in [(path, path) for path in python_dirs()] + [(tree, Path(TREE_INSIDE))]:
        for parent in reversed(target.parents[:-1]):  # bwrap would make them owner-only
            if str(parent) not in made and parent not in (Path("/usr"), Path("/etc"), Path("/tmp")):
                made.add(str(parent))
                command += ["--perms", "0755", "--dir", str(parent)]
        command += ["--ro-bind", str(source), str(target)]
    command += ["--chdir", "/tmp"]
    return command


def _works(command: list[str], env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == b"ok"


def _probe_code(drop: bool) -> str:
    lines = ["import os"]
    if drop:
        lines += ["os.setgroups([])", f"os.setresgid({NOBODY[1]}, {NOBODY[1]}, {NOBODY[1]})",
                  f"os.setresuid({NOBODY[0]}, {NOBODY[0]}, {NOBODY[0]})"]
    lines += ["import numpy, pytest", *(["assert os.getuid() != 0"] if drop else []), "print('ok')"]
    return "; ".join(lines)


def _readable_by_everyone(path: Path) -> bool:
    """Whether another user (nobody) can reach `path` and read it."""
    path = path.resolve()
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH or (folder == path and not mode & stat.S_IROTH):
            return False
    return True


@functools.cache
def choose(requested: str = "auto") -> Sandbox:
    """The sandbox to use: the best that works here, or exactly the one asked for."""
    if requested not in MODES:
        raise TitoError(f"unknown sandbox {requested!r}; choose one of {', '.join(MODES)}")
    as_root = os.geteuid() == 0
    env = sandbox_env("/tmp")
    if requested in ("auto", "bwrap"):
        if shutil.which("bwrap"):
            probe = Path(sys.prefix)  # any folder: the probe mounts it as the tree
            command = [*bwrap_command(probe, Limits(), as_root), sys.executable, "-I", "-c", _probe_code(as_root)]
            if _works(command, env):
                return Sandbox("bwrap", (), NOBODY if as_root else None, "")
        if requested == "bwrap":
            raise SandboxError(
                "bubblewrap cannot run here: install it (`apt-get install -y bubblewrap`) and make "
                "sure user namespaces are allowed, or run as root; `--sandbox auto` falls back")
    # Without bubblewrap, root can still drop to nobody if nobody can read this Python.
    drop = NOBODY if as_root and all(_readable_by_everyone(p) for p in python_dirs()) else None
    as_nobody = [sys.executable, "-I", "-c", _probe_code(drop is not None)]
    if requested in ("auto", "unshare") and shutil.which("unshare"):
        if as_root:
            variants = [("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"), ("unshare", "--net")]
        else:  # an unprivileged user needs a user namespace, in which it is root with no power outside
            variants = [("unshare", "--net", "--map-root-user")]
        for prefix in variants:
            probe_command = [*prefix, *as_nobody] if as_root else [*prefix, sys.executable, "-I", "-c",
                                                                   "import numpy, pytest; print('ok')"]
            if _works(probe_command, env):
                warning = WARNINGS["unshare"] + ("; " + WARNINGS["root"] if as_root and drop is None else "")
                return Sandbox("unshare", prefix, drop, warning)
        if requested == "unshare":
            raise SandboxError("`unshare --net` cannot run here (it needs root or user namespaces); "
                               "`--sandbox none` runs with resource limits only")
    warning = WARNINGS["none"] + ("; " + WARNINGS["root"] if as_root and drop is None else "")
    return Sandbox("none", (), drop, warning)


def sandbox_uids(count: int) -> list[int]:
    """Users for `count` runs at once: nobody, then the free uids just below it (no passwd entry).

    RLIMIT_NPROC counts the processes of a user, so a fork bomb in one learner's run must not use
    up the processes of another run going on at the same time.
    """
    import pwd

    uids, candidate = [NOBODY[0]], NOBODY[0] - 1
    while len(uids) < count and candidate > 60000:
        try:
            pwd.getpwuid(candidate)
        except KeyError:
            uids.append(candidate)
        candidate -= 1
    if len(uids) < count:
        raise TitoError(f"no {count} free user ids below {NOBODY[0]} for the sandboxes; use a smaller -j")
    return uids


def sandbox_env(work: str) -> dict[str, str]:
    """The whole environment of the learner's code (nothing of the grader's is passed on)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "USER": "nobody",
        "LOGNAME": "nobody", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{work}/.matplotlib",
    }


# ---- one run ----------------------------------------------------------------------------------
def run(sandbox: Sandbox, tree: Path, scratch: Path, payload: dict, limits: Limits,
        uid: int | None = None) -> RunResult:
    """Run the harness on `tree` (the learner's exported project) with `payload` on its stdin.

    `payload` is completed here with where things are inside the sandbox; `scratch` is a private
    folder of the grader's for the levels without a private /tmp. `uid` replaces the user that
    root drops to (runs at the same time get different users: the process limit is per user).
    """
    import json

    report_read, report_write = os.pipe()
    if sandbox.mode == "bwrap":
        tree_inside, work = TREE_INSIDE, WORK_INSIDE
        command = [*bwrap_command(tree, limits, sandbox.drop_to is not None)]
        env = sandbox_env(work)
        for key, value in env.items():
            command += ["--setenv", key, value]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        tree_inside, work = str(tree), str(scratch / "work")
        if sandbox.drop_to is not None:  # nobody must reach the tree (the grader made it 0700)
            scratch.chmod(0o755)
            for path in (tree, *tree.rglob("*")):
                path.chmod(0o755 if path.is_dir() else 0o644)
        command = list(sandbox.prefix)
        env = sandbox_env(work)
    command += [sys.executable, "-I", "-c", BOOTSTRAP]
    payload = {**payload, "report_fd": report_write, "tree": tree_inside, "work": work,
               "drop_to": [uid if uid is not None else sandbox.drop_to[0], sandbox.drop_to[1]] if sandbox.drop_to else None,
               "limits": {"cpu_seconds": limits.cpu_seconds, "memory_bytes": limits.memory_bytes,
                          "processes": limits.processes, "file_bytes": limits.file_bytes},
               "env": {} if sandbox.mode == "bwrap" else sandbox_env(work)}
    payload["suites"] = {**payload["suites"], "root": tree_inside}
    harness = HARNESS.read_bytes()
    data = len(harness).to_bytes(8, "big") + harness + json.dumps(payload).encode("utf-8")
    started = time.monotonic()
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, pass_fds=(report_write,), env=env,
                                   start_new_session=True)
    except OSError as error:
        os.close(report_read)
        os.close(report_write)
        raise SandboxError(f"could not start the sandbox ({command[0]}): {error}") from None
    os.close(report_write)
    stop = threading.Event()
    output = _Collector(process.stdout.fileno(), limits.output_bytes, stop)
    report = _Collector(report_read, MAX_REPORT_BYTES, stop)
    writer = threading.Thread(target=_feed, args=(process.stdin, data), daemon=True)
    for thread in (writer, output, report):
        thread.start()
    timed_out = False
    try:
        process.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(process)
        process.wait()
    output.join(timeout=5)
    report.join(timeout=5)
    stop.set()  # a process that escaped the group may hold the pipes; stop waiting for it
    output.join()
    report.join()
    writer.join(timeout=1)
    process.stdout.close()
    os.close(report_read)
    seconds = time.monotonic() - started
    parsed = None
    if not timed_out and report.data:
        try:
            parsed = json.loads(report.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            parsed = None
    return RunResult(parsed if isinstance(parsed, dict) else None, output.data.decode("utf-8", "replace"),
                     output.total, seconds, timed_out, process.returncode)


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Collector(threading.Thread):
    """Reads a pipe to its end, keeping the first `keep` bytes and counting the rest."""

    def __init__(self, fd: int, keep: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.fd, self.keep, self.stop = fd, keep, stop
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            if self.kept < self.keep:
                part = chunk[: self.keep - self.kept]
                self.chunks.append(part)
                self.kept += len(part)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)
