"""What every milestone script shares: the command line, the story, the bar, the exit code.

A milestone reproduces a result from the history of ML with the learner's own TinyTorch. Each
script prints what it reproduces (the manifest's title and year, plus the people), the measured
result next to its bar, and exits 0 only when every bar is met:

    from _common import Milestone

    milestone = Milestone("xor", people="...", story="...")
    args = milestone.parse_args()
    ...
    milestone.check("MLP training accuracy", f"{accuracy:.1%}", "100%", accuracy == 1.0)
    return milestone.finish()

    if __name__ == "__main__":
        run(main, "xor")

Title, year and bar come from `tinytorch_base/manifest.toml`, the one list that the CLI reads
too, so the script and the CLI never disagree. `run` turns a learner's unfinished module (a
stub that raises NotImplementedError) into a short message instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # `python milestones/xor.py` puts milestones/ on the path, not the project: add the project
    # so that the milestone runs the learner's own exported `tinytorch` from this checkout.
    sys.path.insert(0, str(ROOT))

from tinytorch_base.manifest import load_manifest  # noqa: E402  (the project's one manifest reader)

MANIFEST = ROOT / "tinytorch_base" / "manifest.toml"


def milestone_entry(name: str):
    """The manifest's entry for milestone `name` (title, year, bar, requires, ...)."""
    return load_manifest(MANIFEST).milestone(name)


def run(main, name: str) -> None:
    """Run a milestone's `main()` and exit with its code; explain a missing module implementation."""
    try:
        code = main()
    except NotImplementedError as error:
        requires = ", ".join(milestone_entry(name).requires)
        print(f"\nresult: milestone {name} cannot run yet: {error}", file=sys.stderr)
        print(f"It uses modules {requires}: complete each one (tito module complete NN), then run it again.",
              file=sys.stderr)
        code = 2
    raise SystemExit(code)


class Milestone:
    """Prints a milestone's story, collects its checks against the bar, returns the exit code."""

    def __init__(self, name: str, people: str, story: str):
        entry = milestone_entry(name)
        self.name = name
        self.title = entry.title
        self.year = entry.year
        self.bar = entry.bar
        self.people = people
        self.story = story
        self.checks: list[tuple[str, str, str, bool]] = []
        self._start = time.perf_counter()

    def parser(self) -> argparse.ArgumentParser:
        """The shared options; a script may add its own before calling `parse_args`."""
        parser = argparse.ArgumentParser(
            prog=f"milestones/{self.name}.py",
            description=f"Milestone '{self.name}': {self.title} ({self.year}). Bar: {self.bar}.",
        )
        parser.add_argument("--quick", action="store_true", help="a small, fast variant (seconds) for tests")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        return parser

    def parse_args(self, parser: argparse.ArgumentParser | None = None, argv=None) -> argparse.Namespace:
        args = (parser or self.parser()).parse_args(argv)
        self.intro(quick=args.quick)
        return args

    def intro(self, quick: bool = False) -> None:
        print(f"Milestone {self.name}: {self.title} ({self.year})")
        print(f"  who:  {self.people}")
        for line in self.story.strip().splitlines():
            print(f"  {line.strip()}")
        print(f"  bar:  {self.bar}" + ("  [quick mode]" if quick else ""))
        print()

    def step(self, message: str) -> None:
        """A line of progress while the milestone runs."""
        print(f"  {message}", flush=True)

    def check(self, what: str, measured: str, bar: str, passed: bool) -> bool:
        """Record and print one measured result against its bar."""
        self.checks.append((what, measured, bar, bool(passed)))
        verdict = "ok" if passed else "MISSED"
        print(f"measured: {what} = {measured}  |  bar: {bar}  |  {verdict}")
        return bool(passed)

    def finish(self) -> int:
        """Print the verdict; 0 when every check met its bar, 1 otherwise (the process exit code)."""
        seconds = time.perf_counter() - self._start
        if not self.checks:
            print(f"result: milestone {self.name} recorded no measurement, so it cannot pass")
            return 1
        missed = [what for what, _, _, passed in self.checks if not passed]
        if missed:
            print(f"result: bar MISSED ({', '.join(missed)}) in {seconds:.1f} s")
            return 1
        print(f"result: bar met, {len(self.checks)} of {len(self.checks)} checks, in {seconds:.1f} s")
        return 0
