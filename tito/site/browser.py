"""`tito site check`: every page of a built site, opened in headless Chromium as a reader meets it.

The site is served from a local HTTP server on 127.0.0.1. Chromium is driven over the DevTools
protocol through a pipe (`--remote-debugging-pipe`: JSON messages on file descriptors 3 and 4),
so nothing but the standard library is needed. On each page the check reads the rendered DOM:
the page has a title; a module page shows its title and its first section, as many code cells
as its source has, rendered as highlighted code; the maths is typeset by MathJax (no raw
`\\(...\\)` left); every link into the site resolves to a page or file, and its #fragment to an
element of that page. Every request the pages make is recorded: one that is not for the local
server, a failed one and an HTTP error are all problems. Chromium is told to resolve no host
name at all, and to stay away from its own background services, so that nothing leaves the
machine even by accident.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

from tinytorch_base.files import write_atomic
from tito.site.build import read_mark
from tito.site.pages import SiteError

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--no-default-browser-check", "--mute-audio",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves: nothing can leave
    "--remote-debugging-pipe",
)
VIEWPORT = (1280, 900)
SCREENSHOTS = {"landing": "index.html", "module": "modules/01_tensor.html", "milestones": "milestones.html"}
SCREENSHOT_HEIGHT = 2400  # the top of a long page is what a person glances at
LOCAL_SCHEMES = ("data:", "blob:", "about:")
PIPE_LAUNCHER = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); os.dup2(a, 3); os.dup2(b, 4); "
                 "os.close(a); os.close(b); os.execv(sys.argv[3], sys.argv[3:])")


def find_chromium(path: str | None = None) -> str | None:
    if path:
        return path if Path(path).is_file() else shutil.which(path)
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


# ---- the DevTools protocol over a pipe -------------------------------------------------------------
class Browser:
    """Headless Chromium with one page, driven over --remote-debugging-pipe."""

    def __init__(self, executable: str, timeout: float = 30.0):
        self.executable, self.timeout = executable, timeout
        self.profile = tempfile.mkdtemp(prefix="tinytorch-chromium-")
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4: a small Python launcher
        # (a POSIX shell only redirects single-digit descriptors) puts our pipe ends there.
        child_in = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser_read, from_browser_write):
            os.close(fd)
        arguments = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                     f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", PIPE_LAUNCHER, str(child_in), str(child_out), executable, *arguments],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self._write = os.fdopen(to_browser_write, "wb", buffering=0)
        self._read = os.fdopen(from_browser_read, "rb", buffering=0)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_messages, daemon=True)
        self._reader.start()
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.send(f"{domain}.enable", session=self.session)
            self._window(*VIEWPORT)
        except BaseException:
            self.close()
            raise

    def _read_messages(self) -> None:
        buffer = b""
        while True:
            chunk = self._read.read(65536)
            if not chunk:
                self.events.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiting = self._replies.get(message["id"])
                    if waiting is not None:
                        waiting.put(message)
                else:
                    self.events.put(message)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        with self._lock:
            self._next_id += 1
            number = self._next_id
            self._replies[number] = reply = queue.Queue()
        message = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        try:
            self._write.write(json.dumps(message).encode() + b"\0")
        except OSError:  # the pipe is closed: the browser is gone
            raise SiteError(f"Chromium is not running; try `{self.executable} --headless --no-sandbox "
                            "--version`") from None
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    answer = reply.get(timeout=0.2)
                    break
                except queue.Empty:
                    if self.process.poll() is not None:
                        raise SiteError(f"Chromium exited (status {self.process.returncode}) before it answered "
                                        f"{method}; try `{self.executable} --headless --no-sandbox --version`") from None
                    if time.monotonic() > deadline:
                        raise SiteError(f"Chromium did not answer {method} within {self.timeout:.0f} s") from None
        finally:
            with self._lock:
                self._replies.pop(number, None)
        if "error" in answer:
            raise SiteError(f"Chromium refused {method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", session=self.session, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise SiteError(f"script failed in the page: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def navigate(self, url: str) -> list[dict]:
        """Load `url` and wait for its load event; returns the protocol events seen meanwhile."""
        self.send("Page.navigate", session=self.session, url=url)
        seen, deadline = [], time.monotonic() + self.timeout
        while True:
            try:
                event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise SiteError(f"{url} did not finish loading within {self.timeout:.0f} s") from None
            if event is None:
                raise SiteError("Chromium exited while loading " + url)
            seen.append(event)
            if event.get("method") == "Page.loadEventFired":
                return seen

    def drain(self) -> list[dict]:
        found = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return found
            if event is not None:
                found.append(event)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the page's top (up to SCREENSHOT_HEIGHT pixels), in a window that tall."""
        height = min(int(self.evaluate("document.documentElement.scrollHeight")), SCREENSHOT_HEIGHT)
        self._window(VIEWPORT[0], max(height, 1))
        try:
            self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
            shot = self.send("Page.captureScreenshot", session=self.session, format="png")
        finally:
            self._window(*VIEWPORT)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, base64.b64decode(shot["data"]))

    def _window(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", session=self.session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (SiteError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self._write, self._read):
            stream.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---- serving the site ------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def local_server(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (a free port) while the block runs; yields the origin URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---- what a page shows ------------------------------------------------------------------------------
# Waits for MathJax 2 to finish its first typesetting pass, then reads what the reader sees.
READ_PAGE = r"""
(async () => {
  if (window.MathJax && MathJax.Hub) {
    await new Promise(done => MathJax.Hub.Register.StartupHook("End", () => done()));
    await new Promise(done => MathJax.Hub.Queue(() => done()));
  }
  const text = el => { const c = el.cloneNode(true); c.querySelectorAll('.headerlink').forEach(x => x.remove());
                       return c.textContent.replace(/\s+/g, ' ').trim(); };
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const math = [...article.querySelectorAll('span.math, div.math')];
  // The text a reader sees outside code and typeset maths: raw TeX left there was not typeset.
  const prose = [...article.querySelectorAll('p, li, td, th, h1, h2, h3, h4')].map(el => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('pre, code, script, .highlight, span.math, div.math, .MathJax_CHTML, .MathJax_Preview, '
                          + '.MJX_Assistive_MathML, mjx-container').forEach(x => x.remove());
    return copy.textContent;
  });
  return {
    title: document.title,
    h1: [...article.querySelectorAll('h1')].map(text),
    h2: [...article.querySelectorAll('h2')].map(text),
    codeCells: article.querySelectorAll('div.cell').length,
    codeRendered: [...article.querySelectorAll('div.cell div.cell_input')]
        .filter(c => c.querySelector('div.highlight pre') && c.querySelector('pre span')).length,
    mathCount: math.length,
    mathTypeset: math.filter(m => m.querySelector('.MathJax_CHTML, mjx-container, .MJX_Assistive_MathML')).length,
    rawMath: prose.filter(t => /\\\(|\\\[|\$\$|(^|\s)\$[^$\s][^$]*\$/.test(t))
        .map(t => t.trim().slice(0, 80)),
    mathErrors: [...article.querySelectorAll('.MathJax_Error, merror, .mjx-merror')].map(e => e.textContent.slice(0, 80)),
    links: [...document.querySelectorAll('a[href]')].map(a => new URL(a.getAttribute('href'), document.baseURI).href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id)
        .concat([...document.querySelectorAll('a[name]')].map(e => e.name)),
  };
})()
"""


@dataclass(frozen=True)
class PageExpectation:
    """What a module page must show, read from its source."""

    title: str
    first_section: str
    code_cells: int
    has_math: bool


@dataclass
class SiteReport:
    pages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    requests: int = 0
    links_checked: int = 0
    seen: dict[str, dict] = field(default_factory=dict)  # page -> what it showed


def _network_problems(page: str, events: list[dict], origin: str) -> tuple[int, list[str]]:
    problems, requested = [], 0
    urls: dict[str, str] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            requested += 1
            if not (url.startswith(origin + "/") or url == origin or url.startswith(LOCAL_SCHEMES)):
                problems.append(f"{page}: a request leaves the machine: {url}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            problems.append(f"{page}: {params['response']['url']} answered HTTP {params['response']['status']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"{page}: {urls.get(params['requestId'], 'a request')} failed: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            problems.append(f"{page}: a script failed: {details.get('exception', {}).get('description') or details.get('text')}")
    return requested, problems


def _page_problems(page: str, shown: dict, expected: PageExpectation | None) -> list[str]:
    problems = []
    if not shown["title"].strip():
        problems.append(f"{page}: no <title>")
    if page not in ("genindex.html", "search.html") and not shown["h1"]:
        problems.append(f"{page}: no heading (h1) in the page")
    if shown["mathCount"] != shown["mathTypeset"]:
        problems.append(f"{page}: {shown['mathCount'] - shown['mathTypeset']} of {shown['mathCount']} formulas "
                        "were not typeset by MathJax")
    problems += [f"{page}: raw maths shown as text: {text!r}" for text in shown["rawMath"][:3]]
    problems += [f"{page}: MathJax could not typeset: {text!r}" for text in shown["mathErrors"][:3]]
    if expected is None:
        return problems
    if not shown["h1"] or expected.title not in shown["h1"][0]:
        problems.append(f"{page}: the title {expected.title!r} is not the page's heading (found {shown['h1'][:1]})")
    if expected.first_section not in shown["h2"][:3]:
        problems.append(f"{page}: the first section {expected.first_section!r} is missing (sections: {shown['h2'][:3]})")
    if shown["codeCells"] != expected.code_cells or shown["codeRendered"] != expected.code_cells:
        problems.append(f"{page}: {expected.code_cells} code cells in the source, {shown['codeCells']} in the page, "
                        f"{shown['codeRendered']} rendered as highlighted code")
    if expected.has_math and not shown["mathTypeset"]:
        problems.append(f"{page}: the source has maths, the page shows no typeset formula")
    return problems


def _link_problems(report: SiteReport, site: Path, origin: str) -> list[str]:
    problems, checked = [], 0
    for page, shown in report.seen.items():
        for link in shown["links"]:
            if not link.startswith(origin + "/"):
                continue  # another site's page: a link, not a request
            checked += 1
            address, fragment = urldefrag(link)
            path = unquote(urlsplit(address).path).lstrip("/") or "index.html"
            if path.endswith("/"):
                path += "index.html"
            if not (site / path).is_file():
                problems.append(f"{page}: broken link to {path}")
            elif fragment and path in report.seen and unquote(fragment) not in report.seen[path]["ids"]:
                problems.append(f"{page}: link to {path}#{fragment}, which has no such anchor")
    report.links_checked = checked
    return problems


def check_site(site: Path, expectations: dict[str, PageExpectation],
               screenshots: Path | None = None, chromium: str | None = None, pages: list[str] | None = None,
               timeout: float = 30.0) -> SiteReport:
    """Open every page of the built `site` in headless Chromium; return what was wrong."""
    site = Path(site).resolve()
    pages = pages if pages is not None else read_mark(site)["pages"]
    executable = find_chromium(chromium)
    if executable is None:
        raise SiteError("no Chromium found to check the site with: apt-get install chromium (or pass --chromium PATH)")
    shots = dict(SCREENSHOTS)
    if shots["module"] not in pages:  # the exemplar module, or else the first module with a page
        shots["module"] = next((p for p in pages if p.startswith("modules/")), None)
    report = SiteReport(pages=list(pages))
    with local_server(site) as origin:
        browser = Browser(executable, timeout=timeout)
        try:
            for page in pages:
                events = browser.navigate(f"{origin}/{page}")
                shown = browser.evaluate(READ_PAGE)
                events += browser.drain()
                requested, network = _network_problems(page, events, origin)
                report.requests += requested
                report.problems += network + _page_problems(page, shown, expectations.get(page))
                report.seen[page] = shown
                for name, shot_page in shots.items():
                    if screenshots is not None and shot_page == page:
                        report.screenshots.append(browser.screenshot(Path(screenshots) / f"{name}.png"))
        finally:
            browser.close()
        report.problems += _link_problems(report, site, origin)
    return report


def module_expectations(root: Path, numbers: list[str]) -> dict[str, PageExpectation]:
    """What each module page must show, read from the learner edition of its source in the project."""
    from tito.project import project_manifest
    from tito.release import learner_source
    from tito.site.pages import module_docname
    from tito.source import split_cells

    expected = {}
    manifest = project_manifest(root)
    for number in numbers:
        module = manifest.module(number)
        cells = split_cells(learner_source(module, (root / module.source).read_text(encoding="utf-8")))
        markdown = [line for cell in cells if cell.kind == "markdown" for line in cell.lines]
        titles = [_plain(line[4:]) for line in markdown if line.startswith("# # ")]
        sections = [_plain(line[5:]) for line in markdown if line.startswith("# ## ")]
        code = [cell for cell in cells if cell.kind == "code" and cell.text.strip()]
        expected[f"{module_docname(module)}.html"] = PageExpectation(
            titles[0] if titles else "", sections[0] if sections else "", len(code), any("$" in line for line in markdown))
    return expected


def _plain(heading: str) -> str:
    """A Markdown heading as the browser shows its text (no backticks or emphasis marks)."""
    return " ".join(heading.replace("`", "").replace("**", "").split())
