"""Checkpoint 14 (Measurement): Can I find where time and memory go?

Capability: profile a model's forward pass by op and by layer (FLOPs by the formulas, time that
adds up), and split a training step's memory into parameters, gradients, optimizer state and
activations, measured.
"""

import numpy as np

import tinytorch.core.autograd  # noqa: F401
from tinytorch.core.layers import Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.profiling import MemoryProfiler, Profiler, training_memory
from tinytorch.core.tensor import Tensor, manual_seed, randn


def test_i_can_find_where_time_and_memory_go():
    manual_seed(0)
    model = Sequential(Linear(784, 256), ReLU(), Linear(256, 10))
    x, y = randn(64, 784), Tensor(np.arange(64) % 10)
    with Profiler() as prof:
        model(x)
    assert prof.flops == 2 * 64 * 784 * 256 + 64 * 256 + 64 * 256 + 2 * 64 * 256 * 10 + 64 * 10
    biggest = max(prof.module_stats()[1:], key=lambda row: row.flops)
    assert biggest.name == "Sequential.0", "the first layer, with the widest input, does most of the work"
    assert abs(sum(r.time for r in prof.key_averages()) + prof.between_ops_time - prof.total_time) < 1e-9
    assert "thread" in prof.table(peak_gflops=100.0)

    loss_fn = CrossEntropyLoss()
    split = training_memory(model, lambda a, b: loss_fn(model(a), b), Adam(model.parameters()), x, y)
    assert split.gradients == split.parameters and split.optimizer_state == 2 * split.parameters
    assert split.activations > 0 and split.peak > split.gradients

    profiler = MemoryProfiler()
    with profiler.measure("a batch of images"):
        images = np.zeros((64, 3, 32, 32), dtype=np.float32)
    assert abs(profiler.measurements["a batch of images"].retained_bytes - images.nbytes) < 4096
