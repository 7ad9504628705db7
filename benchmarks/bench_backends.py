"""Benchmark: module 18's kernel backends on the existing workloads, each against PyTorch.

For each workload, TinyTorch runs with no kernel backend (every op runs its own module's NumPy
code), with module 18's fused NumPy kernels (`use_backend("numpy")`) and, where the `accel`
extra is installed, with its numba kernels; PyTorch runs the same model from the same weights.
Each candidate is timed alone in processes of its own (benchmarks/_timing.py). Workloads:

  mlp-step     784-256-128-10 ReLU MLP, batch 128, cross-entropy, Adam   (goal <= 0.7x PyTorch)
  mlp-infer    the same MLP, one image, no_grad                          (goal <= 0.5x)
  cnn-step     the CIFAR-10 milestone's CNN, batch 64, SGD               (goal <= 1.5x)
               (with numba, also with BatchNorm2d + ReLU fused: module 18's fuse_batchnorm_relu)
  gpt-step     module 13's GPT (tinygpt config), AdamW + clipping        (goal <= 1.2x)

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_backends.py [--only mlp-step,gpt-step]

Thread counts come from the environment and are printed with the figures: on a shared two-core
machine a second thread mostly waits for a busy core, so set both to 1 to compare the frameworks
rather than the scheduler. The GPT written from nn layers has its own script, bench_nn_gpt_step.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "milestones"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import bench_cnn_step
import bench_gpt_step
import bench_mlp_step
from _timing import compare, machine_summary, print_table

from tinytorch.core import acceleration
from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor, use_backend

GOALS = {"mlp-step": 0.7, "mlp-infer": 0.5, "cnn-step": 1.5, "gpt-step": 1.2}


def on_backend(function, backend):
    def run():
        with use_backend(backend):
            return function()

    return run


def mlp_step(torch, backend):
    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128))
    step, model = bench_mlp_step.tinytorch_step(batch)
    return on_backend(step, backend), bench_mlp_step.torch_step(batch, model, torch)


def mlp_infer(torch, backend):
    _, model = bench_mlp_step.tinytorch_step((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)))
    image = np.random.default_rng(1).standard_normal((1, 784)).astype(np.float32)
    ours = Tensor(image)
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                 torch.nn.ReLU(), torch.nn.Linear(128, 10))
    theirs.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in model.state_dict().items()})
    their_image = torch.from_numpy(image)

    def tinytorch_infer():
        with no_grad():
            return model(ours)

    def torch_infer():
        with torch.no_grad():
            return theirs(their_image)

    with no_grad(), torch.no_grad():
        assert np.allclose(model(ours).numpy(), theirs(their_image).numpy(), atol=1e-5), "the two MLPs disagree"
    return on_backend(tinytorch_infer, backend), torch_infer


def cnn_step(torch, backend, fuse=False):
    with use_backend(backend):  # the first-step loss check runs on the backend too
        candidates, _ = bench_cnn_step.training_step_candidates(torch, 64, fuse=fuse)
    return on_backend(candidates["tinytorch"], backend), candidates["pytorch"]


def fused_cnn_step(torch, backend):
    """The CNN step with BatchNorm2d + ReLU fused (module 18's BatchNormReLU2d): a numba kernel does both."""
    return cnn_step(torch, backend, fuse=True)


def gpt_step(torch, backend):
    rng = np.random.default_rng(0)
    shape = (bench_gpt_step.BATCH_SIZE, bench_gpt_step.BLOCK_SIZE)
    x, y = (rng.integers(0, bench_gpt_step.VOCAB_SIZE, size=shape, dtype=np.int64) for _ in range(2))
    ours = bench_gpt_step.tinytorch_model()
    theirs = bench_gpt_step.torch_model(torch)
    theirs.load_state_dict({name: torch.from_numpy(array) for name, array in ours.state_dict().items()})
    step, _ = bench_gpt_step.tinytorch_candidates(ours, x, y, 1)
    their_step, _ = bench_gpt_step.torch_candidates(torch, theirs, x, y, 1)
    return on_backend(step, backend), their_step


WORKLOADS = {"mlp-step": (mlp_step, 30, 5), "mlp-infer": (mlp_infer, 2000, 100),
             "cnn-step": (cnn_step, 5, 2), "gpt-step": (gpt_step, 10, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per candidate (default 3)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_backends: PyTorch is the reference here and is not installed (pip install torch)")
        return 1
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"machine: {machine_summary()}; torch threads {torch.get_num_threads()}, {threads}")
    backends = [None] + acceleration.backends()
    for name in args.only.split(","):
        build, repeats, warmup = WORKLOADS[name]
        candidates = {}
        for backend in backends:
            ours, theirs = build(torch, backend)
            candidates["tinytorch" if backend is None else f"tinytorch+{backend}"] = ours
            if name == "cnn-step" and backend == "numba":
                candidates["tinytorch+numba, BN+ReLU fused"] = fused_cnn_step(torch, backend)[0]
        candidates["pytorch"] = theirs
        results = compare(candidates, repeats=repeats, warmup=warmup, rounds=args.rounds)
        ratio = print_table(results, baseline="pytorch", title=f"{name} (load {os.getloadavg()[0]:.1f})")
        best = min((c for c in ratio if c != "pytorch"), key=ratio.get)
        verdict = "meets" if ratio[best] <= GOALS[name] else "misses"
        print(f"  fastest TinyTorch ({best}) / PyTorch = {ratio[best]:.2f}x ({verdict} the goal of at most {GOALS[name]}x)")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
