"""Checkpoint 02 (Intelligence): Can I add nonlinearity - the key to neural network intelligence?

Capability: apply the activations to tensors as a user would and get NumPy's numbers.
"""

import numpy as np

from tinytorch.core.activations import ReLU, relu, sigmoid, softmax, tanh
from tinytorch.core.tensor import Tensor

VALUES = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0], [10.0, -10.0, 1.0, 2.0, -1.0]], dtype=np.float32)


def test_i_can_bend_a_line_with_activations():
    x = Tensor(VALUES)
    np.testing.assert_allclose(relu(x).numpy(), np.maximum(VALUES, 0))
    np.testing.assert_allclose(sigmoid(x).numpy(), 1 / (1 + np.exp(-VALUES)), rtol=1e-6)
    np.testing.assert_allclose(tanh(x).numpy(), np.tanh(VALUES), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ReLU()(x).numpy(), relu(x).numpy())


def test_i_can_turn_scores_into_probabilities():
    scores = Tensor(VALUES * 100)  # large scores must not overflow
    probabilities = softmax(scores, dim=1).numpy()
    shifted = np.exp(VALUES * 100 - (VALUES * 100).max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, shifted / shifted.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
