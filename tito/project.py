"""Finding the TinyTorch project that a command works on."""

from __future__ import annotations

from pathlib import Path

from tinytorch_base.manifest import Manifest, load_manifest
from tito.errors import TitoError

MANIFEST = Path("tinytorch_base") / "manifest.toml"


class ProjectError(TitoError):
    """No TinyTorch project here; the message says what to do."""


def find_root(start: Path | str | None = None) -> Path:
    """The nearest folder at or above `start` with modules/ and tinytorch_base/manifest.toml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MANIFEST).is_file() and (folder / "modules").is_dir():
            return folder
    raise ProjectError(
        f"{here} is not inside a TinyTorch project (a folder holding modules/ and "
        "tinytorch_base/manifest.toml); cd into your TinyTorch folder and run the command again"
    )


def project_manifest(root: Path) -> Manifest:
    return load_manifest(root / MANIFEST)
