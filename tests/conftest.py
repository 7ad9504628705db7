"""Shared test settings: tests import the project's own `tinytorch` (the repository root is on sys.path)."""

import os

from hypothesis import Phase, settings

# No shrinking: a learner's stub fails every example, and shrinking each failure costs minutes.
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
