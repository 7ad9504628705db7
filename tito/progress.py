"""The learner's progress: one JSON file per project, changed under a lock, written atomically.

`.tito/progress.json` records, per module number, when it was started and when it was
completed (with the test counts that proved it). Everything that shows or uses progress
(module status, checkpoints, milestone unlocks) reads this one file.

Every change (start, complete, reset) reads, changes and writes the file while it holds the lock
`.tito/progress.json.lock`, so commands run at the same time never lose each other's updates.
A corrupt file is never dropped in silence: it is backed up under a name of its own, the entries
that still read cleanly are kept, and `Progress.warning` says so, for the command to print.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tito.errors import TitoError
from tinytorch_base.files import file_lock, write_atomic, write_new

PROGRESS_FILE = Path(".tito") / "progress.json"
LOCK_FILE = Path(".tito") / "progress.json.lock"
VERSION = 1
# What a module's entry may hold. An entry with a field of another type is left out as malformed,
# and fields not named here are left out of the entry (nothing reads them); both make a warning.
FIELDS = {"started_at": str, "completed_at": str, "tests_passed": int}


@dataclass
class Progress:
    modules: dict[str, dict] = field(default_factory=dict)
    warning: str | None = None  # set when a corrupt file was backed up; says what was kept

    def completed(self, number: str) -> bool:
        return "completed_at" in self.modules.get(number, {})

    def started(self, number: str) -> bool:
        return "started_at" in self.modules.get(number, {})

    def completed_numbers(self) -> set[str]:
        return {n for n in self.modules if self.completed(n)}


def load_progress(root: Path) -> Progress:
    """The recorded progress; a corrupt file is backed up and repaired, never crashed on."""
    modules, problem, _ = _read(root / PROGRESS_FILE)
    if problem is None:  # the common case needs no lock: every write replaces the file whole
        return Progress(modules)
    with _locked(root):  # repairing writes the file, so it waits its turn like any change
        return _load_repairing(root)


def mark_started(root: Path, number: str) -> Progress:
    with _changing(root) as progress:
        progress.modules.setdefault(number, {}).setdefault("started_at", _now())
    return progress


def mark_completed(root: Path, number: str, passed: int) -> Progress:
    with _changing(root) as progress:
        entry = progress.modules.setdefault(number, {})
        entry.setdefault("started_at", _now())
        entry["completed_at"] = _now()
        entry["tests_passed"] = passed
    return progress


def clear_module(root: Path, number: str) -> Progress:
    with _changing(root) as progress:
        progress.modules.pop(number, None)
    return progress


def _parse(data: bytes) -> tuple[dict[str, dict], str | None]:
    """The entries of a progress file's bytes that read cleanly, and what is wrong (None: nothing)."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "it is not UTF-8 text"
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply to read
        return {}, f"it is not valid JSON: {error}"
    if not isinstance(raw, dict) or not isinstance(raw.get("modules"), dict):
        return {}, "it is not a JSON object holding a 'modules' object"
    entries = raw["modules"]
    modules = {number: {key: entry[key] for key in FIELDS if key in entry}
               for number, entry in entries.items() if _well_formed(number, entry)}
    dropped = len(entries) - len(modules)
    trimmed = sum(len(entries[number]) != len(modules[number]) for number in modules)
    problems = []
    if dropped:
        problems.append(f"{_entries(dropped)} malformed and left out")
    if trimmed:
        problems.append(f"fields tito does not know left out of {_entries(trimmed)}")
    return modules, "; ".join(problems) or None


def _entries(count: int) -> str:
    return f"{count} module {'entry' if count == 1 else 'entries'}"


def _well_formed(number: str, entry: object) -> bool:
    """A module number (digits) holding an object whose known fields have their types."""
    if not (number.isascii() and number.isdigit() and isinstance(entry, dict)):
        return False
    # bool is a subclass of int, but `true` is no test count.
    return all(isinstance(entry[key], kind) and not isinstance(entry[key], bool)
               for key, kind in FIELDS.items() if key in entry)


def _read(path: Path) -> tuple[dict[str, dict], str | None, bytes]:
    """(the entries that read cleanly, what is wrong with the file or None, the file's bytes)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, None, b""
    except OSError as error:
        raise TitoError(f"cannot read your progress file {path} ({error.strerror or error}); make it a file you can "
                        f"read (`ls -l {path}` shows its owner and permissions), then run the command again") from None
    modules, problem = _parse(data)
    return modules, problem, data


def _load_repairing(root: Path) -> Progress:
    """Read the progress (the lock held); a corrupt file is backed up and rewritten with what read cleanly."""
    path = root / PROGRESS_FILE
    modules, problem, data = _read(path)
    if problem is None:  # another command repaired it while this one waited for the lock
        return Progress(modules)
    backup = write_new(path.with_name(f"progress.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.json"), data)
    _save(root, modules)
    kept = f"kept what it recorded for {', '.join(sorted(modules))}" if modules else "kept nothing from it"
    return Progress(modules, warning=(
        f"your progress file {path} was {'partly ' if modules else ''}unreadable ({problem}). It is saved "
        f"as it was at {backup}; {kept}. Run `tito module complete NN` again for each module you had "
        "finished that `tito module list` no longer shows as completed."))


@contextlib.contextmanager
def _changing(root: Path) -> Iterator[Progress]:
    """The progress for the block to change, saved when it ends; no other change comes in between."""
    with _locked(root):
        progress = _load_repairing(root)
        yield progress
        _save(root, progress.modules)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the progress lock; a file that cannot be written becomes a message saying what to check."""
    folder = (root / PROGRESS_FILE).parent
    try:
        with file_lock(root / LOCK_FILE):
            yield
    except OSError as error:
        raise TitoError(f"cannot write your progress in {folder} ({error}); check that the folder is "
                        f"yours and writable and the disk has room (`ls -ld {folder}`, `df -h {folder}`), "
                        "then run the command again") from None


def _save(root: Path, modules: dict[str, dict]) -> None:
    payload = {"version": VERSION, "modules": modules}
    write_atomic(root / PROGRESS_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
