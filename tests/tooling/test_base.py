"""tinytorch_base.files: atomic writes that never leave a half-written or a stray file; new files; locks."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tinytorch_base.files import file_lock, open_atomic, remove_stale_temporaries, write_atomic, write_new


def test_write_atomic_writes_text_and_bytes_and_leaves_no_temporary_file(tmp_path):
    assert write_atomic(tmp_path / "sub" / "a.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert write_atomic(tmp_path / "sub" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.txt", "b.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with open_atomic(target) as stream:
            stream.write(b"half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_write_atomic_refuses_what_is_not_text_or_bytes(tmp_path):
    with pytest.raises(TypeError, match="str or bytes, got int"):
        write_atomic(tmp_path / "x", 3)
    assert list(tmp_path.iterdir()) == []


def test_the_new_file_keeps_the_old_files_permissions(tmp_path):
    target = tmp_path / "script.sh"
    target.write_text("old")
    target.chmod(0o751)
    write_atomic(target, "new")
    assert target.stat().st_mode & 0o777 == 0o751
    fresh = write_atomic(tmp_path / "fresh.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "model.safetensors"
    # A writer that is killed between creating its temporary file and renaming it.
    code = ("import os, sys\nfrom tinytorch_base.files import open_atomic\n"
            "with open_atomic(sys.argv[1]) as stream:\n    stream.write(b'partial'); stream.flush()\n"
            "    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code, str(target)], check=False, timeout=60)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".model.safetensors.") and left[0].endswith(".tmp"), left
    write_atomic(target, b"complete")
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert target.read_bytes() == b"complete"


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "data.bin"
    with open_atomic(target) as stream:  # this process is alive while it writes
        stream.write(b"in progress")
        assert remove_stale_temporaries(target) == []
        assert len(list(tmp_path.iterdir())) == 1
    assert target.read_bytes() == b"in progress"


def test_files_that_merely_look_alike_are_never_removed(tmp_path):
    target = tmp_path / "data.bin"
    keep = [tmp_path / ".data.bin.notes.tmp", tmp_path / ".data.bin.123", tmp_path / ".other.bin.99999999.x.tmp"]
    for path in keep:
        path.write_text("mine")
    write_atomic(target, b"x")
    assert all(path.exists() for path in keep)


def test_write_new_never_replaces_a_file_it_numbers_the_next_one(tmp_path):
    target = tmp_path / "work-20250101-101010.py"
    assert write_new(target, "first") == target
    (tmp_path / "work-20250101-101010-2.py").write_text("someone else's")
    assert write_new(target, b"second") == tmp_path / "work-20250101-101010-3.py"
    assert sorted((p.name, p.read_text()) for p in tmp_path.iterdir()) == [
        ("work-20250101-101010-2.py", "someone else's"), ("work-20250101-101010-3.py", "second"),
        ("work-20250101-101010.py", "first")], "no temporary file is left behind"


def test_write_new_from_many_threads_at_once_gives_each_its_own_file(tmp_path):
    target = tmp_path / "backup.json"
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda n: write_new(target, f"writer {n}"), range(8)))
    assert len(set(names)) == 8
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == sorted(f"writer {n}" for n in range(8))


LOCKER = """\
import sys
from tinytorch_base.files import file_lock
print("asking", flush=True)
with file_lock(sys.argv[1]):
    print("locked", flush=True)
"""


def test_file_lock_makes_another_process_wait_until_it_is_released(tmp_path):
    lock = tmp_path / "data.json.lock"
    with file_lock(lock):
        other = subprocess.Popen([sys.executable, "-c", LOCKER, str(lock)], stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline() == "asking\n"
        time.sleep(0.3)
        assert other.poll() is None, "the other process waits while the lock is held"
    assert other.communicate(timeout=60)[0] == "locked\n" and other.returncode == 0
    assert lock.exists(), "the lock file stays: deleting it would let two processes lock two files"
