"""Checkpoint 01 (Foundation): Can I create and manipulate the building blocks of ML?

A capability test uses the exported package the way a user would: it builds a tiny piece of a
model from tensors and checks the numbers against NumPy. `tito checkpoint test 01` runs it.
"""

import numpy as np

import tinytorch
from tinytorch.core.tensor import Tensor, manual_seed, randn, zeros


def test_i_can_create_tensors_from_data_and_factories():
    pixels = Tensor([[0.0, 0.5], [1.0, 0.25]])
    assert pixels.shape == (2, 2) and pixels.dtype == np.float32
    assert zeros(3, 4).numpy().sum() == 0.0
    manual_seed(7)
    first = randn(2, 3).numpy().copy()
    manual_seed(7)
    assert np.array_equal(first, randn(2, 3).numpy()), "a seed makes experiments repeatable"
    assert tinytorch.Tensor is Tensor, "`from tinytorch import Tensor` is the same class"


def test_i_can_normalise_a_batch_with_broadcasting():
    batch = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 5)).astype(np.float32)
    x = Tensor(batch)
    normalised = (x - x.mean(dim=0)) / (x.var(dim=0) ** 0.5)
    expected = (batch - batch.mean(axis=0)) / batch.std(axis=0)
    assert normalised.shape == (16, 5)
    np.testing.assert_allclose(normalised.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_i_can_run_a_linear_layer_and_classify():
    rng = np.random.default_rng(1)
    inputs, weights, bias = (rng.standard_normal(s).astype(np.float32) for s in ((8, 4), (4, 3), (3,)))
    logits = Tensor(inputs) @ Tensor(weights) + Tensor(bias)
    np.testing.assert_allclose(logits.numpy(), inputs @ weights + bias, rtol=1e-5, atol=1e-5)
    shifted = logits - logits.max(dim=1, keepdim=True).values
    probabilities = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
    np.testing.assert_allclose(probabilities.sum(dim=1).numpy(), np.ones(8), rtol=1e-5)
    predicted = probabilities.argmax(dim=1).numpy()
    assert predicted.tolist() == (inputs @ weights + bias).argmax(axis=1).tolist()


def test_i_can_reshape_and_batch_matrices():
    images = Tensor(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    flat = images.reshape(2, -1)
    assert flat.shape == (2, 12)
    np.testing.assert_array_equal(flat.numpy(), images.numpy().reshape(2, 12))
    batched = images @ images.transpose(1, 2)
    np.testing.assert_allclose(batched.numpy(), images.numpy() @ images.numpy().transpose(0, 2, 1))


def test_a_shape_mistake_is_explained():
    try:
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    except ValueError as error:
        assert "(2, 3)" in str(error) and "(4, 5)" in str(error)
    else:
        raise AssertionError("(2, 3) @ (4, 5) must raise a ValueError that names both shapes")
