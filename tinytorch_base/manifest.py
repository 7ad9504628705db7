"""The course manifest: the one list of modules and milestones (`tinytorch_base/manifest.toml`).

Standard library only: the CLI reads it even when the `tinytorch` package cannot be imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TIERS = ("intro", "foundation", "architecture", "optimization")
STATUSES = ("available", "planned")


class ManifestError(ValueError):
    """The manifest is malformed; the message says which entry and field."""


@dataclass(frozen=True)
class CourseModule:
    number: str
    slug: str
    title: str
    tier: str
    prerequisites: tuple[str, ...]
    package: str
    capability: str
    question: str
    hours: float
    difficulty: int
    status: str

    @property
    def name(self) -> str:
        """The folder name, e.g. '01_tensor'."""
        return f"{self.number}_{self.slug}"

    @property
    def source(self) -> Path:
        """The module's source, relative to the project root."""
        return Path("modules") / self.name / f"{self.slug}.py"

    @property
    def package_file(self) -> Path:
        """The file its exported cells become, relative to the project root."""
        return Path(*self.package.split(".")).with_suffix(".py")

    @property
    def test_file(self) -> Path:
        """The tests that grade the exported package of this module."""
        return Path("tests") / "modules" / f"test_{self.name}.py"

    @property
    def available(self) -> bool:
        return self.status == "available"


@dataclass(frozen=True)
class Milestone:
    name: str
    title: str
    year: str
    requires: tuple[str, ...]
    script: str
    bar: str
    status: str

    @property
    def available(self) -> bool:
        return self.status == "available"


@dataclass(frozen=True)
class Manifest:
    name: str
    motto: str
    modules: tuple[CourseModule, ...]
    milestones: tuple[Milestone, ...]

    def module(self, key: str | int) -> CourseModule:
        """Look a module up by number ('1', '01', 1), folder name ('01_tensor') or slug ('tensor')."""
        text = str(key).strip()
        for module in self.modules:
            if text in (module.number, module.name, module.slug) or (
                text.isdigit() and int(text) == int(module.number)
            ):
                return module
        known = ", ".join(m.name for m in self.modules)
        raise KeyError(f"no module {key!r}; the modules are: {known}")

    def milestone(self, name: str) -> Milestone:
        for milestone in self.milestones:
            if milestone.name == name:
                return milestone
        known = ", ".join(m.name for m in self.milestones)
        raise KeyError(f"no milestone {name!r}; the milestones are: {known}")

    @property
    def available_modules(self) -> tuple[CourseModule, ...]:
        return tuple(m for m in self.modules if m.available)


MANIFEST_NAME = "manifest.toml"


def default_manifest_path() -> Path:
    """The manifest that ships beside this reader."""
    return Path(__file__).resolve().parent / MANIFEST_NAME


def load_manifest(path: Path | str | None = None) -> Manifest:
    """Read and validate the manifest; every problem names the entry and the field."""
    path = Path(path) if path is not None else default_manifest_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found at {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{path} is not valid TOML: {error}") from None

    modules = tuple(_module(entry, i) for i, entry in enumerate(raw.get("module", [])))
    milestones = tuple(_milestone(entry, i) for i, entry in enumerate(raw.get("milestone", [])))
    course = raw.get("course", {})
    manifest = Manifest(course.get("name", "TinyTorch"), course.get("motto", ""), modules, milestones)
    _validate(manifest)
    return manifest


def _field(entry: dict, field: str, where: str):
    if field not in entry:
        raise ManifestError(f"{where} has no '{field}'")
    return entry[field]


def _module(entry: dict, index: int) -> CourseModule:
    where = f"module entry {index} ({entry.get('number', '?')}_{entry.get('slug', '?')})"
    module = CourseModule(
        number=str(_field(entry, "number", where)),
        slug=_field(entry, "slug", where),
        title=_field(entry, "title", where),
        tier=_field(entry, "tier", where),
        prerequisites=tuple(_field(entry, "prerequisites", where)),
        package=_field(entry, "package", where),
        capability=_field(entry, "capability", where),
        question=_field(entry, "question", where),
        hours=float(_field(entry, "hours", where)),
        difficulty=int(_field(entry, "difficulty", where)),
        status=_field(entry, "status", where),
    )
    if module.tier not in TIERS:
        raise ManifestError(f"{where}: tier {module.tier!r} is not one of {TIERS}")
    if module.status not in STATUSES:
        raise ManifestError(f"{where}: status {module.status!r} is not one of {STATUSES}")
    return module


def _milestone(entry: dict, index: int) -> Milestone:
    where = f"milestone entry {index} ({entry.get('name', '?')})"
    return Milestone(
        name=_field(entry, "name", where),
        title=_field(entry, "title", where),
        year=str(_field(entry, "year", where)),
        requires=tuple(_field(entry, "requires", where)),
        script=_field(entry, "script", where),
        bar=_field(entry, "bar", where),
        status=_field(entry, "status", where),
    )


def _validate(manifest: Manifest) -> None:
    numbers = [m.number for m in manifest.modules]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise ManifestError(f"module numbers must be unique and in order, got {numbers}")
    for module in manifest.modules:
        for prerequisite in module.prerequisites:
            if prerequisite not in numbers:
                raise ManifestError(f"module {module.name}: unknown prerequisite {prerequisite!r}")
            if prerequisite >= module.number:
                raise ManifestError(
                    f"module {module.name}: prerequisite {prerequisite} is not numbered below it "
                    "(no forward dependencies)"
                )
    for milestone in manifest.milestones:
        for required in milestone.requires:
            if required not in numbers:
                raise ManifestError(f"milestone {milestone.name}: unknown module {required!r}")
