"""The learner's progress: one JSON file per project, written atomically.

`.tito/progress.json` records, per module number, when it was started and when it was
completed (with the test counts that proved it). Everything that shows or uses progress
(module status, checkpoints, milestone unlocks) reads this one file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch_base.files import write_atomic

PROGRESS_FILE = Path(".tito") / "progress.json"
VERSION = 1


@dataclass
class Progress:
    modules: dict[str, dict] = field(default_factory=dict)
    warning: str | None = None  # set when a corrupt file was backed up and ignored

    def completed(self, number: str) -> bool:
        return "completed_at" in self.modules.get(number, {})

    def started(self, number: str) -> bool:
        return "started_at" in self.modules.get(number, {})

    def completed_numbers(self) -> set[str]:
        return {n for n in self.modules if self.completed(n)}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def load_progress(root: Path) -> Progress:
    """Read the progress file; a corrupt one is moved aside and reported, never crashed on."""
    path = root / PROGRESS_FILE
    if not path.exists():
        return Progress()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("modules"), dict):
            raise ValueError("expected an object with a 'modules' object")
        modules = {str(k): dict(v) for k, v in raw["modules"].items() if isinstance(v, dict)}
        return Progress(modules)
    except (ValueError, OSError) as error:
        backup = path.with_name(f"progress.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.json")
        path.replace(backup)
        return Progress(
            warning=f"the progress file {path} was unreadable ({error}); it was moved to "
            f"{backup} and progress starts empty. Run `tito module complete NN` again for "
            "the modules you had finished."
        )


def save_progress(root: Path, progress: Progress) -> None:
    payload = {"version": VERSION, "modules": progress.modules}
    write_atomic(root / PROGRESS_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def mark_started(root: Path, number: str) -> Progress:
    progress = load_progress(root)
    progress.modules.setdefault(number, {}).setdefault("started_at", _now())
    save_progress(root, progress)
    return progress


def mark_completed(root: Path, number: str, passed: int) -> Progress:
    progress = load_progress(root)
    entry = progress.modules.setdefault(number, {})
    entry.setdefault("started_at", _now())
    entry["completed_at"] = _now()
    entry["tests_passed"] = passed
    save_progress(root, progress)
    return progress


def clear_module(root: Path, number: str) -> Progress:
    progress = load_progress(root)
    progress.modules.pop(number, None)
    save_progress(root, progress)
    return progress
