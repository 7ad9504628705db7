"""Writing files so that nothing is ever left half-written.

Every file the project writes (checkpoints, tokenizers, plots, progress, exported modules,
downloads) goes through `open_atomic`: the bytes go to a temporary file beside the target, are
flushed to disk, and only then renamed over the target in one step (`os.replace` is atomic on
POSIX and Windows). A reader sees the old file or the new one, never a mix; a crash or an error
leaves the old file as it was.

A process killed mid-write cannot delete its temporary file. Each temporary file's name carries
the writer's process id, and the next write to the same target removes the ones whose writer is
gone, so they never pile up.
"""

from __future__ import annotations

import contextlib
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
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path) + f"{os.getpid()}.", suffix=_SUFFIX)
    try:
        # mkstemp makes owner-only files; give the file the mode an ordinary write would.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, content: str | bytes) -> Path:
    """Write `content` (text is encoded as UTF-8) to `path` atomically; returns the Path."""
    if not isinstance(content, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic: content must be str or bytes, got {type(content).__name__}")
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open_atomic(path) as stream:
        stream.write(data)
    return Path(path)


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
