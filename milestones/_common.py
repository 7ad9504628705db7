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
too, so the script and the CLI never disagree. Every milestone ends in `run`, which turns a
learner's unfinished module (a stub that raises NotImplementedError) and missing data
(`MissingData`) into a short message with the fix instead of a traceback.

The vision milestones (mnist, cifar10) also share `load_split`, `hold_out` and `fit_and_test`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

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


class MissingData(Exception):
    """The data is not where the milestone looked; the message says how to provide it."""


def run(main, name: str) -> None:
    """Run a milestone's `main()` and exit with its code; explain missing data or a missing module."""
    try:
        code = main()
    except MissingData as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
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
        """Parse the command line. With --quick, a path option left at its default under runs/ moves
        to runs/quick/: a smoke test must neither overwrite a full run's checkpoint nor read one
        as if it were its own (nor may a full run pick up a smoke test's weights)."""
        parser = parser or self.parser()
        args = parser.parse_args(argv)
        if args.quick:
            runs = ROOT / "runs"
            for action in parser._actions:  # argparse keeps each option's default on its action
                value = getattr(args, action.dest, None)
                if isinstance(action.default, str) and value == action.default and Path(value).is_relative_to(runs):
                    setattr(args, action.dest, str(runs / "quick" / Path(value).relative_to(runs)))
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


# ---- module 18's kernels, for the milestones that train for minutes --------------------------------
BACKENDS = ("auto", "numba", "numpy", "none")


def add_backend_option(parser):
    """--backend: which of module 18's kernel backends runs the training (default auto)."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="module 18's kernels behind the seam: numba (compiled; pip install -e '.[accel]'), "
                             "numpy (its NumPy reference kernels: right, not fast) or none (the plain ops of the "
                             "earlier modules); auto (default) takes numba when it is installed, else none")


def kernel_backend(parser, choice):
    """The backend name for `use_backend` (None for the plain ops) that --backend `choice` asks for.

    auto is numba or nothing: module 18's NumPy kernels are its reference, which it measured slower
    than the plain ops (BatchNorm + ReLU 21 ms against 11 ms on a CIFAR batch). Module 18 lies beyond
    what most milestones require: where its package file cannot be imported (a learner who has not
    exported it yet), auto runs the plain ops and an explicit choice is an error.
    """
    if choice == "none":
        return None
    try:
        from tinytorch.core.acceleration import NUMBA_AVAILABLE
    except ImportError as error:
        if choice == "auto":
            return None
        parser.error(f"--backend {choice} needs module 18 (tinytorch.core.acceleration): {error}. "
                     "Fix: complete and export module 18 (tito module complete 18), or pass --backend none")
    if choice == "auto":
        return "numba" if NUMBA_AVAILABLE else None
    if choice == "numba" and not NUMBA_AVAILABLE:
        parser.error("--backend numba needs numba, which is not installed. "
                     "Fix: pip install -e '.[accel]', or pass --backend numpy")
    return choice


# ---- what the vision milestones share ------------------------------------------------------------
# The tinytorch imports sit inside these functions: the perceptron and XOR milestones import this
# file too, before a learner has written modules 07 and 08.
def load_split(dataset_class, root, train, download, transform):
    """One split of a dataset, or MissingData that says which file to put where."""
    from tinytorch.core.dataloader import DATA_ENV, DatasetError, data_dir

    try:
        return dataset_class(root=root, train=train, download=download, transform=transform)
    except (FileNotFoundError, DatasetError) as error:
        raise MissingData(
            f"{dataset_class.__name__} could not be read from the data folder {data_dir(root)}:\n  {error}\n"
            f"Fix: put the files there, or point the milestone at the folder that holds them with "
            f"--data DIR or {DATA_ENV}=DIR, or run with --download."
        ) from None


def hold_out(train_set, validation_images, limit, seed, transform):
    """(training Subset, validation set): a seeded shuffle of the training split, cut in two.

    The validation images come from the training split (never from the test split, which
    measures the final model once) and get `transform`, the evaluation transform: no
    augmentation. `limit` keeps only that many shuffled images in all (the quick mode); a
    small split gives at most a tenth of its images to validation.
    """
    from tinytorch.core.dataloader import ArrayDataset, Subset

    order = np.random.default_rng(seed).permutation(len(train_set))[:limit]
    count = min(validation_images, len(order) // 10)
    if count == 0:
        raise MissingData(
            f"the training split has {len(order)} images, too few to hold out a validation set; "
            "the data folder holds a truncated copy of the dataset: replace it with the full files"
        )
    validation, training = order[:count], order[count:]
    validation_set = ArrayDataset(train_set.data[validation], train_set.targets[validation], transform)
    return Subset(train_set, training), validation_set


def first_images(split, count):
    """The first `count` images of a split (the quick mode's test set), or the whole split for None."""
    from tinytorch.core.dataloader import Subset

    return split if count is None else Subset(split, np.arange(min(count, len(split))))


def fit_and_test(milestone, trainer, loaders, epochs, out, stem, title, num_classes, tested=None):
    """Train, keeping the epoch that validates best, then measure those weights once on the test split.

    `loaders` is (train, validation, test). `tested` turns the trained model into the one the test
    split measures (for example test-time augmentation); by default the model itself. Prints the
    training time, the checkpoint and the history plot; returns (the results of `evaluate_model`
    on the test split, seconds of training).
    """
    from tinytorch.core.training import evaluate_model, load_checkpoint, plot_training_history

    train_loader, val_loader, test_loader = loaders
    checkpoint = Path(out) / f"{stem}_best.safetensors"
    start = time.perf_counter()
    history = trainer.fit(train_loader, val_dataloader=val_loader, epochs=epochs, save_best=True,
                          checkpoint_path=checkpoint, monitor="val_accuracy")
    seconds = time.perf_counter() - start
    print()
    best = trainer.early_stopping
    milestone.step(f"trained {epochs} epochs in {seconds / 60:.1f} min ({seconds / epochs:.1f} s per epoch); "
                   f"best validation accuracy {best.best:.2%} at epoch {best.best_epoch}")
    if best.best_epoch != trainer.current_epoch:  # an earlier epoch validated better: test its weights
        load_checkpoint(checkpoint, model=trainer.model)
    model = trainer.model if tested is None else tested(trainer.model)
    results = evaluate_model(model, test_loader, trainer.loss_fn, num_classes=num_classes)
    plot = plot_training_history(history, Path(out) / f"{stem}_history.png", title=title)
    milestone.step(f"checkpoint: {checkpoint} (epoch {best.best_epoch}); history plot: {plot}")
    return results, seconds
