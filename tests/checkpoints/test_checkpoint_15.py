"""Checkpoint 15 (Quantization): Can I make a model 4x smaller with INT8 and keep its accuracy?

Capability: quantize a trained model on a calibration split into int8 layers (int8 weights,
int32 biases, int8 x int8 products accumulated in int32) whose measured bytes, in memory and in
the saved file, are about a quarter of the float32 model's, and whose test accuracy is within a
point of it.
"""

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.dataloader import DataLoader, TensorDataset
from tinytorch.core.layers import Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.quantization import (
    QuantizedLinear,
    checkpoint_file_bytes,
    model_bytes,
    quantize,
)
from tinytorch.core.tensor import Tensor, manual_seed


def test_i_can_make_a_model_4x_smaller_with_int8_and_keep_its_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, 128)).astype(np.float32)
    labels = rng.integers(0, 10, 3000)
    inputs = centres[labels] + 0.6 * rng.standard_normal((3000, 128)).astype(np.float32)
    train, calibration, test = slice(0, 2000), slice(2000, 2500), slice(2500, 3000)
    manual_seed(0)
    model = Sequential(Linear(128, 512), ReLU(), Linear(512, 256), ReLU(), Linear(256, 10))
    optimizer, loss_fn = Adam(model.parameters(), lr=3e-3), CrossEntropyLoss()
    for _ in range(40):
        loss = loss_fn(model(inputs[train]), labels[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    int8 = quantize(model, DataLoader(TensorDataset(Tensor(inputs[calibration])), batch_size=100))
    assert all(isinstance(int8[i], QuantizedLinear) and int8[i].weight.dtype == np.int8 for i in (0, 2, 4))
    assert model_bytes(model) / model_bytes(int8) >= 3.8
    assert checkpoint_file_bytes(model, tmp_path / "f32.safetensors") / checkpoint_file_bytes(int8, tmp_path / "i8.safetensors") >= 3.6
    with no_grad():
        float_accuracy = (model(inputs[test]).numpy().argmax(1) == labels[test]).mean()
        int8_accuracy = (int8(inputs[test]).numpy().argmax(1) == labels[test]).mean()
    assert float_accuracy >= 0.9 and int8_accuracy >= float_accuracy - 0.01
