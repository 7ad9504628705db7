"""Checkpoint 06 (Optimization): Can I turn gradients into better parameters?

Capability: minimise a loss with the optimizers, PyTorch's way (zero_grad, backward, step).
"""

import numpy as np

import tinytorch.core.autograd  # noqa: F401  (installs the backward engine)
from tinytorch.core.layers import Parameter
from tinytorch.core.optimizers import SGD, Adam


def minimise(optimizer_class, steps, **options):
    target = np.array([3.0, -1.0], dtype=np.float32)
    weights = Parameter(np.zeros(2, dtype=np.float32))
    optimizer = optimizer_class([weights], **options)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((weights - target) ** 2).sum()
        loss.backward()
        optimizer.step()
    return weights.numpy(), target


def test_i_can_descend_a_gradient():
    found, target = minimise(SGD, 100, lr=0.1)
    np.testing.assert_allclose(found, target, atol=1e-4)


def test_i_can_use_adaptive_steps():
    found, target = minimise(Adam, 400, lr=0.05)
    np.testing.assert_allclose(found, target, atol=1e-2)
