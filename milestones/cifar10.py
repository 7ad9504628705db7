"""Milestone `cifar10`: a convolutional network, written from scratch, recognises CIFAR-10 objects.

LeCun, Bottou, Bengio and Haffner's LeNet-5 (1998) read digits with convolutions (weights shared
across positions) and pooling. Krizhevsky's CIFAR-10 (2009) asks for more: 60,000 colour photos,
32x32, of ten kinds of object. A modern small CNN adds batch normalisation (Ioffe and Szegedy,
2015), ReLU, data augmentation, label smoothing (Szegedy et al., 2016) and a one-cycle learning
rate (Smith, 2018). This is the course's North Star: that network, in the learner's own
TinyTorch, at 75% or more in half an hour of training on a 2-core CPU. The script runs this
code, in spirit the North Star snippet of the course:

    train_set = CIFAR10(train=True, transform=Compose([RandomCrop(32, padding=4),
                        RandomHorizontalFlip(), ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)]))
    model = build_cifar_cnn()   # Sequential of Conv2d/BatchNorm2d/ReLU/MaxPool2d, then Linear
    fuse_batchnorm_relu(model)  # module 18: one op per BatchNorm2d + ReLU pair
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    trainer = Trainer(model, optimizer, CrossEntropyLoss(label_smoothing=0.1))
    with use_backend("numba"):  # module 18's compiled kernels (the accel extra); without it, the plain ops
        history = trainer.fit(train_loader, val_dataloader=val_loader, epochs=22,
                              save_best=True, checkpoint_path="runs/cifar10/cifar10_best.safetensors")
        results = evaluate_model(FlipAveraged(model), test_loader)  # each image and its mirror
    plot_training_history(history, "runs/cifar10/cifar10_history.png")

    python milestones/cifar10.py [--quick | --long] [--seed N] [--data DIR] [--download]
                                 [--epochs N] [--out DIR] [--backend auto|numba|numpy|none]

Data: DIR/cifar-10-batches-py/ (or cifar-10-python.tar.gz, extracted on first use), where DIR is
--data, else $TINYTORCH_DATA, else ~/.cache/tinytorch. (The figures in the README were measured
on a JPEG-quality-75 copy of CIFAR-10; report such figures as "CIFAR-10 (JPEG q75 copy)".) 2,000
training images are held out as the validation set that picks the best epoch; the 10,000 test
images are used once, at the end.

Recipe (the PyTorch reference on the course's 2-core machine: 75% after 4 epochs, about 11
minutes; 80% after 7; 84.1% after 10, about 30 minutes): batch 128, SGD with Nesterov momentum
0.9, weight decay 5e-4, label smoothing 0.1, and a one-cycle learning rate stepped every batch
(linear warmup over the first quarter to 0.1, then a cosine down to 1e-4). Two things buy the
accuracy beyond PyTorch's half hour. Speed: an epoch takes about 61 s here with module 18's
compiled kernels (--backend auto takes numba when the accel extra is installed) and each
BatchNorm2d + ReLU fused, 75 s with the plain ops (one epoch measured; 22 would take about
28 min), so 22 epochs fit in the half hour that bought 7 when this milestone was first written
(3.4 min an epoch then). And test-time augmentation: the test split is measured with
FlipAveraged, the mean of the logits for each image and its mirror image (training flips at
random, so both views are photos the network has learnt to read); the one-view accuracy is
printed next to it.

Bars: default, 22 epochs: test accuracy >= 75% and training (fit, validation included) <= 30
minutes; the design's goal for this run is 85%. Measured here on CIFAR-10 (JPEG q75 copy),
2026-12-02, two BLAS threads, numba: 85.83% (one view 84.71%) after 22.3 min of training
(60.8 s an epoch). The same model and recipe trained 7 epochs without module 18 reached 80.64%
in 24.0 min, and 16 epochs 83.70% (52.4 min). --long, 14 epochs of a wider, deeper network
(LONG_BLOCKS: six conv layers, 64-64-128-128-256-256 channels, 1,187,274 parameters, 5.3x the
FLOPs): >= 84% in <= 60 minutes; measured 87.54% (one view 87.19%) after 55.2 min of training
(236.8 s an epoch), where 17 epochs of the default model with a 192-channel last block had
reached 84.21% in 55.9 min. The design's goal for --long, 90% in an hour, is not reached.
--quick (a smoke test, about a minute):
1,024 training images in batches of 64, 3 epochs with the peak rate at 0.01 (a 12-batch warmup
to 0.1 throws this network's loss above 5, in PyTorch too), the first 500 test images,
accuracy >= 25% (chance is 10%).
Outputs: the best checkpoint and a training-history PNG in --out (default runs/cifar10).
"""

from __future__ import annotations

from _common import (
    ROOT,
    Milestone,
    add_backend_option,
    first_images,
    fit_and_test,
    hold_out,
    kernel_backend,
    load_split,
    run,
)
from cifar10_model import BLOCKS, LONG_BLOCKS, build_cifar_cnn

import tinytorch.core.autograd  # noqa: F401  (importing it turns on Tensor.backward())
from tinytorch.core.dataloader import (
    CIFAR10,
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATA_ENV,
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
    data_dir,
)
from tinytorch.core.layers import Module
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, CosineWarmupLR
from tinytorch.core.tensor import manual_seed, use_backend
from tinytorch.core.training import Trainer, evaluate_model

STORY = """
LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998): convolutions and pooling read digits.
CIFAR-10 (Krizhevsky, 2009): 60,000 colour photos, 32x32, ten kinds of object.
A modern small CNN (batch norm, ReLU, augmentation, one-cycle) written from scratch, on 2 CPU cores.
"""

SETTINGS = {  # epochs, the model's conv blocks, data (None = all), batch, and the bars: accuracy and minutes of training
    "default": {"epochs": 22, "blocks": BLOCKS, "train_images": None, "test_images": None, "validation_images": 2_000,
                "batch_size": 128, "max_lr": 0.1, "accuracy_bar": 0.75, "minutes_bar": 30},
    "long": {"epochs": 14, "blocks": LONG_BLOCKS, "train_images": None, "test_images": None, "validation_images": 2_000,
             "batch_size": 128, "max_lr": 0.1, "accuracy_bar": 0.84, "minutes_bar": 60},
    "quick": {"epochs": 3, "blocks": BLOCKS, "train_images": 1_088, "test_images": 500, "validation_images": 64,
              "batch_size": 64, "max_lr": 0.01, "accuracy_bar": 0.25, "minutes_bar": None},
}
MIN_LR, WARMUP_FRACTION = 1e-4, 0.25
MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING = 0.9, 5e-4, 0.1


def one_cycle(optimizer, total_steps):
    """Linear warmup to the optimizer's lr over the first quarter of the steps, then a cosine to MIN_LR."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    return CosineWarmupLR(optimizer, warmup_steps=warmup, total_steps=total_steps, min_lr=MIN_LR)


class FlipAveraged(Module):
    """Test-time augmentation: the mean of a classifier's logits for each image and its mirror image.

    Training flips half the images at random, so the network has learnt that a mirrored photo
    shows the same object; averaging both views at test time cancels part of each view's error.
    It costs a second forward pass per test image, and nothing in training.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        mirrored = images[:, :, :, ::-1]  # (N, C, H, W): reverse the width
        return (self.model(images) + self.model(mirrored)) * 0.5


def cifar_splits(data, download, seed, settings):
    """(training, validation, test) sets: the training split augmented, validation held out of it.

    Augmentation works on the uint8 pixels (a quarter of float32's bytes), then ToTensor and
    Normalize; validation and test images get the evaluation transform only. `settings` is one of
    SETTINGS (its train_images, validation_images and test_images).
    """
    evaluation = Compose([ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    augmentation = Compose([RandomCrop(32, padding=4, seed=seed), RandomHorizontalFlip(seed=seed + 1),
                            ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    train_split = load_split(CIFAR10, data, True, download, augmentation)
    test_set = first_images(load_split(CIFAR10, data, False, download, evaluation), settings["test_images"])
    train_set, val_set = hold_out(train_split, settings["validation_images"], settings["train_images"],
                                  seed, evaluation)
    return train_set, val_set, test_set


def main(argv=None) -> int:
    milestone = Milestone(
        "cifar10",
        people="Yann LeCun, Leon Bottou, Yoshua Bengio and Patrick Haffner (LeNet-5, 1998); "
               "Alex Krizhevsky (CIFAR-10, 2009)",
        story=STORY,
    )
    parser = milestone.parser()
    long = SETTINGS["long"]
    parser.add_argument("--long", action="store_true", help=f"{long['epochs']} epochs; bar >= "
                        f"{100 * long['accuracy_bar']:.0f}%% test accuracy in <= {long['minutes_bar']} min")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help=f"data folder holding {CIFAR10_FOLDER}/ (default ${DATA_ENV}, else ~/.cache/tinytorch)")
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 (170 MB) if it is missing")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default {default}, --long "
                        "{long}, quick {quick})".format(**{mode: SETTINGS[mode]["epochs"] for mode in SETTINGS}))
    parser.add_argument("--out", metavar="DIR", default=str(ROOT / "runs" / "cifar10"),
                        help="folder for the best checkpoint and the history plot (default runs/cifar10)")
    add_backend_option(parser)
    args = milestone.parse_args(parser, argv)
    if args.quick and args.long:
        parser.error("--quick and --long exclude each other; pass one of them, or neither for the default run")
    mode = "quick" if args.quick else "long" if args.long else "default"
    settings = dict(SETTINGS[mode])
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be at least 1, got {args.epochs}")
        settings["epochs"] = args.epochs
    epochs, batch_size = settings["epochs"], settings["batch_size"]
    backend = kernel_backend(parser, args.backend)
    if mode != "default":
        minutes = f" in <= {settings['minutes_bar']} min of training" if settings["minutes_bar"] else ""
        milestone.step(f"bar for --{mode}: >= {settings['accuracy_bar']:.0%} test accuracy{minutes}")

    train_set, val_set, test_set = cifar_splits(args.data, args.download, args.seed, settings)
    milestone.step(f"data: CIFAR-10 from {data_dir(args.data) / CIFAR10_FOLDER}: {len(train_set):,} training, "
                   f"{len(val_set):,} validation (held out of the training split), {len(test_set):,} test images")
    milestone.step("augmentation: RandomCrop(32, padding=4), RandomHorizontalFlip(), then ToTensor, "
                   "Normalize(CIFAR-10 channel means and stds)")

    manual_seed(args.seed)
    model = build_cifar_cnn(blocks=settings["blocks"])
    if backend is None:
        why = "--backend none" if args.backend == "none" else "numba is not installed: pip install -e '.[accel]'"
        milestone.step(f"kernels: the plain ops of modules 01-09 ({why}, or module 18 is not exported yet)")
    else:
        from tinytorch.core.acceleration import fuse_batchnorm_relu

        _, pairs = fuse_batchnorm_relu(model)  # the same parameters and state-dict names, one op per pair
        milestone.step(f"kernels: module 18's {backend} backend; {pairs} BatchNorm2d+ReLU pairs fused into one op each")
    optimizer = SGD(model.parameters(), lr=settings["max_lr"], momentum=MOMENTUM, nesterov=True,
                    weight_decay=WEIGHT_DECAY)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=args.seed)
    scheduler = one_cycle(optimizer, total_steps=epochs * len(train_loader))
    loss_fn = CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    # One-cycle changes the rate every batch, as PyTorch steps OneCycleLR after each optimizer step.
    trainer = Trainer(model, optimizer, loss_fn, scheduler=scheduler, scheduler_interval="step")
    parameters = sum(p.numel() for p in model.parameters())
    kinds = [type(layer).__name__ for layer in model]
    widths = "-".join(str(channels) for channels, _ in settings["blocks"])
    milestone.step(f"model: {kinds.count('Conv2d')} conv blocks ({widths} channels; Conv2d 3x3, BatchNorm2d, ReLU), "
                   f"{kinds.count('MaxPool2d')} MaxPool2d, a Linear classifier; {parameters:,} parameters "
                   "(milestones/cifar10_model.py)")
    milestone.step(f"training: {epochs} epochs of {len(train_loader)} batches of {batch_size}; SGD Nesterov momentum "
                   f"{MOMENTUM}, weight decay {WEIGHT_DECAY:g}, label smoothing {LABEL_SMOOTHING}; one-cycle lr: "
                   f"warmup to {settings['max_lr']:g} over {scheduler.warmup_steps} batches, cosine to {MIN_LR:g}")
    print()

    loaders = (train_loader, DataLoader(val_set, batch_size=500), DataLoader(test_set, batch_size=500))
    with use_backend(backend):
        results, seconds = fit_and_test(milestone, trainer, loaders, epochs, args.out, "cifar10",
                                        "CNN on CIFAR-10 (TinyTorch)", num_classes=len(CIFAR10_CLASSES),
                                        tested=FlipAveraged)
        single_view = evaluate_model(model, loaders[2])["accuracy"]
    train_minutes = seconds / 60
    recall = results["per_class"]["recall"]
    per_class = "  ".join(f"{name} {value:.0%}" for name, value in zip(CIFAR10_CLASSES, recall))
    milestone.step(f"test accuracy per class: {per_class}")
    milestone.step(f"test: {results['samples']:,} images of the test split, each averaged with its mirror image "
                   f"(FlipAveraged), loss {results['loss']:.4f}, macro F1 {results['f1']:.4f}; "
                   f"one view only: accuracy {single_view:.2%}")
    print()
    test_accuracy = results["accuracy"]
    name = "test accuracy" + ("" if mode == "default" else f" ({mode})")
    milestone.check(name, f"{test_accuracy:.2%}", f">= {settings['accuracy_bar']:.0%}",
                    test_accuracy >= settings["accuracy_bar"])
    if settings["minutes_bar"] is not None:
        milestone.check("training time", f"{train_minutes:.1f} min", f"<= {settings['minutes_bar']} min",
                        train_minutes <= settings["minutes_bar"])
    return milestone.finish()


if __name__ == "__main__":
    run(main, "cifar10")
