"""Checkpoint 08 (Data): Can I feed real datasets to a model efficiently?

Capability: wrap arrays in a dataset and iterate shuffled mini-batches that cover every sample.
"""

import numpy as np

from tinytorch.core.dataloader import DataLoader, TensorDataset
from tinytorch.core.tensor import Tensor


def test_i_can_iterate_shuffled_mini_batches():
    features = np.arange(20, dtype=np.float32).reshape(10, 2)
    labels = np.arange(10)
    loader = DataLoader(TensorDataset(Tensor(features), Tensor(labels)), batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    seen = []
    for batch_features, batch_labels in loader:
        assert batch_features.shape[1:] == (2,) and batch_features.shape[0] == batch_labels.shape[0] <= 4
        np.testing.assert_array_equal(batch_features.numpy(), features[batch_labels.numpy()])
        seen += batch_labels.numpy().tolist()
    assert sorted(seen) == list(range(10)), "one epoch visits every sample once"
    assert seen != list(range(10)), "shuffled"
