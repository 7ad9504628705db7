"""Checkpoint 05 (Learning): Can I compute gradients automatically for any computation?

Capability: ask for gradients of a small computation and get the calculus answer.
"""

import numpy as np

import tinytorch.core.autograd  # noqa: F401  (installs the backward engine)
from tinytorch.core.tensor import Tensor


def grad_of(tensor):
    return np.asarray(getattr(tensor.grad, "data", tensor.grad))


def test_i_can_differentiate_a_polynomial():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x * x + 2 * x).sum().backward()
    np.testing.assert_allclose(grad_of(x), 3 * np.array([1.0, 4.0, 9.0]) + 2, rtol=1e-6)


def test_i_can_differentiate_a_linear_model():
    rng = np.random.default_rng(0)
    inputs, weights = rng.standard_normal((6, 4)), rng.standard_normal((4, 2))
    w = Tensor(weights, dtype=np.float64, requires_grad=True)
    ((Tensor(inputs, dtype=np.float64) @ w) ** 2).mean().backward()
    expected = inputs.T @ (2 * (inputs @ weights)) / (6 * 2)
    np.testing.assert_allclose(grad_of(w), expected, rtol=1e-10)
