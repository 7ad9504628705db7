# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 18: Acceleration
#
# *Can I make the same computation run faster on the same hardware?*
#
# Module 14's profiler showed where a training step spends its time. Some of it is arithmetic
# that BLAS already does near the machine's peak (matrix products). Much of the rest is not: an
# exact GELU composed from about twenty primitives walks its input twenty times and allocates a
# new array each time; a layer norm, a cross-entropy or an Adam update does the same in smaller
# ways. This module makes that work faster **without changing the answer**, and measures each
# step on this machine:
#
# Python loops -> vectorised NumPy -> BLAS -> fused kernels with in-place buffers -> compiled
# kernels.
#
# The kernels sit behind **one seam** (module 01's `register_kernel` / `set_backend`): the
# NumPy kernels are the reference, and a compiled backend (numba, the optional `accel` extra)
# registers kernels of the same names. Operations of modules 02, 03, 04, 06, 09 and 13 ask the seam
# for a kernel and run their own code when none is active, so the same tests run over every
# backend, and a GPU backend (CuPy, say) would plug in by registering kernels of the same names.
#
# ## Learning objectives
# - Measure the ladder from Python loops to BLAS on one matrix product, and explain each rung
#   (interpreter overhead, memory traffic, cache blocking, vector instructions, threads).
# - Write a real cache-blocked matrix product whose tile size matters, and measure it against BLAS.
# - Write fused kernels with analytic backward passes (exact GELU, layer norm, cross-entropy as
#   log-softmax with NLL, the Adam/AdamW update, BatchNorm + ReLU, 2x2 max-pooling) that equal
#   the composed references and pass numerical gradient checks.
# - Compile the same kernels with numba and register them as a second backend behind the seam.
# - Measure float16 storage against float32, and BLAS threads on a shared machine.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. When every step passes:
#
# ```
# tito module complete 18
# ```
#
# exports your code to `tinytorch/core/acceleration.py` and grades it with
# `tests/modules/test_18_acceleration.py` (over every backend this machine has).

# %% [markdown]
# ## Mathematical foundations
#
# **Why a fused kernel is faster.** An elementwise operation on $n$ float32 numbers does a few
# FLOPs per element but reads and writes $8n$ bytes. A chain of $k$ such operations, each a
# separate NumPy call, moves $8kn$ bytes and allocates $k$ arrays; at a few GB/s of memory
# bandwidth that, not arithmetic, is the time. A *fused* kernel reads its input once and writes
# its output once: $8n$ bytes for the whole chain. NumPy can approach it with in-place updates
# (`np.multiply(a, b, out=a)`): fewer allocations, but still one pass per operation. A compiled
# loop does all $k$ operations on each element while it sits in a register: one pass.
#
# **Exact GELU and its derivative.** $\mathrm{GELU}(x) = x\,\Phi(x)$ with
# $\Phi(x) = \tfrac12\left(1 + \operatorname{erf}(x/\sqrt2)\right)$, and
#
# $$\frac{d}{dx}\, x\Phi(x) = \Phi(x) + x\,\varphi(x), \qquad \varphi(x) = \frac{e^{-x^2/2}}{\sqrt{2\pi}}.$$
#
# NumPy has no `erf`; module 02 builds $\Phi$ from Abramowitz & Stegun 7.1.26 (error below
# $1.5\cdot10^{-7}$). Both kernels here use the same formula and differentiate *it* exactly, so
# each gradient is the gradient of what its forward pass computes. The compiled kernel computes
# in the data's own precision: float32 activations in float32 arithmetic, which the analysis
# below also times on float64 data.
#
# **Layer norm.** With $\hat x = (x - \mu)\, r$, $r = 1/\sqrt{\sigma^2 + \epsilon}$, and
# $g = \bar y \odot \gamma$ (the cotangent times the weight), per row of $D$ values:
#
# $$\bar x = r\left(g - \operatorname{mean}(g) - \hat x \operatorname{mean}(g \odot \hat x)\right).$$
#
# **Cross-entropy as log-softmax with NLL.** $\ell_i = -\log p_{i,t_i}$ with
# $\log p = x - \max x - \log\sum e^{x - \max x}$, and $\partial \ell_i / \partial x_{ij} =
# p_{ij} - [j = t_i]$: one pass forward, one backward, no one-hot matrix.
#
# **BatchNorm + ReLU.** $y = \max(0, \gamma \hat x + \beta)$ per channel; the ReLU's mask
# ($y > 0$) cuts the cotangent before the batch-norm backward, so the fused kernel never stores
# the pre-activation.
#
# **A matrix product's two limits.** $C = AB$ with $A$ $(n \times k)$, $B$ $(k \times m)$ does
# $2nkm$ FLOPs on $4(nk + km + nm)$ bytes: its arithmetic intensity grows with the size, so a
# good kernel is limited by arithmetic, not memory, *if* it reuses each loaded number many
# times. A naive triple loop does not: it streams $B$ through the cache once per row of $A$.
# **Cache blocking** multiplies $t \times t$ tiles that fit in the cache, so each loaded number
# is used $t$ times. BLAS adds register blocking, vector instructions and threads on top.

# %%
#| export
import math

import numpy as np

from tinytorch.core.activations import (
    _ERFC_A,
    _ERFC_P,
    GELU_TANH_CUBIC,
    SQRT_2_OVER_PI,
    relu,
)
from tinytorch.core.layers import Identity, ReLU, Sequential
from tinytorch.core.profiling import register_flops
from tinytorch.core.spatial import BatchNorm2d, batch_norm
from tinytorch.core.tensor import (
    Tensor,
    as_tensor,
    available_backends,
    backend_kernel,
    register_backward,
    register_kernel,
)

try:  # the optional `accel` extra; without it the NumPy kernels are the only backend
    import numba
except ImportError:  # pragma: no cover - depends on the installation
    numba = None

NUMBA_AVAILABLE = numba is not None

# %% [markdown]
# ## Step 1: the ladder on one matrix product
#
# Three ways to compute $C = AB$ that give the same numbers:
#
# 1. **Python loops**: three nested `for` loops over Python floats. Each multiply-add costs an
#    interpreter dispatch, a boxed float and a bounds check: tens of nanoseconds for one FLOP.
# 2. **Vectorised NumPy**: broadcast $A_{ik} B_{kj}$ into an $(n, k, m)$ array and sum over
#    $k$. The loops run in C, but the intermediate array is $k$ times larger than the result:
#    the time goes to memory.
# 3. **BLAS** (`np.matmul`): blocked for the caches and registers, vectorised, multithreaded.
#
# Write the first two; the third is `a @ b`.

# %%
#| export
def matmul_python_loops(a, b):
    """C = A @ B with three Python loops over Python floats (the slowest correct way).

    TODO: convert a and b to nested lists (`.tolist()`), loop i over rows, j over columns and
          k over the shared dimension, accumulate a[i][k] * b[k][j], and return the result as
          an array of a's dtype.
    HINT: `np.array(rows, dtype=a.dtype)` turns the list of lists back into an array.
    """
    _check_matrices("matmul_python_loops", a, b)
    ### BEGIN SOLUTION
    left, right = a.tolist(), b.tolist()
    n, k, m = a.shape[0], a.shape[1], b.shape[1]
    rows = []
    for i in range(n):
        row = []
        for j in range(m):
            total = 0.0
            for p in range(k):
                total += left[i][p] * right[p][j]
            row.append(total)
        rows.append(row)
    return np.array(rows, dtype=a.dtype).reshape(n, m)
    ### END SOLUTION


def matmul_vectorised(a, b):
    """C = A @ B by broadcasting A[:, :, None] * B[None, :, :] and summing over k (no BLAS).

    TODO: multiply the two broadcast views and sum over axis 1.
    HINT: the product has shape (n, k, m); `.sum(axis=1)` leaves (n, m).
    """
    _check_matrices("matmul_vectorised", a, b)
    ### BEGIN SOLUTION
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)
    ### END SOLUTION


def _check_matrices(op, a, b):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(
            f"{op}: needs two matrices (n, k) and (k, m), got shapes {a.shape} and {b.shape}; "
            "the columns of the left must equal the rows of the right"
        )

# %%
def test_unit_matmul_ladder():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    np.testing.assert_allclose(matmul_python_loops(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(matmul_vectorised(a, b), a @ b, rtol=1e-12, atol=1e-12)
    try:
        matmul_vectorised(a, a)
    except ValueError as error:
        assert "(5, 7) and (5, 7)" in str(error)
    else:
        raise AssertionError("mismatched shapes must be refused")
    print("matmul ladder: ok")


test_unit_matmul_ladder()

# %% [markdown]
# ## Step 2: a cache-blocked matrix product
#
# Blocking splits the three loops into loops over $t \times t$ tiles and loops inside a tile:
#
# ```
# for i0 in range(0, n, t):           # a tile row of C
#     for k0 in range(0, k, t):       # a tile of the shared dimension
#         for j0 in range(0, m, t):   # a tile column of C
#             C[i0:i0+t, j0:j0+t] += A[i0:i0+t, k0:k0+t] @ B[k0:k0+t, j0:j0+t]
# ```
#
# Two versions, one per backend. The NumPy one multiplies each pair of tiles with BLAS, so the
# tile size trades Python's per-call overhead (small tiles: many calls) against the cache and
# BLAS's own blocking (large tiles). The compiled one (Step 6) runs the innermost tile product
# as scalar loops: there the tile size decides whether the tiles of $B$ stay in the L1/L2 cache,
# which is the whole point of blocking. Edges that are not a multiple of $t$ are handled by the
# slices (a slice past the end stops at the end).

# %%
#| export
def blocked_matmul_numpy(a, b, tile=64):
    """C = A @ B tile by tile: (tile x tile) blocks of A and B multiplied by BLAS and accumulated.

    TODO: check the shapes and the tile (a positive int); allocate C as zeros of the result
          dtype; loop i0, k0, j0 over range(0, size, tile) and add the tile product into C.
    HINT: `np.result_type(a, b)` is the result dtype; `c[i0:i0 + tile, j0:j0 + tile] += ...`.
    """
    _check_matrices("blocked_matmul", a, b)
    tile = _check_tile(tile)
    ### BEGIN SOLUTION
    n, k, m = a.shape[0], a.shape[1], b.shape[1]
    c = np.zeros((n, m), dtype=np.result_type(a, b))
    for i0 in range(0, n, tile):
        for k0 in range(0, k, tile):
            a_tile = a[i0:i0 + tile, k0:k0 + tile]
            for j0 in range(0, m, tile):
                c[i0:i0 + tile, j0:j0 + tile] += a_tile @ b[k0:k0 + tile, j0:j0 + tile]
    return c
    ### END SOLUTION


def _check_tile(tile):
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"blocked_matmul: tile must be a positive integer (16 to 128 is usual), got {tile!r}")
    return int(tile)

# %%
def test_unit_blocked_matmul_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((37, 50)), rng.standard_normal((50, 29))
    for tile in (1, 8, 16, 64):  # 37, 50 and 29 are no multiple of any: the edges are exercised
        np.testing.assert_allclose(blocked_matmul_numpy(a, b, tile), a @ b, rtol=1e-10, atol=1e-10)
    print("blocked matmul (NumPy tiles): ok")


test_unit_blocked_matmul_numpy()

# %% [markdown]
# ## Step 3: fused NumPy kernels, forward
#
# The reference backend: each kernel works on NumPy arrays, in as few passes as NumPy allows,
# reusing its buffers in place (`out=`), and returns what its backward kernel will need. These
# are the kernels the seam hands to the operations of earlier modules:
#
# | kernel | called by | returns |
# |---|---|---|
# | `linear(x, weight, bias)` | module 03's `Linear` (one op instead of three) | y |
# | `gelu(x, approximate)` | module 02's `gelu` | y |
# | `softmax(x)` (last axis) | module 02's `softmax` (module 05's rule differentiates it) | y |
# | `layer_norm(x, weight, bias, eps)` (last axis) | module 13's `layer_norm` | y, x_hat, rstd |
# | `cross_entropy(logits, target, reduction)` ((N, C) logits) | module 04's `cross_entropy` | loss, log_probs |
# | `max_pool2d_2x2(x)` (kernel 2, stride 2; numba only, see Step 5) | module 09's `max_pool2d` | y, winner tap 0..3 |
# | `adam_update(param, grad, m, v, step, ...)` (numba only) | module 06's `Adam` / `AdamW` | (in place) |
# | `batch_norm_relu(x, weight, bias, eps)` (training statistics; numba only, see Step 5) | this module's `BatchNormReLU2d` (Step 7) | y, x_hat, inv_std, mean |
# | `gelu_tanh(x)` (numba only: module 13's NumPy op is already the reference) | module 13's `gelu_tanh` | y, s = sigmoid(2z) |
#
# `_normal_tail_pieces` is module 02's A&S 7.1.26 on arrays; it also returns the pieces that the
# derivative reuses.

# %%
#| export
# Abramowitz & Stegun 7.1.26 for erfc(z / sqrt 2) / 2, with module 02's constants.
_TAIL_P = _ERFC_P / math.sqrt(2.0)
_TAIL_A = _ERFC_A


def _normal_tail_pieces(x):
    """P(Z > |x|) by A&S 7.1.26, with t = 1 / (1 + p|x|), the polynomial and exp(-x^2/2) for the derivative."""
    t = np.abs(x)
    t *= x.dtype.type(_TAIL_P)
    t += 1
    np.reciprocal(t, out=t)
    polynomial = np.full_like(x, _TAIL_A[4])
    for coefficient in _TAIL_A[3::-1]:
        polynomial *= t
        polynomial += x.dtype.type(coefficient)
    gaussian = np.multiply(x, x)
    gaussian *= -0.5
    np.exp(gaussian, out=gaussian)
    tail = polynomial * t
    tail *= gaussian
    tail *= 0.5
    return tail, t, polynomial, gaussian


def gelu_numpy(x, approximate="none"):
    """GELU of an array: exact (A&S erf, as module 02) or the tanh form, in a few in-place passes.

    TODO: "tanh": u = sqrt(2/pi) (x + 0.044715 x^3), y = 0.5 x (1 + tanh u), built in one buffer.
          "none": tail = _normal_tail_pieces(x)[0]; y = x * (1 - tail) where x >= 0, x * tail elsewhere.
    HINT: `np.subtract(1, tail, out=tail, where=x >= 0)` flips the tail in place where x >= 0.
    """
    ### BEGIN SOLUTION
    if approximate == "tanh":
        u = np.multiply(x, x)
        u *= x.dtype.type(GELU_TANH_CUBIC)
        u += 1
        u *= x
        u *= x.dtype.type(SQRT_2_OVER_PI)
        np.tanh(u, out=u)
        u += 1
        u *= x
        u *= 0.5
        return u
    tail = _normal_tail_pieces(x)[0]
    np.subtract(1, tail, out=tail, where=x >= 0)
    tail *= x
    return tail
    ### END SOLUTION


def linear_numpy(x, weight, bias):
    """x @ weight.T (+ bias) for x of shape (..., in): one BLAS call on the rows, bias added in place.

    TODO: flatten x to (rows, in), multiply by weight.T, add the bias in place, restore the shape.
    HINT: `x.reshape(-1, x.shape[-1]) @ weight.T` is one matrix product whatever x's rank.
    """
    ### BEGIN SOLUTION
    out = (x if x.ndim == 2 else x.reshape(-1, x.shape[-1])) @ weight.T
    if bias is not None:
        out += bias
    return out if x.ndim == 2 else out.reshape(x.shape[:-1] + (weight.shape[0],))
    ### END SOLUTION


def softmax_numpy(x):
    """Softmax over the last axis: exp(x - max) / sum, in one buffer.

    TODO: subtract the row max, exponentiate in place, divide by the row sums in place.
    HINT: `np.exp(out, out=out)`; `keepdims=True` keeps the sums broadcastable.
    """
    ### BEGIN SOLUTION
    out = x - x.max(axis=-1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out
    ### END SOLUTION


def layer_norm_numpy(x, weight, bias, eps):
    """Layer norm over the last axis: (y, x_hat, rstd), rstd of shape (..., 1); bias may be None.

    TODO: centre x by its row means, r = 1 / sqrt(mean(centred^2) + eps), x_hat = centred * r,
          y = x_hat * weight + bias.
    HINT: `keepdims=True` keeps the (..., 1) shape that broadcasts against the rows.
    """
    ### BEGIN SOLUTION
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    variance += x.dtype.type(eps)
    rstd = np.sqrt(variance, out=variance)
    np.reciprocal(rstd, out=rstd)
    centred *= rstd
    out = centred * weight
    if bias is not None:
        out += bias
    return out, centred, rstd
    ### END SOLUTION


def cross_entropy_numpy(logits, target, reduction="mean"):
    """Cross-entropy of (N, C) logits and N class indices: (loss, log_probs).

    TODO: log_probs = shifted - log(sum(exp(shifted))) with shifted = logits - row max; the
          losses are -log_probs[i, target[i]]; reduce them ("mean", "sum" or "none").
    HINT: `log_probs[np.arange(N), target]` picks one entry per row.
    """
    ### BEGIN SOLUTION
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    losses = -log_probs[np.arange(logits.shape[0]), target]
    return _reduced(losses, reduction, logits.dtype), log_probs
    ### END SOLUTION


def _reduced(losses, reduction, dtype):
    if reduction == "none":
        return losses
    total = losses.sum(dtype=dtype)
    return np.asarray(total / dtype.type(losses.shape[0]) if reduction == "mean" else total, dtype=dtype)


def max_pool2d_2x2_numpy(x):
    """2x2 max-pooling with stride 2 of (N, C, H, W), H and W even: (y, winner), winner in 0..3.

    TODO: view x as (N, C, H/2, 2, W/2, 2); take the four taps (p, q) in the order 0..3 = p*2 + q;
          keep the first maximum (a later tap wins only when strictly greater), as module 09.
    HINT: `better = tap > best; np.maximum(best, tap, out=best); winner[better] = k`.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    tiles = x.reshape(N, C, H // 2, 2, W // 2, 2)
    best = tiles[:, :, :, 0, :, 0].copy()
    winner = np.zeros(best.shape, dtype=np.int16)
    for k, (p, q) in enumerate(((0, 1), (1, 0), (1, 1)), start=1):
        tap = tiles[:, :, :, p, :, q]
        better = tap > best
        np.maximum(best, tap, out=best)
        winner[better] = k
    return best, winner
    ### END SOLUTION


def batch_norm_relu_numpy(x, weight, bias, eps):
    """relu(batch_norm(x)) with the batch's statistics over (N, C, ...): (y, x_hat, inv_std, mean).

    TODO: per channel (axis 1) mean and biased variance over every other axis; x_hat =
          (x - mean) * inv_std; y = max(0, weight * x_hat + bias).
    HINT: reshape to (N, C, L): the statistics are over axes (0, 2).
    """
    ### BEGIN SOLUTION
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1)
    mean = x3.mean(axis=(0, 2))
    x_hat = x3 - mean[:, None]
    inv_std = 1 / np.sqrt(np.mean(x_hat * x_hat, axis=(0, 2)) + x.dtype.type(eps))
    x_hat *= inv_std[:, None]
    out = x_hat * weight[:, None]
    out += bias[:, None]
    np.maximum(out, 0, out=out)
    return out.reshape(x.shape), x_hat.reshape(x.shape), inv_std, mean
    ### END SOLUTION

# %%
def test_unit_fused_forward_numpy():
    import tinytorch.core.autograd  # noqa: F401
    from tinytorch.core.activations import gelu, relu
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.spatial import batch_norm, max_pool2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.core.transformer import layer_norm_composed

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6))
    for approximate in ("none", "tanh"):
        np.testing.assert_allclose(gelu_numpy(x, approximate), gelu(Tensor(x, dtype=np.float64), approximate).numpy(), atol=1e-12)
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    out = layer_norm_numpy(x, w, b, 1e-5)[0]
    expected = layer_norm_composed(Tensor(x, dtype=np.float64), (6,), Tensor(w, dtype=np.float64), Tensor(b, dtype=np.float64))
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-12)
    target = rng.integers(0, 6, 4)
    loss, _ = cross_entropy_numpy(x, target)
    assert abs(float(loss) - cross_entropy(Tensor(x, dtype=np.float64), Tensor(target)).item()) < 1e-12
    images = rng.standard_normal((2, 3, 4, 6))
    pooled, _ = max_pool2d_2x2_numpy(images)
    np.testing.assert_array_equal(pooled, max_pool2d(Tensor(images, dtype=np.float64), 2).numpy())
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, _, _, _ = batch_norm_relu_numpy(images, gamma, beta, 1e-5)
    composed = relu(batch_norm(Tensor(images, dtype=np.float64), None, None, Tensor(gamma, dtype=np.float64),
                               Tensor(beta, dtype=np.float64), training=True))
    np.testing.assert_allclose(y, composed.numpy(), atol=1e-12)
    print("fused forward kernels (NumPy): ok")


test_unit_fused_forward_numpy()

# %% [markdown]
# ## Step 4: fused NumPy kernels, backward
#
# Each backward kernel takes the cotangent and what the forward kernel returned, and gives the
# gradients of its inputs by the formulas of the foundations. The GELU kernel differentiates the
# A&S formula itself: with $T(z) = \tfrac12 t P(t) e^{-z^2/2}$, $z = |x|$, $t = 1/(1+pz)$,
#
# $$T'(z) = \tfrac12 e^{-z^2/2}\left(-p\,t^2 \left(P(t) + t P'(t)\right) - z\, t P(t)\right), \qquad
#   y' = \begin{cases} 1 - T - x\,T'(z) & x \ge 0 \\ T - x\,T'(z) & x < 0. \end{cases}$$
#
# The Adam update has no backward, and no NumPy kernel here: module 06 already writes it as
# in-place NumPy passes over one scratch array, which is what a NumPy kernel would be. Its
# compiled kernel (Step 6) does the whole update in one pass, in module 06's order (weight decay,
# the two moments, the bias-corrected step).

# %%
#| export
def gelu_backward_numpy(grad, x, approximate="none"):
    """d GELU / dx * grad, the exact derivative of what `gelu_numpy` computes.

    TODO: "tanh": with th = tanh(u), y' = 0.5 (1 + th) + 0.5 x (1 - th^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
          "none": from `tail, t, P, gaussian = _normal_tail_pieces(x)`, P' by Horner on the derivative's
          coefficients, T' as above, y' = where(x >= 0, 1 - tail, tail) - x * T'.
    HINT: P'(t) = a2 + 2 a3 t + 3 a4 t^2 + 4 a5 t^3 and dT/dz = 0.5 * gaussian * (-p t^2 (P + t P') - |x| t P).
    """
    ### BEGIN SOLUTION
    if approximate == "tanh":
        x2 = x * x
        th = x2 * x.dtype.type(GELU_TANH_CUBIC)
        th += 1
        th *= x
        th *= x.dtype.type(SQRT_2_OVER_PI)
        np.tanh(th, out=th)
        slope = 1 - th * th
        slope *= x
        slope *= x.dtype.type(SQRT_2_OVER_PI)
        slope *= 1 + x.dtype.type(3 * GELU_TANH_CUBIC) * x2
        slope += 1 + th
        slope *= 0.5
        slope *= grad
        return slope
    tail, t, polynomial, gaussian = _normal_tail_pieces(x)
    derivative = np.full_like(x, 4 * _TAIL_A[4])
    for power, coefficient in ((3, _TAIL_A[3]), (2, _TAIL_A[2]), (1, _TAIL_A[1])):
        derivative *= t
        derivative += x.dtype.type(power * coefficient)
    derivative *= t
    derivative += polynomial  # Q'(t) = P(t) + t P'(t)
    derivative *= t * t
    derivative *= -_TAIL_P
    derivative -= np.abs(x) * t * polynomial
    derivative *= gaussian
    derivative *= 0.5  # dT/dz
    slope = np.where(x >= 0, 1 - tail, tail)
    slope -= x * derivative
    slope *= grad
    return slope
    ### END SOLUTION


def linear_backward_numpy(grad, x, weight, has_bias, needs_input_grad):
    """Gradients (x, weight[, bias]) of x @ weight.T + bias; x's only when `needs_input_grad`.

    TODO: g = grad as (rows, out); grad_x = g @ weight (shaped like x); grad_weight = g.T @ x_rows
          (already (out, in), contiguous: no transpose to copy later); grad_bias = g.sum(0).
    HINT: skipping grad_x for the first layer saves a whole matrix product.
    """
    ### BEGIN SOLUTION
    rows = grad.reshape(-1, grad.shape[-1])
    grad_x = (rows @ weight).reshape(x.shape) if needs_input_grad else None
    grads = (grad_x, rows.T @ x.reshape(-1, x.shape[-1]))
    return grads + (rows.sum(axis=0),) if has_bias else grads
    ### END SOLUTION


def layer_norm_backward_numpy(grad, x_hat, rstd, weight):
    """Gradients (x, weight, bias) of the last-axis layer norm.

    TODO: g = grad * weight; grad_x = rstd (g - mean(g) - x_hat mean(g x_hat)) over the last
          axis; grad_weight = sum of grad * x_hat and grad_bias = sum of grad over the other axes.
    HINT: `grad.reshape(-1, D).sum(axis=0)` sums over every leading axis at once.
    """
    ### BEGIN SOLUTION
    D = x_hat.shape[-1]
    g = grad * weight
    grad_x = g - g.mean(axis=-1, keepdims=True)
    grad_x -= x_hat * np.mean(g * x_hat, axis=-1, keepdims=True)
    grad_x *= rstd
    grad_weight = (grad * x_hat).reshape(-1, D).sum(axis=0)
    grad_bias = grad.reshape(-1, D).sum(axis=0)
    return grad_x, grad_weight, grad_bias
    ### END SOLUTION


def cross_entropy_backward_numpy(grad, log_probs, target, reduction="mean"):
    """d loss / d logits: (softmax - one_hot) times the cotangent (divided by N for "mean").

    TODO: p = exp(log_probs); subtract 1 at each row's target; scale every row by the
          cotangent: grad (a scalar) / N for "mean", grad for "sum", grad[i] for "none".
    HINT: `p[np.arange(N), target] -= 1`.
    """
    ### BEGIN SOLUTION
    N = log_probs.shape[0]
    p = np.exp(log_probs)
    p[np.arange(N), target] -= 1
    if reduction == "none":
        p *= grad[:, None]
    else:
        p *= grad / N if reduction == "mean" else grad
    return p
    ### END SOLUTION


def max_pool2d_2x2_backward_numpy(grad, winner):
    """The input gradient of 2x2 max-pooling: each window's cotangent at the tap that won it.

    TODO: an (N, C, Ho, 2, Wo, 2) array of zeros; write grad where winner == p * 2 + q into tap
          (p, q); reshape to (N, C, 2 Ho, 2 Wo).
    HINT: `np.multiply(grad, winner == k, out=tiles[:, :, :, p, :, q])` writes one tap.
    """
    ### BEGIN SOLUTION
    N, C, Ho, Wo = grad.shape
    tiles = np.empty((N, C, Ho, 2, Wo, 2), dtype=grad.dtype)
    for k, (p, q) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        np.multiply(grad, winner == k, out=tiles[:, :, :, p, :, q])
    return tiles.reshape(N, C, 2 * Ho, 2 * Wo)
    ### END SOLUTION


def batch_norm_relu_backward_numpy(grad, out, x_hat, inv_std, weight):
    """Gradients (x, weight, bias) of relu(batch_norm(x)) in training mode.

    TODO: g = grad where out > 0, else 0; per channel sum_g and sum_gx = sum(g x_hat);
          grad_x = weight inv_std (g - sum_g / M - x_hat sum_gx / M), M = N * L.
    HINT: reshape everything to (N, C, L); the sums are over axes (0, 2).
    """
    ### BEGIN SOLUTION
    N, C = grad.shape[:2]
    g = np.where(out > 0, grad, 0).reshape(N, C, -1)
    x3 = x_hat.reshape(N, C, -1)
    count = g.shape[0] * g.shape[2]
    sum_g = g.sum(axis=(0, 2))
    sum_gx = np.einsum("ncl,ncl->c", g, x3)
    grad_x = g - (sum_g / count)[:, None]
    grad_x -= x3 * (sum_gx / count)[:, None]
    grad_x *= (weight * inv_std)[:, None]
    return grad_x.reshape(grad.shape), sum_gx, sum_g
    ### END SOLUTION


# %%
def test_unit_fused_backward_numpy():
    from tinytorch.core.autograd import numerical_gradient

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5)) * 2
    cotangent = rng.standard_normal((3, 5))
    for approximate in ("none", "tanh"):
        (expected,) = numerical_gradient(lambda a, mode=approximate: np.sum(gelu_numpy(a, mode) * cotangent), [x])
        np.testing.assert_allclose(gelu_backward_numpy(cotangent, x, approximate), expected, atol=1e-7)
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    _, x_hat, rstd = layer_norm_numpy(x, w, b, 1e-5)
    grads = layer_norm_backward_numpy(cotangent, x_hat, rstd, w)
    expected = numerical_gradient(lambda a, c, d: np.sum(layer_norm_numpy(a, c, d, 1e-5)[0] * cotangent), [x, w, b])
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    target = rng.integers(0, 5, 3)
    _, log_probs = cross_entropy_numpy(x, target)
    (expected,) = numerical_gradient(lambda a: float(cross_entropy_numpy(a, target)[0]) * 0.7, [x])
    np.testing.assert_allclose(cross_entropy_backward_numpy(0.7, log_probs, target), expected, atol=1e-7)
    print("fused backward kernels (NumPy): ok")


test_unit_fused_backward_numpy()

# %% [markdown]
# ## Step 5: the NumPy backend behind the seam
#
# Module 01's seam keeps, per backend name, a table of kernels. `register_kernel(backend, name)`
# fills it; `set_backend(name)` (or `with use_backend(name):`) makes one active; operations ask
# `backend_kernel(name)`. With no backend active (the default), every operation runs its own
# module's code: importing this module changes nothing until you switch a backend on.
#
# Registering the NumPy kernels is given: one line per kernel name, the names of the table in
# Step 3. A backend may leave a kernel out; the operation then runs its own code. The NumPy
# backend leaves out three. `adam_update`: module 06 is already written that way. And two that
# measured slower than what they replace, since each of their NumPy passes still reads and writes
# whole arrays and module 09's versions already reuse theirs: `batch_norm_relu` (forward and
# backward of a (64, 32, 32, 32) batch: 26.1 ms against 17.2 ms for module 09's `batch_norm` and
# then `relu`) and `max_pool2d_2x2` (17.3 ms against 9.1 ms for module 09's `max_pool2d`; medians
# here). Only a compiled loop fuses them (4.5 ms and 5.1 ms, Step 6). Their NumPy functions stay,
# as the references that the compiled kernels are tested against.

# %%
#| export
NUMPY_KERNELS = {
    "linear": linear_numpy,
    "linear_backward": linear_backward_numpy,
    "softmax": softmax_numpy,
    "gelu": gelu_numpy,
    "gelu_backward": gelu_backward_numpy,
    "layer_norm": layer_norm_numpy,
    "layer_norm_backward": layer_norm_backward_numpy,
    "cross_entropy": cross_entropy_numpy,
    "cross_entropy_backward": cross_entropy_backward_numpy,
    "blocked_matmul": blocked_matmul_numpy,
}
for _name, _function in NUMPY_KERNELS.items():
    register_kernel("numpy", _name)(_function)

# %% [markdown]
# ## Step 6: compiled kernels (numba)
#
# numba compiles a Python function on NumPy arrays to machine code (through LLVM) the first
# time it is called with a given combination of dtypes, and caches it on disk (`cache=True`),
# so the next process loads it instead of compiling again. Inside a compiled function a plain
# `for` loop over array elements is as fast as C: this is where fusion pays fully, because each
# element goes through the whole formula while it is in a register, and the only memory traffic
# is reading the input and writing the output.
#
# The compiled kernels work on 2-D row views (`x.reshape(-1, D)`), serial (no `prange`): on
# this shared two-core machine a second thread competes with BLAS and with other processes.
# The wrappers that adapt shapes and dtypes are given; you write the loops.

# %%
#| export
def _compiled(function):
    """numba.njit(cache=True, fastmath=True, error_model="numpy") when numba is installed;
    otherwise plain Python.

    fastmath lets LLVM reorder sums and use fused multiply-adds; the kernels never rely on
    NaN or infinity semantics (inputs are finite activations, gradients and weights).
    error_model="numpy": a division by zero gives inf or nan, as in NumPy, instead of raising
    ZeroDivisionError as Python does. Python's model puts a test and a branch before every
    division, which keeps LLVM from vectorising the loop: measured on the GELU kernel (one
    division per element, 393,216 float32 elements), 0.70 ms forward and 1.27 ms backward with
    Python's model, 0.18 ms and 0.25 ms with NumPy's.
    """
    return numba.njit(cache=True, fastmath=True, error_model="numpy")(function) if NUMBA_AVAILABLE else function


@_compiled
def _gelu_elements(x, gaussian, out, grad_in, constants, backward):
    """Exact GELU (backward False: out = y) or its gradient (True: out = y' * grad_in), elementwise.

    `gaussian` holds exp(-x^2 / 2), computed by NumPy's vectorised exp (a call to `math.exp`
    inside the loop would keep LLVM from vectorising it; we measured the loop 1.5x slower).
    `constants` is an array of x's dtype: [p, a1, a2, a3, a4, a5, 0.5, 1, 2, 3, 4], so that
    float32 data is computed in float32 (Python's float literals would make it float64). The
    tanh form has kernels of its own (`gelu_tanh_numba`).

    TODO: for each element v: the A&S form of Steps 3-4 with z = |v|, t = 1 / (1 + p z), P(t) by
          Horner, T = half t P gaussian; forward v (1 - T) for v >= 0 and v T below; backward
          the derivative of Step 4 times g.
    HINT: read the constants into locals first (`p = constants[0]` ...).
    """
    ### BEGIN SOLUTION
    p, a1, a2, a3, a4, a5 = constants[0], constants[1], constants[2], constants[3], constants[4], constants[5]
    half, one, two, three, four = constants[6], constants[7], constants[8], constants[9], constants[10]
    flat, result, g = x.reshape(-1), out.reshape(-1), grad_in.reshape(-1)
    gauss = gaussian.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        z = abs(v)
        t = one / (one + p * z)
        polynomial = a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))
        tail = half * t * polynomial * gauss[i]
        if not backward:
            result[i] = v * (one - tail) if v >= 0 else v * tail
            continue
        slope_p = a2 + t * (two * a3 + t * (three * a4 + t * four * a5))
        d_tail = half * gauss[i] * (-p * t * t * (polynomial + t * slope_p) - z * t * polynomial)
        result[i] = (((one - tail) if v >= 0 else tail) - v * d_tail) * g[i]
    ### END SOLUTION


@_compiled
def _shift_rows(x, out):
    """out = x - max of its row, for x of shape (rows, D): softmax's first pass.

    TODO: per row: the max, then out[i, j] = x[i, j] - max.
    HINT: `largest = max(largest, x[i, j])`.
    """
    ### BEGIN SOLUTION
    rows, D = x.shape
    for i in range(rows):
        largest = x[i, 0]
        for j in range(1, D):
            largest = max(largest, x[i, j])
        for j in range(D):
            out[i, j] = x[i, j] - largest
    ### END SOLUTION


@_compiled
def _normalise_rows(out):
    """out /= the sum of its row, in place: softmax's last pass, after exp.

    TODO: per row: the sum, then out[i, j] *= 1 / sum.
    """
    ### BEGIN SOLUTION
    rows, D = out.shape
    for i in range(rows):
        total = out[i, 0] - out[i, 0]  # a zero of out's dtype
        for j in range(D):
            total += out[i, j]
        scale = 1 / total
        for j in range(D):
            out[i, j] *= scale
    ### END SOLUTION


@_compiled
def _gelu_tanh_exponent(x, out, constants):
    """out = -2z = -2c (x + k x^3), at most 80: the exponent of s = sigmoid(2z) = 1 / (1 + e^(-2z)).

    The cap keeps NumPy's exp finite in float32 (e^80 < 3.4e38; s is then 2e-35, zero to float32
    precision in y = x s), so no infinity reaches the fastmath loops.
    """
    c, k, two, cap = constants[0], constants[1], constants[3], constants[5]
    flat, result = x.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        result[i] = min(-two * c * (v + k * v * v * v), cap)


@_compiled
def _gelu_tanh_finish(x, s, out, constants):
    """s = 1 / (1 + s) in place (s holds e^(-2z) on entry), out = x s: GELU's tanh form."""
    one = constants[2]
    flat, gate, result = x.reshape(-1), s.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        g = one / (one + gate[i])
        gate[i] = g
        result[i] = flat[i] * g


@_compiled
def _gelu_tanh_slope(x, s, grad, out, constants):
    """out = grad (s + x s (1 - s) 2 z') with 2 z' = 2c (1 + 3k x^2): module 13's backward, one pass."""
    c, k, one, two, three = constants[0], constants[1], constants[2], constants[3], constants[4]
    flat, gate, g, result = x.reshape(-1), s.reshape(-1), grad.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        v, si = flat[i], gate[i]
        result[i] = g[i] * (si + v * si * (one - si) * two * c * (one + three * k * v * v))


@_compiled
def _layer_norm_rows(x, weight, bias, eps, out, x_hat, rstd):
    """Per row of x (rows, D): mean, variance, rstd, x_hat and y = x_hat * weight + bias.

    TODO: two passes over each row (mean, then the variance of the centred values), then one
          pass writing x_hat and out.
    HINT: rstd[i, 0] = 1 / sqrt(variance + eps).
    """
    ### BEGIN SOLUTION
    rows, D = x.shape
    for i in range(rows):
        mean = 0.0
        for j in range(D):
            mean += x[i, j]
        mean /= D
        variance = 0.0
        for j in range(D):
            d = x[i, j] - mean
            variance += d * d
        r = 1.0 / math.sqrt(variance / D + eps)
        rstd[i, 0] = r
        for j in range(D):
            h = (x[i, j] - mean) * r
            x_hat[i, j] = h
            out[i, j] = h * weight[j] + bias[j]
    ### END SOLUTION


@_compiled
def _layer_norm_backward_rows(grad, x_hat, rstd, weight, grad_x, grad_weight, grad_bias):
    """Per row: grad_x = rstd (g - mean(g) - x_hat mean(g x_hat)), g = grad * weight; sums for weight and bias.

    TODO: one pass for the two means (and the weight and bias sums), one pass for grad_x.
    HINT: grad_weight[j] += grad[i, j] * x_hat[i, j]; grad_bias[j] += grad[i, j] (start them at 0).
    """
    ### BEGIN SOLUTION
    rows, D = grad.shape
    for i in range(rows):
        mean_g = 0.0
        mean_gx = 0.0
        for j in range(D):
            g = grad[i, j] * weight[j]
            mean_g += g
            mean_gx += g * x_hat[i, j]
            grad_weight[j] += grad[i, j] * x_hat[i, j]
            grad_bias[j] += grad[i, j]
        mean_g /= D
        mean_gx /= D
        r = rstd[i, 0]
        for j in range(D):
            grad_x[i, j] = r * (grad[i, j] * weight[j] - mean_g - x_hat[i, j] * mean_gx)
    ### END SOLUTION


@_compiled
def _cross_entropy_rows(logits, target, log_probs, losses):
    """Per row: log_probs = x - max - log(sum exp(x - max)); losses[i] = -log_probs[i, target[i]].

    TODO: three passes over a row: the max, the sum of exponentials, then log_probs.
    HINT: keep the log of the sum in a local; the loss reads one entry.
    """
    ### BEGIN SOLUTION
    rows, C = logits.shape
    for i in range(rows):
        largest = logits[i, 0]
        for j in range(1, C):
            largest = max(largest, logits[i, j])
        total = 0.0
        for j in range(C):
            total += math.exp(logits[i, j] - largest)
        shift = largest + math.log(total)
        for j in range(C):
            log_probs[i, j] = logits[i, j] - shift
        losses[i] = -log_probs[i, target[i]]
    ### END SOLUTION


@_compiled
def _cross_entropy_backward_rows(log_probs, target, row_scale, grad_logits):
    """grad_logits[i, j] = (exp(log_probs[i, j]) - [j == target[i]]) * row_scale[i].

    TODO: one pass over every row.
    HINT: row_scale holds the cotangent of each row's loss (already divided by N for "mean").
    """
    ### BEGIN SOLUTION
    rows, C = log_probs.shape
    for i in range(rows):
        s = row_scale[i]
        for j in range(C):
            grad_logits[i, j] = math.exp(log_probs[i, j]) * s
        grad_logits[i, target[i]] -= s
    ### END SOLUTION


@_compiled
def _max_pool_2x2_planes(x, out, winner):
    """x (planes, H, W): out and winner (planes, H/2, W/2); first maximum among taps 0..3 = p*2 + q.

    TODO: for each output position read the four taps in order and keep the first largest.
    HINT: a later tap wins only when strictly greater (module 09's rule).
    """
    ### BEGIN SOLUTION
    planes, Ho, Wo = out.shape
    for n in range(planes):
        for i in range(Ho):
            for j in range(Wo):
                best = x[n, 2 * i, 2 * j]
                k = 0
                for tap in range(1, 4):
                    v = x[n, 2 * i + tap // 2, 2 * j + tap % 2]
                    if v > best:
                        best = v
                        k = tap
                out[n, i, j] = best
                winner[n, i, j] = k
    ### END SOLUTION


@_compiled
def _max_pool_2x2_backward_planes(grad, winner, grad_x):
    """grad_x (planes, H, W) zero but for each window's winning tap, which gets the window's cotangent.

    TODO: write zeros to the four taps, then grad at the winner.
    HINT: the winner k sits at (2 i + k // 2, 2 j + k % 2).
    """
    ### BEGIN SOLUTION
    planes, Ho, Wo = grad.shape
    for n in range(planes):
        for i in range(Ho):
            for j in range(Wo):
                for tap in range(4):
                    grad_x[n, 2 * i + tap // 2, 2 * j + tap % 2] = 0.0
                k = winner[n, i, j]
                grad_x[n, 2 * i + k // 2, 2 * j + k % 2] = grad[n, i, j]
    ### END SOLUTION


@_compiled
def _batch_norm_relu_channels(x, weight, bias, eps, out, x_hat, inv_std, means):
    """x (N, C, L): per channel mean and variance over (N, L), x_hat, out = max(0, w x_hat + b).

    TODO: two passes per channel for the statistics, one to write x_hat and out.
    HINT: count = N * L.
    """
    ### BEGIN SOLUTION
    N, C, L = x.shape
    count = N * L
    for c in range(C):
        mean = 0.0
        for n in range(N):
            for j in range(L):
                mean += x[n, c, j]
        mean /= count
        means[c] = mean
        variance = 0.0
        for n in range(N):
            for j in range(L):
                d = x[n, c, j] - mean
                variance += d * d
        r = 1.0 / math.sqrt(variance / count + eps)
        inv_std[c] = r
        for n in range(N):
            for j in range(L):
                h = (x[n, c, j] - mean) * r
                x_hat[n, c, j] = h
                y = weight[c] * h + bias[c]
                out[n, c, j] = max(y, 0.0)
    ### END SOLUTION


@_compiled
def _batch_norm_relu_backward_channels(grad, out, x_hat, inv_std, weight, grad_x, grad_weight, grad_bias):
    """Per channel: g = grad where out > 0; sums of g and g x_hat; grad_x = w r (g - mean g - x_hat mean(g x_hat)).

    TODO: one pass for the two sums (they are also the bias and weight gradients), one for grad_x.
    HINT: the masked cotangent is recomputed in the second pass instead of stored.
    """
    ### BEGIN SOLUTION
    N, C, L = grad.shape
    count = N * L
    for c in range(C):
        sum_g = 0.0
        sum_gx = 0.0
        for n in range(N):
            for j in range(L):
                if out[n, c, j] > 0.0:
                    sum_g += grad[n, c, j]
                    sum_gx += grad[n, c, j] * x_hat[n, c, j]
        grad_bias[c] = sum_g
        grad_weight[c] = sum_gx
        scale = weight[c] * inv_std[c]
        for n in range(N):
            for j in range(L):
                g = grad[n, c, j] if out[n, c, j] > 0.0 else 0.0
                grad_x[n, c, j] = scale * (g - sum_g / count - x_hat[n, c, j] * sum_gx / count)
    ### END SOLUTION


@_compiled
def _adam_flat(param, grad, exp_avg, exp_avg_sq, settings):
    """The Adam/AdamW update, one pass over flat arrays, in place, branch-free.

    `settings` is an array of the parameter's dtype (so float32 stays float32, 8 lanes wide):
    [shrink, l2, beta1, 1 - beta1, beta2, 1 - beta2, eps, step_size, correction2] (the complements
    computed in float64 first: 1 - float32(0.999) is 1.3e-5 off 0.001), where AdamW's decoupled decay is
    shrink = 1 - lr wd (l2 = 0) and Adam's L2 decay is l2 = wd (shrink = 1).

    TODO: per element: g = grad + l2 p; p *= shrink; both moments; p -= step_size m / (sqrt(v) / correction2 + eps).
    HINT: no `if` in the loop: the two kinds of weight decay are the two settings above.
    """
    ### BEGIN SOLUTION
    shrink, l2, beta1, rest1, beta2, rest2 = settings[0], settings[1], settings[2], settings[3], settings[4], settings[5]
    eps, step_size, correction2 = settings[6], settings[7], settings[8]
    for i in range(param.size):
        p = param[i]
        g = grad[i] + l2 * p
        m = beta1 * exp_avg[i] + rest1 * g
        v = beta2 * exp_avg_sq[i] + rest2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = p * shrink - step_size * m / (math.sqrt(v) / correction2 + eps)
    ### END SOLUTION


@_compiled
def _blocked_matmul_scalar(a, b, c, tile):
    """c += a @ b in (tile x tile) blocks, the innermost tile product as scalar loops (i, k, j order).

    TODO: loop i0, k0, j0 over the tiles; inside, loop i, k over the tile, read a[i, k] once,
          and add a[i, k] * b[k, j] into c[i, j] for j over the tile (j innermost: contiguous).
    HINT: `min(i0 + tile, n)` ends a tile at the matrix's edge.
    """
    ### BEGIN SOLUTION
    n, k = a.shape
    m = b.shape[1]
    for i0 in range(0, n, tile):
        for k0 in range(0, k, tile):
            for j0 in range(0, m, tile):
                for i in range(i0, min(i0 + tile, n)):
                    for p in range(k0, min(k0 + tile, k)):
                        a_ip = a[i, p]
                        for j in range(j0, min(j0 + tile, m)):
                            c[i, j] += a_ip * b[p, j]
    ### END SOLUTION

# %% [markdown]
# ### The numba backend's wrappers (given)
#
# Each wrapper gives the compiled loops contiguous arrays of the right shapes, allocates the
# outputs, and returns what the NumPy kernel of the same name returns, so the two backends are
# interchangeable behind the seam. The backend is registered only when numba imports.

# %%
#| export
def _rows(x):
    """x as a C-contiguous 2-D (rows, last dimension) array."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _gelu_constants(dtype):
    return np.array((_TAIL_P,) + tuple(_TAIL_A) + (0.5, 1, 2, 3, 4), dtype=dtype)


def _gaussian(x):
    """exp(-x^2 / 2) by NumPy's vectorised exp."""
    gaussian = np.multiply(x, x)
    gaussian *= -0.5
    return np.exp(gaussian, out=gaussian)


def gelu_numba(x, approximate="none"):
    if approximate == "tanh":
        return gelu_tanh_numba(x)[0]
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _gelu_elements(x, _gaussian(x), out, out, _gelu_constants(x.dtype), False)
    return out


def gelu_backward_numba(grad, x, approximate="none"):
    if approximate == "tanh":
        return gelu_tanh_backward_numba(grad, x, gelu_tanh_numba(x)[1])
    x = np.ascontiguousarray(x)
    grad_x = np.empty_like(x)
    grad = np.ascontiguousarray(np.broadcast_to(grad, x.shape), dtype=x.dtype)
    _gelu_elements(x, _gaussian(x), grad_x, grad, _gelu_constants(x.dtype), True)
    return grad_x


def _gelu_tanh_constants(dtype):
    return np.array((SQRT_2_OVER_PI, GELU_TANH_CUBIC, 1, 2, 3, 80), dtype=dtype)


def gelu_tanh_numba(x):
    """Module 13's fused GELU (tanh form): (y, s) with s = sigmoid(2z), y = x s; two compiled passes
    around NumPy's vectorised exp (see softmax_numba)."""
    x = np.ascontiguousarray(x)
    constants = _gelu_tanh_constants(x.dtype)
    s, out = np.empty_like(x), np.empty_like(x)
    _gelu_tanh_exponent(x, s, constants)
    np.exp(s, out=s)
    _gelu_tanh_finish(x, s, out, constants)
    return out, s


def gelu_tanh_backward_numba(grad, x, s):
    """The gradient of module 13's gelu_tanh from the saved s, in one compiled pass."""
    x = np.ascontiguousarray(x)
    grad = np.ascontiguousarray(np.broadcast_to(grad, x.shape), dtype=x.dtype)
    out = np.empty_like(x)
    _gelu_tanh_slope(x, np.ascontiguousarray(s), grad, out, _gelu_tanh_constants(x.dtype))
    return out


def softmax_numba(x):
    """Softmax over the last axis: two compiled passes around NumPy's exp.

    Without a vector math library numba compiles `math.exp` to one scalar call per element,
    which keeps the loop from vectorising; NumPy's exp is vectorised. Measured on attention
    scores of shape (3072, 64), float32: one compiled loop with `math.exp` 0.65 ms, NumPy's
    softmax 0.56 ms, these three passes 0.22 ms.
    """
    rows = _rows(x)
    out = np.empty_like(rows)
    _shift_rows(rows, out)
    np.exp(out, out=out)
    _normalise_rows(out)
    return out.reshape(x.shape)


def layer_norm_numba(x, weight, bias, eps):
    rows = _rows(x)
    out, x_hat = np.empty_like(rows), np.empty_like(rows)
    rstd = np.empty((rows.shape[0], 1), dtype=x.dtype)
    bias = np.zeros_like(weight, dtype=x.dtype) if bias is None else bias
    _layer_norm_rows(rows, np.ascontiguousarray(weight, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype),
                     float(eps), out, x_hat, rstd)
    return out.reshape(x.shape), x_hat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward_numba(grad, x_hat, rstd, weight):
    rows = _rows(np.asarray(grad, dtype=x_hat.dtype))
    grad_x = np.empty_like(rows)
    grad_weight = np.zeros(x_hat.shape[-1], dtype=x_hat.dtype)
    grad_bias = np.zeros_like(grad_weight)
    _layer_norm_backward_rows(rows, _rows(x_hat), np.ascontiguousarray(rstd).reshape(-1, 1),
                              np.ascontiguousarray(weight, dtype=x_hat.dtype), grad_x, grad_weight, grad_bias)
    return grad_x.reshape(x_hat.shape), grad_weight, grad_bias


def cross_entropy_numba(logits, target, reduction="mean"):
    logits = np.ascontiguousarray(logits)
    log_probs = np.empty_like(logits)
    losses = np.empty(logits.shape[0], dtype=logits.dtype)
    _cross_entropy_rows(logits, np.ascontiguousarray(target, dtype=np.int64), log_probs, losses)
    return _reduced(losses, reduction, logits.dtype), log_probs


def cross_entropy_backward_numba(grad, log_probs, target, reduction="mean"):
    N = log_probs.shape[0]
    if reduction == "none":
        row_scale = np.ascontiguousarray(grad, dtype=log_probs.dtype)
    else:
        row_scale = np.full(N, float(grad) / N if reduction == "mean" else float(grad), dtype=log_probs.dtype)
    grad_logits = np.empty_like(log_probs)
    _cross_entropy_backward_rows(log_probs, np.ascontiguousarray(target, dtype=np.int64), row_scale, grad_logits)
    return grad_logits


def max_pool2d_2x2_numba(x):
    N, C, H, W = x.shape
    planes = np.ascontiguousarray(x).reshape(N * C, H, W)
    out = np.empty((N * C, H // 2, W // 2), dtype=x.dtype)
    winner = np.empty(out.shape, dtype=np.int16)
    _max_pool_2x2_planes(planes, out, winner)
    return out.reshape(N, C, H // 2, W // 2), winner.reshape(N, C, H // 2, W // 2)


def max_pool2d_2x2_backward_numba(grad, winner):
    N, C, Ho, Wo = grad.shape
    grad_x = np.empty((N * C, 2 * Ho, 2 * Wo), dtype=grad.dtype)
    _max_pool_2x2_backward_planes(np.ascontiguousarray(grad).reshape(N * C, Ho, Wo),
                                  np.ascontiguousarray(winner).reshape(N * C, Ho, Wo), grad_x)
    return grad_x.reshape(N, C, 2 * Ho, 2 * Wo)


def batch_norm_relu_numba(x, weight, bias, eps):
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    out, x_hat = np.empty_like(x3), np.empty_like(x3)
    inv_std, mean = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
    _batch_norm_relu_channels(x3, np.ascontiguousarray(weight, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype),
                              float(eps), out, x_hat, inv_std, mean)
    return out.reshape(x.shape), x_hat.reshape(x.shape), inv_std, mean


def batch_norm_relu_backward_numba(grad, out, x_hat, inv_std, weight):
    N, C = grad.shape[:2]
    shape3 = (N, C, -1)
    g3 = np.ascontiguousarray(grad, dtype=x_hat.dtype).reshape(shape3)
    grad_x = np.empty_like(g3)
    grad_weight, grad_bias = np.empty(C, dtype=x_hat.dtype), np.empty(C, dtype=x_hat.dtype)
    _batch_norm_relu_backward_channels(g3, np.ascontiguousarray(out).reshape(shape3), np.ascontiguousarray(x_hat).reshape(shape3),
                                       inv_std, np.ascontiguousarray(weight, dtype=x_hat.dtype), grad_x, grad_weight, grad_bias)
    return grad_x.reshape(grad.shape), grad_weight, grad_bias


def adam_update_numba(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    arrays = (param, grad, exp_avg, exp_avg_sq)
    contiguous = all(a.flags.c_contiguous and a.dtype == param.dtype for a in arrays)
    # views of the originals (the compiled loop writes into them), or contiguous copies written back
    flat = [(a if contiguous else np.ascontiguousarray(a, dtype=param.dtype)).reshape(-1) for a in arrays]
    shrink, l2 = (1 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    settings = np.array([shrink, l2, beta1, 1 - beta1, beta2, 1 - beta2, eps, lr / (1 - beta1 ** step),
                         math.sqrt(1 - beta2 ** step)], dtype=param.dtype)
    _adam_flat(*flat, settings)
    if not contiguous:
        for original, updated in ((param, flat[0]), (exp_avg, flat[2]), (exp_avg_sq, flat[3])):
            np.copyto(original, updated.reshape(original.shape))


def blocked_matmul_numba(a, b, tile=64):
    _check_matrices("blocked_matmul", a, b)
    tile = _check_tile(tile)
    dtype = np.result_type(a, b)
    c = np.zeros((a.shape[0], b.shape[1]), dtype=dtype)
    _blocked_matmul_scalar(np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(b, dtype=dtype), c, tile)
    return c


NUMBA_KERNELS = {
    "linear": linear_numpy,  # BLAS is already the compiled kernel of a matrix product
    "linear_backward": linear_backward_numpy,
    "softmax": softmax_numba,
    "gelu": gelu_numba,
    "gelu_backward": gelu_backward_numba,
    "gelu_tanh": gelu_tanh_numba,
    "gelu_tanh_backward": gelu_tanh_backward_numba,
    "layer_norm": layer_norm_numba,
    "layer_norm_backward": layer_norm_backward_numba,
    "cross_entropy": cross_entropy_numba,
    "cross_entropy_backward": cross_entropy_backward_numba,
    "max_pool2d_2x2": max_pool2d_2x2_numba,
    "max_pool2d_2x2_backward": max_pool2d_2x2_backward_numba,
    "batch_norm_relu": batch_norm_relu_numba,
    "batch_norm_relu_backward": batch_norm_relu_backward_numba,
    "adam_update": adam_update_numba,
    "blocked_matmul": blocked_matmul_numba,
}
if NUMBA_AVAILABLE:
    for _name, _function in NUMBA_KERNELS.items():
        register_kernel("numba", _name)(_function)


@register_flops("linear")
def linear_flops(inputs, output):
    """The fused Linear: 2 * in_features per output element, plus the bias add."""
    return 2 * output.numel() * inputs[0].shape[-1] + (output.numel() if len(inputs) == 3 else 0)


@register_flops("gelu", "cross_entropy")
def fused_elementwise_flops(inputs, output):
    """Counted as module 14 counts an elementwise op: one FLOP per input element."""
    return inputs[0].numel()


def backends():
    """The kernel backends registered on this machine: "numpy" always, "numba" with the accel extra."""
    return available_backends()

# %%
def test_unit_numba_backend():
    if not NUMBA_AVAILABLE:
        print("numba is not installed (pip install 'tinytorch[accel]'): the NumPy backend is the only one")
        return
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8))
    np.testing.assert_allclose(gelu_numba(x), gelu_numpy(x), atol=3e-7)
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    for got, want in zip(layer_norm_numba(x, w, b, 1e-5), layer_norm_numpy(x, w, b, 1e-5)):
        np.testing.assert_allclose(got, want, atol=1e-12)
    a, c = rng.standard_normal((33, 20)), rng.standard_normal((20, 17))
    np.testing.assert_allclose(blocked_matmul_numba(a, c, 8), a @ c, atol=1e-12)
    assert "numba" in backends()
    print("numba backend: ok")


test_unit_numba_backend()

# %% [markdown]
# ## Step 7: a fused layer, BatchNorm2d + ReLU
#
# A kernel helps only when an operation calls it. Every convolution block of the CIFAR-10 CNN is
# Conv2d, BatchNorm2d, ReLU: `batch_norm_relu` is module 09's `batch_norm` and then `relu` as one
# operation, with module 09's signature. In training mode, with a backend that has the kernel, it
# runs the compiled kernel forward and backward (the batch mean it returns, and the variance from
# inv_std, update the running statistics as module 09 does); otherwise it is the two operations.
# `BatchNormReLU2d` is a BatchNorm2d whose forward is that operation, and `fuse_batchnorm_relu`
# puts one wherever a Sequential has a BatchNorm2d followed by a ReLU (the ReLU becomes an
# Identity). The fused layer keeps the BatchNorm2d's parameters and buffers under the same names,
# so a checkpoint loads into the model before or after fusing.

# %%
#| export
def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """relu(batch_norm(...)) with module 09's signature: one fused kernel in training mode when the backend has it."""
    input = as_tensor(input)
    fused = backend_kernel("batch_norm_relu") if training and weight is not None and bias is not None else None
    count = input.data.size // input.shape[1] if input.ndim >= 2 and input.shape[1] else 0
    channels = (input.shape[1],) if input.ndim >= 2 else None
    shapes_fit = all(t is None or t.shape == channels for t in (running_mean, running_var, weight, bias))
    if fused is None or count < 2 or not shapes_fit:
        return relu(batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps))
    out, x_hat, inv_std, mean = fused(input.data, weight.data, bias.data, eps)
    if running_mean is not None:
        running_mean.data *= 1 - momentum
        running_mean.data += momentum * mean.astype(running_mean.dtype)
    if running_var is not None:  # the unbiased batch variance, as module 09: var = 1 / inv_std^2 - eps
        variance = 1.0 / inv_std.astype(np.float64) ** 2 - eps
        running_var.data *= 1 - momentum
        running_var.data += (momentum * variance * count / (count - 1)).astype(running_var.dtype)
    return Tensor.from_op(out, "batch_norm_relu", (input, weight, bias), x_hat=x_hat, inv_std=inv_std,
                          backward=backend_kernel("batch_norm_relu_backward"))


@register_backward("batch_norm_relu")
def batch_norm_relu_backward(grad, out):
    """Gradients of (input, weight, bias) from the backend's backward kernel."""
    saved = out._saved
    return saved["backward"](grad, out.data, saved["x_hat"], saved["inv_std"], out._inputs[1].data)


class BatchNormReLU2d(BatchNorm2d):
    """BatchNorm2d then ReLU as one layer (module 09's state and arguments; `batch_norm_relu` runs it)."""

    def forward(self, x):
        return batch_norm_relu(*self.batch_norm_arguments(x))

    @classmethod
    def from_batchnorm(cls, bn):
        """A fused layer that shares `bn`'s parameters and buffers (training one trains the other)."""
        fused = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                    dtype=bn.running_mean.dtype if bn.running_mean is not None else bn.weight.dtype)
        if bn.affine:
            fused.weight, fused.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                fused.register_buffer(name, getattr(bn, name))
        fused.train(bn.training)
        return fused


def fuse_batchnorm_relu(model):
    """Replace, in place, each BatchNorm2d that a ReLU follows in a Sequential by a BatchNormReLU2d (the ReLU by an
    Identity); returns the model and the number of pairs fused. State dict names do not change."""
    pairs = 0
    for module in list(model.modules()):
        if isinstance(module, Sequential):
            for index in range(len(module) - 1):
                if type(module[index]) is BatchNorm2d and isinstance(module[index + 1], ReLU):
                    module[index] = BatchNormReLU2d.from_batchnorm(module[index])
                    module[index + 1] = Identity()
                    pairs += 1
    return model, pairs

# %%
def test_unit_fused_layer():
    import tinytorch.core.autograd  # noqa: F401
    from tinytorch.core.spatial import Conv2d
    from tinytorch.core.tensor import manual_seed, use_backend

    manual_seed(0)
    model = Sequential(Conv2d(3, 4, 3, padding=1, bias=False), BatchNorm2d(4), ReLU())
    x = Tensor(np.random.default_rng(6).standard_normal((5, 3, 6, 6)).astype(np.float32))
    reference = model(x)
    reference.sum().backward()
    expected = {"grad": model[0].weight.grad.numpy().copy(), "mean": model[1].running_mean.data.copy(),
                "var": model[1].running_var.data.copy()}
    names = list(model.state_dict())
    model, pairs = fuse_batchnorm_relu(model)
    assert pairs == 1 and isinstance(model[1], BatchNormReLU2d) and list(model.state_dict()) == names
    for backend in backends():
        model[1].running_mean.data[:], model[1].running_var.data[:] = 0, 1  # the composed pass's starting point
        model[0].weight.grad = None
        with use_backend(backend):
            out = model(x)
            out.sum().backward()
        np.testing.assert_allclose(out.numpy(), reference.numpy(), atol=1e-5)
        np.testing.assert_allclose(model[0].weight.grad.numpy(), expected["grad"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model[1].running_mean.data, expected["mean"], atol=1e-6)
        np.testing.assert_allclose(model[1].running_var.data, expected["var"], rtol=1e-5)
    print(f"BatchNormReLU2d: fused {pairs} pair; outputs, gradients and running statistics match on {backends()}")


test_unit_fused_layer()

# %% [markdown]
# ## Integration: one GPT step on each backend
#
# With a backend active, module 13's GPT runs its Linear layers, layer norms, loss and AdamW update
# through the backend's kernels. The losses and the updated weights must agree with the run
# that uses no backend: the backends change the speed, not the answer.

# %%
def test_integration_backends_train_the_same_gpt():
    import tinytorch.core.autograd  # noqa: F401
    from tinytorch.core.optimizers import AdamW
    from tinytorch.core.tensor import manual_seed, use_backend
    from tinytorch.core.transformer import GPT, GPTConfig

    tokens = np.random.default_rng(5).integers(0, 13, (2, 9))
    results = {}
    for backend in [None] + backends():
        manual_seed(0)
        model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
        optimizer = AdamW(model.parameters(), lr=1e-2)
        with use_backend(backend):
            losses = []
            for _ in range(2):
                _, loss = model(tokens[:, :-1], tokens[:, 1:])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        results[backend] = (losses, np.concatenate([p.numpy().ravel() for p in model.parameters()]))
    reference_losses, reference_weight = results[None]
    for backend, (losses, weight) in results.items():
        np.testing.assert_allclose(losses, reference_losses, rtol=1e-4, err_msg=str(backend))
        np.testing.assert_allclose(weight, reference_weight, atol=1e-4, err_msg=str(backend))
    print("backends train the same GPT:", ", ".join(f"{b}: {results[b][0][-1]:.4f}" for b in results))


test_integration_backends_train_the_same_gpt()

# %% [markdown]
# ## Systems analysis: every rung measured
#
# The measurements below run when you execute this file (`python
# modules/18_acceleration/acceleration.py`); they take a minute or two. Every figure is a median
# of several repeats with module 01's `median_milliseconds`, on one BLAS thread unless the line
# says otherwise (`OPENBLAS_NUM_THREADS` must be set *before* NumPy is imported, so the thread
# comparison runs each count in a process of its own).
#
# 1. The ladder on a 128 x 128 matrix product: Python loops, vectorised NumPy, NumPy tiles,
#    compiled scalar tiles, BLAS, in GFLOP/s.
# 2. The compiled blocked product at 512 x 512 against its tile size (1 to 512): too small and
#    the loop overhead dominates; too large and, once the matrices outgrow the caches, B's
#    tile no longer stays in them.
# 3. Exact GELU on a GPT MLP activation (64 x 128 x 512 floats): module 02's composed version,
#    the fused NumPy kernel, the numba kernel, forward and backward.
# 4. float16 storage against float32: bytes halve; NumPy computes float16 in software, so
#    arithmetic is *slower*. Storage and compute are different questions.
# 5. BLAS threads: one matrix product with 1 and 2 OpenBLAS threads, each in its own process.
# 6. BatchNorm + ReLU and the 2x2 max-pool on the CIFAR CNN's first block at batch 64 (forward and
#    backward): module 09's operations, the NumPy reference kernels called directly, the numba
#    kernels, and a whole CNN training step with and without `fuse_batchnorm_relu`.

# %%
def _analysis():
    import os
    import subprocess
    import sys

    import tinytorch.core.autograd  # noqa: F401
    from tinytorch.core.activations import gelu
    from tinytorch.core.tensor import Tensor, median_milliseconds, use_backend

    rng = np.random.default_rng(0)
    print(f"threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; load: {os.getloadavg()}")
    n = 128
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    flops = 2 * n ** 3
    ladder = {"python loops": lambda: matmul_python_loops(a, b), "vectorised numpy": lambda: matmul_vectorised(a, b),
              "numpy tiles (64)": lambda: blocked_matmul_numpy(a, b, 64)}
    if NUMBA_AVAILABLE:
        blocked_matmul_numba(a, b, 32)  # compile (or load from the cache) first
        ladder["compiled tiles (32)"] = lambda: blocked_matmul_numba(a, b, 32)
    ladder["BLAS"] = lambda: a @ b
    print(f"\n1. {n} x {n} matmul, float32")
    for name, run in ladder.items():
        ms = median_milliseconds(run, repeats=3 if name == "python loops" else 15)
        print(f"   {name:22s} {ms:10.3f} ms  {flops / ms / 1e6:8.2f} GFLOP/s")

    if NUMBA_AVAILABLE:
        n = 512
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        print(f"\n2. {n} x {n} compiled blocked matmul against the tile size (BLAS: "
              f"{2 * n ** 3 / median_milliseconds(lambda: a @ b, repeats=9) / 1e6:.1f} GFLOP/s)")
        for tile in (1, 4, 16, 32, 64, 128, 512):
            ms = median_milliseconds(lambda tile=tile: blocked_matmul_numba(a, b, tile), repeats=3)
            print(f"   tile {tile:4d}: {ms:9.1f} ms  {2 * n ** 3 / ms / 1e6:6.2f} GFLOP/s")

    x = rng.standard_normal((64 * 128, 512)).astype(np.float32)
    cotangent = np.ones_like(x)
    print(f"\n3. exact GELU on {x.shape} float32 (forward | forward + backward)")
    variants = [(None, "composed (module 02)")] + [(name, f"{name} kernel") for name in backends()]
    for backend, label in variants:
        with use_backend(backend):
            t = Tensor(x, requires_grad=True)
            forward = median_milliseconds(lambda t=t: gelu(t), repeats=5)
            both = median_milliseconds(lambda t=t: gelu(t).backward(cotangent), repeats=5)
        print(f"   {label:22s} {forward:8.1f} ms | {both:8.1f} ms")
    if NUMBA_AVAILABLE:
        x64 = x.astype(np.float64)
        print(f"   numba kernel, float64 data: {median_milliseconds(lambda: gelu_numba(x64), repeats=5):8.1f} ms forward")

    print("\n4. float16 storage against float32 (1024 x 1024)")
    for dtype in (np.float32, np.float16):
        m = rng.standard_normal((1024, 1024)).astype(dtype)
        add = median_milliseconds(lambda m=m: m + m, repeats=9)
        product = median_milliseconds(lambda m=m: m @ m, repeats=3)
        print(f"   {np.dtype(dtype).name}: {m.nbytes / 2**20:.0f} MiB, add {add:.2f} ms, matmul {product:.1f} ms")

    print("\n5. BLAS threads: a 1024 x 1024 float32 matmul, each count in its own process")
    script = ("import numpy as np, time; a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32); "
              "a @ a; s = []\nfor _ in range(9):\n t = time.perf_counter(); a @ a; s.append(time.perf_counter() - t)\n"
              "print(sorted(s)[4] * 1e3)")
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        ms = float(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout)
        print(f"   {threads} thread(s): {ms:.1f} ms  ({2 * 1024 ** 3 / ms / 1e6:.1f} GFLOP/s)")
    _analysis_conv_block(rng)


def _analysis_conv_block(rng):
    import sys
    from pathlib import Path

    from tinytorch.core.activations import relu
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import SGD
    from tinytorch.core.spatial import max_pool2d
    from tinytorch.core.tensor import (
        Tensor,
        manual_seed,
        median_milliseconds,
        use_backend,
    )

    x = rng.standard_normal((64, 32, 32, 32)).astype(np.float32)
    w, b, grad = np.ones(32, np.float32), np.zeros(32, np.float32), rng.standard_normal(x.shape).astype(np.float32)
    pooled_grad = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)

    def composed():
        t = Tensor(x, requires_grad=True)
        relu(batch_norm(t, None, None, Tensor(w), Tensor(b), training=True)).backward(grad)

    def pool_composed():
        t = Tensor(x, requires_grad=True)
        max_pool2d(t, 2).backward(pooled_grad)

    def kernels_of(name_kernels, name):
        return name_kernels.get(name) or globals()[f"{name}_numpy"]

    print("\n6. the first conv block's BatchNorm + ReLU and max-pool, (64, 32, 32, 32) float32, forward + backward")
    print(f"   module 09 ops: BatchNorm + ReLU {median_milliseconds(composed, repeats=9):6.1f} ms, "
          f"max-pool {median_milliseconds(pool_composed, repeats=9):6.1f} ms")
    tables = [("NumPy reference kernels", NUMPY_KERNELS)] + ([("numba kernels", NUMBA_KERNELS)] if NUMBA_AVAILABLE else [])
    for label, table in tables:
        forward, backward = kernels_of(table, "batch_norm_relu"), kernels_of(table, "batch_norm_relu_backward")
        pool, pool_backward = kernels_of(table, "max_pool2d_2x2"), kernels_of(table, "max_pool2d_2x2_backward")

        def fused(forward=forward, backward=backward):
            out, x_hat, inv_std, _ = forward(x, w, b, 1e-5)
            backward(grad, out, x_hat, inv_std, w)

        def pooled(pool=pool, pool_backward=pool_backward):
            _, winner = pool(x)
            pool_backward(pooled_grad, winner)

        print(f"   {label + ':':24s} BatchNorm + ReLU {median_milliseconds(fused, repeats=9):6.1f} ms, "
              f"max-pool {median_milliseconds(pooled, repeats=9):6.1f} ms")
    if not NUMBA_AVAILABLE:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "milestones"))
    from cifar10_model import build_cifar_cnn

    images = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
    labels = Tensor(rng.integers(0, 10, 64))
    for label, fuse in (("numba, unfused", False), ("numba, BatchNorm + ReLU fused", True)):
        manual_seed(0)
        model = build_cifar_cnn()
        if fuse:
            fuse_batchnorm_relu(model)
        optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(model=model, optimizer=optimizer):
            loss = cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        with use_backend("numba"):
            ms = median_milliseconds(step, repeats=7)
        print(f"   CIFAR CNN training step, batch 64, {label}: {ms:.0f} ms")


if __name__ == "__main__":
    _analysis()

# %% [markdown]
# Measured here (`OPENBLAS_NUM_THREADS=1 python modules/18_acceleration/acceleration.py`, numba
# 0.68, on the two-core machine on 2026-12-02, another single-threaded job on the second core,
# load average about 0.8; on a busier machine every figure is slower and noisier, so compare
# within a table, not across runs):
#
# | step | figure |
# |---|---|
# | 128 x 128 matmul: Python loops / vectorised NumPy / NumPy tiles (64) / compiled tiles (32) / BLAS | 72 ms / 1.3 ms / 0.063 ms / 1.1 ms / 0.036 ms (0.06 / 3.2 / 67 / 3.7 / 118 GFLOP/s) |
# | 512 x 512 compiled blocked matmul, tile 1 / 4 / 16 / 32 / 64 / 128 / 512 | 0.43 / 2.3 / 3.5 / 3.6 / 3.8 / 3.4 / 3.8 GFLOP/s (BLAS 169) |
# | exact GELU on 8192 x 512 float32, forward / forward + backward: composed (module 02) | 131 ms / 254 ms |
# | the same, fused NumPy kernel / numba kernel | 59 / 135 ms and 6.8 / 22 ms |
# | float32 / float16 storage, 1024 x 1024: MiB, add, matmul | 4 / 2 MiB, 0.29 / 3.6 ms, 12.8 ms / 4.7 s |
# | 1024 x 1024 float32 matmul, 1 / 2 OpenBLAS threads | 13.4 ms / 14.6 ms |
# | BatchNorm + ReLU on (64, 32, 32, 32), forward + backward: module 09's ops / NumPy reference kernel / numba | 11.3 / 21.2 / 3.8 ms |
# | 2x2 max-pool on the same batch: module 09's op / NumPy reference kernel / numba | 5.7 / 11.8 / 1.8 ms |
# | CIFAR CNN training step, batch 64, numba backend: unfused / `fuse_batchnorm_relu` | 121 / 109 ms |
#
# The compiled kernels use numba's NumPy error model (`_compiled`): with Python's, every
# division is preceded by a test for zero that raises ZeroDivisionError, and that branch keeps
# LLVM from vectorising the loop. Before that change the same GELU kernel took 33 / 67 ms.
#
# What they say. The ladder spans more than three orders of magnitude: the interpreter costs
# a factor of about 50 over vectorised NumPy, and vectorised NumPy (an (n, k, m) temporary) a
# factor of about 40 over BLAS. The compiled scalar tiles beat vectorised NumPy but stay 30 to
# 55 times below BLAS: BLAS's register blocking and vector instructions matter more than the
# cache blocking we wrote (the compiled inner loop here is not vectorised by LLVM). The tile
# size matters most at the small end (tile 1 is eight times slower than tile 16: loop
# overhead); above 16 the differences are within this machine's run-to-run noise (an earlier
# run, at load 7.6, had tile 512 fastest), because 2 MiB of L2 per core and a large L3 hold
# a 512 x 512 float32 problem whole. Fusion pays on GELU: the compiled kernel, vectorised,
# is 19 times faster than the twenty composed primitives forward and 11 times with the
# backward pass (whose NumPy exp pass for e^(-x^2/2) it does not fuse: numba has no vectorised
# exp without a vector math library, so an exp inside the loop would run one element at a
# time). NumPy has no float16 arithmetic kernels (no float16 BLAS at all): float16 halves the
# bytes but is a storage format here, never a compute format. And a second OpenBLAS thread on this shared
# two-core machine made the product slower, not faster (twice as slow in an earlier run on a
# busier machine): the benchmarks pin one thread and print it.
# Fusion in NumPy does not always pay: the NumPy BatchNorm + ReLU and max-pool kernels are slower
# than module 09's operations, which already reuse their buffers, so the NumPy backend leaves them
# out; compiled, the same fusions are three times faster, and fusing the CNN's four
# BatchNorm + ReLU pairs takes 10% off its whole training step.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **One dispatcher, many backends.** PyTorch routes every operator through its dispatcher to
#   a kernel registered per backend (CPU, CUDA, MPS, ...) and dtype, the same shape as module
#   01's `register_kernel(backend, name)` at a much larger scale (thousands of operators).
# - **Fused kernels.** `F.gelu`, `F.layer_norm`, `F.cross_entropy` (log-softmax + NLL) and
#   `torch.optim.AdamW(fused=True)` / `foreach=True` are single kernels or a few multi-tensor
#   kernels; `torch.compile` (TorchInductor) generates fused loops for chains of elementwise
#   operations the way numba compiles the loops here.
# - **BLAS.** On CPU PyTorch calls MKL or OpenBLAS (oneDNN for convolutions), with an OpenMP
#   thread pool whose size `torch.set_num_threads` sets; like OpenBLAS's, its threads spin
#   after each call, which is why two frameworks in one process slow each other down.
# - **Half precision.** float16 / bfloat16 pay on hardware with native half arithmetic (GPUs,
#   recent CPUs with AVX-512 FP16 or AMX); elsewhere they are a storage format, converted to
#   float32 for compute, as the analysis above shows for NumPy.

# %% [markdown]
# ## ML-systems thinking questions
# 1. The fused NumPy GELU still makes several passes over memory. Count them, and estimate the
#    time from the bytes and this machine's bandwidth. How close does the compiled kernel come
#    to one pass?
# 2. Why does the blocked product's speed fall at tile 512 on a 512 x 512 matrix, and what would
#    the best tile be on a machine with twice the L2 cache?
# 3. BLAS reaches several times the compiled scalar loops' GFLOP/s. Name two things it does
#    that the scalar tiles here do not.
# 4. A CuPy backend would register kernels of the same names. Which of the wrappers would have
#    to change, and what would have to happen to the arrays that the operations save for
#    backward?
# 5. When does a second BLAS thread make a step slower, and how would you decide the thread
#    count for a benchmark on a shared machine?

# %% [markdown]
# ## Summary
# - One seam (module 01) holds kernels per backend; operations of modules 02, 03, 04, 06, 09 and 13
#   ask it before they run their own code, so a backend changes the speed and never the answer.
# - The NumPy kernels are the reference: fused, in place, with analytic backward passes checked
#   numerically. The numba backend compiles the same kernels to one pass each.
# - The ladder (loops -> vectorised -> BLAS), the cache-blocked product and its tile size,
#   float16 storage and BLAS threads are each measured on this machine, not assumed.
