"""The exporter: deterministic, atomic, drift-checked, and honest about broken sources."""

import ast
import subprocess
import sys

import pytest

from tito.exporter import HEADER_START, ExportError, check_all, export_modules, generated_files, render_module
from tinytorch_base.manifest import ManifestError, load_manifest
from tito.source import strip_teaching_notes
from tito.testing import project_env


def test_committed_package_matches_the_module_sources(root, manifest):
    assert check_all(root, manifest) == []


def test_export_is_deterministic(project_copy, manifest):
    export_modules(project_copy, manifest)
    first = {p: (project_copy / p).read_bytes() for p in generated_files(project_copy)}
    export_modules(project_copy, manifest)
    second = {p: (project_copy / p).read_bytes() for p in generated_files(project_copy)}
    assert first == second and first


def test_every_generated_file_names_its_source_and_imports(root, manifest):
    for module in manifest.available_modules:
        first_line = (root / module.package_file).read_text().splitlines()[0]
        assert first_line.startswith(HEADER_START) and module.source.as_posix() in first_line
        imported = subprocess.run([sys.executable, "-c", f"import {module.package}"], cwd=root,
                                  env=project_env(root), capture_output=True, text=True)
        assert imported.returncode == 0, f"{module.package} does not import: {imported.stderr[-500:]}"


def test_solution_markers_and_test_cells_stay_out_of_the_package(root, manifest):
    for module in manifest.available_modules:
        text = (root / module.package_file).read_text()
        assert "### BEGIN" not in text and "### END" not in text
        assert "def test_unit_" not in text and "HIDDEN TESTS" not in text


def test_check_reports_a_changed_module_and_a_hand_edited_package(project_copy, manifest):
    module = manifest.module("01")
    source = project_copy / module.source
    source.write_text(source.read_text().replace("def tensor(", "def tensor_renamed("))
    problems = check_all(project_copy, manifest)
    assert any(str(module.package_file) in p and "differs" in p for p in problems)

    export_modules(project_copy, manifest, [module])
    assert check_all(project_copy, manifest) == []
    package_file = project_copy / module.package_file
    package_file.write_text(package_file.read_text() + "\n# a hand edit\n")
    assert any("differs" in p for p in check_all(project_copy, manifest))


def test_check_reports_a_stale_generated_file(project_copy, manifest):
    stale = project_copy / "tinytorch" / "core" / "leftover.py"
    stale.write_text(HEADER_START + "modules/99_gone/gone.py: edit that module, not this file.\n")
    assert any("leftover.py" in p and "no available module" in p for p in check_all(project_copy, manifest))


def test_a_syntax_error_names_file_and_line_and_writes_nothing(project_copy, manifest):
    module = manifest.module("01")
    source = project_copy / module.source
    lines = source.read_text().splitlines()
    broken_line = next(i for i, line in enumerate(lines) if line.startswith("def tensor(")) + 1
    lines[broken_line - 1] = "def tensor(data, dtype=None, requires_grad=False)   # missing colon"
    source.write_text("\n".join(lines) + "\n")
    package_file = project_copy / module.package_file
    before = package_file.read_bytes()
    with pytest.raises(ExportError) as error:
        export_modules(project_copy, manifest, [module])
    assert f"{module.source}:{broken_line}" in str(error.value) and "nothing was written" in str(error.value)
    assert package_file.read_bytes() == before
    assert not list(package_file.parent.glob(".*.tmp")), "no temporary files left behind"


def test_a_module_without_export_cells_is_an_error(manifest):
    module = manifest.module("01")
    with pytest.raises(ValueError, match="no cell is marked"):
        render_module(module, "# %%\nx = 1\n")


def test_all_exported_names_are_listed(root, manifest):
    for module in manifest.available_modules:
        tree = ast.parse((root / module.package_file).read_text())
        assigned = [n for n in tree.body if isinstance(n, ast.Assign)
                    and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "__all__"]
        names = ast.literal_eval(assigned[0].value)
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert defined - {n for n in defined if n.startswith("_")} <= set(names)


def test_modules_import_only_their_prerequisites(root, manifest):
    """No forward dependencies: a module imports earlier modules it lists, through the package."""
    by_package = {m.package: m for m in manifest.modules}
    for module in manifest.available_modules:
        tree = ast.parse((root / module.source).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("tinytorch."):
                    target = by_package.get(name)
                    assert target is not None, f"{module.source} imports {name}, which no module exports"
                    assert target.number in module.prerequisites, (
                        f"{module.source} imports {name} (module {target.number}) but lists prerequisites "
                        f"{module.prerequisites}"
                    )


def test_manifest_lists_the_21_modules_of_the_design(manifest):
    assert [m.number for m in manifest.modules] == [f"{n:02d}" for n in range(21)]
    tiers = {m.number: m.tier for m in manifest.modules}
    assert tiers["00"] == "intro"
    assert all(tiers[f"{n:02d}"] == "foundation" for n in range(1, 8))
    assert all(tiers[f"{n:02d}"] == "architecture" for n in range(8, 14))
    assert all(tiers[f"{n:02d}"] == "optimization" for n in range(14, 21))
    assert len({m.package for m in manifest.modules}) == 21


def test_manifest_rejects_forward_prerequisites(tmp_path, root):
    text = (root / "tinytorch_base" / "manifest.toml").read_text()
    bad = text.replace('prerequisites = ["01"]\npackage = "tinytorch.core.activations"',
                       'prerequisites = ["05"]\npackage = "tinytorch.core.activations"')
    assert bad != text
    path = tmp_path / "manifest.toml"
    path.write_text(bad)
    with pytest.raises(ManifestError, match="no forward dependencies"):
        load_manifest(path)


def test_manifest_lookup_by_number_name_or_slug(manifest):
    assert manifest.module("1").slug == manifest.module("01_tensor").slug == manifest.module("tensor").slug
    with pytest.raises(KeyError, match="no module"):
        manifest.module("42")


def test_the_package_keeps_descriptions_but_not_the_teaching_notes(root, manifest):
    notes = []
    for module in manifest.available_modules:
        for number, line in enumerate((root / module.package_file).read_text().splitlines(), start=1):
            if line.lstrip().startswith(("TODO:", "HINT:")):
                notes.append(f"{module.package_file}:{number}: {line.strip()}")
    assert not notes, "the exported package must read as a library; teaching notes stay in the modules:\n" + "\n".join(notes)
    tensor_source = (root / "modules" / "01_tensor" / "tensor.py").read_text()
    assert "TODO:" in tensor_source and "HINT:" in tensor_source, "the module files keep them"


def test_strip_teaching_notes_removes_whole_notes_and_nothing_else():
    code = '''def f(x):
    """Double x.

    Works on tensors too.

    TODO: return x twice.
          (a continuation line)
    HINT: `x + x`.
    """
    # TODO: a comment stays
    text = """
    TODO: a string that is not a docstring stays
    """
    return x + x
'''
    stripped = strip_teaching_notes(code)
    assert stripped == '''def f(x):
    """Double x.

    Works on tensors too.
    """
    # TODO: a comment stays
    text = """
    TODO: a string that is not a docstring stays
    """
    return x + x'''
