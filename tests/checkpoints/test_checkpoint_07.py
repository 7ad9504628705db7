"""Checkpoint 07 (Training): Can I train a neural network end to end and know how well it learned?

Capability: hand a model, an optimizer, a loss and a data loader to the Trainer, and measure
the result with the metrics.
"""

import numpy as np

from tinytorch.core.dataloader import DataLoader, TensorDataset
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import Trainer, accuracy


def test_i_can_train_a_classifier_and_measure_it():
    manual_seed(0)
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-2.0, 0.5, (32, 2)), rng.normal(2.0, 0.5, (32, 2))]).astype(np.float32)
    labels = np.repeat([0, 1], 32)
    loader = DataLoader(TensorDataset(Tensor(features), Tensor(labels)), batch_size=16, shuffle=True, seed=0)
    model = Linear(2, 2)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), CrossEntropyLoss(), verbose=False)
    history = trainer.fit(loader, epochs=20)
    assert history["train_loss"][-1] < history["train_loss"][0] / 4, "the loss falls"
    assert accuracy(model(Tensor(features)), Tensor(labels)) == 1.0, "two separated blobs are learned"
