"""Checkpoint 11 (Representation): Can I represent tokens and their positions as learned vectors?

Capability: look token ids up in an embedding table and add position information.
"""

import numpy as np

from tinytorch.core.embeddings import Embedding, sinusoidal_encoding
from tinytorch.core.tensor import Tensor, manual_seed


def test_i_can_look_up_token_vectors():
    manual_seed(0)
    table = Embedding(10, 4)
    ids = np.array([[1, 5, 1], [9, 0, 2]])
    vectors = table(Tensor(ids))
    assert vectors.shape == (2, 3, 4)
    np.testing.assert_array_equal(vectors.numpy(), table.weight.numpy()[ids])


def test_i_can_encode_positions():
    encoding = sinusoidal_encoding(16, 8)
    encoding = np.asarray(getattr(encoding, "data", encoding))  # a Tensor or an array
    assert encoding.shape == (16, 8)
    positions = np.arange(16)[:, None]
    np.testing.assert_allclose(encoding[:, 0], np.sin(positions[:, 0]), atol=1e-6)
    assert len({row.tobytes() for row in encoding}) == 16, "every position gets its own code"
