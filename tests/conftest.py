"""Shared test settings: tests import the project's own `tinytorch` (the repository root is on sys.path)."""

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
