"""Checkpoint 12 (Attention): Can I let every token look at every other token?

Capability: compute scaled dot-product attention, with and without a causal mask.
"""

import numpy as np

from tinytorch.core.attention import MultiHeadAttention, scaled_dot_product_attention
from tinytorch.core.tensor import Tensor, manual_seed


def reference_attention(q, k, v, causal):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def test_i_can_attend():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 5, 8)).astype(np.float32) for _ in range(3))
    for causal in (False, True):
        out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), is_causal=causal)
        np.testing.assert_allclose(out.numpy(), reference_attention(q, k, v, causal), rtol=1e-4, atol=1e-5)


def test_a_causal_layer_never_looks_ahead():
    manual_seed(0)
    layer = MultiHeadAttention(16, 4, causal=True)
    x = np.random.default_rng(1).standard_normal((1, 6, 16)).astype(np.float32)
    changed = x.copy()
    changed[0, -1] += 5.0  # only the last token differs
    first, second = layer(Tensor(x)).numpy(), layer(Tensor(changed)).numpy()
    np.testing.assert_allclose(first[0, :-1], second[0, :-1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(first[0, -1], second[0, -1])
