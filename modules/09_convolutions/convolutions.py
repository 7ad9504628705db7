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
# # Module 09: Convolutions
#
# *Can I build convolutional networks that see?*
#
# A 32x32 colour image has 3,072 numbers. An MLP that looks at it must learn, separately for
# every position, that an edge is an edge. A **convolution** learns one small filter and slides
# it over the whole image: the same 3x3x3 weights detect the same pattern wherever it sits. That
# idea (LeCun's LeNet, 1998) is what this module builds, together with the layers that make up a
# modern CNN: pooling and batch normalisation.
#
# This is also the module where speed stops being optional. The course this design comes from
# wrote convolution as seven nested Python loops: 13 seconds for 8 images, about a day per
# epoch of CIFAR-10. You will write that slow loop first, on purpose, as the reference. Then you
# will replace it with **im2col**: one strided copy and one matrix multiplication per layer,
# hundreds of times faster, fast enough for the CIFAR-10 milestone (75% test accuracy within
# 30 minutes of training on two CPU cores).
#
# ## Learning objectives
# - Compute a convolution's output size from kernel, stride, padding and dilation, and its cost
#   in FLOPs.
# - Write convolution as explicit loops (the slow reference), then as **im2col + one GEMM**, and
#   measure the difference: milliseconds, FLOPs per second, and the bytes the im2col buffer costs.
# - Derive and implement the backward pass of convolution (**col2im**), max pooling (gradient
#   routed to the argmax), average pooling and batch normalisation (one fused analytic rule).
# - Build `Conv2d`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d` and `BatchNorm2d` with PyTorch's
#   API, weight layout, initialisation and train/eval behaviour.
# - Measure what a CNN's activations cost in memory during training.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 09
# ```
#
# exports your code to `tinytorch/core/spatial.py` and grades it with
# `tests/modules/test_09_convolutions.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **Convolution** (deep learning's, which mathematicians call cross-correlation: the kernel is
# not flipped). An input $x$ of shape $(N, C, H, W)$ (NCHW: batch, channels, height, width) and a
# weight $w$ of shape $(O, C, k_h, k_w)$ give an output $y$ of shape $(N, O, H_o, W_o)$:
#
# $$y_{n,o,i,j} = b_o + \sum_{c=0}^{C-1} \sum_{p=0}^{k_h-1} \sum_{q=0}^{k_w-1}
#     w_{o,c,p,q}\; x_{n,\,c,\; i s + p d,\; j s + q d}$$
#
# where $s$ is the **stride** (how far the window moves), $d$ the **dilation** (the gap between
# kernel taps) and $x$ has been **padded** with $P$ zeros on every side. The window covers
# $d(k-1)+1$ pixels, so along each axis
#
# $$H_o = \left\lfloor \frac{H + 2P - d(k_h - 1) - 1}{s} \right\rfloor + 1 .$$
#
# With 3x3 kernels, $P = 1$ and $s = 1$ keep the size ("same" padding); $s = 2$ halves it.
#
# **Groups** split the channels into $G$ independent convolutions: output channel $o$ only sees
# the $C/G$ input channels of its group, so the weight is $(O, C/G, k_h, k_w)$. $G = C$ is the
# *depthwise* convolution of MobileNet.
#
# **Cost.** Every output element is a dot product of length $(C/G) k_h k_w$, so a forward pass
# costs $2 N O H_o W_o (C/G) k_h k_w$ FLOPs. For a 32->64-channel 3x3 layer on a batch of 64
# CIFAR images that is $2 \cdot 64 \cdot 64 \cdot 32 \cdot 32 \cdot 32 \cdot 9 \approx 2.4$ GFLOP;
# the backward pass costs twice that (one product for the weight gradient, one for the input's).
#
# **im2col.** Copy every receptive field into a column of a matrix $X_{col}$ of shape
# $(C k_h k_w,\; N H_o W_o)$. Then the whole convolution is one matrix product,
# $Y = W_{mat} X_{col}$ with $W_{mat}$ the weight reshaped to $(O, C k_h k_w)$, which a BLAS
# library computes at tens of GFLOP/s. The price is memory: $X_{col}$ holds every input pixel
# $k_h k_w$ times.
#
# **Pooling** reduces each $k \times k$ window to one number: its maximum (max pooling) or its
# mean (average pooling). **Batch normalisation** standardises each channel over the batch and
# the spatial positions, then rescales: $y = \gamma \hat{x} + \beta$ with
# $\hat{x} = (x - \mu_c)/\sqrt{\sigma_c^2 + \epsilon}$.

# %%
#| export
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.core.layers import Module, Parameter, uniform_
from tinytorch.core.tensor import DEFAULT_FLOAT, Tensor, as_tensor, backend_kernel, check_positive_int, register_backward

# %%
# The tests in this notebook check gradients with module 05's `gradcheck`, and its systems analysis
# times with module 01's `median_milliseconds` (neither is part of this module's export).
from tinytorch.core.autograd import gradcheck
from tinytorch.core.tensor import median_milliseconds

# %% [markdown]
# ## Step 1: output sizes
#
# Every layer in this module needs the formula above, and every bad configuration should fail
# here with a message that says which sizes clash, not later as a cryptic reshape error.
# PyTorch accepts either one int or a pair for `kernel_size`, `stride`, `padding` and
# `dilation`; `conv_pair` turns both into a pair (height, width).

# %%
#| export
_SMALLEST = {"padding": 0}  # padding may be 0; kernel sizes, strides, dilations, output sizes: 1


def conv_pair(value, name="value"):
    """(value, value) for an int, the pair itself for a pair: PyTorch's `kernel_size=3` or `(3, 5)`.

    Checked at once, so that `Conv2d(1, 1, 0)` or `stride=0` fails where it is written, not at
    the first forward pass.
    """
    smallest = _SMALLEST.get(name, 1)
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if min(pair) < smallest:
        raise ValueError(f"{name} must be at least {smallest} (an int or a pair of them), got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length along one axis: floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1.

    TODO: return the output length; raise a ValueError that names every number involved when
          the (dilated) kernel does not fit in the padded input (the result would be < 1), or
          when kernel_size, stride or dilation is below 1 or padding is negative.
    HINT: the dilated kernel spans `dilation * (kernel_size - 1) + 1` pixels; `//` floors.
    """
    ### BEGIN SOLUTION
    if kernel_size < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(
            f"kernel_size, stride and dilation must be at least 1 and padding at least 0, got "
            f"kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}"
        )
    span = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"the kernel spans {span} pixels (kernel_size={kernel_size}, dilation={dilation}) but the "
            f"input is only {size} pixels wide plus {padding} of padding on each side; use a smaller "
            "kernel, more padding, or a larger input"
        )
    return (size + 2 * padding - span) // stride + 1
    ### END SOLUTION

# %%
def test_unit_conv_output_size():
    assert conv_output_size(32, 3, padding=1) == 32, "3x3 with padding 1 keeps the size"
    assert conv_output_size(32, 3) == 30
    assert conv_output_size(32, 3, stride=2, padding=1) == 16
    assert conv_output_size(32, 2, stride=2) == 16
    assert conv_output_size(7, 3, dilation=2) == 3, "a dilated 3-tap kernel spans 5 pixels"
    assert conv_pair(3) == (3, 3) and conv_pair((2, 5)) == (2, 5)
    try:
        conv_output_size(2, 5)
        raise AssertionError("a 5-pixel kernel cannot fit in a 2-pixel input")
    except ValueError as error:
        assert "5" in str(error) and "2" in str(error)
    ### BEGIN HIDDEN TESTS
    assert conv_output_size(5, 5) == 1
    assert conv_output_size(10, 3, stride=3) == 3
    ### END HIDDEN TESTS
    print("conv_output_size: ok")


test_unit_conv_output_size()

# %% [markdown]
# ## Step 2: the naive convolution — the slow reference
#
# Write the formula as loops: for every image, every output channel and every output pixel,
# take the window under the kernel and multiply-add. We let NumPy do the innermost sum over
# $(C/G, k_h, k_w)$, so there are "only" four Python loops instead of seven, and it is still
# hopelessly slow: every iteration pays for a slice, a multiply and a sum on tiny arrays — tens
# of microseconds, almost all of it interpreter and call overhead — and a 64-image batch of a
# 32->64 layer has $64 \cdot 64 \cdot 32 \cdot 32 = 4.2$ million output pixels.
#
# **This function is the reference, not the implementation.** It is short and obviously right,
# which is exactly what a reference needs: the fast version below must match it on small inputs.
# Work on NumPy arrays here; the Tensor wrapper comes with the fast version.

# %%
#| export
def conv2d_naive(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """SLOW REFERENCE: convolution as explicit Python loops over NumPy arrays (small inputs only).

    x: (N, C, H, W), weight: (O, C // groups, kh, kw), bias: (O,) or None. Returns (N, O, Ho, Wo).

    TODO: pad x with zeros, then for each image n, output channel o and output pixel (i, j),
          sum the window times weight[o] (plus bias[o]).
    HINT: output channel o belongs to group o // (O // groups), whose input channels start at
          that group number times C // groups. The window of pixel (i, j) starts at
          (i * stride, j * stride) and takes every dilation-th pixel:
          `xp[n, c0:c0 + C_g, i*sh : i*sh + dh*(kh-1) + 1 : dh, j*sw : j*sw + dw*(kw-1) + 1 : dw]`.
    """
    sh, sw = conv_pair(stride, "stride")
    ph, pw = conv_pair(padding, "padding")
    dh, dw = conv_pair(dilation, "dilation")
    N, C, H, W = x.shape
    O, C_g, kh, kw = weight.shape
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    ### BEGIN SOLUTION
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, O, Ho, Wo), dtype=x.dtype)
    O_g = O // groups
    for n in range(N):
        for o in range(O):
            c0 = (o // O_g) * C_g
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, c0 : c0 + C_g, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                                j * sw : j * sw + dw * (kw - 1) + 1 : dw]
                    out[n, o, i, j] = np.sum(window * weight[o])
            if bias is not None:
                out[n, o] += bias[o]
    return out
    ### END SOLUTION

# %%
def test_unit_conv2d_naive():
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    kernel = np.array([[[[1.0, 0.0], [0.0, -1.0]]]], dtype=np.float32)  # x[i, j] - x[i+1, j+1]
    out = conv2d_naive(image, kernel)
    assert out.shape == (1, 1, 3, 3)
    assert np.all(out == -5.0), "each pixel minus its lower-right neighbour is 0 - 5 on a 4-wide ramp"
    assert conv2d_naive(image, kernel, bias=np.array([5.0], dtype=np.float32)).sum() == 0.0
    assert conv2d_naive(image, kernel, padding=1).shape == (1, 1, 5, 5)
    assert conv2d_naive(image, kernel, stride=2).shape == (1, 1, 2, 2)
    ones = np.ones((1, 1, 3, 3), dtype=np.float32)
    assert conv2d_naive(image, ones, padding=1)[0, 0, 0, 0] == 0 + 1 + 4 + 5, "zero padding adds nothing"
    ### BEGIN HIDDEN TESTS
    two_groups = conv2d_naive(np.ones((1, 4, 3, 3)), np.ones((2, 2, 3, 3)), groups=2)
    assert two_groups.shape == (1, 2, 1, 1) and np.all(two_groups == 18.0)
    assert conv2d_naive(image, np.ones((1, 1, 2, 2)), dilation=2)[0, 0, 0, 0] == 0 + 2 + 8 + 10
    ### END HIDDEN TESTS
    print("conv2d_naive: ok")


test_unit_conv2d_naive()

# %% [markdown]
# ## Step 3: im2col — every window becomes a column
#
# The loops above compute $N \cdot O \cdot H_o \cdot W_o$ separate dot products. Look at them
# differently: the dot product for output pixel $(n, i, j)$ uses the same window for *every*
# output channel $o$. Put each window, flattened to length $C k_h k_w$, in one column of a matrix:
#
# ```
#           one column per output pixel (n, i, j): N*Ho*Wo columns
#          +-----------------------------------------------+
#  C*kh*kw |  x[n, c, i*s + p*d, j*s + q*d]  for (c, p, q)  |   = X_col
#   rows   +-----------------------------------------------+
# ```
#
# Then all the dot products for all output channels are one matrix product:
# $(O, C k_h k_w) \times (C k_h k_w, N H_o W_o)$. Building $X_{col}$ needs no Python loop at all.
# `numpy.lib.stride_tricks.sliding_window_view` returns a **view** of every window of the padded
# input — shape $(N, C, H', W', k_h', k_w')$, no data copied, only strides. Slicing it with steps
# applies the stride and the dilation, a transpose puts the axes in the order of $X_{col}$, and
# one `np.ascontiguousarray` makes the single copy. (Module 01 showed why a view is free and a
# copy is not; here the copy is the price of a fast matrix product.)
#
# We order the columns as $(n, i, j)$ *after* the rows $(c, p, q)$: the matrix product then
# yields $(O, N H_o W_o)$, which is one cheap transpose away from NCHW.

# %%
#| export
def _pad_spatial(x, ph, pw, value=0.0):
    """x (N, C, H, W) with `value` added around the two spatial axes (x itself when no padding)."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    if value == 0.0:
        padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    else:
        padded = np.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    padded[:, :, ph : ph + H, pw : pw + W] = x
    return padded


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """The receptive fields of x (N, C, H, W) as the columns of a (C*kh*kw, N*Ho*Wo) array.

    Row (c, p, q) and column (n, i, j) hold x[n, c, i*sh + p*dh, j*sw + q*dw] of the padded input.

    TODO: pad x, take `sliding_window_view` over the two spatial axes with the dilated kernel's
          span, apply stride and dilation by slicing, transpose to (C, kh, kw, N, Ho, Wo), copy
          once, and reshape to two dimensions.
    HINT: `sliding_window_view(xp, (span_h, span_w), axis=(2, 3))` has shape
          (N, C, Hp - span_h + 1, Wp - span_w + 1, span_h, span_w); then
          `[:, :, ::sh, ::sw, ::dh, ::dw]` keeps one window per output pixel and one tap per
          kernel weight, and `.transpose(1, 4, 5, 0, 2, 3)` orders the axes.
    """
    kh, kw = conv_pair(kernel_size, "kernel_size")
    sh, sw = conv_pair(stride, "stride")
    ph, pw = conv_pair(padding, "padding")
    dh, dw = conv_pair(dilation, "dilation")
    N, C, H, W = x.shape
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    ### BEGIN SOLUTION
    xp = _pad_spatial(x, ph, pw)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    windows = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    cols = np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))
    return cols.reshape(C * kh * kw, N * Ho * Wo)
    ### END SOLUTION

# %%
def test_unit_im2col():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    cols = im2col(x, 2)
    assert cols.shape == (1 * 2 * 2, 2 * 2 * 2), "4 taps per window, 2 images x 2x2 windows"
    assert cols[:, 0].tolist() == [0, 1, 3, 4], "the first column is image 0's top-left window"
    assert cols[:, 4].tolist() == [9, 10, 12, 13], "column 4 is image 1's top-left window"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    cols = im2col(x, 3, stride=2, padding=1)
    product = (w.reshape(4, -1) @ cols).reshape(4, 2, 3, 3).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(product, conv2d_naive(x, w, stride=2, padding=1), rtol=1e-5, atol=1e-5)
    ### BEGIN HIDDEN TESTS
    assert im2col(x, 3, dilation=2).shape == (27, 2 * 2 * 1)
    assert im2col(x, (1, 2)).shape == (6, 2 * 6 * 4)
    ### END HIDDEN TESTS
    print("im2col: ok")


test_unit_im2col()

# %% [markdown]
# ## Step 4: `conv2d` — one matrix product per layer
#
# Now the fast convolution, on Tensors. The forward pass is:
#
# 1. `cols = im2col(x)`, shape $(C k_h k_w, N H_o W_o)$;
# 2. `y = W_mat @ cols`, shape $(O, N H_o W_o)$ — **one** GEMM for the whole batch (with groups,
#    one per group: rows and weights of group $g$ are contiguous blocks);
# 3. reorder $(O, N, H_o W_o) \to (N, O, H_o W_o)$ and add the bias in the same pass, writing
#    straight into the NCHW output.
#
# Why one big product and not one per image? A BLAS matrix product is fastest when it is large:
# it blocks the matrices for the CPU's caches and uses every core. On this course's 2-core
# machine, the forward product of the CIFAR network's 32->64 layer done as 64 per-image products
# took about twice as long as one product of the same FLOPs in a Python loop, and ten times as
# long with NumPy's broadcasting batched `matmul` (`W @ cols` with `cols` of shape
# $(N, C k_h k_w, H_o W_o)$). Measure, do not guess.
#
# The result is built with `Tensor.from_op(..., "conv2d", inputs, **saved)`: the saved `cols`
# are what the backward pass needs for the weight gradient, so they are kept rather than
# recomputed. That is a memory-for-time trade you will measure at the end.
#
# The checks come first: a wrong channel count is the most common CNN bug, and the message must
# say which layer expected what.

# %%
#| export

def _check_conv_arguments(op, x, weight, bias, groups):
    """Shapes and dtypes of a convolution's operands, explained when they do not fit."""
    if x.ndim != 4:
        fix = "add the batch dimension with x.unsqueeze(0)" if x.ndim == 3 else "reshape it to (batch, channels, height, width)"
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}; {fix}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: the weight must be 4-D (out_channels, in_channels // groups, kh, kw), got shape {weight.shape}")
    if not isinstance(groups, (int, np.integer)) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must be a positive int that divides out_channels={weight.shape[0]}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: the input of shape {x.shape} has {x.shape[1]} channels, but the weight of shape "
            f"{weight.shape} with groups={groups} expects {weight.shape[1] * groups}; check in_channels "
            "of this layer against out_channels of the layer before it"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: the bias must have shape ({weight.shape[0]},), one value per output channel, got {bias.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{op}: the input is {x.dtype} but the {name} is {t.dtype}; convert one of them "
                "(model.double() or x.float()) so that both have the same dtype"
            )


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of input (N, C, H, W) with weight (O, C // groups, kh, kw): im2col + one GEMM.

    TODO: compute the output (N, O, Ho, Wo) as described above and return
          `Tensor.from_op(out, "conv2d", inputs, cols=cols, ...)` with inputs (input, weight) or
          (input, weight, bias), saving what the backward pass needs: cols, stride, padding,
          dilation, groups.
    HINT: `w_mat = weight.data.reshape(O, -1)`. With groups, rows g*K_g:(g+1)*K_g of cols and
          rows g*O_g:(g+1)*O_g of w_mat belong together (K_g = C // groups * kh * kw);
          `np.matmul(a, b, out=y[rows])` writes each group's product in place. Then
          `y.reshape(O, N, Ho * Wo).transpose(1, 0, 2)` is the NCHW order: add the bias with
          `np.add(..., bias[:, None], out=out)` to reorder and add in one pass.
    """
    input, weight = as_tensor(input), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    _check_conv_arguments("conv2d", input, weight, bias, groups)
    stride, padding, dilation = conv_pair(stride, "stride"), conv_pair(padding, "padding"), conv_pair(dilation, "dilation")
    N, C, H, W = input.shape
    O, _, kh, kw = weight.shape
    Ho = conv_output_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = conv_output_size(W, kw, stride[1], padding[1], dilation[1])
    ### BEGIN SOLUTION
    cols = im2col(input.data, (kh, kw), stride, padding, dilation)
    w_mat = weight.data.reshape(O, -1)
    if groups == 1:
        y = w_mat @ cols
    else:
        y = np.empty((O, cols.shape[1]), dtype=cols.dtype)
        K_g, O_g = w_mat.shape[1], O // groups
        for g in range(groups):
            np.matmul(w_mat[g * O_g : (g + 1) * O_g], cols[g * K_g : (g + 1) * K_g], out=y[g * O_g : (g + 1) * O_g])
    nchw = y.reshape(O, N, Ho * Wo).transpose(1, 0, 2)
    out = np.empty((N, O, Ho * Wo), dtype=y.dtype)
    if bias is None:
        np.copyto(out, nchw)
    else:
        np.add(nchw, bias.data[:, None], out=out)
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return Tensor.from_op(out.reshape(N, O, Ho, Wo), "conv2d", inputs, cols=cols, stride=stride,
                          padding=padding, dilation=dilation, groups=groups)
    ### END SOLUTION

# %%
def test_unit_conv2d_forward():
    rng = np.random.default_rng(1)
    for stride, padding, dilation, groups in [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), ((2, 1), (0, 1), 1, 2)]:
        x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
        w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        fast = conv2d(Tensor(x), Tensor(w), Tensor(b), stride, padding, dilation, groups)
        slow = conv2d_naive(x, w, b, stride, padding, dilation, groups)
        assert fast.shape == slow.shape and fast.dtype == np.float32
        np.testing.assert_allclose(fast.numpy(), slow, rtol=1e-4, atol=1e-4)
    try:
        conv2d(Tensor(np.zeros((1, 3, 8, 8))), Tensor(np.zeros((16, 1, 3, 3))))
        raise AssertionError("3 input channels cannot feed a weight that expects 1")
    except ValueError as error:
        assert "3 channels" in str(error) and "(16, 1, 3, 3)" in str(error)
    ### BEGIN HIDDEN TESTS
    try:
        conv2d(Tensor(np.zeros((3, 8, 8))), Tensor(np.zeros((4, 3, 3, 3))))
        raise AssertionError("a 3-D input must be rejected")
    except ValueError as error:
        assert "unsqueeze(0)" in str(error)
    ### END HIDDEN TESTS
    print("conv2d forward: ok")


test_unit_conv2d_forward()

# %% [markdown]
# ## Step 5: the backward pass — col2im
#
# With $Y = W_{mat} X_{col}$ (per group) and the output gradient $G$ reordered to the same
# $(O, N H_o W_o)$ layout, the chain rule for a matrix product (module 05) gives:
#
# - **weight**: $\partial L / \partial W_{mat} = G\, X_{col}^\top$ — the saved columns are used
#   again, which is why the forward pass kept them;
# - **bias**: the sum of $G$ over every image and pixel;
# - **columns**: $\partial L / \partial X_{col} = W_{mat}^\top G$, of shape $(C k_h k_w, N H_o W_o)$.
#
# The last one is the gradient of the *columns*, not of the input. Every input pixel was copied
# into up to $k_h k_w$ columns, so its gradient is the **sum** of the gradients of all its
# copies. `col2im` undoes `im2col` by adding instead of copying. Do it with one vectorised
# strided add per kernel tap $(p, q)$: all the copies made for tap $(p, q)$ come from one strided
# slice of the padded input, so `dx_padded[:, :, p*d : ... : s, q*d : ... : s] += dcols[:, p, q]`.
# That loop runs $k_h k_w$ times (9 for a 3x3 kernel) — never over pixels. Finally the padding
# is cut off: its gradient belongs to zeros that were never an input.

# %%
#| export
def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of im2col: sum the columns (C*kh*kw, N*Ho*Wo) back into an (N, C, H, W) array.

    TODO: view cols as (C, kh, kw, N, Ho, Wo); into a zero array of the padded input's shape
          add, for each tap (p, q), the slice cols[:, p, q] at the strided positions that tap
          read from; return the unpadded part.
    HINT: a transposed view `padded.transpose(1, 0, 2, 3)` has the (C, N, ...) axis order of the
          columns. Tap (p, q) read rows `p*dh : p*dh + sh*(Ho-1) + 1 : sh` and the matching columns.
    """
    kh, kw = conv_pair(kernel_size, "kernel_size")
    sh, sw = conv_pair(stride, "stride")
    ph, pw = conv_pair(padding, "padding")
    dh, dw = conv_pair(dilation, "dilation")
    N, C, H, W = input_shape
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    ### BEGIN SOLUTION
    taps = cols.reshape(C, kh, kw, N, Ho, Wo)
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    channels_first = padded.transpose(1, 0, 2, 3)
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + sh * (Ho - 1) + 1, sh)
            columns = slice(q * dw, q * dw + sw * (Wo - 1) + 1, sw)
            channels_first[:, :, rows, columns] += taps[:, p, q]
    return padded[:, :, ph : ph + H, pw : pw + W]
    ### END SOLUTION


@register_backward("conv2d")
def conv2d_backward(grad, out):
    """Gradients of conv2d for (input, weight[, bias]), computed only for inputs that need one.

    TODO: reorder grad to (O, N*Ho*Wo); weight gradient = G @ cols.T per group, bias gradient =
          G summed over its columns, input gradient = col2im(W_mat.T @ G per group).
    HINT: `np.ascontiguousarray(grad.reshape(N, O, -1).transpose(1, 0, 2)).reshape(O, -1)` is G;
          `out._inputs[i].requires_grad` tells whether input i needs its gradient. When
          cols has more rows than G, compute the weight gradient as `(cols @ G.T).T`: the same
          product, but OpenBLAS shares that orientation between threads much better (a
          measured fact, not a theorem).
    """
    x, weight = out._inputs[0], out._inputs[1]
    bias = out._inputs[2] if len(out._inputs) == 3 else None
    saved = out._saved
    cols, groups = saved["cols"], saved["groups"]
    N, O = grad.shape[0], grad.shape[1]
    ### BEGIN SOLUTION
    g_mat = np.ascontiguousarray(grad.reshape(N, O, -1).transpose(1, 0, 2)).reshape(O, -1)
    w_mat = weight.data.reshape(O, -1)
    K_g, O_g = w_mat.shape[1], O // groups
    grad_weight = grad_input = grad_bias = None
    if weight.requires_grad:
        grad_weight = np.empty_like(w_mat)
        for g in range(groups):
            g_rows, cols_rows = g_mat[g * O_g : (g + 1) * O_g], cols[g * K_g : (g + 1) * K_g]
            # A product whose inner dimension (N*Ho*Wo) is this long runs well on several threads
            # only when its result has more rows than columns (measured: 3x to 20x on a busy
            # 2-core machine), so compute (cols @ G.T).T when K_g > O_g.
            if K_g > O_g:
                grad_weight[g * O_g : (g + 1) * O_g] = (cols_rows @ g_rows.T).T
            else:
                grad_weight[g * O_g : (g + 1) * O_g] = g_rows @ cols_rows.T
        grad_weight = grad_weight.reshape(weight.shape)
    if x.requires_grad:
        if groups == 1:
            grad_cols = w_mat.T @ g_mat
        else:
            grad_cols = np.empty_like(cols)
            for g in range(groups):
                np.matmul(w_mat[g * O_g : (g + 1) * O_g].T, g_mat[g * O_g : (g + 1) * O_g],
                          out=grad_cols[g * K_g : (g + 1) * K_g])
        grad_input = col2im(grad_cols, x.shape, weight.shape[2:], saved["stride"], saved["padding"], saved["dilation"])
    if bias is not None and bias.requires_grad:
        grad_bias = g_mat.sum(axis=1)
    ### END SOLUTION
    return (grad_input, grad_weight) if bias is None else (grad_input, grad_weight, grad_bias)

# %% [markdown]
# ### Test: gradients by central differences
#
# The test below is the numerical gradient check of module 05 (`gradcheck`), in float64: perturb each input
# element by $\pm\epsilon$, measure the change of $\sum_k c_k\, y_k$ for a random cotangent $c$,
# and compare with what `backward()` computed. A random $c$ (not all ones) catches a gradient
# that is transposed or shuffled.

# %%
def test_unit_conv2d_backward():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 5, 4))
    w = rng.standard_normal((4, 1, 3, 2))
    b = rng.standard_normal(4)
    gradcheck(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), x, w, b)
    cols = rng.standard_normal((2 * 3 * 3, 1 * 4 * 4))
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for every x and c.
    x = rng.standard_normal((1, 2, 4, 4))
    assert np.isclose(np.sum(im2col(x, 3, padding=1) * cols), np.sum(x * col2im(cols, x.shape, 3, padding=1)))
    ### BEGIN HIDDEN TESTS
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 2, 2))
    gradcheck(lambda x, w: conv2d(x, w, stride=2, dilation=2), x, w)
    ### END HIDDEN TESTS
    print("conv2d backward: ok")


test_unit_conv2d_backward()

# %% [markdown]
# ## Step 6: the `Conv2d` layer
#
# The layer holds the parameters and calls `conv2d`. PyTorch's layout and initialisation, so
# that a PyTorch checkpoint loads key for key: `weight` of shape
# $(O, C/G, k_h, k_w)$ and `bias` of shape $(O,)$, both drawn from $U(-b, b)$ with
# $b = 1/\sqrt{\text{fan\_in}}$ and $\text{fan\_in} = (C/G)\, k_h k_w$ — the same
# Kaiming-uniform ($a = \sqrt 5$) rule as module 03's `Linear`, where fan_in was $d_{in}$.
# A convolution *is* a linear layer applied at every position, with fan_in the window size.

# %%
#| export
class Conv2d(Module):
    """2-D convolution over NCHW input, with PyTorch's arguments, weight layout and initialisation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=DEFAULT_FLOAT):
        """Create weight (out_channels, in_channels // groups, kh, kw) and bias (out_channels,).

        TODO: check the channel counts against `groups`, store the hyperparameters (as pairs),
              and create the parameters from U(-bound, bound), bound = 1 / sqrt(fan_in).
        HINT: fan_in = in_channels // groups * kh * kw; `uniform_(Parameter(np.zeros(shape, dtype), dtype=dtype), -bound, bound)`.
        """
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            check_positive_int("Conv2d", name, value)
        ### BEGIN SOLUTION
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = conv_pair(kernel_size, "kernel_size")
        self.stride = conv_pair(stride, "stride")
        self.padding = conv_pair(padding, "padding")
        self.dilation = conv_pair(dilation, "dilation")
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = uniform_(Parameter(np.zeros(shape, dtype), dtype=dtype), -bound, bound)
        self.bias = uniform_(Parameter(np.zeros(self.out_channels, dtype), dtype=dtype), -bound, bound) if bias else None
        ### END SOLUTION

    def forward(self, x):
        """Convolve x (N, in_channels, H, W) into (N, out_channels, Ho, Wo)."""
        x = as_tensor(x)
        if x.ndim == 4 and x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r} expected an input with {self.in_channels} channels, got shape {x.shape}; "
                "check out_channels of the layer before it (or the image's channels: 1 for MNIST, 3 for CIFAR)"
            )
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


Conv2D = Conv2d  # the name the course's older material uses

# %%
def test_unit_conv2d_layer():
    layer = Conv2d(3, 8, kernel_size=3, padding=1)
    assert layer.weight.shape == (8, 3, 3, 3) and layer.bias.shape == (8,)
    assert sum(p.numel() for p in layer.parameters()) == 8 * 3 * 9 + 8
    bound = 1 / math.sqrt(27)
    assert np.abs(layer.weight.numpy()).max() <= bound, "PyTorch's bound: 1 / sqrt(fan_in)"
    out = layer(Tensor(np.random.default_rng(0).standard_normal((2, 3, 10, 12))))
    assert out.shape == (2, 8, 10, 12) and out.dtype == np.float32
    assert Conv2d(4, 8, 3, groups=2, bias=False).weight.shape == (8, 2, 3, 3)
    assert Conv2D is Conv2d
    try:
        layer(Tensor(np.zeros((1, 1, 28, 28))))
        raise AssertionError("a 1-channel image cannot feed a 3-channel layer")
    except ValueError as error:
        assert "3 channels" in str(error) and "(1, 1, 28, 28)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert "stride=(2, 2)" in repr(Conv2d(1, 1, 3, stride=2))
    assert list(dict(layer.named_parameters())) == ["weight", "bias"]
    ### END HIDDEN TESTS
    print("Conv2d: ok")


test_unit_conv2d_layer()

# %% [markdown]
# ## Step 7: max pooling — the gradient goes to the winner
#
# Max pooling keeps the largest value of each window, shrinking a 32x32 map to 16x16 with
# $k = s = 2$. Its gradient is a *routing*: only the element that won the window influenced the
# output, so it alone receives the output's gradient. When several elements tie (common after a
# ReLU: a window of zeros) PyTorch routes to the **first** maximum in reading order only, never
# splitting it; we do the same, so the forward pass remembers the winner of each window.
#
# One helper does the work, `_first_max(taps)`: the elementwise maximum of a few same-shaped
# arrays, plus the index of the first array that held it (a strict `>` keeps earlier winners
# on ties). It loops over the *taps* of a window — 4 for a 2x2 kernel — never over pixels:
# tap $(p, q)$ of every window at once is one strided slice of the input, padded with
# $-\infty$ so that padding never wins. Its output is the pooled tensor and, for each window, the
# number of the winning tap.
#
# The backward pass sends each window's gradient to its winning tap. In general windows may
# overlap, so each tap's share is *added* into a zero array at the tap's positions. In the
# common case — windows that tile the input ($k = s$, no padding: the 2x2 pooling of every CNN
# in this course) — every input element belongs to exactly one window, and a **reshape**
# exposes the windows: the input gradient viewed as $(N, C, H_o, k_h, W_o, k_w)$ has one slice
# per tap, `[:, :, :, p, :, q]`, which is *assigned* once. No zero-filling, no accumulation:
# nearly twice as fast (measured in the systems analysis).

# %%
#| export
def _pool_geometry(op, x, kernel_size, stride, padding, dilation):
    """Pairs (kernel, stride, padding, dilation) and the output size of a pooling op, checked."""
    if x.ndim != 4:
        fix = "add the batch dimension with x.unsqueeze(0)" if x.ndim == 3 else "reshape it to (batch, channels, height, width)"
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}; {fix}")
    kernel = conv_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else conv_pair(stride, "stride")
    padding, dilation = conv_pair(padding, "padding"), conv_pair(dilation, "dilation")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}, as in PyTorch")
    H, W = x.shape[2:]
    out_size = (conv_output_size(H, kernel[0], stride[0], padding[0], dilation[0]),
                conv_output_size(W, kernel[1], stride[1], padding[1], dilation[1]))
    return kernel, stride, padding, dilation, out_size


def _taps(padded, kernel, stride, dilation, out_size):
    """Yield (tap number, strided view of the padded input read by that tap in every window)."""
    for p in range(kernel[0]):
        for q in range(kernel[1]):
            rows = slice(p * dilation[0], p * dilation[0] + stride[0] * (out_size[0] - 1) + 1, stride[0])
            columns = slice(q * dilation[1], q * dilation[1] + stride[1] * (out_size[1] - 1) + 1, stride[1])
            yield p * kernel[1] + q, padded[:, :, rows, columns]


def _tiles_exactly(kernel, stride, padding, dilation, in_size, out_size):
    """True when the windows neither overlap nor skip nor pad: the input is a grid of windows."""
    return (kernel == stride and padding == (0, 0) and dilation == (1, 1)
            and in_size == (out_size[0] * kernel[0], out_size[1] * kernel[1]))


def _first_max(taps, count):
    """Elementwise maximum of `count` same-shaped arrays, and the index of the first that holds it.

    TODO: start from a copy of the first array and winners of 0; for each next array k, mark
          where it is strictly greater, take the maximum in place, and set the winner to k
          where marked.
    HINT: `np.maximum(best, tap, out=best)`. `winner += better * (k - winner)` sets k where
          `better` is True and adds 0 elsewhere; we measured it twice as fast as
          `np.putmask(winner, better, k)` or boolean indexing. The winners fit in int16 unless
          there are more than 32,767 taps.
    """
    ### BEGIN SOLUTION
    taps = iter(taps)
    best = np.array(next(taps))
    index_type = np.int16 if count < 2**15 else np.int32
    winner = np.zeros(best.shape, dtype=index_type)
    for k, tap in enumerate(taps, start=1):
        better = tap > best  # strict: on a tie the earlier tap keeps the win, as in PyTorch
        np.maximum(best, tap, out=best)
        winner += better * (index_type(k) - winner)
    return best, winner
    ### END SOLUTION


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1):
    """Max pooling over (N, C, H, W) windows; stride defaults to kernel_size (PyTorch's rule).

    TODO: pad with -inf, take `_first_max` over the taps' strided views, and return
          `Tensor.from_op(out, "max_pool2d", (input,), winner=..., kernel=..., ...)`.
    HINT: `(view for _, view in _taps(padded, kernel, stride, dilation, out_size))` is a
          generator of the taps' views.
    """
    input = as_tensor(input)
    kernel, stride, padding, dilation, out_size = _pool_geometry("max_pool2d", input, kernel_size, stride, padding, dilation)
    two_by_two = kernel == stride == (2, 2) and padding == (0, 0) and dilation == (1, 1)
    fused = backend_kernel("max_pool2d_2x2") if two_by_two and input.shape[2] % 2 == input.shape[3] % 2 == 0 else None
    if fused is not None:  # module 18's backend: one pass over the input, the winners as taps 0..3
        out, winner = fused(input.data)
        return Tensor.from_op(out, "max_pool2d", (input,), winner=winner, kernel=kernel, stride=stride,
                              padding=padding, dilation=dilation)
    ### BEGIN SOLUTION
    padded = _pad_spatial(input.data, padding[0], padding[1], value=-np.inf)
    taps = (view for _, view in _taps(padded, kernel, stride, dilation, out_size))
    out, winner = _first_max(taps, kernel[0] * kernel[1])
    return Tensor.from_op(out, "max_pool2d", (input,), winner=winner, kernel=kernel, stride=stride,
                          padding=padding, dilation=dilation)
    ### END SOLUTION


@register_backward("max_pool2d")
def max_pool2d_backward(grad, out):
    """Route each window's gradient to the input element that won it.

    TODO: fast path (windows tile the input): for each tap (p, q) write its share into slice
          [:, :, :, p, :, q] of an empty (N, C, Ho, kh, Wo, kw) array and reshape to (N, C, H, W).
          Otherwise add each tap's share into a zero padded array at the tap's strided positions
          and cut the padding off.
    HINT: tap k's share is grad times the mask `winner == k`:
          `np.multiply(grad, winner == k, out=tiles[:, :, :, p, :, q])` writes it in place (we
          measured it six times as fast as `np.where(mask, grad, 0)` into a strided slice).
    """
    x = out._inputs[0]
    s = out._saved
    winner, kernel, stride, padding, dilation = s["winner"], s["kernel"], s["stride"], s["padding"], s["dilation"]
    N, C, H, W = x.shape
    (kh, kw), (Ho, Wo) = kernel, grad.shape[2:]
    ### BEGIN SOLUTION
    if _tiles_exactly(kernel, stride, padding, dilation, (H, W), (Ho, Wo)):
        tiles = np.empty((N, C, Ho, kh, Wo, kw), dtype=grad.dtype)
        for p in range(kh):
            for q in range(kw):
                np.multiply(grad, winner == p * kw + q, out=tiles[:, :, :, p, :, q])
        return (tiles.reshape(N, C, H, W),)
    padded = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]), dtype=grad.dtype)
    for tap, view in _taps(padded, kernel, stride, dilation, (Ho, Wo)):
        view += grad * (winner == tap)
    return (padded[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W],)
    ### END SOLUTION

# %%
def test_unit_max_pool2d():
    x = Tensor(np.array([[[[1.0, 2.0, 0.0, 0.0],
                           [3.0, 4.0, 0.0, 0.0],
                           [5.0, 9.0, 7.0, 1.0],
                           [6.0, 8.0, 2.0, 7.0]]]], dtype=np.float32), requires_grad=True)
    out = max_pool2d(x, 2)
    assert out.numpy().tolist() == [[[[4.0, 0.0], [9.0, 7.0]]]]
    import tinytorch.core.autograd  # noqa: F401

    out.backward(np.ones_like(out.numpy()))
    assert x.grad.tolist() == [[[[0, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]]], (
        "the gradient goes to the first maximum of each window only (the zero window and the 7-7 tie)"
    )
    overlapping = max_pool2d(Tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)), 3, stride=2, padding=1)
    assert overlapping.numpy().tolist() == [[[[6, 8, 9], [16, 18, 19], [21, 23, 24]]]]
    rng = np.random.default_rng(3)
    gradcheck(lambda x: max_pool2d(x, 3, stride=2, padding=1), rng.standard_normal((2, 2, 5, 6)))
    ### BEGIN HIDDEN TESTS
    assert max_pool2d(Tensor(np.zeros((1, 1, 5, 5))), 2).shape == (1, 1, 2, 2)
    gradcheck(lambda x: max_pool2d(x, 2), rng.standard_normal((1, 2, 5, 4)))
    ### END HIDDEN TESTS
    print("max_pool2d: ok")


test_unit_max_pool2d()

# %% [markdown]
# ## Step 8: average pooling and global average pooling
#
# Average pooling replaces each window by its mean, so every element of a window receives
# $1/(k_h k_w)$ of the window's gradient. Padded zeros count in the mean (PyTorch's default,
# `count_include_pad=True`). **Global average pooling** averages each whole channel to one
# number: $(N, C, H, W) \to (N, C, 1, 1)$. Modern CNNs use it instead of a large fully connected
# layer on the flattened feature map — it has no parameters and works for any input size.
# PyTorch spells it `AdaptiveAvgPool2d((1, 1))`: you give the output size and the layer picks the
# window. We support output sizes that divide the input evenly (then the window is
# `input // output`, an ordinary average pool); that covers global pooling, the case that matters.

# %%
#| export
def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """Average pooling over (N, C, H, W) windows (padded zeros count, as PyTorch's default).

    TODO: fast path (windows tile the input): sum the (N, C, Ho, kh, Wo, kw) reshape over the
          two window axes. General path: sum the taps' strided views of the zero-padded input.
          Divide by kh*kw and return
          `Tensor.from_op(out, "avg_pool2d", (input,), kernel=..., stride=..., padding=...)`.
    HINT: the fast path is what global average pooling uses: one NumPy reduction instead of a
          Python loop over H*W taps. `_taps(padded, kernel, stride, (1, 1), out_size)` yields
          the views of the general path; start from a copy of the first and add the others.
    """
    input = as_tensor(input)
    kernel, stride, padding, dilation, out_size = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1)
    N, C, H, W = input.shape
    ### BEGIN SOLUTION
    if _tiles_exactly(kernel, stride, padding, dilation, (H, W), out_size):
        windows = input.data.reshape(N, C, out_size[0], kernel[0], out_size[1], kernel[1])
        out = windows.sum(axis=(3, 5))
    else:
        padded = _pad_spatial(input.data, padding[0], padding[1])
        out = None
        for _, view in _taps(padded, kernel, stride, dilation, out_size):
            if out is None:
                out = view.copy()
            else:
                out += view
    out *= out.dtype.type(1.0 / (kernel[0] * kernel[1]))
    return Tensor.from_op(out, "avg_pool2d", (input,), kernel=kernel, stride=stride, padding=padding)
    ### END SOLUTION


@register_backward("avg_pool2d")
def avg_pool2d_backward(grad, out):
    """Spread each window's gradient evenly over the window: grad / (kh*kw) to every tap.

    TODO: fast path (windows tile the input): broadcast grad / (kh*kw) to (N, C, Ho, kh, Wo, kw)
          and reshape; otherwise add it at each tap's strided positions of a zero padded array.
    HINT: `np.broadcast_to(share[:, :, :, None, :, None], tiled_shape).reshape(N, C, H, W)`.
    """
    x = out._inputs[0]
    kernel, stride, padding = out._saved["kernel"], out._saved["stride"], out._saved["padding"]
    N, C, H, W = x.shape
    out_size = grad.shape[2:]
    share = grad * grad.dtype.type(1.0 / (kernel[0] * kernel[1]))
    ### BEGIN SOLUTION
    if _tiles_exactly(kernel, stride, padding, (1, 1), (H, W), out_size):
        tiled = (N, C, out_size[0], kernel[0], out_size[1], kernel[1])
        return (np.broadcast_to(share[:, :, :, None, :, None], tiled).reshape(N, C, H, W),)
    padded = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]), dtype=grad.dtype)
    for _, view in _taps(padded, kernel, stride, (1, 1), out_size):
        view += share
    return (padded[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W],)
    ### END SOLUTION


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size; output_size=1 (or (1, 1)) is global average pooling.

    TODO: check that output_size divides the input's height and width, then call avg_pool2d
          with kernel = stride = input size // output size.
    HINT: the error for a size that does not divide should say which sizes and suggest one that does.
    """
    input = as_tensor(input)
    if input.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    ### BEGIN SOLUTION
    oh, ow = conv_pair(output_size, "output_size")
    H, W = input.shape[2:]
    if oh < 1 or ow < 1 or H % oh or W % ow:
        raise ValueError(
            f"adaptive_avg_pool2d: output size {(oh, ow)} must divide the input's spatial size {(H, W)} "
            "evenly here (PyTorch also allows uneven windows); use (1, 1) for global average pooling"
        )
    return avg_pool2d(input, (H // oh, W // ow))
    ### END SOLUTION

# %%
def test_unit_avg_pools():
    x = Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4), requires_grad=True)
    out = avg_pool2d(x, 2)
    assert out.numpy().tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    out.backward(np.ones((1, 1, 2, 2), dtype=np.float32))
    assert np.all(x.grad == 0.25), "each element gets a quarter of its window's gradient"
    corner = avg_pool2d(Tensor(np.ones((1, 1, 3, 3))), 3, stride=1, padding=1)[0, 0, 0, 0].item()
    assert np.isclose(corner, 4 / 9), "padded zeros count in the mean: 4 ones in a 3x3 corner window"
    glob = adaptive_avg_pool2d(Tensor(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)), 1)
    assert glob.shape == (1, 2, 1, 1) and glob.numpy().ravel().tolist() == [1.5, 5.5]
    rng = np.random.default_rng(4)
    gradcheck(lambda x: avg_pool2d(x, 3, stride=2, padding=1), rng.standard_normal((1, 2, 5, 6)))
    try:
        adaptive_avg_pool2d(Tensor(np.zeros((1, 1, 5, 5))), 2)
        raise AssertionError("5 is not divisible by 2")
    except ValueError as error:
        assert "(5, 5)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert adaptive_avg_pool2d(Tensor(np.zeros((2, 3, 8, 8))), (2, 4)).shape == (2, 3, 2, 4)
    ### END HIDDEN TESTS
    print("avg pools: ok")


test_unit_avg_pools()

# %% [markdown]
# ### The pooling layers
#
# The layers only hold the hyperparameters; the work is in the functions you just wrote.

# %%
#| export
class MaxPool2d(Module):
    """Max pooling layer: MaxPool2d(2) halves height and width."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size = conv_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else conv_pair(stride, "stride")
        self.padding = conv_pair(padding, "padding")
        self.dilation = conv_pair(dilation, "dilation")

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling layer (padded zeros count in the mean, PyTorch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = conv_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else conv_pair(stride, "stride")
        self.padding = conv_pair(padding, "padding")

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; AdaptiveAvgPool2d(1) is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = conv_pair(output_size, "output_size")

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"

# %% [markdown]
# ## Step 9: batch normalisation, one fused operation
#
# A deep CNN trains much faster when each channel's activations keep a stable scale. Batch
# normalisation (Ioffe & Szegedy, 2015) standardises every channel with the statistics of the
# current batch, over the $M = N H W$ values the channel has in it, then lets the network pick
# the scale back:
#
# $$\mu_c = \frac{1}{M}\sum x, \qquad \sigma_c^2 = \frac{1}{M}\sum (x - \mu_c)^2, \qquad
#   \hat x = \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}, \qquad y = \gamma_c \hat x + \beta_c .$$
#
# **Train and eval differ.** At test time a prediction must not depend on which other images
# share its batch, so the layer keeps **running statistics**, updated at every training step:
# `running = (1 - momentum) * running + momentum * batch_statistic` (PyTorch's convention,
# momentum 0.1). PyTorch stores the *unbiased* batch variance ($\frac{1}{M-1}\sum$) in
# `running_var` but normalises with the biased one; we do exactly the same, so a checkpoint
# behaves identically in both frameworks. In eval mode the layer uses the running statistics,
# which makes it a fixed per-channel affine map.
#
# **Why fused.** Built from primitives, batch norm would record about ten graph nodes, each
# with a full-size temporary. Its gradient has a short closed form instead. With
# $g = \partial L/\partial y$ and sums over the $M$ values of a channel:
#
# $$\frac{\partial L}{\partial \gamma} = \sum g\,\hat x, \qquad
#   \frac{\partial L}{\partial \beta} = \sum g, \qquad
#   \frac{\partial L}{\partial x} = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}
#   \left(g - \frac{1}{M}\sum g - \hat x\, \frac{1}{M}\sum g\,\hat x\right).$$
#
# The two extra terms are there because $\mu$ and $\sigma$ themselves depend on every $x$ of
# the channel. In eval mode the statistics are constants and only the first term remains.
# The forward pass saves only the per-channel mean and $1/\sqrt{\sigma^2+\epsilon}$; the backward
# pass recomputes $\hat x$ from the input, which the graph keeps anyway — one full-size array less
# held in memory per layer.
#
# `np.einsum("ncl,ncl->c", a, b)` computes a per-channel sum of products in one pass without a
# temporary; we use it for the sums.

# %%
#| export
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation over dimension 1 of input (N, C, ...), with PyTorch's signature.

    training=True: normalise with the batch's statistics and, when running_mean / running_var
    are given (Tensors), update them in place (running_var with the unbiased variance).
    training=False: normalise with running_mean / running_var.

    TODO: compute the per-channel mean and 1/sqrt(var + eps) (from the batch or the running
          statistics), the output gamma * x_hat + beta, and return
          `Tensor.from_op(out, "batch_norm", inputs, mean=..., inv_std=..., training=..., affine=...)`
          where inputs is (input,) followed by whichever of weight and bias are given.
    HINT: `x3 = input.data.reshape(N, C, -1)` puts each channel's values on one axis pair;
          `np.einsum("ncl->c", x3)` sums per channel. Momentum None means a cumulative average
          (PyTorch's rule) and needs a batch counter, which BatchNorm2d passes in as `momentum`.
    """
    input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got shape {input.shape}")
    N, C = input.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},), one value per channel of the input {input.shape}, got {t.shape}")
    ### BEGIN SOLUTION
    x3 = input.data.reshape(N, C, -1)
    count = N * x3.shape[2]
    dtype = input.dtype.type
    if training:
        if count < 2:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel to compute a variance, "
                f"got input of shape {input.shape}; use a batch of at least 2 or call model.eval()"
            )
        mean = np.einsum("ncl->c", x3) / dtype(count)
        centered = x3 - mean[:, None]
        var = np.einsum("ncl,ncl->c", centered, centered) / dtype(count)
        if running_mean is not None:
            running_mean.data *= 1 - momentum
            running_mean.data += momentum * mean.astype(running_mean.dtype)
        if running_var is not None:
            running_var.data *= 1 - momentum
            running_var.data += momentum * (var * dtype(count / (count - 1))).astype(running_var.dtype)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
        mean = running_mean.data.astype(input.dtype)
        var = running_var.data.astype(input.dtype)
        centered = x3 - mean[:, None]
    inv_std = 1 / np.sqrt(var + dtype(eps))
    scale = inv_std if weight is None else inv_std * weight.data
    out = centered  # a fresh array: normalise it in place into the output
    out *= scale[:, None]
    if bias is not None:
        out += bias.data[:, None]
    inputs = (input,) + tuple(t for t in (weight, bias) if t is not None)
    return Tensor.from_op(out.reshape(input.shape), "batch_norm", inputs, mean=mean, inv_std=inv_std,
                          training=training, has_weight=weight is not None, has_bias=bias is not None)
    ### END SOLUTION


@register_backward("batch_norm")
def batch_norm_backward(grad, out):
    """The analytic gradient of batch_norm for (input, [weight], [bias]).

    TODO: recompute x - mean from the input and the saved mean; weight gradient
          sum(g * x_hat), bias gradient sum(g), input gradient from the formula above (training)
          or gamma * inv_std * g (eval). Return one entry per input, in order.
    HINT: work on (N, C, L) views; `np.einsum("ncl,ncl->c", g3, centered)` is sum(g * (x - mean))
          per channel, and x_hat = centered * inv_std, so fold inv_std into the per-channel
          coefficients instead of making a full-size pass for it. Build the input gradient in
          place on one new array to keep memory low.
    """
    s = out._saved
    x = out._inputs[0]
    weight = out._inputs[1] if s["has_weight"] else None
    N, C = x.shape[:2]
    mean, inv_std = s["mean"], s["inv_std"]
    ### BEGIN SOLUTION
    g3 = grad.reshape(N, C, -1)
    count = g3.shape[0] * g3.shape[2]
    centered = x.data.reshape(N, C, -1) - mean[:, None]
    sum_g = np.einsum("ncl->c", g3)
    sum_g_xhat = np.einsum("ncl,ncl->c", g3, centered) * inv_std
    grads = []
    if x.requires_grad:
        a = inv_std if weight is None else inv_std * weight.data
        grad_x = g3 * a[:, None]
        if s["training"]:
            centered *= (a * inv_std * sum_g_xhat / count)[:, None]  # = x_hat * a * mean(g * x_hat)
            grad_x -= centered
            grad_x -= (a * sum_g / count)[:, None]
        grads.append(grad_x.reshape(x.shape))
    else:
        grads.append(None)
    if s["has_weight"]:
        grads.append(sum_g_xhat)
    if s["has_bias"]:
        grads.append(sum_g)
    return tuple(grads)
    ### END SOLUTION

# %% [markdown]
# ### The BatchNorm2d layer
#
# `weight` ($\gamma$, ones) and `bias` ($\beta$, zeros) are parameters; `running_mean`
# (zeros), `running_var` (ones) and `num_batches_tracked` are **buffers**: saved in
# `state_dict()` (module 03's `register_buffer`) but never trained — the same names as PyTorch,
# so checkpoints load both ways. `model.train()` / `model.eval()` switch `self.training`.

# %%
#| export
class BatchNorm2d(Module):
    """Batch normalisation of (N, C, H, W) input per channel, with PyTorch's train/eval behaviour."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=DEFAULT_FLOAT):
        """Create weight/bias (when affine) and the running-statistics buffers.

        TODO: store the settings; weight = ones, bias = zeros (Parameters) when affine; register
              buffers running_mean = zeros, running_var = ones and num_batches_tracked = 0 (int64)
              when track_running_stats.
        HINT: `self.register_buffer(name, Tensor(...))`; attributes set to None still exist.
        """
        super().__init__()
        check_positive_int("BatchNorm2d", "num_features", num_features)
        ### BEGIN SOLUTION
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter(np.ones(num_features, dtype=dtype), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype), dtype=dtype) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype), dtype=dtype))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype), dtype=dtype))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        ### END SOLUTION

    def forward(self, x):
        """Normalise x (N, C, H, W): batch statistics in training, running statistics in eval."""
        return batch_norm(*self.batch_norm_arguments(x))

    def batch_norm_arguments(self, x):
        """batch_norm's arguments for input x in the layer's mode; counts the batch when training."""
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r} expected a 4-D input (N, {self.num_features}, H, W), got shape {x.shape}; "
                "num_features must equal the out_channels of the convolution before it"
            )
        use_batch_statistics = self.training or self.running_mean is None
        momentum = self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            if momentum is None:  # cumulative moving average, as PyTorch
                momentum = 1.0 / float(self.num_batches_tracked.data)
        running_mean = self.running_mean if not self.training or self.track_running_stats else None
        running_var = self.running_var if not self.training or self.track_running_stats else None
        return x, running_mean, running_var, self.weight, self.bias, use_batch_statistics, momentum, self.eps

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"

# %%
def test_unit_batch_norm():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 4, 4)).astype(np.float32) * 3 + 2
    layer = BatchNorm2d(3)
    out = layer(Tensor(x)).numpy()
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5) and np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-3)
    expected_var = 0.9 * 1 + 0.1 * x.var(axis=(0, 2, 3), ddof=1)
    assert np.allclose(layer.running_var.numpy(), expected_var, rtol=1e-5), "running_var uses the unbiased variance"
    assert np.allclose(layer.running_mean.numpy(), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert int(layer.num_batches_tracked.item()) == 1
    layer.eval()
    frozen = layer(Tensor(x)).numpy()
    manual = (x - layer.running_mean.numpy()[:, None, None]) / np.sqrt(layer.running_var.numpy()[:, None, None] + 1e-5)
    assert np.allclose(frozen, manual, atol=1e-5), "eval mode uses the running statistics"
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    gradcheck(lambda x, w, b: batch_norm(x, None, None, w, b, training=True), rng.standard_normal((4, 3, 2, 3)), w, b)
    ### BEGIN HIDDEN TESTS
    mean, var = Tensor(rng.standard_normal(3)), Tensor(rng.random(3) + 0.5)
    gradcheck(lambda x, w: batch_norm(x, mean, var, w, None, training=False),
              rng.standard_normal((2, 3, 2, 2)), rng.standard_normal(3))
    ### END HIDDEN TESTS
    print("batch_norm: ok")


test_unit_batch_norm()

# %% [markdown]
# ## Systems analysis
#
# Four measurements. Run this file as a script (`python modules/09_convolutions/convolutions.py`)
# to see your machine's figures; the tables below were measured on the course's 2-core machine.
#
# **1. The naive loop against im2col.** Same convolution, same answer (the tests above check
# it), two implementations. Count the FLOPs, the bytes of the im2col buffer, and the time.

# %%
def conv_flops(batch, in_channels, out_channels, out_height, out_width, kernel_size, groups=1):
    """Forward FLOPs of a convolution: 2 * N * O * Ho * Wo * (C / groups) * kh * kw."""
    kh, kw = conv_pair(kernel_size)
    return 2 * batch * out_channels * out_height * out_width * (in_channels // groups) * kh * kw


def im2col_bytes(batch, in_channels, out_height, out_width, kernel_size, itemsize=4):
    """Bytes of the im2col buffer: (C * kh * kw) x (N * Ho * Wo) elements."""
    kh, kw = conv_pair(kernel_size)
    return in_channels * kh * kw * batch * out_height * out_width * itemsize


def measure_naive_vs_im2col(batch=4, in_channels=16, out_channels=32, size=16):
    """{implementation: milliseconds} for one 3x3, padding-1 convolution, plus its FLOPs and im2col bytes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, in_channels, size, size)).astype(np.float32)
    w = rng.standard_normal((out_channels, in_channels, 3, 3)).astype(np.float32)
    timings = {
        "naive loops": median_milliseconds(lambda: conv2d_naive(x, w, padding=1), repeats=1),
        "im2col + GEMM": median_milliseconds(lambda: conv2d(Tensor(x), Tensor(w), padding=1), repeats=20),
    }
    return timings, conv_flops(batch, in_channels, out_channels, size, size, 3), im2col_bytes(batch, in_channels, size, size, 3)


if __name__ == "__main__":
    timings, flops, cols_bytes = measure_naive_vs_im2col()
    print(f"conv 16->32, 3x3, pad 1, batch 4, 16x16: {flops / 1e6:.1f} MFLOP, im2col buffer {cols_bytes / 2**20:.2f} MiB")
    for name, milliseconds in timings.items():
        print(f"  {name:>14}: {milliseconds:9.2f} ms  ({flops / milliseconds / 1e6:7.2f} GFLOP/s)")
    print(f"  speed-up: {timings['naive loops'] / timings['im2col + GEMM']:.0f}x")

# %% [markdown]
# Measured on the course's 2-core machine (`python modules/09_convolutions/convolutions.py`):
#
# | conv 16->32, 3x3, pad 1, batch 4, 16x16 (9.4 MFLOP) | time | GFLOP/s |
# |---|---|---|
# | naive loops (`conv2d_naive`) | 0.7-1.3 s | 0.01 |
# | im2col + one GEMM (`conv2d`), machine lightly loaded | 0.9 ms | 10.6 |
# | im2col + one GEMM (`conv2d`), load 8 on 2 cores | 30-48 ms | 0.2-0.3 |
#
# The im2col buffer of this small layer is 0.56 MiB. The naive version spends nearly all its
# time in the Python interpreter: 16,384 loop iterations of about 50 microseconds each, a few
# tiny NumPy calls apiece. im2col moves the same arithmetic into one copy and one BLAS call,
# about a thousand times faster. At CIFAR scale the difference is a matter of days: the 32->64
# layer on a batch of 64 has 4.2 million output pixels, so the loops would need about four
# minutes for one forward pass (two days per epoch of 782 batches), where im2col needs tens of
# milliseconds.
#
# The last row is a systems lesson of its own. When the machine is shared and busy (load 8:
# four runnable processes per core), OpenBLAS's two threads wait for each other at every
# synchronisation point, and a product this small becomes 40 times slower; large products
# suffer less, because they synchronise less often per FLOP. Always report the load next to a
# timing, and compare candidates in the same run.
#
# **2. The price of im2col: memory.** The buffer holds every input pixel $k_h k_w$ times.

# %%
if __name__ == "__main__":
    x_bytes = 64 * 32 * 32 * 32 * 4
    cols = im2col_bytes(64, 32, 32, 32, 3)
    print(f"32->64 layer, batch 64, 32x32: input {x_bytes / 2**20:.0f} MiB, im2col buffer {cols / 2**20:.0f} MiB "
          f"({cols / x_bytes:.0f}x the input), {conv_flops(64, 32, 64, 32, 32, 3) / 1e9:.2f} GFLOP forward")
    layer_x = Tensor(np.random.default_rng(0).standard_normal((64, 32, 32, 32)).astype(np.float32))
    layer = Conv2d(32, 64, 3, padding=1)
    milliseconds = median_milliseconds(lambda: layer(layer_x), repeats=3)
    print(f"  forward: {milliseconds:.1f} ms ({conv_flops(64, 32, 64, 32, 32, 3) / milliseconds / 1e6:.1f} GFLOP/s)")

# %% [markdown]
# For the 32->64 layer of the CIFAR network at batch 64 the input is 8 MiB and the buffer 72 MiB,
# nine times more: the cost of turning a convolution into a matrix product. Production libraries
# avoid materialising it (below). We keep it for the backward pass, where it is exactly the
# matrix the weight gradient needs. `benchmarks/bench_cnn_step.py` times this layer's forward and
# backward against PyTorch (oneDNN) in the same run: on the course's busy 2-core machine
# (load 5 to 7) ours took 1.4x PyTorch's time with two threads each and 1.6x with one thread
# each, and the whole training step of the CIFAR network 1.1x and 1.45x — inside the course's
# goal of 2x, with nothing but NumPy.
#
# **3. Pooling: the reshape fast path.** The backward pass of a 2x2 max pool over a
# (64, 64, 32, 32) batch, once with the general path (zero-fill, then add each tap's share) and
# once with the reshape fast path of Step 7 (assign each tap's slice once).

# %%
def measure_max_pool_backward_paths(shape=(64, 64, 32, 32)):
    """{path: milliseconds} of a 2x2 max-pool backward pass on a ReLU-like batch."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    grad = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
    tiled = max_pool2d(Tensor(x, requires_grad=True), 2)
    # The same windows through the general path: one extra row and column that no window
    # reaches means the windows no longer tile the input, so the reshape cannot be used.
    general = max_pool2d(Tensor(np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1))), requires_grad=True), 2)
    assert np.array_equal(tiled.data, general.data)
    return {
        "general (zero + add)": median_milliseconds(lambda: max_pool2d_backward(grad, general)),
        "reshape fast path": median_milliseconds(lambda: max_pool2d_backward(grad, tiled)),
    }


if __name__ == "__main__":
    for name, milliseconds in measure_max_pool_backward_paths().items():
        print(f"  max pool 2x2 backward, {name:>20}: {milliseconds:7.2f} ms")

# %% [markdown]
# Measured: 28 ms for the fast path against 49 ms for the general one (lightly loaded; 46 against
# 71 ms at load 8). Assigning each element once writes the 16 MiB gradient once; the general
# path first zero-fills it, then reads and writes it again for every tap.
#
# **4. Memory of a CNN's training step.** During training every layer keeps what its backward
# pass needs: convolutions their im2col columns, batch norm and ReLU their inputs or outputs,
# max pooling its winners. Below we run the CIFAR-10 milestone's network (the architecture that
# `milestones/cifar10_model.py` builds: 3x3 conv blocks of 32, 64, 128 and 128 channels with
# batch norm, ReLU and 2x2 max pooling, then a linear classifier) on a batch of 64 and add up
# the bytes of every activation and saved array it records.

# %%
def _saved_arrays(saved):
    """The NumPy arrays a graph node keeps for its backward pass (tuples of arrays included)."""
    for value in (saved or {}).values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, np.ndarray):
                yield item


def training_memory_by_layer(model, x):
    """(layer, output shape, bytes of its new output plus the arrays it saved for backward) per layer."""
    rows = []
    for index, layer in enumerate(model):
        previous, x = x, layer(x)
        output_bytes = 0 if np.shares_memory(x.data, previous.data) else x.nbytes  # a view costs nothing
        saved_bytes = sum(array.nbytes for array in _saved_arrays(x._saved))
        rows.append((f"{index}: {type(layer).__name__}", x.shape, output_bytes + saved_bytes))
    return rows


if __name__ == "__main__":
    from tinytorch.core.layers import ReLU
    from tinytorch.core.layers import Flatten, Linear, Sequential

    def block(cin, cout, pool):
        layers = [Conv2d(cin, cout, 3, padding=1, bias=False), BatchNorm2d(cout), ReLU()]
        return layers + ([MaxPool2d(2)] if pool else [])

    cifar_cnn = Sequential(*block(3, 32, False), *block(32, 64, True), *block(64, 128, True),
                           *block(128, 128, True), Flatten(), Linear(128 * 4 * 4, 10))
    batch = Tensor(np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32), requires_grad=True)
    rows = training_memory_by_layer(cifar_cnn, batch)
    for name, shape, nbytes in rows:
        print(f"  {name:<16} {str(shape):<20} {nbytes / 2**20:8.2f} MiB")
    parameters = sum(p.numel() for p in cifar_cnn.parameters())
    conv_share = sum(r[2] for r in rows if "Conv2d" in r[0]) / sum(r[2] for r in rows)
    print(f"  total held for backward: {sum(r[2] for r in rows) / 2**20:.0f} MiB "
          f"({conv_share:.0%} in the conv layers); parameters: {parameters:,} ({parameters * 4 / 2**20:.2f} MiB)")

# %% [markdown]
# Measured: about 245 MiB held for the backward pass of one batch of 64, two thirds of it by the
# four conv layers (their im2col columns: 72 MiB for the 32->64 layer alone), against 1 MiB of
# parameters. In a CNN **memory is dominated by activations**, and the im2col buffers are the
# largest share. Halving the batch halves this figure; the parameters do not change.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **Kernels.** PyTorch on CPU dispatches `conv2d` to oneDNN (formerly MKL-DNN), which never
#   builds the full im2col matrix: it blocks the input and the weights into cache-sized tiles
#   in a channels-blocked layout (`nChw8c`/`nChw16c`) and runs a JIT-generated micro-kernel, so
#   the "im2col" lives only in registers and L1 cache. Without oneDNN, ATen's fallback
#   (`slow_conv2d`) is im2col + GEMM — this module's algorithm, per image. On GPUs, cuDNN picks
#   among implicit GEMM, FFT and Winograd algorithms (`torch.backends.cudnn.benchmark = True`
#   times them and keeps the fastest for each shape).
# - **Winograd** computes a 3x3 convolution with about 2.25x fewer multiplications by
#   transforming tiles of input and weights (Lavin & Gray, 2016); **FFT** convolution wins for
#   large kernels.
# - **Memory layout.** `torch.channels_last` stores NHWC: the channels of one pixel are
#   contiguous, which is what the inner product of a convolution reads. Our transpose from
#   $(O, N H_o W_o)$ to NCHW is the price of keeping PyTorch's default layout.
# - **Batch norm** is fused in PyTorch too (`native_batch_norm` and its backward are single
#   kernels), and at inference it is folded into the preceding convolution's weights and bias,
#   removing it entirely — a trick module 18 (Acceleration) can use.
# - **Backward.** `torch.nn.grad.conv2d_input` and `conv2d_weight` are the two products of
#   Step 5; the input gradient is a *transposed convolution* (`conv_transpose2d`), which is what
#   our col2im computes.

# %% [markdown]
# ## Integration test: a small CNN learns to tell stripes apart
#
# Everything together: convolution, batch norm, ReLU, pooling, a linear classifier, autograd and
# a plain gradient-descent update. The loss is cross-entropy written with module 02's
# `log_softmax` (this module builds on 01, 02, 03 and 05; the optimizers of module 06 are not
# among them). The
# images are horizontal or vertical stripes at random phases with noise; a CNN must learn
# orientation-sensitive filters to separate them.

# %%
def test_integration_cnn_learns_stripes():
    import tinytorch.core.autograd  # noqa: F401
    from tinytorch.core.activations import log_softmax
    from tinytorch.core.layers import ReLU
    from tinytorch.core.layers import Flatten, Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    phase = rng.integers(0, 4, (64, 1, 1))
    grid = np.arange(8)[None, :, None]
    stripes = ((grid + phase) % 4 < 2).astype(np.float32)
    images = np.where(labels[:, None, None] == 0, stripes, stripes.transpose(0, 2, 1))[:, None]
    images = images + 0.3 * rng.standard_normal(images.shape).astype(np.float32)
    model = Sequential(Conv2d(1, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                       Conv2d(8, 8, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(8, 2))
    x = Tensor(images)
    losses = []
    for _ in range(40):
        loss = -log_softmax(model(x), dim=1)[np.arange(64), labels].mean()  # cross-entropy
        model.zero_grad()
        loss.backward()
        for parameter in model.parameters():
            parameter.data -= 0.3 * parameter.grad
        losses.append(loss.item())
    model.eval()
    accuracy = float((model(x).argmax(dim=1).numpy() == labels).mean())
    assert losses[-1] < 0.5 * losses[0], f"the loss should fall by half, went {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert accuracy >= 0.95, f"a CNN separates stripe orientations; got accuracy {accuracy:.2f}"
    print(f"integration: loss {losses[0]:.3f} -> {losses[-1]:.3f}, accuracy {accuracy:.2f}")


test_integration_cnn_learns_stripes()

# %% [markdown]
# ## ML systems thinking
#
# 1. The im2col buffer of the 32->64 layer is nine times its input. For a 224x224 ImageNet
#    image with 64 channels and batch 32, how many GB would it be? What would you change first:
#    the batch size, or the algorithm (process the batch in chunks, or never build the buffer)?
# 2. Our forward pass keeps `cols` for the weight gradient. Recomputing it in the backward pass
#    would save memory. What would it cost in time, measured as a fraction of the layer's step?
# 3. A 3x3 convolution with 64 input and 64 output channels costs how many FLOPs per output
#    pixel? A depthwise 3x3 (groups=64) followed by a 1x1 (MobileNet's block)? Why is the second
#    rarely 9x faster in practice on a CPU?
# 4. Max pooling routes the gradient to one element per window. What fraction of the input
#    gradient is exactly zero after a 2x2 max pool, and what does that mean for the layers below?
# 5. In eval mode batch norm is `y = a * x + b` per channel. How would you fold it into the
#    preceding convolution so that it costs nothing at inference?
#
# ## Summary
#
# You wrote convolution twice. The naive loops are the definition, short and obviously right;
# im2col turns the same arithmetic into one strided copy and one matrix product and runs
# about a thousand times faster, at the price of a buffer $k_h k_w$ times the input. You derived the
# backward passes — col2im for convolution, routing for max pooling, spreading for average
# pooling, and the closed form of batch normalisation — and checked every one against central
# differences. With `Conv2d`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d` and `BatchNorm2d`
# you have every layer of the CIFAR-10 milestone's network; `benchmarks/bench_cnn_step.py` times
# its training step against PyTorch.
