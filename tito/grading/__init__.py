"""`tito grade`: grading learners' modules in a sandbox, with hidden tests (for instructors).

- `suite`: the tests that grade a module, gathered from the instructor's edition;
- `sandbox`: bubblewrap (or its fallbacks), resource limits and the wall clock;
- `harness`: the trusted code that runs inside the sandbox (sent on its standard input);
- `grade`: exporting each learner's module into a fresh tree, running it, deciding the status;
- `outputs`: the gradebook, feedback, Gradescope results, logs and the HTML report;
- `command`: the command line (`register` adds `tito grade` to tito's parser).
"""

from tito.grading.command import register

__all__ = ["register"]
