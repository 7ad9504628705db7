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
# # Module 04: Losses
#
# *Can I measure how wrong a model's predictions are?*
#
# Training needs one number that says how wrong the model is: the **loss**. Gradient descent
# (modules 05 and 06) then asks how that number changes when each weight moves, and moves the
# weights downhill. Everything the model learns, it learns because the loss rewards it; choose
# the wrong loss, or compute the right one unstably, and training fails however good the model
# is. This module builds the four losses that cover regression and classification.
#
# ## Learning objectives
# - Implement `MSELoss`, `CrossEntropyLoss` (with `label_smoothing`), `BCELoss` and
#   `BCEWithLogitsLoss` with PyTorch's names, arguments and `reduction="mean" | "sum" | "none"`,
#   as classes and as functions (`mse_loss`, `cross_entropy`, `binary_cross_entropy`,
#   `binary_cross_entropy_with_logits`, plus `nll_loss`).
# - Compute cross-entropy **from logits** through the fused log-softmax of module 02, and see
#   why `log(softmax(x))` returns `inf` where the fused form is exact.
# - Compose every loss from module 01's differentiable primitives, so module 05 can
#   differentiate them without a single new backward rule.
# - Reject bad targets (wrong shape, wrong dtype, class out of range) with an error that says
#   what was expected and what came.
#
# ## How to work through this module
# Each step has a short explanation, a code cell with `### BEGIN SOLUTION` / `### END SOLUTION`
# (in your edition: a `raise NotImplementedError` to replace), and a test cell right after it.
# Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 04
# ```
#
# exports your code to `tinytorch/core/losses.py` and grades it with
# `tests/modules/test_04_losses.py`.

# %% [markdown]
# ## Mathematical foundations
#
# Each loss gives one number per element (or per sample), $\ell_i$; `reduction` turns them into
# the result: `"mean"` $= \frac{1}{n}\sum_i \ell_i$ (the default), `"sum"` $= \sum_i \ell_i$,
# `"none"` returns every $\ell_i$.
#
# **Mean squared error** (regression): $\ell_i = (\hat y_i - y_i)^2$.
#
# **Cross-entropy** (classification into $C$ classes). The model outputs logits
# $z \in \mathbb{R}^C$, the target is a class index $k$. The loss is the negative
# log-probability the model gives the right class:
# $$\ell = -\log \mathrm{softmax}(z)_k = -\Bigl(z_k - \log \sum_{j} e^{z_j}\Bigr) = -\mathrm{log\_softmax}(z)_k.$$
# A model that guesses uniformly pays $\log C$ (2.30 nats for 10 classes): your first sanity
# check of any classifier. **Label smoothing** ($\varepsilon$, Szegedy et al. 2016) trains
# towards $1 - \varepsilon$ on the right class and $\varepsilon / C$ spread over all classes:
# $$\ell = (1 - \varepsilon)\bigl(-\log p_k\bigr) + \varepsilon \cdot \frac{1}{C}\sum_{j}\bigl(-\log p_j\bigr).$$
#
# **Binary cross-entropy** (one probability $p$ per element, target $y \in [0, 1]$):
# $\ell = -\bigl(y \log p + (1 - y) \log(1 - p)\bigr)$. PyTorch floors each log at $-100$, so a
# confidently wrong prediction costs 100 nats instead of infinity.
#
# **Binary cross-entropy with logits** takes the score $x$ with $p = \sigma(x)$. Since
# $\log \sigma(x) = -\log(1 + e^{-x})$ and $\log(1 - \sigma(x)) = -x - \log(1 + e^{-x})$:
# $$\ell = x - xy + \log(1 + e^{-x}) = \max(x, 0) - xy + \log\bigl(1 + e^{-|x|}\bigr).$$
# The second form is equal for both signs of $x$ (add and subtract $x$ when $x < 0$), and its
# exponent is never positive: nothing overflows, for any logit.

# %%
#| export
import numpy as np

from tinytorch.core.activations import log_softmax
from tinytorch.core.layers import Module
from tinytorch.core.tensor import (
    Tensor,
    as_tensor,
    backend_kernel,
    exp,
    log,
    maximum,
    where,
)

_REDUCTIONS = ("mean", "sum", "none")

# %% [markdown]
# ## Step 1: reductions, and the mean squared error
#
# Every loss ends the same way, so that ending lives in one place: `_check_reduction` rejects an
# unknown name before any work is done, and `_reduce` applies it. Then MSE is three Tensor
# operations. Its one trap is shapes: predictions of shape `(N, 1)` against targets of shape
# `(N,)` *broadcast* to `(N, N)` and give a wrong loss silently. PyTorch only warns; we refuse,
# and name both shapes.

# %%
#| export
def _check_reduction(op, reduction):
    """An error naming the op and the choices when `reduction` is not one of them."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(losses, reduction):
    """Per-element losses -> their mean, their sum, or themselves ('none')."""
    ### BEGIN SOLUTION
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses
    ### END SOLUTION



def _float_target(target, input):
    """A regression or binary target as a floating-point Tensor (integer labels take input's dtype)."""
    if not isinstance(target, Tensor):
        return Tensor(np.asarray(target), dtype=input.dtype)
    return target if target.dtype.kind == "f" else target.to(input.dtype)


def _check_same_shape(op, input, target):
    if input.shape != target.shape:
        hint = "; they hold the same number of elements, so reshape one" if input.numel() == target.numel() else ""
        raise ValueError(
            f"{op}: input of shape {input.shape} and target of shape {target.shape} differ; the loss compares "
            f"them element by element, so they must have the same shape{hint} (e.g. target.reshape{input.shape})"
        )


def mse_loss(input, target, *, reduction="mean"):
    """Mean squared error between predictions and targets of the same shape (PyTorch's `F.mse_loss`).

    TODO: compute the squared difference elementwise and reduce it with `_reduce`.
    HINT: `difference = input - target`; `difference * difference` squares it with primitives.
    """
    _check_reduction("mse_loss", reduction)
    input = as_tensor(input)
    target = _float_target(target, input)
    _check_same_shape("mse_loss", input, target)
    ### BEGIN SOLUTION
    difference = input - target
    return _reduce(difference * difference, reduction)
    ### END SOLUTION

# %%
def test_unit_mse_loss():
    predictions = Tensor([[1.0, 2.0], [3.0, 4.0]])
    targets = Tensor([[1.0, 0.0], [0.0, 4.0]])
    assert mse_loss(predictions, targets).item() == (0 + 4 + 9 + 0) / 4
    assert mse_loss(predictions, targets, reduction="sum").item() == 13.0
    assert mse_loss(predictions, targets, reduction="none").numpy().tolist() == [[0, 4], [9, 0]]
    assert mse_loss(predictions, targets).dtype == np.float32 and mse_loss(predictions, targets).shape == ()
    assert mse_loss(Tensor([1.0, 2.0]), [1, 2]).item() == 0.0, "integer targets work"
    try:
        mse_loss(Tensor(np.zeros((4, 1))), Tensor(np.zeros(4)))
        raise AssertionError("(4, 1) against (4,) must be refused, not broadcast to (4, 4)")
    except ValueError as error:
        assert "(4, 1)" in str(error) and "(4,)" in str(error)
    try:
        mse_loss(predictions, targets, reduction="average")
        raise AssertionError("an unknown reduction must be rejected")
    except ValueError as error:
        assert "'mean'" in str(error) and "'average'" in str(error)
    ### BEGIN HIDDEN TESTS
    assert mse_loss(Tensor([1.0], dtype=np.float64), Tensor([3.0], dtype=np.float64)).dtype == np.float64
    ### END HIDDEN TESTS
    print("mse_loss: ok")


test_unit_mse_loss()

# %% [markdown]
# ## Step 2: picking the right class's log-probability (negative log-likelihood)
#
# Given log-probabilities of shape `(N, C)` and integer targets of shape `(N,)`, the loss of
# sample $i$ is `-log_probs[i, target[i]]`. NumPy's integer-array indexing picks all $N$ at once:
# `log_probs[arange(N), target]` pairs row $i$ with column `target[i]`. No loop, no copy of
# the `(N, C)` array, and it is the `getitem` primitive, so module 05 differentiates it.
#
# PyTorch also accepts extra dimensions: scores `(N, C, d1, ...)` with targets `(N, d1, ...)`,
# one class per pixel or per token, classes always on dim 1. The same indexing works with one
# index array per dimension; `np.indices(target.shape, sparse=True)` gives the aranges for
# `N, d1, ...`, shaped to broadcast. An unbatched `(C,)` score vector takes a 0-d target.
#
# Targets deserve checks, because the mistakes are common and their symptoms are not:
# float targets, one-hot rows where indices were expected, a target shape that broadcasts,
# class 10 in a 10-class problem (an `IndexError` deep in NumPy, or worse, a wrong loss).

# %%
#| export
def _class_dim(op, scores):
    """Where the classes are: dim 0 of unbatched (C,) scores, else dim 1 (PyTorch's layout)."""
    if scores.ndim == 0:
        raise ValueError(
            f"{op}: scores need a class dimension, shape (C,), (N, C) or (N, C, d1, ...); got a 0-d tensor"
        )
    return 0 if scores.ndim == 1 else 1


def _check_class_targets(op, scores, target):
    """`target` as integer class indices that fit `scores`; otherwise an error that says what was expected."""
    target = as_tensor(target)
    class_dim = _class_dim(op, scores)
    classes = scores.shape[class_dim]
    expected = scores.shape[:class_dim] + scores.shape[class_dim + 1 :]
    if target.dtype.kind not in "iu":
        if target.shape == scores.shape:
            hint = (f"these look like one-hot rows or probabilities; pass the class indices instead, "
                    f"target.argmax(dim={class_dim})")
        else:
            hint = "convert them with target.long()"
        raise TypeError(
            f"{op}: expected class indices (an integer tensor of shape {expected}) for scores of shape "
            f"{scores.shape}, got {target.dtype} targets of shape {target.shape}; {hint}"
        )
    if target.shape != expected:
        raise ValueError(
            f"{op}: scores of shape {scores.shape} ({classes} classes on dim {class_dim}) need class-index "
            f"targets of shape {expected}, got targets of shape {target.shape}"
        )
    if target.numel() > 0:
        low, high = int(target.data.min()), int(target.data.max())
        if low < 0 or high >= classes:
            raise IndexError(
                f"{op}: target class {low if low < 0 else high} is out of range for {classes} classes; "
                f"class indices must be in [0, {classes - 1}]"
            )
    return target


def _pick_targets(log_probs, target):
    """log_probs at each target's class, shaped like `target` (one getitem, no loop)."""
    ### BEGIN SOLUTION
    if log_probs.ndim == 1:
        return log_probs[target.data]
    positions = np.indices(target.shape, sparse=True)
    return log_probs[(positions[0], target.data) + tuple(positions[1:])]
    ### END SOLUTION


def nll_loss(input, target, *, reduction="mean"):
    """Negative log-likelihood of class indices, from log-probabilities (PyTorch's `F.nll_loss`).

    TODO: negate the log-probabilities of the target classes and reduce them.
    HINT: `_pick_targets(input, target)` returns them in the shape of `target`.
    """
    _check_reduction("nll_loss", reduction)
    input = as_tensor(input)
    target = _check_class_targets("nll_loss", input, target)
    ### BEGIN SOLUTION
    return _reduce(-_pick_targets(input, target), reduction)
    ### END SOLUTION

# %%
def test_unit_nll_loss():
    log_probs = Tensor(np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    targets = Tensor([0, 2])
    assert np.isclose(nll_loss(log_probs, targets).item(), -(np.log(0.7) + np.log(0.8)) / 2)
    assert np.allclose(nll_loss(log_probs, targets, reduction="none").numpy(), [-np.log(0.7), -np.log(0.8)])
    per_pixel = Tensor(np.log(np.full((2, 3, 4, 5), 0.25)))
    assert np.isclose(nll_loss(per_pixel, Tensor(np.zeros((2, 4, 5), dtype=np.int64))).item(), np.log(4))
    try:
        nll_loss(log_probs, Tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        raise AssertionError("one-hot float targets must be rejected")
    except TypeError as error:
        assert "class indices" in str(error) and "(2,)" in str(error) and "argmax" in str(error)
    try:
        nll_loss(log_probs, Tensor([0, 3]))
        raise AssertionError("class 3 of 3 classes is out of range")
    except IndexError as error:
        assert "3" in str(error) and "[0, 2]" in str(error)
    ### BEGIN HIDDEN TESTS
    assert np.isclose(nll_loss(Tensor(np.log([0.5, 0.25, 0.25])), Tensor(1)).item(), np.log(4))
    ### END HIDDEN TESTS
    print("nll_loss: ok")


test_unit_nll_loss()

# %% [markdown]
# ## Step 3: cross-entropy from logits, with label smoothing
#
# Cross-entropy is `log_softmax` (module 02, fused and stable) followed by the negative
# log-likelihood of Step 2, along the class dimension. With label smoothing $\varepsilon > 0$,
# mix in the average of $-\log p_j$ over the classes, which is `-log_probs.mean(dim=class_dim)`:
# already in the shape of the targets, so the two terms add elementwise before the reduction.

# %%
#| export
def _check_label_smoothing(op, label_smoothing):
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0 (0.1 is common), got {label_smoothing}")


def cross_entropy(input, target, *, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits (N, C) or (N, C, d1, ...) and class indices (PyTorch's `F.cross_entropy`).

    TODO: take `log_softmax` along the class dimension, negate the target classes' values, mix
          in label smoothing when it is positive, and reduce.
    HINT: `class_dim = _class_dim("cross_entropy", input)`; the smoothing term is
          `-log_probs.mean(dim=class_dim)`; the mix is `(1 - eps) * nll + eps * smooth`.
    """
    _check_reduction("cross_entropy", reduction)
    _check_label_smoothing("cross_entropy", label_smoothing)
    input = as_tensor(input)
    target = _check_class_targets("cross_entropy", input, target)
    fused = backend_kernel("cross_entropy") if input.ndim == 2 and label_smoothing == 0 else None
    if fused is not None:  # module 18's backend: log-softmax and NLL in one kernel
        losses, log_probs = fused(input.data, target.data, reduction)
        return Tensor.from_op(losses, "cross_entropy", (input,), log_probs=log_probs, target=target.data,
                              reduction=reduction, backward=backend_kernel("cross_entropy_backward"))
    ### BEGIN SOLUTION
    class_dim = _class_dim("cross_entropy", input)
    log_probs = log_softmax(input, dim=class_dim)
    losses = -_pick_targets(log_probs, target)
    if label_smoothing > 0:
        smooth = -log_probs.mean(dim=class_dim)
        losses = (1.0 - label_smoothing) * losses + label_smoothing * smooth
    return _reduce(losses, reduction)
    ### END SOLUTION

# %%
def test_unit_cross_entropy():
    logits = Tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    targets = Tensor([0, 1])
    array = logits.numpy().astype(np.float64)
    log_probs = array - np.log(np.exp(array).sum(axis=1, keepdims=True))
    assert np.isclose(cross_entropy(logits, targets).item(), -(log_probs[0, 0] + log_probs[1, 1]) / 2)
    uniform = cross_entropy(Tensor(np.zeros((5, 10))), Tensor([0, 1, 2, 3, 9]))
    assert np.isclose(uniform.item(), np.log(10)), "uniform guessing over 10 classes costs log(10)"
    smoothed = cross_entropy(logits, targets, label_smoothing=0.1, reduction="none")
    manual = 0.9 * -log_probs[[0, 1], [0, 1]] + 0.1 * -log_probs.mean(axis=1)
    assert np.allclose(smoothed.numpy(), manual, atol=1e-6)
    extreme = cross_entropy(Tensor([[1000.0, -1000.0]]), Tensor([1]))
    assert np.isclose(extreme.item(), 2000.0), "logits of +-1000 give the exact, finite loss"
    try:
        cross_entropy(logits, Tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        raise AssertionError("float (N, C) targets must be rejected: class indices are expected")
    except TypeError as error:
        assert "class indices" in str(error) and "(2, 3)" in str(error) and "float32" in str(error)
    ### BEGIN HIDDEN TESTS
    try:
        cross_entropy(logits, targets, label_smoothing=1.5)
        raise AssertionError("label_smoothing 1.5 must be rejected")
    except ValueError as error:
        assert "label_smoothing" in str(error) and "1.5" in str(error)
    ### END HIDDEN TESTS
    print("cross_entropy: ok")


test_unit_cross_entropy()

# %% [markdown]
# ## Step 4: binary cross-entropy on probabilities
#
# One probability per element, the output of a sigmoid. Two details:
#
# - **The clamp.** $\log 0 = -\infty$, and one such element makes the whole mean infinite.
#   PyTorch floors the logarithm at $-100$; so do we, with `maximum(log(p), -100)`. But at
#   $p = 0$ itself, `log(p)` would still be evaluated: NumPy warns, and in module 05 its gradient
#   $1/p = \infty$ times the zero that `maximum` passes back makes `nan`. So first replace $p$ by
#   1 where it is 0 (`where`), take the log (0 there, finite gradient), and put $-100$ back in
#   those places.
# - **The domain.** Probabilities outside $[0, 1]$ mean the caller passed raw scores: say so,
#   and point to `binary_cross_entropy_with_logits`.

# %%
#| export
def _clamped_log(probabilities):
    """log(p) floored at -100, as PyTorch's BCELoss does; finite, with no warning, at p = 0.

    TODO: where p > 0 take `maximum(log(p), -100.0)`; where p == 0 the result is -100.0. Never
          evaluate log(0): take the log of `where(p > 0, p, 1.0)` instead.
    HINT: `positive = probabilities.data > 0`; `where(positive, ..., -100.0)` puts the floor back.
    """
    ### BEGIN SOLUTION
    positive = probabilities.data > 0
    safe = where(positive, probabilities, 1.0)
    return where(positive, maximum(log(safe), -100.0), -100.0)
    ### END SOLUTION


def binary_cross_entropy(input, target, *, reduction="mean"):
    """Binary cross-entropy between probabilities in [0, 1] and targets (PyTorch's `F.binary_cross_entropy`).

    TODO: compute -(y log p + (1 - y) log(1 - p)) with `_clamped_log` for both logs, then reduce.
    HINT: `1.0 - input` is a Tensor operation, so the gradient flows through it.
    """
    _check_reduction("binary_cross_entropy", reduction)
    input = as_tensor(input)
    target = _float_target(target, input)
    _check_same_shape("binary_cross_entropy", input, target)
    if input.numel() > 0 and (input.data.min() < 0 or input.data.max() > 1):
        raise ValueError(
            f"binary_cross_entropy: input must hold probabilities in [0, 1], got values from "
            f"{input.data.min():.4g} to {input.data.max():.4g}; for raw scores (logits) use "
            "binary_cross_entropy_with_logits (BCEWithLogitsLoss), or apply sigmoid first"
        )
    ### BEGIN SOLUTION
    losses = -(target * _clamped_log(input) + (1.0 - target) * _clamped_log(1.0 - input))
    return _reduce(losses, reduction)
    ### END SOLUTION

# %%
def test_unit_binary_cross_entropy():
    probabilities = Tensor([0.9, 0.2, 0.5])
    targets = Tensor([1.0, 0.0, 1.0])
    expected = -np.mean([np.log(0.9), np.log(0.8), np.log(0.5)])
    assert np.isclose(binary_cross_entropy(probabilities, targets).item(), expected)
    with np.errstate(divide="raise", invalid="raise"):
        certain_and_wrong = binary_cross_entropy(Tensor([0.0, 1.0]), Tensor([1.0, 0.0]), reduction="none")
    assert certain_and_wrong.numpy().tolist() == [100.0, 100.0], "log is floored at -100, as in PyTorch"
    assert binary_cross_entropy(Tensor([1.0, 0.0]), Tensor([1.0, 0.0])).item() == 0.0
    try:
        binary_cross_entropy(Tensor([2.5, -1.0]), targets[:2])
        raise AssertionError("values outside [0, 1] are not probabilities")
    except ValueError as error:
        assert "[0, 1]" in str(error) and "with_logits" in str(error)
    ### BEGIN HIDDEN TESTS
    assert np.isclose(binary_cross_entropy(Tensor([0.25]), [1]).item(), np.log(4))
    ### END HIDDEN TESTS
    print("binary_cross_entropy: ok")


test_unit_binary_cross_entropy()

# %% [markdown]
# ## Step 5: binary cross-entropy with logits
#
# Feeding `sigmoid(x)` to Step 4 loses precision twice: sigmoid rounds to exactly 1 above
# $x \approx 17$ in float32, and the clamp then caps the loss at 100 even when it should be 1000.
# The stable formula from the foundations works on the logit directly:
# $\max(x, 0) - xy + \log(1 + e^{-|x|})$, and $e^{-|x|} \le 1$, so no term can overflow.
#
# Build both $\max(x, 0)$ and $-|x|$ with **one** `where` condition, `x >= 0`, rather than
# with `relu` and `abs`. Both pieces have a kink at $x = 0$, and a zero-initialised output layer
# produces exactly $x = 0$. There the gradient must be $\sigma(0) - y = 0.5 - y$; that holds
# when both pieces take the same branch ($1 - y - 0.5$), but `relu` uses the slope 0 at 0 while
# `abs` uses $+1$, and the mix would give $-0.5 - y$: wrong by one. One condition, one branch.

# %%
#| export
def binary_cross_entropy_with_logits(input, target, *, reduction="mean"):
    """Binary cross-entropy from logits, sigmoid included, stable for any logit
    (PyTorch's `F.binary_cross_entropy_with_logits`).

    TODO: compute max(x, 0) - x * y + log(1 + exp(-|x|)) from Tensor operations, then reduce;
          take max(x, 0) and -|x| from one condition, `input.data >= 0`, so that both use the
          same branch at x = 0.
    HINT: `where(positive, input, 0.0)` is max(x, 0); `where(positive, -input, input)` is -|x|.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input = as_tensor(input)
    target = _float_target(target, input)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    ### BEGIN SOLUTION
    positive = input.data >= 0
    losses = where(positive, input, 0.0) - input * target + log(1.0 + exp(where(positive, -input, input)))
    return _reduce(losses, reduction)
    ### END SOLUTION

# %%
def test_unit_binary_cross_entropy_with_logits():
    logits = Tensor([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    targets = Tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    values = logits.numpy().astype(np.float64)
    expected = np.logaddexp(0, values) - values * targets.numpy()  # log(1 + e^x) - x y, exact
    result = binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert np.allclose(result.numpy(), expected, rtol=1e-6), "the stable formula is exact at +-1000"
    moderate = Tensor([-2.0, 0.5, 3.0])
    from tinytorch.core.activations import sigmoid

    assert np.isclose(binary_cross_entropy_with_logits(moderate, targets[1:4]).item(),
                      binary_cross_entropy(sigmoid(moderate), targets[1:4]).item(), rtol=1e-6)
    ### BEGIN HIDDEN TESTS
    assert np.isclose(binary_cross_entropy_with_logits(Tensor([0.0]), Tensor([1.0]), reduction="sum").item(), np.log(2))
    ### END HIDDEN TESTS
    print("binary_cross_entropy_with_logits: ok")


test_unit_binary_cross_entropy_with_logits()

# %% [markdown]
# ## Step 6: losses as objects
#
# A training loop builds its loss once, `loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)`,
# and calls it every step, `loss = loss_fn(logits, targets)`. Each class stores its settings
# and calls its function; the base class holds what they share. As in PyTorch, a loss is a
# `Module` (module 03): calling it runs `forward`, and it has no parameters. The settings are keyword-only
# (`CrossEntropyLoss(reduction="sum")`): PyTorch's first positional argument is a class
# `weight`, which these losses do not take, and a positional value must not be silently
# misread.

# %%
#| export
class Loss(Module):
    """What every loss shares: a Module whose `forward(input, target)` gives the loss; no parameters."""

    def __init__(self, *, reduction="mean"):
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input, target):
        raise NotImplementedError(f"{type(self).__name__}.forward: a loss must define forward(input, target)")

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(Loss):
    """Mean squared error, for regression."""

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class NLLLoss(Loss):
    """Negative log-likelihood of class indices, from log-probabilities."""

    def forward(self, input, target):
        return nll_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(Loss):
    """Cross-entropy from logits and class indices, with optional label smoothing."""

    def __init__(self, *, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction=reduction)
        _check_label_smoothing("CrossEntropyLoss", label_smoothing)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        smoothing = f", label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return super().extra_repr() + smoothing


class BCELoss(Loss):
    """Binary cross-entropy on probabilities in [0, 1]."""

    def forward(self, input, target):
        return binary_cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits (sigmoid included, stable)."""

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, reduction=self.reduction)

# %%
def test_unit_loss_objects():
    logits, classes = Tensor([[1.0, 2.0], [0.5, -0.5]]), Tensor([1, 0])
    pairs = [
        (MSELoss(), mse_loss(logits, Tensor(np.ones((2, 2))))),
        (CrossEntropyLoss(label_smoothing=0.1), cross_entropy(logits, classes, label_smoothing=0.1)),
        (NLLLoss(reduction="sum"), nll_loss(logits, classes, reduction="sum")),
    ]
    assert pairs[0][0](logits, Tensor(np.ones((2, 2)))).item() == pairs[0][1].item()
    assert pairs[1][0](logits, classes).item() == pairs[1][1].item()
    assert pairs[2][0](logits, classes).item() == pairs[2][1].item()
    assert BCEWithLogitsLoss(reduction="none")(logits, Tensor(np.ones((2, 2)))).shape == (2, 2)
    assert list(BCELoss().parameters()) == [] and isinstance(BCELoss(), Module), "a loss is a Module without parameters"
    assert repr(CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(reduction='mean', label_smoothing=0.1)"
    try:
        MSELoss(reduction="avg")
        raise AssertionError("a bad reduction must fail when the loss is built, not at the first step")
    except ValueError as error:
        assert "MSELoss" in str(error) and "'avg'" in str(error)
    print("loss objects: ok")


test_unit_loss_objects()

# %% [markdown]
# ## Systems analysis: the memory of a large vocabulary, and why the log-softmax is fused
#
# A language model scores every token of its vocabulary at every position. GPT-2 has 50,257
# tokens: a batch of 8 sequences of 1,024 positions gives $8 \cdot 1024 \cdot 50257 \approx 4.1
# \times 10^8$ logits, 1.6 GB in float32, before the softmax makes a second array of the same
# size. The loss is where a language model's memory peaks. Below, `tracemalloc` (which sees
# NumPy's allocations) measures the peak that `cross_entropy` adds on top of the logits, against
# the composed route `softmax` -> index -> `log`.
#
# Then stability: `log(softmax(x))` for a class whose logit trails the best by $g$. In float32,
# $e^{-g}$ becomes a *subnormal* number below $e^{-87.3}$ (losing digits) and 0 beyond
# $g \approx 103.9$, where the log is $-\infty$. The fused `log_softmax` never forms $e^{-g}$ for
# the result: it returns $-g$ exactly.

# %%
def measure_cross_entropy_memory(batch=256, vocabulary=50257):
    """Bytes of the logits and the peak bytes each route to the loss allocates (tracemalloc)."""
    import tracemalloc

    from tinytorch.core.activations import softmax
    from tinytorch.core.tensor import arange, randint, randn

    logits = randn(batch, vocabulary)
    targets = randint(0, vocabulary, (batch,))
    routes = {
        "fused: cross_entropy(logits)": lambda: cross_entropy(logits, targets),
        "composed: -log(softmax(logits)[i, t])": lambda: -log(softmax(logits)[arange(batch), targets]).mean(),
    }
    peaks = {"logits (input)": logits.nbytes}
    for name, route in routes.items():
        tracemalloc.start()
        route()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peaks


def compare_log_softmax_routes(gaps=(50.0, 87.0, 100.0, 103.0, 104.0, 200.0, 1000.0)):
    """log p of a class whose logit trails by `gap`: fused log_softmax against log(softmax(x))."""
    from tinytorch.core.activations import softmax

    rows = []
    for gap in gaps:
        logits = Tensor([[0.0, -gap]])
        with np.errstate(divide="ignore"):  # log(0) = -inf is the point of the demonstration
            composed = log(softmax(logits)).numpy()[0, 1]
        rows.append((gap, log_softmax(logits).numpy()[0, 1], composed))
    return rows


if __name__ == "__main__":
    for name, nbytes in measure_cross_entropy_memory().items():
        print(f"{name:>40}: {nbytes / 2**20:7.1f} MiB")
    print(f"{'gap':>6} {'log_softmax':>12} {'log(softmax)':>13}")
    for gap, fused, composed in compare_log_softmax_routes():
        print(f"{gap:6.0f} {fused:12.4f} {composed:13.4f}")

# %% [markdown]
# Measured on the course's 2-core machine (`python modules/04_losses/losses.py`), 256 positions
# of a 50,257-token vocabulary in float32:
#
# | | MiB |
# |---|---|
# | logits (input) | 49.1 |
# | peak of the fused `cross_entropy` | 98.2 |
# | peak of `softmax` -> index -> `log` | 49.1 |
#
# | gap $g$ | `log_softmax` | `log(softmax)` |
# |---|---|---|
# | 50 | -50.0 | -50.0 |
# | 100 | -100.0 | -99.98 |
# | 103 | -103.0 | -103.28 |
# | 104 | -104.0 | -inf |
# | 1000 | -1000.0 | -inf |
#
# The fused loss allocates two arrays the size of the logits (the shifted log-probabilities,
# which the backward pass will need, and one temporary of `exp`): memory is the price of
# stability. The composed route allocates one array (the probabilities) for the forward pass,
# but it returns `inf` for any target that trails by more than 104 nats, and before that, wrong
# digits. In training, every array the graph keeps for the backward pass stays alive until
# `backward()`: for GPT-2's batch above that is gigabytes, which is why production systems
# compute the loss in chunks of positions, or fuse the final matrix multiply with the loss.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# `torch.nn.CrossEntropyLoss` is `log_softmax` followed by `nll_loss`, as yours is; both are
# ATen kernels with hand-written backward formulas. `nll_loss` also takes a per-class `weight`
# and an `ignore_index` (for padding tokens), and `cross_entropy` also accepts class
# *probabilities* as targets; we left those out. `BCELoss` clamps its logarithms at -100, and
# `BCEWithLogitsLoss` uses the same max/log1p formula you wrote (it also has `pos_weight` for
# imbalanced data). The backward of cross-entropy that module 05 will derive from your
# primitives collapses, in PyTorch's fused kernel, to one line: $\mathrm{softmax}(z) -
# \mathrm{onehot}(k)$, divided by $N$ for the mean. Large-vocabulary training (Liger kernels,
# Apple's "Cut Your Losses", 2024) goes further and never materialises the full logits at all.

# %% [markdown]
# ## Integration test: losses agree with one another

# %%
def test_integration_losses_agree():
    from tinytorch.core.activations import sigmoid
    from tinytorch.core.tensor import manual_seed, randint, randn

    manual_seed(4)
    scores = randn(32) * 3
    labels = randint(0, 2, (32,))
    two_class_logits = Tensor(np.stack([np.zeros(32, dtype=np.float32), scores.numpy()], axis=1))
    # Two-class cross-entropy on logits [0, x] is binary cross-entropy with logits on x.
    assert np.isclose(cross_entropy(two_class_logits, labels).item(),
                      binary_cross_entropy_with_logits(scores, labels).item(), rtol=1e-5)
    assert np.isclose(binary_cross_entropy(sigmoid(scores), labels).item(),
                      binary_cross_entropy_with_logits(scores, labels).item(), rtol=1e-4)
    # A classifier that is confident and right pays almost nothing; uniform pays log C.
    features, classes = randn(64, 5), randint(0, 5, (64,))
    right = Tensor(np.eye(5, dtype=np.float32)[classes.numpy()] * 20)
    assert cross_entropy(right, classes).item() < 1e-6
    assert np.isclose(cross_entropy(features * 0, classes).item(), np.log(5))
    recorded = cross_entropy(Tensor(features.numpy(), requires_grad=True), classes)
    assert recorded.requires_grad and not recorded.is_leaf, "module 05 will differentiate this graph"
    print("integration: ok")


test_integration_losses_agree()

# %% [markdown]
# ## ML systems thinking
#
# 1. Your first training step of a 10-class classifier prints a loss of 23. What does
#    $\log 10 \approx 2.30$ tell you, and what would you check first?
# 2. The gradient of cross-entropy with respect to the logits is $\mathrm{softmax}(z) -
#    \mathrm{onehot}(k)$. Why is that bounded, and why does that make it a friendlier loss for
#    classification than MSE on probabilities?
# 3. The fused loss peaked at about twice the logits' size. For GPT-2's 8 x 1,024 x 50,257
#    logits, how much memory is that, and how would computing the loss 128 positions at a time
#    change it?
# 4. Label smoothing keeps the model from pushing one logit to infinity. What happens to the
#    logits of a model trained without it on perfectly separable data?
#
# ## Summary
#
# You built the losses that turn predictions into one number to minimise: MSE for regression,
# cross-entropy (with label smoothing, and per pixel or per token) and negative log-likelihood
# for classes, binary cross-entropy on probabilities and on logits. Every one is composed of
# Tensor primitives and module 02's fused log-softmax, so module 05 differentiates them with no
# new rule; every one stays finite at $\pm 1000$; every bad target is refused with an error
# that names what was expected. Next, module 05 computes the gradients of these losses.
