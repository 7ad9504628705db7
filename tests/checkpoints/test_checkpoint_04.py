"""Checkpoint 04 (Objectives): Can I measure how wrong a model's predictions are?

Capability: score predictions with the standard losses and get the textbook numbers.
"""

import numpy as np

from tinytorch.core.losses import MSELoss, cross_entropy
from tinytorch.core.tensor import Tensor


def test_i_can_measure_a_regression_error():
    predictions = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    targets = np.array([1.0, 3.0, 2.0], dtype=np.float32)
    loss = MSELoss()(Tensor(predictions), Tensor(targets))
    assert abs(loss.item() - np.mean((predictions - targets) ** 2)) < 1e-6


def test_i_can_measure_a_classification_error():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 2, 1])
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_probabilities[np.arange(3), labels].mean()
    assert abs(cross_entropy(Tensor(logits), Tensor(labels)).item() - expected) < 1e-5
    uniform = cross_entropy(Tensor(np.zeros((4, 10), dtype=np.float32)), Tensor(np.arange(4)))
    assert abs(uniform.item() - np.log(10)) < 1e-5, "a model that knows nothing scores log(classes)"
