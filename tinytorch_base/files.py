"""Writing files so that nothing is ever left half-written.

Every file the project writes (checkpoints, tokenizers, plots, progress, exported modules,
downloads) goes through `open_atomic`: the bytes go to a temporary file beside the target, are
flushed to disk, and only then renamed over the target in one step (`os.replace` is atomic on
POSIX and Windows). A reader sees the old file or the new one, never a mix; a crash or an error
leaves the old file as it was.

A process killed mid-write cannot delete its temporary file. Each temporary file's name carries
the writer's process id, and the next write to the same target removes the ones whose writer is
gone, so they never pile up.

Two more ways to write: `write_new` creates a file that never replaces one already there (backups:
a second backup in the same second gets its own name), and `file_lock` makes a read-modify-write
of a file safe when several processes do it at once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

_SUFFIX = ".tmp"


@contextlib.contextmanager
def open_atomic(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: renamed over `path` only when the block succeeds.

        with open_atomic("model.safetensors") as stream:
            stream.write(data)

    The new file gets the old file's permissions, or those a plain `open()` would give.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else _default_mode()
    handle, temporary = _temporary_beside(path, mode)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            _flush_to_disk(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, content: str | bytes) -> Path:
    """Write `content` (text is encoded as UTF-8) to `path` atomically; returns the Path."""
    data = _as_bytes(content, "write_atomic")
    with open_atomic(path) as stream:
        stream.write(data)
    return Path(path)


def write_new(path: Path | str, content: str | bytes) -> Path:
    """Write `content` to a new file: `path`, or if that exists `stem-2.suffix`, `stem-3.suffix`...

    Returns the name it got. It never replaces a file, even one another process creates at the
    same moment, and, like `write_atomic`, the file appears only once all of it is on disk.
    """
    path = Path(path)
    data = _as_bytes(content, "write_new")
    handle, temporary = _temporary_beside(path, _default_mode())
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            _flush_to_disk(stream)
        # A hard link gives the finished file a second name, and fails if that name is taken.
        for number in itertools.count(1):
            candidate = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
            try:
                os.link(temporary, candidate)
                return candidate
            except FileExistsError:
                continue
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) while the block runs.

        with file_lock("progress.json.lock"):
            ...read progress.json, change it, write it back...

    Another process asking for the same lock waits until the block ends. The system releases the
    lock when its holder exits, even when it is killed, so no crash leaves it held; for the same
    reason the lock file is left in place (deleting it would let two processes lock two files).
    POSIX only (fcntl.flock), like the rest of the course tooling.
    """
    import fcntl  # imported here so that this module still imports where fcntl does not exist

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as stream:  # "a" creates the file and never truncates it
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def remove_stale_temporaries(path: Path | str) -> list[Path]:
    """Delete the temporary files left beside `path` by writers that no longer run; returns them."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = _prefix(path)
    for candidate in path.parent.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _temporary_beside(path: Path, mode: int) -> tuple[int, str]:
    """A new temporary file in `path`'s folder, named after `path` and this process: (fd, name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path) + f"{os.getpid()}.", suffix=_SUFFIX)
    try:
        os.chmod(temporary, mode)  # mkstemp makes owner-only files; give the mode an ordinary write would
    except BaseException:
        os.close(handle)
        Path(temporary).unlink(missing_ok=True)
        raise
    return handle, temporary


def _flush_to_disk(stream: BinaryIO) -> None:
    stream.flush()
    os.fsync(stream.fileno())


def _as_bytes(content: str | bytes, caller: str) -> bytes:
    if not isinstance(content, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{caller}: content must be str or bytes, got {type(content).__name__}")
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def _prefix(path: Path) -> str:
    return f".{path.name}."


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: leave its file alone
    return True


def _default_mode() -> int:
    """The permissions a plain `open()` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
