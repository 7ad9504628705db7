"""A Sphinx extension for the course website: each page's scripts, once each, and none it does not use.

Jupyter Book 1 on Sphinx 7 adds some inline scripts twice to every page (sphinx-thebe's and
sphinx-togglebutton's settings); the second copy of a `const` declaration is a script error in
the reader's browser. And sphinx-thebe (live code on a remote Jupyter server, which this site
does not offer: code is shown, not run) writes the address of its CDN bundle into every page.
Jupyter Book always loads both extensions, so this one, through Sphinx's own `html-page-context`
event, keeps the first copy of each script and drops thebe's.
"""

from __future__ import annotations

THEBE_MARKS = ("THEBE_JS_URL", "sphinx-thebe.js")


def clean_scripts(app, pagename, templatename, context, doctree) -> None:
    kept, seen = [], set()
    for script in context.get("script_files", []):
        filename = str(getattr(script, "filename", script) or "")
        body = getattr(script, "attributes", {}).get("body", "")
        if any(mark in filename or mark in body for mark in THEBE_MARKS):
            continue
        if (filename, body) in seen:
            continue
        seen.add((filename, body))
        kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", clean_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
