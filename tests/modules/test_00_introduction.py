"""Module 00 Introduction, graded through the exported package `tinytorch.introduction`.

Nothing here is a hard-coded count: every expectation is computed from a manifest (the real one,
or a modified copy written to a temporary folder) and from the package files themselves.
"""

import importlib
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.introduction import (
    component_statistics,
    course_manifest_path,
    dependency_depths,
    direct_prerequisites,
    exported_names,
    get_tinytorch_overview,
    hierarchical_layout,
    hours_to_reach,
    learning_roadmap,
    load_course,
    visualize_tinytorch_system,
)
from tinytorch_base.manifest import CourseModule, Manifest, ManifestError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- helpers ------------------------------------------------------------------------------------
def course_copy(tmp_path):
    """A copy of the manifest and the exported package that a test may change."""
    root = course_manifest_path().parent.parent
    for package in ("tinytorch_base", "tinytorch"):
        shutil.copytree(root / package, tmp_path / "course" / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "course" / "tinytorch_base" / "manifest.toml"


def append_module(manifest_path, number, hours, names, package="tinytorch.extra_chapter"):
    """Add an available module (and its package file exporting `names`) to a manifest copy."""
    with manifest_path.open("a", encoding="utf-8") as stream:
        stream.write(
            f'\n[[module]]\nnumber = "{number}"\nslug = "extra"\ntitle = "Extra"\ntier = "optimization"\n'
            f'prerequisites = ["01"]\npackage = "{package}"\ncapability = "Extra"\nquestion = "Extra?"\n'
            f'hours = {hours}\ndifficulty = 2\nstatus = "available"\n'
        )
    package_file = manifest_path.parent.parent / Path(*package.split(".")).with_suffix(".py")
    package_file.write_text("__all__ = [" + ", ".join(f'"{n}"' for n in names) + "]\n", encoding="utf-8")


def synthetic_course(prerequisites, hours=None):
    """A Manifest whose module i has the given prerequisite indices."""
    modules = []
    for i, needs in enumerate(prerequisites):
        modules.append(CourseModule(
            number=f"{i:02d}", slug=f"m{i}", title=f"Module {i}", tier="foundation",
            prerequisites=tuple(f"{p:02d}" for p in sorted(needs)), package=f"tinytorch.m{i}",
            capability="c", question="q?", hours=float(hours[i] if hours else 1), difficulty=1,
            status="available"))
    return Manifest("T", "", tuple(modules), ())


@st.composite
def random_dags(draw):
    size = draw(st.integers(1, 10))
    return [draw(st.sets(st.integers(0, i - 1), max_size=i)) if i else set() for i in range(size)]


def brute_ancestors(prerequisites):
    found = []
    for needs in prerequisites:
        reach = set(needs)
        for p in needs:
            reach |= found[p]
        found.append(reach)
    return found


# ---- the manifest and the overview --------------------------------------------------------------
def test_overview_matches_the_manifest():
    course = load_course()
    overview = get_tinytorch_overview()
    assert overview["total_modules"] == len(course.modules)
    assert overview["available_modules"] == len(course.available_modules)
    assert overview["total_hours"] == sum(m.hours for m in course.modules)
    assert overview["total_milestones"] == len(course.milestones)
    assert [m["name"] for m in overview["milestones"]] == [m.name for m in course.milestones]
    tiers = {m.tier for m in course.modules}
    assert set(overview["tiers"]) == tiers
    for tier, summary in overview["tiers"].items():
        members = [m for m in course.modules if m.tier == tier]
        assert summary["modules"] == [m.number for m in members]
        assert summary["hours"] == sum(m.hours for m in members)


def test_components_are_the_exported_names_of_the_built_modules():
    course = load_course()
    overview = get_tinytorch_overview()
    assert set(overview["components"]) == {m.number for m in course.available_modules}
    for module in course.available_modules:
        imported = importlib.import_module(module.package)
        assert overview["components"][module.number] == list(imported.__all__), module.name
    assert overview["total_components"] == sum(len(importlib.import_module(m.package).__all__)
                                               for m in course.available_modules)


def test_overview_figures_follow_a_changed_manifest(tmp_path):
    manifest_path = course_copy(tmp_path)
    before = get_tinytorch_overview(manifest_path)
    assert before == get_tinytorch_overview(), "an unchanged copy gives the same overview"

    text = manifest_path.read_text(encoding="utf-8")
    first_hours = re.search(r'number = "01"(?:.|\n)*?hours = (\d+)', text)
    text = text[: first_hours.start(1)] + str(int(first_hours.group(1)) + 7) + text[first_hours.end(1):]
    text = text.replace("[[milestone]]", "[[dropped]]", 1)  # the first milestone disappears
    manifest_path.write_text(text, encoding="utf-8")
    last = load_course(manifest_path).modules[-1].number
    append_module(manifest_path, f"{int(last) + 1:02d}", hours=4, names=["alpha", "beta", "gamma"])

    after = get_tinytorch_overview(manifest_path)
    assert after["total_modules"] == before["total_modules"] + 1
    assert after["available_modules"] == before["available_modules"] + 1
    assert after["total_hours"] == before["total_hours"] + 7 + 4
    assert after["total_components"] == before["total_components"] + 3
    assert after["total_milestones"] == before["total_milestones"] - 1
    assert after["tiers"]["optimization"]["hours"] == before["tiers"]["optimization"]["hours"] + 4


def test_a_planned_module_contributes_no_components(tmp_path):
    manifest_path = course_copy(tmp_path)
    last = load_course(manifest_path).modules[-1].number
    append_module(manifest_path, f"{int(last) + 1:02d}", hours=1, names=["one"])
    built = get_tinytorch_overview(manifest_path)
    text = manifest_path.read_text(encoding="utf-8")
    manifest_path.write_text(text[: text.rindex('status = "available"')] + 'status = "planned"\n', encoding="utf-8")
    planned = get_tinytorch_overview(manifest_path)
    assert planned["total_components"] == built["total_components"] - 1
    assert planned["total_modules"] == built["total_modules"]


def test_a_broken_manifest_is_reported_with_its_path(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        get_tinytorch_overview(tmp_path / "tinytorch_base" / "manifest.toml")
    manifest_path = course_copy(tmp_path)
    manifest_path.write_text('[[module]]\nnumber = "00"\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="has no 'slug'"):
        get_tinytorch_overview(manifest_path)


def test_exported_names_reads_all_without_importing(tmp_path):
    package_file = tmp_path / "mod.py"
    package_file.write_text('__all__ = ["a", "b"]\nraise RuntimeError("never imported")\n', encoding="utf-8")
    assert exported_names(package_file) == ["a", "b"]
    assert exported_names(tmp_path / "missing.py") == []


# ---- the graph ----------------------------------------------------------------------------------
@given(random_dags())
def test_depth_is_the_longest_chain_of_prerequisites(prerequisites):
    depth = dependency_depths(synthetic_course(prerequisites))
    for i, needs in enumerate(prerequisites):
        expected = 0 if not needs else 1 + max(depth[f"{p:02d}"] for p in needs)
        assert depth[f"{i:02d}"] == expected


@given(random_dags())
def test_transitive_reduction_keeps_every_need_and_nothing_implied(prerequisites):
    reduced = direct_prerequisites(synthetic_course(prerequisites))
    ancestors = brute_ancestors(prerequisites)
    for i, needs in enumerate(prerequisites):
        kept = {int(p) for p in reduced[f"{i:02d}"]}
        assert kept <= needs
        reach = set(kept).union(*(ancestors[p] for p in kept))
        assert reach == ancestors[i], "every module still needs exactly what it needed"
        for p in kept:
            assert not any(p in ancestors[q] for q in kept if q != p), f"edge {p} -> {i} is implied"


@given(random_dags())
def test_hierarchical_layout_places_every_module_once_and_routes_left_to_right(prerequisites):
    course = synthetic_course(prerequisites)
    positions, routes = hierarchical_layout(course)
    depth = dependency_depths(course)
    assert len(set(positions.values())) == len(positions)
    for number, (x, _) in positions.items():
        assert x == depth[number]
    waypoints = [point for route in routes.values() for point in route[1:-1]]
    assert not set(waypoints) & set(positions.values()), "an edge never passes through a module"
    for (p, m), route in routes.items():
        assert route[0] == positions[p] and route[-1] == positions[m]
        assert [x for x, _ in route] == list(range(int(route[0][0]), int(route[-1][0]) + 1))


def test_real_course_reduction_example():
    course = load_course()
    reduced = direct_prerequisites(course)
    ancestors = brute_ancestors([{int(p) for p in m.prerequisites} for m in course.modules])
    for module in course.modules:
        kept = {int(p) for p in reduced[module.number]}
        assert kept.union(*(ancestors[p] for p in kept)) == ancestors[int(module.number)]


def test_hours_to_reach_sums_the_closure():
    course = synthetic_course([set(), {0}, {0}, {1, 2}, set()], hours=[1, 2, 4, 8, 16])
    assert hours_to_reach(course, ["03"]) == 1 + 2 + 4 + 8
    assert hours_to_reach(course, ["01", "04"]) == 1 + 2 + 16
    assert hours_to_reach(course, []) == 0


def test_roadmap_lays_modules_end_to_end_and_places_milestones():
    course = load_course()
    steps, milestones = learning_roadmap(course)
    assert [s["number"] for s in steps] == [m.number for m in course.modules]
    for before, after in zip(steps, steps[1:]):
        assert after["start"] == before["end"]
    assert steps[-1]["end"] == sum(m.hours for m in course.modules)
    end_of = {s["number"]: s["end"] for s in steps}
    for milestone, placed in zip(course.milestones, milestones):
        assert placed["hour"] == max(end_of[n] for n in milestone.requires)
        assert end_of[placed["after"]] == placed["hour"]


# ---- measurements -------------------------------------------------------------------------------
def test_component_statistics_are_measured_from_the_files(tmp_path):
    course = load_course()
    rows = component_statistics()
    assert [r["number"] for r in rows] == [m.number for m in course.available_modules]
    root = course_manifest_path().parent.parent
    for row, module in zip(rows, course.available_modules):
        package = (root / module.package_file).read_text(encoding="utf-8").splitlines()
        assert row["package_lines"] == sum(1 for line in package if line.strip() and not line.lstrip().startswith("#"))
        assert row["exported_names"] == len(importlib.import_module(module.package).__all__)
        if (root / module.source).is_file():
            source = (root / module.source).read_text(encoding="utf-8").splitlines()
            assert row["source_lines"] == sum(1 for line in source if line.strip())
    # An installed package has no modules/ folder: the source count is None, the rest still measured.
    copied = component_statistics(course_copy(tmp_path))
    assert all(r["source_lines"] is None for r in copied)
    assert [r["exported_names"] for r in copied] == [r["exported_names"] for r in rows]


# ---- figures ------------------------------------------------------------------------------------
def test_visualize_writes_four_non_empty_pngs_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("matplotlib.image")
    paths = visualize_tinytorch_system(output_dir=tmp_path / "figures", show=False)
    assert set(paths) == {"dependency_hierarchical", "dependency_circular", "learning_roadmap",
                          "component_statistics"}
    for name, path in paths.items():
        assert path.parent == tmp_path / "figures" and path.name == f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width = image.imread(path).shape[:2]
        assert height > 300 and width > 300, f"{name} is {width}x{height} pixels"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(f"{n}.png" for n in paths)


def test_visualize_draws_a_changed_course_and_shows_inline_in_a_notebook(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    shown = []
    display_module = types.ModuleType("IPython.display")
    display_module.Image = lambda filename: filename
    display_module.display = shown.append
    ipython = types.ModuleType("IPython")
    ipython.display = display_module

    class ZMQInteractiveShell:  # the class name that a Jupyter kernel's shell has
        pass

    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)

    manifest_path = course_copy(tmp_path)
    last = load_course(manifest_path).modules[-1].number
    append_module(manifest_path, f"{int(last) + 1:02d}", hours=2, names=["x"])
    paths = visualize_tinytorch_system(output_dir=tmp_path / "out", manifest_path=manifest_path)
    assert shown == [str(p) for p in paths.values()], "inside a notebook every figure is displayed"
    assert all(p.stat().st_size > 10_000 for p in paths.values())


def test_visualize_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        visualize_tinytorch_system(output_dir=tmp_path)
    assert not (tmp_path / "dependency_hierarchical.png").exists()
