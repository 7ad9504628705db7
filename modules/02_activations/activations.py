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
# # Module 02: Activations
#
# *Can I add nonlinearity - the key to neural network intelligence?*
#
# Stack two linear layers and you still have one: $W_2 (W_1 x) = (W_2 W_1) x$. However deep the
# stack, a network of matrix products can only draw straight lines through the data. Put a
# nonlinear function between the layers and the stack can bend: with enough units, a two-layer
# network approximates any continuous function on a bounded region. Those functions are the
# **activations**, and this module builds the six that modern networks use.
#
# ## Learning objectives
# - Implement ReLU, Sigmoid, Tanh, GELU, Softmax and LogSoftmax on `Tensor`, as functions
#   (`relu(x)`, `softmax(x, dim=-1)`) and as layers (`ReLU()`, `Softmax(dim=-1)`), with
#   PyTorch's names and arguments.
# - Make every one of them **numerically stable**: logits of +1000 or -1000 give no `inf` and
#   no `nan`. Know the float32 number behind that: `exp` overflows above about 88.7.
# - Tell a **fused** op (forward in one NumPy kernel, one backward rule in module 05) from a
#   **composed** one (built from module 01's primitives, differentiable for free), and measure
#   what each choice costs.
#
# ## How to work through this module
# Each step has a short explanation, a code cell with `### BEGIN SOLUTION` / `### END SOLUTION`
# (in your edition: a `raise NotImplementedError` to replace), and a test cell right after it.
# Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 02
# ```
#
# exports your code to `tinytorch/core/activations.py` and grades it with
# `tests/modules/test_02_activations.py`.

# %% [markdown]
# ## Mathematical foundations
#
# | activation | formula | range | derivative (module 05 uses it) |
# |---|---|---|---|
# | ReLU | $\max(x, 0)$ | $[0, \infty)$ | $1$ if $x > 0$, else $0$ |
# | Sigmoid | $\sigma(x) = \frac{1}{1 + e^{-x}}$ | $(0, 1)$ | $\sigma(x)\,(1 - \sigma(x))$ |
# | Tanh | $\tanh x = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}$ | $(-1, 1)$ | $1 - \tanh^2 x$ |
# | GELU | $x\,\Phi(x)$, $\Phi$ the standard normal CDF | about $[-0.17, \infty)$ | $\Phi(x) + x\,\varphi(x)$ |
# | Softmax | $s_i = \frac{e^{x_i}}{\sum_j e^{x_j}}$ | $(0, 1)$, sums to 1 | $s_i(\delta_{ij} - s_j)$ |
# | LogSoftmax | $x_i - \log \sum_j e^{x_j}$ | $(-\infty, 0]$ | $\delta_{ij} - s_j$ |
#
# Sigmoid squashes a score into a probability; tanh is the same curve centred on zero,
# $\tanh x = 2\sigma(2x) - 1$. ReLU is the default of deep networks because its gradient is
# exactly 1 wherever the unit is active: it does not shrink as it passes back through many
# layers. GELU is a smooth ReLU that transformers (BERT, GPT-2) use: it weights $x$ by the
# probability that a standard normal variable is below $x$.
#
# **Softmax is shift-invariant.** For any constant $c$,
# $\frac{e^{x_i - c}}{\sum_j e^{x_j - c}} = \frac{e^{x_i}}{\sum_j e^{x_j}}$. Choosing
# $c = \max_j x_j$ makes the largest exponent $e^0 = 1$: nothing overflows, and the sum is at
# least 1, so its logarithm is safe too. That gives the stable log-softmax
#
# $$\log s_i = (x_i - c) - \log \sum_j e^{x_j - c}.$$
#
# Why it matters: the largest float32 is about $3.4 \times 10^{38}$, so $e^{x}$ is `inf` for
# $x > \ln(3.4 \times 10^{38}) \approx 88.7$, and `inf / inf` is `nan`. Trained language models
# produce logits in the tens routinely; a single `nan` poisons every weight it touches.

# %%
#| export
import math

import numpy as np

from tinytorch.core.tensor import Tensor, backend_kernel, exp, where

# %% [markdown]
# ## Fused or composed?
#
# Module 05 will give every operation a gradient. There are two ways for an activation to get
# one, and this module uses both:
#
# - **Fused**: compute the whole forward pass in NumPy and record one graph node with
#   `Tensor.from_op(data, "sigmoid", (x,))`. Module 05 then registers one backward rule for the
#   op name, and that rule can use the output: $\sigma' = \sigma(1 - \sigma)$ costs two
#   multiplications. ReLU, Sigmoid, Tanh, Softmax and LogSoftmax are fused, under exactly those
#   names (`relu`, `sigmoid`, `tanh`, `softmax`, `log_softmax`); the last two save `dim=`, a
#   non-negative int, for their rules.
# - **Composed**: write the function with Tensor operations (`*`, `+`, `exp`, `where`, ...).
#   Every one of them already records itself, so the gradient comes for free. GELU is composed.
#   The price is one full pass over memory, and one temporary array, per operation; you will
#   measure it.
#
# Two small helpers come first: integer input becomes float32 (as `torch.sigmoid` does), and a
# `dim` is checked and made non-negative, with an error that names the op and the shape.

# %%
#| export
def _float_input(x):
    """`x` as a Tensor of floating-point data (lists and arrays are wrapped, integers become float32)."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        x = x.float()
    return x


def _check_dim(op, x, dim):
    """`dim` as a non-negative int, or an error naming the op, the dim and the shape."""
    if x.ndim == 0:
        raise ValueError(f"{op}: needs a tensor with at least one dimension, got a 0-d tensor; reshape it to (1,)")
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(
            f"{op}: dim {dim} is out of range for a tensor of shape {x.shape} ({x.ndim} dimensions); "
            f"use a dim from {-x.ndim} to {x.ndim - 1} (usually -1, the last dimension)"
        )
    return int(dim) % x.ndim

# %% [markdown]
# ## Step 1: ReLU
#
# $\mathrm{ReLU}(x) = \max(x, 0)$: one comparison per element. It keeps the dtype of its input
# (an int8 tensor stays int8), because nothing in it needs fractions.

# %%
#| export
def relu(x):
    """Rectified linear unit, max(x, 0) elementwise: `relu(Tensor([-1.0, 2.0]))` is [0, 2].

    TODO: compute max(x, 0) on `x.data` with NumPy and return
          `Tensor.from_op(data, "relu", (x,))`.
    HINT: `np.maximum(array, 0)` keeps the array's dtype (float32 stays float32).
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    ### BEGIN SOLUTION
    return Tensor.from_op(np.maximum(x.data, 0), "relu", (x,))
    ### END SOLUTION

# %%
def test_unit_relu():
    x = Tensor([[-2.0, -0.5, 0.0], [0.5, 2.0, 3.0]])
    assert relu(x).numpy().tolist() == [[0.0, 0.0, 0.0], [0.5, 2.0, 3.0]]
    assert relu(x).dtype == np.float32, "relu keeps float32"
    assert relu(Tensor(np.array([-3, 4], dtype=np.int8))).dtype == np.int8
    graph = relu(Tensor([1.0, -1.0], requires_grad=True))
    assert graph._op == "relu" and graph.requires_grad, "build the result with Tensor.from_op(data, 'relu', (x,))"
    ### BEGIN HIDDEN TESTS
    assert relu([-1.0, 1.0]).numpy().tolist() == [0.0, 1.0]
    assert relu(Tensor([-1000.0, 1000.0])).numpy().tolist() == [0.0, 1000.0]
    ### END HIDDEN TESTS
    print("relu: ok")


test_unit_relu()

# %% [markdown]
# ## Step 2: Sigmoid
#
# The textbook formula $1 / (1 + e^{-x})$ is the fast one, and it is stable with one thought.
# For $x < -88.7$, $e^{-x}$ overflows to `inf`; but IEEE arithmetic then gives
# $1 / (1 + \infty) = 0$, the correct limit, and no `nan` can appear (there is no `inf / inf`
# or `inf - inf` in the formula). The overflow is harmless, so we silence NumPy's warning for it
# with `np.errstate(over="ignore")` instead of paying for a two-branch formula. PyTorch's CPU
# kernel gives the same numbers.
#
# Work in place: `np.negative`, then `np.exp(a, out=a)`, `a += 1`, `np.reciprocal(a, out=a)`
# allocate one array instead of four.

# %%
#| export
def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) elementwise, in (0, 1); stable for any input.

    TODO: compute 1 / (1 + exp(-x)) on `x.data` and return `Tensor.from_op(data, "sigmoid", (x,))`.
    HINT: inside `with np.errstate(over="ignore"):` (exp(-x) = inf for x < -88.7 is fine:
          1 / (1 + inf) = 0), do `data = np.negative(x.data, out=np.empty_like(x.data))` (a new
          array even for 0-d input, where a ufunc alone returns a scalar), `np.exp(data, out=data)`,
          `data += 1`, `np.reciprocal(data, out=data)`.
    """
    x = _float_input(x)
    ### BEGIN SOLUTION
    with np.errstate(over="ignore"):
        data = np.negative(x.data, out=np.empty_like(x.data))
        np.exp(data, out=data)
        data += 1
        np.reciprocal(data, out=data)
    return Tensor.from_op(data, "sigmoid", (x,))
    ### END SOLUTION

# %%
def test_unit_sigmoid():
    x = Tensor([-1000.0, -2.0, 0.0, 2.0, 1000.0])
    expected = [0.0, 1 / (1 + math.exp(2.0)), 0.5, 1 / (1 + math.exp(-2.0)), 1.0]
    assert np.allclose(sigmoid(x).numpy(), expected, atol=1e-7)
    assert np.all(np.isfinite(sigmoid(x).numpy())), "sigmoid must stay finite at +-1000"
    assert sigmoid(x).dtype == np.float32
    assert sigmoid(Tensor([0, 1])).dtype == np.float32, "integers become float32"
    assert sigmoid(Tensor([1.0], requires_grad=True))._op == "sigmoid"
    assert sigmoid(Tensor(0.0)).item() == 0.5, "a 0-d tensor works too"
    ### BEGIN HIDDEN TESTS
    assert sigmoid(Tensor([0.5], dtype=np.float64)).dtype == np.float64
    ### END HIDDEN TESTS
    print("sigmoid: ok")


test_unit_sigmoid()

# %% [markdown]
# ## Step 3: Tanh
#
# NumPy's `np.tanh` is already stable: it returns exactly $\pm 1$ for large $|x|$ rather than
# computing $e^{1000}$. A fused op, so module 05 can use $1 - \tanh^2 x$ from the output.

# %%
#| export
def tanh(x):
    """Hyperbolic tangent elementwise, in (-1, 1).

    TODO: return `Tensor.from_op(np.tanh(x.data), "tanh", (x,))`.
    HINT: one line; `_float_input` has already made `x` a floating-point Tensor.
    """
    x = _float_input(x)
    ### BEGIN SOLUTION
    return Tensor.from_op(np.tanh(x.data), "tanh", (x,))
    ### END SOLUTION

# %%
def test_unit_tanh():
    x = Tensor([-1000.0, -1.0, 0.0, 1.0, 1000.0])
    assert np.allclose(tanh(x).numpy(), np.tanh([-1000.0, -1.0, 0.0, 1.0, 1000.0]))
    assert tanh(x).numpy()[0] == -1.0 and tanh(x).numpy()[-1] == 1.0
    assert np.allclose(tanh(x).numpy(), (2 * sigmoid(2 * x) - 1).numpy(), atol=1e-6), "tanh(x) = 2 sigmoid(2x) - 1"
    assert tanh(Tensor([0.5], requires_grad=True))._op == "tanh"
    print("tanh: ok")


test_unit_tanh()

# %% [markdown]
# ## Step 4: Softmax and LogSoftmax
#
# Both work along one dimension `dim` (default `-1`, the last: the classes of a batch of
# logits). Apply the shift from the foundations: subtract the maximum along `dim`, with
# `keepdims=True` so it broadcasts back against the input.
#
# - softmax: `e = exp(x - max)`, then `e / e.sum(dim)`.
# - log_softmax: `shifted = x - max`, then `shifted - log(exp(shifted).sum(dim))`. Never
#   `log(softmax(x))`: a probability that underflows to 0 has logarithm `-inf`, while the
#   fused formula returns the exact finite value (module 04 measures it).
#
# Masked entries of `-inf` (attention uses them in module 12) are fine: their exponent is 0.

# %%
#| export
def softmax(x, dim=-1):
    """Probabilities along `dim`: exp(x) / exp(x).sum(dim), computed stably.

    TODO: subtract the maximum along `dim` (keepdims=True), exponentiate, divide by the sum
          along `dim`; return `Tensor.from_op(data, "softmax", (x,), dim=dim)`, where `dim` is
          the non-negative int that `_check_dim` returned.
    HINT: `array.max(axis=dim, keepdims=True)`. Work in place (`np.exp(a, out=a)`,
          `a /= a.sum(axis=dim, keepdims=True)`) to allocate one array instead of three.
    """
    x = _float_input(x)
    dim = _check_dim("softmax", x, dim)
    fused = backend_kernel("softmax") if dim == x.ndim - 1 else None
    if fused is not None:  # module 18's backend (the backward rule, module 05's, stays the same)
        return Tensor.from_op(fused(x.data), "softmax", (x,), dim=dim)
    ### BEGIN SOLUTION
    data = x.data - x.data.max(axis=dim, keepdims=True)
    np.exp(data, out=data)
    data /= data.sum(axis=dim, keepdims=True)
    return Tensor.from_op(data, "softmax", (x,), dim=dim)
    ### END SOLUTION


def log_softmax(x, dim=-1):
    """Log-probabilities along `dim`: x - log(exp(x).sum(dim)), computed stably.

    TODO: shift by the maximum along `dim`, subtract the log of the summed exponentials of the
          shifted values, and return `Tensor.from_op(data, "log_softmax", (x,), dim=dim)`.
    HINT: `shifted = x.data - x.data.max(axis=dim, keepdims=True)`, then
          `shifted -= np.log(np.exp(shifted).sum(axis=dim, keepdims=True))`.
    """
    x = _float_input(x)
    dim = _check_dim("log_softmax", x, dim)
    ### BEGIN SOLUTION
    shifted = x.data - x.data.max(axis=dim, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return Tensor.from_op(shifted, "log_softmax", (x,), dim=dim)
    ### END SOLUTION

# %%
def test_unit_softmax():
    logits = Tensor([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    probabilities = softmax(logits)
    reference = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert np.allclose(probabilities.numpy()[0], reference)
    assert np.allclose(probabilities.numpy()[1], [1.0, 0.0, 0.0]), "the max shift keeps +-1000 finite"
    assert np.allclose(probabilities.sum(dim=-1).numpy(), 1.0)
    assert np.allclose(softmax(logits, dim=0).sum(dim=0).numpy(), 1.0)
    log_probabilities = log_softmax(logits)
    assert np.all(np.isfinite(log_probabilities.numpy())), "log_softmax of +-1000 must be finite"
    assert np.allclose(log_probabilities.numpy()[1], [0.0, -1000.0, -2000.0])
    assert np.allclose(np.exp(log_softmax(logits).numpy()), probabilities.numpy())
    recorded = softmax(Tensor([[0.0, 1.0]], requires_grad=True), dim=-1)
    assert recorded._op == "softmax" and recorded._saved == {"dim": 1}, "save dim as a non-negative int"
    try:
        softmax(logits, dim=2)
        raise AssertionError("dim 2 of a 2-D tensor must be rejected")
    except IndexError as error:
        assert "softmax" in str(error) and "(2, 3)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert log_softmax(Tensor([[0.0, 1.0]], requires_grad=True), dim=0)._saved == {"dim": 0}
    masked = softmax(Tensor([0.0, -np.inf, 0.0]))
    assert masked.numpy().tolist() == [0.5, 0.0, 0.5]
    ### END HIDDEN TESTS
    print("softmax and log_softmax: ok")


test_unit_softmax()

# %% [markdown]
# ## Step 5: GELU, composed from primitives
#
# $\mathrm{GELU}(x) = x\,\Phi(x)$ with $\Phi(x) = \tfrac12\bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr)$.
# PyTorch offers two forms, chosen by `approximate=`:
#
# - `"tanh"` (GPT-2's choice): $\tfrac12 x \bigl(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715\,x^3))\bigr)$.
#   Multiplications, additions and the `tanh` you just wrote.
# - `"none"` (the default, exact): needs erf, which is not one of our primitives. We build it
#   from them with Abramowitz and Stegun's formula 7.1.26 (*Handbook of Mathematical
#   Functions*, 1964): for $z \ge 0$,
#   $$\operatorname{erfc}(z) = 1 - \operatorname{erf}(z)
#     \approx (a_1 t + a_2 t^2 + a_3 t^3 + a_4 t^4 + a_5 t^5)\, e^{-z^2}, \qquad t = \frac{1}{1 + p z},$$
#   with $p = 0.3275911$, $a_{1..5} = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429$,
#   and an absolute error of at most $1.5 \times 10^{-7}$. So $\Phi$ is within
#   $7.5 \times 10^{-8}$, and GELU within $7.5 \times 10^{-8}\,|x|$: below float32's own rounding
#   for the inputs networks see.
#
# One more stability detail. For very negative $x$, $1 + \operatorname{erf}(x/\sqrt2)$ subtracts
# two numbers close to 1 and loses every digit. Use the symmetry instead: with
# $q(x) = \tfrac12 \operatorname{erfc}(|x|/\sqrt2) = P(Z > |x|)$, the normal tail,
# $\Phi(x) = 1 - q(x)$ for $x \ge 0$ and $\Phi(x) = q(x)$ for $x < 0$: `where` picks the branch.
# Note $e^{-z^2} = e^{-x^2/2}$ when $z = |x|/\sqrt2$.

# %%
#| export
# Abramowitz & Stegun 7.1.26: erfc(z) ~ t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2),
# t = 1 / (1 + p z), z >= 0, absolute error <= 1.5e-7.
_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# GELU's tanh form, 0.5 x (1 + tanh(SQRT_2_OVER_PI (x + GELU_TANH_CUBIC x^3))); module 13's fused
# kernel uses the same two constants.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715
_GELU_APPROXIMATIONS = ("none", "tanh")


def _normal_tail(x):
    """P(Z > |x|) for a standard normal Z, i.e. erfc(|x| / sqrt 2) / 2, from Tensor primitives.

    TODO: with z = |x| / sqrt(2), compute t = 1 / (1 + p z), the polynomial
          t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) by Horner's rule, and return
          0.5 * polynomial * exp(-x * x / 2). Use Tensor operations only (so that module 05
          can differentiate it): `x.abs()`, `*`, `+`, `/`, `exp`.
    HINT: `t = 1.0 / (1.0 + (_ERFC_P / math.sqrt(2.0)) * x.abs())`; start Horner's rule with
          `polynomial = _ERFC_A[4]` and loop over `_ERFC_A[3::-1]`.
    """
    ### BEGIN SOLUTION
    t = 1.0 / (1.0 + (_ERFC_P / math.sqrt(2.0)) * x.abs())
    polynomial = _ERFC_A[4]
    for coefficient in _ERFC_A[3::-1]:
        polynomial = polynomial * t + coefficient
    return 0.5 * (polynomial * t) * exp(-0.5 * x * x)
    ### END SOLUTION


def gelu(x, approximate="none"):
    """Gaussian error linear unit x * Phi(x), Phi the standard normal CDF (PyTorch's `F.gelu`).

    approximate="none" (default): Phi through erf, built by A&S 7.1.26 (error <= 7.5e-8 |x|).
    approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    TODO: for "tanh", compose the formula from Tensor operations and `tanh`; for "none", take
          `tail = _normal_tail(x)` and return `x * where(x.data >= 0, 1.0 - tail, tail)`.
    HINT: `SQRT_2_OVER_PI` is sqrt(2/pi), `GELU_TANH_CUBIC` is 0.044715; `x * x * x` is x cubed.
    """
    if approximate not in _GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be 'none' (exact, via erf) or 'tanh', got {approximate!r}")
    x = _float_input(x)
    fused = backend_kernel("gelu")
    if fused is not None:  # module 18's backend: one kernel, with an analytic backward kernel
        return Tensor.from_op(fused(x.data, approximate), "gelu", (x,), approximate=approximate,
                              backward=backend_kernel("gelu_backward"))
    ### BEGIN SOLUTION
    if approximate == "tanh":
        inner = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * (x * x * x))
        return 0.5 * x * (1.0 + tanh(inner))
    tail = _normal_tail(x)
    return x * where(x.data >= 0, 1.0 - tail, tail)
    ### END SOLUTION

# %%
def test_unit_gelu():
    values = np.array([-1000.0, -5.0, -1.0, 0.0, 0.5, 3.0, 1000.0])
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in values])
    x = Tensor(values, dtype=np.float64)
    assert np.all(np.abs(gelu(x).numpy() - exact) <= 7.5e-8 * np.abs(values) + 1e-12), "A&S 7.1.26 bound"
    tanh_form = 0.5 * values * (1 + np.tanh(math.sqrt(2 / math.pi) * (values + 0.044715 * values**3)))
    assert np.allclose(gelu(x, approximate="tanh").numpy(), tanh_form)
    assert np.all(np.isfinite(gelu(Tensor([-1000.0, 1000.0])).numpy())), "gelu must stay finite at +-1000"
    assert gelu(Tensor([1.0])).dtype == np.float32
    assert gelu(Tensor([1.0], requires_grad=True)).requires_grad, "GELU is composed: the graph records it"
    try:
        gelu(x, approximate="fast")
        raise AssertionError("an unknown approximation must be rejected")
    except ValueError as error:
        assert "'tanh'" in str(error) and "'fast'" in str(error)
    ### BEGIN HIDDEN TESTS
    assert abs(gelu(Tensor([-0.75], dtype=np.float64)).item() - (-0.75 * 0.5 * math.erfc(0.75 / math.sqrt(2)))) < 1e-7
    ### END HIDDEN TESTS
    print("gelu: ok")


test_unit_gelu()

# %% [markdown]
# ## Step 6: activations as layers
#
# Networks are lists of layers, so each activation also comes as a class you construct once and
# call: `ReLU()(x)`, `Softmax(dim=1)(x)`. Module 03 introduces `Module`, the base class of layers
# with weights; activations have none, so a small class of their own is enough: `forward` does
# the work, calling the object calls `forward` (PyTorch's convention), `parameters()` is empty,
# and the repr shows the settings the way PyTorch prints them (`GELU(approximate='none')`).

# %%
#| export
class Activation:
    """What every activation layer shares: call it like a function; it has no parameters."""

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward: an activation layer must define forward(x)")

    def __call__(self, x):
        """`layer(x)` runs `layer.forward(x)`, as in PyTorch.

        TODO: return the result of `self.forward(x)`.
        HINT: one line.
        """
        ### BEGIN SOLUTION
        return self.forward(x)
        ### END SOLUTION

    def parameters(self):
        """The trainable tensors of this layer: none (so an optimizer finds nothing to update).

        TODO: return an empty list.
        HINT: a list, not None: callers concatenate the parameters of every layer.
        """
        ### BEGIN SOLUTION
        return []
        ### END SOLUTION

    def extra_repr(self):
        """The settings shown between the parentheses of the repr."""
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class ReLU(Activation):
    """max(x, 0) as a layer."""

    def forward(self, x):
        return relu(x)


class Sigmoid(Activation):
    """1 / (1 + exp(-x)) as a layer."""

    def forward(self, x):
        return sigmoid(x)


class Tanh(Activation):
    """tanh(x) as a layer."""

    def forward(self, x):
        return tanh(x)


class GELU(Activation):
    """x * Phi(x) as a layer; approximate="none" (exact, via erf) or "tanh"."""

    def __init__(self, approximate="none"):
        super().__init__()  # cooperative: module 03's Module form of this class runs Module.__init__ here
        if approximate not in _GELU_APPROXIMATIONS:
            raise ValueError(f"GELU: approximate must be 'none' (exact, via erf) or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Activation):
    """Probabilities along `dim` as a layer."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Activation):
    """Log-probabilities along `dim` as a layer."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return log_softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"

# %%
def test_unit_layers():
    x = Tensor([[-1.0, 0.0, 2.0]])
    for layer, function in ((ReLU(), relu), (Sigmoid(), sigmoid), (Tanh(), tanh), (GELU(), gelu)):
        assert np.array_equal(layer(x).numpy(), function(x).numpy()), f"{layer!r} must call its function"
        assert layer.parameters() == [], "activations have no parameters"
    assert np.array_equal(Softmax(dim=0)(x).numpy(), softmax(x, dim=0).numpy())
    assert np.array_equal(LogSoftmax()(x).numpy(), log_softmax(x).numpy())
    assert repr(ReLU()) == "ReLU()" and repr(Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    ### BEGIN HIDDEN TESTS
    assert repr(LogSoftmax()) == "LogSoftmax(dim=-1)" and repr(Sigmoid()) == "Sigmoid()"
    ### END HIDDEN TESTS
    print("activation layers: ok")


test_unit_layers()

# %% [markdown]
# ## Systems analysis: what does an activation cost?
#
# Two measurements. First, **time** on one million float32 elements (4 MB), median of several
# runs, next to a plain copy: the floor set by memory bandwidth (read 4 MB, write 4 MB). ReLU
# is one comparison per element and runs near that floor; `exp` and `tanh` cost tens of
# instructions per element; composed GELU makes one pass over memory, and one temporary array,
# for every Tensor operation in its formula. Second, **overflow**: where naive softmax breaks.

# %%
def measure_activation_costs(numel=1_000_000, repeats=10):
    """Median milliseconds of each activation on one float32 tensor with `numel` elements."""
    from tinytorch.core.tensor import median_milliseconds

    x = Tensor(np.random.default_rng(0).standard_normal(numel, dtype=np.float32))
    rows = x.reshape(1000, -1)
    operations = {
        "copy (memory floor)": lambda: x.clone(),
        "relu": lambda: relu(x),
        "sigmoid": lambda: sigmoid(x),
        "tanh": lambda: tanh(x),
        "gelu tanh (composed)": lambda: gelu(x, approximate="tanh"),
        "gelu exact (composed)": lambda: gelu(x),
        "softmax (1000 rows)": lambda: softmax(rows, dim=-1),
        "log_softmax (1000 rows)": lambda: log_softmax(rows, dim=-1),
    }
    return {name: median_milliseconds(operation, repeats) for name, operation in operations.items()}


def naive_softmax(x, dim=-1):
    """softmax without the max shift: exactly the formula, and wrong for large logits."""
    with np.errstate(over="ignore", invalid="ignore"):
        exponentials = np.exp(x.data)
        return Tensor(exponentials / exponentials.sum(axis=dim, keepdims=True))


if __name__ == "__main__":
    for name, milliseconds in measure_activation_costs().items():
        print(f"{name:>24}: {milliseconds:7.2f} ms")
    largest = np.finfo(np.float32).max
    print(f"largest float32 {largest:.3e}; exp overflows above ln of it = {math.log(largest):.2f}")
    with np.errstate(over="ignore"):
        print("float32 exp(88.0), exp(89.0):", np.exp(np.float32(88.0)), np.exp(np.float32(89.0)))
    logits = Tensor([[1000.0, 0.0, -1000.0], [10.0, 20.0, 30.0]])
    print("naive softmax:", naive_softmax(logits).numpy().tolist())
    print("shifted softmax:", softmax(logits).numpy().tolist())

# %% [markdown]
# Measured on the course's 2-core machine, shared with other work at the time
# (`python modules/02_activations/activations.py`, the quietest of three runs; the others were
# up to twice as slow). The PyTorch column times `torch.nn.functional` the same way on
# `torch.randn(1_000_000)` with `torch.set_num_threads(1)`:
#
# | op (1M float32) | ms | PyTorch 2.13, 1 thread |
# |---|---|---|
# | copy (memory floor) | 0.4 | |
# | relu | 1.1 | 0.6 |
# | sigmoid | 4.5 | 2.3 |
# | tanh | 6.3 | 6.0 |
# | gelu tanh (composed) | 18 | 7.6 |
# | gelu exact (composed) | 35 | 2.8 |
# | softmax (1000 rows) | 5.6 | 2.6 |
# | log_softmax (1000 rows) | 9.4 | 2.9 |
#
# Your figures will differ; the ratios are the lesson. The composed GELU costs several times a
# fused activation: each of its twenty-odd Tensor operations walks the whole array and allocates
# a new one. That is exactly the cost that production frameworks remove by fusing GELU into
# one kernel (and that the backward pass pays again). The naive softmax of `[1000, 0, -1000]`
# is `[nan, 0, 0]`: $e^{1000}$ overflows to `inf`, and `inf / inf` is `nan`. The shifted one is
# `[1, 0, 0]`, the right answer.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# `torch.nn.functional.relu`, `sigmoid`, `tanh`, `softmax`, `log_softmax` and `gelu` are each
# one ATen kernel: vectorised C++ loops (SIMD `exp`, `tanh`) over the tensor, with a hand-written
# derivative in `derivatives.yaml` (for sigmoid and tanh it is computed from the *output*, as
# yours will be in module 05). GELU is a single fused kernel in both its `"none"` (erf from the
# C library) and `"tanh"` forms: 2.8 ms for the exact form above, against 35 ms for ours. Our
# composed GELU trades that speed for a gradient that needs no new backward rule. `torch.softmax` subtracts the row maximum exactly
# as you did. On GPUs, frameworks and compilers (`torch.compile`, XLA) go one step further and
# fuse the activation *into the preceding matrix multiply's epilogue*, so the activation's
# pass over memory disappears altogether.

# %% [markdown]
# ## Integration test: a two-layer network's forward pass

# %%
def test_integration_two_layer_forward():
    from tinytorch.core.tensor import manual_seed, randn

    manual_seed(2)
    inputs, hidden_weights, output_weights = randn(16, 4), randn(4, 32), randn(32, 10)
    for activation in (ReLU(), Sigmoid(), Tanh(), GELU(), GELU(approximate="tanh")):
        logits = activation(inputs @ hidden_weights) @ output_weights * 100  # large logits on purpose
        probabilities = Softmax(dim=1)(logits)
        assert probabilities.shape == (16, 10)
        assert np.allclose(probabilities.sum(dim=1).numpy(), 1.0, atol=1e-5)
        assert np.allclose(np.exp(LogSoftmax(dim=1)(logits).numpy()), probabilities.numpy(), atol=1e-6)
    linear = inputs @ hidden_weights @ output_weights
    bent = relu(inputs @ hidden_weights) @ output_weights
    assert not np.allclose(linear.numpy(), bent.numpy()), "the activation is what makes the stack nonlinear"
    print("integration: ok")


test_integration_two_layer_forward()

# %% [markdown]
# ## ML systems thinking
#
# 1. Sigmoid's derivative $\sigma(1 - \sigma)$ is at most 0.25. What happens to a gradient that
#    passes back through 20 sigmoid layers? Why does ReLU not have this problem, and what is the
#    "dying ReLU" problem it has instead?
# 2. Softmax over a vocabulary of 50,257 tokens (GPT-2) for 8 sequences of 1,024 positions: how
#    many bytes is its float32 output? How many passes over that memory does your
#    implementation make?
# 3. Sigmoid and tanh store their *output* for the backward pass; ReLU could store a one-byte
#    mask instead of its float32 output. How much memory does that save per activation?
# 4. Our exact GELU is within $7.5 \times 10^{-8}|x|$ of the truth. When would that error matter,
#    and when would you choose `approximate="tanh"` instead?
#
# ## Summary
#
# You built the six activations of modern networks, as functions and as layers with PyTorch's
# names. Five are fused (one NumPy kernel, one graph node, a backward rule to come in module 05);
# GELU is composed from primitives, erf included, and you measured what that costs. Every one
# is stable at $\pm 1000$, because you know where float32 breaks (`exp` above 88.7) and how the
# max shift avoids it. Next, module 03 puts weights around these nonlinearities: layers.
