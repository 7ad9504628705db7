"""tito.progress: no update is lost to a concurrent command, and no corrupt file is lost in silence.

Each test here reproduces a way progress used to vanish or break: concurrent `tito module
complete`s overwriting each other, a corrupt file whose readable entries were thrown away without
a word, a bad file that crashed the reader. (Backups that overwrote each other: test_backups.py.)
"""

import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tito.cli import main
from tito.progress import PROGRESS_FILE, Progress, load_progress, mark_completed
from tito.testing import project_env

# What `tito module complete` records per module, and the type of each (written out here, not taken
# from tito.progress, so that the fuzz test checks the reader against an independent statement).
RECORDED = {"started_at": str, "completed_at": str, "tests_passed": int}


def write_progress(root, data: bytes) -> Path:
    path = root / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def backups(root) -> list[Path]:
    return sorted((root / PROGRESS_FILE).parent.glob("progress.corrupt-*.json"))


def entry():
    """A completed module's entry, as `tito module complete` writes it."""
    return {"started_at": "2025-01-01T10:00:00", "completed_at": "2025-01-02T11:30:00", "tests_passed": 3}


# ---- bad files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"\xff\xfe not UTF-8 \x80",
    b'["a", "list"]',
    b"null",
    b"",
    b'{"version": 1}',
    b"[" * 100_000 + b"]" * 100_000,  # too deep to read: RecursionError
    b'{"version": 1, "modules": {"01": {"tests_passed": 1' + b"0" * 5000 + b"}}}",  # over int's digit limit
    b'{"version": 1, "modules": {"01": {"completed_at": "x", "tests_passed": 1e999}}}',  # infinity
    b'{"version": 1, "modules": {"01": {"completed_at": "x", "tests_passed": true}}}',
    b'{"version": 1, "modules": {"01": {"completed_at": 20250102}}}',
], ids=["not-utf8", "list", "null", "empty", "no-modules", "deep", "huge-int", "infinite", "bool", "number-date"])
def test_a_bad_file_is_backed_up_and_reported_never_crashed_on(tmp_path, data):
    write_progress(tmp_path, data)
    progress = load_progress(tmp_path)
    assert progress.modules == {}
    [backup] = backups(tmp_path)
    assert backup.read_bytes() == data and str(backup) in progress.warning
    assert "kept nothing" in progress.warning and "tito module complete NN" in progress.warning
    assert load_progress(tmp_path) == Progress(), "the file was repaired: it is reported once, not every time"


def test_a_progress_file_that_cannot_be_read_is_an_error_that_says_what_to_check(project_copy, monkeypatch, capsys):
    (project_copy / PROGRESS_FILE).mkdir(parents=True)  # a folder where the file should be
    monkeypatch.chdir(project_copy)
    assert main(["module", "list"]) == 1
    printed = capsys.readouterr().out
    assert "cannot read your progress file" in printed and "ls -l" in printed


# ---- keeping what can be read -----------------------------------------------------------------------
def test_unknown_fields_are_left_out_with_a_warning_and_the_entry_kept(tmp_path):
    write_progress(tmp_path, json.dumps({"version": 1, "modules": {"01": {**entry(), "notes": [1, 2]}}}).encode())
    progress = load_progress(tmp_path)
    assert progress.modules == {"01": entry()} and "fields tito does not know" in progress.warning


def test_the_cli_warns_about_a_partly_corrupt_file(project_copy, monkeypatch, capsys):
    write_progress(project_copy, json.dumps({"version": 1, "modules": {"01": entry(), "02": []}}).encode())
    monkeypatch.chdir(project_copy)
    assert main(["module", "status", "01"]) == 0
    printed = capsys.readouterr().out
    [backup] = backups(project_copy)
    assert f"saved as it was at {backup};" in printed and "completed: 2025-01-02T11:30:00" in printed


# ---- concurrent writers ---------------------------------------------------------------------------
MARKER = """\
import sys, time
from pathlib import Path
from tito.progress import mark_completed
root, number = Path(sys.argv[1]), sys.argv[2]
(root / f"ready-{number}").touch()
while not (root / "go").exists():  # start together, to collide as often as possible
    time.sleep(0.001)
mark_completed(root, number, 1)
"""


def test_seven_processes_completing_seven_modules_at_once_are_all_recorded(tmp_path, root):
    numbers = [f"{n:02d}" for n in range(1, 8)]
    writers = [subprocess.Popen([sys.executable, "-c", MARKER, str(tmp_path), number], env=project_env(root))
               for number in numbers]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in numbers) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    assert [writer.wait(timeout=60) for writer in writers] == [0] * 7
    progress = load_progress(tmp_path)
    assert progress.completed_numbers() == set(numbers) and progress.warning is None


def test_a_change_after_a_repair_keeps_the_repaired_entries(tmp_path):
    write_progress(tmp_path, json.dumps({"version": 1, "modules": {"01": entry(), "02": 7}}).encode())
    progress = mark_completed(tmp_path, "03", 5)
    assert "partly unreadable" in progress.warning
    assert load_progress(tmp_path).completed_numbers() == {"01", "03"}


# ---- fuzzing ------------------------------------------------------------------------------------------
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8)
ENTRIES = st.fixed_dictionaries({}, optional={"started_at": st.text(max_size=24), "completed_at": st.text(max_size=24),
                                              "tests_passed": st.integers(0, 10**6)})
VALID = st.builds(lambda modules: {"version": 1, "modules": modules},
                  st.dictionaries(st.integers(1, 30).map("{:02d}".format), ENTRIES, max_size=6))
DEEP = "__nested__"  # replaced in the text by [[...]]: readably shallow, or too deep to read at all


@st.composite
def mutated(draw, payload):
    """`payload` with one structural change: a wrong type, a missing key, junk, or deep nesting."""
    modules = payload["modules"]
    number = draw(st.sampled_from(sorted(modules))) if modules else "01"
    modules.setdefault(number, {})
    value = draw(JUNK | st.just(DEEP))
    change = draw(st.sampled_from(["file", "modules", "no modules", "entry", "field", "unknown field",
                                   "missing field", "odd number", "top-level junk"]))
    if change == "file":
        return value
    if change == "modules":
        payload["modules"] = value
    elif change == "no modules":
        del payload["modules"]
    elif change == "entry":
        modules[number] = value
    elif change == "field":
        modules[number][draw(st.sampled_from(sorted(RECORDED)))] = value
    elif change == "unknown field":
        modules[number]["notes"] = value
    elif change == "missing field":
        modules[number].pop(draw(st.sampled_from(sorted(RECORDED))), None)
    elif change == "odd number":
        modules[draw(st.sampled_from(["", "1a", "x", "٣", " 01"]))] = entry()
    else:
        payload["notes"] = value
    return payload


@st.composite
def progress_files(draw) -> bytes:
    """A valid progress file, then left intact, mutated, truncated, or with bytes flipped."""
    payload = draw(VALID)
    damage = draw(st.sampled_from(["none", "mutate", "truncate", "flip"]))
    if damage == "mutate":
        payload = draw(mutated(payload))
    depth = draw(st.integers(1, 40) | st.integers(2_000, 50_000))  # readable, or far too deep
    data = json.dumps(payload, indent=draw(st.sampled_from([None, 2]))).replace(
        json.dumps(DEEP), "[" * depth + "]" * depth).encode("utf-8")
    if damage == "truncate":
        data = data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    elif damage == "flip" and data:
        flipped = bytearray(data)
        for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4)):
            flipped[position] ^= draw(st.integers(1, 255))
        data = bytes(flipped)
    return data


def _modules_in(data: bytes) -> dict | None:
    """The file's modules object as JSON reads it, or None when it has none to read."""
    try:
        payload = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    modules = payload.get("modules") if isinstance(payload, dict) else None
    return modules if isinstance(modules, dict) else None


@settings(deadline=timedelta(seconds=5))  # a generous bound: a hang fails the test
@given(data=progress_files())
def test_load_progress_never_raises_and_returns_only_what_the_file_holds(data):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_progress(root, data)
        progress = load_progress(root)
        assert isinstance(progress, Progress)
        in_file = _modules_in(data)
        for number, kept in progress.modules.items():
            assert in_file is not None and isinstance(in_file.get(number), dict), f"{number} is not in the file"
            for key, value in kept.items():
                assert key in RECORDED and isinstance(value, RECORDED[key]) and not isinstance(value, bool)
                assert in_file[number][key] == value
        event("repaired, with a warning" if progress.warning else "read as it is")
        if progress.warning is None:
            assert progress.modules == in_file, "nothing may be left out without a warning"
        else:
            [backup] = backups(root)
            assert backup.read_bytes() == data and str(backup) in progress.warning
