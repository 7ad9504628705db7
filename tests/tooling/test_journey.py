"""The learner's journey: checkpoint states, unlocks, `tito checkpoint` and `tito milestone`.

Expectations are computed from manifests (synthetic ones built here, or the project's own) and
from progress files; nothing assumes which modules happen to be built today.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys

import pytest

import tito.cli as cli
from tito import journey
from tito import progress as progress_store
from tito.exporter import export_modules
from tinytorch_base.manifest import CourseModule, Manifest, Milestone
from tito.project import project_manifest
from tito.testing import project_env

ESCAPE = "\x1b"


# ---- helpers ------------------------------------------------------------------------------------
def build_parser():
    """tito's parser with the journey commands (registered here until cli.py registers them itself)."""
    parser = ORIGINAL_BUILD_PARSER()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "checkpoint" not in commands.choices:
        journey.register(commands)
    return parser


ORIGINAL_BUILD_PARSER = cli.build_parser


@pytest.fixture
def tito(monkeypatch):
    """Run `tito ARGS...` in-process, as the `tito` script does; returns the exit status."""
    monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main


def module(number, prerequisites=(), status="available", slug=None):
    slug = slug or f"m{number}"
    return CourseModule(number, slug, slug.title(), "foundation", tuple(prerequisites), f"tinytorch.{slug}",
                        f"Capability {number}", f"Can I do {number}?", 1.0, 1, status)


def milestone(name, requires, status="available"):
    return Milestone(name, f"The {name}", "1957", tuple(requires), f"milestones/{name}.py", "it works", status)


def progress_with(*completed):
    progress = progress_store.Progress()
    for number in completed:
        progress.modules[number] = {"started_at": "2025-01-01T10:00:00", "completed_at": "2025-01-02T11:30:00",
                                    "tests_passed": 7}
    return progress


def states(manifest, progress):
    return {c.module.number: c.state for c in journey.checkpoint_states(manifest, progress)}


def write_project(root, modules, milestones=()):
    """A tiny TinyTorch project: a manifest, one small source per available module, exported."""
    entries = ['[course]\nname = "Tiny"\nmotto = "Start small."\n']
    for number, slug, prerequisites, status in modules:
        entries.append(
            f'[[module]]\nnumber = "{number}"\nslug = "{slug}"\ntitle = "{slug.title()}"\ntier = "foundation"\n'
            f'prerequisites = {json.dumps(list(prerequisites))}\npackage = "tinytorch.{slug}"\n'
            f'capability = "Power {number}"\nquestion = "Can I {slug}?"\nhours = 1\ndifficulty = 1\n'
            f'status = "{status}"\n')
        if status == "available":
            source = root / "modules" / f"{number}_{slug}" / f"{slug}.py"
            source.parent.mkdir(parents=True)
            source.write_text(f"# %%\n#| export\ndef {slug}_value():\n    return {int(number)}\n")
    for name, requires, status in milestones:
        entries.append(
            f'[[milestone]]\nname = "{name}"\ntitle = "The {name}"\nyear = "1957"\n'
            f'requires = {json.dumps(list(requires))}\nscript = "milestones/{name}.py"\nbar = "it runs"\n'
            f'status = "{status}"\n')
    (root / "modules").mkdir(parents=True, exist_ok=True)
    (root / "tinytorch").mkdir(exist_ok=True)
    (root / "tinytorch" / "__init__.py").write_text("")
    (root / "tinytorch_base").mkdir(exist_ok=True)
    (root / "tinytorch_base" / "manifest.toml").write_text("\n".join(entries))
    export_modules(root, project_manifest(root))
    return project_manifest(root)


MILESTONE_SCRIPT = """\
import json, sys
from pathlib import Path
from tinytorch.alpha import alpha_value
Path("ran.json").write_text(json.dumps({"argv": sys.argv[1:], "value": alpha_value()}))
print("milestone output streamed")
sys.exit(3 if "--fail" in sys.argv else 0)
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Modules 01 alpha, 02 beta (needs 01), 03 gamma (planned); milestones demo (01, 02) and later (03)."""
    root = tmp_path / "tiny"
    write_project(root, [("01", "alpha", [], "available"), ("02", "beta", ["01"], "available"),
                         ("03", "gamma", ["02"], "planned")],
                  [("demo", ["01", "02"], "available"), ("later", ["01", "03"], "available"),
                   ("future", ["01"], "planned")])
    (root / "milestones").mkdir()
    (root / "milestones" / "demo.py").write_text(MILESTONE_SCRIPT)
    monkeypatch.chdir(root)
    return root


def row_of(printed, number):
    """The status table's row for one module."""
    return next(line for line in printed.splitlines() if re.match(rf"[│|]\s*{number}\s*[│|]", line))


# ---- checkpoint states ------------------------------------------------------------------------------
def test_checkpoint_states_follow_progress_and_prerequisites():
    manifest = Manifest("T", "", (module("00"), module("01"), module("02", ["01"]), module("03", ["01", "02"]),
                                  module("04", ["03"], status="planned"), module("05", ["01"])), ())
    assert states(manifest, progress_with()) == {
        "00": "next", "01": "next", "02": "locked", "03": "locked", "04": "planned", "05": "locked"}
    assert states(manifest, progress_with("01")) == {
        "00": "next", "01": "done", "02": "next", "03": "locked", "04": "planned", "05": "next"}
    assert states(manifest, progress_with("01", "02")) == {
        "00": "next", "01": "done", "02": "done", "03": "next", "04": "planned", "05": "next"}
    locked = journey.checkpoint_states(manifest, progress_with("01"))[3]
    assert locked.waiting_for == ("02",) and locked.label == "locked (needs 02)"
    done = journey.checkpoint_states(manifest, progress_with("01"))[1]
    assert done.completed_at == "2025-01-02T11:30:00" and done.tests_passed == 7


def test_a_started_module_is_not_done():
    manifest = Manifest("T", "", (module("01"),), ())
    progress = progress_store.Progress({"01": {"started_at": "2025-01-01T10:00:00"}})
    assert states(manifest, progress) == {"01": "next"}


def test_unlocked_after_names_the_capability_opened_modules_and_runnable_milestones():
    manifest = Manifest("T", "", (module("01"), module("02", ["01"]), module("03", ["01"], status="planned")),
                        (milestone("first", ["01"]), milestone("both", ["01", "02"]),
                         milestone("unbuilt", ["01"], status="planned"), milestone("needs03", ["01", "03"])))
    message, milestones = journey.unlocked_after(manifest, set(), {"01"})
    assert "Capability 01" in message and "Can I do 01?" in message
    assert "Now open: module 02" in message and "tito module start 02" in message
    assert "module 03" not in message, "a planned module is not announced as open"
    assert [m.name for m in milestones] == ["first"]

    message, milestones = journey.unlocked_after(manifest, {"01"}, {"01", "02"})
    assert "Capability 02" in message and "Capability 01" not in message
    assert [m.name for m in milestones] == ["both"], "only milestones that became runnable"

    assert journey.unlocked_after(manifest, {"01", "02"}, {"01", "02"}) == ("", [])


def test_milestone_readiness_separates_missing_from_unbuilt():
    manifest = Manifest("T", "", (module("01"), module("02", ["01"]), module("03", status="planned")), ())
    readiness = journey.milestone_readiness(manifest, milestone("m", ["01", "02", "03"]), {"01"})
    assert [m.number for m in readiness.missing] == ["02", "03"]
    assert [m.number for m in readiness.unbuilt] == ["03"]
    assert not readiness.built and not readiness.runnable
    ready = journey.milestone_readiness(manifest, milestone("m", ["01", "02"]), {"01", "02"})
    assert ready.built and ready.runnable
    assert not journey.milestone_readiness(manifest, milestone("m", ["01"], "planned"), {"01"}).runnable


def test_compact_numbers_writes_runs():
    assert journey.compact_numbers(["01", "02", "03", "05", "07", "08"]) == "01-03, 05, 07-08"
    assert journey.compact_numbers([]) == ""


# ---- tito checkpoint -------------------------------------------------------------------------------
def test_checkpoint_status_shows_each_state(tiny, tito, capsys):
    assert tito(["checkpoint", "status"]) == 0
    printed = capsys.readouterr().out
    assert "next" in row_of(printed, "01")
    assert "locked (needs 01)" in row_of(printed, "02")
    assert "not built yet" in row_of(printed, "03")
    assert "0 of 3 checkpoints done" in printed and "tito module start 01" in printed

    progress_store.mark_completed(tiny, "01", 4)
    assert tito(["checkpoint", "status"]) == 0
    printed = capsys.readouterr().out
    assert "done" in row_of(printed, "01") and "next" in row_of(printed, "02")
    assert ESCAPE not in printed, "no escape codes when the output is not a terminal"


def test_checkpoint_status_detailed_adds_question_time_and_tests(tiny, tito, capsys):
    progress_store.mark_completed(tiny, "01", 4)
    assert tito(["checkpoint", "status", "--detailed"]) == 0
    printed = capsys.readouterr().out
    for question in ("Can I alpha?", "Can I beta?", "Can I gamma?"):
        assert question in printed
    completed_at = progress_store.load_progress(tiny).modules["01"]["completed_at"]
    assert f"completed {completed_at.replace('T', ' ')[:16]}, 4 tests passed" in printed


def test_a_corrupt_progress_file_is_reported_not_crashed_on(tiny, tito, capsys):
    (tiny / ".tito").mkdir()
    (tiny / ".tito" / "progress.json").write_text("{not json")
    assert tito(["checkpoint", "status"]) == 0
    printed = capsys.readouterr().out
    assert "warning" in printed and "unreadable" in printed
    assert "next" in row_of(printed, "01")


def test_complete_keeps_what_a_corrupt_progress_file_still_holds_and_names_its_backup(tiny, tito, capsys):
    (tiny / "tests" / "modules").mkdir(parents=True)
    (tiny / "tests" / "modules" / "test_01_alpha.py").write_text(
        "from tinytorch.alpha import alpha_value\n\ndef test_value():\n    assert alpha_value() == 1\n")
    done = {"started_at": "2025-01-01T10:00:00", "completed_at": "2025-01-02T11:30:00", "tests_passed": 7}
    original = json.dumps({"version": 1, "modules": {"02": done, "03": "junk", "04": {"completed_at": 5}}})
    (tiny / ".tito").mkdir()
    (tiny / ".tito" / "progress.json").write_text(original)
    assert tito(["module", "complete", "01"]) == 0
    printed = capsys.readouterr().out
    [backup] = (tiny / ".tito").glob("progress.corrupt-*.json")
    assert backup.read_text() == original, "the corrupt file is kept, byte for byte"
    assert "warning:" in printed and "partly unreadable" in printed and "2 module entries malformed" in printed
    assert f"saved as it was at {backup};" in printed and "kept what it recorded for 02" in printed
    progress = progress_store.load_progress(tiny)
    assert progress.completed_numbers() == {"01", "02"} and progress.modules["02"] == done
    assert progress.warning is None, "the file was repaired"


@pytest.mark.parametrize("horizontal", [False, True])
def test_checkpoint_timeline_draws_every_checkpoint(tiny, tito, capsys, horizontal):
    progress_store.mark_completed(tiny, "01", 4)
    assert tito(["checkpoint", "timeline", *(["--horizontal"] if horizontal else [])]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    if horizontal:
        numbers = next(line for line in lines if "01" in line and "02" in line)
        words = lines[lines.index(numbers) + 1]
        assert words.split() == ["done", "next", "planned"]
        assert numbers.index("02") == words.index("next"), "each state sits under its module"
        assert all(len(line) <= 80 for line in lines)
    else:
        assert any("01 Alpha" in line and line.rstrip().endswith("done") for line in lines)
        assert any("02 Beta" in line and line.rstrip().endswith("next") for line in lines)
        assert any("03 Gamma" in line and line.rstrip().endswith("not built yet") for line in lines)
    assert "legend:" in printed and "1 of 3 checkpoints done" in printed
    assert ESCAPE not in printed


def test_no_color_removes_every_escape_code_even_on_a_terminal(tiny, tito, capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats the captured output as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert tito(["checkpoint", "status"]) == 0
    assert ESCAPE in capsys.readouterr().out, "control: a terminal gets colour"
    monkeypatch.setenv("NO_COLOR", "1")
    for command in (["checkpoint", "status", "--detailed"], ["checkpoint", "timeline", "--horizontal"],
                    ["checkpoint", "timeline"], ["milestone", "list"], ["milestone", "run", "demo"]):
        tito(command)
        printed = capsys.readouterr().out
        assert ESCAPE not in printed, f"tito {' '.join(command)} printed escape codes under NO_COLOR"
        assert printed.strip()


def test_checkpoint_test_runs_the_capability_test_with_true_counts(tiny, tito, capsys):
    tests = tiny / "tests" / "checkpoints"
    tests.mkdir(parents=True)
    (tests / "test_checkpoint_01.py").write_text(
        "from tinytorch.alpha import alpha_value\n\n"
        "def test_value():\n    assert alpha_value() == 1\n\n"
        "def test_type():\n    assert isinstance(alpha_value(), int)\n")
    (tests / "test_checkpoint_02.py").write_text(
        "from tinytorch.beta import beta_value\n\n"
        "def test_value():\n    assert beta_value() == 2\n\n"
        "def test_wrong():\n    assert beta_value() == 3, 'beta_value should be 3'\n")
    assert tito(["checkpoint", "test", "01"]) == 0
    printed = capsys.readouterr().out
    assert "tests: 2 passed, 0 failed, 0 errors, 0 skipped (of 2)" in printed
    assert "Checkpoint 01 reached" in printed and "tito module complete 01" in printed
    assert tito(["checkpoint", "test", "02"]) == 1
    printed = capsys.readouterr().out
    assert "tests: 1 passed, 1 failed" in printed and "beta_value should be 3" in printed


def test_checkpoint_test_explains_a_planned_module_a_missing_test_and_an_unknown_number(tiny, tito, capsys):
    assert tito(["checkpoint", "test", "03"]) == 1
    assert "not built yet" in capsys.readouterr().out
    assert tito(["checkpoint", "test", "01"]) == 1
    assert "tests/checkpoints/test_checkpoint_01.py" in capsys.readouterr().out
    assert tito(["checkpoint", "test", "42"]) == 1
    assert "no module '42'" in capsys.readouterr().out


def test_checkpoint_test_notes_a_package_out_of_sync(tiny, tito, capsys):
    tests = tiny / "tests" / "checkpoints"
    tests.mkdir(parents=True)
    (tests / "test_checkpoint_01.py").write_text("def test_ok():\n    pass\n")
    source = tiny / "modules" / "01_alpha" / "alpha.py"
    source.write_text(source.read_text() + "\n\ndef extra():\n    return 0\n")
    assert tito(["checkpoint", "test", "01"]) == 0
    assert "tito export 01" in capsys.readouterr().out


# ---- tito milestone --------------------------------------------------------------------------------
def test_milestone_list_shows_requirements_and_what_stands_in_the_way(tiny, tito, capsys):
    assert tito(["milestone", "list"]) == 0
    printed = capsys.readouterr().out
    demo = next(line for line in printed.splitlines() if "│ demo" in line)
    assert "01-02" in demo and "needs 01, 02" in demo
    assert "not built yet" in next(line for line in printed.splitlines() if "│ later" in line)
    assert "not built yet" in next(line for line in printed.splitlines() if "│ future" in line)
    assert "The demo (1957)" in printed and "bar: it runs" in printed
    progress_store.mark_completed(tiny, "01", 1)
    progress_store.mark_completed(tiny, "02", 1)
    assert tito(["milestone", "list"]) == 0
    assert "runnable: tito milestone run demo" in capsys.readouterr().out


def test_milestone_run_refuses_and_names_the_missing_modules(tiny, tito, capfd):
    progress_store.mark_completed(tiny, "01", 1)
    assert tito(["milestone", "run", "demo", "--quick"]) == 1
    printed = capfd.readouterr().out
    assert "missing module 02 Beta: complete it with: tito module complete 02" in printed
    assert "missing module 01" not in printed
    assert "Nothing was run" in printed
    assert not (tiny / "ran.json").exists(), "the script must not start"


def test_milestone_run_runs_the_script_with_arguments_and_returns_its_status(tiny, tito, capfd):
    progress_store.mark_completed(tiny, "01", 1)
    progress_store.mark_completed(tiny, "02", 1)
    assert tito(["milestone", "run", "demo", "--quick", "--epochs", "2"]) == 0
    printed = capfd.readouterr().out
    assert "milestone output streamed" in printed and "bar: it runs" in printed
    ran = json.loads((tiny / "ran.json").read_text())
    assert ran == {"argv": ["--quick", "--epochs", "2"], "value": 1}, "the project's package, the user's args"
    assert tito(["milestone", "run", "demo", "--fail"]) == 3


def test_force_skips_the_progress_check_only(tiny, tito, capfd):
    assert tito(["milestone", "run", "--force", "demo", "--quick"]) == 0
    assert json.loads((tiny / "ran.json").read_text())["argv"] == ["--quick"]
    assert "--force" in capfd.readouterr().out
    (tiny / "ran.json").unlink()
    assert tito(["milestone", "run", "demo", "--force"]) == 0, "--force may also follow NAME"
    assert json.loads((tiny / "ran.json").read_text())["argv"] == []
    (tiny / "ran.json").unlink()

    source = tiny / "modules" / "02_beta" / "beta.py"
    source.write_text(source.read_text().replace("return 2", "return 22"))  # edited, not exported
    assert tito(["milestone", "run", "--force", "demo"]) == 1
    printed = capfd.readouterr().out
    assert "half-built" in printed and "tinytorch/beta.py" in printed and "tito export 02" in printed
    assert not (tiny / "ran.json").exists()


def test_a_deleted_package_file_is_also_refused(tiny, tito, capfd):
    progress_store.mark_completed(tiny, "01", 1)
    progress_store.mark_completed(tiny, "02", 1)
    (tiny / "tinytorch" / "alpha.py").unlink()
    assert tito(["milestone", "run", "demo"]) == 1
    assert "tito export 01" in capfd.readouterr().out
    assert not (tiny / "ran.json").exists()


def test_a_missing_module_source_is_refused_with_the_way_back(tiny, tito, capfd):
    (tiny / "modules" / "02_beta" / "beta.py").unlink()
    assert tito(["milestone", "run", "--force", "demo"]) == 1
    printed = capfd.readouterr().out
    assert "has no source at modules/02_beta/beta.py" in printed and "tito module reset 02" in printed
    assert "tito export 02" not in printed
    assert not (tiny / "ran.json").exists()


def test_milestone_run_explains_planned_and_unknown_milestones(tiny, tito, capfd):
    assert tito(["milestone", "run", "future"]) == 1
    printed = capfd.readouterr().out
    assert "not built yet" in printed and "tito module complete 01" in printed
    assert tito(["milestone", "run", "later", "--force"]) == 1, "--force never runs an unbuilt milestone"
    printed = capfd.readouterr().out
    assert "not built yet" in printed and "missing module 03 Gamma: not built yet" in printed
    assert tito(["milestone", "run", "nope"]) == 1
    printed = capfd.readouterr().out
    assert "no milestone 'nope'" in printed and "demo" in printed


def test_every_command_the_journey_suggests_exists(tiny, tito, capfd):
    progress_store.mark_completed(tiny, "01", 1)
    outputs = []
    for command in (["checkpoint", "status"], ["milestone", "list"], ["milestone", "run", "demo"],
                    ["milestone", "run", "future"], ["checkpoint", "test", "01"]):
        tito(command)
        outputs.append(capfd.readouterr().out)
    manifest = project_manifest(tiny)
    outputs.append(journey.unlocked_after(manifest, set(), {"01"})[0])
    suggested = {m.strip() for text in outputs for m in re.findall(r"tito [a-z][a-z0-9 -]*", text)}
    assert suggested, "the journey suggests commands"
    parser = build_parser()
    for command in suggested:
        args = parser.parse_args(command.split()[1:])
        assert getattr(args, "handler", None) is not None, f"`{command}` is not a complete tito command"


# ---- the project itself ------------------------------------------------------------------------------
def test_every_built_module_has_a_checkpoint_test(root, manifest):
    for course_module in manifest.available_modules:
        path = root / journey.checkpoint_test_file(course_module)
        assert path.is_file(), f"module {course_module.name} is built but has no capability test at {path}"


def test_checkpoint_test_01_passes_on_the_reference_package(root, manifest, tito, monkeypatch, capsys):
    monkeypatch.chdir(root)
    test_file = journey.checkpoint_test_file(manifest.module("01"))
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                str(test_file)], cwd=root, env=project_env(root), capture_output=True, text=True)
    count = int(re.search(r"(\d+) tests? collected", collected.stdout).group(1))
    assert tito(["checkpoint", "test", "01"]) == 0
    assert f"tests: {count} passed, 0 failed, 0 errors, 0 skipped (of {count})" in capsys.readouterr().out


# pytest's own summary line counts the tests: an independent check of the counts tito prints.
# Hypothesis skips shrinking here: shrinking only minimises a failing example (the outcome of each
# test is the same), and on stubs it would take most of the time.
PYTEST_WITHOUT_SHRINKING = """
import sys, pytest
from hypothesis import Phase, settings

class NoShrinking:
    def pytest_sessionstart(self, session):  # after tests/conftest.py has loaded its profile
        settings.register_profile("no-shrinking", parent=settings.default,
                                  phases=[Phase.explicit, Phase.reuse, Phase.generate])
        settings.load_profile("no-shrinking")

sys.exit(pytest.main(sys.argv[1:], plugins=[NoShrinking()]))
"""


def test_simulated_learner_walk(root, manifest, tito, tmp_path, monkeypatch, capsys):
    """Release -> start 01 -> complete fails with the true count -> answers -> passes -> status -> milestone."""
    edition = tmp_path / "edition"
    monkeypatch.chdir(root)
    assert tito(["release", "--learner", str(edition)]) == 0
    capsys.readouterr()
    monkeypatch.chdir(edition)
    tensor = manifest.module("01")

    assert tito(["module", "start", "01"]) == 0
    assert tito(["module", "complete", "01"]) == 1
    printed = capsys.readouterr().out
    shown = re.search(r"tests: (\d+) passed, (\d+) failed, (\d+) errors", printed)
    independent = subprocess.run([sys.executable, "-c", PYTEST_WITHOUT_SHRINKING, "-q", "-p", "no:cacheprovider",
                                  str(tensor.test_file)], cwd=edition, env=project_env(edition),
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    true_failed = int(re.search(r"(\d+) failed", independent).group(1))
    true_passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", independent)) else 0
    assert (int(shown.group(1)), int(shown.group(2))) == (true_passed, true_failed) and true_failed > 0
    assert not progress_store.load_progress(edition).completed("01")

    assert tito(["checkpoint", "status"]) == 0
    assert "next" in row_of(capsys.readouterr().out, "01"), "started is not done"

    shutil.copy2(root / tensor.source, edition / tensor.source)  # the learner fills in the answers
    assert tito(["module", "complete", "01"]) == 0
    printed = capsys.readouterr().out
    collected = true_passed + true_failed + int(shown.group(3))
    assert f"tests: {collected} passed, 0 failed, 0 errors" in printed

    assert tito(["checkpoint", "status"]) == 0
    printed = capsys.readouterr().out
    assert "done" in row_of(printed, "01")
    activations = manifest.module("02")
    expected = journey.checkpoint_states(manifest, progress_store.load_progress(edition))[
        manifest.modules.index(activations)].label
    if activations.available and set(activations.prerequisites) <= {"01"}:
        assert expected == "next"
    assert expected in row_of(printed, "02")

    if (edition / journey.checkpoint_test_file(tensor)).is_file():
        assert tito(["checkpoint", "test", "01"]) == 0
        capsys.readouterr()

    completed = progress_store.load_progress(edition).completed_numbers()
    blocked = next(m for m in manifest.milestones if not set(m.requires) <= completed)
    assert tito(["milestone", "run", blocked.name, "--quick"]) == 1
    printed = capsys.readouterr().out
    for number in sorted(set(blocked.requires) - completed):
        needed = manifest.module(number)
        if needed.available:
            assert f"tito module complete {number}" in printed
        else:
            assert f"missing module {number} {needed.title}: not built yet" in printed
    assert not re.search(r"missing module (?:%s)\b" % "|".join(sorted(completed)), printed)
