# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 00: Introduction
#
# *Can I see how every piece of an ML framework fits together?*
#
# Before you write a line of TinyTorch, look at the whole of it. A deep-learning framework is
# not one program but a stack: tensors at the bottom, gradients in the middle, layers, losses,
# optimizers and data pipelines above, and the models that reproduce seventy years of ML
# history on top. This module draws that stack from the course's own files, so that every
# figure you see is measured, not typed in.
#
# ## Learning objectives
# - Read the course **manifest**: the one list of modules, their prerequisites and milestones.
# - Treat the modules as a **dependency graph** (a DAG): compute each module's depth, find the
#   edges that matter (the transitive reduction), and the hours on the way to each milestone.
# - **Measure** the framework: exported names and lines of code per module, counted from code.
# - Draw the system four ways: hierarchical and circular dependency graphs, the learning
#   roadmap, and component statistics.
#
# ## How to work through this module
# There is nothing to implement here: read each step, run its cell and the test after it, and
# look at the figures. When you are done:
#
# ```
# tito module complete 00
# ```
#
# exports this module to `tinytorch/introduction.py` and grades it with
# `tests/modules/test_00_introduction.py`. From then on, in any notebook:
#
# ```python
# from tinytorch.introduction import get_tinytorch_overview, visualize_tinytorch_system
# overview = get_tinytorch_overview()
# print(overview["total_modules"], overview["total_components"], overview["total_hours"])
# visualize_tinytorch_system()
# ```

# %% [markdown]
# ## Mathematical foundations: the course is a graph
#
# Each module lists its **prerequisites**: the modules whose code it imports. Draw an arrow
# $p \to m$ for every prerequisite $p$ of module $m$ and you get a directed graph $G = (V, E)$.
# The course promises *no forward dependencies*: every prerequisite is numbered below its
# module. So the module numbers are a **topological order**, and $G$ has no cycles (a DAG).
#
# Three quantities come straight out of the graph:
#
# - **Depth**: $d(m) = 0$ when $m$ has no prerequisites, else $d(m) = 1 + \max_{p \to m} d(p)$,
#   the length of the longest chain of modules that must come before $m$. Depth is the column
#   of the hierarchical layout.
# - **Transitive reduction**: an edge $p \to m$ is *implied* when $m$ also needs some $q$ that
#   itself (directly or not) needs $p$. Module 07 lists all of 01-06, yet only 06 is a direct
#   step; the others come along. Dropping implied edges keeps every "needs" relation and leaves
#   a drawing you can read.
# - **Hours to reach** a set $S$ of modules: the sum of the hours over $S$ and everything $S$
#   needs (its *ancestors*). That is the shortest study plan for a milestone.
#
# Because the numbers are a topological order, one pass over the modules in order computes
# all three: each module's prerequisites are finished before it is visited.

# %%
#| export
import ast
import io
import math
import sys
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import tinytorch
from tinytorch_base.files import write_atomic
from tinytorch_base.manifest import TIERS, default_manifest_path, load_manifest

# The course's tier colours (light, so that black labels stay readable on them).
TIER_COLOURS = {
    "intro": "#e0e0e0",
    "foundation": "#a6cee3",
    "architecture": "#cab2d6",
    "optimization": "#fdbf6f",
}

# %% [markdown]
# ## Step 1: read the manifest
#
# `tinytorch_base/manifest.toml` is the single list that the CLI, the tests, the checkpoints and
# this module all read. It ships in `tinytorch_base`, the small package beneath both the library
# and the CLI (standard library only), together with its reader, so `load_course()` finds it
# without knowing anything of the CLI. Pass another path to study a different
# version of the course (the tests do exactly that). The reader checks every
# entry: a missing field or a forward dependency is reported with the entry's name.

# %%
#| export
def course_manifest_path():
    """The manifest that ships with the installed project (in `tinytorch_base`)."""
    return default_manifest_path()


def load_course(manifest_path=None):
    """The course manifest: modules (number, title, tier, prerequisites, hours...) and milestones."""
    return load_manifest(manifest_path if manifest_path is not None else course_manifest_path())

# %%
def test_unit_load_course():
    course = load_course()
    numbers = [module.number for module in course.modules]
    assert numbers == sorted(numbers), "modules are listed in course order"
    for module in course.modules:
        assert all(p < module.number for p in module.prerequisites), f"{module.name} has a forward dependency"
    print(f"manifest: {len(course.modules)} modules, {len(course.milestones)} milestones")


test_unit_load_course()

# %% [markdown]
# ## Step 2: the overview, computed
#
# How many components does TinyTorch have? We do not type the answer in: we count it. Every
# built module exports its public names into a package file, and the exporter writes them as
# that file's `__all__`. Reading `__all__` with Python's `ast` module (without importing the
# file) gives the count, so it grows the moment a module is exported.
#
# `get_tinytorch_overview()` gathers the figures the course is built from: modules (all, and
# those built so far), components, hours per tier, and the milestones.

# %%
#| export
def exported_names(package_file):
    """The names in a package file's `__all__` (an empty list when the file does not exist)."""
    path = Path(package_file)
    if not path.is_file():
        return []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def _project_root(manifest_path):
    """The folder that holds `tinytorch_base/` and `tinytorch/` (and, in a course checkout, `modules/`)."""
    return Path(manifest_path).resolve().parent.parent


def get_tinytorch_overview(manifest_path=None):
    """Modules, components, hours, tiers and milestones of the course, all computed."""
    manifest_path = Path(manifest_path) if manifest_path is not None else course_manifest_path()
    course = load_course(manifest_path)
    root = _project_root(manifest_path)
    components = {m.number: exported_names(root / m.package_file) for m in course.available_modules}
    tiers = {}
    for tier in TIERS:
        members = [m for m in course.modules if m.tier == tier]
        if members:
            tiers[tier] = {
                "modules": [m.number for m in members],
                "hours": sum(m.hours for m in members),
                "available": sum(m.available for m in members),
            }
    milestones = [
        {"name": ms.name, "title": ms.title, "year": ms.year, "requires": list(ms.requires),
         "available": ms.available, "hours_to_reach": hours_to_reach(course, ms.requires)}
        for ms in course.milestones
    ]
    return {
        "name": course.name,
        "motto": course.motto,
        "total_modules": len(course.modules),
        "available_modules": len(course.available_modules),
        "total_components": sum(len(names) for names in components.values()),
        "components": components,
        "total_hours": sum(m.hours for m in course.modules),
        "tiers": tiers,
        "total_milestones": len(course.milestones),
        "milestones": milestones,
    }


def hours_to_reach(course, numbers):
    """Study hours for the modules `numbers` and every module they need, directly or not."""
    by_number = {m.number: m for m in course.modules}
    needed, stack = set(), list(numbers)
    while stack:
        number = stack.pop()
        if number not in needed:
            needed.add(number)
            stack.extend(by_number[number].prerequisites)
    return sum(by_number[n].hours for n in needed)

# %%
def test_unit_overview():
    course = load_course()
    overview = get_tinytorch_overview()
    assert overview["total_modules"] == len(course.modules)
    assert overview["total_hours"] == sum(m.hours for m in course.modules)
    assert sum(len(t["modules"]) for t in overview["tiers"].values()) == overview["total_modules"]
    assert overview["total_components"] == sum(len(n) for n in overview["components"].values())
    assert "get_tinytorch_overview" in overview["components"].get("00", ["get_tinytorch_overview"])
    print(f"overview: {overview['total_modules']} modules, {overview['total_components']} components, "
          f"{overview['total_hours']:g} hours")


test_unit_overview()

# %% [markdown]
# ## Step 3: the dependency graph
#
# Three small functions turn the manifest into geometry.
#
# - `dependency_depths` follows the recurrence for $d(m)$ in one pass, in course order.
# - `direct_prerequisites` keeps an edge $p \to m$ only when no other prerequisite of $m$
#   already reaches $p$ (the transitive reduction).
# - `hierarchical_layout` puts each module in the column of its depth. An arrow that skips
#   columns would cut through the modules in between, so it gets an invisible waypoint in each
#   column it crosses (graph-drawing tools such as Graphviz's `dot` do the same). Within a
#   column, modules are ordered by tier, then by the average row of their neighbours in the
#   previous column (the *barycenter* heuristic), which untangles most crossings in a few
#   sweeps.
#
# `circular_layout` is the other view: every module on a circle in course order, so that every
# edge of the full graph is visible at once.

# %%
#| export
def dependency_depths(course):
    """Depth of each module: 0 without prerequisites, else one more than its deepest prerequisite."""
    depth = {}
    for module in course.modules:  # course order is a topological order
        depth[module.number] = 1 + max((depth[p] for p in module.prerequisites), default=-1)
    return depth


def _ancestors(course):
    """Every module each module needs, directly or not."""
    found = {}
    for module in course.modules:
        found[module.number] = set(module.prerequisites).union(*(found[p] for p in module.prerequisites))
    return found


def direct_prerequisites(course):
    """The prerequisites that are not implied by another prerequisite (the transitive reduction)."""
    ancestors = _ancestors(course)
    return {
        module.number: tuple(
            p for p in module.prerequisites
            if not any(p in ancestors[q] for q in module.prerequisites if q != p)
        )
        for module in course.modules
    }


def hierarchical_layout(course, sweeps=4):
    """Positions by depth (x) and order within the column (y), and each edge's route of points.

    Returns (positions, routes): positions maps module number -> (x, y); routes maps each
    direct edge (prerequisite, module) -> list of (x, y) points from one to the other.
    """
    depth = dependency_depths(course)
    tier_of = {m.number: TIERS.index(m.tier) for m in course.modules}
    columns = defaultdict(list)
    for module in course.modules:
        columns[depth[module.number]].append(module.number)
    chains = {}
    for number, prerequisites in direct_prerequisites(course).items():
        for p in prerequisites:
            waypoints = [f"{p}>{number}@{d}" for d in range(depth[p] + 1, depth[number])]
            for column, waypoint in zip(range(depth[p] + 1, depth[number]), waypoints):
                columns[column].append(waypoint)
                tier_of[waypoint] = (tier_of[p] + tier_of[number]) / 2
            chains[(p, number)] = [p, *waypoints, number]
    before, after = defaultdict(list), defaultdict(list)
    for chain in chains.values():
        for a, b in zip(chain, chain[1:]):
            after[a].append(b)
            before[b].append(a)

    def reorder(column, neighbours):
        row = {key: i for c in columns.values() for i, key in enumerate(c)}
        def barycenter(key):
            rows = [row[n] for n in neighbours[key]]
            return sum(rows) / len(rows) if rows else row[key]
        columns[column].sort(key=lambda key: (tier_of[key], barycenter(key)))

    last = max(columns)
    for column in columns:
        columns[column].sort(key=lambda key: (tier_of[key], key))
    for _ in range(sweeps):
        for column in range(1, last + 1):
            reorder(column, before)
        for column in range(last - 1, -1, -1):
            reorder(column, after)
    points = {}
    for column, keys in columns.items():
        for i, key in enumerate(keys):
            points[key] = (float(column), (len(keys) - 1) / 2 - i)
    positions = {m.number: points[m.number] for m in course.modules}
    routes = {edge: [points[key] for key in chain] for edge, chain in chains.items()}
    return positions, routes


def circular_layout(course):
    """Each module on the unit circle, in course order, clockwise from the top."""
    count = len(course.modules)
    return {
        module.number: (math.cos(math.pi / 2 - 2 * math.pi * i / count),
                        math.sin(math.pi / 2 - 2 * math.pi * i / count))
        for i, module in enumerate(course.modules)
    }

# %%
def test_unit_dependency_graph():
    course = load_course()
    depth = dependency_depths(course)
    reduced = direct_prerequisites(course)
    ancestors = _ancestors(course)
    for module in course.modules:
        assert all(depth[p] < depth[module.number] for p in module.prerequisites)
        # The reduction keeps every "needs" relation: each listed prerequisite is still reached.
        reachable = set(reduced[module.number]).union(*(ancestors[p] for p in reduced[module.number]))
        assert set(module.prerequisites) <= reachable
    positions, routes = hierarchical_layout(course)
    assert len(set(positions.values())) == len(positions), "no two modules share a place"
    for (p, m), route in routes.items():
        assert route[0] == positions[p] and route[-1] == positions[m]
        assert [x for x, _ in route] == sorted(x for x, _ in route), "every edge runs left to right"
    print(f"graph: depth up to {max(depth.values())}, {sum(map(len, reduced.values()))} direct edges "
          f"of {sum(len(m.prerequisites) for m in course.modules)} listed")


test_unit_dependency_graph()

# %% [markdown]
# ## Step 4: measuring the components
#
# "Lines of code" is a crude measure, but a measured one beats a guessed one. For every built
# module we count three things:
#
# - **source lines**: the non-blank lines of `modules/NN_slug/slug.py`, the chapter you read
#   (prose, code and tests);
# - **package lines of code**: the non-blank, non-comment lines of the exported file, the part
#   that becomes the library;
# - **exported names**: the length of its `__all__`.
#
# An installed package has no `modules/` folder, so the source count is then `None`.

# %%
#| export
def _code_lines(text):
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def component_statistics(manifest_path=None):
    """Per built module: source lines, package lines of code and exported names, measured."""
    manifest_path = Path(manifest_path) if manifest_path is not None else course_manifest_path()
    course = load_course(manifest_path)
    root = _project_root(manifest_path)
    rows = []
    for module in course.available_modules:
        source, package = root / module.source, root / module.package_file
        rows.append({
            "number": module.number,
            "title": module.title,
            "tier": module.tier,
            "source_lines": (sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
                             if source.is_file() else None),
            "package_lines": _code_lines(package.read_text(encoding="utf-8")) if package.is_file() else 0,
            "exported_names": len(exported_names(package)),
        })
    return rows

# %%
def test_unit_component_statistics():
    rows = component_statistics()
    assert [r["number"] for r in rows] == [m.number for m in load_course().available_modules]
    for row in rows:
        assert row["package_lines"] > 0 and row["exported_names"] > 0, f"module {row['number']} exports nothing"
    print("components:", ", ".join(f"{r['number']}: {r['exported_names']} names" for r in rows))


test_unit_component_statistics()

# %% [markdown]
# ## Step 5: drawing the system
#
# The figures are drawn with matplotlib's object interface (`Figure`, not `pyplot`), which
# renders with the Agg backend: no display is needed, so the same code runs on a laptop, in CI
# and on a server. Each PNG is rendered into memory and written **atomically** (a temporary file
# renamed into place), so an interrupted run never leaves half an image behind. In a Jupyter
# notebook the images are also shown inline.
#
# The four figures:
# 1. `dependency_hierarchical.png`: columns are depths, colours are tiers, arrows are the
#    direct prerequisites; dashed boxes are modules not built yet.
# 2. `dependency_circular.png`: every listed prerequisite as a curve across the circle.
# 3. `learning_roadmap.png`: each module's hours, laid end to end, and where each milestone
#    unlocks.
# 4. `component_statistics.png`: the measurements of Step 4.

# %%
#| export
def learning_roadmap(course):
    """Modules in course order with their start and end hour, and the hour each milestone unlocks."""
    steps, clock = [], 0.0
    for module in course.modules:
        steps.append({"number": module.number, "title": module.title, "tier": module.tier,
                      "hours": module.hours, "difficulty": module.difficulty,
                      "available": module.available, "start": clock, "end": clock + module.hours})
        clock += module.hours
    end_of = {step["number"]: step["end"] for step in steps}
    milestones = [{"name": ms.name, "year": ms.year, "after": max(ms.requires, key=end_of.get),
                   "hour": max(end_of[n] for n in ms.requires)} for ms in course.milestones]
    return steps, milestones


def _matplotlib():
    """The matplotlib pieces the figures use, imported only when drawing (matplotlib is optional)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, Patch, PathPatch
        from matplotlib.path import Path as CurvePath
    except ImportError:
        raise ImportError(
            "visualize_tinytorch_system needs matplotlib, which is not installed; "
            "install it with: pip install matplotlib (or pip install -e \".[notebooks]\")"
        ) from None
    return SimpleNamespace(Figure=Figure, FigureCanvasAgg=FigureCanvasAgg, FancyArrowPatch=FancyArrowPatch,
                           Patch=Patch, PathPatch=PathPatch, CurvePath=CurvePath)


def _tier_legend(ax, course, mpl, loc):
    handles = [mpl.Patch(facecolor=TIER_COLOURS[t], edgecolor="black", label=t.capitalize())
               for t in TIERS if any(m.tier == t for m in course.modules)]
    handles.append(mpl.Patch(facecolor="white", edgecolor="black", linestyle="--", label="not built yet"))
    ax.legend(handles=handles, loc=loc, fontsize=9, frameon=True)


def _node_style(module):
    return {"boxstyle": "round,pad=0.35", "facecolor": TIER_COLOURS[module.tier], "edgecolor": "black",
            "linestyle": "-" if module.available else "--", "linewidth": 1.4 if module.available else 1.0}


def _draw_hierarchical(course, mpl):
    positions, routes = hierarchical_layout(course)
    columns = int(max(x for x, _ in positions.values())) + 1
    every_point = list(positions.values()) + [point for route in routes.values() for point in route]
    reach = max(abs(y) for _, y in every_point)
    figure = mpl.Figure(figsize=(2.0 * columns + 1.0, 1.1 * reach + 2.6), layout="constrained")
    ax = figure.add_subplot()
    ax.set_xlim(-0.7, columns - 0.3)
    ax.set_ylim(-reach - 0.7, reach + 0.7)
    boxes = {}
    for module in course.modules:
        x, y = positions[module.number]
        label = f"{module.number}\n{textwrap.fill(module.title, 13)}"
        boxes[module.number] = ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=3,
                                       bbox=_node_style(module))
    # Render once so that every box has its final size, then attach the arrows to the box sides.
    renderer = mpl.FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    to_data = ax.transData.inverted()
    half_width = {number: (box.get_bbox_patch().get_window_extent(renderer).transformed(to_data).width / 2)
                  for number, box in boxes.items()}
    for (p, m), route in routes.items():
        points = [(route[0][0] + half_width[p], route[0][1]), *route[1:-1],
                  (route[-1][0] - half_width[m], route[-1][1])]
        vertices, codes = [points[0]], [mpl.CurvePath.MOVETO]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            bend = (x1 - x0) / 2  # horizontal tangents at both ends: an S-curve between columns
            vertices += [(x0 + bend, y0), (x1 - bend, y1), (x1, y1)]
            codes += [mpl.CurvePath.CURVE4] * 3
        ax.add_patch(mpl.FancyArrowPatch(path=mpl.CurvePath(vertices, codes), arrowstyle="-|>",
                                         mutation_scale=12, color="#555555", linewidth=1.0, shrinkA=0,
                                         shrinkB=1, zorder=2))
    ax.set_xticks(range(columns))
    ax.set_xticklabels([f"depth {d}" for d in range(columns)], fontsize=9)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("TinyTorch modules, hierarchical layout: arrows are direct prerequisites, "
                 "columns the longest chain before a module", fontsize=12)
    _tier_legend(ax, course, mpl, "upper left")
    return figure


def _draw_circular(course, mpl):
    positions = circular_layout(course)
    by_number = {m.number: m for m in course.modules}
    figure = mpl.Figure(figsize=(11, 11), layout="constrained")
    ax = figure.add_subplot()
    for module in course.modules:
        for p in module.prerequisites:
            start, end = positions[p], positions[module.number]
            control = (0.25 * (start[0] + end[0]), 0.25 * (start[1] + end[1]))
            codes = [mpl.CurvePath.MOVETO, mpl.CurvePath.CURVE3, mpl.CurvePath.CURVE3]
            ax.add_patch(mpl.PathPatch(mpl.CurvePath([start, control, end], codes), facecolor="none",
                                       edgecolor="#4d4d4d", alpha=0.45, linewidth=1.0))
    for number, (x, y) in positions.items():
        module = by_number[number]
        ax.scatter([x], [y], s=260, color=TIER_COLOURS[module.tier], edgecolors="black", zorder=3,
                   linewidths=1.4 if module.available else 1.0, linestyle="-" if module.available else "--")
        ax.text(x, y, number, ha="center", va="center", fontsize=8, zorder=4)
        angle = math.degrees(math.atan2(y, x))
        flip = x < -1e-9
        ax.text(1.1 * x, 1.1 * y, module.title, rotation=angle + 180 if flip else angle,
                rotation_mode="anchor", ha="right" if flip else "left", va="center", fontsize=10)
    longest = max(len(m.title) for m in course.modules)
    reach = 1.15 + 0.028 * longest  # room for the longest radial label
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("TinyTorch modules: circular layout (every listed prerequisite)", fontsize=12)
    _tier_legend(ax, course, mpl, "lower left")
    return figure


def _draw_roadmap(course, mpl):
    steps, milestones = learning_roadmap(course)
    unlocks = defaultdict(list)
    for milestone in milestones:
        unlocks[milestone["after"]].append(f"{milestone['name']} ({milestone['year']})")
    total = steps[-1]["end"] if steps else 0.0
    figure = mpl.Figure(figsize=(12, 0.36 * len(steps) + 1.8), layout="constrained")
    ax = figure.add_subplot()
    for row, step in enumerate(steps):
        ax.barh(row, step["hours"], left=step["start"], height=0.7, color=TIER_COLOURS[step["tier"]],
                edgecolor="black", linestyle="-" if step["available"] else "--")
        note = f"{step['hours']:g} h, level {step['difficulty']}/4"
        if unlocks.get(step["number"]):
            note += "   unlocks milestone: " + ", ".join(unlocks[step["number"]])
            ax.plot([step["end"]], [row], marker="D", color="#b2182b", markersize=6, zorder=3)
        ax.text(step["end"] + 0.6, row, note, va="center", fontsize=9,
                color="#b2182b" if unlocks.get(step["number"]) else "black")
    ax.set_yticks(range(len(steps)))
    ax.set_yticklabels([f"{s['number']} {s['title']}" for s in steps], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, total * 1.02 + 1)
    ax.set_xlabel("hours of study, modules in course order")
    ax.set_title(f"TinyTorch learning roadmap: {total:g} hours in {len(steps)} modules", fontsize=12)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _tier_legend(ax, course, mpl, "lower left")
    return figure


def _draw_components(course, rows, mpl):
    figure = mpl.Figure(figsize=(12, 0.5 * max(len(rows), 1) + 2.0), layout="constrained")
    lines_ax, names_ax = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [2, 1]})
    labels = [f"{r['number']} {r['title']}" for r in rows]
    positions = list(range(len(rows)))
    source = [r["source_lines"] or 0 for r in rows]
    package = [r["package_lines"] for r in rows]
    names = [r["exported_names"] for r in rows]
    colours = [TIER_COLOURS[r["tier"]] for r in rows]
    lines_ax.barh([p - 0.2 for p in positions], source, height=0.38, color="white", edgecolor="black",
                  hatch="///")
    lines_ax.barh([p + 0.2 for p in positions], package, height=0.38, color=colours, edgecolor="black")
    for p, s, k in zip(positions, source, package):
        lines_ax.text(s, p - 0.2, f" {s}", va="center", fontsize=9)
        lines_ax.text(k, p + 0.2, f" {k}", va="center", fontsize=9)
    names_ax.barh(positions, names, height=0.6, color=colours, edgecolor="black")
    for p, n in zip(positions, names):
        names_ax.text(n, p, f" {n}", va="center", fontsize=9)
    lines_ax.set_yticks(positions)
    lines_ax.set_yticklabels(labels, fontsize=9)
    lines_ax.invert_yaxis()
    lines_ax.set_xlim(0, max(source + package + [1]) * 1.18)
    names_ax.set_xlim(0, max(names + [1]) * 1.25)
    lines_ax.set_xlabel("lines")
    names_ax.set_xlabel("exported names (__all__)")
    handles = [mpl.Patch(facecolor="white", edgecolor="black", hatch="///", label="module source (non-blank lines)"),
               mpl.Patch(facecolor=TIER_COLOURS["foundation"], edgecolor="black",
                     label="package (lines of code; colour = tier)")]
    lines_ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=9,
                    frameon=False)
    for ax in (lines_ax, names_ax):
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    figure.suptitle(f"TinyTorch components, measured: {len(rows)} built modules, {sum(package)} lines of "
                    f"package code, {sum(names)} exported names", fontsize=12)
    return figure


def _save_png(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())
    return path


def _in_notebook():
    """True inside a Jupyter kernel (IPython's kernel shell), where images can be shown inline."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def visualize_tinytorch_system(output_dir=None, manifest_path=None, show=None):
    """Draw the dependency graphs, roadmap and component statistics to PNG files.

    output_dir: where the PNGs go (default: a `tinytorch-figures` folder in the system's
    temporary directory, so that nothing lands in your project by surprise).
    show: display the images inline (default: only inside a Jupyter notebook).
    Returns {figure name: path of its PNG}.
    """
    mpl = _matplotlib()
    manifest_path = Path(manifest_path) if manifest_path is not None else course_manifest_path()
    course = load_course(manifest_path)
    output_dir = Path(output_dir) if output_dir is not None else Path(tempfile.gettempdir()) / "tinytorch-figures"
    figures = {
        "dependency_hierarchical": _draw_hierarchical(course, mpl),
        "dependency_circular": _draw_circular(course, mpl),
        "learning_roadmap": _draw_roadmap(course, mpl),
        "component_statistics": _draw_components(course, component_statistics(manifest_path), mpl),
    }
    paths = {name: _save_png(figure, output_dir / f"{name}.png") for name, figure in figures.items()}
    if show if show is not None else _in_notebook():
        from IPython.display import Image, display

        for path in paths.values():
            display(Image(filename=str(path)))
    return paths

# %%
def test_unit_visualize():
    with tempfile.TemporaryDirectory() as folder:
        paths = visualize_tinytorch_system(output_dir=folder, show=False)
        assert set(paths) == {"dependency_hierarchical", "dependency_circular", "learning_roadmap",
                              "component_statistics"}
        for path in paths.values():
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
        assert not [p for p in Path(folder).iterdir() if p.suffix != ".png"], "no temporary files left"
    print("figures: ok")


test_unit_visualize()

# %% [markdown]
# ## Systems analysis: what does the course cost, and what does the framework cost?
#
# Three measurements, each from the files themselves.
#
# 1. **Hours to each milestone.** A milestone needs some modules and, through them, their
#    prerequisites. Summing the hours of that closure gives the shortest study plan that
#    reaches it: compare it with the full course.
# 2. **Size per module.** Lines of package code and exported names, from Step 4: how much of a
#    framework each idea takes.
# 3. **Start-up cost.** `import tinytorch` in a fresh interpreter, against `import numpy` alone.
#    A framework that takes seconds to import makes every test and script slower; ours should
#    add little to NumPy's own import.

# %%
def measure_import_time(statement, repeats=5):
    """Median milliseconds for a fresh Python interpreter to run `statement`."""
    import subprocess
    import time

    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        samples.append((time.perf_counter() - start) * 1e3)
    return sorted(samples)[len(samples) // 2]


if __name__ == "__main__":
    course = load_course()
    overview = get_tinytorch_overview()
    print(f"{overview['name']}: {overview['total_modules']} modules, {overview['total_hours']:g} hours in all")
    for milestone in overview["milestones"]:
        share = milestone["hours_to_reach"] / overview["total_hours"]
        print(f"  milestone {milestone['name']:<11} needs {milestone['hours_to_reach']:>5g} h ({share:.0%} of the course)")
    for row in component_statistics():
        print(f"  module {row['number']} {row['title']:<14} source {row['source_lines']} lines, "
              f"package {row['package_lines']} lines of code, {row['exported_names']} names")
    baseline = measure_import_time("pass")
    numpy_ms = measure_import_time("import numpy") - baseline
    tinytorch_ms = measure_import_time("import tinytorch") - baseline
    print(f"  import numpy: {numpy_ms:.0f} ms; import tinytorch (numpy included): {tinytorch_ms:.0f} ms "
          f"(interpreter start-up of {baseline:.0f} ms subtracted)")
    for name, path in visualize_tinytorch_system().items():
        print(f"  {name}: {path}")

# %% [markdown]
# What the cell printed on the course's shared 2-core build machine
# (`python modules/00_introduction/introduction.py`, with the manifest of this writing):
#
# | milestone | hours to reach | share of the 75-hour course |
# |---|---|---|
# | perceptron | 10 | 13% |
# | xor | 18 | 24% |
# | mnist | 25 | 33% |
# | cifar10 | 30 | 40% |
# | attention | 37 | 49% |
# | tinygpt | 40 | 53% |
#
# The first milestone is an evening away; the GPT needs about half the course, not all of it,
# because the optimization tier is not on its path. Module 01's package is about 560 lines of
# code for 45 exported names. On that machine, busy with other work so the times are noisy,
# `import numpy` took 320-550 ms and `import tinytorch` 5-30% longer (NumPy included): NumPy
# is most of the start-up cost. `python -X importtime -c "import tinytorch"` shows where each
# millisecond goes. Run the cell on your machine; the figures change as modules are built,
# because nothing above is typed in.

# %% [markdown]
# ## Production context: how PyTorch is organised
#
# PyTorch has the same layers at a much larger scale. Its Python front end (`torch/`) holds
# the `Tensor` API, `torch.nn` (modules and layers), `torch.optim` (optimizers) and
# `torch.utils.data` (datasets and loaders), the namespaces TinyTorch mirrors. Underneath,
# every operation goes through a *dispatcher* to kernels in ATen, PyTorch's C++ tensor library,
# chosen by device and dtype; autograd is a C++ engine that walks a graph recorded during the
# forward pass. TinyTorch keeps the same seams in Python: module 01's `Tensor.from_op` records
# the graph, module 05 supplies the engine, and module 18 swaps kernels behind one backend.
# The dependency discipline is the same too: lower layers never import higher ones.

# %% [markdown]
# ## Integration test: the overview and the figures agree

# %%
def test_integration_overview_matches_figures():
    course = load_course()
    overview = get_tinytorch_overview()
    steps, milestones = learning_roadmap(course)
    assert steps[-1]["end"] == overview["total_hours"]
    assert [m["name"] for m in milestones] == [m["name"] for m in overview["milestones"]]
    rows = component_statistics()
    assert sum(r["exported_names"] for r in rows) == overview["total_components"]
    print("integration: ok")


test_integration_overview_matches_figures()

# %% [markdown]
# ## ML systems thinking
#
# 1. Module 07 lists six prerequisites but has one direct edge in the reduced graph. What would
#    break if the manifest listed only that one edge?
# 2. The roadmap lays the modules end to end. Two learners split the work: which modules could
#    they build in parallel, and what is the shortest calendar time (the longest path in hours)?
# 3. The overview counts `__all__` names without importing the package. What would importing it
#    cost, and when would the two counts differ?
# 4. Which single module, if its API changed, would force changes in the most other modules?
#    (Hint: count its descendants in the graph.)
#
# ## Summary
#
# You read the course as data: a manifest whose modules form a DAG in topological order. You
# computed depths, the transitive reduction and the hours to each milestone, measured the
# framework's components from its code, and drew it four ways. Every number here updates when
# a module is built. Next, module 01 builds the first component: the `Tensor`.
