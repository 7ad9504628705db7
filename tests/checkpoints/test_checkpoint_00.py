"""Checkpoint 00 (Orientation): Can I see how every piece of an ML framework fits together?

The capability: from the installed package alone, get the course's overview and its figures,
and find in them the modules, the path to each milestone and the parts already built.
`tito checkpoint test 00` runs it.
"""

import importlib

import pytest

from tinytorch.introduction import (
    direct_prerequisites,
    get_tinytorch_overview,
    load_course,
    visualize_tinytorch_system,
)


def test_i_can_get_the_overview_of_the_whole_course():
    course = load_course()
    overview = get_tinytorch_overview()
    assert overview["total_modules"] == len(course.modules) > 0
    assert overview["total_hours"] == sum(module.hours for module in course.modules)
    assert overview["total_components"] == sum(len(importlib.import_module(m.package).__all__)
                                               for m in course.available_modules)


def closure(numbers, edges):
    found, stack = set(), list(numbers)
    while stack:
        number = stack.pop()
        if number not in found:
            found.add(number)
            stack.extend(edges[number])
    return found


def test_i_can_trace_what_each_milestone_needs():
    course = load_course()
    overview = get_tinytorch_overview()
    listed = {module.number: module.prerequisites for module in course.modules}
    direct = direct_prerequisites(course)
    for milestone in overview["milestones"]:
        needed = closure(milestone["requires"], listed)
        assert closure(milestone["requires"], direct) == needed, "the direct edges reach the same modules"
        assert milestone["hours_to_reach"] == sum(course.module(n).hours for n in needed)
        assert milestone["hours_to_reach"] <= overview["total_hours"]


def test_i_can_draw_the_system(tmp_path):
    pytest.importorskip("matplotlib")
    paths = visualize_tinytorch_system(output_dir=tmp_path, show=False)
    assert len(paths) == 4
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths.values())
