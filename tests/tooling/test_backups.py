"""Backups never overwrite each other: two in the same second are two files.

`tito module reset` backs the learner's file up, and a corrupt progress file is backed up before
it is repaired. Both named their backup after the second alone, so a second backup in the same
second replaced the first: a reset, an edit and a reset again lost the first version for good.
"""

import re
import time

import pytest

from tito.cli import main
from tito.progress import PROGRESS_FILE, load_progress
from tito.release import PRISTINE

REAL_STRFTIME = time.strftime


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every timestamp falls in the same second, as when two commands run back to back."""
    moment = time.localtime(1_750_000_000)
    monkeypatch.setattr(time, "strftime", lambda format, t=None: REAL_STRFTIME(format, moment))


@pytest.fixture
def learner(project_copy, manifest, monkeypatch):
    """A project where module 01's original is kept, as in the learner edition; returns its source path."""
    source = project_copy / manifest.module("01").source
    pristine = project_copy / PRISTINE / manifest.module("01").source
    pristine.parent.mkdir(parents=True)
    pristine.write_bytes(source.read_bytes())
    monkeypatch.chdir(project_copy)
    return source


def test_two_resets_in_one_second_keep_both_versions(learner, project_copy, frozen_clock, capsys):
    original = learner.read_bytes()
    named = []
    for attempt in (b"# my first attempt\n", b"# my second attempt\n"):
        learner.write_bytes(original + attempt)
        assert main(["module", "reset", "01"]) == 0
        assert learner.read_bytes() == original
        named.append(re.search(r"Your version was saved to (\S+);", capsys.readouterr().out).group(1))
    saved = sorted((project_copy / ".tito" / "backups").iterdir())
    assert len(saved) == 2 and sorted(p.relative_to(project_copy).as_posix() for p in saved) == sorted(named)
    assert {p.read_bytes() for p in saved} == {original + b"# my first attempt\n", original + b"# my second attempt\n"}


def test_resetting_an_untouched_module_makes_no_backup_and_says_so(learner, project_copy, capsys):
    assert main(["module", "reset", "01"]) == 0
    assert "Your file was the original already, so no backup was made" in capsys.readouterr().out
    assert not (project_copy / ".tito" / "backups").exists()


def test_resetting_a_deleted_module_restores_it(learner, project_copy, capsys):
    original = learner.read_bytes()
    learner.unlink()
    assert main(["module", "reset", "01"]) == 0
    assert "There was no file of yours to back up" in capsys.readouterr().out
    assert learner.read_bytes() == original


def test_two_corrupt_progress_files_in_one_second_get_two_backups(tmp_path, frozen_clock):
    path = tmp_path / PROGRESS_FILE
    path.parent.mkdir(parents=True)
    for text in (b"{ the first", b"{ the second"):
        path.write_bytes(text)
        assert "unreadable" in load_progress(tmp_path).warning
    saved = sorted(path.parent.glob("progress.corrupt-*.json"))
    assert sorted(p.read_bytes() for p in saved) == [b"{ the first", b"{ the second"]
