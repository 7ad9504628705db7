"""Shared test settings: hypothesis's profile, and the `torch` fixture that marks parity tests.

Tests import the project's own `tinytorch` (the repository root is on sys.path).

A test that compares with PyTorch asks for the `torch` fixture: it gets the module, is marked
`torch`, and is skipped cleanly where PyTorch is not installed. CI runs the whole suite without
PyTorch first (as the README's test command does), then installs it and runs only
`pytest -m torch`, so no test runs twice.
"""

import os

import pytest
from hypothesis import Phase, settings

# No shrinking: a learner's stub fails every example, and shrinking each failure costs minutes.
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TORCH_MISSING = "could not import 'torch'"


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the reference of the parity tests; skips the test where it is not installed."""
    return pytest.importorskip("torch", reason=f"{TORCH_MISSING}: pip install torch==2.13.0 (a CPU build)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "torch" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.torch)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that skips for want of PyTorch without asking for the fixture would escape `-m torch`."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and call.excinfo is not None and TORCH_MISSING in str(call.excinfo.value):
        if item.get_closest_marker("torch") is None:
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid} needs PyTorch but does not ask for the `torch` fixture; "
                               "add `torch` to its arguments so that CI's `pytest -m torch` runs it")
