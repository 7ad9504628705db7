"""Checkpoint 18 (Acceleration): Can I make the same computation run faster on the same hardware?

Capability: switch the kernels behind module 01's seam to a fused backend (NumPy, and numba where
the `accel` extra is installed) and get the same answers: a fused exact GELU with its analytic
gradient, a cache-blocked matrix product equal to BLAS for any tile size, and a training step
whose loss does not depend on the backend.
"""

import numpy as np

import tinytorch.core.autograd  # noqa: F401
from tinytorch.core.acceleration import NUMPY_KERNELS, backends
from tinytorch.core.activations import gelu
from tinytorch.core.autograd import gradcheck
from tinytorch.core.tensor import Tensor, get_backend, use_backend


def test_i_can_swap_kernels_and_keep_the_answers():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 33)), rng.standard_normal((33, 21))
    for tile in (5, 16, 64):
        np.testing.assert_allclose(NUMPY_KERNELS["blocked_matmul"](a, b, tile), a @ b, atol=1e-10)
    x = rng.standard_normal((3, 8)) * 2
    composed = gelu(Tensor(x, dtype=np.float64)).numpy()
    for backend in backends():
        with use_backend(backend):
            assert gelu(Tensor(x, dtype=np.float64, requires_grad=True))._op == "gelu"
            np.testing.assert_allclose(gelu(Tensor(x, dtype=np.float64)).numpy(), composed, atol=5e-7)
            gradcheck(gelu, x, rng=rng)
    assert get_backend() is None
