"""Benchmark: what module 14's Profiler costs, on the MNIST MLP's forward pass.

The forward pass of the MLP, and the same forward pass inside `with Profiler():` (a fresh
profiler per call, its setup included), timed call by call, alternating, in one process
(`tinytorch.core.profiling.profiler_overhead`, which the module's analysis uses too). This
is the one benchmark here that interleaves its candidates on purpose: both are TinyTorch with
the same thread pool, so there is no fight between two frameworks' threads to avoid, and the
overhead sought (a few percent) is smaller than the drift between two processes on a shared
machine (separate processes, three rounds each, measured the same profiler at 10.7% and
11.4%, where alternation measures 5 to 9%). Alternating the order from round to round makes a
load that comes and goes slow both alike. The ratio of the medians is
the profiler's overhead. The goal is at most 10% on the MLP forward at the training batch size;
at batch 1 the forward is a few dozen microseconds and the overhead is the profiler's fixed cost
per event, which the last column states.

    python benchmarks/bench_profiler_overhead.py [--repeats 2000] [--warmup 50]
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_profiler_overhead.py

Two MLPs: 784-256-128-10 (module 03's, the one bench_mlp_step.py trains) and 784-512-256-10
with a Flatten in front (milestones/mnist.py's build_mlp), at batch 128 and at batch 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run this checkout's tinytorch

from _timing import machine_summary  # noqa: E402

from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential  # noqa: E402
from tinytorch.core.profiling import Profiler, blas_threads, profiler_overhead  # noqa: E402
from tinytorch.core.tensor import Tensor, manual_seed  # noqa: E402

GOAL = 0.10  # at most 10% slower under the profiler


def mlp(sizes, flatten=False):
    layers = [Flatten()] if flatten else []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(a, b), ReLU()]
    return Sequential(*layers[:-1])


def events_per_forward(model, x):
    """Ops and layer calls the profiler records in one forward pass."""
    with Profiler() as prof:
        model(x)
    ops = sum(row.calls for row in prof.key_averages())
    return ops, sum(row.calls for row in prof.module_stats())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000, help="timed calls per candidate (default 2000)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first (default 50)")
    args = parser.parse_args(argv)

    threads, source = blas_threads()
    print(f"machine: {machine_summary()}; BLAS threads: {threads} ({source})")
    print(f"{'model':<34} {'batch':>5} {'plain':>10} {'profiled':>10} {'overhead':>9} {'per event':>10}  (medians)")
    worst = 0.0
    for title, sizes, flatten in (("MLP 784-256-128-10 (module 03)", (784, 256, 128, 10), False),
                                  ("MLP 784-512-256-10 (milestone)", (784, 512, 256, 10), True)):
        for batch in (128, 1):
            manual_seed(0)
            model = mlp(sizes, flatten)
            shape = (batch, 1, 28, 28) if flatten else (batch, 784)
            x = Tensor(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))

            plain, watched = profiler_overhead(lambda model=model, x=x: model(x), args.repeats, args.warmup)
            ops, layers = events_per_forward(model, x)
            overhead = watched / plain - 1
            if batch > 1:
                worst = max(worst, overhead)
            print(f"{title:<34} {batch:>5} {plain:>8.3f}ms {watched:>8.3f}ms {overhead:>+8.1%} "
                  f"{(watched - plain) * 1e3 / (2 * layers + ops):>7.2f} us  ({ops} ops, {layers} layer calls)")
    verdict = "meets" if worst <= GOAL else "misses"
    print(f"largest overhead at batch 128: {worst:+.1%} ({verdict} the goal of <= {GOAL:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
