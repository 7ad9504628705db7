"""Module 16's measurements on the trained milestone models and their real test splits.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py csr       # CSR bytes and the sparse product
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py mnist     # MNIST MLP: pruning, fine-tuning, low rank
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py channels  # CIFAR CNN without 50% of its channels
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py speed     # dense against pruned CNN, each alone
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py distill   # CIFAR student with and without teacher

Inputs: runs/mnist/mnist_best.safetensors and runs/cifar10/cifar10_best.safetensors (the
milestones' best checkpoints: `tito milestone run mnist`, `tito milestone run cifar10`), the data
in $TINYTORCH_DATA. Every accuracy is measured on the full test split (10,000 images); the
fine-tuning and training data is the milestone's training split without its validation images.
Outputs (pruned models, sparse files) go to runs/compression/. Missing checkpoints or data are
errors that say what to run; nothing falls back to other data.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "milestones"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _common import hold_out, load_split
from _timing import compare, machine_summary, print_table

import tinytorch.core.autograd  # noqa: F401  (turns on Tensor.backward())
from tinytorch.core.autograd import no_grad
from tinytorch.core.compression import (
    CubicSparsity,
    FactorizedLinear,
    MaskedOptimizer,
    Pruner,
    SparseLinear,
    count_parameters,
    csr_break_even_sparsity,
    factorize_linear,
    load_sparse_state_dict,
    low_rank_break_even,
    magnitude_masks,
    magnitude_prune,
    prune_channels,
    replace_module,
    sparse_state_dict,
    sparsity,
    to_csr,
    train_student,
)
from tinytorch.core.dataloader import (
    CIFAR10,
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST,
    MNIST_MEAN,
    MNIST_STD,
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    ToTensor,
)
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss, cross_entropy
from tinytorch.core.optimizers import SGD, Adam, CosineAnnealingLR, CosineWarmupLR
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import (
    Trainer,
    evaluate_model,
    load_checkpoint,
    load_state,
    save_state,
)

OUT = ROOT / "runs" / "compression"
MNIST_CHECKPOINT = ROOT / "runs" / "mnist" / "mnist_best.safetensors"
CIFAR_CHECKPOINT = ROOT / "runs" / "cifar10" / "cifar10_best.safetensors"
PRUNED_CNN = OUT / "cifar10_channels50.safetensors"


def checkpoint_or_exit(path, milestone):
    if not path.exists():
        raise SystemExit(f"error: {path} is missing; train it first: python milestones/{milestone}.py")
    return path


def file_bytes(state):
    """Bytes of `state` saved as safetensors (module 07's save_state), on disk."""
    with tempfile.TemporaryDirectory() as folder:
        return save_state(Path(folder) / "state.safetensors", state).stat().st_size


def array_bytes(state):
    return sum(np.asarray(array).nbytes for array in state.values())


# ---- MNIST MLP ----------------------------------------------------------------------------------
def mnist_data():
    transform = Compose([ToTensor(), Normalize(MNIST_MEAN, MNIST_STD)])
    train_split = load_split(MNIST, None, True, False, transform)
    test_set = load_split(MNIST, None, False, False, transform)
    train_set, _ = hold_out(train_split, 5_000, None, 0, transform)  # the milestone's split (seed 0)
    return train_set, test_set


def load_mnist_mlp():
    from mnist import build_mlp

    model = build_mlp()
    load_checkpoint(checkpoint_or_exit(MNIST_CHECKPOINT, "mnist"), model=model)
    return model.eval()


def accuracy(model, test_loader):
    return evaluate_model(model, test_loader)["accuracy"]


def run_mnist(args):
    print(machine_summary(), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    train_set, test_set = mnist_data()
    test_loader = DataLoader(test_set, batch_size=1000)
    model = load_mnist_mlp()
    dense_accuracy = accuracy(model, test_loader)
    dense_state = model.state_dict()
    print(f"dense MLP: test accuracy {dense_accuracy:.2%}, {count_parameters(model):,} parameters, "
          f"{array_bytes(dense_state):,} bytes of arrays, file {file_bytes(dense_state):,} bytes")

    # One-shot: global against per-layer, no fine-tuning.
    for target in (0.5, 0.8, 0.9, 0.95, 0.98):
        row = []
        for scope in ("global", "layer"):
            pruned = load_mnist_mlp()
            magnitude_prune(pruned, target, scope)
            row.append(accuracy(pruned, test_loader))
        print(f"one-shot {target:.0%}: global {row[0]:.2%}, per layer {row[1]:.2%} (no fine-tuning)")
    pruned = load_mnist_mlp()
    pruner = magnitude_prune(pruned, 0.9)
    print("90% global, share pruned per layer: " + ", ".join(
        f"{name} {1 - mask.mean():.1%} of {mask.size:,}" for name, mask in pruner.masks.items()))

    # Prune and fine-tune with the masks re-applied after every step.
    results = {}
    for target, schedule in ((0.9, "one-shot"), (0.95, "one-shot"), (0.95, "gradual")):
        model = load_mnist_mlp()
        loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=1)
        optimizer = Adam(model.parameters(), lr=args.mnist_lr)
        scheduler = CosineAnnealingLR(optimizer, T_max=args.mnist_epochs)
        if schedule == "one-shot":
            pruner = magnitude_prune(model, target)
            masked = MaskedOptimizer(optimizer, pruner)
            one_shot = f"one-shot {accuracy(model, test_loader):.2%}"
        else:  # Zhu and Gupta: from 0 to the target over the first 60% of the steps, every 20 steps
            pruner = Pruner(model)
            cubic = CubicSparsity(target, 0, int(0.6 * args.mnist_epochs * len(loader)), frequency=20)
            masked = MaskedOptimizer(optimizer, pruner, schedule=cubic)
            one_shot = f"{cubic!r}"
        trainer = Trainer(model, masked, CrossEntropyLoss(), scheduler=scheduler, verbose=False)
        start = time.perf_counter()
        trainer.fit(loader, epochs=args.mnist_epochs)
        seconds = time.perf_counter() - start
        tuned = accuracy(model, test_loader)
        pruner.remove()
        state = sparse_state_dict(model)
        path = save_state(OUT / f"mnist_sparse{round(target * 100)}_{schedule}.safetensors", state)
        results[target, schedule] = tuned
        print(f"{target:.0%} global ({schedule}): {one_shot}, after {args.mnist_epochs} epochs of "
              f"masked fine-tuning ({seconds:.0f} s) {tuned:.2%} ({100 * (tuned - dense_accuracy):+.2f} points); "
              f"sparsity measured {sparsity(model):.2%}; CSR arrays {array_bytes(state):,} bytes, file "
              f"{path.stat().st_size:,} bytes ({file_bytes(dense_state) / path.stat().st_size:.1f}x smaller)",
              flush=True)
        reloaded = load_mnist_mlp()
        load_sparse_state_dict(reloaded, load_state(path))
        assert accuracy(reloaded, test_loader) == tuned, "the sparse file reloads to the same accuracy"

    # The sparse product against the dense one, on the 90% model's layers.
    sparse_model = load_mnist_mlp()
    load_sparse_state_dict(sparse_model, load_state(OUT / "mnist_sparse90_one-shot.safetensors"))
    as_csr = Sequential(*[SparseLinear.from_linear(layer) if isinstance(layer, Linear) else layer
                          for layer in sparse_model])
    images = next(iter(test_loader))[0]
    for batch in (1, 128):
        x = Tensor(images.data[:batch].reshape(batch, -1))
        with no_grad():
            np.testing.assert_allclose(as_csr(x).numpy(), sparse_model(x).numpy(), rtol=1e-4, atol=1e-4)
            times = alternate({"dense": lambda x=x: sparse_model(x), "CSR": lambda x=x: as_csr(x)},
                              repeats=200 if batch == 1 else 40)
        print(f"MLP forward at 90% sparsity, batch {batch}: dense {times['dense']:.3f} ms, CSR {times['CSR']:.3f} ms "
              f"({times['dense'] / times['CSR']:.2f}x)")

    # Low-rank factorisation of the first layer (784 -> 512): rank against accuracy and weights.
    layer_name = "1"
    base = load_mnist_mlp()
    first = base[1]
    print(f"low rank, layer {layer_name} ({first.out_features} x {first.in_features}): pays below rank "
          f"{low_rank_break_even(first.out_features, first.in_features):.0f}")
    for rank in (16, 32, 64, 128, 256):
        model = load_mnist_mlp()
        replace_module(model, layer_name, factorize_linear(model[1], rank))
        assert isinstance(model[1], FactorizedLinear)
        one_shot = accuracy(model, test_loader)
        line = (f"  rank {rank:>3}: {count_parameters(model[1]):,} parameters against {count_parameters(first):,}; "
                f"test {one_shot:.2%} without fine-tuning")
        if rank in (32, 64):
            optimizer = Adam(model.parameters(), lr=args.mnist_lr)
            Trainer(model, optimizer, CrossEntropyLoss(), verbose=False).fit(
                DataLoader(train_set, batch_size=128, shuffle=True, seed=1), epochs=1)
            line += f", {accuracy(model, test_loader):.2%} after 1 epoch of fine-tuning"
        print(line)
    return results


def alternate(candidates, repeats):
    """Median ms of each callable, calls alternating (the same framework, the same thread pool)."""
    samples = {name: [] for name in candidates}
    for function in candidates.values():
        function()
    for round_number in range(repeats):
        names = list(candidates) if round_number % 2 == 0 else list(candidates)[::-1]
        for name in names:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(values)) for name, values in samples.items()}


# ---- the sparse product on its own ----------------------------------------------------------------
def run_csr(args):
    print(machine_summary(), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((512, 784)).astype(np.float32)
    print(f"512 x 784 float32, int32 indices: CSR pays above {csr_break_even_sparsity(512, 784):.2%} sparsity")
    for target in (0.5, 0.8, 0.9, 0.95, 0.99):
        pruned = weight * magnitude_masks({"w": weight}, target)["w"]
        matrix = to_csr(pruned)
        row = [f"sparsity {target:.0%}: CSR {matrix.nbytes / pruned.nbytes:.2f}x the dense bytes"]
        for batch in (1, 128):
            x = rng.standard_normal((batch, 784)).astype(np.float32)  # a batch of inputs: y = x @ W.T
            times = alternate({"dense": lambda w=pruned, x=x: x @ w.T,
                               "CSR": lambda m=matrix, x=x: m.times_transposed(x)}, repeats=100)
            row.append(f"batch {batch}: dense {times['dense']:.3f} ms, CSR {times['CSR']:.3f} ms")
        print("; ".join(row))


# ---- CIFAR CNN ----------------------------------------------------------------------------------
def cifar_data(train_images=None, seed=0):
    evaluation = Compose([ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    augmentation = Compose([RandomCrop(32, padding=4, seed=seed), RandomHorizontalFlip(seed=seed + 1),
                            ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    train_split = load_split(CIFAR10, None, True, False, augmentation)
    test_set = load_split(CIFAR10, None, False, False, evaluation)
    train_set, _ = hold_out(train_split, 2_000, None, 0, evaluation)  # the milestone's split (seed 0)
    if train_images is not None:
        train_set = Subset(train_set, np.arange(min(train_images, len(train_set))))
    return train_set, test_set


def load_cifar_cnn(blocks=None):
    from cifar10_model import build_cifar_cnn

    model = build_cifar_cnn() if blocks is None else build_cifar_cnn(blocks=blocks)
    load_checkpoint(checkpoint_or_exit(CIFAR_CHECKPOINT, "cifar10"), model=model)
    return model.eval()


def blocks_of(model):
    """The (channels, pool) blocks of a milestone CNN, read from its layers."""
    from tinytorch.core.spatial import Conv2d, MaxPool2d

    layers, blocks = list(model), []
    for i, layer in enumerate(layers):
        if isinstance(layer, Conv2d):
            blocks.append((layer.out_channels, i + 3 < len(layers) and isinstance(layers[i + 3], MaxPool2d)))
    return tuple(blocks)


def fine_tune_cnn(model, train_set, epochs, lr, seed=0):
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=seed)
    scheduler = CosineWarmupLR(optimizer, warmup_steps=max(1, len(loader) // 10), total_steps=epochs * len(loader),
                               min_lr=1e-4)
    trainer = Trainer(model, optimizer, CrossEntropyLoss(label_smoothing=0.1), scheduler=scheduler,
                      scheduler_interval="step", verbose=False)
    start = time.perf_counter()
    history = trainer.fit(loader, epochs=epochs)
    return time.perf_counter() - start, history


def run_channels(args):
    print(machine_summary(), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    train_set, test_set = cifar_data(args.train_images)
    test_loader = DataLoader(test_set, batch_size=500)
    dense = load_cifar_cnn()
    dense_accuracy = accuracy(dense, test_loader)
    dense_state = dense.state_dict()
    print(f"dense CNN: test accuracy {dense_accuracy:.2%}, {count_parameters(dense):,} parameters, "
          f"file {file_bytes(dense_state):,} bytes")
    pruned, _ = prune_channels(dense, args.fraction, criterion=args.criterion)
    print(f"removed {args.fraction:.0%} of the channels of every conv ({args.criterion}): blocks "
          f"{blocks_of(dense)} -> {blocks_of(pruned)}; {count_parameters(pruned):,} parameters")
    print(f"  without fine-tuning: {accuracy(pruned, test_loader):.2%}")
    cpu = time.process_time()
    if args.teacher:  # fine-tune on the distillation loss, the dense model as the teacher
        optimizer = SGD(pruned.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=0)
        scheduler = CosineWarmupLR(optimizer, warmup_steps=max(1, len(loader) // 10),
                                   total_steps=args.epochs * len(loader), min_lr=1e-4)
        start = time.perf_counter()
        losses = train_student(pruned, loader, optimizer, args.epochs, teacher=dense, temperature=args.temperature,
                               alpha=args.alpha, scheduler=scheduler)
        seconds, how = time.perf_counter() - start, f"distillation from the dense model (T {args.temperature:g}, alpha {args.alpha:g})"
    else:
        seconds, history = fine_tune_cnn(pruned, train_set, args.epochs, args.lr)
        losses, how = history["train_loss"], "cross-entropy"
    cpu = time.process_time() - cpu
    tuned = accuracy(pruned.eval(), test_loader)
    print(f"  after {args.epochs} epochs of fine-tuning ({how}) on {len(train_set):,} images ({seconds / 60:.1f} min, "
          f"{cpu / 60:.1f} CPU min; train loss per epoch {[round(v, 3) for v in losses]}): {tuned:.2%} "
          f"({100 * (tuned - dense_accuracy):+.2f} points)", flush=True)
    path = save_state(PRUNED_CNN, pruned.state_dict())
    print(f"  file {path.stat().st_size:,} bytes against {file_bytes(dense_state):,}; saved to {path}")
    x = Tensor(np.asarray(next(iter(test_loader))[0].data[:100]))
    with no_grad():
        times = alternate({"dense": lambda: dense(x), "pruned": lambda: pruned(x)}, repeats=10)
    print(f"  inference, batch 100 (alternating in one process): dense {times['dense']:.1f} ms, pruned "
          f"{times['pruned']:.1f} ms: {times['dense'] / times['pruned']:.2f}x faster (benchmark: `speed`)")


def run_speed(args):
    """Dense against pruned CNN, each timed alone in its own processes (benchmarks/_timing.py)."""
    if not PRUNED_CNN.exists():
        raise SystemExit(f"error: {PRUNED_CNN} is missing; run `python benchmarks/bench_compression.py channels` first")
    state = load_state(PRUNED_CNN)
    from cifar10_model import build_cifar_cnn

    blocks = tuple((int(state[f"{i}.weight"].shape[0]), pool) for i, pool in
                   zip(sorted({int(k.split(".")[0]) for k in state if k.endswith("weight") and state[k].ndim == 4}),
                       (True, True, True, False)))
    pruned = build_cifar_cnn(blocks=blocks)
    pruned.load_state_dict(state)
    dense = load_cifar_cnn()
    pruned.eval()
    rng = np.random.default_rng(0)
    print(machine_summary(), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
          f"blocks {blocks_of(dense)} -> {blocks}")
    for batch in (1, 100):
        x = Tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))

        def forward(model, x=x):
            with no_grad():
                model(x)

        results = compare({"dense": lambda: forward(dense), "pruned 50%": lambda: forward(pruned)},
                          repeats=40 if batch == 1 else 10, warmup=3, rounds=3)
        print_table(results, "dense", title=f"CIFAR CNN inference, batch {batch}")


# ---- distillation ----------------------------------------------------------------------------------
STUDENT_BLOCKS = ((16, True), (32, True), (64, True), (64, False))


def run_distill(args):
    from cifar10_model import build_cifar_cnn

    print(machine_summary(), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    train_set, test_set = cifar_data(args.train_images, seed=args.seed)
    test_loader = DataLoader(test_set, batch_size=500)
    teacher = load_cifar_cnn()
    print(f"teacher: {count_parameters(teacher):,} parameters, test {accuracy(teacher, test_loader):.2%}")
    results = {}
    for name in args.runs.split(","):
        manual_seed(args.seed)
        student = build_cifar_cnn(blocks=STUDENT_BLOCKS)
        optimizer = SGD(student.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=args.seed)
        scheduler = CosineWarmupLR(optimizer, warmup_steps=max(1, int(0.25 * args.epochs * len(loader))),
                                   total_steps=args.epochs * len(loader), min_lr=1e-4)
        start, cpu = time.perf_counter(), time.process_time()
        if name == "distilled":
            losses = train_student(student, loader, optimizer, args.epochs, teacher=teacher,
                                   temperature=args.temperature, alpha=args.alpha, scheduler=scheduler)
        elif name == "alone":
            losses = train_student(student, loader, optimizer, args.epochs, scheduler=scheduler)
        elif name == "alone-smoothed":
            losses = train_student(student, loader, optimizer, args.epochs, scheduler=scheduler,
                                   hard_loss=lambda logits, labels: cross_entropy(logits, labels, label_smoothing=0.1))
        else:
            raise SystemExit(f"error: unknown run {name!r}; use distilled, alone or alone-smoothed")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        results[name] = accuracy(student, test_loader)
        print(f"student {STUDENT_BLOCKS} ({count_parameters(student):,} parameters), {name}: {args.epochs} epochs of "
              f"{len(train_set):,} images in {seconds / 60:.1f} min ({cpu / 60:.1f} CPU min), loss per epoch {[round(v, 3) for v in losses]}: "
              f"test {results[name]:.2%}", flush=True)
    if "distilled" in results:
        for name, value in results.items():
            if name != "distilled":
                print(f"distilled - {name}: {100 * (results['distilled'] - value):+.2f} points")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("csr", "mnist", "channels", "speed", "distill"))
    parser.add_argument("--mnist-epochs", type=int, default=2)
    parser.add_argument("--mnist-lr", type=float, default=2e-4)
    parser.add_argument("--fraction", type=float, default=0.5, help="channels: share of each conv's channels removed")
    parser.add_argument("--criterion", default="l1", choices=("l1", "bn"))
    parser.add_argument("--teacher", action="store_true", help="channels: fine-tune by distillation from the dense model")
    parser.add_argument("--epochs", type=int, default=3, help="channels / distill: training epochs")
    parser.add_argument("--lr", type=float, default=0.02, help="channels / distill: peak SGD learning rate")
    parser.add_argument("--train-images", type=int, default=None, help="channels / distill: first N training images")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--runs", default="distilled,alone", help="distill: comma-separated runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    {"csr": run_csr, "mnist": run_mnist, "channels": run_channels, "speed": run_speed,
     "distill": run_distill}[args.what](args)


if __name__ == "__main__":
    main()
