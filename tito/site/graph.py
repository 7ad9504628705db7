"""The module dependency graph of the Big Picture page, drawn from the manifest as inline SVG.

A row is a module's depth (the length of the longest chain of prerequisites that leads to it),
the colour is its tier. An arrow goes from a module to each module that builds on it *directly*: a prerequisite that
is implied through another prerequisite (07 needs 01, but 07 needs 06, which needs 01) is left
out, so the picture shows the course's shape instead of every line of the manifest. The tables
under the graph list every prerequisite.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from tinytorch_base.manifest import TIERS, CourseModule, Manifest

NODE_WIDTH, NODE_HEIGHT = 112, 30
COLUMN, ROW = 124, 54  # distance between node origins
LEGEND, MARGIN = 30, 8
TIER_COLOURS = {"intro": "#6c757d", "foundation": "#1f6fb4", "architecture": "#2a8a3e", "optimization": "#b8452b"}


def prerequisite_closure(manifest: Manifest) -> dict[str, set[str]]:
    """Every module's prerequisites, direct and indirect."""
    closure: dict[str, set[str]] = {}
    for module in manifest.modules:  # prerequisites are numbered below, so they come first
        found = set(module.prerequisites)
        for number in module.prerequisites:
            found |= closure[number]
        closure[module.number] = found
    return closure


def direct_prerequisites(manifest: Manifest) -> dict[str, tuple[str, ...]]:
    """Each module's prerequisites less those implied through another of its prerequisites."""
    closure = prerequisite_closure(manifest)
    return {
        m.number: tuple(p for p in m.prerequisites if not any(p in closure[q] for q in m.prerequisites if q != p))
        for m in manifest.modules
    }


def depths(manifest: Manifest) -> dict[str, int]:
    """The length of the longest chain of prerequisites below each module."""
    depth: dict[str, int] = {}
    for module in manifest.modules:
        depth[module.number] = 1 + max((depth[p] for p in module.prerequisites), default=-1)
    return depth


def short_title(module: CourseModule) -> str:
    """'Capstone: Torch Olympics' -> 'Capstone': the node's label stays one short line."""
    return module.title.split(":")[0]


def layout(manifest: Manifest) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Node positions (one row per depth) and the drawing's width and height.

    Within a row, modules sit in the order of the mean position of their direct prerequisites
    (then by number), which keeps most arrows short and uncrossed; each row is centred.
    """
    depth, direct = depths(manifest), direct_prerequisites(manifest)
    rows: dict[int, list[CourseModule]] = {}
    for module in manifest.modules:
        rows.setdefault(depth[module.number], []).append(module)
    widest = max(len(row) for row in rows.values())
    width = MARGIN * 2 + (widest - 1) * COLUMN + NODE_WIDTH
    positions: dict[str, tuple[float, float]] = {}
    for level in sorted(rows):
        def parents_at(module: CourseModule) -> tuple[float, str]:
            xs = [positions[p][0] for p in direct[module.number]]
            return (sum(xs) / len(xs) if xs else 0.0, module.number)

        row = sorted(rows[level], key=parents_at)
        left = (width - ((len(row) - 1) * COLUMN + NODE_WIDTH)) / 2
        for slot, module in enumerate(row):
            positions[module.number] = (left + slot * COLUMN, MARGIN + LEGEND + level * ROW)
    height = MARGIN * 2 + LEGEND + max(rows) * ROW + NODE_HEIGHT
    return positions, width, height


def dependency_svg(manifest: Manifest, href: Callable[[CourseModule], str | None]) -> str:
    """The graph as one line of SVG; `href(module)` is the link of its page, or None (no page yet)."""
    positions, width, height = layout(manifest)
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="tt-graph" width="{width:.0f}" height="{height:.0f}" '
         f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="tt-graph-title">'),
        ('<title id="tt-graph-title">TinyTorch module dependency graph: an arrow from a module to each '
         'module that builds on it directly</title>'),
        ('<defs><marker id="tt-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
         'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a8f98"/></marker></defs>'),
    ]
    tiers = [t for t in TIERS if any(m.tier == t for m in manifest.modules)]
    for index, tier in enumerate(tiers):  # the legend: one swatch per tier
        x = MARGIN + index * (width - 2 * MARGIN) / len(tiers)
        parts.append(f'<rect x="{x:.0f}" y="{MARGIN}" width="14" height="14" rx="3" fill="#ffffff" '
                     f'stroke="{TIER_COLOURS[tier]}" stroke-width="2"/>'
                     f'<text class="tt-tier" x="{x + 20:.0f}" y="{MARGIN + 12}" font-size="12" font-weight="bold" '
                     f'fill="{TIER_COLOURS[tier]}">{escape(tier.capitalize())}</text>')
    for target, sources in direct_prerequisites(manifest).items():
        x2, y2 = positions[target]
        for source in sources:
            x1, y1 = positions[source]
            start_x, start_y = x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT
            end_x, end_y = x2 + NODE_WIDTH / 2, y2
            bend = (end_y - start_y) / 2
            # An arrow that skips rows bows out towards the nearer side, around the modules between.
            side = start_x if end_y - start_y < 1.5 * ROW else (MARGIN if start_x + end_x < width else width - MARGIN)
            first_x, second_x = (start_x, end_x) if side == start_x else (side, side)
            parts.append(f'<path class="tt-edge" data-from="{source}" data-to="{target}" '
                         f'd="M{start_x:.0f},{start_y:.0f} C{first_x:.0f},{start_y + bend:.0f} '
                         f'{second_x:.0f},{end_y - bend:.0f} {end_x:.0f},{end_y:.0f}" fill="none" '
                         'stroke="#8a8f98" stroke-width="1.2" marker-end="url(#tt-arrow)"/>')
    for module in manifest.modules:
        x, y = positions[module.number]
        link = href(module)
        colour = TIER_COLOURS[module.tier]
        dash = "" if link else ' stroke-dasharray="4 3"'
        fill = "#ffffff" if link else "#f3f3f3"
        node = (f'<g class="tt-node" data-module="{module.number}"><title>{escape(module.number)} '
                f'{escape(module.title)}: {escape(module.question)}</title>'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="5" fill="{fill}" '
                f'stroke="{colour}" stroke-width="1.5"{dash}/>'
                f'<text x="{x + NODE_WIDTH / 2:.0f}" y="{y + NODE_HEIGHT / 2 + 4:.0f}" text-anchor="middle" '
                f'font-size="12" fill="{colour if link else "#6c757d"}">'
                f'{escape(module.number)} {escape(short_title(module))}</text></g>')
        parts.append(f'<a href="{escape(link)}">{node}</a>' if link else node)
    parts.append("</svg>")
    return "".join(parts)
