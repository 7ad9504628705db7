"""Shared test helpers: numerical gradient checks (the framework's gradcheck) and PyTorch parity.

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
from tinytorch.core.autograd import gradcheck, numerical_gradient  # noqa: F401  (numerical_gradient: re-exported)
from tinytorch.core.tensor import Tensor


def torch_or_skip():
    """The `torch` module, or skip the calling test cleanly when PyTorch is not installed."""
    return pytest.importorskip("torch")


# The numerical check is the framework's own (module 05 exports it as given code, not as a
# learner's exercise): one implementation serves the course and the suite.
check_gradients = gradcheck


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
