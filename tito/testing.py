"""Running a module's tests against the project's exported package, with true counts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestReport:
    passed: int
    failed: int
    errors: int
    skipped: int
    returncode: int
    output: str
    failures: tuple[str, ...]  # "test name: first line of the failure", one per failing test
    failure_details: tuple[str, ...] = ()  # the full report of each failure, same order

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.errors == 0 and self.passed > 0

    @property
    def summary(self) -> str:
        """The counts in the one line every command prints."""
        return (f"tests: {self.passed} passed, {self.failed} failed, {self.errors} errors, "
                f"{self.skipped} skipped (of {self.total})")


def project_env(root: Path) -> dict[str, str]:
    """Environment in which `import tinytorch` resolves to the project at `root`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def run_tests(root: Path, paths: list[Path], extra: list[str] | None = None, stream: bool = False) -> TestReport:
    """Run pytest on `paths` (relative to root) in a fresh interpreter; count from its JUnit XML."""
    with tempfile.TemporaryDirectory(prefix="tito-tests-") as scratch:
        junit = Path(scratch) / "report.xml"
        command = [
            sys.executable, "-m", "pytest", *map(str, paths), "-q", "-p", "no:cacheprovider",
            f"--junitxml={junit}", *(extra or []),
        ]
        completed = subprocess.run(
            command, cwd=root, env=project_env(root), text=True,
            stdout=None if stream else subprocess.PIPE, stderr=subprocess.STDOUT if not stream else None,
        )
        counts, failures, details = _parse_junit(junit)
    return TestReport(
        passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        failed=counts["failures"],
        errors=counts["errors"],
        skipped=counts["skipped"],
        returncode=completed.returncode,
        output=completed.stdout or "",
        failures=tuple(failures),
        failure_details=tuple(details),
    )


def _parse_junit(path: Path) -> tuple[dict[str, int], list[str], list[str]]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failures: list[str] = []
    details: list[str] = []
    if not path.exists():  # pytest could not start at all
        return counts, failures, details
    tree = ElementTree.parse(path)
    for suite in tree.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    for case in tree.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append(f"{case.get('name')}: {message[0] if message else '(no message)'}")
            details.append(f"{problem.get('message') or ''}\n{problem.text or ''}")
    return counts, failures, details
