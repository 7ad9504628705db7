"""The README is what CI runs: its quick-start commands stand in `.ci/run` as written."""

import re
from pathlib import Path

from tito.project import project_manifest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title):
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.MULTILINE | re.DOTALL)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def fenced_commands(text):
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quick_start_is_two_commands_and_ci_runs_them_as_written():
    commands = fenced_commands(section("Quick start"))
    assert len(commands) == 2, f"the quick start is two commands (set up and run; test), got {commands}"
    ci_lines = {line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()}
    missing = [command for command in commands if command not in ci_lines]
    assert not missing, f".ci/run must run the README's commands exactly as written; it lacks: {missing}"


def test_ci_runs_the_readme_before_it_installs_anything_else():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    positions = [lines.index(command) for command in fenced_commands(section("Quick start"))]
    installs = [n for n, line in enumerate(lines) if "pip install" in line and n not in positions]
    assert installs and min(installs) > max(positions), "torch is installed only after the README's commands ran"


def test_the_module_table_matches_the_manifest():
    table = section("The modules")
    for module in project_manifest(ROOT).modules:
        row = next((line for line in table.splitlines() if f"{module.number} {module.title}" in line), None)
        assert row is not None, f"the README's module table lacks {module.number} {module.title}"
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        column = 1 if module.available else 2
        assert f"{module.number} {module.title}" in cells[column], (
            f"{module.number} {module.title} is {module.status} in the manifest; move it to the "
            f"'{'available now' if module.available else 'planned'}' column of the README")
