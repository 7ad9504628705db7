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
# # Module 13: Transformers
#
# *Can I build a GPT that generates text?*
#
# You have every part: token and position embeddings (module 11), attention (module 12),
# linear layers and dropout (module 03), GELU (module 02), cross-entropy (module 04), gradients
# (module 05) and AdamW (module 06). This module adds the last two — **layer normalisation** and
# the transformer's **MLP** — stacks them into **transformer blocks**, and builds **GPT**: the
# decoder-only language model of Radford et al. (GPT, 2018; GPT-2, 2019), written the way
# nanoGPT writes it, configuration first, then blocks, model and `generate`.
#
# ## Learning objectives
# - Derive layer normalisation and its gradient; implement it first from primitives, then as a
#   fused operation with an analytic backward, and measure the difference. Do the same for GELU.
# - Assemble a **pre-norm** transformer block and explain why the residual stream makes deep
#   stacks trainable.
# - Build a GPT with weight tying (one `Parameter` for the input embedding and the output layer)
#   and GPT-2's initialisation, returning `(logits, loss)` like nanoGPT.
# - Generate text with temperature and top-k sampling, reproducibly.
# - Count parameters and FLOPs per token, and measure a training step.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 13
# ```
#
# exports your code to `tinytorch/core/transformer.py` and grades it with
# `tests/modules/test_13_transformers.py`. Then `tito milestone run tinygpt` trains your GPT on
# Shakespeare.

# %% [markdown]
# ## Mathematical foundations
#
# **Layer normalisation** (Ba et al., 2016) standardises each token's vector over its $C$
# features, then rescales it with learned $\gamma, \beta \in \mathbb{R}^C$:
#
# $$\mu = \frac{1}{C}\sum_c x_c, \quad \sigma^2 = \frac{1}{C}\sum_c (x_c - \mu)^2, \quad
# \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad y = \gamma \odot \hat x + \beta.$$
#
# Unlike batch normalisation it uses no statistics across the batch, so it behaves the same in
# training and inference and for any batch size — which is what sequence models need.
# Its gradient, with $g = \gamma \odot \bar y$ and $r = 1/\sqrt{\sigma^2 + \epsilon}$:
#
# $$\bar x = r\left(g - \operatorname{mean}(g) - \hat x \odot \operatorname{mean}(g \odot \hat x)\right), \qquad
# \bar\gamma = \sum_{\text{tokens}} \bar y \odot \hat x, \qquad \bar\beta = \sum_{\text{tokens}} \bar y.$$
#
# (The two means come from $\mu$ and $\sigma$ depending on every $x_c$: moving one feature moves
# the statistics of all of them.)
#
# **GELU, tanh form.** GPT-2 uses the approximation of Hendrycks & Gimpel (2016),
# $\text{GELU}(x) \approx \tfrac12 x\left(1 + \tanh\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)$, whose derivative is
#
# $$\tfrac12\left(1 + t\right) + \tfrac12 x \left(1 - t^2\right) \sqrt{2/\pi}\left(1 + 3 \cdot 0.044715\, x^2\right),
# \qquad t = \tanh\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right).$$
#
# **The pre-norm block** (GPT-2's arrangement) keeps a *residual stream* $x$ that each sublayer
# reads through a layer norm and adds to:
#
# $$x \leftarrow x + \text{Attention}(\text{LN}_1(x)), \qquad x \leftarrow x + \text{MLP}(\text{LN}_2(x)).$$
#
# The identity path carries the gradient unchanged from the loss to the first layer, whatever the
# depth. **GPT** is then: token embedding + position embedding, $n$ blocks, a final layer norm,
# and a linear map back to $V$ vocabulary scores (logits). Trained with cross-entropy to predict
# token $t+1$ from tokens $\le t$ — the causal mask of module 12 guarantees it cannot peek.

# %%
#| export
import math
from dataclasses import dataclass

import numpy as np

from tinytorch.core.activations import GELU_TANH_CUBIC, SQRT_2_OVER_PI
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.autograd import no_grad
from tinytorch.core.embeddings import Embedding, LearnedPositionalEmbedding
from tinytorch.core.layers import Dropout, Linear, Module, ModuleList, Parameter, normal_
from tinytorch.core.losses import cross_entropy
from tinytorch.core.tensor import DEFAULT_FLOAT, Tensor, as_tensor, backend_kernel, check_positive_int, rand, register_backward

# %% [markdown]
# ## Step 1: layer normalisation from primitives
#
# First the formula with module 01's operations, whose gradients module 05 already knows:
# `mean`, subtraction, `* `, `** -0.5`. It is short and obviously right — and it records about
# ten operations per call, each a full pass over the activations and each kept alive for the
# backward pass. It is our *specification*: Step 2's fused version must match it.

# %%
#| export
def _normalized_axes(x, normalized_shape):
    """The trailing axes that layer norm reduces over; a clear error if x does not end in them."""
    shape = tuple(normalized_shape)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(
            f"layer_norm: an input of shape {x.shape} does not end in normalized_shape {shape}; "
            f"LayerNorm({shape[-1] if len(shape) == 1 else shape}) normalises the last dimension(s) of its input"
        )
    return tuple(range(x.ndim - len(shape), x.ndim))


def layer_norm_composed(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the trailing `normalized_shape` dims, from Tensor primitives.

    TODO: mean and (biased) variance over the normalised axes (keepdim=True), then
          (x - mean) * (variance + eps) ** -0.5, then * weight and + bias when they are given.
    HINT: `axes = _normalized_axes(x, normalized_shape)`; `x.mean(dim=axes, keepdim=True)`;
          `centred * centred` squares with primitives.
    """
    axes = _normalized_axes(x, normalized_shape)
    ### BEGIN SOLUTION
    centred = x - x.mean(dim=axes, keepdim=True)
    variance = (centred * centred).mean(dim=axes, keepdim=True)
    normalized = centred * (variance + eps) ** -0.5
    if weight is not None:
        normalized = normalized * weight
    if bias is not None:
        normalized = normalized + bias
    return normalized
    ### END SOLUTION

# %% [markdown]
# ### Test: layer norm from primitives

# %%
import tinytorch.core.autograd  # noqa: E402,F401  (module 05: switches backward() on)
from tinytorch.core.tensor import median_milliseconds  # noqa: E402  (module 01's timer, for the analysis)


def test_unit_layer_norm_composed():
    x = Tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    y = layer_norm_composed(x, (4,)).numpy()
    expected = (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5)
    assert np.allclose(y[0], expected, atol=1e-6)
    assert np.allclose(y[1], 0.0), "a constant row normalises to zeros (eps keeps it finite)"
    scaled = layer_norm_composed(x, (4,), Tensor([2.0, 2.0, 2.0, 2.0]), Tensor([1.0, 1.0, 1.0, 1.0])).numpy()
    assert np.allclose(scaled, 2 * y + 1, atol=1e-6)
    try:
        layer_norm_composed(x, (3,))
        raise AssertionError("an input ending in 4 cannot be normalised over shape (3,)")
    except ValueError as error:
        assert "(2, 4)" in str(error) and "(3,)" in str(error)
    print("layer norm from primitives: ok")


test_unit_layer_norm_composed()

# %% [markdown]
# ## Step 2: layer normalisation as one fused operation
#
# The fused version computes the same numbers on arrays and records **one** node, `"layer_norm"`,
# whose inputs are `x` and, when present, `weight` and `bias`. It saves only what the backward
# formula needs: $\hat x$ (one array the size of the input) and $r$ (one number per token).
#
# The backward rule implements the formula of the mathematical foundations. The weight's and
# bias's gradients sum over every token (every leading axis); we sum them here instead of
# returning a broadcast-shaped array for the engine to reduce, which saves a temporary.
#
# The arithmetic lives in `layer_norm_arrays`, on NumPy arrays, and `layer_norm` wraps it in the
# op: code that runs the model without Tensors (module 17's decode plan) reuses the same
# function instead of a copy of it.

# %%
#| export
def layer_norm_arrays(data, axes, weight=None, bias=None, eps=1e-5):
    """Layer norm of the NumPy array `data` over `axes`: returns (y, x_hat, r), all arrays.

    weight and bias are arrays (or None). `layer_norm` below wraps this in one op; module 17's
    decode plan calls it directly.

    TODO: mean over `axes`, centre, variance, r = 1 / sqrt(variance + eps), x_hat = centred * r,
          then y = x_hat * weight + bias (each when given; y must not be x_hat itself, which
          the backward pass keeps).
    HINT: `data.mean(axis=axes, keepdims=True)`; do the rest in place on the centred copy
          (`centred *= rstd`). The variance is `np.mean(centred * centred, axis=axes, keepdims=True)`.
    """
    ### BEGIN SOLUTION
    # Sums times 1/count, not np.mean: the same values, without np.mean's Python-level wrapper,
    # which cost a third of a KV-cached decode step (module 17) on rows of 128 numbers.
    inverse_count = 1.0 / math.prod(data.shape[a] for a in axes)
    centred = data - data.sum(axis=axes, keepdims=True) * inverse_count
    variance = (centred * centred).sum(axis=axes, keepdims=True)
    variance *= inverse_count
    variance += eps
    rstd = 1.0 / np.sqrt(variance)
    centred *= rstd
    normalized = centred
    if weight is not None:
        out = normalized * weight
        if bias is not None:
            out += bias
    elif bias is not None:
        out = normalized + bias
    else:
        out = normalized.copy()  # the backward pass keeps `normalized`: never hand it out
    return out, normalized, rstd
    ### END SOLUTION


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """PyTorch's F.layer_norm as one fused operation (analytic backward in `layer_norm_backward`).

    TODO: y, x_hat, r = layer_norm_arrays(x.data, axes, weight's and bias's arrays or None, eps);
          return `Tensor.from_op(y, "layer_norm", inputs, normalized=x_hat, rstd=r, axes=axes,
          has_weight=..., has_bias=...)` with inputs = (x,) plus weight and bias when given.
    """
    x = as_tensor(x)
    axes = _normalized_axes(x, normalized_shape)
    fused = backend_kernel("layer_norm") if axes == (x.ndim - 1,) and weight is not None else None
    if fused is not None:  # module 18's backend: one pass over each row, forward and backward
        out, normalized, rstd = fused(x.data, weight.data, None if bias is None else bias.data, eps)
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return Tensor.from_op(out, "layer_norm", inputs, normalized=normalized, rstd=rstd, axes=axes,
                              has_weight=True, has_bias=bias is not None, backward=backend_kernel("layer_norm_backward"))
    ### BEGIN SOLUTION
    out, normalized, rstd = layer_norm_arrays(x.data, axes, None if weight is None else weight.data,
                                              None if bias is None else bias.data, eps)
    inputs = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return Tensor.from_op(out, "layer_norm", inputs, normalized=normalized, rstd=rstd, axes=axes,
                          has_weight=weight is not None, has_bias=bias is not None)
    ### END SOLUTION


@register_backward("layer_norm")
def layer_norm_backward(grad, out):
    """Gradients of x, weight and bias for the fused layer norm.

    TODO: g = grad * weight (or grad); grad_x = rstd * (g - mean(g) - x_hat * mean(g * x_hat)),
          means over the normalised axes; grad_weight = sum of grad * x_hat and grad_bias = sum
          of grad over every leading axis. Return one gradient per input, in input order.
    HINT: the leading axes are `tuple(range(grad.ndim - len(axes)))`.
    """
    saved = out._saved
    if "backward" in saved:  # a backend kernel ran the forward pass: its backward kernel runs this
        grads = saved["backward"](grad, saved["normalized"], saved["rstd"], out._inputs[1].data)
        return grads[:len(out._inputs)]  # no bias: no bias gradient
    normalized, rstd, axes = saved["normalized"], saved["rstd"], saved["axes"]
    weight = out._inputs[1] if saved["has_weight"] else None
    leading = tuple(range(grad.ndim - len(axes)))
    ### BEGIN SOLUTION
    grads = []
    scaled = grad if weight is None else grad * weight.data
    projection = np.mean(scaled * normalized, axis=axes, keepdims=True)
    grad_x = scaled - scaled.mean(axis=axes, keepdims=True)
    grad_x -= normalized * projection
    grad_x *= rstd
    grads.append(grad_x)
    if weight is not None:
        grads.append((grad * normalized).sum(axis=leading) if weight.requires_grad else None)
    if saved["has_bias"]:
        grads.append(grad.sum(axis=leading) if out._inputs[-1].requires_grad else None)
    return tuple(grads)
    ### END SOLUTION

# %% [markdown]
# ### Test: fused and composed layer norm agree

# %%
def test_unit_layer_norm_fused():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5))
    weight, bias = rng.standard_normal(5), rng.standard_normal(5)
    cotangent = rng.standard_normal((2, 3, 5))
    results = []
    for norm in (layer_norm_composed, layer_norm):
        inputs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, weight, bias)]
        y = norm(inputs[0], (5,), inputs[1], inputs[2])
        y.backward(cotangent)
        results.append([y.numpy()] + [t.grad for t in inputs])
    for composed, fused in zip(*results):
        assert np.allclose(composed, fused, atol=1e-10), "fused and composed layer norm must agree"
    plain = layer_norm(Tensor(x, requires_grad=True), (3, 5))
    assert np.allclose(plain.numpy().reshape(2, -1).std(axis=1), 1.0, atol=1e-4), "normalised over two dims"
    ### BEGIN HIDDEN TESTS
    no_bias = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, weight)]
    layer_norm(no_bias[0], (5,), no_bias[1]).backward(cotangent)
    reference = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, weight)]
    layer_norm_composed(reference[0], (5,), reference[1]).backward(cotangent)
    assert np.allclose(no_bias[1].grad, reference[1].grad) and np.allclose(no_bias[0].grad, reference[0].grad)
    ### END HIDDEN TESTS
    print("fused layer norm: ok")


test_unit_layer_norm_fused()

# %% [markdown]
# ## Step 3: the `LayerNorm` layer
#
# PyTorch's `nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`:
# $\gamma$ starts at ones and $\beta$ at zeros, so that a fresh layer norm only standardises.
# (`bias=False` is what nanoGPT's `bias=False` configurations use: slightly faster, as good.)

# %%
#| export
class LayerNorm(Module):
    """Layer normalisation over the trailing `normalized_shape` dimensions (PyTorch's nn.LayerNorm)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=DEFAULT_FLOAT):
        """Store the shape and eps; create weight (ones) and bias (zeros) when elementwise_affine.

        TODO: normalise `normalized_shape` to a tuple (an int n means (n,)); create `self.weight`
              and `self.bias` as Parameters, or None (no bias when `bias` is False; neither when
              `elementwise_affine` is False).
        HINT: `np.ones(shape, dtype=dtype)`, `np.zeros(shape, dtype=dtype)`.
        """
        super().__init__()
        ### BEGIN SOLUTION
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of them, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype), dtype=dtype) if elementwise_affine else None
        has_bias = elementwise_affine and bias
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype), dtype=dtype) if has_bias else None
        ### END SOLUTION

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        affine = self.weight is not None
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={affine}" + (
            ", bias=False" if affine and self.bias is None else "")

# %% [markdown]
# ### Test: the layer

# %%
def test_unit_layer_norm_layer():
    layer = LayerNorm(4)
    assert layer.normalized_shape == (4,) and layer.weight.numpy().tolist() == [1.0] * 4
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    x = Tensor(np.random.default_rng(1).standard_normal((3, 4)) * 5 + 3)
    y = layer(x).numpy()
    assert np.allclose(y.mean(axis=1), 0.0, atol=1e-5) and np.allclose(y.std(axis=1), 1.0, atol=1e-3)
    assert LayerNorm(4, bias=False).bias is None and list(LayerNorm(4, elementwise_affine=False).parameters()) == []
    assert repr(layer) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
    print("LayerNorm: ok")


test_unit_layer_norm_layer()

# %% [markdown]
# ## Step 4: GELU, fused
#
# Module 02's `gelu(x, approximate="tanh")` composes the formula from about ten primitives. The
# MLP below applies GELU to the widest activation of the model (4x the embedding width), so it
# pays to fuse it: one forward pass on arrays, one saved array, and the derivative in the
# backward rule. Module 02's version stays the specification.
#
# One more trick, found by measuring: NumPy's `tanh` on float32 is about twice as slow as its
# `exp`. Since $\tanh z = 2\sigma(2z) - 1$ with $\sigma(u) = 1/(1 + e^{-u})$,
#
# $$\tfrac12 x (1 + \tanh z) = x\, \sigma(2z), \qquad
# \frac{d}{dx}\bigl[x\,\sigma(2z)\bigr] = s + x\, s (1 - s)\, 2 z', \quad s = \sigma(2z),\ z' = \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\, x^2).$$
#
# The same function, one `exp` instead of one `tanh`. For very negative $z$, $e^{-2z}$ overflows
# to `inf` and $s = 1/(1 + \infty) = 0$, the right limit: we silence NumPy's overflow warning.
#
# As for layer norm, the arithmetic is a function on arrays, `gelu_tanh_sigmoid` (it returns
# $s$; GELU is $x s$), and `gelu_tanh` wraps it in the op.

# %%
#| export
def gelu_tanh_sigmoid(data):
    """s = sigmoid(2 z), z = sqrt(2/pi) (x + 0.044715 x^3), of the NumPy array `data`: GELU is data * s.

    `gelu_tanh` below wraps it in one op; module 17's decode plan calls it directly.

    TODO: build -2z in place and finish the sigmoid in place.
    HINT: `s = data * data`, `s *= -2 * 0.044715 * c`, `s -= 2 * c`, `s *= data`
          (c = sqrt(2/pi)); then `np.exp(s, out=s)` (inside `np.errstate(over="ignore")`),
          `s += 1`, `np.reciprocal(s, out=s)`.
    """
    ### BEGIN SOLUTION
    s = data * data
    s *= -2.0 * GELU_TANH_CUBIC * SQRT_2_OVER_PI
    s -= 2.0 * SQRT_2_OVER_PI
    s *= data
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)
    return s
    ### END SOLUTION


def gelu_tanh(x):
    """GELU with GPT-2's tanh approximation, as one fused operation (= module 02's gelu(x, "tanh")).

    TODO: s = gelu_tanh_sigmoid(x.data); return `Tensor.from_op(x.data * s, "gelu_tanh", (x,), sigmoid=s)`.
    """
    x = as_tensor(x)
    fused = backend_kernel("gelu_tanh")
    if fused is not None:  # module 18's compiled backend: the same y and s in fewer passes
        out, s = fused(x.data)
        return Tensor.from_op(out, "gelu_tanh", (x,), sigmoid=s, backward=backend_kernel("gelu_tanh_backward"))
    ### BEGIN SOLUTION
    s = gelu_tanh_sigmoid(x.data)
    return Tensor.from_op(x.data * s, "gelu_tanh", (x,), sigmoid=s)
    ### END SOLUTION


@register_backward("gelu_tanh")
def gelu_tanh_backward(grad, out):
    """grad * (s + x s (1 - s) 2 z'), from the saved s = sigmoid(2 z).

    TODO: the derivative above, times grad.
    HINT: `slope = x * x`, `slope *= 6 * 0.044715 * c`, `slope += 2 * c`, `slope *= x` gives
          2 x z'; multiply by s (1 - s), add s, multiply by grad.
    """
    x, s = out._inputs[0].data, out._saved["sigmoid"]
    if "backward" in out._saved:  # a backend kernel ran the forward pass: its backward kernel runs this
        return (out._saved["backward"](grad, x, s),)
    ### BEGIN SOLUTION
    slope = x * x
    slope *= 6.0 * GELU_TANH_CUBIC * SQRT_2_OVER_PI
    slope += 2.0 * SQRT_2_OVER_PI
    slope *= x
    slope *= s
    slope *= 1.0 - s
    slope += s
    slope *= grad
    return (slope,)
    ### END SOLUTION

# %% [markdown]
# ### Test: fused GELU matches module 02's

# %%
def test_unit_gelu_tanh():
    from tinytorch.core.activations import gelu

    x = np.linspace(-6, 6, 25)
    results = []
    for activation in (lambda t: gelu(t, approximate="tanh"), gelu_tanh):
        inputs = Tensor(x, dtype=np.float64, requires_grad=True)
        y = activation(inputs)
        y.backward(np.cos(x))
        results.append((y.numpy(), inputs.grad))
    assert np.allclose(results[0][0], results[1][0], atol=1e-12), "values match module 02's tanh GELU"
    assert np.allclose(results[0][1], results[1][1], atol=1e-12), "gradients match module 02's"
    assert gelu_tanh(Tensor([1.0])).dtype == np.float32
    print("fused GELU: ok")


test_unit_gelu_tanh()

# %% [markdown]
# ## Step 5: the MLP and the transformer block
#
# The **MLP** works on each token separately: widen to $4C$ (`up_proj`), GELU, narrow back to $C$
# (`down_proj`), dropout. Two thirds of a GPT's parameters live here.
#
# The **block** is the pre-norm arrangement of the mathematical foundations, with dropout on
# each sublayer's output before it joins the residual stream. Its attention is causal.

# %%
#| export
class MLP(Module):
    """The transformer's position-wise feed-forward network: Linear(C, 4C), GELU, Linear(4C, C), dropout."""

    def __init__(self, n_embd, hidden=None, dropout=0.0, bias=True, dtype=DEFAULT_FLOAT):
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        self.up_proj = Linear(n_embd, hidden, bias=bias, dtype=dtype)
        self.down_proj = Linear(hidden, n_embd, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        """down_proj(gelu(up_proj(x))), then dropout.

        TODO: chain the layers, with the fused `gelu_tanh` between them.
        HINT: work on the rows `x.reshape(-1, C)` (one large matrix product, see module 12) and
              reshape the result back to `x.shape`.
        """
        ### BEGIN SOLUTION
        rows = x.reshape(-1, x.shape[-1])  # one (B*T, C) matrix product, as in MultiHeadAttention
        return self.dropout(self.down_proj(gelu_tanh(self.up_proj(rows)))).reshape(x.shape)
        ### END SOLUTION


class TransformerBlock(Module):
    """A pre-norm GPT block: x + dropout(attention(LN(x))), then x + mlp(LN(x))."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, causal=True, dtype=DEFAULT_FLOAT):
        super().__init__()
        self.attention_norm = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.attention = MultiHeadAttention(n_embd, n_head, dropout=dropout, bias=bias, causal=causal, dtype=dtype)
        self.residual_dropout = Dropout(dropout)
        self.mlp_norm = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias, dtype=dtype)

    def forward(self, x, padding_mask=None, kv_cache=None):
        """The two residual updates. `kv_cache` (module 17) goes to the attention, unchanged.

        TODO: x = x + residual_dropout(attention(attention_norm(x))); x = x + mlp(mlp_norm(x)).
        HINT: pass `padding_mask=padding_mask, kv_cache=kv_cache` to the attention.
        """
        ### BEGIN SOLUTION
        x = x + self.residual_dropout(self.attention(self.attention_norm(x), padding_mask=padding_mask,
                                                     kv_cache=kv_cache))
        return x + self.mlp(self.mlp_norm(x))
        ### END SOLUTION

# %% [markdown]
# ### Test: the block

# %%
def test_unit_transformer_block():
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    block = TransformerBlock(8, 2)
    names = [name for name, _ in block.named_parameters()]
    assert names[:2] == ["attention_norm.weight", "attention_norm.bias"] and names[-1] == "mlp.down_proj.bias"
    assert block.mlp.up_proj.weight.shape == (32, 8), "the MLP widens 4x"
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32), requires_grad=True)
    y = block(x)
    assert y.shape == (2, 5, 8)
    changed = x.numpy().copy()
    changed[:, -1] = 9.0
    assert np.allclose(block(Tensor(changed)).numpy()[:, :-1], y.numpy()[:, :-1], atol=1e-5), "causal block"
    y.sum().backward()
    assert x.grad.shape == (2, 5, 8) and block.mlp.down_proj.weight.grad is not None
    print("TransformerBlock: ok")


test_unit_transformer_block()

# %% [markdown]
# ## Step 6: the GPT
#
# The configuration is a dataclass, as in nanoGPT; its defaults are the course's tinygpt
# milestone (nanoGPT's CPU configuration for Shakespeare characters).
#
# Three details of GPT-2 matter:
#
# - **Weight tying** (Press & Wolf, 2017): the output layer `lm_head` (C -> V) uses the token
#   embedding's table (V x C) as its weight. We assign *the same* `Parameter` object to both,
#   so there is one table, counted once by `parameters()`, and its gradient accumulates from
#   both uses (module 05's engine adds the two contributions). It saves $V \cdot C$ parameters
#   and ties the meaning of "this vector" on the way in and on the way out.
# - **Initialisation**: every Linear and Embedding weight from $\mathcal{N}(0, 0.02)$, biases 0,
#   and the two projections that write into the residual stream (`attention.out_proj`,
#   `mlp.down_proj`) from $\mathcal{N}(0, 0.02/\sqrt{2 n_\text{layer}})$: each block adds two
#   terms to the stream, and the scaling keeps its variance from growing with depth (GPT-2
#   paper, section 2.3).
# - **`forward(idx, targets=None)` returns `(logits, loss)`**, like nanoGPT; `loss` is None
#   without targets. Unlike nanoGPT we return the logits of every position even without targets
#   (nanoGPT keeps only the last one at inference): tests and learners want them all, and the
#   cost at this size is small.
# - **A seam for a KV cache** (module 17): `forward(idx, kv_cache=cache)` runs `idx` as the
#   tokens that come *after* the `cache.length` positions the cache already holds. Their
#   positions start at `cache.length`, not 0 (the position table is read at
#   `[start : start + T]`), and block $i$ hands `cache.layers[i]` to its attention (module 12's
#   `kv_cache` argument). Without a cache, `start` is 0 and nothing changes. This module cannot
#   import module 17 (no module imports a later one), so it defines only the seam: what a cache
#   must offer, `length` and `layers`, and module 17 fills it.

# %%
#| export
@dataclass
class GPTConfig:
    """A GPT's hyperparameters (nanoGPT's names). Defaults: the tinygpt milestone's model."""

    block_size: int = 64  # longest context, in tokens
    vocab_size: int = 65  # Tiny Shakespeare's characters
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers


class GPT(Module):
    """A GPT language model (decoder-only transformer), nanoGPT's architecture."""

    def __init__(self, config, dtype=DEFAULT_FLOAT):
        """Build the layers from `config`, tie the output layer to the token embedding, initialise.

        TODO: token_embedding (V, C), position_embedding (block_size, C) as a
              LearnedPositionalEmbedding, embedding_dropout, blocks (a ModuleList of n_layer
              TransformerBlocks), final_norm, lm_head = Linear(C, V, bias=False); then set
              `self.lm_head.weight = self.token_embedding.weight` and call `self._init_weights()`.
        HINT: the blocks: `ModuleList([TransformerBlock(...) for _ in range(config.n_layer)])`.
        """
        super().__init__()
        _check_config(config)
        self.config = config
        ### BEGIN SOLUTION
        c = config
        self.token_embedding = Embedding(c.vocab_size, c.n_embd, dtype=dtype)
        self.position_embedding = LearnedPositionalEmbedding(c.block_size, c.n_embd, dtype=dtype)
        self.embedding_dropout = Dropout(c.dropout)
        self.blocks = ModuleList([TransformerBlock(c.n_embd, c.n_head, c.dropout, c.bias, dtype=dtype)
                                  for _ in range(c.n_layer)])
        self.final_norm = LayerNorm(c.n_embd, bias=c.bias, dtype=dtype)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False, dtype=dtype)
        self.lm_head.weight = self.token_embedding.weight  # weight tying: one Parameter, two uses
        self._init_weights()
        ### END SOLUTION

    def _init_weights(self):
        """GPT-2's initialisation (see above), drawn from module 01's seeded generator.

        TODO: N(0, 0.02) for every Linear weight and both embedding tables, zeros for biases;
              then N(0, 0.02 / sqrt(2 n_layer)) for each block's attention.out_proj.weight and
              mlp.down_proj.weight.
        HINT: `self.modules()` visits every layer; `normal_(parameter, 0.0, std)` (module 03) draws in place.
              The tied table is visited twice (as an Embedding and as lm_head): harmless.
        """
        ### BEGIN SOLUTION
        for module in self.modules():
            if isinstance(module, (Linear, Embedding, LearnedPositionalEmbedding)):
                normal_(module.weight, 0.0, 0.02)
            if isinstance(module, Linear) and module.bias is not None:
                module.bias.data[...] = 0
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            normal_(block.attention.out_proj.weight, 0.0, residual_std)
            normal_(block.mlp.down_proj.weight, 0.0, residual_std)
        ### END SOLUTION

    def forward(self, idx, targets=None, kv_cache=None):
        """Logits (B, T, vocab_size) for token ids idx (B, T); with targets (B, T), also the mean
        cross-entropy of predicting each target. Returns (logits, loss); loss is None without targets.

        kv_cache: None, or a cache of the keys and values of earlier positions (module 17's
        KVCache): an object with `length` (positions it holds) and `layers` (one cache per block,
        see MultiHeadAttention.forward). idx then holds the tokens at positions length ... length + T - 1.

        TODO: check the length; embed tokens and add the positions start ... start + T - 1; dropout;
              run the blocks (block i gets layer_caches[i]); final norm; lm_head. With targets,
              loss = cross_entropy over the (B*T, V) logits.
        HINT: the positions are the rows `self.position_embedding.weight[start:start + T]`. Apply
              lm_head to the (B*T, C) rows; those (B*T, V) logits and `targets.reshape(-1)` go to
              cross_entropy; return the logits reshaped to (B, T, V).
        """
        idx = _token_ids(idx, "GPT.forward")
        start, layer_caches = _cache_parts(kv_cache, len(self.blocks))
        if start + idx.shape[1] > self.config.block_size:
            cached = "" if kv_cache is None else f"{start} cached positions + "
            raise ValueError(
                f"GPT.forward: sequence length {cached}{idx.shape[1]} exceeds block_size {self.config.block_size}; "
                f"crop the context to its last {self.config.block_size} tokens (generate() does this)"
            )
        ### BEGIN SOLUTION
        positions = self.position_embedding.weight[start:start + idx.shape[1]]  # rows 0..T-1 without a cache
        x = self.embedding_dropout(self.token_embedding(idx) + positions)
        for block, layer_cache in zip(self.blocks, layer_caches):
            x = block(x, kv_cache=layer_cache)
        batch, length, width = x.shape
        logits = self.lm_head(self.final_norm(x).reshape(batch * length, width))  # (B*T, V) rows
        if targets is None:
            return logits.reshape(batch, length, -1), None
        targets = _token_ids(targets, "GPT.forward (targets)")
        if targets.shape != idx.shape:
            raise ValueError(f"GPT.forward: targets of shape {targets.shape} must match idx of shape {idx.shape}")
        loss = cross_entropy(logits, targets.reshape(-1))
        return logits.reshape(batch, length, -1), loss
        ### END SOLUTION

    def num_parameters(self, non_embedding=True):
        """Number of parameters, each shared one counted once. Like nanoGPT, the position table is
        left out by default (it costs no FLOPs); the token table stays: lm_head uses it."""
        count = sum(p.numel() for p in self.parameters())
        if non_embedding:
            count -= self.position_embedding.weight.numel()
        return count

    def flops_per_token(self):
        """Training FLOPs per token (forward + backward): 6 N + 12 n_layer n_embd block_size.

        The estimate of PaLM (Chowdhery et al., 2022, appendix B) that nanoGPT's estimate_mfu uses:
        2 N per token for the matrix products of the forward pass (one multiply-add per
        parameter), twice that again for the backward pass, plus attention's two T x T products
        (QK^T and PV: 4 n_layer n_embd T forward, x3 with the backward).
        """
        c = self.config
        return 6 * self.num_parameters() + 12 * c.n_layer * c.n_embd * c.block_size

    def parameter_groups(self, weight_decay):
        """AdamW parameter groups as nanoGPT makes them: weight decay on matrices (2-D and more),
        none on biases and LayerNorm gains. `AdamW(model.parameter_groups(0.1), lr=1e-3)`."""
        decay = [p for p in self.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Append max_new_tokens sampled tokens to each row of idx (B, T); returns (B, T + max_new_tokens).

        Each step crops the context to the last block_size tokens, runs the model on it and
        picks the next token from the last position's logits with `sample_next_token`. Runs under
        no_grad(); call `model.eval()` first when the model has dropout, as in PyTorch.
        (Module 17's generate does the same with a KV cache.)

        TODO: the loop above, on NumPy arrays: crop, forward, sample, append.
        HINT: `logits.data[:, -1, :]` are the last position's logits; `np.concatenate([ids,
              next_ids[:, None].astype(ids.dtype)], axis=1)` appends a column.
        """
        idx = _token_ids(idx, "GPT.generate")
        check_sampling_arguments("GPT.generate", temperature, top_k)
        ids = idx.data
        ### BEGIN SOLUTION
        with no_grad():
            for _ in range(max_new_tokens):
                logits, _ = self(ids[:, -self.config.block_size:])
                next_ids = sample_next_token(logits.data[:, -1, :], temperature, top_k)
                ids = np.concatenate([ids, next_ids[:, None].astype(ids.dtype)], axis=1)
        return Tensor(ids)
        ### END SOLUTION


def sample_next_token(logits, temperature=1.0, top_k=None):
    """One token id per row, sampled from (B, V) logits (a NumPy array): returns (B,) int64.

    Divides the logits by `temperature` (< 1: more conservative, > 1: more random), keeps the
    `top_k` largest when given, and samples from the softmax with module 01's generator
    (`manual_seed` makes it reproducible; one draw per row, even when top_k=1 leaves no choice).

    TODO: sample by inverse CDF: the first index whose cumulative probability exceeds u * total,
          with u from `rand(B, 1)`; compute in float64.
    HINT: `np.partition(scores, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)` is each row's
          k-th largest value; `np.cumsum(probabilities, axis=-1)`; counting the entries
          `<= threshold` gives the index.
    """
    ### BEGIN SOLUTION
    scores = np.asarray(logits).astype(np.float64) / temperature
    if top_k is not None:
        k = min(int(top_k), scores.shape[-1])
        kth_largest = np.partition(scores, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)
        scores = np.where(scores < kth_largest, -np.inf, scores)
    probabilities = np.exp(scores - scores.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(probabilities, axis=-1)
    threshold = rand(scores.shape[0], 1, dtype=np.float64).data * cumulative[:, -1:]
    return (cumulative <= threshold).sum(axis=-1)
    ### END SOLUTION


def check_sampling_arguments(caller, temperature, top_k):
    """A clear error for a temperature that is not > 0 or a top_k that is not a positive int (or None)."""
    if not temperature > 0:
        raise ValueError(f"{caller}: temperature must be > 0, got {temperature!r}; for greedy decoding use top_k=1")
    if top_k is not None:
        check_positive_int(caller, "top_k (or None)", top_k)


def _cache_parts(kv_cache, n_layer):
    """(first position, one cache per block): (0, [None, ...]) without a KV cache."""
    if kv_cache is None:
        return 0, [None] * n_layer
    layers = list(kv_cache.layers)
    if len(layers) != n_layer:
        raise ValueError(
            f"GPT.forward: the kv_cache has {len(layers)} layer caches for a model of {n_layer} blocks; "
            "make it for this model (module 17: KVCache.for_model(model, batch_size))"
        )
    return int(kv_cache.length), layers


def _check_config(config):
    if not isinstance(config, GPTConfig):
        raise TypeError(f"GPT: expects a GPTConfig, got {type(config).__name__}; e.g. GPT(GPTConfig(n_layer=2))")
    if config.n_embd % config.n_head:
        raise ValueError(
            f"GPTConfig: n_embd {config.n_embd} must be divisible by n_head {config.n_head} "
            "(each head gets n_embd / n_head dimensions)"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {config.dropout!r}")


def _token_ids(ids, caller):
    """ids as an integer Tensor of shape (B, T); a clear error otherwise."""
    ids = ids if isinstance(ids, Tensor) else Tensor(np.asarray(ids))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{caller}: token ids must be integers, got {ids.dtype}")
    if ids.ndim != 2:
        raise ValueError(
            f"{caller}: expects token ids of shape (batch, seq_len), got shape {ids.shape}; "
            "for one sequence use ids[None, :]"
        )
    return ids

# %% [markdown]
# ### Test: the GPT

# %%
def test_unit_gpt():
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config)
    assert model.lm_head.weight is model.token_embedding.weight, "weight tying shares one Parameter"
    parameters = list(model.parameters())
    assert sum(p is model.token_embedding.weight for p in parameters) == 1, "a shared parameter is listed once"
    assert abs(model.token_embedding.weight.numpy().std() - 0.02) < 0.005
    assert abs(model.blocks[0].mlp.down_proj.weight.numpy().std() - 0.02 / math.sqrt(4)) < 0.002
    idx = np.random.default_rng(0).integers(0, 11, size=(3, 8))
    logits, loss = model(idx)
    assert logits.shape == (3, 8, 11) and loss is None
    logits, loss = model(idx, np.roll(idx, -1, axis=1))
    assert abs(loss.item() - math.log(11)) < 0.1, "a fresh model guesses uniformly: loss ~ ln V"
    loss.backward()
    assert model.token_embedding.weight.grad.shape == (11, 16)
    changed = idx.copy()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    assert np.allclose(model(changed)[0].numpy()[:, :5], model(idx)[0].numpy()[:, :5], atol=1e-6), \
        "changing a token must not change earlier logits"
    try:
        model(np.zeros((1, 9), dtype=np.int64))
        raise AssertionError("9 tokens do not fit block_size 8")
    except ValueError as error:
        assert "9" in str(error) and "block_size 8" in str(error)
    ### BEGIN HIDDEN TESTS
    assert model.num_parameters() == model.num_parameters(non_embedding=False) - 8 * 16
    try:
        GPT(GPTConfig(n_embd=10, n_head=4))
        raise AssertionError("10 is not divisible by 4")
    except ValueError as error:
        assert "divisible" in str(error)
    ### END HIDDEN TESTS
    print("GPT: ok")


test_unit_gpt()

# %% [markdown]
# ### Test: the KV-cache seam
#
# The simplest cache the seam accepts concatenates each call's keys and values onto the earlier
# ones (module 17 preallocates instead). Running a sequence in chunks through it must give the
# logits of one pass over the whole sequence: the positions continue where the cache left off.

# %%
def test_unit_kv_cache_seam():
    from tinytorch.core.tensor import manual_seed

    class LayerCache:
        keys = values = None

        def update(self, keys, values):
            if self.keys is not None:
                keys = Tensor(np.concatenate([self.keys.data, keys.data], axis=-2))
                values = Tensor(np.concatenate([self.values.data, values.data], axis=-2))
            self.keys, self.values = keys, values
            return keys, values

    class ModelCache:
        def __init__(self, n_layer):
            self.layers, self.length = [LayerCache() for _ in range(n_layer)], 0

    manual_seed(2)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)).eval()
    idx = np.random.default_rng(2).integers(0, 11, size=(2, 8))
    cache = ModelCache(2)
    with no_grad():
        pieces = []
        for start, end in ((0, 5), (5, 6), (6, 8)):
            pieces.append(model(idx[:, start:end], kv_cache=cache)[0].numpy())
            cache.length = end
        full = model(idx)[0].numpy()
    assert np.allclose(np.concatenate(pieces, axis=1), full, atol=1e-5), "chunks through a cache = one full pass"
    print("KV-cache seam: ok")


test_unit_kv_cache_seam()

# %% [markdown]
# ### Test: generation

# %%
def test_unit_generate():
    from tinytorch.core.tensor import manual_seed

    manual_seed(1)
    model = GPT(GPTConfig(block_size=4, vocab_size=7, n_layer=1, n_head=1, n_embd=8)).eval()
    prompt = np.array([[1, 2], [3, 4]])
    manual_seed(5)
    first = model.generate(prompt, 6).numpy()
    assert first.shape == (2, 8) and first.dtype == np.int64 and np.array_equal(first[:, :2], prompt)
    assert first.min() >= 0 and first.max() < 7
    manual_seed(5)
    assert np.array_equal(model.generate(prompt, 6).numpy(), first), "the same seed gives the same tokens"
    greedy = model.generate(prompt, 3, top_k=1).numpy()
    logits, _ = model(prompt)
    assert np.array_equal(greedy[:, 2], logits.numpy()[:, -1].argmax(axis=-1)), "top_k=1 is greedy"
    try:
        model.generate(prompt, 1, temperature=0.0)
        raise AssertionError("temperature 0 must be refused")
    except ValueError as error:
        assert "top_k=1" in str(error)
    print("generate: ok")


test_unit_generate()

# %% [markdown]
# ## Systems analysis: what does a GPT cost?
#
# 1. **Parameters**, counted from the formula and from the model: per block $12C^2 + 13C$
#    (attention $4C^2 + 4C$, MLP $8C^2 + 5C$, two layer norms $4C$), plus the tables $VC + TC$
#    and the final norm $2C$. For GPT-2 small the formula gives nanoGPT's 124M.
# 2. **FLOPs per token**, $6N + 12 L C T$, and per training step.
# 3. **Fused against composed**: layer norm and GELU, forward and backward, at the shapes of
#    the tinygpt milestone (batch 12, 64 tokens, width 128; GELU at width 512).
# 4. **A training step** of the milestone model: forward, backward and AdamW, in milliseconds,
#    with the achieved GFLOP/s; and **generation** speed in tokens per second.

# %%
def gpt_parameter_count(config):
    """Parameters of a GPT with tied embeddings, from the architecture alone (all of them)."""
    c, v, t = config.n_embd, config.vocab_size, config.block_size
    bias = 1 if config.bias else 0
    attention = 4 * c * c + 4 * c * bias
    mlp = 8 * c * c + 5 * c * bias
    norms = 2 * (c + c * bias)
    return config.n_layer * (attention + mlp + norms) + v * c + t * c + (c + c * bias)


def compare_fused_and_composed_ms(repeats=10):
    """Milliseconds of forward + backward, composed vs fused, for layer norm and GELU."""
    from tinytorch.core.activations import gelu

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 64, 128), dtype=np.float32)
    hidden = rng.standard_normal((12, 64, 512), dtype=np.float32)
    weight, bias = np.ones(128, dtype=np.float32), np.zeros(128, dtype=np.float32)

    def norm_step(norm):
        inputs = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        norm(inputs[0], (128,), inputs[1], inputs[2]).backward(x)

    def gelu_step(activation):
        inputs = Tensor(hidden, requires_grad=True)
        activation(inputs).backward(hidden)

    cases = {
        "layer norm, composed": lambda: norm_step(layer_norm_composed),
        "layer norm, fused": lambda: norm_step(layer_norm),
        "GELU, module 02 (composed)": lambda: gelu_step(lambda t: gelu(t, approximate="tanh")),
        "GELU, fused": lambda: gelu_step(gelu_tanh),
    }
    return {name: median_milliseconds(case, repeats, warmup=2) for name, case in cases.items()}


def measure_training_step(config, batch_size=12, repeats=10):
    """Fastest ms of one forward + backward + AdamW step on random tokens."""
    from tinytorch.core.optimizers import AdamW
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    model = GPT(config)
    optimizer = AdamW(model.parameter_groups(0.1), lr=1e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, config.vocab_size, size=(batch_size, config.block_size))
    targets = rng.integers(0, config.vocab_size, size=(batch_size, config.block_size))

    def step():
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_milliseconds(step, repeats, warmup=2)


def measure_generation(config, new_tokens=64):
    """Tokens per second of generate() from a one-token prompt (batch 1, no KV cache)."""
    import time

    model = GPT(config).eval()
    start = time.perf_counter()
    model.generate(np.zeros((1, 1), dtype=np.int64), new_tokens)
    return new_tokens / (time.perf_counter() - start)


if __name__ == "__main__":
    tiny = GPTConfig()
    model = GPT(tiny)
    assert gpt_parameter_count(tiny) == model.num_parameters(non_embedding=False)
    gpt2 = GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768)
    print(f"tinygpt: {model.num_parameters(non_embedding=False):,} parameters "
          f"({model.num_parameters():,} without positions), {model.flops_per_token() / 1e6:.2f} MFLOP per token, "
          f"{model.flops_per_token() * 12 * tiny.block_size / 1e9:.2f} GFLOP per step of 12 x 64 tokens")
    print(f"GPT-2 small (formula): {gpt_parameter_count(gpt2) / 1e6:.2f}M parameters, "
          f"{(gpt_parameter_count(gpt2) - 1024 * 768) / 1e6:.2f}M without positions")
    for name, milliseconds in compare_fused_and_composed_ms().items():
        print(f"{name:>28}: {milliseconds:6.2f} ms forward + backward")
    step_ms = measure_training_step(tiny)
    step_flops = model.flops_per_token() * 12 * tiny.block_size
    print(f"training step (12 x 64 tokens, forward + backward + AdamW): {step_ms:.1f} ms, "
          f"{12 * tiny.block_size / step_ms * 1e3:,.0f} tokens/s, {step_flops / step_ms / 1e6:.1f} GFLOP/s")
    print(f"generate: {measure_generation(tiny):.0f} tokens/s (batch 1, context up to 64, no KV cache)")

# %% [markdown]
# What the cell printed here (2-core machine, shared with other work; run it for your figures):
#
# - tinygpt: 809,856 parameters (801,664 without positions), 5.20 MFLOP per token, 4.00 GFLOP
#   per step of 12 x 64 tokens. GPT-2 small: 124.44M parameters, 123.65M without positions —
#   the figure nanoGPT prints.
# - Fused against composed, forward + backward: layer norm 1.7 ms against 2.9 ms, GELU 6.4 ms
#   against 27.9 ms. Both fused versions stay: the gains (1.7x, 4.4x) are far above 10%.
# - A training step took 0.75 s here, about 1,000 tokens/s, on a machine whose two cores were
#   running four other jobs; run alone it is much faster. `benchmarks/bench_gpt_step.py` runs
#   the same step in PyTorch in the same process, alternating the two: TinyTorch took 0.78x
#   PyTorch's time under that load, and 1.03x PyTorch's CPU time with one thread each.
#
# A step records about 130 operations. More than half of the time goes to the matrix products
# (two thirds of that in the backward pass, which multiplies twice per forward product), then to the
# elementwise kernels of attention's softmax, GELU and layer norm; the Python bookkeeping of the
# graph is a few percent. Generation runs the whole context through the model for each new
# token: that repeated work is what module 17's KV cache removes.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - nanoGPT's `model.py` is this module's model, layer for layer (its `c_attn` is our
#   `qkv_proj`, `c_fc`/`c_proj` our `up_proj`/`down_proj`), with the same initialisation and
#   weight tying. A GPT-2 checkpoint loads into it after transposing the `Conv1D` weights.
# - PyTorch fuses what we fused, in C++: `F.layer_norm` is one kernel forward and one backward;
#   `F.gelu(approximate="tanh")` one elementwise kernel. `torch.compile` goes further and fuses
#   chains of elementwise operations *across* layers into generated kernels, so that an
#   activation is read from memory once instead of once per operation.
# - Production training adds mixed precision (bfloat16 matrix products with float32 master
#   weights), gradient checkpointing (recompute activations in the backward pass instead of
#   storing them), and FlashAttention (module 12).
# - Modern LLMs changed the block in small ways: RMSNorm instead of LayerNorm (no mean, no
#   bias), SwiGLU instead of GELU in the MLP, rotary position embeddings, no biases — Llama's
#   recipe — but the pre-norm residual skeleton is exactly this one.

# %% [markdown]
# ## Integration test: a GPT learns a sequence and writes it back

# %%
def test_integration_gpt_memorises_and_generates():
    from tinytorch.core.optimizers import AdamW
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    pattern = np.array([0, 1, 2, 3, 4, 5, 4, 3, 2, 1] * 3)
    config = GPTConfig(block_size=12, vocab_size=6, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    optimizer = AdamW(model.parameter_groups(0.01), lr=3e-3)
    starts = np.arange(len(pattern) - config.block_size)
    idx = np.stack([pattern[s:s + config.block_size] for s in starts])
    targets = np.stack([pattern[s + 1:s + config.block_size + 1] for s in starts])
    for _ in range(100):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, f"the model must memorise the pattern, loss {loss.item():.3f}"
    continuation = model.eval().generate(pattern[None, :4], 16, top_k=1).numpy()[0]
    assert np.array_equal(continuation, pattern[:20]), f"greedy generation must continue it: {continuation}"
    print("integration: ok")


test_integration_gpt_memorises_and_generates()

# %% [markdown]
# ## ML systems thinking
#
# 1. GPT-2 small has 124M parameters and 12 layers at width 768 with 1024 tokens. Using
#    $6N + 12LCT$, how many FLOPs does training on one token cost, and what share is attention?
#    At what context length would attention's share pass one half?
# 2. Weight tying saves $V \cdot C$ parameters. What share of GPT-2 small is that, and what share
#    of the tinygpt model? Why does it matter more for small models?
# 3. `generate` re-runs the whole context for every new token. How many FLOPs does generating
#    64 tokens cost with and without caching the keys and values of earlier positions
#    (module 17)?
# 4. The fused layer norm keeps $\hat x$ and one number per token for the backward pass; the
#    composition keeps about ten arrays. For GPT-2 small at batch 8, how much memory is that per
#    layer norm, and how many layer norms are there?
#
# ## Summary
#
# You built a GPT. Layer normalisation and GELU came first as compositions of primitives — the
# specification — and then as fused operations with analytic gradients, measured faster and
# held to the compositions by the tests. The MLP, the pre-norm transformer block and the GPT
# followed nanoGPT's structure: a configuration dataclass, GPT-2's initialisation with scaled
# residual projections, one shared `Parameter` for the input embedding and the output layer,
# `(logits, loss)` from `forward`, and `generate` with temperature and top-k sampling under
# `no_grad()`. You counted parameters and FLOPs per token and measured a training step. Next,
# the tinygpt milestone trains it on Shakespeare; module 17 makes generation fast with a KV cache.
