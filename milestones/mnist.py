"""Milestone `mnist`: a multi-layer perceptron trained by back-propagation reads handwritten digits.

Rumelhart, Hinton and Williams (1986) showed that back-propagating errors trains the hidden
layers of a network; LeCun, Cortes and Burges' MNIST (1998) became the benchmark where that
idea was measured for decades: 60,000 training and 10,000 test digits, 28x28 grey pixels. A
plain MLP with two hidden layers reaches about 98% on it. This script runs the whole pipeline
that the Foundation tier builds, with nothing but TinyTorch:

    MNIST files (module 08) -> ToTensor + Normalize -> DataLoader (shuffled batches)
    -> MLP 784-512-256-10 with ReLU (modules 02, 03) -> CrossEntropyLoss (04), autograd (05)
    -> Adam with a cosine schedule (06) -> Trainer: fit, best checkpoint, evaluate_model (07)

    python milestones/mnist.py [--quick] [--seed N] [--data DIR] [--download] [--epochs N] [--out DIR]

Data: the four MNIST .gz files in DIR/mnist/, where DIR is --data, else $TINYTORCH_DATA, else
~/.cache/tinytorch (see the README's Data section). 5,000 training images are held out as the
validation set that picks the best epoch; the test split is used once, at the end.

Bar (full run, 4 epochs): at least 97.5% accuracy on the 10,000 test images. `--quick` trains on
9,000 images for 2 epochs and tests on the first 2,000 test images; its bar is 88% (a smoke
test of the pipeline: chance is 10%, the full run reaches about 98%).
Outputs (best checkpoint, training-history PNG) go to --out (default runs/mnist).
"""

from __future__ import annotations

from _common import (
    ROOT,
    Milestone,
    first_images,
    fit_and_test,
    hold_out,
    load_split,
    run,
)

import tinytorch.core.autograd  # noqa: F401  (importing it turns on Tensor.backward())
from tinytorch.core.dataloader import (
    DATA_ENV,
    MNIST,
    MNIST_MEAN,
    MNIST_STD,
    Compose,
    DataLoader,
    Normalize,
    ToTensor,
    data_dir,
)
from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam, CosineAnnealingLR
from tinytorch.core.tensor import manual_seed
from tinytorch.core.training import Trainer

STORY = """
Back-propagation (Rumelhart, Hinton and Williams, 1986) trains the hidden layers of a network.
MNIST (LeCun, Cortes and Burges, 1998): 70,000 handwritten digits, 28x28 pixels, 10 classes.
An MLP with two hidden layers, trained with the full pipeline, reads them at about 98%.
"""

FULL = {"epochs": 4, "train_images": None, "test_images": None, "bar": 0.975}
QUICK = {"epochs": 2, "train_images": 10_000, "test_images": 2_000, "bar": 0.88}
VALIDATION_IMAGES = {"full": 5_000, "quick": 1_000}
BATCH_SIZE, LEARNING_RATE = 128, 1e-3
HIDDEN = (512, 256)


def build_mlp(hidden=HIDDEN, in_features=28 * 28, classes=10):
    """Flatten -> [Linear -> ReLU] per hidden width -> Linear to the 10 class scores."""
    layers, width = [Flatten()], in_features
    for size in hidden:
        layers += [Linear(width, size), ReLU()]
        width = size
    return Sequential(*layers, Linear(width, classes))


def mnist_splits(data, download, seed, quick):
    """(training, validation, test) sets, normalised; validation held out of the training split."""
    settings = QUICK if quick else FULL
    transform = Compose([ToTensor(), Normalize(MNIST_MEAN, MNIST_STD)])
    train_split = load_split(MNIST, data, True, download, transform)
    test_set = first_images(load_split(MNIST, data, False, download, transform), settings["test_images"])
    train_set, val_set = hold_out(train_split, VALIDATION_IMAGES["quick" if quick else "full"],
                                  settings["train_images"], seed, transform)
    return train_set, val_set, test_set


def main(argv=None) -> int:
    milestone = Milestone(
        "mnist",
        people="David Rumelhart, Geoffrey Hinton and Ronald Williams (1986); "
               "Yann LeCun, Corinna Cortes and Christopher Burges (MNIST, 1998)",
        story=STORY,
    )
    parser = milestone.parser()
    parser.add_argument("--data", metavar="DIR", default=None,
                        help=f"data folder holding mnist/ (default ${DATA_ENV}, else ~/.cache/tinytorch)")
    parser.add_argument("--download", action="store_true", help="download MNIST if it is missing")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 4, quick 2)")
    parser.add_argument("--out", metavar="DIR", default=str(ROOT / "runs" / "mnist"),
                        help="folder for the best checkpoint and the history plot (default runs/mnist)")
    args = milestone.parse_args(parser, argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be at least 1, got {args.epochs}")
        settings["epochs"] = args.epochs
    epochs = settings["epochs"]

    train_set, val_set, test_set = mnist_splits(args.data, args.download, args.seed, args.quick)
    milestone.step(f"data: MNIST from {data_dir(args.data) / 'mnist'}: {len(train_set):,} training, "
                   f"{len(val_set):,} validation (held out of the training split), {len(test_set):,} test images")
    milestone.step(f"pipeline: ToTensor + Normalize(mean {MNIST_MEAN[0]}, std {MNIST_STD[0]}), "
                   f"DataLoader(batch {BATCH_SIZE}, shuffle, seed {args.seed})")

    manual_seed(args.seed)
    model = build_mlp()
    optimizer = Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)  # the Trainer steps it once per epoch
    loss_fn = CrossEntropyLoss()
    trainer = Trainer(model, optimizer, loss_fn, scheduler=scheduler)
    parameters = sum(p.numel() for p in model.parameters())
    widths = " -> ".join(str(n) for n in (28 * 28, *HIDDEN, 10))
    milestone.step(f"model: MLP {widths} (ReLU), {parameters:,} parameters")
    milestone.step(f"training: {epochs} epochs, CrossEntropyLoss, Adam lr {LEARNING_RATE:g}, "
                   "cosine decay stepped once per epoch")
    print()

    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, seed=args.seed)
    loaders = (train_loader, DataLoader(val_set, batch_size=1000), DataLoader(test_set, batch_size=1000))
    results, _ = fit_and_test(milestone, trainer, loaders, epochs, args.out, "mnist",
                              "MLP on MNIST (TinyTorch)", num_classes=10)
    recall = results["per_class"]["recall"]
    per_digit = "  ".join(f"{digit}:{value:.1%}" for digit, value in enumerate(recall))
    milestone.step(f"test accuracy per digit: {per_digit}")
    milestone.step(f"test: {results['samples']:,} images of the test split, loss {results['loss']:.4f}, "
                   f"macro F1 {results['f1']:.4f}")
    print()
    test_accuracy = results["accuracy"]
    name = "test accuracy" + (" (quick)" if args.quick else "")
    milestone.check(name, f"{test_accuracy:.2%}", f">= {settings['bar']:.1%}", test_accuracy >= settings["bar"])
    return milestone.finish()


if __name__ == "__main__":
    run(main, "mnist")
