"""Checkpoint 03 (Components): Can I build the layers that neural networks are made of?

Capability: build a layer and a small network, run them, and find their parameters.
"""

import numpy as np

from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor, manual_seed


def test_i_can_run_a_linear_layer():
    manual_seed(0)
    layer = Linear(4, 3)
    inputs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    outputs = layer(Tensor(inputs))
    expected = inputs @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert len(list(layer.parameters())) == 2
    assert sum(p.numel() for p in layer.parameters()) == 4 * 3 + 3


def test_i_can_stack_layers_into_a_network():
    manual_seed(0)
    network = Sequential(Linear(8, 16), Linear(16, 2))
    assert network(Tensor(np.ones((7, 8), dtype=np.float32))).shape == (7, 2)
    assert sum(p.numel() for p in network.parameters()) == 8 * 16 + 16 + 16 * 2 + 2
