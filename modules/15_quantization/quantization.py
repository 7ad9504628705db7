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
# # Module 15: Quantization
#
# *Can I make a model 4x smaller with INT8 and keep its accuracy?*
#
# A trained network stores every weight as a 32-bit float, but it does not need 32 bits of
# precision: the weights of one layer span a small range, and 256 evenly spaced levels cover it
# well enough that the network's answers hardly change. **Quantization** stores each weight as
# an 8-bit integer code plus a scale per layer (or per output channel), which makes the model
# four times smaller, and runs the matrix products on the integers themselves.
#
# It is also a lesson that is easy to fake. The public course this design comes from stored its
# "INT8" tensors as float32, computed "4x smaller" from element counts, and kept the float32
# weights alive inside its quantized layer, which never used the input scale it had calibrated.
# Here every size is *measured* (the bytes of the arrays, the bytes of the saved file), every
# code is a real `int8`, every product runs on int8 operands with int32 accumulation, and every
# accuracy is measured on the real test split of a trained milestone model.
#
# ## Learning objectives
# - Derive the affine map $r = s\,(q - z)$ between real values and integer codes, choose the
#   scale $s$ and zero point $z$ from a range, and bound the rounding error by $s/2$.
# - Store a tensor as `int8` codes with its scales and zero points, per tensor or per output
#   channel, and measure its bytes.
# - Calibrate activation ranges with observers (min/max, moving-average min/max, percentile) on
#   a calibration split that is never the test split.
# - Compute a quantized layer with int8 operands and int32 accumulation, bit-exact against an
#   integer reference, at BLAS speed (float32 products of int8 codes are exact).
# - Fold batch normalisation into the convolution before quantizing, and quantize a whole model
#   (`quantize(model, calibration_loader)`) into layers that keep no float32 weights.
# - Train with fake quantization and a straight-through estimator (quantization-aware training)
#   and convert the result into the same integer layers.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. When every step passes:
#
# ```
# tito module complete 15
# ```
#
# exports your code to `tinytorch/core/quantization.py` and grades it with
# `tests/modules/test_15_quantization.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **The affine map.** A $b$-bit signed code $q$ takes the integers $q_\min \dots q_\max$
# ($-128 \dots 127$ for $b = 8$). A real value $r$ is stored as
#
# $$q = \operatorname{clip}\!\left(\operatorname{round}(r / s) + z,\ q_\min,\ q_\max\right), \qquad \hat r = s\,(q - z),$$
#
# with a **scale** $s > 0$ (the real size of one step) and a **zero point** $z$ (the code of the
# real number 0). To cover a range $[\alpha, \beta]$ that contains 0:
#
# $$s = \frac{\beta - \alpha}{q_\max - q_\min}, \qquad z = q_\min - \operatorname{round}(\alpha / s).$$
#
# Inside the range the error is at most half a step, $|r - \hat r| \le s/2$; outside it the
# value is clipped. The range always contains 0 so that 0 is exact: the zero padding of a
# convolution and the zeros that ReLU makes must stay zeros.
#
# **Symmetric quantization** fixes $z = 0$ and uses the narrow range $[-q_\max, q_\max]$ with
# $s = \max|r| / q_\max$. Weights are roughly symmetric around 0, and $z = 0$ removes a term
# from the integer product below. **Per-channel** quantization gives each output channel
# (each row of a Linear's weight, each filter of a convolution) its own scale: a channel with
# small weights then gets small steps instead of sharing the steps of the largest channel.
#
# **The integer product.** For a layer $y = W x + b$ with weights $W = s_w\, W_q$ (symmetric,
# per output channel $o$) and an input $x = s_x\,(x_q - z_x)$ (affine, per tensor):
#
# $$y_o = s_w^{(o)} s_x \Big( \underbrace{\textstyle\sum_k W_q^{(o,k)} x_q^{(k)}}_{\text{int8} \times \text{int8},\ \text{int32 sum}}
#         \; - \; z_x \textstyle\sum_k W_q^{(o,k)} \; + \; b_q^{(o)} \Big), \qquad b_q^{(o)} = \operatorname{round}\!\big(b_o / (s_w^{(o)} s_x)\big).$$
#
# The bias is stored as an int32 with scale $s_w s_x$, the scale of the accumulator, so that it
# joins the integer sum as one more integer term. The sums $\sum_k W_q^{(o,k)}$ of each output
# channel's codes are constants of the layer.
#
# **Exact integer arithmetic on a float BLAS.** NumPy multiplies integer matrices with plain
# loops (an `int32 @ int32` product is 20 to 260 times slower than float32 here: the analysis
# below measures it), but the products of two
# int8 codes are at most $128 \cdot 128 = 2^{14}$ in magnitude and float32 represents every
# integer up to $2^{24}$ exactly. A float32 dot product of $K \le 2^{24} / 2^{14} = 1024$ such
# products is therefore exact, whatever order the BLAS adds them in: every partial sum is an
# integer below $2^{24}$. Longer sums are split into chunks of 1024, each exact, added in int32.
#
# **Fake quantization and the straight-through estimator.** Training sees the rounding through
# $\operatorname{fq}(r) = s\,(\operatorname{clip}(\operatorname{round}(r/s) + z) - z)$, whose derivative is 0 almost
# everywhere. The straight-through estimator (Bengio et al., 2013) uses instead
#
# $$\frac{\partial\, \operatorname{fq}(r)}{\partial r} \approx \mathbb{1}\big[q_\min \le \operatorname{round}(r/s) + z \le q_\max\big]:$$
#
# the identity inside the range, 0 where the value was clipped.

# %%
#| export
import copy
import os

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import (
    Identity,
    Linear,
    Module,
    Sequential,
    register_module_forward_pre_hook,
)
from tinytorch.core.spatial import (
    BatchNorm2d,
    Conv2d,
    batch_norm,
    conv_output_size,
    conv_pair,
    im2col,
)
from tinytorch.core.tensor import (
    Tensor,
    as_tensor,
    check_positive_int,
    register_backward,
)
from tinytorch.core.training import save_checkpoint

SMALLEST_SCALE = float(np.finfo(np.float32).eps)  # a range of width 0 still gets a positive scale (PyTorch's rule)
INT8 = np.int8  # the storage dtype of every code, whatever the bit width (2 to 8 bits)

# %% [markdown]
# ## Step 1: from a range to a scale and a zero point
#
# `quantization_range(bits, symmetric)` gives the codes a `bits`-bit signed integer may take:
# $[-2^{b-1}, 2^{b-1}-1]$ for affine quantization, the narrow $[-(2^{b-1}-1), 2^{b-1}-1]$ for
# symmetric. `calculate_qparams(min_val, max_val, ...)` turns a range into a float32 scale and an
# int32 zero point, elementwise: scalars give one scale for a tensor, arrays one per channel.
# The given code widens the range to contain 0 and refuses infinities.

# %%
#| export
def check_bits(bits):
    """`bits` as an int, or a ValueError: codes of 2 to 8 bits are stored in int8."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(
            f"bits must be an int from 2 to 8 (the codes are stored as int8), got {bits!r}; use bits=8 for int8"
        )
    return int(bits)


def quantization_range(bits=8, symmetric=False):
    """(qmin, qmax) of a `bits`-bit signed code; symmetric uses the narrow range [-qmax, qmax].

    TODO: qmax = 2**(bits-1) - 1; qmin = -qmax for symmetric, -qmax - 1 otherwise.
    HINT: 8 bits: (-128, 127) affine, (-127, 127) symmetric.
    """
    bits = check_bits(bits)
    ### BEGIN SOLUTION
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax
    ### END SOLUTION


def calculate_qparams(min_val, max_val, bits=8, symmetric=False):
    """(scale float32, zero_point int32) that map [min_val, max_val] onto the codes, elementwise.

    The range is first widened to contain 0, so that 0 is represented exactly.

    TODO: symmetric: scale = max(-min, max) / qmax, zero_point 0. Affine: scale = (max - min) /
          (qmax - qmin), zero_point = clip(qmin - round(min / scale), qmin, qmax). Never let the
          scale fall below SMALLEST_SCALE (a range of width 0).
    HINT: np.maximum(scale, SMALLEST_SCALE); return scale.astype(np.float32), zero_point.astype(np.int32).
    """
    qmin, qmax = quantization_range(bits, symmetric)
    min_val = np.minimum(np.asarray(min_val, dtype=np.float64), 0.0)
    max_val = np.maximum(np.asarray(max_val, dtype=np.float64), 0.0)
    if not (np.all(np.isfinite(min_val)) and np.all(np.isfinite(max_val))):
        raise ValueError("calculate_qparams: the range is not finite (an inf or NaN reached the observer); "
                         "check the model's activations, or use a percentile observer")
    ### BEGIN SOLUTION
    if symmetric:
        scale = np.maximum(np.maximum(-min_val, max_val) / qmax, SMALLEST_SCALE)
        zero_point = np.zeros(scale.shape)
    else:
        scale = np.maximum((max_val - min_val) / (qmax - qmin), SMALLEST_SCALE)
        zero_point = np.clip(qmin - np.round(min_val / scale), qmin, qmax)
    return scale.astype(np.float32), zero_point.astype(np.int32)
    ### END SOLUTION

# %% [markdown]
# ### Test: ranges, scales and zero points

# %%
import tinytorch.core.autograd  # noqa: F401  (module 05: switches backward() on)


def test_unit_qparams():
    assert quantization_range(8) == (-128, 127) and quantization_range(8, symmetric=True) == (-127, 127)
    assert quantization_range(4) == (-8, 7)
    scale, zero_point = calculate_qparams(-1.0, 3.0)
    assert scale.dtype == np.float32 and zero_point.dtype == np.int32
    assert np.isclose(scale, 4.0 / 255) and zero_point == -128 + round(1.0 / (4.0 / 255))
    scale, zero_point = calculate_qparams(np.array([-2.0, -0.5]), np.array([1.0, 0.25]), symmetric=True)
    np.testing.assert_allclose(scale, [2.0 / 127, 0.5 / 127], rtol=1e-6)
    assert np.all(zero_point == 0)
    ### BEGIN HIDDEN TESTS
    scale, zero_point = calculate_qparams(0.5, 2.0)  # widened to [0, 2]: 0 is the lowest code
    assert zero_point == -128 and np.isclose(scale, 2.0 / 255)
    assert calculate_qparams(0.0, 0.0)[0] == np.float32(SMALLEST_SCALE)
    ### END HIDDEN TESTS
    try:
        quantization_range(9)
        raise AssertionError("9 bits do not fit int8")
    except ValueError as error:
        assert "from 2 to 8" in str(error)
    print("qparams: ok")


test_unit_qparams()

# %% [markdown]
# ## Step 2: a quantized tensor holds int8
#
# `quantize_array` computes the codes; `QuantizedTensor` keeps them with their meaning: the
# `int8` array `data`, the float32 `scale` and the int32 `zero_point` (shape `()` per tensor,
# `(C,)` per channel along `axis`). Its `nbytes` is the sum of the three arrays' bytes, and
# `dequantize()` gives back float32 values $s\,(q - z)$.
#
# Rounding is `np.rint` (half to even) of $x \cdot (1/s)$ with $1/s$ in the input's dtype, the
# arithmetic of PyTorch's quantization kernels, so that the codes match PyTorch's.

# %%
#| export
def _along(values, axis, ndim):
    """A per-channel array shaped to broadcast along `axis` of an ndim-dimensional array (scalars as they are)."""
    values = np.asarray(values)
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def quantize_array(x, scale, zero_point, bits=8, symmetric=False, axis=None):
    """int8 codes clip(rint(x / scale) + zero_point, qmin, qmax); per channel along `axis` when given.

    TODO: multiply x by 1/scale (in x's dtype), round with np.rint, add the zero point, clip to
          quantization_range(bits, symmetric), and store as int8.
    HINT: `_along(scale, axis, x.ndim)` shapes a per-channel scale to broadcast; do the arithmetic
          in floating point and convert with `.astype(INT8)` only at the end.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"quantize_array: expects floating-point values, got {x.dtype}")
    qmin, qmax = quantization_range(bits, symmetric)
    ### BEGIN SOLUTION
    inverse = (1 / _along(scale, axis, x.ndim)).astype(x.dtype)
    codes = x * inverse
    np.rint(codes, out=codes)
    codes += _along(zero_point, axis, x.ndim).astype(x.dtype)
    np.clip(codes, qmin, qmax, out=codes)
    return codes.astype(INT8)
    ### END SOLUTION


class QuantizedTensor:
    """int8 codes with the scale and zero point that give them meaning: real = scale * (code - zero_point).

    data: int8 array; scale: float32 array, shape () (per tensor) or (C,) (per channel along
    `axis`); zero_point: int32 array of the scale's shape.
    """

    def __init__(self, data, scale, zero_point, axis=None, bits=8, symmetric=False):
        data, scale, zero_point = np.asarray(data), np.asarray(scale), np.asarray(zero_point)
        if data.dtype != INT8:
            raise TypeError(f"QuantizedTensor: the codes must be int8, got {data.dtype}; quantize with quantize_array")
        channels = () if axis is None else (data.shape[axis],)
        if scale.shape != channels or zero_point.shape != channels:
            raise ValueError(f"QuantizedTensor: scale {scale.shape} and zero_point {zero_point.shape} must have shape "
                             f"{channels} ({'per tensor' if axis is None else f'one per channel along axis {axis}'})")
        self.data = data
        self.scale = scale.astype(np.float32, copy=False)
        self.zero_point = zero_point.astype(np.int32, copy=False)
        self.axis, self.bits, self.symmetric = axis, check_bits(bits), bool(symmetric)

    @classmethod
    def quantize(cls, x, scale, zero_point, axis=None, bits=8, symmetric=False):
        """Quantize float values `x` (a Tensor or an array) with the given scale and zero point."""
        x = x.data if isinstance(x, Tensor) else np.asarray(x)
        return cls(quantize_array(x, scale, zero_point, bits, symmetric, axis), scale, zero_point, axis, bits, symmetric)

    @property
    def shape(self):
        return self.data.shape

    @property
    def nbytes(self):
        """Bytes of the codes, the scales and the zero points: what this tensor really occupies."""
        return self.data.nbytes + self.scale.nbytes + self.zero_point.nbytes

    def dequantize(self):
        """The float32 values scale * (code - zero_point), as a Tensor.

        TODO: subtract the zero point from the codes and multiply by the scale, per channel along
              self.axis when it is set; return a float32 Tensor.
        HINT: `_along(self.scale, self.axis, self.data.ndim)`; convert the codes to float32 first.
        """
        ### BEGIN SOLUTION
        ndim = self.data.ndim
        values = self.data.astype(np.float32) - _along(self.zero_point, self.axis, ndim).astype(np.float32)
        values *= _along(self.scale, self.axis, ndim)
        return Tensor(values, dtype=np.float32)
        ### END SOLUTION

    def __repr__(self):
        where = "per tensor" if self.axis is None else f"per channel (axis {self.axis})"
        return (f"QuantizedTensor(shape={self.shape}, dtype=int8, bits={self.bits}, {where}, "
                f"{'symmetric' if self.symmetric else 'affine'}, nbytes={self.nbytes:,})")

# %% [markdown]
# ### Test: int8 storage and the round-trip error

# %%
def test_unit_quantized_tensor():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 3.0, size=(64, 32)).astype(np.float32)
    scale, zero_point = calculate_qparams(x.min(), x.max())
    q = QuantizedTensor.quantize(x, scale, zero_point)
    assert q.data.dtype == np.int8 and q.nbytes == 64 * 32 + 4 + 4, "one byte per code, plus scale and zero point"
    error = np.abs(q.dequantize().numpy() - x)
    assert error.max() <= scale / 2 * (1 + 1e-5), "inside the range the error is at most half a step"
    weights = rng.standard_normal((8, 16)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)[:, None]
    w_scale, w_zero = calculate_qparams(weights.min(axis=1), weights.max(axis=1), symmetric=True)
    qw = QuantizedTensor.quantize(weights, w_scale, w_zero, axis=0, symmetric=True)
    assert qw.data.min() >= -127 and np.all(np.abs(qw.data).max(axis=1) == 127), "each row uses its full range"
    assert np.all(np.abs(qw.dequantize().numpy() - weights) <= w_scale[:, None] / 2 * (1 + 1e-5))
    ### BEGIN HIDDEN TESTS
    clipped = QuantizedTensor.quantize(np.array([100.0, -100.0], np.float32), scale, zero_point)
    assert list(clipped.data) == [127, -128]
    ### END HIDDEN TESTS
    print("QuantizedTensor: ok")


test_unit_quantized_tensor()

# %% [markdown]
# ## Step 3: observers calibrate the ranges
#
# A weight's range is known: read it from the weight. An activation's range depends on the
# data, so the model runs on a few batches of a **calibration split** (held out of the training
# data, never the test split: choosing ranges on the test images would be fitting to them) while
# an **observer** at each layer's input records what flows by. Three observers:
#
# - `MinMaxObserver`: the smallest and largest value ever seen. Exact coverage, but one outlier
#   stretches the range and coarsens every step.
# - `MovingAverageMinMaxObserver`: an exponential moving average of each batch's min and max
#   (the first batch sets them), $m \leftarrow m + c\,(m_\text{batch} - m)$: what PyTorch uses for
#   quantization-aware training, where the values drift as the weights train.
# - `PercentileObserver`: the `percentile`-th and `(100 - percentile)`-th percentiles of a random
#   sample of the values, which clips the rare outliers to give the common values finer steps.
#
# Each is called on a NumPy array; `axis` (min/max observers) keeps one range per channel.
# `calculate_qparams` refuses an observer that saw nothing.

# %%
#| export
class Observer:
    """Records the values that flow through one point of a model; proposes the range to quantize.

    Call it on each batch (a NumPy array); `min_val` / `max_val` hold the range (None until it
    saw data), one value per channel along `axis` when that is set.
    """

    def __init__(self, axis=None):
        self.axis = axis
        self.min_val = self.max_val = None

    def __call__(self, x):
        x = x.data if isinstance(x, Tensor) else np.asarray(x)
        if x.size == 0:
            raise ValueError(f"{type(self).__name__}: got an empty batch of shape {x.shape}")
        self.observe(x)
        return x

    def observe(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define observe(x)")

    def batch_range(self, x):
        """(min, max) of one batch, over every axis but `axis`."""
        axes = None if self.axis is None else tuple(a for a in range(x.ndim) if a != self.axis % x.ndim)
        return x.min(axis=axes), x.max(axis=axes)

    @property
    def calibrated(self):
        return self.min_val is not None

    def calculate_qparams(self, bits=8, symmetric=False):
        """(scale, zero_point) for the range seen so far."""
        if not self.calibrated:
            raise RuntimeError(f"{type(self).__name__}: uncalibrated, it has seen no data; run the model on "
                               "calibration batches first (quantize(model, calibration_loader) does)")
        return calculate_qparams(self.min_val, self.max_val, bits, symmetric)

    def __repr__(self):
        return f"{type(self).__name__}(min_val={self.min_val}, max_val={self.max_val})"


class MinMaxObserver(Observer):
    """The running minimum and maximum of every value seen."""

    def observe(self, x):
        """Widen the range to include this batch.

        TODO: take the batch's (min, max) with `self.batch_range(x)`; keep the smaller minimum
              and the larger maximum of the batch and what was seen before.
        HINT: the first batch sets both (`self.min_val is None`).
        """
        ### BEGIN SOLUTION
        low, high = self.batch_range(x)
        if self.min_val is None:
            self.min_val, self.max_val = low, high
        else:
            self.min_val, self.max_val = np.minimum(self.min_val, low), np.maximum(self.max_val, high)
        ### END SOLUTION


class MovingAverageMinMaxObserver(Observer):
    """An exponential moving average of each batch's min and max (PyTorch's QAT default)."""

    def __init__(self, averaging_constant=0.01, axis=None):
        super().__init__(axis)
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"MovingAverageMinMaxObserver: averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = float(averaging_constant)

    def observe(self, x):
        """Move the range a fraction `averaging_constant` towards this batch's (min, max).

        TODO: the first batch sets the range; later ones move it: m += c * (batch_m - m).
        HINT: `self.batch_range(x)` gives the batch's (min, max).
        """
        ### BEGIN SOLUTION
        low, high = self.batch_range(x)
        if self.min_val is None:
            self.min_val, self.max_val = low, high
        else:
            c = self.averaging_constant
            self.min_val = self.min_val + c * (low - self.min_val)
            self.max_val = self.max_val + c * (high - self.max_val)
        ### END SOLUTION


class PercentileObserver(Observer):
    """The (100 - p)-th and p-th percentiles of a random sample of the values seen (per tensor)."""

    def __init__(self, percentile=99.99, samples_per_batch=65_536, max_samples=1_048_576, seed=0):
        super().__init__(axis=None)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], got {percentile}")
        self.percentile = float(percentile)
        self.samples_per_batch = check_positive_int("PercentileObserver", "samples_per_batch", samples_per_batch)
        self.max_samples = check_positive_int("PercentileObserver", "max_samples", max_samples)
        self.rng = np.random.default_rng(seed)
        self.samples = np.empty(0, dtype=np.float32)

    def observe(self, x):
        """Add a random sample of this batch's values; set the range from the percentiles of all samples.

        TODO: draw up to samples_per_batch values of x (all of them when x is smaller), append them
              to self.samples (keep at most max_samples, a random subset), and set min_val /
              max_val to the (100 - percentile)-th and percentile-th percentiles.
        HINT: `self.rng.choice(x.size, size, replace=False)` on `x.reshape(-1)`; `np.percentile`.
        """
        ### BEGIN SOLUTION
        flat = x.reshape(-1).astype(np.float32, copy=False)
        if flat.size > self.samples_per_batch:
            flat = flat[self.rng.choice(flat.size, self.samples_per_batch, replace=False)]
        samples = np.concatenate([self.samples, flat])
        if samples.size > self.max_samples:
            samples = samples[self.rng.choice(samples.size, self.max_samples, replace=False)]
        self.samples = samples
        self.min_val, self.max_val = np.percentile(samples, [100.0 - self.percentile, self.percentile])
        ### END SOLUTION


OBSERVERS = {"minmax": MinMaxObserver, "moving_average": MovingAverageMinMaxObserver, "percentile": PercentileObserver}


def make_observer(observer="minmax", **options):
    """A new observer: a name in OBSERVERS ("minmax", "moving_average", "percentile") or an Observer subclass."""
    if isinstance(observer, type) and issubclass(observer, Observer):
        return observer(**options)
    if isinstance(observer, str) and observer in OBSERVERS:
        return OBSERVERS[observer](**options)
    raise ValueError(f"unknown observer {observer!r}; choose one of {', '.join(map(repr, OBSERVERS))} "
                     "or pass an Observer subclass")

# %% [markdown]
# ### Test: what each observer reports

# %%
def test_unit_observers():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((32, 10)).astype(np.float32) * (i + 1) for i in range(4)]
    minmax = make_observer("minmax")
    for batch in batches:
        minmax(batch)
    everything = np.concatenate(batches)
    assert minmax.min_val == everything.min() and minmax.max_val == everything.max()
    moving = make_observer("moving_average", averaging_constant=0.5)
    for batch in batches:
        moving(batch)
    expected = batches[0].max()
    for batch in batches[1:]:
        expected += 0.5 * (batch.max() - expected)
    assert np.isclose(moving.max_val, expected)
    outlier = np.concatenate([rng.standard_normal(100_000).astype(np.float32), [1000.0]])
    percentile = make_observer("percentile", percentile=99.9)
    percentile(outlier)
    assert 2.5 < percentile.max_val < 4.0, "the 99.9th percentile of N(0, 1) is about 3.1, not the outlier"
    per_channel = MinMaxObserver(axis=0)
    per_channel(batches[0])
    np.testing.assert_array_equal(per_channel.max_val, batches[0].max(axis=1))
    ### BEGIN HIDDEN TESTS
    assert make_observer(MinMaxObserver).min_val is None
    ### END HIDDEN TESTS
    try:
        make_observer("histogramm")
        raise AssertionError("an unknown observer name must be refused")
    except ValueError as error:
        assert "minmax" in str(error)
    print("observers: ok")


test_unit_observers()

# %% [markdown]
# ## Step 4: integer matrix products at BLAS speed
#
# `integer_matmul(a, b)` multiplies int8 matrices into int32, exactly. The obvious way,
# `a.astype(np.int32) @ b.astype(np.int32)`, is exact but runs NumPy's integer loop, 20 to 260
# times slower than a float32 BLAS product (measured in the analysis below). So convert the
# codes to float32, which holds them exactly, and multiply with BLAS: each product of two codes
# is at most $2^{14}$ in magnitude, so a sum of up to `EXACT_FLOAT32_TERMS` = 1024 of them stays
# below $2^{24}$ and no partial sum ever rounds. A longer inner dimension is cut into chunks of
# 1024; each chunk's exact float32 result becomes int32 and the chunks are added in int32.
#
# The conversion is not free: it writes a float32 array four times the size of the int8 one.
# With a batch of 64 the product's arithmetic hides it; at batch 1 the product reads each weight
# once, and converting the whole weight first would cost more than the product. So for a few
# rows (`SMALL_BATCH_ROWS`) the given `_products_in_tiles` converts the weight one cache-sized
# tile at a time into a reused buffer and multiplies tile by tile: no float32 copy of the
# weight ever exists, and the converted tile is read while it is still in the cache.

# %%
#| export
EXACT_FLOAT32_TERMS = 2**24 // (128 * 128)  # int8 x int8 products summed exactly in float32 (1024)


SMALL_BATCH_ROWS = 16  # at most this many rows of `a`: convert `b` tile by tile (see _products_in_tiles)
TILE_VALUES = 2**16  # float32 values of one tile: 256 KiB, which stays in the CPU's cache


def _products_in_tiles(a32, b):
    """a32 (M, K) float32 @ b (K, N) int8 for a few rows M (K <= 1024), converting b one tile at a time.

    With one or a few input rows (batch-1 inference) the product reads each weight once, so
    converting the whole int8 weight to float32 first would cost more than the product itself:
    a full-size float32 array written to memory and read back. A tile of TILE_VALUES float32
    values, reused, stays in the cache; no float32 copy of the weight exists at any moment.
    """
    K, N = b.shape
    width = max(1, TILE_VALUES // max(K, 1))
    tile = np.empty((width, K), np.float32).T if b.flags.f_contiguous else np.empty((K, width), np.float32)
    out = np.empty((a32.shape[0], N), np.float32)
    for start in range(0, N, width):
        stop = min(start + width, N)
        block = tile[:, :stop - start]
        np.copyto(block, b[:, start:stop])  # int8 -> float32, exact
        np.matmul(a32, block, out=out[:, start:stop])
    return out


def integer_matmul(a, b, dtype=np.int32):
    """a (M, K) int8 @ b (K, N) int8 -> (M, N) int32, exactly, through float32 BLAS products.

    dtype=np.float32 returns the same integers as float32 values, without the pass that converts
    them to int32: exact for K <= EXACT_FLOAT32_TERMS (one chunk: every value is below 2**24);
    a longer sum is added in int32 and then converted, rounded like any float32. The quantized
    layers use it, since they scale the accumulator to float32 next anyway.

    TODO: convert both to float32; for each chunk of at most EXACT_FLOAT32_TERMS along K, compute
          the float32 product and add it, converted to int32, to the int32 result. Return the
          result in `dtype`; with one chunk and dtype float32, return the float32 product as it is.
    HINT: one chunk is the common case (K <= 1024): `(a32 @ b32).astype(np.int32)`. For a few rows
          of `a` (batch-1 inference), `_products_in_tiles(a32, b)` computes that chunk without
          converting all of `b` at once.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != INT8 or b.dtype != INT8:
        raise TypeError(f"integer_matmul: expects int8 operands, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"integer_matmul: cannot multiply shapes {a.shape} and {b.shape}; expects (M, K) @ (K, N)")
    if dtype not in (np.int32, np.float32):
        raise ValueError(f"integer_matmul: dtype must be np.int32 or np.float32, got {dtype!r}")
    ### BEGIN SOLUTION
    a32 = a.astype(np.float32)
    starts = range(0, max(a.shape[1], 1), EXACT_FLOAT32_TERMS)
    if len(starts) == 1:
        product = _products_in_tiles(a32, b) if a.shape[0] <= SMALL_BATCH_ROWS else a32 @ b.astype(np.float32)
        return product if dtype == np.float32 else product.astype(np.int32)
    b32 = b.astype(np.float32)
    result = np.zeros((a.shape[0], b.shape[1]), np.int32)
    for start in starts:
        chunk = slice(start, start + EXACT_FLOAT32_TERMS)
        result += (a32[:, chunk] @ b32[chunk]).astype(np.int32)
    return result if dtype == np.int32 else result.astype(np.float32)
    ### END SOLUTION

# %% [markdown]
# ### Test: bit-exact against the int32 product

# %%
def test_unit_integer_matmul():
    rng = np.random.default_rng(0)
    for M, K, N in [(3, 5, 4), (16, 1024, 8), (5, 2500, 7)]:
        a = rng.integers(-128, 128, size=(M, K)).astype(np.int8)
        b = rng.integers(-128, 128, size=(K, N)).astype(np.int8)
        result = integer_matmul(a, b)
        assert result.dtype == np.int32
        np.testing.assert_array_equal(result, a.astype(np.int32) @ b.astype(np.int32))
    worst = np.full((2, 3000), -128, np.int8)
    assert integer_matmul(worst, worst.T.copy())[0, 0] == 3000 * 128 * 128, "the largest products, summed exactly"
    print("integer_matmul: ok")


test_unit_integer_matmul()

# %% [markdown]
# ## Step 5: quantized layers
#
# `QuantizedLinear` and `QuantizedConv2d` hold, as **buffers** (so that `state_dict()` and the
# checkpoint carry them): the int8 `weight`, its float32 `weight_scale` and int32
# `weight_zero_point` (symmetric: zeros; one per output channel, or one for the tensor), the
# int32 `bias` with scale $s_w s_x$, and the calibrated float32 `input_scale` and int32
# `input_zero_point`. No float32 weight survives the conversion.
#
# `forward` quantizes its float input with the *calibrated* input scale, runs `integer_matmul`
# (the exact integer sums of int8 products, handed over as float32 values to save a conversion
# pass), and rescales: $y = s_x s_w \cdot \text{acc} + s_x s_w (b_q - z_x \sum_k W_q)$ per output
# channel, the second term an integer constant of the layer (cached until a buffer changes)
# times the scale, added in float32. Adding it to the integer sum in int32 first would give the
# same $y$ up to the last float32 rounding, one pass over the output slower. The convolution pads its
# int8 input with the code of 0, $z_x$ (padding with the code 0 would pad with the real value
# $-s_x z_x$), then runs module 09's `im2col` on the int8 codes.
#
# `from_float(layer, input_scale, input_zero_point, per_channel, bits)` builds one from a float
# layer; a layer made by the constructor is empty (zeros, input scale 0) and refuses to run until
# a quantized checkpoint is loaded into it.

# %%
#| export
def weight_qparams(weight, per_channel=True, bits=8):
    """Symmetric (scale, zero_point) of a weight: one per output channel (axis 0), or one per tensor."""
    weight = np.asarray(weight)
    axes = tuple(range(1, weight.ndim)) if per_channel else None
    return calculate_qparams(weight.min(axis=axes), weight.max(axis=axes), bits, symmetric=True)


def quantize_bias(bias, weight_scale, input_scale, out_features):
    """The int32 bias with scale weight_scale * input_scale (zeros when the layer has none)."""
    if bias is None:
        return np.zeros(out_features, np.int32)
    scale = weight_scale.astype(np.float64) * np.float64(input_scale)
    codes = np.rint(np.asarray(bias, np.float64) / scale)
    return np.clip(codes, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


class _QuantizedLayer(Module):
    """What QuantizedLinear and QuantizedConv2d share: the buffers, the checks, the rescaling."""

    def _register_quantized_state(self, out_features, weight_shape, per_channel, bits):
        self.bits, self.per_channel = check_bits(bits), bool(per_channel)
        channels = (out_features,) if per_channel else ()
        self.register_buffer("weight", Tensor(np.zeros(weight_shape, INT8), dtype=INT8))
        self.register_buffer("weight_scale", Tensor(np.ones(channels, np.float32), dtype=np.float32))
        self.register_buffer("weight_zero_point", Tensor(np.zeros(channels, np.int32), dtype=np.int32))
        self.register_buffer("bias", Tensor(np.zeros(out_features, np.int32), dtype=np.int32))
        self.register_buffer("input_scale", Tensor(np.zeros((), np.float32), dtype=np.float32))
        self.register_buffer("input_zero_point", Tensor(np.zeros((), np.int32), dtype=np.int32))
        self._constants = None  # (buffer versions, int32 offsets, float32 multipliers), see _integer_constants

    def _load_from_float(self, weight, bias, input_scale, input_zero_point):
        """Quantize a float weight and bias into the buffers, for the given calibrated input qparams."""
        input_scale, input_zero_point = np.asarray(input_scale), np.asarray(input_zero_point)
        if input_scale.shape != () or not input_scale > 0:
            raise ValueError(f"{type(self).__name__}.from_float: input_scale must be one positive number (the "
                             f"calibrated scale of the layer's input), got {input_scale!r}")
        w_scale, w_zero = weight_qparams(weight, self.per_channel, self.bits)
        codes = quantize_array(weight, w_scale, w_zero, self.bits, symmetric=True, axis=0 if self.per_channel else None)
        per_channel_scale = np.broadcast_to(w_scale, (weight.shape[0],))
        self.weight.data = codes
        self.weight_scale.data, self.weight_zero_point.data = w_scale, w_zero
        self.bias.data = quantize_bias(bias, per_channel_scale, input_scale, weight.shape[0])
        self.input_scale.data = input_scale.astype(np.float32)
        self.input_zero_point.data = input_zero_point.astype(np.int32)
        return self

    @property
    def quantized_weight(self):
        """The weight as a QuantizedTensor (views of the buffers, no copy)."""
        return QuantizedTensor(self.weight.data, self.weight_scale.data, self.weight_zero_point.data,
                               axis=0 if self.per_channel else None, bits=self.bits, symmetric=True)

    def _quantize_input(self, x):
        if not self.input_scale.data > 0:
            raise RuntimeError(f"{type(self).__name__}: uncalibrated (its input scale is 0); build it with "
                               "quantize(model, calibration_loader) or convert(qat_model), or load a quantized checkpoint")
        if x.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: expects a floating-point input, got {x.dtype}")
        return quantize_array(x.data, self.input_scale.data, self.input_zero_point.data, self.bits)

    def _integer_constants(self):
        """(float32 s_x * s_w, float32 s_x * s_w * (b_q - z_x * sum_k W_q)) per output channel, cached.

        y = s_x s_w (acc + b_q - z_x sum_k W_q) is computed as acc * multiplier + shift in float32:
        the integer offset is exact in int64 here; only the last float32 rounding differs from
        converting the int32 sum acc + offset (well within one step s_x s_w of the accumulator).

        The cache is keyed on the buffers' versions and arrays: load_state_dict (copy_) or a new
        assignment recomputes it.
        """
        buffers = (self.weight, self.weight_scale, self.weight_zero_point, self.bias, self.input_scale, self.input_zero_point)
        key = tuple((t.version, id(t.data)) for t in buffers)
        if self._constants is None or self._constants[0] != key:
            codes = self.weight.data.reshape(self.weight.shape[0], -1)
            row_sums = codes.sum(axis=1, dtype=np.int64)
            offsets = self.bias.data.astype(np.int64) - np.int64(self.input_zero_point.data) * row_sums
            scale = np.broadcast_to(self.weight_scale.data, (codes.shape[0],))
            multipliers = scale.astype(np.float64) * np.float64(self.input_scale.data)
            self._constants = (key, multipliers.astype(np.float32), (multipliers * offsets).astype(np.float32))
        return self._constants[1], self._constants[2]

    def extra_repr(self):
        return (f"bits={self.bits}, {'per-channel' if self.per_channel else 'per-tensor'} weights, "
                f"input_scale={float(self.input_scale.data):.4g}, input_zero_point={int(self.input_zero_point.data)}")


class QuantizedLinear(_QuantizedLayer):
    """y = x @ W.T + b with an int8 weight, an int32 bias and int32 accumulation; float32 in and out."""

    def __init__(self, in_features, out_features, per_channel=True, bits=8):
        super().__init__()
        self.in_features = check_positive_int("QuantizedLinear", "in_features", in_features)
        self.out_features = check_positive_int("QuantizedLinear", "out_features", out_features)
        self._register_quantized_state(self.out_features, (self.out_features, self.in_features), per_channel, bits)

    @classmethod
    def from_float(cls, linear, input_scale, input_zero_point, per_channel=True, bits=8):
        """The quantized version of a float Linear, for an input calibrated to (input_scale, input_zero_point)."""
        layer = cls(linear.in_features, linear.out_features, per_channel, bits)
        bias = None if linear.bias is None else linear.bias.data
        return layer._load_from_float(linear.weight.data, bias, input_scale, input_zero_point)

    def forward(self, x):
        """Quantize x (..., in_features), multiply in int8/int32, rescale to float32 (..., out_features).

        TODO: codes = self._quantize_input(x); acc = integer_matmul of the codes (as (N, K)) with
              the weight's transpose, as float32; out = acc * multipliers + shifts.
        HINT: `multipliers, shifts = self._integer_constants()`; `integer_matmul(..., dtype=np.float32)`;
              scale in place (`acc *= multipliers`); reshape back to (..., out_features).
        """
        x = as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expected input with last dimension {self.in_features}, got shape {x.shape}")
        ### BEGIN SOLUTION
        codes = self._quantize_input(x)
        multipliers, shifts = self._integer_constants()
        out = integer_matmul(codes.reshape(-1, self.in_features), self.weight.data.T, dtype=np.float32)
        out *= multipliers
        out += shifts
        return Tensor(out.reshape(*x.shape[:-1], self.out_features), dtype=np.float32)
        ### END SOLUTION

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " + super().extra_repr()


class QuantizedConv2d(_QuantizedLayer):
    """2-D convolution (groups=1) with an int8 weight, an int32 bias and int32 accumulation; NCHW float32 in and out."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, per_channel=True, bits=8):
        super().__init__()
        self.in_channels = check_positive_int("QuantizedConv2d", "in_channels", in_channels)
        self.out_channels = check_positive_int("QuantizedConv2d", "out_channels", out_channels)
        self.kernel_size, self.stride = conv_pair(kernel_size, "kernel_size"), conv_pair(stride, "stride")
        self.padding, self.dilation = conv_pair(padding, "padding"), conv_pair(dilation, "dilation")
        weight_shape = (self.out_channels, self.in_channels) + self.kernel_size
        self._register_quantized_state(self.out_channels, weight_shape, per_channel, bits)

    @classmethod
    def from_float(cls, conv, input_scale, input_zero_point, per_channel=True, bits=8):
        """The quantized version of a float Conv2d (groups=1), for an input calibrated to (input_scale, input_zero_point)."""
        if conv.groups != 1:
            raise ValueError(f"QuantizedConv2d: grouped convolutions (groups={conv.groups}) are not supported; "
                             "keep that layer in float32")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    per_channel, bits)
        bias = None if conv.bias is None else conv.bias.data
        return layer._load_from_float(conv.weight.data, bias, input_scale, input_zero_point)

    def forward(self, x):
        """Quantize x (N, C, H, W), pad with the zero point, im2col the codes, multiply in int8/int32, rescale.

        TODO: codes = self._quantize_input(x); pad height and width with the input zero point;
              cols = im2col(padded codes, kernel_size, stride, 0, dilation); acc = integer_matmul(
              weight as (O, K), cols, dtype=np.float32); scale row o by multipliers[o] and add
              shifts[o] while reordering (O, N*Ho*Wo) into (N, O, Ho, Wo).
        HINT: `np.full(padded_shape, zero_point, dtype=INT8)`, then copy the codes into its middle;
              `conv_output_size` gives Ho and Wo.
        """
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expected a 4-D input (N, {self.in_channels}, H, W), got shape {x.shape}")
        ### BEGIN SOLUTION
        codes = self._quantize_input(x)
        (ph, pw), N = self.padding, x.shape[0]
        if ph or pw:
            padded = np.full(codes.shape[:2] + (codes.shape[2] + 2 * ph, codes.shape[3] + 2 * pw),
                             self.input_zero_point.data, dtype=INT8)
            padded[:, :, ph:ph + codes.shape[2], pw:pw + codes.shape[3]] = codes
            codes = padded
        Ho = conv_output_size(x.shape[2], self.kernel_size[0], self.stride[0], ph, self.dilation[0])
        Wo = conv_output_size(x.shape[3], self.kernel_size[1], self.stride[1], pw, self.dilation[1])
        cols = im2col(codes, self.kernel_size, self.stride, 0, self.dilation)
        multipliers, shifts = self._integer_constants()
        acc = integer_matmul(self.weight.data.reshape(self.out_channels, -1), cols, dtype=np.float32)
        acc *= multipliers[:, None]
        nchw = np.empty((N, self.out_channels, Ho * Wo), np.float32)
        np.add(acc.reshape(self.out_channels, N, Ho * Wo).transpose(1, 0, 2), shifts[:, None], out=nchw)
        return Tensor(nchw.reshape(N, self.out_channels, Ho, Wo), dtype=np.float32)
        ### END SOLUTION

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, " + super().extra_repr())

# %% [markdown]
# ### Test: within one step of fake quantization, float32 weights gone
#
# The reference is *fake quantization* in float64: dequantize the input codes and the weight
# codes, multiply in float64 with the float bias. The integer layer differs from it only by the
# rounding of the bias to a multiple of $s_w s_x$, less than one step of the accumulator.

# %%
from tinytorch.core.spatial import conv2d
from tinytorch.core.tensor import manual_seed


def fake_quantized_reference(layer, x, float_bias):
    """The layer's output computed from dequantized codes in float64 (the check of Step 5)."""
    xq = QuantizedTensor.quantize(x, layer.input_scale.data, layer.input_zero_point.data).dequantize().numpy()
    w = layer.quantized_weight.dequantize().numpy().astype(np.float64)
    if isinstance(layer, QuantizedLinear):
        return xq.astype(np.float64) @ w.T + float_bias
    return conv2d(Tensor(xq, dtype=np.float64), Tensor(w, dtype=np.float64), Tensor(float_bias, dtype=np.float64),
                  layer.stride, layer.padding, layer.dilation).numpy()


def test_unit_quantized_layers():
    manual_seed(0)
    rng = np.random.default_rng(0)
    linear = Linear(40, 6)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    scale, zero_point = calculate_qparams(x.min(), x.max())
    q = QuantizedLinear.from_float(linear, scale, zero_point)
    assert q.weight.dtype == np.int8 and q.bias.dtype == np.int32
    assert all(a.dtype != np.float32 or a.size <= 6 for a in q.state_dict().values()), "no float32 weight kept"
    step = q.input_scale.data * q.weight_scale.data
    assert np.all(np.abs(q(x).numpy() - fake_quantized_reference(q, x, linear.bias.data)) <= step)
    conv = Conv2d(3, 4, 3, padding=1)
    images = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    scale, zero_point = calculate_qparams(images.min(), images.max())
    qc = QuantizedConv2d.from_float(conv, scale, zero_point)
    out = qc(images).numpy()
    assert out.shape == (2, 4, 6, 6)
    step = (qc.input_scale.data * qc.weight_scale.data)[None, :, None, None]
    assert np.all(np.abs(out - fake_quantized_reference(qc, images, conv.bias.data)) <= step), "padding uses the zero point"
    ### BEGIN HIDDEN TESTS
    empty = QuantizedLinear(40, 6)
    try:
        empty(x)
        raise AssertionError("an empty quantized layer must refuse to run")
    except RuntimeError as error:
        assert "uncalibrated" in str(error)
    ### END HIDDEN TESTS
    print("QuantizedLinear, QuantizedConv2d: ok")


test_unit_quantized_layers()

# %% [markdown]
# ## Step 6: fold batch normalisation into the convolution
#
# In eval mode a `BatchNorm2d` after a convolution is an affine map per output channel,
# $\text{bn}(y) = \gamma (y - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$, so it can be folded into
# the convolution before quantizing: with $k = \gamma/\sqrt{\sigma^2+\epsilon}$,
#
# $$W' = k \cdot W \ \text{(per output channel)}, \qquad b' = \beta + k\,(b - \mu).$$
#
# One layer instead of two (no separate normalisation pass at inference), and only $W'$ is
# quantized: quantizing $W$ and then scaling by $k$ in float would not be an integer layer.
# `fold_batchnorm(model)` returns a folded **copy** in eval mode: every Conv2d directly followed
# by a BatchNorm2d in a Sequential gets the folded weight and bias, and the BatchNorm2d becomes an
# `Identity`, so the layer names (and the state-dict keys) of the other layers do not move.

# %%
#| export
def fold_conv_bn(conv, bn):
    """Fold bn's eval-mode affine map into conv's weight and bias, in place (bn itself is unchanged).

    TODO: k = gamma / sqrt(running_var + eps) (gamma = 1 without affine); W' = W * k per output
          channel, b' = beta + k * (b - running_mean) (b = 0 and beta = 0 when absent).
    HINT: compute in float64 and write back in the weight's dtype; a conv without a bias gets a
          new Parameter `conv.bias` (from tinytorch.core.layers import Parameter).
    """
    if bn.running_mean is None:
        raise ValueError("fold_batchnorm: a BatchNorm2d without running statistics (track_running_stats=False) "
                         "has no eval-mode affine map to fold")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fold_batchnorm: BatchNorm2d({bn.num_features}) does not follow a conv with "
                         f"{conv.out_channels} output channels")
    ### BEGIN SOLUTION
    from tinytorch.core.layers import Parameter

    dtype = conv.weight.dtype
    gamma = bn.weight.data.astype(np.float64) if bn.weight is not None else np.ones(bn.num_features)
    beta = bn.bias.data.astype(np.float64) if bn.bias is not None else np.zeros(bn.num_features)
    k = gamma / np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps)
    bias = conv.bias.data.astype(np.float64) if conv.bias is not None else np.zeros(bn.num_features)
    folded_weight = conv.weight.data.astype(np.float64) * k[:, None, None, None]
    folded_bias = beta + k * (bias - bn.running_mean.data.astype(np.float64))
    conv.weight.data = folded_weight.astype(dtype)
    conv.weight.mark_modified()
    if conv.bias is None:
        conv.bias = Parameter(folded_bias.astype(dtype), dtype=dtype)
    else:
        conv.bias.data = folded_bias.astype(dtype)
        conv.bias.mark_modified()
    ### END SOLUTION


def _is_conv(module):
    return isinstance(module, Conv2d)  # QATConv2d (Step 9) is a Conv2d too


def _is_qat(module):
    return isinstance(getattr(module, "input_quantizer", None), Module)  # a QAT layer of Step 9


def fold_batchnorm(model):
    """A copy of `model` in eval mode with each BatchNorm2d folded into the Conv2d before it (now an Identity)."""
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if isinstance(module, Sequential):
            for index in range(len(module) - 1):
                if _is_conv(module[index]) and isinstance(module[index + 1], BatchNorm2d):
                    fold_conv_bn(module[index], module[index + 1])
                    module[index + 1] = Identity()
    return folded

# %% [markdown]
# ### Test: the folded convolution equals conv + BN in eval mode

# %%
def small_cnn(seed=0):
    """conv-BN-ReLU-pool, conv-BN-ReLU, flatten, linear: a CIFAR-shaped model in miniature."""
    from tinytorch.core.layers import Flatten, ReLU
    from tinytorch.core.spatial import MaxPool2d

    manual_seed(seed)
    return Sequential(Conv2d(3, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                      Conv2d(8, 8, 3, padding=1), BatchNorm2d(8), ReLU(), Flatten(), Linear(8 * 4 * 4, 5))


def test_unit_fold_batchnorm():
    model = small_cnn()
    rng = np.random.default_rng(0)
    for bn in (model[1], model[5]):  # statistics and affine parameters away from their defaults
        bn.running_mean.data[...] = rng.standard_normal(8)
        bn.running_var.data[...] = rng.uniform(0.5, 2.0, 8)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, 8) * rng.choice([-1, 1], 8)
        bn.bias.data[...] = rng.standard_normal(8)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    with no_grad():
        expected = model.eval()(x).numpy()
        folded = fold_batchnorm(model)
        np.testing.assert_allclose(folded(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(folded[1], Identity) and isinstance(model[1], BatchNorm2d), "the original is untouched"
    assert folded[0].bias is not None and "1.running_mean" not in folded.state_dict()
    print("fold_batchnorm: ok")

# %% [markdown]
# (The test runs after Step 9 defines `QATConv2d`, which `fold_batchnorm` also folds.)

# %% [markdown]
# ## Step 7: quantize a whole model
#
# `quantize(model, calibration_loader, observer, per_channel, bits)` is post-training
# quantization (PTQ) in four moves:
#
# 1. fold the batch norms into a copy of the model (Step 6);
# 2. put an observer at the input of every Linear and Conv2d (a forward pre-hook, module 03's
#    `register_module_forward_pre_hook`) and run the calibration batches through the copy;
# 3. turn each observer's range into the layer's input `(scale, zero_point)`;
# 4. replace each layer by `QuantizedLinear.from_float` / `QuantizedConv2d.from_float`.
#
# What stays float32: the activations between layers (each quantized layer takes float32 in
# and gives float32 out, quantizing at its input), ReLU and pooling. The weights, the biases,
# the scales: integers and a few floats per channel. `model_bytes(model)` sums the bytes of
# every array in `state_dict()`; `checkpoint_file_bytes(model, path)` saves the model with
# module 07's `save_checkpoint` (safetensors) and returns the file's size.
# `empty_quantized_model(model)` builds the same structure with empty layers, to load a
# quantized checkpoint into without calibrating again.

# %%
#| export
def _inputs_of(batch):
    """The inputs of a loader's batch: (inputs, targets) pairs or inputs alone."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _float_layers(model):
    """(dotted name, layer) of every float Linear and Conv2d to quantize; refuses QAT layers."""
    layers = []
    for name, module in model.named_modules():
        if _is_qat(module):
            raise TypeError(f"quantize: layer '{name}' is a {type(module).__name__}; convert a QAT model with convert()")
        if isinstance(module, (Linear, Conv2d)):
            layers.append((name, module))
    return layers


def _replace(model, name, layer):
    """Put `layer` where the dotted `name` is in `model`."""
    parent_name, _, child = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name] if parent_name else model
    setattr(parent, child, layer)


def _quantized_from_float(layer, scale, zero_point, per_channel, bits):
    kind = QuantizedConv2d if _is_conv(layer) else QuantizedLinear
    return kind.from_float(layer, scale, zero_point, per_channel, bits)


def calibrate(model, calibration_loader, layers, observer="minmax", num_batches=None):
    """Run the calibration batches through `model`; return {layer name: observer of its input}.

    TODO: make one observer per layer (make_observer); register a forward pre-hook that calls a
          layer's observer on its input (args[0]); run the model under no_grad on each batch's
          inputs (at most num_batches batches); remove the hook.
    HINT: `with register_module_forward_pre_hook(hook):` removes it at the end; look layers up by
          `id(module)`. Refuse a loader that gives no batch (ValueError) and a layer that saw
          nothing (RuntimeError), naming it.
    """
    ### BEGIN SOLUTION
    observers = {name: make_observer(observer) for name, _ in layers}
    by_id = {id(layer): observers[name] for name, layer in layers}

    def hook(module, args):
        if id(module) in by_id:
            by_id[id(module)](as_tensor(args[0]).data)

    batches = 0
    with register_module_forward_pre_hook(hook), no_grad():
        for batch in calibration_loader:
            if num_batches is not None and batches >= num_batches:
                break
            model(_inputs_of(batch))
            batches += 1
    if batches == 0:
        raise ValueError("calibrate: the calibration loader gave no batches; pass a loader over a calibration split "
                         "(a slice of the training data, never the test split)")
    for name, obs in observers.items():
        if not obs.calibrated:
            raise RuntimeError(f"calibrate: layer '{name}' saw no input during calibration, so it stays uncalibrated; "
                               "is it used in forward()?")
    return observers
    ### END SOLUTION


def quantize(model, calibration_loader, observer="minmax", per_channel=True, bits=8, num_batches=None):
    """Post-training quantization: a copy of `model` (BN folded) whose Linear/Conv2d layers are int8.

    observer: "minmax", "moving_average", "percentile" (or an Observer subclass) for the
    activations (affine, per tensor); per_channel: symmetric weight scales per output channel
    (else per tensor); bits: 2 to 8; num_batches: calibrate on at most this many batches.
    """
    bits = check_bits(bits)
    make_observer(observer)  # an unknown observer fails before any work
    quantized = fold_batchnorm(model)
    layers = _float_layers(quantized)
    if not layers:
        raise ValueError("quantize: the model has no Linear or Conv2d layer to quantize")
    observers = calibrate(quantized, calibration_loader, layers, observer, num_batches)
    for name, layer in layers:
        scale, zero_point = observers[name].calculate_qparams(bits)
        _replace(quantized, name, _quantized_from_float(layer, scale, zero_point, per_channel, bits))
    return quantized.eval()


def empty_quantized_model(model, per_channel=True, bits=8):
    """The structure that quantize(model, ...) returns, with empty (uncalibrated) layers: load a checkpoint into it."""
    shell = fold_batchnorm(model)
    for name, layer in _float_layers(shell):
        if _is_conv(layer):
            empty = QuantizedConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                    layer.padding, layer.dilation, per_channel, bits)
        else:
            empty = QuantizedLinear(layer.in_features, layer.out_features, per_channel, bits)
        _replace(shell, name, empty)
    return shell.eval()


def model_bytes(model):
    """Bytes of every array in model.state_dict() (parameters and buffers, whatever their dtype)."""
    return int(sum(array.nbytes for array in model.state_dict().values()))


def checkpoint_file_bytes(model, path):
    """Save `model` alone with save_checkpoint (safetensors) at `path`; return the file's size in bytes."""
    save_checkpoint(path, model)
    return os.path.getsize(path)

# %% [markdown]
# ### Test: a trained model, quantized, saved and loaded
#
# A small MLP trained for a few steps on two well-separated Gaussian clouds in 20 dimensions;
# its quantized copy must agree with it on almost every prediction, be about 4x smaller in
# memory, and a checkpoint must load back to the same integers.

# %%
def trained_mlp(seed=0, steps=60):
    """A 20-64-32-3 MLP trained on three Gaussian clouds; returns (model, inputs, labels)."""
    from tinytorch.core.layers import ReLU
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 20)).astype(np.float32) * 2
    labels = rng.integers(0, 3, 600)
    inputs = centres[labels] + rng.standard_normal((600, 20)).astype(np.float32)
    manual_seed(seed)
    model = Sequential(Linear(20, 64), ReLU(), Linear(64, 32), ReLU(), Linear(32, 3))
    optimizer, loss_fn = Adam(model.parameters(), lr=1e-2), CrossEntropyLoss()
    for _ in range(steps):
        loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), inputs, labels


def test_unit_quantize_model():
    import tempfile

    from tinytorch.core.dataloader import DataLoader, TensorDataset
    from tinytorch.core.training import load_checkpoint

    model, inputs, labels = trained_mlp()
    loader = DataLoader(TensorDataset(Tensor(inputs[:200]), Tensor(labels[:200])), batch_size=50)
    quantized = quantize(model, loader)
    assert all(isinstance(quantized[i], QuantizedLinear) for i in (0, 2, 4))
    with no_grad():
        agree = (quantized(inputs[200:]).numpy().argmax(1) == model(inputs[200:]).numpy().argmax(1)).mean()
    assert agree >= 0.98, f"the int8 model agrees with the float model on {agree:.1%} of the predictions"
    # 3,424 weights, 99 output channels, 3 layers: 1 byte a weight, 12 a channel (scale, zero point, bias), 8 a layer
    assert model_bytes(quantized) == 3424 + 99 * 12 + 3 * 8 and model_bytes(model) == (3424 + 99) * 4
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "int8.safetensors")
        size = checkpoint_file_bytes(quantized, path)
        assert size < checkpoint_file_bytes(model, os.path.join(folder, "f32.safetensors")) / 2
        restored = empty_quantized_model(model)
        load_checkpoint(path, model=restored)
    for name, array in quantized.state_dict().items():
        assert restored.state_dict()[name].dtype == array.dtype
        np.testing.assert_array_equal(restored.state_dict()[name], array)
    np.testing.assert_array_equal(restored(inputs[:5]).numpy(), quantized(inputs[:5]).numpy())
    print(f"quantize: ok ({agree:.1%} agreement, {model_bytes(model):,} -> {model_bytes(quantized):,} bytes)")


test_unit_quantize_model()

# %% [markdown]
# ## Step 8: fake quantization with a straight-through estimator
#
# Quantization-aware training (QAT) lets the weights adapt to the rounding they will meet. The
# forward pass uses `fake_quantize(x, scale, zero_point)`, $\operatorname{fq}(x) = s\,(q(x) - z)$,
# still float but with values on the quantization grid; the backward pass passes the gradient
# straight through where $x$ was inside the range and blocks it where $x$ was clipped. It is a
# differentiable op of its own, through module 01's seam: `Tensor.from_op(..., "fake_quantize",
# (x,), inside=mask)` with a backward rule registered for "fake_quantize". (The scale and zero
# point are constants of the op: they come from the observer, not from gradients.)
#
# `FakeQuantize` is the module that an observed activation goes through in QAT: while its
# observer is enabled it updates the range on every training batch; `freeze_observers` stops
# that, and the ranges stay what the int8 model will use.

# %%
#| export
def fake_quantize(x, scale, zero_point, bits=8, symmetric=False, axis=None):
    """dequantize(quantize(x)) as a differentiable op whose gradient is the straight-through estimator.

    TODO: codes = rint(x * (1/scale)) + zero_point (float, in x's dtype); inside = codes within
          [qmin, qmax]; out = (clip(codes) - zero_point) * scale; return
          Tensor.from_op(out, "fake_quantize", (x,), inside=inside).
    HINT: the same arithmetic as quantize_array, without the int8 storage; keep x's dtype.
    """
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"fake_quantize: expects a floating-point tensor, got {x.dtype}")
    qmin, qmax = quantization_range(bits, symmetric)
    ### BEGIN SOLUTION
    dtype = x.dtype
    scale_b = _along(scale, axis, x.ndim).astype(dtype)
    zero_b = _along(zero_point, axis, x.ndim).astype(dtype)
    codes = np.rint(x.data * (1 / scale_b).astype(dtype)) + zero_b
    inside = (codes >= qmin) & (codes <= qmax)
    out = (np.clip(codes, qmin, qmax) - zero_b) * scale_b
    return Tensor.from_op(out.astype(dtype, copy=False), "fake_quantize", (x,), inside=inside)
    ### END SOLUTION


@register_backward("fake_quantize")
def fake_quantize_backward(grad, out):
    """Straight-through estimator: the gradient passes where the input was inside the range, 0 where clipped.

    TODO: return a one-tuple: grad times the saved `inside` mask.
    HINT: `out._saved["inside"]`.
    """
    ### BEGIN SOLUTION
    return (grad * out._saved["inside"],)
    ### END SOLUTION


class FakeQuantize(Module):
    """Observes the tensors that pass (while enabled) and fake-quantizes them with the observed range."""

    def __init__(self, observer="moving_average", bits=8, symmetric=False):
        super().__init__()
        self.observer = make_observer(observer) if not isinstance(observer, Observer) else observer
        self.bits, self.symmetric = check_bits(bits), bool(symmetric)
        self.observer_enabled = True

    def forward(self, x):
        x = as_tensor(x)
        if self.observer_enabled and self.training:
            self.observer(x.data)
        if not self.observer.calibrated:  # eval before any training batch: observe this one
            self.observer(x.data)
        scale, zero_point = self.observer.calculate_qparams(self.bits, self.symmetric)
        return fake_quantize(x, scale, zero_point, self.bits, self.symmetric)

    def extra_repr(self):
        return f"{type(self.observer).__name__}, bits={self.bits}, observer_enabled={self.observer_enabled}"

# %% [markdown]
# ### Test: the straight-through gradient

# %%
def test_unit_fake_quantize():
    from tinytorch.core.autograd import gradcheck

    x = Tensor(np.array([-3.0, -0.4, 0.0, 0.26, 0.9, 5.0]), dtype=np.float64, requires_grad=True)
    out = fake_quantize(x, 0.01, 0, bits=8)  # the range is [-1.28, 1.27]
    np.testing.assert_allclose(out.numpy(), [-1.28, -0.4, 0.0, 0.26, 0.9, 1.27], atol=1e-12)
    cotangent = np.arange(1.0, 7.0)
    out.backward(cotangent)
    np.testing.assert_array_equal(x.grad.numpy(), [0, 2, 3, 4, 5, 0], err_msg="identity inside the range, zero outside")
    # The path that does not round, the weight of a product with a fake-quantized input, checks numerically.
    inputs = np.random.default_rng(0).standard_normal((4, 5))
    gradcheck(lambda w: fake_quantize(Tensor(inputs, dtype=np.float64), 0.05, 3) @ w, (5, 2))
    print("fake_quantize: ok")


test_unit_fake_quantize()

# %% [markdown]
# ## Step 9: quantization-aware training, then conversion
#
# `prepare_qat(model)` copies the model and replaces each Linear and Conv2d by a QAT layer that
# keeps the float weight (it is what trains) but computes with
# `fake_quantize(input)` (observed, affine, per tensor) and `fake_quantize(weight)` (symmetric,
# per output channel, from the weight's current range). The batch norms stay: during the first
# epochs they still learn their statistics; `freeze_batchnorm(model)` then makes them use their
# running statistics (as they will once folded) and `freeze_observers(model)` fixes the
# activation ranges, so that the last steps train exactly what the int8 model computes.
#
# Folding BN after QAT does not undo the weight's training: per-channel symmetric quantization
# commutes with scaling a channel by $k$. The scale of $kW$ is $|k|$ times the scale of $W$, so
# $q(kW) = \operatorname{sign}(k)\, q(W)$ and $\operatorname{fq}(kW) = k\,\operatorname{fq}(W)$: the codes are the same.
#
# `convert(qat_model)` folds the batch norms and builds the quantized layers from the trained
# weights and the frozen input ranges, the same `QuantizedLinear` / `QuantizedConv2d` as PTQ.

# %%
#| export
class QATLinear(Linear):
    """A Linear trained through fake quantization: fq(x) @ fq(W).T + b (weights per channel, symmetric).

    It takes over the Parameters of the Linear it is built from (Module.__init__ only: Linear's
    would draw new random weights).
    """

    def __init__(self, linear, observer="moving_average", per_channel=True, bits=8):
        Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.per_channel, self.bits = bool(per_channel), check_bits(bits)
        self.input_quantizer = FakeQuantize(observer, bits)

    def forward(self, x):
        """Fake-quantize the input and the weight, then the Linear's product.

        TODO: x = self.input_quantizer(x); w = fake_quantize(self.weight, *weight_qparams(...),
              symmetric=True, axis=0 when per channel); out = x @ w.T (+ bias).
        HINT: `weight_qparams(self.weight.data, self.per_channel, self.bits)`.
        """
        ### BEGIN SOLUTION
        x = self.input_quantizer(x)
        scale, zero_point = weight_qparams(self.weight.data, self.per_channel, self.bits)
        weight = fake_quantize(self.weight, scale, zero_point, self.bits, symmetric=True,
                               axis=0 if self.per_channel else None)
        out = x @ weight.T
        return out if self.bias is None else out + self.bias
        ### END SOLUTION


class QATConv2d(Conv2d):
    """A Conv2d trained through fake quantization of its input (per tensor) and weight (per channel).

    It takes over the Parameters of the Conv2d it is built from (Module.__init__ only).
    """

    def __init__(self, conv, observer="moving_average", per_channel=True, bits=8):
        Module.__init__(self)
        if conv.groups != 1:
            raise ValueError(f"QATConv2d: grouped convolutions (groups={conv.groups}) are not supported")
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
            setattr(self, name, getattr(conv, name))
        self.weight, self.bias = conv.weight, conv.bias
        self.per_channel, self.bits = bool(per_channel), check_bits(bits)
        self.input_quantizer = FakeQuantize(observer, bits)

    def forward(self, x):
        """Fake-quantize the input and the weight, then module 09's conv2d."""
        from tinytorch.core.spatial import conv2d

        x = self.input_quantizer(x)
        scale, zero_point = weight_qparams(self.weight.data, self.per_channel, self.bits)
        weight = fake_quantize(self.weight, scale, zero_point, self.bits, symmetric=True,
                               axis=0 if self.per_channel else None)
        return conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)


class FrozenBatchNorm2d(BatchNorm2d):
    """A BatchNorm2d that normalises with its running statistics in training mode too (they no longer change)."""

    @classmethod
    def from_batchnorm(cls, bn):
        if bn.running_mean is None:
            raise ValueError("freeze_batchnorm: a BatchNorm2d without running statistics cannot be frozen")
        frozen = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, dtype=bn.running_mean.dtype)
        frozen.weight, frozen.bias = bn.weight, bn.bias  # the same Parameters: an optimizer keeps training them
        frozen.running_mean, frozen.running_var = bn.running_mean, bn.running_var
        frozen.num_batches_tracked = bn.num_batches_tracked
        return frozen

    def forward(self, x):
        x = as_tensor(x)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def prepare_qat(model, observer="moving_average", per_channel=True, bits=8):
    """A copy of `model` in training mode with QATLinear / QATConv2d layers (batch norms kept)."""
    bits = check_bits(bits)
    make_observer(observer)
    qat = copy.deepcopy(model).train()
    for name, layer in _float_layers(qat):
        _replace(qat, name, (QATConv2d if _is_conv(layer) else QATLinear)(layer, observer, per_channel, bits))
    return qat


def freeze_observers(model):
    """Stop every FakeQuantize of `model` from updating its range; returns the model."""
    for module in model.modules():
        if isinstance(module, FakeQuantize):
            module.observer_enabled = False
    return model


def freeze_batchnorm(model):
    """Replace each BatchNorm2d of `model` (in place) by a FrozenBatchNorm2d sharing its parameters; returns the model."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BatchNorm2d) and not isinstance(module, FrozenBatchNorm2d):
            _replace(model, name, FrozenBatchNorm2d.from_batchnorm(module))
    return model


def convert(qat_model):
    """The int8 model of a QAT model: BN folded, each QAT layer quantized with its observed input range.

    TODO: fold the batch norms (fold_batchnorm copies the model); for every QATLinear and QATConv2d,
          take (scale, zero_point) from its input_quantizer's observer and replace it by the
          quantized layer built with _quantized_from_float.
    HINT: `layer.input_quantizer.observer.calculate_qparams(layer.bits)` raises for an observer
          that saw nothing (a model never run in training mode).
    """
    ### BEGIN SOLUTION
    folded = fold_batchnorm(qat_model)
    layers = [(name, m) for name, m in folded.named_modules() if _is_qat(m)]
    if not layers:
        raise ValueError("convert: the model has no QAT layer; call prepare_qat(model) and train it first")
    for name, layer in layers:
        scale, zero_point = layer.input_quantizer.observer.calculate_qparams(layer.bits)
        _replace(folded, name, _quantized_from_float(layer, scale, zero_point, layer.per_channel, layer.bits))
    return folded.eval()
    ### END SOLUTION

# %% [markdown]
# ### Test: fold, then QAT on the small CNN, then convert

# %%
test_unit_fold_batchnorm()


def test_unit_qat():
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import SGD

    model = small_cnn()
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((32, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, 32)
    qat = prepare_qat(model)
    assert isinstance(qat[0], QATConv2d) and isinstance(qat[8], QATLinear) and isinstance(model[0], Conv2d)
    optimizer, loss_fn = SGD(qat.parameters(), lr=0.05), CrossEntropyLoss()
    for step in range(6):
        if step == 3:
            freeze_observers(freeze_batchnorm(qat))
        loss = loss_fn(qat(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert isinstance(qat[1], FrozenBatchNorm2d)
    frozen_range = qat[4].input_quantizer.observer.max_val
    with no_grad():
        qat(images * 3)
        assert qat[4].input_quantizer.observer.max_val == frozen_range, "frozen observers keep their range"
        int8 = convert(qat)
        assert isinstance(int8[0], QuantizedConv2d) and isinstance(int8[1], Identity)
        np.testing.assert_allclose(int8(images).numpy(), qat.eval()(images).numpy(), atol=0.05)
    print("QAT: ok")


test_unit_qat()

# %% [markdown]
# ## Systems analysis
#
# Run `python modules/15_quantization/quantization.py` to repeat the kernel measurements of
# this section, and `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_quantization.py --part
# mnist|cifar|qat|latency` for the milestone models: bytes in memory and on disk, test accuracy
# of float32 against int8, latency at batch 1 and 64. The figures below come from those commands
# on the course's 2-core machine with one BLAS thread, while other jobs shared it (load average
# 2 to 9): compare the ratios, and expect the absolute times to move.
#
# **Why the float path.** The kernel table times three ways to multiply int8 matrices in NumPy:
# the int32 loop, `integer_matmul` (exact float32 BLAS products of the codes) and a plain float32
# product. Measured: 64 x 784 x 512, 39 ms / 0.67 ms / 0.53 ms; 4096 x 1152 x 128 (the last CIFAR
# convolution at batch 256), 740 ms / 13 ms / 14 ms. The integer loop is 16x to 260x slower than
# float32 across the runs here; the exact float route costs the conversion of the operands and
# nothing else. An int8 BLAS (PyTorch's fbgemm, oneDNN) would be faster than float32, with a
# quarter of the memory traffic per operand and 4x more products per SIMD instruction, but
# NumPy has none.
#
# **Bytes, measured.** An int8 layer holds 1 byte per weight, and per output channel 4 bytes of
# scale, 4 of zero point and 4 of bias. `model_bytes` (the sum of `state_dict()`'s nbytes) and
# the size of the safetensors file that `save_checkpoint` writes:
#
# | model | float32 memory / file | int8 per-channel memory / file | int8 per-tensor memory / file |
# |---|---|---|---|
# | MNIST MLP (535,818 parameters) | 2,143,272 / 2,144,328 | 544,400 (3.94x) / 547,200 (3.92x) | 538,200 (3.98x) / 540,668 (3.97x) |
# | CIFAR-10 CNN (BN folded) | 1,049,544 / 1,053,432 | 265,344 (3.96x) / 269,848 (3.90x) | 262,488 (4.00x) / 266,428 (3.95x) |
#
# The missing 0.06x is the per-channel metadata; the file adds its JSON header.
#
# **Accuracy, measured** on the full test splits (10,000 images each), calibrated on 1,000
# images of the validation slice that the milestones hold out of the training split:
#
# | model | float32 | int8 per-channel: minmax / moving average / percentile 99.99 | int8 per-tensor minmax |
# |---|---|---|---|
# | MNIST MLP | 98.32% | 98.32% / 98.35% / 98.33% | 98.33% |
# | CIFAR-10 CNN (80.59% checkpoint, 7 epochs) | 80.59% | 80.59% / 80.62% / 80.61% | 80.52% |
#
# Both models lose at most 0.07 points, per-tensor scales included: in the folded CNN the
# largest |weight| of a filter differs by only 2.8x to 4.6x between the filters of a layer, so a
# shared scale wastes at most about 2 of the 8 bits on the smallest filter; per-channel scales
# buy little here (the kernel table's rows of very different sizes show when they matter). The checkpoint loads back
# into `empty_quantized_model` with identical integers and scales.
#
# **QAT on CIFAR-10**: one pass over 20,000 augmented training images (157 steps of 128, SGD lr
# 5e-4, batch norm and observers frozen after step 78) took 167 s and gave 80.80% in int8,
# +0.21 points over the float32 checkpoint. The same fine-tuning in float32 reached 80.76% (its
# PTQ int8 model 80.69%): most of the gain is the extra training; against the fine-tuned float32
# model, QAT's int8 model is +0.04 points, PTQ's -0.07.
#
# **Latency** of one forward pass (median of 90 calls, 3 processes per candidate, each alone):
#
# | model, batch | float32 | int8 | int8 / float32 |
# |---|---|---|---|
# | MNIST MLP, 1 | 142-152 us | 213-216 us | 1.40x-1.52x |
# | MNIST MLP, 64 | 0.94-0.95 ms | 1.28-1.40 ms | 1.36x-1.48x |
# | CIFAR-10 CNN, 1 | 1.22-1.28 ms | 1.28-1.33 ms | 1.04x-1.05x |
# | CIFAR-10 CNN, 64 | 63-113 ms | 71-85 ms | 0.75x-1.13x |
#
# (two runs each). Against the float32 CNN with its batch norms folded (one layer fewer, as the
# int8 model has) int8 is 1.13x-1.23x. The int8 layers pay for quantizing their input and for
# converting the weight codes to float32 at every call; the MLP at batch 1 reads each weight once,
# which is why `_products_in_tiles` exists (without it the same benchmark measured 1.95x).

# %%
def measure_integer_matmul(sizes=((64, 784, 512), (1, 784, 512), (4096, 1152, 128)), repeats=5):
    """Milliseconds of int32 @ int32, integer_matmul (exact float32) and float32 @ float32 per shape."""
    from tinytorch.core.tensor import median_milliseconds

    rng = np.random.default_rng(0)
    rows = []
    for M, K, N in sizes:
        a = rng.integers(-128, 128, (M, K)).astype(np.int8)
        b = rng.integers(-127, 128, (K, N)).astype(np.int8)
        a32, b32, af, bf = a.astype(np.int32), b.astype(np.int32), a.astype(np.float32), b.astype(np.float32)
        rows.append(((M, K, N), median_milliseconds(lambda a32=a32, b32=b32: a32 @ b32, repeats),
                     median_milliseconds(lambda a=a, b=b: integer_matmul(a, b), repeats),
                     median_milliseconds(lambda af=af, bf=bf: af @ bf, repeats)))
    return rows


if __name__ == "__main__":
    from tinytorch.core.profiling import blas_threads

    print(f"BLAS threads: {blas_threads()}")
    print(f"{'M x K x N':>18} | {'int32 @':>9} | {'integer_matmul':>14} | {'float32 @':>9} | ratios to float32 @")
    for shape, int32_ms, exact_ms, float_ms in measure_integer_matmul():
        print(f"{' x '.join(map(str, shape)):>18} | {int32_ms:7.2f}ms | {exact_ms:12.2f}ms | {float_ms:7.2f}ms | "
              f"int32 {int32_ms / float_ms:.0f}x, integer_matmul {exact_ms / float_ms:.2f}x")
    # Rows of different sizes, as after folding batch norm: each row of N(0, 1) scaled by a log-normal factor.
    rng = np.random.default_rng(0)
    row_scales = np.exp(rng.standard_normal((256, 1))).astype(np.float32)
    weights = rng.standard_normal((256, 512)).astype(np.float32) * row_scales
    print("\nrelative RMS error of symmetric weight quantization, 256 x 512 weights whose rows differ in size")
    print("bits | per tensor | per channel")
    for bits in (8, 6, 4, 2):
        errors = []
        for per_channel in (False, True):
            scale, zero_point = weight_qparams(weights, per_channel, bits)
            q = QuantizedTensor.quantize(weights, scale, zero_point, 0 if per_channel else None, bits, symmetric=True)
            error = (q.dequantize().numpy() - weights) / row_scales  # each row's error relative to its own size
            errors.append(float(np.sqrt(np.mean(error**2))))
        print(f"{bits:>4} | {errors[0]:10.5f} | {errors[1]:11.5f}")

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - `torch.ao.quantization` has the same pieces under the same names: observers
#   (`MinMaxObserver`, `MovingAverageMinMaxObserver`, `HistogramObserver`,
#   `PerChannelMinMaxObserver`), `FakeQuantize` modules, `prepare` / `convert` for PTQ and
#   `prepare_qat` / `convert` for QAT, and `fuse_modules` to fold Conv+BN(+ReLU).
#   `torch.fake_quantize_per_tensor_affine` and `..._per_channel_affine` are the op of Step 8,
#   with the same straight-through gradient (the tests check ours against them).
# - Its quantized tensors (`torch.qint8`, `torch.quint8`) carry scale and zero point as here;
#   its `quantized.Linear` packs the int8 weight for fbgemm (x86) or qnnpack (ARM), whose
#   kernels multiply int8 (or uint8 x int8) with int32 accumulation in SIMD instructions
#   (AVX2/AVX-512 VNNI), and **requantize** the int32 result to int8 for the next layer, so the
#   activations stay int8 between layers. Here activations return to float32 after each layer:
#   a simpler, slightly more accurate design that costs a quantize per layer.
# - PyTorch's activations use `quint8` with a reduced range of 7 bits on x86 (`reduce_range`),
#   because the VNNI-less AVX2 path adds pairs of uint8 x int8 products in 16 bits, which would
#   overflow; our exact-float route has its own bound (1024 terms per float32 chunk) instead.
# - Large language models use other schemes on the same maths: weight-only int8/int4 with
#   groups of 32-128 weights per scale (GPTQ, AWQ), and int8 activations with outlier handling
#   (LLM.int8(), SmoothQuant): the outliers that the percentile observer clips matter there.

# %% [markdown]
# ## Integration test

# %%
def test_module_quantization():
    """A small trained CNN, BN folded, quantized per channel: int8 state, float32 answers kept."""
    from tinytorch.core.dataloader import DataLoader, TensorDataset

    model = small_cnn().eval()
    rng = np.random.default_rng(1)
    calibration, test = (rng.standard_normal((n, 3, 8, 8)).astype(np.float32) for n in (64, 16))
    loader = DataLoader(TensorDataset(Tensor(calibration)), batch_size=16)
    int8 = quantize(model, loader, observer="percentile", per_channel=True)
    dtypes = {str(a.dtype) for name, a in int8.state_dict().items() if name.endswith("weight")}
    assert dtypes == {"int8"}
    with no_grad():
        np.testing.assert_allclose(int8(test).numpy(), model(test).numpy(), atol=0.1)
    print("Module 15 integration: ok")


test_module_quantization()

# %% [markdown]
# ## ML-systems thinking questions
#
# 1. The MNIST MLP shrinks 3.94x, not 4x. Which arrays make up the difference, and how would
#    the ratio change for a layer with 16 inputs per output channel?
# 2. Per-tensor weight scales cost the CIFAR CNN only 0.07 points here. Print the largest
#    |weight| of each folded filter: why can folding batch norm (a factor gamma / sigma per
#    channel) make per-channel scales matter more, and in which models would that show?
# 3. The percentile observer clips the largest activations. When does that help (which layers,
#    which outliers), and when does it hurt?
# 4. Our int8 layers return float32 and quantize again at the next layer's input. What would
#    requantizing to int8 between layers save, and what would it cost in accuracy and code?
# 5. `integer_matmul` splits the inner dimension at 1024 terms. What is the largest inner
#    dimension for int4 codes in one float32 product? For int8 codes in float64?
# 6. QAT freezes batch-norm statistics and observers for the last steps. What goes wrong if
#    the observers keep moving until the end, and the model is converted with their last range?

# %% [markdown]
# ## Summary
#
# - An int8 model is int8 *in memory*: `QuantizedTensor` and the quantized layers hold int8
#   codes, float32 scales and int32 zero points and biases, and `state_dict()` and the
#   safetensors checkpoint carry exactly those arrays (the file is about a quarter the size).
# - Observers pick the activation ranges on a calibration split; weights get symmetric scales
#   per output channel; batch norm is folded into the convolution first.
# - The layers compute with int8 operands and int32 accumulation, through exact float32 BLAS
#   products of the codes, bit-exact against the integer reference.
# - Fake quantization with a straight-through estimator trains the model for the rounding it
#   will meet; `convert` turns it into the same integer layers.
#
# Next, module 16 (Compression) removes weights instead of shortening them.
