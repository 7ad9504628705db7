"""The course website: built from the course's own sources, offline, and strict about references.

Two kinds of test. The page tests check what the site's pages are made of (the manifest, the
learner edition, the README, tito's parser, the capability tests) and need nothing beyond the
test extra. The build tests (marked `site`) run `tito site build` itself: they need Jupyter
Book 1 (`pip install -e ".[site]"`) and a local MathJax 2 (`apt-get install libjs-mathjax`) and
skip cleanly where either is missing. test_site_browser.py reads the same build in Chromium.
"""

import html
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.tooling.test_cli import _command_words, _resolve
from tito.cli import build_parser
from tito.project import project_manifest
from tito.release import answer_lines, learner_source
from tito.site import build as site_build
from tito.site.build import SITE_MARK, build_site, check_out, find_mathjax, read_mark
from tito.site.graph import dependency_svg, direct_prerequisites, prerequisite_closure
from tito.site.pages import (
    SiteError,
    command_tree,
    commands_page,
    fill,
    load_course,
    milestones_page,
    module_page,
    path_modules,
    read_results,
    readme_quick_start,
    tier_tables,
)
from tito.source import find_regions, split_cells

ROOT = Path(__file__).resolve().parents[2]
_BUILT: dict = {}


def skip_without_site_tools() -> None:
    pytest.importorskip("jupyter_book", reason='Jupyter Book is not installed: pip install -e ".[site]"')
    try:
        find_mathjax()
    except SiteError as error:
        pytest.skip(str(error))


def built_site(tmp_path_factory):
    """The project's website, built once per test session (this file and the browser tests share it)."""
    skip_without_site_tools()
    if not _BUILT:
        out = tmp_path_factory.mktemp("website") / "site"
        try:
            _BUILT["site"] = build_site(ROOT, out)
        except SiteError as error:  # reported once, and not rebuilt by the next test
            _BUILT["error"] = error
    if "error" in _BUILT:
        raise _BUILT["error"]
    return _BUILT["site"]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    return built_site(tmp_path_factory)


@pytest.fixture(scope="module")
def course():
    return load_course(ROOT, project_manifest(ROOT))


def _answer_only_lines(modules) -> set[str]:
    """Lines that stand only inside answer regions (not also in given code or tests), as in test_release."""
    shared, answers = set(), set()
    for module in modules:
        text = (ROOT / module.source).read_text(encoding="utf-8")
        inside = {n for r in find_regions(text, module.source) if r.kind == "solution" for n in range(r.begin, r.end + 1)}
        shared |= {" ".join(line.split()) for n, line in enumerate(text.splitlines(), 1) if n not in inside}
        answers |= answer_lines(text, module.source)
    return answers - shared


def _page_lines(text: str) -> set[str]:
    """The text of an HTML page (or a source file), one normalised line each."""
    plain = html.unescape(re.sub(r"<[^>]+>", "", text))
    return {" ".join(line.split()) for line in plain.splitlines() if line.strip()}


# ---- the pages, from the course's sources -------------------------------------------------------------
def test_the_graph_draws_each_direct_prerequisite_and_loses_none(course):
    manifest = course.manifest
    direct = direct_prerequisites(manifest)
    assert direct["07"] == ("06",), "07's other prerequisites come through 06"
    assert set(direct["13"]) == {"06", "11", "12"}
    closure = prerequisite_closure(manifest)
    for module in manifest.modules:  # the drawn arrows still reach every listed prerequisite
        reached, frontier = set(), list(direct[module.number])
        while frontier:
            number = frontier.pop()
            if number not in reached:
                reached.add(number)
                frontier += direct[number]
        assert reached == closure[module.number] >= set(module.prerequisites), module.number
    svg = dependency_svg(manifest, lambda m: f"{m.name}.html" if m.number != "01" else None)
    edges = set(re.findall(r'data-from="(\d+)" data-to="(\d+)"', svg))
    assert edges == {(p, m) for m, ps in direct.items() for p in ps}
    assert re.findall(r'data-module="(\d+)"', svg) == [m.number for m in manifest.modules]
    assert 'href="01_tensor.html"' not in svg and 'href="02_activations.html"' in svg, "no page, no link"


def test_a_module_page_is_its_learner_edition_with_its_facts(course):
    module = course.manifest.module("01")
    source = (ROOT / module.source).read_text(encoding="utf-8")
    page = module_page(course, module)
    answers = _answer_only_lines([module])
    assert answers and not answers & {" ".join(line.split()) for line in page.splitlines()}
    assert "raise NotImplementedError(" in page
    assert not {"### BEGIN SOLUTION", "### END SOLUTION"} & {line.strip() for line in page.splitlines()}
    learner = split_cells(learner_source(module, source))
    cells = split_cells(page)
    assert [c.text for c in cells if c.kind == "code"] == [c.text for c in learner if c.kind == "code"]
    facts = next(c.text for c in cells if "at a glance" in c.text)
    assert "{ref}`Foundation <checkpoint-01>`" in facts and "tito module start 01" in facts
    assert cells[0].text.strip() == "# # Module 01: Tensor", "the title stays the page's first line"


def test_a_module_without_a_title_is_refused_by_name(course, tmp_path):
    module = course.manifest.module("01")
    (tmp_path / module.source).parent.mkdir(parents=True)
    (tmp_path / module.source).write_text("# %% [markdown]\n# Some text\n\n# %%\nx = 1\n", encoding="utf-8")
    with pytest.raises(SiteError, match=r"modules/01_tensor/tensor.py: the first markdown cell must start"):
        module_page(replace(course, root=tmp_path), module)


def test_modules_without_a_page_are_listed_without_a_link(course):
    manifest = replace(course.manifest, modules=tuple(replace(m, status="planned") if m.number == "02" else m
                                                      for m in course.manifest.modules))
    paged = tuple(m for m in manifest.available_modules if m.number != "01")  # 01: as if its file were missing
    tables = tier_tables(replace(course, manifest=manifest, paged=paged))
    assert "| 01 Tensor (no source yet) |" in tables and "</modules/01_tensor>" not in tables
    assert "| 02 Activations (planned) |" in tables and "{doc}`03 Layers </modules/03_layers>`" in tables


def test_the_command_reference_is_the_parser_itself(course):
    parser = build_parser()
    page = commands_page(course, parser)
    commands = command_tree(build_parser())
    assert {("site", "build"), ("site", "check"), ("module", "complete"), ("release",)} <= {c.words for c in commands}
    for command in commands:
        assert f"`{command.name}`" in page, command.name
        assert f"usage: {command.name}" in page, f"{command.name}: its --help is shown"
        assert f"(command-{'-'.join(command.words) or 'tito'})=" in page


def test_the_landing_page_shows_the_readmes_quick_start():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme_quick_start(ROOT)
    assert block.startswith("```bash\n") and block[len("```bash\n"):-3] in readme
    assert "pip install" in block


def test_learning_paths_take_every_prerequisite_first(course):
    paths = course.settings["path"]
    assert {p["name"] for p in paths} >= {"Vision", "Language"}
    for path in paths:
        modules = path_modules(course, path)
        numbers = [m.number for m in modules]
        for milestone in path["milestones"]:
            assert set(course.manifest.milestone(milestone).requires) <= set(numbers)
        for index, module in enumerate(modules):
            assert set(module.prerequisites) <= set(numbers[:index]), f"{path['name']}: {module.number}"


def test_the_milestones_page_shows_every_bar_and_each_figure_with_its_source(course):
    page = milestones_page(course)
    for milestone in course.manifest.milestones:
        assert milestone.bar in page and f"(milestone-{milestone.name})=" in page
    assert course.results, "site/milestone_results.toml holds the measured figures"
    for result in course.results:
        assert result.measured in page and result.source in page and f"`{result.command}`" in page


def test_a_result_for_an_unknown_milestone_or_without_a_source_is_refused(course, tmp_path):
    results = tmp_path / "milestone_results.toml"
    results.write_text('[[result]]\nmilestone = "lenet"\nsetting = "s"\nmeasured = "m"\ncommand = "c"\n'
                       'source = "s"\n', encoding="utf-8")
    with pytest.raises(SiteError, match=r"milestone 'lenet', which the manifest does not list"):
        read_results(results, course.manifest)
    results.write_text('[[result]]\nmilestone = "xor"\nsetting = "s"\nmeasured = "m"\ncommand = "c"\n', encoding="utf-8")
    with pytest.raises(SiteError, match="result 1 has no source"):
        read_results(results, course.manifest)


def test_every_tito_command_the_site_texts_suggest_exists():
    found = set()
    for path in sorted((ROOT / "site").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        snippets = re.findall(r"`(tito [^`]+)`", text) + re.findall(r"^\s*(?:\S+/)?(tito [a-z][^\n#]*)", text, re.MULTILINE)
        found |= {(tuple(words), path.name) for snippet in snippets for words in _command_words(snippet) if words}
    assert (("release",), "instructor.md") in found and (("site", "check"), "instructor.md") in found
    for words, where in sorted(found):
        path, unknown = _resolve(words)
        assert path and unknown is None, f"`tito {' '.join(words)}` (in site/{where}) does not exist"


def test_a_slot_without_a_value_or_a_value_without_a_slot_is_an_error():
    assert fill("a {{ x }} b", {"x": "1"}, "t") == "a 1 b"
    with pytest.raises(SiteError, match="unknown slot"):
        fill("{{ y }}", {}, "page.md")
    with pytest.raises(SiteError, match=r"must show \{\{ x \}\}"):
        fill("nothing", {"x": "1"}, "page.md")


# ---- the output folder and the tools -------------------------------------------------------------------
def test_out_must_be_new_empty_or_an_earlier_site_build(tmp_path):
    check_out(tmp_path / "new", ROOT)
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", ROOT)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SiteError, match="not empty and is not a previous site build"):
        check_out(tmp_path / "busy", ROOT)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SiteError, match="is a file"):
        check_out(tmp_path / "file", ROOT)
    (tmp_path / "busy" / SITE_MARK).write_text("{}")
    check_out(tmp_path / "busy", ROOT)
    with pytest.raises(SiteError, match="holds the project"):
        check_out(ROOT.parent, ROOT.parent / "x")


def _fake_mathjax(folder: Path) -> Path:
    for part in site_build.MATHJAX_PARTS:
        target = folder / part
        if part.endswith(".js"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("// MathJax")
        else:
            target.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_build_replaces_only_an_earlier_build_and_a_failed_one_changes_nothing(tmp_path, monkeypatch):
    """The folder handling of `build_site`, with Sphinx replaced by a stand-in that writes two pages."""
    def fake_sphinx(book, work, modules):
        if (book / "_config.yml").is_file():  # the first build writes the real book
            config = json.loads((book / "_config.yml").read_text())
            assert config["only_build_toc_files"] and config["execute"]["execute_notebooks"] == "off"
            assert config["sphinx"]["config"]["intersphinx_mapping"] == {} and (book / "_toc.yml").is_file()
        html_dir = work / "_build" / "html"
        (html_dir / "modules").mkdir(parents=True)
        (html_dir / "index.html").write_text("<h1>TinyTorch</h1>")
        (html_dir / "modules" / "01_tensor.html").write_text("<h1>Module 01</h1>")
        return html_dir

    monkeypatch.setattr(site_build, "require_jupyter_book", lambda: None)
    monkeypatch.setattr(site_build, "run_sphinx", fake_sphinx)
    mathjax = _fake_mathjax(tmp_path / "mathjax")
    out = tmp_path / "out" / "site"
    built = build_site(ROOT, out, mathjax=mathjax)
    assert read_mark(out)["pages"] == ["index.html", "modules/01_tensor.html"] == list(built.pages)
    assert (out / "_static" / "mathjax" / "MathJax.js").is_file()
    (out / "stale.html").write_text("from the earlier build")
    paged = built.modules
    monkeypatch.setattr(site_build, "write_book", lambda root, book: (paged, ()))  # the pages were checked above
    build_site(ROOT, out, mathjax=mathjax)
    assert not (out / "stale.html").exists(), "a new build replaces the earlier one"

    def failing_sphinx(book, work, modules):
        raise SiteError("the website did not build")

    monkeypatch.setattr(site_build, "run_sphinx", failing_sphinx)
    (out / "keep.html").write_text("the last good build")
    with pytest.raises(SiteError, match="did not build"):
        build_site(ROOT, out, mathjax=mathjax)
    assert (out / "keep.html").is_file(), "a failed build leaves the earlier site as it was"
    assert sorted(p.name for p in out.parent.iterdir()) == ["site"], "no staging folder is left behind"


def test_missing_tools_are_explained(tmp_path, monkeypatch):
    with pytest.raises(SiteError, match="apt-get install libjs-mathjax"):
        find_mathjax(tmp_path)
    monkeypatch.setattr(site_build, "find_spec", lambda name: None)
    with pytest.raises(SiteError, match=r'pip install -e "\.\[site\]"'):
        site_build.require_jupyter_book()


def test_tito_has_the_site_commands():
    parser = build_parser()
    args = parser.parse_args(["site", "build", "somewhere", "--mathjax", "/opt/mathjax"])
    assert args.out == "somewhere" and args.mathjax == "/opt/mathjax" and args.handler.__name__ == "cmd_site_build"
    args = parser.parse_args(["site", "check", "--screenshots", "shots"])
    assert args.out is None and args.screenshots == "shots" and args.handler.__name__ == "cmd_site_check"


# ---- the build itself (Jupyter Book) -----------------------------------------------------------------------
@pytest.mark.site
def test_the_site_has_every_page(site, course):
    pages = set(site.pages)
    assert {"index.html", "big-picture.html", "milestones.html", "checkpoints.html", "commands.html",
            "instructor.html"} <= pages
    assert {f"modules/{m.name}.html" for m in course.paged} <= pages
    assert site.modules == course.paged
    landing = (site.out / "index.html").read_text(encoding="utf-8")
    graph = (site.out / "big-picture.html").read_text(encoding="utf-8")
    for module in site.unpaged:  # listed, not linked
        assert f"{module.number} {module.title}" in landing and f"modules/{module.name}.html" not in graph
    assert read_mark(site.out)["modules"] == [m.number for m in course.paged]


@pytest.mark.site
def test_no_answer_reaches_the_site(site, course):
    answers = _answer_only_lines(course.paged)
    assert answers
    for path in sorted(site.out.rglob("*")):
        if path.suffix in {".html", ".py", ".txt", ".js"} and "_static" not in path.parts:
            leaked = answers & _page_lines(path.read_text(encoding="utf-8", errors="replace"))
            assert not leaked, f"{path.relative_to(site.out)} shows answer lines: {sorted(leaked)[:3]}"


@pytest.mark.site
def test_nothing_is_loaded_from_elsewhere(site):
    loads = re.compile(r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\bsrc=\"([^\"]+)\"|"
                       r"<link\b[^>]*\bhref=\"([^\"]+)\"", re.IGNORECASE)
    for path in sorted(site.out.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in loads.finditer(text):
            url = match.group(1) or match.group(2)
            assert not re.match(r"(https?:)?//", url), f"{path.relative_to(site.out)} loads {url}"
        assert "unpkg.com" not in text and "cdn." not in text, path
    for path in sorted((site.out / "_static").rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", path.read_text(encoding="utf-8", errors="replace")):
            assert not re.match(r"(https?:)?//", url), f"{path.relative_to(site.out)} loads {url}"
    module_page_html = (site.out / "modules" / "01_tensor.html").read_text(encoding="utf-8")
    mathjax = re.search(r'src="\.\./(_static/mathjax/MathJax\.js)\?config=TeX-AMS_CHTML"', module_page_html)
    assert mathjax and (site.out / mathjax.group(1)).is_file(), "MathJax is the local copy"


@pytest.mark.site
def test_a_broken_reference_fails_the_build_and_names_the_page(tmp_path):
    """A small copy of the course (module 01 only) whose instructor guide points at a missing page."""
    skip_without_site_tools()
    project = tmp_path / "course"
    for entry in ("tinytorch_base", "modules/01_tensor", "site", "tests/checkpoints"):
        (project / entry).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ROOT / entry, project / entry)
    (project / "README.md").write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    manifest = project / "tinytorch_base" / "manifest.toml"
    blocks = manifest.read_text(encoding="utf-8").split("[[module]]")
    blocks = [blocks[0]] + [b if 'number = "01"' in b else re.sub(r'status = "available"', 'status = "planned"', b, 1)
                            for b in blocks[1:]]
    manifest.write_text("[[module]]".join(blocks), encoding="utf-8")
    guide = project / "site" / "instructor.md"
    guide.write_text(guide.read_text(encoding="utf-8") + "\nSee {doc}`a page that is not there <grading-rubric>`.\n",
                     encoding="utf-8")
    out = tmp_path / "site"
    with pytest.raises(SiteError, match=r"(?s)did not build.*instructor.*grading-rubric"):
        build_site(project, out)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["course"], "nothing left behind"
