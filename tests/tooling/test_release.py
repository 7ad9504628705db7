"""The learner edition: no answers survive, stubs fail cleanly, the package imports, nbgrader metadata."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from tito.cli import main
from tito.exporter import generated_files
from tito.progress import load_progress
from tito.release import RELEASE_ENTRIES, ReleaseError, answer_lines, learner_source, release_learner
from tito.source import find_regions
from tito.testing import project_env, run_tests


@pytest.fixture(scope="module")
def release(tmp_path_factory, root):
    out = tmp_path_factory.mktemp("learner") / "edition"
    release_learner(root, out)
    return out


def _normalise(line):
    return re.sub(r"\s+", " ", line).strip()


def _release_text_files(out):
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".ipynb", ".md", ".toml", ".txt", ".json"}:
            yield path, path.read_text(encoding="utf-8")


def test_no_answer_text_survives_anywhere(release, root, manifest):
    """Every line that only an answer region holds is absent from every file of the edition."""
    shared = set()  # lines that legitimately appear outside answers (given code, tests, tooling)
    for entry in RELEASE_ENTRIES:
        for path in (root / entry).rglob("*.py") if (root / entry).is_dir() else [root / entry]:
            if path.is_file() and path.suffix == ".py" and path.relative_to(root) not in generated_files(root):
                text = path.read_text(encoding="utf-8")
                regions = [(r.begin, r.end) for r in find_regions(text, path) if r.kind == "solution"]
                for number, line in enumerate(text.splitlines(), start=1):
                    if not any(b <= number <= e for b, e in regions):
                        shared.add(_normalise(line))
    answers = set()
    for module in manifest.available_modules:
        answers |= answer_lines((root / module.source).read_text(), module.source) - shared
    assert answers, "the reference modules must hold answers"
    for path, text in _release_text_files(release):
        body = {_normalise(line) for line in text.splitlines()}
        if path.suffix == ".ipynb":
            body = {_normalise(line) for cell in json.loads(text)["cells"] for line in "".join(cell["source"]).splitlines()}
        leaked = answers & body
        assert not leaked, f"{path.relative_to(release)} contains answer lines: {sorted(leaked)[:3]}"


def test_no_markers_or_hidden_tests_in_the_release(release):
    markers = {"### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"}
    for path, text in _release_text_files(release):
        lines = {line.strip().strip('",').replace("\\n", "") for line in text.splitlines()}
        assert not markers & lines, f"{path} still holds a region marker"


def test_stubs_keep_signatures_and_name_module_and_function(release, root, manifest):
    module = manifest.module("01")
    text = (release / module.source).read_text()
    assert "def __init__(self, data, dtype=None, requires_grad=False):" in text
    assert "TODO:" in text and "HINT:" in text
    assert "Module 01 (Tensor): Tensor.__init__ is not implemented yet" in text
    assert "# YOUR CODE HERE" in text


def test_the_release_package_imports_and_was_exported_from_the_stubs(release, manifest):
    done = subprocess.run([sys.executable, "-c", "import tinytorch, tinytorch.core.tensor as t; print(t.__file__)"],
                          cwd=release, env=project_env(release), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert str(release) in done.stdout
    assert "raise NotImplementedError" in (release / manifest.module("01").package_file).read_text()


def test_notebooks_carry_nbgrader_metadata(release, root, manifest):
    for module in manifest.available_modules:
        notebook = json.loads((release / module.source.with_suffix(".ipynb")).read_text())
        graders = [c["metadata"].get("nbgrader") for c in notebook["cells"] if c["cell_type"] == "code"]
        solutions = [g for g in graders if g and g["solution"]]
        graded = [g for g in graders if g and g["grade"]]
        if "### BEGIN SOLUTION" in (root / module.source).read_text():
            assert solutions and all(g["schema_version"] == 3 and not g["locked"] for g in solutions)
        if "def test_" in (root / module.source).read_text():
            assert graded and all(g["points"] >= 1 and g["locked"] for g in graded)
        ids = [g["grade_id"] for g in graders if g]
        assert len(ids) == len(set(ids)), "nbgrader grade ids must be unique"
        assert notebook["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"


def test_each_built_module_fails_on_stubs_with_not_implemented(release, root, manifest):
    """The same test files pass on the reference package: the suite's tests/modules run proves that."""
    with_answers = [m for m in manifest.available_modules
                    if (root / m.test_file).exists() and "### BEGIN SOLUTION" in (root / m.source).read_text()]
    assert with_answers
    for module in with_answers:
        stubbed = run_tests(release, [module.test_file])
        assert stubbed.returncode != 0 and stubbed.failed + stubbed.errors > 0, module.name
        assert stubbed.failures, module.name
        for failure, detail in zip(stubbed.failures, stubbed.failure_details):
            # NotImplementedError is a RuntimeError: a `pytest.raises(RuntimeError, match=...)` meets
            # the stub and reports a regex mismatch whose input is the stub's message.
            stub_hit = "NotImplementedError" in detail or "is not implemented yet" in detail
            assert stub_hit, f"{module.name}: {failure}"
            assert "ImportError" not in failure and "SyntaxError" not in failure


def test_release_refuses_a_non_empty_folder_and_leaves_nothing(tmp_path, root):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="not empty"):
        release_learner(root, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"], "no staging folder left behind"


def test_learner_completes_module_01_honestly(release, manifest, monkeypatch, tmp_path, root, capsys):
    """In the learner edition: complete fails and records nothing; with the answers it passes and records."""
    edition = tmp_path / "edition"
    shutil.copytree(release, edition)
    monkeypatch.chdir(edition)
    assert main(["module", "complete", "01"]) == 1
    printed = capsys.readouterr().out
    assert re.search(r"tests: 0 passed, [1-9]\d* failed", printed), printed
    assert "NotImplementedError" in printed and "Nothing was recorded" in printed
    assert not load_progress(edition).completed("01")

    module = manifest.module("01")
    shutil.copy2(root / module.source, edition / module.source)  # the learner writes the answers
    assert main(["module", "complete", "01"]) == 0
    printed = capsys.readouterr().out
    passed = int(re.search(r"tests: (\d+) passed, 0 failed, 0 errors", printed).group(1))
    assert passed == run_tests(root, [module.test_file]).passed
    assert load_progress(edition).completed("01")


def test_reset_restores_the_stub_and_backs_up_the_learner_version(release, tmp_path, monkeypatch, manifest):
    edition = tmp_path / "edition"
    shutil.copytree(release, edition)
    monkeypatch.chdir(edition)
    module = manifest.module("01")
    source = edition / module.source
    stub = source.read_text()
    source.write_text(stub + "\n# my work in progress\n")
    assert main(["module", "reset", "01"]) == 0
    assert source.read_text() == stub
    backups = list((edition / ".tito" / "backups").glob("01_tensor-*.py"))
    assert len(backups) == 1 and "# my work in progress" in backups[0].read_text()


def test_learner_source_rejects_an_answer_outside_a_function(manifest):
    text = "# %%\n#| export\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    with pytest.raises(ValueError, match="inside a function"):
        learner_source(manifest.module("01"), text)
