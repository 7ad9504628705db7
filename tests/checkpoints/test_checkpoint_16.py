"""Checkpoint 16 (Compression): Can I prune and distill a model without losing what it learned?

Capability: prune a trained model to 90% sparsity with masks that fine-tuning cannot undo, store it
in CSR in fewer bytes, remove whole channels to get a smaller model that computes what the kept
channels computed, replace a layer by its low-rank factors, and train a student on a distillation
loss whose gradient reaches it.
"""

import copy

import numpy as np

import tinytorch.core.autograd  # noqa: F401  (backward())
from tinytorch.core.autograd import no_grad
from tinytorch.core.compression import (
    MaskedOptimizer,
    distillation_loss,
    factorize_linear,
    magnitude_prune,
    prune_channels,
    replace_module,
    sparsity,
    to_csr,
)
from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import Adam
from tinytorch.core.spatial import BatchNorm2d, Conv2d, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed


def test_i_can_prune_compress_and_distill():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)) * 2
    labels = rng.integers(0, 4, 256)
    x = Tensor((centres[labels] + rng.standard_normal((256, 16))).astype(np.float32))
    manual_seed(0)
    model = Sequential(Linear(16, 64), ReLU(), Linear(64, 64), ReLU(), Linear(64, 4))
    optimizer = Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    teacher = copy.deepcopy(model).eval()

    pruner = magnitude_prune(model, 0.9)
    masked = MaskedOptimizer(Adam(model.parameters(), lr=0.005), pruner)
    for _ in range(30):
        loss = cross_entropy(model(x), labels)
        masked.zero_grad()
        loss.backward()
        masked.step()
    assert abs(sparsity(model) - 0.9) < 0.005, "fine-tuning kept every pruned weight at zero"
    with no_grad():
        assert (model(x).numpy().argmax(axis=1) == labels).mean() > 0.95
    weight = pruner.remove()[2].weight.data
    assert to_csr(weight).nbytes < 0.3 * weight.nbytes

    manual_seed(1)
    cnn = Sequential(Conv2d(3, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                     Conv2d(8, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), Flatten(), Linear(8 * 16, 3)).eval()
    small, kept = prune_channels(cnn, 0.5)
    assert small[0].weight.shape == (4, 3, 3, 3) and small[8].weight.shape == (3, 4 * 16)
    images = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    zeroed = copy.deepcopy(cnn)
    for index, name in ((0, "0"), (4, "4")):
        removed = np.setdiff1d(np.arange(8), kept[name])
        zeroed[index].weight.data[removed] = 0
        zeroed[index + 1].weight.data[removed] = 0
        zeroed[index + 1].bias.data[removed] = 0
    with no_grad():
        np.testing.assert_allclose(small(images).numpy(), zeroed(images).numpy(), rtol=1e-5, atol=1e-5)

    with no_grad():
        before = teacher(x).numpy()
    replace_module(teacher, "0", factorize_linear(teacher[0], 16))  # full rank of a 64 x 16 weight
    with no_grad():
        np.testing.assert_allclose(teacher(x).numpy(), before, rtol=1e-4, atol=1e-4)
    student = Sequential(Linear(16, 8), ReLU(), Linear(8, 4))
    with no_grad():
        soft = teacher(x)
    loss = distillation_loss(student(x), soft, labels, temperature=4.0, alpha=0.9)
    loss.backward()
    assert all(p.grad is not None for p in student.parameters()), "the distillation loss is in the graph"
