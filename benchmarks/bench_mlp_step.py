"""Benchmark: one training step of an MLP in TinyTorch and in PyTorch, in the same run.

The step: forward through a 784-256-128-10 ReLU MLP on a batch of 128, cross-entropy loss,
backward, Adam update (and zero_grad). A third candidate writes the same step by hand in NumPy
(the reference point): TinyTorch against it is the framework's overhead. All three
start from the same weights and see the same batch; their first-step losses are compared
before anything is timed, so the columns measure the same computation. PyTorch runs on as many threads as the machine has
cores; NumPy's BLAS uses its own threads (by default, also one per core).

Goal: TinyTorch at most 0.7x PyTorch's median step time (per-op overhead is where a small
framework can win).

    python benchmarks/bench_mlp_step.py [--repeats 30] [--warmup 5] [--profile]
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mlp_step.py --threads 1

`--profile` also runs TinyTorch's step under cProfile and prints where the time goes, by
function and by file (that is, by module). On a machine that other jobs keep busy, threads
that wait for each other slow both libraries down unevenly (PyTorch's more than NumPy's, in
our runs): the single-threaded run (second line) is the steadier comparison there; quote the
default run from an idle machine.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run this checkout's tinytorch

from _timing import compare, machine_summary, print_table  # noqa: E402

import tinytorch.core.autograd  # noqa: E402,F401  (turns on backward())
from tinytorch.core.layers import Linear, ReLU, Sequential  # noqa: E402
from tinytorch.core.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.core.optimizers import Adam  # noqa: E402
from tinytorch.core.tensor import Tensor, manual_seed  # noqa: E402

SIZES = (784, 256, 128, 10)
GOAL = 0.7  # at most 0.7x PyTorch: per-op overhead is where a small framework can win


def mlp(sizes=SIZES):
    """Linear layers of the given sizes with ReLU between them, as the framework's Sequential."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(a, b), ReLU()]
    return Sequential(*layers[:-1])


def linear_layers(model):
    """The model's Linear layers, in order."""
    return [layer for layer in model if isinstance(layer, Linear)]


def tinytorch_step(batch, seed=0):
    """A closure running one TinyTorch training step, and the model it trains."""
    manual_seed(seed)
    model = mlp()
    optimizer = Adam(model.parameters(), lr=1e-3)
    loss_fn = CrossEntropyLoss()
    inputs, targets = Tensor(batch[0]), Tensor(batch[1])

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, model


def numpy_step(batch, model):
    """The same step written by hand in NumPy: the floor that a NumPy framework can reach.

    No graph, no Tensor objects: the forward pass, the gradients derived on paper, and Adam
    with in-place array updates. The gap between this and TinyTorch is the framework's overhead;
    the gap between this and PyTorch is NumPy's kernels against PyTorch's.
    """
    params = []
    for layer in linear_layers(model):
        params += [layer.weight.data.copy(), layer.bias.data.copy()]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    inputs, targets = batch
    rows = np.arange(len(targets))
    beta1, beta2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
    count = [0]

    def step():
        activations, pre_activations = [inputs], []
        for position in range(0, len(params), 2):
            z = activations[-1] @ params[position].T + params[position + 1]
            pre_activations.append(z)
            activations.append(np.maximum(z, 0) if position < len(params) - 2 else z)
        logits = activations[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[rows, targets].mean()
        grad = np.exp(log_probs)
        grad[rows, targets] -= 1
        grad /= len(targets)
        grads = [None] * len(params)
        for position in range(len(params) - 2, -1, -2):
            grads[position] = grad.T @ activations[position // 2]
            grads[position + 1] = grad.sum(axis=0)
            if position:
                grad = (grad @ params[position]) * (pre_activations[position // 2 - 1] > 0)
        count[0] += 1
        correction1, correction2 = 1 - beta1 ** count[0], math.sqrt(1 - beta2 ** count[0])
        for param, gradient, (m, v) in zip(params, grads, moments):
            m *= beta1
            m += (1 - beta1) * gradient
            v *= beta2
            v += (1 - beta2) * gradient * gradient
            work = np.sqrt(v)
            work /= correction2
            work += eps
            np.divide(m, work, out=work)
            work *= lr / correction1
            param -= work
        return float(loss)

    return step


def torch_step(batch, model, torch):
    """The same step in PyTorch, starting from `model`'s weights."""
    layers = []
    for ours in linear_layers(model):
        linear = torch.nn.Linear(ours.in_features, ours.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(ours.weight.data.copy()))
            linear.bias.copy_(torch.from_numpy(ours.bias.data.copy()))
        layers += [linear, torch.nn.ReLU()]
    reference = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    inputs, targets = torch.from_numpy(batch[0]), torch.from_numpy(batch[1])

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def profile(step, steps=200, top=25):
    """Run `step` under cProfile; print the top functions and the time per source file."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(f"\ncProfile of {steps} TinyTorch steps ({total / steps * 1e3:.2f} ms per step under the profiler)")
    print("self time by file:")
    by_file = {}
    for (filename, _, _), (_, _, self_time, _, _) in stats.stats.items():
        name = filename.replace(str(ROOT) + os.sep, "")
        by_file[name] = by_file.get(name, 0.0) + self_time
    for name, seconds in sorted(by_file.items(), key=lambda item: -item[1])[:12]:
        print(f"  {seconds / total:6.1%}  {seconds / steps * 1e3:7.3f} ms/step  {name}")
    print(f"top {top} functions by self time:")
    stats.sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per framework (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch threads (default: cores)")
    parser.add_argument("--profile", action="store_true", help="also profile TinyTorch's step with cProfile")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((args.batch, SIZES[0])).astype(np.float32),
             rng.integers(0, SIZES[-1], args.batch))
    step_tt, model = tinytorch_step(batch)
    step_np = numpy_step(batch, model)
    print(f"MLP {'-'.join(map(str, SIZES))}, batch {args.batch}: forward, cross-entropy, backward, Adam step")
    print(f"machine: {machine_summary()}")
    candidates = {"tinytorch": step_tt, "numpy (by hand)": step_np}
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing TinyTorch alone (pip install torch==2.13.0 for the ratio)")
    if torch is not None:
        torch.set_num_threads(args.threads)
        step_torch = torch_step(batch, model, torch)
        first = {"TinyTorch": step_tt(), "NumPy": step_np(), "PyTorch": step_torch()}
        if not np.allclose(list(first.values()), first["PyTorch"], rtol=1e-4):
            print(f"the first losses differ ({first}): not the same step")
            return 1
        first_tt = first["TinyTorch"]
        print(f"same computation: first-step loss {first_tt:.6f} in all three; PyTorch {torch.__version__} on "
              f"{torch.get_num_threads()} threads")
        candidates["pytorch"] = step_torch

    results = compare(candidates, repeats=args.repeats, warmup=args.warmup)
    if torch is not None:
        ratios = print_table(results, baseline="pytorch")
        ratio = ratios["tinytorch"]
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"median ratio TinyTorch / PyTorch: {ratio:.2f}x ({verdict} the goal of <= {GOAL}x)")
        print(f"framework overhead, TinyTorch / NumPy by hand: {ratio / ratios['numpy (by hand)']:.2f}x")
    else:
        print_table(results, baseline="tinytorch")
    if args.profile:
        profile(step_tt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
