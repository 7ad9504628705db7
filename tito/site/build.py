"""`tito site build [OUT]`: the course website, built offline with Jupyter Book 1 (Sphinx).

The book's sources are written into a staging folder beside OUT: the pages of `tito.site.pages`
(each module page is the module's learner edition in jupytext's percent format, which Jupyter
Book reads through `nb_custom_formats`; code is shown, never executed), a local copy of
MathJax, and the site's stylesheet. Sphinx runs with warnings as errors (-W --keep-going) and
only the pages of the table of contents, so a broken cross-reference fails the build. Nothing
is fetched: no intersphinx, no CDN, and the build runs with an unreachable proxy so that any
attempt to reach the network fails instead of succeeding quietly. The finished HTML replaces
OUT in one rename; a failed build leaves OUT as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from tinytorch_base.files import write_atomic
from tinytorch_base.manifest import CourseModule
from tito.project import project_manifest
from tito.site.pages import (
    SITE_SOURCES,
    SiteError,
    book_pages,
    load_course,
    module_docname,
)

DEFAULT_OUT = Path("build") / "site"
SITE_MARK = ".tinytorch-site"  # in every built site: a later build may replace a folder that holds it
MATHJAX_ENV = "TINYTORCH_MATHJAX"
DEBIAN_MATHJAX = Path("/usr/share/javascript/mathjax")  # apt-get install libjs-mathjax
MATHJAX_CONFIG = "TeX-AMS_CHTML"  # TeX input, CommonHTML output: web fonts shipped with MathJax
MATHJAX_PARTS = ("MathJax.js", f"config/{MATHJAX_CONFIG}.js", "extensions", "jax/input/TeX", "jax/element",
                 "jax/output/CommonHTML", "fonts/HTML-CSS/TeX/woff")
NO_NETWORK = "http://127.0.0.1:9"  # the discard port: a proxy that answers nothing


@dataclass(frozen=True)
class SiteBuild:
    out: Path
    pages: tuple[str, ...]  # the built pages, relative to OUT (e.g. 'modules/01_tensor.html')
    modules: tuple[CourseModule, ...]  # the modules that got a page
    unpaged: tuple[CourseModule, ...]  # the modules listed without one
    seconds: float


def require_jupyter_book() -> None:
    if find_spec("jupyter_book") is None:
        raise SiteError("the website needs Jupyter Book 1, which is not installed here: "
                        'pip install -e ".[site]" (in its own virtual environment if you like)')


def find_mathjax(path: Path | str | None = None) -> Path:
    """A local MathJax 2: `path`, else $TINYTORCH_MATHJAX, else Debian's libjs-mathjax."""
    chosen = Path(path or os.environ.get(MATHJAX_ENV) or DEBIAN_MATHJAX)
    missing = [part for part in MATHJAX_PARTS if not (chosen / part).exists()]
    if missing:
        raise SiteError(f"no MathJax 2 at {chosen} (missing {', '.join(missing)}); the site renders its maths "
                        "offline from a local copy: apt-get install libjs-mathjax, or point --mathjax (or "
                        f"${MATHJAX_ENV}) at a MathJax 2.7 folder")
    return chosen


def check_out(out: Path, root: Path) -> None:
    """Refuse an OUT that holds anything but a previous site build."""
    if out == root or out in root.parents:
        raise SiteError(f"{out} holds the project; choose a folder for the website")
    if out.exists() and not out.is_dir():
        raise SiteError(f"{out} is a file; choose a folder for the website")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARK).is_file():
        raise SiteError(f"{out} is not empty and is not a previous site build (it has no {SITE_MARK}); "
                        "choose a new folder or an earlier build's")


def book_config(name: str) -> dict:
    """Jupyter Book's _config.yml (JSON is YAML): offline, not executed, strict."""
    return {
        "title": name,
        "author": f"the {name} contributors",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "parse": {"myst_enable_extensions": ["colon_fence", "dollarmath"]},
        "html": {"favicon": "_static/favicon.svg", "use_repository_button": False, "use_issues_button": False, "use_edit_page_button": False,
                 "use_multitoc_numbering": False, "home_page_in_navbar": True,
                 "analytics": {"google_analytics_id": "", "plausible_analytics_domain": ""},
                 "comments": {"hypothesis": False, "utterances": False}},
        "launch_buttons": {"binderhub_url": "", "jupyterhub_url": "", "thebe": False, "colab_url": "",
                           "deepnote_url": ""},
        "repository": {"url": ""},
        "sphinx": {"extra_extensions": ["tito.site.sphinx_ext"], "config": {
            "nb_custom_formats": {".py": ["jupytext.reads", {"fmt": "py:percent"}]},
            "nb_execution_mode": "off",
            "nb_ipywidgets_js": {},  # no widget scripts from a CDN
            "intersphinx_mapping": {},
            "mathjax_path": f"mathjax/MathJax.js?config={MATHJAX_CONFIG}",
            "myst_dmath_double_inline": True,  # `$$...$$` inside a paragraph, as JupyterLab shows it
            "myst_update_mathjax": False,  # it would write a MathJax 3 configuration
            "mathjax2_config": {
                "messageStyle": "none",
                "fast-preview": {"disabled": True},  # one typesetting pass per formula, not a preview and then it
                "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                            "processEscapes": False, "processEnvironments": False, "processRefs": False,
                            "processClass": "math", "ignoreClass": "tex2jax_ignore|mathjax_ignore|highlight"},
            },
            "html_show_sphinx": False,
            "smartquotes": False,  # `--long` stays two hyphens, as it is typed
        }},
    }


def write_book(root: Path, book: Path) -> tuple[tuple[CourseModule, ...], tuple[CourseModule, ...]]:
    """Write the book's sources into `book`; returns (modules with a page, modules without)."""
    from tito.cli import build_parser  # the CLI imports this package, so not at the top

    manifest = project_manifest(root)
    course = load_course(root, manifest)
    pages = book_pages(course, build_parser())
    pages["_config.yml"] = json.dumps(book_config(manifest.name), indent=2) + "\n"
    for relative, text in pages.items():
        target = book / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text)
    # Jupyter Book links every stylesheet and script under _static into every page.
    (book / "_static").mkdir(parents=True, exist_ok=True)
    for name in ("tinytorch.css", "favicon.svg"):
        shutil.copy2(root / SITE_SOURCES / name, book / "_static" / name)
    unpaged = tuple(m for m in manifest.modules if m not in course.paged)
    return course.paged, unpaged


def copy_mathjax(mathjax: Path, static: Path) -> None:
    """MathJax into the built site's _static (after the build: in the book's _static, Jupyter Book
    would link each of its scripts into every page, where MathJax loads the few it needs itself)."""
    for part in MATHJAX_PARTS:  # copies of Debian's symlinked fonts, not the links
        source, target = mathjax / part, static / "mathjax" / part
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = NO_NETWORK
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


def run_sphinx(book: Path, work: Path, modules: tuple[CourseModule, ...]) -> Path:
    """Build the HTML with Jupyter Book; on any warning, raise SiteError listing them."""
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book),
               "--path-output", str(work), "--builder", "html", "--warningiserror", "--keep-going", "--all"]
    completed = subprocess.run(command, env=offline_env(), capture_output=True, text=True, check=False)
    html = work / "_build" / "html"
    if completed.returncode != 0 or not (html / "index.html").is_file():
        output = completed.stdout + completed.stderr
        problems = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
        problems = [_source_names(line, book, modules) for line in problems] or output.strip().splitlines()[-15:]
        raise SiteError("the website did not build (every warning is an error):\n  " + "\n  ".join(problems[:40]))
    return html


def _source_names(line: str, book: Path, modules: tuple[CourseModule, ...]) -> str:
    """A Sphinx message with the staging paths replaced by the project's own file names."""
    line = line.replace(f"{book}/", "")
    for module in modules:
        line = line.replace(f"{module_docname(module)}.py", f"{module.source.as_posix()} (learner edition)")
    return line


def build_site(root: Path, out: Path | None = None, mathjax: Path | str | None = None) -> SiteBuild:
    """Build the website of the project at `root` into `out` (default build/site)."""
    started = time.perf_counter()
    root = root.resolve()
    out = (Path(out) if out is not None else root / DEFAULT_OUT).resolve()
    check_out(out, root)
    require_jupyter_book()
    mathjax_dir = find_mathjax(mathjax)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        book = work / "book"
        modules, unpaged = write_book(root, book)
        html = run_sphinx(book, work, modules)
        copy_mathjax(mathjax_dir, html / "_static")
        for leftover in (".buildinfo", ".doctrees"):
            target = html / leftover
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        pages = tuple(sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                             if not p.relative_to(html).parts[0].startswith("_")))
        mark = {"site": "TinyTorch course website", "built_by": "tito site build", "pages": list(pages),
                "modules": [m.number for m in modules]}
        write_atomic(html / SITE_MARK, json.dumps(mark, indent=2) + "\n")
        if out.exists():
            os.replace(out, work / "previous")  # the previous build goes with the staging folder
        os.replace(html, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SiteBuild(out, pages, modules, unpaged, time.perf_counter() - started)


def read_mark(out: Path) -> dict:
    """What a site build recorded about itself: its pages and its modules (refuses a folder that is not one)."""
    mark = Path(out) / SITE_MARK
    if not mark.is_file():
        raise SiteError(f"{out} is not a site build (no {SITE_MARK}); build it first: tito site build {out}")
    try:
        recorded = json.loads(mark.read_text(encoding="utf-8"))
        return {"pages": list(recorded["pages"]), "modules": list(recorded["modules"])}
    except (ValueError, KeyError, TypeError):
        raise SiteError(f"{mark} is damaged; build the site again: tito site build {out}") from None
