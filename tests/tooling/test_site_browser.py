"""The course website as a reader meets it: every page opened in headless Chromium.

Marked `browser` (and `site`, since they read the build of test_site.py): they need Debian's
`chromium` (apt-get install chromium) and skip cleanly without it; the build needs Jupyter
Book and a local MathJax. Screenshots of the landing page, module 01 and the milestones page
are written to $TINYTORCH_SITE_ARTEFACTS (CI keeps them for a person to look at), else to a
temporary folder.
"""

import os
from pathlib import Path

import pytest

from tests.tooling.test_site import ROOT, built_site
from tito.site.browser import (
    PageExpectation,
    check_site,
    find_chromium,
    module_expectations,
)
from tito.site.build import SITE_MARK

pytestmark = pytest.mark.browser
ARTEFACTS_ENV = "TINYTORCH_SITE_ARTEFACTS"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium():
    found = find_chromium()
    if found is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    chosen = os.environ.get(ARTEFACTS_ENV)
    return Path(chosen) if chosen else tmp_path_factory.mktemp("site-screenshots")


@pytest.mark.site
def test_every_page_reads_right_in_chromium(chromium, tmp_path_factory, artefacts):
    site = built_site(tmp_path_factory)
    expected = module_expectations(ROOT, [m.number for m in site.modules])
    assert set(expected) == {f"modules/{m.name}.html" for m in site.modules}
    assert all(e.title and e.first_section and e.code_cells for e in expected.values()), expected
    report = check_site(site.out, expected, screenshots=artefacts, chromium=chromium)
    assert not report.problems, "\n".join(report.problems[:30])
    assert report.pages == list(site.pages) and set(expected) <= set(report.seen)
    tensor = report.seen["modules/01_tensor.html"]
    assert tensor["mathTypeset"] == tensor["mathCount"] > 0, "module 01's maths is typeset by MathJax"
    assert tensor["codeRendered"] == expected["modules/01_tensor.html"].code_cells
    assert report.links_checked > 20 * len(site.pages) and report.requests > len(site.pages)
    names = sorted(shot.name for shot in report.screenshots)
    assert names == ["landing.png", "milestones.png", "module.png"]
    for shot in report.screenshots:
        data = shot.read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, f"{shot} is an image of a page"


def test_the_check_catches_what_a_reader_would_meet(chromium, tmp_path):
    """A hand-made two-page site with one fault of each kind; each one is reported."""
    site = tmp_path / "site"
    (site / "modules").mkdir(parents=True)
    (site / SITE_MARK).write_text('{"pages": [], "modules": []}')
    (site / "modules" / "01_tensor.html").write_text(
        "<html><head><title>Module 01</title><script src='http://cdn.example.org/lib.js'></script></head>"
        "<body><main><h1>Module 01: Tensr</h1><h2>Summary</h2>"
        "<p>Shapes broadcast when <span class='math'>\\(a = b\\)</span>, or $x^2$ raw.</p>"
        "<div class='cell'><div class='cell_input'><pre>x = 1</pre></div></div>"
        "<a href='../index.html#nowhere'>home</a> <a href='../missing.html'>gone</a>"
        "<img src='../_static/logo.png'></main></body></html>")
    (site / "index.html").write_text("<html><head><title>Home</title></head><body><main>"
                                     "<p>no heading</p><a href='modules/01_tensor.html'>01</a></main></body></html>")
    expected = {"modules/01_tensor.html": PageExpectation("Module 01: Tensor", "Learning objectives", 2, True)}
    report = check_site(site, expected, chromium=chromium, pages=["index.html", "modules/01_tensor.html"], timeout=20)
    problems = "\n".join(report.problems)
    for fault in ("a request leaves the machine: http://cdn.example.org/lib.js",
                  "_static/logo.png answered HTTP 404",
                  "1 of 1 formulas were not typeset",
                  "raw maths shown as text",
                  "the title 'Module 01: Tensor' is not the page's heading",
                  "the first section 'Learning objectives' is missing",
                  "2 code cells in the source, 1 in the page, 0 rendered as highlighted code",
                  "broken link to missing.html",
                  "link to index.html#nowhere, which has no such anchor",
                  "index.html: no heading"):
        assert fault in problems, f"not reported: {fault}\n{problems}"
