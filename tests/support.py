"""Shared test helpers: numerical gradient checks and PyTorch parity.

Every module whose operations have gradients tests them the same way:

    from tests.support import check_gradients, assert_matches_torch

    def test_linear_gradients():
        check_gradients(lambda x, w, b: x @ w + b, (4, 3), (3, 2), (2,))

    def test_linear_matches_torch():
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal((3, 2), dtype=np.float32)
        assert_matches_torch(lambda x, w: x @ w, lambda x, w: x @ w, x, w)

The helpers use the framework only through its public API (`Tensor`, `backward`, `.grad`), and
importing this file switches autograd on (it imports `tinytorch.core.autograd`).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (registers the backward rules and the engine)
from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor


def torch_or_skip():
    """The `torch` module, or skip the calling test cleanly when PyTorch is not installed."""
    return pytest.importorskip("torch")


def numerical_gradient(f, inputs, eps=1e-6):
    """Central-difference gradient of the scalar function `f(*inputs)`, in float64.

    `f` takes NumPy arrays and returns a number; `inputs` is a list of arrays. Each element is
    moved by +eps and -eps in turn: grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), whose
    error is O(eps^2). Returns one float64 array per input, of the input's shape. The arrays
    passed in are not modified (the function works on float64 copies).
    """
    arrays = [np.array(a, dtype=np.float64, order="C") for a in inputs]  # C order: reshape(-1) is a view
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array)
        flat, flat_gradient = array.reshape(-1), gradient.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            above = float(f(*arrays))
            flat[i] = original - eps
            below = float(f(*arrays))
            flat[i] = original
            flat_gradient[i] = (above - below) / (2 * eps)
        gradients.append(gradient)
    return gradients


def _as_checked_input(spec, rng):
    """A shape tuple -> random normal float64 array; a floating array -> float64 (layout kept)."""
    if isinstance(spec, tuple):
        return rng.standard_normal(spec)
    if isinstance(spec, (np.ndarray, np.floating)) and spec.dtype.kind == "f":
        return np.asarray(spec).astype(np.float64, copy=False)
    return None


def check_gradients(fn, *shapes_or_arrays, rng=None, atol=1e-6, rtol=1e-5, eps=1e-6):
    """Check the gradients that `backward()` gives for `fn` against central differences.

    fn: takes one argument per entry of `shapes_or_arrays` and returns a Tensor.
    shapes_or_arrays: each entry is
        - a shape tuple: a random normal float64 input of that shape, checked;
        - a floating-point NumPy array: used as float64 (a transposed or sliced view stays
          non-contiguous, so rules are tested on strided inputs), checked;
        - anything else (an integer index array, a Tensor, a Python number): passed to `fn`
          unchanged and not checked.
    rng: a np.random.Generator (default: seeded with 0) for the inputs drawn from shapes and
        for the random cotangent.

    The check: draw a random cotangent c of the output's shape and call `out.backward(c)`,
    which computes the gradient of sum(out * c) — a random contraction catches rules that
    would pass with an all-ones seed (a transposed or shuffled gradient, say). The reference
    is the same contraction, differentiated numerically in float64. Raises AssertionError
    naming the input and the largest difference. Returns the analytic gradients (float64).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = [_as_checked_input(spec, rng) for spec in shapes_or_arrays]
    checked = [i for i, a in enumerate(arrays) if a is not None]
    if not checked:
        raise ValueError("check_gradients: give at least one shape or floating-point array to check")

    def call(values):
        arguments = list(shapes_or_arrays)
        for i, value in zip(checked, values):
            arguments[i] = value
        return fn(*arguments)

    leaves = [Tensor(arrays[i], dtype=np.float64, requires_grad=True) for i in checked]
    output = call(leaves)
    assert isinstance(output, Tensor), f"check_gradients: fn must return a Tensor, got {type(output).__name__}"
    assert output.dtype == np.float64, f"check_gradients: float64 inputs gave a {output.dtype} output"
    cotangent = rng.standard_normal(output.shape)
    output.backward(cotangent)

    def contracted(*values):
        with no_grad():
            result = call([Tensor(v, dtype=np.float64) for v in values])
        return np.sum(result.data * cotangent)

    numerical = numerical_gradient(contracted, [arrays[i] for i in checked], eps=eps)
    analytic = []
    for position, (leaf, expected) in enumerate(zip(leaves, numerical)):
        index = checked[position]
        assert leaf.grad is not None, f"check_gradients: input {index} received no gradient"
        assert leaf.grad.shape == leaf.shape, (
            f"check_gradients: input {index} has shape {leaf.shape} but its gradient has shape {leaf.grad.shape}"
        )
        assert leaf.grad.dtype == np.float64, f"check_gradients: input {index}'s gradient is {leaf.grad.dtype}"
        np.testing.assert_allclose(
            leaf.grad, expected, atol=atol, rtol=rtol,
            err_msg=f"gradient of input {index} (shape {leaf.shape}): backward() vs central differences",
        )
        analytic.append(leaf.grad)
    return analytic


def assert_matches_torch(tt_fn, torch_fn, *arrays, atol=1e-5, rtol=1e-4, rng=None):
    """Run the same computation in TinyTorch and PyTorch; compare the outputs and the gradients.

    tt_fn receives Tensors, torch_fn receives torch tensors, one per entry of `arrays`. Each
    floating-point array becomes a leaf that requires a gradient in both frameworks (dtype kept:
    float32 arrays test float32 parity); other arrays (integer indices, boolean masks) are passed
    as tensors without gradient. The outputs must match; then both are given the same random
    cotangent and backward() runs in both; every gradient must match too. Skips the test when
    PyTorch is not installed.
    """
    torch = torch_or_skip()
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = [np.asarray(a) for a in arrays]
    differentiable = [a.dtype.kind == "f" for a in arrays]
    ours = [Tensor(a, dtype=a.dtype, requires_grad=d) for a, d in zip(arrays, differentiable)]
    theirs = [torch.tensor(a, requires_grad=d) for a, d in zip(arrays, differentiable)]
    our_output, their_output = tt_fn(*ours), torch_fn(*theirs)
    their_values = their_output.detach().numpy()
    assert our_output.shape == tuple(their_values.shape), (
        f"output shape {our_output.shape}, PyTorch's {tuple(their_values.shape)}"
    )
    np.testing.assert_allclose(our_output.numpy(), their_values, atol=atol, rtol=rtol,
                               err_msg="forward output differs from PyTorch's")
    if not any(differentiable):
        return
    cotangent = rng.standard_normal(our_output.shape).astype(our_output.dtype)
    our_output.backward(cotangent)
    their_output.backward(torch.from_numpy(cotangent.astype(their_values.dtype)))
    for index, (mine, reference, d) in enumerate(zip(ours, theirs, differentiable)):
        if not d:
            continue
        expected = np.zeros(reference.shape, dtype=arrays[index].dtype) if reference.grad is None else reference.grad.numpy()
        assert mine.grad is not None or not expected.any(), f"input {index} received no gradient, PyTorch's is nonzero"
        got = np.zeros_like(expected) if mine.grad is None else mine.grad
        assert got.dtype == arrays[index].dtype, f"input {index}: gradient dtype {got.dtype}, data dtype {arrays[index].dtype}"
        np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {index} (shape {mine.shape}) differs from PyTorch's")
