"""The tito CLI: every command it suggests exists, doctor is honest, progress survives corruption."""

import argparse
import ast
import json
import re
import pytest

from tito.cli import build_parser, main
from tito.doctor import collect_checks
from tito.progress import PROGRESS_FILE, load_progress, mark_completed

PLACEHOLDER = re.compile(r"^([0-9]+|NN|N|NAME|OUT_DIR|[A-Z_]+|\{.*|\.\.\.)$")


def _command_words(text):
    """The subcommand path of a suggested `tito ...` command (stops at arguments and options)."""
    words = []
    for word in text.split()[1:]:
        word = word.strip("`'\".,;:)")
        if not word or word.startswith("-") or word.startswith("{") or PLACEHOLDER.match(word) or "/" in word:
            break
        if "|" in word:  # "doctor|info" in a synopsis: each alternative is a command
            return [words + [alt] for alt in word.split("|")]
        words.append(word)
    return [words]


def _suggested_commands(root):
    found = set()
    sources = [root / "README.md", root / "CONTRIBUTING.md"]
    sources += sorted((root / "tito").glob("*.py")) + sorted((root / "modules").rglob("*.py"))
    sources += sorted((root / "milestones").glob("*.py"))
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        snippets = re.findall(r"`(tito [^`]+)`", text)
        snippets += re.findall(r"^\s*(tito [a-z][^\n#]*)", text, flags=re.MULTILINE)
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    snippets += re.findall(r"(?:^|: |  )(tito [a-z][a-z -]*)", node.value)
        for snippet in snippets:
            for words in _command_words(snippet):
                if words:
                    found.add((tuple(words), path.name))
    return found


def test_the_scan_finds_the_commands_we_print(root):
    commands = {words for words, _ in _suggested_commands(root)}
    assert ("module", "complete") in commands and ("export",) in commands and ("system", "doctor") in commands


def _resolve(words):
    """Follow `words` down tito's subcommands: (the command path, the first unknown subcommand or None)."""
    parser, path = build_parser(), []
    for word in words:
        choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if choices is None:  # a leaf command: the remaining words are its arguments
            break
        if word not in choices:
            return path, word
        parser, path = choices[word], path + [word]
    return path, None


def test_every_suggested_tito_command_exists(root):
    for words, where in sorted(_suggested_commands(root)):
        path, unknown = _resolve(words)
        assert path and unknown is None, f"`tito {' '.join(words)}` (suggested in {where}) does not exist"
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([*path, "--help"])
        assert exit_info.value.code == 0


def test_doctor_passes_here_and_every_fix_is_a_real_command(root, manifest):
    checks = collect_checks(root)
    assert all(check.ok for check in checks if check.required), [c for c in checks if not c.ok]
    extras = re.findall(r"^(\w+) = \[", (root / "pyproject.toml").read_text(), flags=re.MULTILINE)
    for check in checks:
        fix = check.fix
        if fix.startswith("tito "):
            for words in _command_words(fix):
                with pytest.raises(SystemExit) as exit_info:
                    build_parser().parse_args([*words, "--help"])
                assert exit_info.value.code == 0
        for extra in re.findall(r'\.\[(\w+)\]', fix):
            assert extra in extras, f"{fix!r} names an extra that pyproject.toml lacks"


def test_doctor_reports_drift_with_the_fix(project_copy, manifest):
    package_file = project_copy / manifest.module("01").package_file
    package_file.write_text(package_file.read_text() + "\n# drift\n")
    checks = {c.name: c for c in collect_checks(project_copy)}
    sync = checks["modules and package in sync"]
    assert not sync.ok and "differs" in sync.detail and sync.fix == "tito export --all"


def test_export_check_exit_codes(project_copy, monkeypatch, manifest):
    monkeypatch.chdir(project_copy)
    assert main(["export", "--all", "--check"]) == 0
    package_file = project_copy / manifest.module("01").package_file
    package_file.write_text(package_file.read_text() + "\n# drift\n")
    assert main(["export", "--all", "--check"]) == 1
    assert main(["nbdev", "build"]) == 0
    assert main(["export", "--all", "--check"]) == 0


def test_unknown_or_planned_module_is_explained(project_copy, monkeypatch, capsys):
    monkeypatch.chdir(project_copy)
    assert main(["module", "status", "42"]) == 1
    assert "no module '42'" in capsys.readouterr().out
    manifest = project_copy / "tinytorch_base" / "manifest.toml"
    text = manifest.read_text()
    entry = text.index('number = "20"')
    status = text.index('status = "available"', entry)
    manifest.write_text(text[:status] + 'status = "planned"' + text[status + len('status = "available"'):])
    assert main(["module", "start", "20"]) == 1
    assert "not built yet" in capsys.readouterr().out


def test_outside_a_project_the_error_says_where_to_go(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["module", "list"]) == 1
    assert "not inside a TinyTorch project" in capsys.readouterr().out


def test_a_corrupt_progress_file_is_backed_up_and_reported(project_copy, monkeypatch, capsys):
    path = project_copy / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{ not json")
    progress = load_progress(project_copy)
    assert progress.modules == {} and "unreadable" in progress.warning
    backups = list(path.parent.glob("progress.corrupt-*.json"))
    assert len(backups) == 1 and backups[0].read_text() == "{ not json"
    path.write_text('["wrong shape"]')
    monkeypatch.chdir(project_copy)
    assert main(["module", "list"]) == 0
    assert "unreadable" in capsys.readouterr().out


def test_progress_round_trip_is_atomic(project_copy):
    mark_completed(project_copy, "01", passed=12)
    data = json.loads((project_copy / PROGRESS_FILE).read_text())
    assert data["modules"]["01"]["tests_passed"] == 12 and "completed_at" in data["modules"]["01"]
    assert load_progress(project_copy).completed("01")
    assert not [p for p in (project_copy / PROGRESS_FILE).parent.iterdir() if p.suffix == ".tmp"]


def test_no_color_and_no_tty_output_is_plain(project_copy, monkeypatch, capfd):
    monkeypatch.chdir(project_copy)
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["module", "list"]) == 0
    out = capfd.readouterr().out
    assert "\x1b[" not in out and "Tensor" in out


def test_module_commands_run(project_copy, monkeypatch, capsys):
    monkeypatch.chdir(project_copy)
    assert main(["module", "start", "01"]) == 0
    assert "tito module complete 01" in capsys.readouterr().out
    assert main(["module", "status", "01"]) == 0
    assert "tinytorch.core.tensor" in capsys.readouterr().out
    assert main(["system", "info"]) == 0
    with pytest.raises(SystemExit) as exit_info:  # bare `tito` prints its help
        main([])
    assert exit_info.value.code == 0 and "usage: tito" in capsys.readouterr().out
