"""`tito site build [OUT]` and `tito site check [OUT]`: the course website, built and read in a browser.

`build` (tito.site.build) writes the book from the course's own sources (tito.site.pages) and
runs Jupyter Book 1 offline; `check` (tito.site.browser) opens every page in headless Chromium
and reports what a reader would meet: missing titles, code that is not shown as code, maths
that is not typeset, broken links, requests that leave the machine.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tito.project import find_root
from tito.site.build import (
    DEFAULT_OUT,
    build_site,
    check_out,
    find_mathjax,
    read_mark,
    require_jupyter_book,
)
from tito.site.pages import SiteError

__all__ = ["SiteError", "build_site", "register"]


def _out(args, root: Path) -> Path:
    return Path(args.out) if args.out else root / DEFAULT_OUT


def cmd_site_build(args) -> int:
    console = Console(highlight=False, soft_wrap=True)
    root = find_root()
    out = _out(args, root)
    check_out(out.resolve(), root)  # say what is wrong before the minute of building, not after
    require_jupyter_book()
    find_mathjax(args.mathjax)
    console.print("building the website with Jupyter Book (about a minute)...")
    built = build_site(root, out, mathjax=args.mathjax)
    console.print(f"[green]website built[/green] in {built.seconds:.0f} s: {len(built.pages)} pages in "
                  f"{escape(str(built.out))}; open {escape(str(built.out / 'index.html'))}")
    if built.unpaged:
        listed = ", ".join(f"{m.number} ({'planned' if not m.available else 'no source yet'})" for m in built.unpaged)
        console.print(f"listed without a page: {listed}")
    return 0


def cmd_site_check(args) -> int:
    from tito.site.browser import check_site, module_expectations

    console = Console(highlight=False, soft_wrap=True)
    root = find_root()
    out = _out(args, root)
    screenshots = Path(args.screenshots) if args.screenshots else None
    expected = module_expectations(root, read_mark(out)["modules"])
    report = check_site(out, expected, screenshots=screenshots, chromium=args.chromium)
    for problem in report.problems:
        console.print(f"  [red]x[/red] {escape(problem)}")
    for shot in report.screenshots:
        console.print(f"screenshot: {escape(str(shot))}")
    if report.problems:
        console.print(f"[red]{len(report.problems)} problem(s)[/red] on {len(report.pages)} pages")
        return 1
    console.print(f"[green]all {len(report.pages)} pages passed[/green] in headless Chromium "
                  f"({report.links_checked} internal links, {report.requests} requests, none left the machine)")
    return 0


def register(commands) -> None:
    """Add `tito site` to tito's top-level subparsers object."""
    site = commands.add_parser("site", help="the course website: build it offline, check it in a browser")
    site_commands = site.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    build = site_commands.add_parser("build", help="build the website from the learner edition (needs .[site])")
    build.add_argument("out", nargs="?", metavar="OUT",
                       help=f"folder to write: new, empty, or an earlier site build (default {DEFAULT_OUT.as_posix()})")
    build.add_argument("--mathjax", metavar="DIR",
                       help="a local MathJax 2.7 folder (default: Debian's libjs-mathjax)")
    build.set_defaults(handler=cmd_site_build)
    check = site_commands.add_parser("check", help="open every page in headless Chromium and check what it shows")
    check.add_argument("out", nargs="?", metavar="OUT", help=f"the built site (default {DEFAULT_OUT.as_posix()})")
    check.add_argument("--screenshots", metavar="DIR",
                       help="write PNGs of the landing page, a module page and the milestones page here")
    check.add_argument("--chromium", metavar="PATH", help="the browser to use (default: chromium on the PATH)")
    check.set_defaults(handler=cmd_site_check)
