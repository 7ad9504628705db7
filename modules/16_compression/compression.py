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
# # Module 16: Compression
#
# *Can I prune and distill a model without losing what it learned?*
#
# A trained network is larger than what it knows. Most of the MNIST MLP's half-million weights
# can be set to zero, half of a CNN's channels can go, a weight matrix can be replaced by two
# thin ones, and a small network can be taught by a large one to do better than it would learn
# alone. This module builds the four classic ways to make a model smaller — **pruning**
# (unstructured and structured), **low-rank factorisation** and **knowledge distillation** — and
# measures each: the bytes of the arrays, the size of the file, the milliseconds of inference,
# and the accuracy on the real test split of a trained milestone model.
#
# Each method is easy to fake. The public course this design comes from pruned weights without
# keeping a mask, so the first fine-tuning step grew them back; zeroed channels without removing
# any, so nothing got faster; computed low-rank factors that never replaced a layer; and
# computed its distillation loss on raw arrays, so it had no gradient. Here the rules are:
# **a pruned weight stays zero through training**, **a removed channel is gone from the arrays**,
# **a factorised layer is the layer the model runs**, and **the distillation loss is part of the
# graph**.
#
# ## Learning objectives
# - Prune by magnitude, per layer and globally, with **masks that persist**: applied after every
#   optimizer step, so fine-tuning cannot regrow a pruned weight; prune gradually with Zhu and
#   Gupta's cubic schedule; make the pruning permanent with `remove`.
# - Store a sparse matrix in **CSR**, count its bytes (values + column indices + row pointers),
#   find the sparsity at which it starts to save memory, and time a sparse matrix product
#   against the dense one.
# - Prune **structurally**: remove whole channels and neurons, the matching batch-norm entries
#   and the next layer's inputs, so that the model is physically smaller and measurably faster.
# - Replace a `Linear` by a **FactorizedLinear** from a truncated SVD, and find the rank below
#   which it pays: $r < mn/(m+n)$.
# - Write **knowledge distillation** as a loss in the graph (cross-entropy against the teacher's
#   temperature-softened probabilities, scaled by $T^2$, mixed with the hard-label loss) and
#   train a small student with it.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 16
# ```
#
# exports your code to `tinytorch/core/compression.py` and grades it with
# `tests/modules/test_16_compression.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **Magnitude pruning.** Keep the weights of largest $|w|$: a weight's magnitude is a cheap
# stand-in for how much the loss would change without it (LeCun et al.'s Optimal Brain Damage,
# 1990, used the Hessian; Han et al., 2015, showed the magnitude works as well once the network is
# fine-tuned). To reach sparsity $s$ over $n$ weights, prune the $k = \lfloor s n \rceil$
# smallest. A **mask** $M \in \{0, 1\}$ of the weight's shape records the choice, and the model
# computes with $W \odot M$. *Per layer*, each weight matrix loses the same share; *globally*, one
# threshold for all, so layers with many small weights (the large first layer of an MLP) lose more.
#
# **Why the mask must persist.** Fine-tuning takes steps $W \leftarrow W - \eta g$. The gradient of
# a pruned weight is not zero (its input and the output's error are not), so one step makes it
# non-zero again. Re-applying $W \leftarrow W \odot M$ after every step (and zeroing its
# gradient before it, so that momentum keeps no memory of it) keeps the pruned weights at zero.
#
# **Gradual pruning** (Zhu and Gupta, 2017). From step $t_0$, every $\Delta t$ steps for $n$
# prunings, the target sparsity rises from $s_i$ to $s_f$ along a cubic:
#
# $$s_t = s_f + (s_i - s_f)\left(1 - \frac{t - t_0}{n \Delta t}\right)^3,$$
#
# fast at first, when there are many redundant weights, then slowly, leaving the network time to
# recover before the last, most damaging prunings.
#
# **Sparse storage.** A matrix $m \times n$ with $z$ non-zeros in CSR is three arrays: the $z$
# values, their $z$ column indices and $m + 1$ row pointers. With 4-byte values and 4-byte indices,
#
# $$\text{bytes}_\text{CSR} = 4z + 4z + 4(m + 1) \quad\text{against}\quad \text{bytes}_\text{dense} = 4mn,$$
#
# so CSR is smaller only when $z < (mn - m - 1)/2$: **above about 50% sparsity**. (With 2-byte
# values and 1-byte relative indices, as in Deep Compression, the break-even falls lower.)
#
# **Structured pruning** removes whole output channels $c$ of a convolution: its filter
# $W_{c,:,:,:}$, its batch-norm entries $(\gamma_c, \beta_c, \mu_c, \sigma^2_c)$, and the input
# channel $c$ of the next convolution, $W'_{:,c,:,:}$. The result is an ordinary, smaller
# network: with a fraction $p$ of the channels kept in every layer, a convolution between two
# pruned layers costs $p^2$ of its FLOPs.
#
# **Low-rank factorisation.** The SVD $W = U \Sigma V^\top$ ($W$ is $m \times n$, out by in)
# truncated to the $r$ largest singular values, $W_r = U_r \Sigma_r V_r^\top$, is the best rank-$r$
# approximation (Eckart-Young): $\lVert W - W_r \rVert_F^2 = \sum_{i > r} \sigma_i^2$. As two
# layers, $x \mapsto (U_r \Sigma_r^{1/2})\big((\Sigma_r^{1/2} V_r^\top) x\big)$ has $r(m + n)$
# weights instead of $mn$: it pays when $r < mn / (m + n)$.
#
# **Knowledge distillation** (Hinton, Vinyals and Dean, 2015). The teacher's logits $z^t$ softened
# by a temperature $T$, $p^t = \operatorname{softmax}(z^t / T)$, carry what the teacher knows about
# which wrong classes are *almost* right. The student's loss is
#
# $$L = \alpha \, T^2 \cdot \Big(-\sum_k p^t_k \log \operatorname{softmax}(z^s / T)_k\Big) + (1 - \alpha)\, \operatorname{CE}(z^s, y).$$
#
# The gradient of the soft term with respect to $z^s$ is $T (q_k - p^t_k)$ with
# $q = \operatorname{softmax}(z^s/T)$: it shrinks as $1/T$ per logit and as $1/T^2$ overall when
# the logits are large, which the factor $T^2$ restores, so that $\alpha$ keeps its meaning at any
# temperature. Cross-entropy and KL divergence against $p^t$ differ by the teacher's entropy, a
# constant: the same gradient.

# %%
#| export
import copy
import itertools
import math

import numpy as np

from tinytorch.core.activations import log_softmax
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import (
    Dropout,
    Flatten,
    Identity,
    Linear,
    Module,
    Parameter,
    ReLU,
    Sequential,
)
from tinytorch.core.losses import cross_entropy
from tinytorch.core.spatial import AvgPool2d, BatchNorm2d, Conv2d, MaxPool2d
from tinytorch.core.tensor import DEFAULT_FLOAT, Tensor, as_tensor, check_positive_int

# %% [markdown]
# ## Step 1: masks by magnitude, per layer and global
#
# The prunable weights of a model are the weight matrices of its `Linear` and `Conv2d` layers
# (biases and batch-norm parameters are few and every one matters). `prunable_weights(model)`
# finds them by name, as `state_dict` names them.
#
# `magnitude_masks(weights, sparsity, scope)` returns one boolean mask per weight, `True` where
# the weight is kept. It prunes *exactly* $\lfloor s n \rceil$ weights (ranking with
# `np.argpartition`, not a threshold: ties at the threshold would otherwise prune too many or
# too few). Weights that an earlier mask already pruned rank below every live weight, so a
# higher sparsity prunes a superset of what a lower one pruned.

# %%
#| export
def check_sparsity(where, value):
    """`value` as a float in [0, 1), or a ValueError that says what a sparsity is."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{where}: sparsity is the fraction of weights set to zero, in [0, 1) "
                         f"(0.9 prunes 90%), got {value!r}")
    return float(value)


def prunable_weights(model):
    """{name: Parameter} of the weight of every Linear and Conv2d in `model`, named as state_dict names them."""
    weights = {}
    for name, module in model.named_modules():
        if isinstance(module, (Linear, Conv2d)):
            weights[f"{name}.weight" if name else "weight"] = module.weight
    if not weights:
        raise ValueError(f"{type(model).__name__} has no Linear or Conv2d layer: nothing to prune")
    return weights


def magnitude_masks(weights, sparsity, scope="global", masks=None):
    """{name: bool mask (True = kept)} that prune the smallest-magnitude weights to `sparsity`.

    weights: {name: array}. scope "global" ranks all weights together (one threshold); "layer"
    prunes each weight to `sparsity` on its own. masks: earlier masks, whose pruned weights stay
    pruned (they rank below every kept weight).

    TODO: score each weight by |w| (-1 where an earlier mask pruned it), and set to False the k
          lowest scores: k = round(sparsity * count), over all weights together (global) or over
          each weight alone (layer).
    HINT: `np.argpartition(scores, k - 1)[:k]` gives the positions of the k smallest scores;
          for "global", concatenate the raveled scores and split the result back with the sizes.
    """
    sparsity = check_sparsity("magnitude_masks", sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"magnitude_masks: scope must be 'global' (one threshold) or 'layer' (each weight "
                         f"on its own), got {scope!r}")
    masks = masks or {}
    ### BEGIN SOLUTION
    scores = {}
    for name, array in weights.items():
        score = np.abs(np.asarray(array, dtype=np.float64)).ravel()
        if name in masks:
            score[~masks[name].ravel()] = -1.0
        scores[name] = score

    def lowest_pruned(score):
        keep = np.ones(score.size, dtype=bool)
        k = round(sparsity * score.size)
        if k > 0:
            keep[np.argpartition(score, k - 1)[:k]] = False
        return keep

    if scope == "layer":
        kept = {name: lowest_pruned(score) for name, score in scores.items()}
    else:
        names = list(scores)
        flat = lowest_pruned(np.concatenate([scores[name] for name in names]))
        ends = np.cumsum([scores[name].size for name in names])
        kept = dict(zip(names, np.split(flat, ends[:-1])))
    return {name: kept[name].reshape(np.shape(weights[name])) for name in weights}
    ### END SOLUTION


def sparsity(model_or_array):
    """Fraction of zeros: of an array, or of a model's prunable weights (Linear and Conv2d weights) together."""
    if isinstance(model_or_array, Module):
        arrays = [weight.data for weight in prunable_weights(model_or_array).values()]
    else:
        arrays = [model_or_array.data if isinstance(model_or_array, Tensor) else np.asarray(model_or_array)]
    total = sum(array.size for array in arrays)
    return sum(int(array.size - np.count_nonzero(array)) for array in arrays) / max(total, 1)

# %% [markdown]
# ### Test: global and per-layer masks

# %%
import tinytorch.core.autograd  # noqa: F401  (module 05: switches backward() on)
from tinytorch.core.tensor import manual_seed


def test_unit_magnitude_masks():
    small = np.array([[0.1, -0.2], [0.3, -0.4]])
    large = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.05]])
    weights = {"a": small, "b": large}
    glob = magnitude_masks(weights, 0.5, "global")
    assert glob["a"].sum() == 0 and glob["b"].sum() == 5, "globally, the small layer goes first"
    assert not glob["b"][1, 2], "0.05 is the smallest weight of all"
    layer = magnitude_masks(weights, 0.5, "layer")
    assert layer["a"].tolist() == [[False, False], [True, True]] and layer["b"].sum() == 3
    higher = magnitude_masks(weights, 0.8, "global", masks=glob)
    assert not np.any(higher["a"] & ~glob["a"]) and not np.any(higher["b"] & ~glob["b"]), "pruned stays pruned"
    assert sum(m.size - m.sum() for m in higher.values()) == 8, "exactly round(0.8 * 10) pruned"
    ### BEGIN HIDDEN TESTS
    ties = magnitude_masks({"w": np.ones((10, 10))}, 0.3)
    assert ties["w"].sum() == 70, "ties at the threshold: still exactly 30 pruned"
    for bad in (1.0, -0.1, True):
        try:
            magnitude_masks(weights, bad)
            raise AssertionError(f"sparsity {bad!r} must be refused")
        except ValueError as error:
            assert "[0, 1)" in str(error)
    ### END HIDDEN TESTS
    print("magnitude masks: ok")


test_unit_magnitude_masks()

# %% [markdown]
# ## Step 2: a Pruner whose masks persist, and an optimizer that re-applies them
#
# `Pruner(model)` holds one mask per prunable weight (all `True` at first). `prune(sparsity,
# scope)` computes new masks from the weights and applies them; `apply()` multiplies every weight
# by its mask, in place, under `no_grad` (module 01's in-place `mul_`, which bumps the version
# counter, so that a graph recorded before it is refused instead of giving wrong gradients).
#
# Who calls `apply()` after every step? `MaskedOptimizer(optimizer, pruner)` wraps any module 06
# optimizer: its `step()` zeroes the pruned weights' gradients, lets the optimizer step, then
# re-applies the masks. It offers what module 07's `Trainer` asks of an optimizer (`zero_grad`,
# `step`, `param_groups`, `state_dict`), so `Trainer(model, MaskedOptimizer(Adam(...), pruner),
# loss)` fine-tunes a pruned model with no change to the Trainer; a learning-rate scheduler takes
# the inner optimizer (it writes into the same `param_groups`). With a `schedule` (a function
# step -> sparsity, such as the cubic one of Step 3), the wrapper also prunes further as training
# goes: that is gradual pruning.
#
# `remove()` makes the pruning permanent: it applies the masks one last time and drops them. The
# weights keep their zeros and the model is an ordinary model again, with nothing attached (as
# PyTorch's `torch.nn.utils.prune.remove`); further training may change those zeros.

# %%
#| export
class Pruner:
    """Masks for the prunable weights of `model` (Linear and Conv2d weights), kept across training.

    pruner = magnitude_prune(model, 0.9)            # or Pruner(model).prune(0.9)
    optimizer = MaskedOptimizer(Adam(model.parameters()), pruner)   # re-applies the masks each step
    ...
    pruner.remove()                                 # permanent: plain weights with their zeros
    """

    def __init__(self, model):
        self.model = model
        self.weights = prunable_weights(model)
        self.masks = {name: np.ones(weight.shape, dtype=bool) for name, weight in self.weights.items()}
        self.target = 0.0  # the sparsity the last prune() asked for

    def _check_live(self, what):
        if self.masks is None:
            raise RuntimeError(f"Pruner.{what}: remove() already made the pruning permanent and dropped the "
                               "masks; make a new Pruner(model) to prune again")

    def prune(self, sparsity, scope="global"):
        """Compute masks that reach `sparsity` (pruned weights stay pruned) and apply them; returns self.

        TODO: new masks from the current weights with magnitude_masks (passing the current masks),
              remember the target, then apply().
        HINT: `{name: weight.data for name, weight in self.weights.items()}`.
        """
        self._check_live("prune")
        sparsity = check_sparsity("Pruner.prune", sparsity)
        ### BEGIN SOLUTION
        arrays = {name: weight.data for name, weight in self.weights.items()}
        self.masks = magnitude_masks(arrays, sparsity, scope, masks=self.masks)
        self.target = sparsity
        self.apply()
        return self
        ### END SOLUTION

    def apply(self):
        """Multiply every weight by its mask, in place (pruned weights become exactly 0); returns self.

        TODO: for each weight, weight.mul_(mask) under no_grad().
        HINT: in-place changes of a Parameter are refused while gradients are recorded.
        """
        self._check_live("apply")
        ### BEGIN SOLUTION
        with no_grad():
            for name, weight in self.weights.items():
                weight.mul_(self.masks[name])
        return self
        ### END SOLUTION

    def mask_gradients(self):
        """Zero the gradients of pruned weights (before a step, so momentum keeps no memory of them)."""
        self._check_live("mask_gradients")
        for name, weight in self.weights.items():
            if weight.grad is not None:
                weight.grad.data *= self.masks[name]

    def sparsity(self):
        """Fraction of the prunable weights that the masks prune."""
        self._check_live("sparsity")
        total = sum(mask.size for mask in self.masks.values())
        return sum(int(mask.size - np.count_nonzero(mask)) for mask in self.masks.values()) / total

    def remove(self):
        """Make the pruning permanent: apply the masks a last time and drop them; returns the model."""
        self.apply()
        self.masks = None
        return self.model


def magnitude_prune(model, sparsity, scope="global"):
    """Prune `model`'s Linear and Conv2d weights to `sparsity` by magnitude; returns the Pruner that holds the masks."""
    return Pruner(model).prune(sparsity, scope)


class MaskedOptimizer:
    """An optimizer whose every step keeps the pruned weights at zero (and prunes on a schedule).

    step(): zero the pruned weights' gradients, step the wrapped optimizer, count the step, prune
    to schedule(step) when a schedule is given and asks for more, re-apply the masks.
    """

    def __init__(self, optimizer, pruner, schedule=None, scope="global"):
        if not isinstance(pruner, Pruner):
            raise TypeError(f"MaskedOptimizer: pruner must be a Pruner (magnitude_prune returns one), got "
                            f"{type(pruner).__name__}")
        if schedule is not None and not callable(schedule):
            raise TypeError("MaskedOptimizer: schedule must be a function step -> sparsity (or None)")
        self.optimizer, self.pruner, self.schedule, self.scope = optimizer, pruner, schedule, scope
        self.steps = 0

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)

    def step(self, closure=None):
        """One masked step; returns closure() when one is given.

        TODO: mask the gradients, step the optimizer, count the step; with a schedule, prune to
              schedule(steps) when that is above the pruner's target; then re-apply the masks.
        HINT: `self.pruner.mask_gradients()`, `self.pruner.prune(target, self.scope)`, `self.pruner.apply()`.
        """
        ### BEGIN SOLUTION
        self.pruner.mask_gradients()
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.schedule is not None:
            target = self.schedule(self.steps)
            if target > self.pruner.target:
                self.pruner.prune(target, self.scope)
        self.pruner.apply()
        return loss
        ### END SOLUTION

    def state_dict(self):
        return self.optimizer.state_dict()

    def check_state_dict(self, state_dict):
        return self.optimizer.check_state_dict(state_dict)

    def load_state_dict(self, state_dict):
        return self.optimizer.load_state_dict(state_dict)

    def __repr__(self):
        return f"MaskedOptimizer({self.optimizer!r}, sparsity {self.pruner.target:.0%})"

# %% [markdown]
# ### Test: fine-tuning cannot regrow a pruned weight

# %%
def _small_mlp(seed=0):
    manual_seed(seed)
    return Sequential(Linear(6, 16), ReLU(), Linear(16, 8), ReLU(), Linear(8, 3))


def test_unit_masks_persist_through_training():
    from tinytorch.core.optimizers import SGD, Adam

    rng = np.random.default_rng(0)
    x, y = Tensor(rng.standard_normal((32, 6)).astype(np.float32)), rng.integers(0, 3, 32)
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3), lambda p: Adam(p, lr=0.01)):
        model = _small_mlp()
        pruner = magnitude_prune(model, 0.7)
        pruned = {name: ~mask for name, mask in pruner.masks.items()}
        assert abs(sparsity(model) - 0.7) < 0.01
        plain = make(model.parameters())
        loss = cross_entropy(model(x), y)
        plain.zero_grad()
        loss.backward()
        assert any(np.any(w.grad.data[pruned[n]] != 0) for n, w in pruner.weights.items()), \
            "pruned weights do get gradients: without the mask a step would regrow them"
        optimizer = MaskedOptimizer(plain, pruner)
        for _ in range(20):
            loss = cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for name, weight in pruner.weights.items():
            assert np.all(weight.data[pruned[name]] == 0), f"{name}: a pruned weight grew back"
        assert abs(sparsity(model) - 0.7) < 0.01
    ### BEGIN HIDDEN TESTS
    model = pruner.remove()
    assert abs(sparsity(model) - 0.7) < 0.01 and pruner.masks is None
    try:
        pruner.apply()
        raise AssertionError("a removed pruner has no masks to apply")
    except RuntimeError as error:
        assert "remove()" in str(error)
    ### END HIDDEN TESTS
    print("masks persist: ok")


test_unit_masks_persist_through_training()

# %% [markdown]
# ## Step 3: the cubic schedule of gradual pruning
#
# Pruning to 90% in one shot destroys a lot at once; pruning a little at a time while training
# lets the network adapt. `cubic_sparsity(step, final_sparsity, begin_step, end_step, frequency,
# initial_sparsity)` is Zhu and Gupta's formula: `initial_sparsity` up to `begin_step`, then a
# new target at every `frequency`-th step, `final_sparsity` from `end_step` on. Between prunings
# the target does not change (the step is rounded down to the last pruning step).

# %%
#| export
def cubic_sparsity(step, final_sparsity, begin_step, end_step, frequency=1, initial_sparsity=0.0):
    """Zhu and Gupta's (2017) gradual-pruning target at `step`: s_f + (s_i - s_f)(1 - (t - t0)/(end - t0))^3.

    t is `step` rounded down to the last pruning step begin_step + k * frequency; the target is
    initial_sparsity up to begin_step and final_sparsity from end_step on.

    TODO: clamp to [begin_step, end_step], round down to a multiple of frequency after
          begin_step, and evaluate the cubic.
    HINT: `begin_step + ((step - begin_step) // frequency) * frequency`.
    """
    final_sparsity = check_sparsity("cubic_sparsity", final_sparsity)
    initial_sparsity = check_sparsity("cubic_sparsity", initial_sparsity)
    check_positive_int("cubic_sparsity", "frequency", frequency)
    if not 0 <= begin_step < end_step:
        raise ValueError(f"cubic_sparsity: needs 0 <= begin_step < end_step, got begin_step={begin_step}, "
                         f"end_step={end_step}")
    ### BEGIN SOLUTION
    if step <= begin_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    last_pruning = begin_step + ((step - begin_step) // frequency) * frequency
    progress = (last_pruning - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3
    ### END SOLUTION


class CubicSparsity:
    """cubic_sparsity with its settings fixed: a schedule step -> sparsity for MaskedOptimizer."""

    def __init__(self, final_sparsity, begin_step, end_step, frequency=1, initial_sparsity=0.0):
        self.settings = {"final_sparsity": final_sparsity, "begin_step": begin_step, "end_step": end_step,
                         "frequency": frequency, "initial_sparsity": initial_sparsity}
        cubic_sparsity(begin_step, **self.settings)  # checks the settings now, not at the first step

    def __call__(self, step):
        return cubic_sparsity(step, **self.settings)

    def __repr__(self):
        return "CubicSparsity(" + ", ".join(f"{k}={v}" for k, v in self.settings.items()) + ")"

# %% [markdown]
# ### Test: the schedule's values and gradual pruning in training

# %%
def test_unit_cubic_sparsity():
    assert cubic_sparsity(0, 0.9, 10, 110, 10) == 0.0
    assert cubic_sparsity(10, 0.9, 10, 110, 10) == 0.0
    assert math.isclose(cubic_sparsity(60, 0.9, 10, 110, 10), 0.9 - 0.9 * 0.5 ** 3)
    assert cubic_sparsity(69, 0.9, 10, 110, 10) == cubic_sparsity(60, 0.9, 10, 110, 10), "constant between prunings"
    assert cubic_sparsity(110, 0.9, 10, 110, 10) == cubic_sparsity(500, 0.9, 10, 110, 10) == 0.9
    assert math.isclose(cubic_sparsity(35, 0.8, 10, 110, 5, initial_sparsity=0.2), 0.8 - 0.6 * 0.75 ** 3)
    ### BEGIN HIDDEN TESTS
    values = [cubic_sparsity(t, 0.95, 0, 100, 1) for t in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(values)), "the target never falls"
    steps = np.diff(values)
    assert steps[0] > steps[50] > steps[98], "fast at first, slow at the end"
    try:
        cubic_sparsity(5, 0.9, 10, 10)
        raise AssertionError("begin_step must be below end_step")
    except ValueError as error:
        assert "begin_step < end_step" in str(error)
    ### END HIDDEN TESTS
    print("cubic schedule: ok")


test_unit_cubic_sparsity()


def test_unit_gradual_pruning():
    from tinytorch.core.optimizers import SGD

    model = _small_mlp()
    rng = np.random.default_rng(1)
    x, y = Tensor(rng.standard_normal((32, 6)).astype(np.float32)), rng.integers(0, 3, 32)
    pruner = Pruner(model)
    optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.05), pruner, schedule=CubicSparsity(0.8, 0, 20, 5))
    seen = []
    for _ in range(25):
        loss = cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen.append(sparsity(model))
    assert seen[3] == 0.0 and 0.0 < seen[5] < seen[10] < seen[19] < 0.8 and abs(seen[-1] - 0.8) < 0.01, seen
    print("gradual pruning: ok")


test_unit_gradual_pruning()

# %% [markdown]
# ## Step 4: sparse storage (CSR) and a sparse matrix product
#
# Zeros in a dense array cost as much memory as any other number. **Compressed sparse row**
# storage keeps only the non-zeros: `data` (the values, row by row), `indices` (each value's
# column) and `indptr` (row $i$'s values are `data[indptr[i]:indptr[i+1]]`). Its bytes are those
# of the three arrays — measured with `nbytes`, not computed from a formula we trust.
#
# A layer computes $Y = X W^\top$ ($X$ is $k \times n$, a batch of inputs; $W$ is $m \times n$, in
# CSR): row $i$ of $W$ holds values $w_{ij}$ at columns $j$, and output $i$ is
# $\sum_j w_{ij} X_{:,j}$. Two ways to compute it in NumPy, and the measurements chose between them:
#
# - **one input** ($k = 1$): gather `x[indices]`, scale by `data`, and sum each row's segment with
#   one `np.add.reduceat` at the row pointers (rows without a value are left out of the call:
#   `reduceat` would give them the next row's first value). No Python loop, small temporaries.
# - **a batch**: the same vectorised gather makes a $k \times z$ temporary — at batch 128 and 90%
#   sparsity of a 512 x 784 weight, 20 MB, several times the memory traffic of the dense product
#   itself — and measured 30-100x slower than dense here. A loop over the $m$ rows, each a small
#   BLAS product `data[a:b] @ X.T[indices[a:b]]` of contiguous gathered rows, touches each input
#   once per non-zero: 2.5x slower than the dense product at 90% sparsity, 1.7x at 99%.
#
# `times_transposed` is that product; `matmul` ($W B$) uses it on $B^\top$.
# `SparseLinear` runs a pruned `Linear` through it, for inference.

# %%
#| export
class CSRMatrix:
    """A 2-D matrix in compressed sparse row form: data (values), indices (their columns), indptr (row starts)."""

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr = np.asarray(data), np.asarray(indices), np.asarray(indptr)
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) != 2 or self.indptr.shape != (self.shape[0] + 1,) or self.data.shape != self.indices.shape \
                or self.indptr[-1] != self.data.size:
            raise ValueError(f"CSRMatrix: data {self.data.shape}, indices {self.indices.shape} and indptr "
                             f"{self.indptr.shape} do not describe a {self.shape} matrix (indptr needs rows + 1 "
                             "entries ending at the number of values)")

    @classmethod
    def from_dense(cls, array, index_dtype=np.int32):
        """The non-zeros of a 2-D array, row by row.

        TODO: indptr from the count of non-zeros per row (a running sum starting at 0); indices
              and data from the positions of the non-zeros.
        HINT: `rows, cols = np.nonzero(array)` lists them row by row; `np.cumsum`.
        """
        array = array.data if isinstance(array, Tensor) else np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"CSRMatrix.from_dense: needs a 2-D array, got shape {array.shape}; reshape a conv "
                             "weight to (out_channels, -1) first")
        ### BEGIN SOLUTION
        rows, cols = np.nonzero(array)
        indptr = np.zeros(array.shape[0] + 1, dtype=index_dtype)
        np.cumsum(np.bincount(rows, minlength=array.shape[0]), out=indptr[1:])
        return cls(array[rows, cols], cols.astype(index_dtype), indptr, array.shape)
        ### END SOLUTION

    @property
    def nnz(self):
        return int(self.data.size)

    @property
    def nbytes(self):
        """Bytes of the three arrays: data + indices + indptr."""
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes

    def to_dense(self):
        dense = np.zeros(self.shape, dtype=self.data.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        dense[rows, self.indices] = self.data
        return dense

    def matmul(self, dense):
        """self @ dense for a dense (n,) or (n, k) array, without a Python loop over rows."""
        dense = np.asarray(dense)
        if dense.ndim not in (1, 2) or dense.shape[0] != self.shape[1]:
            raise ValueError(f"CSRMatrix.matmul: a {self.shape} matrix times an array of shape {dense.shape}; "
                             f"the array needs {self.shape[1]} rows")
        if dense.ndim == 1:
            return self.times_transposed(dense[None, :])[0]
        return self.times_transposed(np.ascontiguousarray(dense.T)).T

    def times_transposed(self, x):
        """x @ self.T for a dense (k, n) array x: what a Linear computes, x @ W.T, with W in CSR.

        TODO: one input (k = 1): scale the gathered x[0, indices] by data and sum each row's
              segment with np.add.reduceat at the starts of the rows that have values (the other
              rows give 0). A batch: for each row i of W, out[i] = data[a:b] @ x.T[indices[a:b]]
              with a, b = indptr[i], indptr[i + 1]; return out.T.
        HINT: `starts = self.indptr[:-1][np.diff(self.indptr) > 0]`; `np.ascontiguousarray(x.T)`
              makes each gathered row of the batch contiguous.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.shape[1]:
            raise ValueError(f"CSRMatrix.times_transposed: x of shape {x.shape} needs {self.shape[1]} columns")
        ### BEGIN SOLUTION
        dtype = np.result_type(self.data, x)
        if x.shape[0] == 1:
            out = np.zeros(self.shape[0], dtype=dtype)
            filled = np.diff(self.indptr) > 0
            if self.nnz:
                out[filled] = np.add.reduceat(x[0, self.indices] * self.data, self.indptr[:-1][filled])
            return out[None, :]
        inputs = np.ascontiguousarray(x.T)  # row j: input j's value for every example of the batch
        out = np.zeros((self.shape[0], x.shape[0]), dtype=dtype)
        bounds = self.indptr.tolist()  # Python ints: slicing with NumPy scalars costs more than the work
        for row, (start, end) in enumerate(itertools.pairwise(bounds)):
            if end > start:
                out[row] = self.data[start:end] @ inputs[self.indices[start:end]]
        return out.T
        ### END SOLUTION

    def __matmul__(self, dense):
        return self.matmul(dense)

    def __repr__(self):
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz:,}, nbytes={self.nbytes:,})"


def to_csr(array, index_dtype=np.int32):
    """CSRMatrix of a 2-D array or Tensor."""
    return CSRMatrix.from_dense(array, index_dtype)


def csr_nbytes(rows, nnz, value_itemsize=4, index_itemsize=4):
    """Bytes of a CSR matrix: nnz values and nnz column indices, and rows + 1 row pointers."""
    return nnz * (value_itemsize + index_itemsize) + (rows + 1) * index_itemsize


def csr_break_even_sparsity(rows, cols, value_itemsize=4, index_itemsize=4):
    """The sparsity above which CSR takes fewer bytes than the dense (rows, cols) array."""
    most_nnz = (rows * cols * value_itemsize - (rows + 1) * index_itemsize) / (value_itemsize + index_itemsize)
    return 1.0 - most_nnz / (rows * cols)


class SparseLinear(Module):
    """A Linear whose weight is stored in CSR, for inference: y = (W_csr @ x.T).T + b. No gradient."""

    def __init__(self, weight, bias=None):
        super().__init__()
        if not isinstance(weight, CSRMatrix):
            raise TypeError(f"SparseLinear: weight must be a CSRMatrix (SparseLinear.from_linear builds one), "
                            f"got {type(weight).__name__}")
        self.weight, self.bias = weight, None if bias is None else np.asarray(bias)
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_linear(cls, layer):
        return cls(to_csr(layer.weight), None if layer.bias is None else layer.bias.data.copy())

    def forward(self, x):
        x = as_tensor(x)
        if x.requires_grad:
            raise RuntimeError("SparseLinear is for inference and records no gradient; run it under no_grad() "
                               "on inputs that do not require a gradient, or fine-tune the Linear with a Pruner")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r} expected input of shape (batch, {self.in_features}), got {x.shape}")
        out = self.weight.times_transposed(x.data)
        if self.bias is not None:
            out = out + self.bias
        return Tensor(np.ascontiguousarray(out), dtype=out.dtype)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.weight.nnz:,}"


def sparse_state_dict(model):
    """model.state_dict() with every prunable weight stored in CSR: NAME.data, NAME.indices, NAME.indptr, NAME.shape.

    Conv weights are stored as (out_channels, in_channels * kh * kw) matrices. Save it with module
    07's save_state to measure the file; load_sparse_state_dict reads it back.
    """
    state, weights = model.state_dict(), prunable_weights(model)
    for name, weight in weights.items():
        matrix = to_csr(weight.data.reshape(weight.shape[0], -1))
        del state[name]
        state.update({f"{name}.data": matrix.data, f"{name}.indices": matrix.indices,
                      f"{name}.indptr": matrix.indptr, f"{name}.shape": np.array(weight.shape, dtype=np.int64)})
    return state


def load_sparse_state_dict(model, state):
    """Load a sparse_state_dict into `model` (dense weights rebuilt from their CSR arrays)."""
    dense = dict(state)
    for name in prunable_weights(model):
        shape = tuple(int(n) for n in dense.pop(f"{name}.shape"))
        matrix = CSRMatrix(dense.pop(f"{name}.data"), dense.pop(f"{name}.indices"), dense.pop(f"{name}.indptr"),
                           (shape[0], int(np.prod(shape[1:]))))
        dense[name] = matrix.to_dense().reshape(shape)
    return model.load_state_dict(dense)

# %% [markdown]
# ### Test: CSR round trip, bytes, and the sparse product

# %%
def test_unit_csr():
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((7, 9)).astype(np.float32)
    dense[rng.random((7, 9)) < 0.7] = 0
    dense[3] = 0  # an empty row
    matrix = to_csr(dense)
    assert np.array_equal(matrix.to_dense(), dense), "round trip"
    nnz = np.count_nonzero(dense)
    assert matrix.nnz == nnz and matrix.indptr[0] == 0 and matrix.indptr[-1] == nnz
    assert matrix.nbytes == matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes == csr_nbytes(7, nnz)
    b = rng.standard_normal((9, 5)).astype(np.float32)
    np.testing.assert_allclose(matrix @ b, dense @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(matrix @ b[:, 0], dense @ b[:, 0], rtol=1e-5, atol=1e-6)
    ### BEGIN HIDDEN TESTS
    assert abs(csr_break_even_sparsity(512, 784) - 0.5) < 0.01
    empty = to_csr(np.zeros((3, 4), dtype=np.float32))
    assert empty.nnz == 0 and np.array_equal(empty @ np.ones((4, 2)), np.zeros((3, 2)))
    ### END HIDDEN TESTS
    print("CSR: ok")


test_unit_csr()

# %% [markdown]
# ## Step 5: structured pruning that removes channels
#
# Unstructured zeros save bytes only in a sparse format and time only with a sparse kernel that
# beats a dense BLAS — at high sparsity, if at all. Removing whole **channels** (of a
# convolution) or **neurons** (of a hidden `Linear`) leaves an ordinary dense model with smaller
# matrices: every kernel gets faster at once.
#
# `prune_channels(model, fraction, criterion)` walks a `Sequential` (the shape of the milestone
# CNN: `Conv2d -> BatchNorm2d -> ReLU [-> MaxPool2d]` blocks, then `Flatten, Linear`; and of the
# MLP: `Linear -> ReLU` blocks). For every layer that has a next weight layer (every hidden layer;
# the last one's outputs are the classes) it:
#
# 1. ranks the output channels by importance: `"l1"`, the L1 norm of each filter (Li et al.,
#    2017), or `"bn"`, the $|\gamma|$ of the batch norm that follows (Liu et al.'s network
#    slimming, 2017), and keeps the largest `round((1 - fraction) * channels)`, in their order;
# 2. slices the layer's weight and bias to the kept outputs, and the batch norm after it (its
#    $\gamma$, $\beta$, running mean and variance);
# 3. slices the **inputs** of the next weight layer: `weight[:, kept]` of a `Conv2d` or hidden
#    `Linear`; after `Flatten`, the `Linear`'s columns come channel by channel (`C x H x W` in
#    NCHW order), so it reshapes the weight to `(out, C, H*W)`, keeps `[:, kept]` and flattens
#    it back.
#
# The layers in between must act on each channel on its own (ReLU, pooling, dropout); anything
# else is refused. The result is a new model (the original is not changed); the test of
# correctness is that *the original with the pruned channels zeroed gives the same outputs as
# the shrunk model*.

# %%
#| export
CHANNELWISE_LAYERS = (ReLU, MaxPool2d, AvgPool2d, Dropout, Identity)  # act on each channel on its own


def _channel_importance(layer, batch_norm, criterion):
    if criterion == "l1":
        return np.abs(layer.weight.data).reshape(layer.weight.shape[0], -1).sum(axis=1)
    if batch_norm is None or batch_norm.weight is None:
        raise ValueError(f"prune_channels: criterion 'bn' ranks channels by the batch norm after each layer, "
                         f"and {layer!r} has none; use criterion='l1'")
    return np.abs(batch_norm.weight.data)


def _structure(model):
    """[(producer index, [indices of the layers in between], consumer index)] of a Sequential."""
    layers = list(model)
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, (Linear, Conv2d))]
    plan = []
    for producer, consumer in itertools.pairwise(weighted):
        between = list(range(producer + 1, consumer))
        for i in between:
            if not isinstance(layers[i], CHANNELWISE_LAYERS + (BatchNorm2d, Flatten)):
                raise TypeError(f"prune_channels: cannot see through layer {i} ({layers[i]!r}) between "
                                 f"{layers[producer]!r} and {layers[consumer]!r}; it may mix channels")
        if isinstance(layers[producer], Conv2d) and layers[producer].groups != 1:
            raise ValueError(f"prune_channels: grouped convolutions are not supported ({layers[producer]!r})")
        plan.append((producer, between, consumer))
    return plan


def prune_channels(model, fraction, criterion="l1"):
    """A smaller copy of the Sequential `model` without `fraction` of each hidden layer's channels or neurons.

    Removes the least important output channels of every Conv2d/Linear that feeds another one
    (criterion "l1": L1 norm of the filters; "bn": |gamma| of the batch norm after it), the
    matching batch-norm entries, and the next layer's matching inputs (after Flatten, the
    Linear's matching columns). Returns (pruned model, {producer's name: kept channel indices}).

    TODO: for each (producer, between, consumer) of `_structure(copy)`: rank, keep the top
          `kept` indices (sorted), slice the producer's outputs, each BatchNorm2d in between, and
          the consumer's inputs; update the layers' size attributes.
    HINT: `np.sort(np.argsort(-importance, kind="stable")[:kept])`; assign new Parameters
          (`layer.weight = Parameter(array)`) and buffers (`bn.running_mean = Tensor(array)`).
          After Flatten, `columns = consumer.weight.data.reshape(out, channels, -1)[:, keep]`.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 <= fraction < 1:
        raise ValueError(f"prune_channels: fraction is the share of each layer's channels to remove, in [0, 1), "
                         f"got {fraction!r}")
    if criterion not in ("l1", "bn"):
        raise ValueError(f"prune_channels: criterion must be 'l1' (filter norms) or 'bn' (batch-norm gamma), got "
                         f"{criterion!r}")
    if not isinstance(model, Sequential):
        raise TypeError(f"prune_channels: works on a Sequential (the milestone models), got {type(model).__name__}")
    pruned = copy.deepcopy(model)
    layers, names = list(pruned), list(pruned._modules)
    kept_channels = {}
    for producer_index, between, consumer_index in _structure(pruned):
        producer, consumer = layers[producer_index], layers[consumer_index]
        batch_norm = next((layers[i] for i in between if isinstance(layers[i], BatchNorm2d)), None)
        channels = producer.weight.shape[0]
        kept = channels - round(fraction * channels)
        if kept < 1:
            raise ValueError(f"prune_channels: removing {fraction:.0%} of the {channels} channels of layer "
                             f"{names[producer_index]} ({producer!r}) removes every one; use a smaller fraction")
        ### BEGIN SOLUTION
        importance = _channel_importance(producer, batch_norm, criterion)
        keep = np.sort(np.argsort(-importance, kind="stable")[:kept])
        kept_channels[names[producer_index]] = keep
        dtype = producer.weight.dtype
        producer.weight = Parameter(producer.weight.data[keep].copy(), dtype=dtype)
        if producer.bias is not None:
            producer.bias = Parameter(producer.bias.data[keep].copy(), dtype=dtype)
        if isinstance(producer, Conv2d):
            producer.out_channels = kept
        else:
            producer.out_features = kept
        flattened = False
        for i in between:
            layer = layers[i]
            if isinstance(layer, BatchNorm2d):
                for name in ("weight", "bias"):
                    if getattr(layer, name) is not None:
                        setattr(layer, name, Parameter(getattr(layer, name).data[keep].copy(), dtype=dtype))
                for name in ("running_mean", "running_var"):
                    if getattr(layer, name) is not None:
                        setattr(layer, name, Tensor(getattr(layer, name).data[keep].copy(), dtype=dtype))
                layer.num_features = kept
            flattened = flattened or isinstance(layer, Flatten)
        weight = consumer.weight.data
        if flattened:
            columns = weight.reshape(weight.shape[0], channels, -1)[:, keep].reshape(weight.shape[0], -1)
        else:
            columns = weight[:, keep]
        consumer.weight = Parameter(np.ascontiguousarray(columns), dtype=dtype)
        if isinstance(consumer, Conv2d):
            consumer.in_channels = kept
        else:
            consumer.in_features = columns.shape[1]
        ### END SOLUTION
    return pruned, kept_channels


def count_parameters(model):
    """Number of parameters of `model`."""
    return sum(parameter.numel() for parameter in model.parameters())

# %% [markdown]
# ### Test: the shrunk model computes what the kept channels computed

# %%
def _small_cnn(seed=0):
    manual_seed(seed)
    model = Sequential(Conv2d(3, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                       Conv2d(8, 6, 3, padding=1, bias=False), BatchNorm2d(6), ReLU(), Flatten(), Linear(6 * 4 * 4, 5))
    rng = np.random.default_rng(seed)
    for layer in model:  # running statistics and affine parameters away from their initial values
        if isinstance(layer, BatchNorm2d):
            layer.weight.data[:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.bias.data[:] = rng.standard_normal(layer.num_features) * 0.1
            layer.running_mean.data[:] = rng.standard_normal(layer.num_features) * 0.1
            layer.running_var.data[:] = rng.uniform(0.5, 2.0, layer.num_features)
    return model.eval()


def _zero_removed_channels(model, kept):
    """A copy of `model` whose removed channels output exactly zero (filters and batch-norm shift zeroed)."""
    zeroed = copy.deepcopy(model)
    layers, names = list(zeroed), list(zeroed._modules)
    for index, layer in enumerate(layers):
        if names[index] in kept:
            removed = np.setdiff1d(np.arange(layer.weight.shape[0]), kept[names[index]])
            layer.weight.data[removed] = 0
            if layer.bias is not None:
                layer.bias.data[removed] = 0
            following = layers[index + 1]
            if isinstance(following, BatchNorm2d):
                following.weight.data[removed] = 0
                following.bias.data[removed] = 0
    return zeroed


def test_unit_prune_channels():
    model = _small_cnn()
    x = Tensor(np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32))
    pruned, kept = prune_channels(model, 0.5)
    assert [len(k) for k in kept.values()] == [4, 3]
    assert pruned[0].weight.shape == (4, 3, 3, 3) and pruned[1].num_features == 4
    assert pruned[4].weight.shape == (3, 4, 3, 3) and pruned[8].weight.shape == (5, 3 * 16)
    assert model[0].weight.shape == (8, 3, 3, 3), "the original is not changed"
    with no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), _zero_removed_channels(model, kept)(x).numpy(), rtol=1e-5,
                                   atol=1e-5)
    l1 = np.abs(model[0].weight.data).reshape(8, -1).sum(axis=1)
    assert set(kept["0"]) == set(np.argsort(-l1)[:4]), "the filters of largest L1 norm are kept"
    ### BEGIN HIDDEN TESTS
    _, kept_bn = prune_channels(model, 0.25, criterion="bn")
    assert set(kept_bn["0"]) == set(np.argsort(-np.abs(model[1].weight.data))[:6])
    try:
        prune_channels(_small_cnn(), 0.95)
        raise AssertionError("removing every channel must be refused")
    except ValueError as error:
        assert "removes every one" in str(error)
    ### END HIDDEN TESTS
    print("structured pruning: ok")


test_unit_prune_channels()

# %% [markdown]
# ## Step 6: low-rank factorisation that replaces the layer
#
# `factorize_linear(layer, rank)` computes the SVD of the layer's weight (in float64, for an
# accurate factorisation), keeps the `rank` largest singular values and returns a
# `FactorizedLinear`: a `Linear(in, rank, bias=False)` holding $\Sigma_r^{1/2} V_r^\top$ followed by
# a `Linear(rank, out)` holding $U_r \Sigma_r^{1/2}$ and the original bias (splitting
# $\Sigma_r$ evenly keeps the two factors' scales alike, which helps fine-tuning). It is an
# ordinary module, trainable, with its own `state_dict`; `replace_module(model, name, new)` puts
# it where the `Linear` was, so the model that runs is the factorised one.

# %%
#| export
class FactorizedLinear(Module):
    """y = second(first(x)): Linear(in, rank, no bias) then Linear(rank, out): rank * (in + out) weights."""

    def __init__(self, in_features, out_features, rank, bias=True, dtype=DEFAULT_FLOAT):
        super().__init__()
        check_positive_int("FactorizedLinear", "rank", rank)
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = Linear(in_features, rank, bias=False, dtype=dtype)
        self.second = Linear(rank, out_features, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.second(self.first(x))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def low_rank_break_even(out_features, in_features):
    """The rank below which r * (m + n) weights are fewer than the m * n of the full matrix: mn / (m + n)."""
    return out_features * in_features / (out_features + in_features)


def factorize_linear(layer, rank):
    """A FactorizedLinear with the truncated SVD of `layer`'s weight at `rank` (and its bias).

    TODO: U, S, Vt = SVD of the weight (float64); first.weight = sqrt(S_r)[:, None] * Vt[:r];
          second.weight = U[:, :r] * sqrt(S_r); copy the bias.
    HINT: `np.linalg.svd(w, full_matrices=False)`; write with `copy_` under no_grad().
    """
    if not isinstance(layer, Linear):
        raise TypeError(f"factorize_linear: needs a Linear, got {type(layer).__name__}")
    out_features, in_features = layer.weight.shape
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= min(out_features, in_features):
        raise ValueError(f"factorize_linear: rank must be an int from 1 to min(out, in) = "
                         f"{min(out_features, in_features)} for {layer!r}, got {rank!r}; it pays below "
                         f"{low_rank_break_even(out_features, in_features):.0f}")
    dtype = layer.weight.dtype
    factorized = FactorizedLinear(in_features, out_features, int(rank), bias=layer.bias is not None, dtype=dtype)
    ### BEGIN SOLUTION
    u, s, vt = np.linalg.svd(layer.weight.data.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    with no_grad():
        factorized.first.weight.copy_(root[:, None] * vt[:rank])
        factorized.second.weight.copy_(u[:, :rank] * root)
        if layer.bias is not None:
            factorized.second.bias.copy_(layer.bias.data)
    ### END SOLUTION
    return factorized


def replace_module(model, name, module):
    """Put `module` in place of the submodule called `name` (dotted, as named_modules names it); returns the old one."""
    parent_name, _, child = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name] if parent_name else model
    if child not in parent._modules:
        raise KeyError(f"replace_module: {type(parent).__name__} has no submodule {child!r}; it has "
                       f"{list(parent._modules)}")
    old = parent._modules[child]
    parent.add_module(child, module)
    return old

# %% [markdown]
# ### Test: full rank is the layer; the error is the dropped singular values

# %%
def test_unit_factorize_linear():
    manual_seed(0)
    layer = Linear(12, 8).double()
    x = Tensor(np.random.default_rng(0).standard_normal((5, 12)))
    full = factorize_linear(layer, 8)
    np.testing.assert_allclose(full(x).numpy(), layer(x).numpy(), rtol=1e-10, atol=1e-10)
    singular = np.linalg.svd(layer.weight.data, compute_uv=False)
    for rank in (1, 3, 6):
        approx = factorize_linear(layer, rank)
        product = approx.second.weight.data @ approx.first.weight.data
        error = np.linalg.norm(layer.weight.data - product)
        assert math.isclose(error, math.sqrt(np.sum(singular[rank:] ** 2)), rel_tol=1e-9), "Eckart-Young"
        assert count_parameters(approx) == rank * (12 + 8) + 8
    model = Sequential(Linear(12, 8).double(), ReLU(), Linear(8, 2).double())
    old = replace_module(model, "0", factorize_linear(model[0], 8))
    assert isinstance(model[0], FactorizedLinear) and isinstance(old, Linear)
    assert "0.first.weight" in model.state_dict(), "the factorised layer is part of the model"
    ### BEGIN HIDDEN TESTS
    assert math.isclose(low_rank_break_even(512, 784), 512 * 784 / 1296)
    try:
        factorize_linear(layer, 9)
        raise AssertionError("rank 9 exceeds min(8, 12)")
    except ValueError as error:
        assert "min(out, in) = 8" in str(error)
    ### END HIDDEN TESTS
    print("low-rank factorisation: ok")


test_unit_factorize_linear()

# %% [markdown]
# ## Step 7: knowledge distillation, a loss in the graph
#
# `distillation_loss(student_logits, teacher_logits, labels, temperature, alpha)` builds the loss
# of the foundations from module 02's `log_softmax` and module 04's `cross_entropy`, so that
# `backward()` reaches the student's weights through it. The teacher's probabilities are
# *constants*: computed from `teacher_logits.data` (a teacher that requires gradients gets none
# from here, and nothing flows back into it).
#
# `train_student(student, loader, optimizer, epochs, teacher=None, ...)` is a training loop that
# differs from the plain one in a single line: with a teacher, the loss is the distillation
# loss of the student's and the teacher's logits (the teacher runs in eval mode, under
# `no_grad`); without one it is the hard-label cross-entropy. The same loop, the same data and the
# same steps with and without a teacher make the comparison fair. (Module 07's `Trainer` calls
# `loss_fn(outputs, targets)` and knows nothing of the inputs the teacher needs, hence a loop.)

# %%
#| export
def softened_probabilities(logits, temperature):
    """softmax(logits / T) as a constant NumPy array (no graph), computed stably."""
    scaled = np.asarray(logits.data if isinstance(logits, Tensor) else logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    probabilities = np.exp(scaled)
    return probabilities / probabilities.sum(axis=-1, keepdims=True)


def distillation_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9):
    """alpha * T^2 * CE(softmax(teacher / T), softmax(student / T)) + (1 - alpha) * CE(student, labels).

    A Tensor in the student's graph; the teacher's softened probabilities are constants.

    TODO: soft targets from the teacher (constants); the soft term, the batch mean of
          -sum(targets * log_softmax(student / T)), times T^2; mix with cross_entropy(student, labels).
    HINT: `Tensor(targets, dtype=student.dtype)`; `(targets * log_probs).sum(dim=-1).mean()`.
    """
    student_logits = as_tensor(student_logits)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"distillation_loss: temperature must be a number > 0 (Hinton et al. use 2 to 20), "
                         f"got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"distillation_loss: alpha is the weight of the teacher's term, in [0, 1], got {alpha!r}")
    teacher_shape = np.shape(teacher_logits.data if isinstance(teacher_logits, Tensor) else teacher_logits)
    if student_logits.ndim != 2 or teacher_shape != student_logits.shape:
        raise ValueError(f"distillation_loss: student logits {student_logits.shape} and teacher logits "
                         f"{teacher_shape} must both be (batch, classes)")
    ### BEGIN SOLUTION
    targets = Tensor(softened_probabilities(teacher_logits, temperature), dtype=student_logits.dtype)
    log_probs = log_softmax(student_logits / temperature, dim=-1)
    soft = -(targets * log_probs).sum(dim=-1).mean() * (temperature * temperature)
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * cross_entropy(student_logits, labels)
    ### END SOLUTION


class DistillationLoss(Module):
    """distillation_loss as a Module: loss_fn(student_logits, teacher_logits, labels)."""

    def __init__(self, temperature=4.0, alpha=0.9):
        super().__init__()
        distillation_loss(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1, dtype=np.int64), temperature, alpha)
        self.temperature, self.alpha = temperature, alpha

    def forward(self, student_logits, teacher_logits, labels):
        return distillation_loss(student_logits, teacher_logits, labels, self.temperature, self.alpha)

    def extra_repr(self):
        return f"temperature={self.temperature}, alpha={self.alpha}"


def train_student(student, loader, optimizer, epochs, teacher=None, temperature=4.0, alpha=0.9,
                  scheduler=None, hard_loss=None):
    """Train `student` for `epochs` on `loader`; with a `teacher`, on the distillation loss. Returns the mean loss per epoch.

    The same loop with and without a teacher: only the loss differs. hard_loss (default
    cross_entropy) is the loss without a teacher; scheduler, if given, is stepped after every
    optimizer step.

    TODO: for each batch: the student's logits; with a teacher, its logits under no_grad and
          distillation_loss, else hard_loss; zero_grad, backward, step (and the scheduler).
    HINT: put the teacher in eval mode once, before the loop.
    """
    check_positive_int("train_student", "epochs", epochs)
    hard_loss = hard_loss or cross_entropy
    if teacher is not None:
        teacher.eval()
    losses = []
    ### BEGIN SOLUTION
    for _ in range(epochs):
        student.train()
        total, count = 0.0, 0
        for inputs, labels in loader:
            logits = student(inputs)
            if teacher is not None:
                with no_grad():
                    teacher_logits = teacher(inputs)
                loss = distillation_loss(logits, teacher_logits, labels, temperature, alpha)
            else:
                loss = hard_loss(logits, labels)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"train_student: the loss became {value}; lower the learning rate")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + value * len(labels), count + len(labels)
        losses.append(total / count)
    ### END SOLUTION
    return losses

# %% [markdown]
# ### Test: the loss's value, its gradient, and a student that learns from a teacher

# %%
def test_unit_distillation_loss():
    from tinytorch.core.autograd import gradcheck

    rng = np.random.default_rng(0)
    student, teacher = rng.standard_normal((4, 5)), rng.standard_normal((4, 5)) * 3
    labels = np.array([0, 3, 1, 4])
    temperature, alpha = 3.0, 0.7

    def log_softmax_np(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    p = np.exp(log_softmax_np(teacher / temperature))
    soft = -(p * log_softmax_np(student / temperature)).sum(axis=1).mean() * temperature ** 2
    hard = -log_softmax_np(student)[np.arange(4), labels].mean()
    student_t, teacher_t = Tensor(student, dtype=np.float64), Tensor(teacher, dtype=np.float64)
    value = distillation_loss(student_t, teacher_t, labels, temperature, alpha).item()
    assert math.isclose(value, alpha * soft + (1 - alpha) * hard, rel_tol=1e-10)
    gradcheck(lambda s: distillation_loss(s, teacher_t, labels, temperature, alpha), student)
    t = Tensor(teacher, dtype=np.float64, requires_grad=True)
    s = Tensor(student, dtype=np.float64, requires_grad=True)
    distillation_loss(s, t, labels).backward()
    assert s.grad is not None and t.grad is None, "gradients reach the student only"
    ### BEGIN HIDDEN TESTS
    expected = (np.exp(log_softmax_np(student / temperature)) - p) * temperature / 4  # alpha = 1
    s = Tensor(student, dtype=np.float64, requires_grad=True)
    distillation_loss(s, teacher_t, labels, temperature, 1.0).backward()
    np.testing.assert_allclose(s.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    ### END HIDDEN TESTS
    print("distillation loss: ok")


test_unit_distillation_loss()

# %% [markdown]
# ## Systems analysis: what each method saves, measured
#
# The heavy measurements run on the trained milestone models and their real test splits, in
# `benchmarks/bench_compression.py` (they take minutes, so they are not part of this file's
# tests). Each command prints its figures; the tables below are what they printed here, on the
# course's 2-core machine while other jobs ran on it (load average 2 or more), NumPy's OpenBLAS
# on one thread (`OPENBLAS_NUM_THREADS=1`):
#
#     OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py csr      # bytes and sparse product
#     OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py mnist --mnist-epochs 3
#     OPENBLAS_NUM_THREADS=2 python benchmarks/bench_compression.py channels --epochs 8 --lr 0.05
#     OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py channels --epochs 3 --lr 0.02 [--teacher]
#     OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py speed    # after `channels`
#     OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compression.py distill --epochs 4 --train-images 20000 \
#         --lr 0.05 --runs distilled,alone,alone-smoothed
#
# The cell below measures the smallest of them, the break-even of CSR storage, on a layer of the
# MNIST MLP's shape pruned by magnitude (run this file to see it).

# %%
def csr_bytes_against_sparsity(rows=512, cols=784, sparsities=(0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99), seed=0):
    """[(sparsity, dense bytes, CSR bytes measured, CSR bytes by the formula)] for a pruned (rows, cols) weight."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((rows, cols)).astype(np.float32)
    table = []
    for target in sparsities:
        mask = magnitude_masks({"w": weight}, target)["w"]
        matrix = to_csr(weight * mask)
        table.append((target, weight.nbytes, matrix.nbytes, csr_nbytes(rows, matrix.nnz)))
    return table


if __name__ == "__main__":
    print(f"CSR break-even for 512 x 784 float32 with int32 indices: {csr_break_even_sparsity(512, 784):.2%}")
    for target, dense_bytes, measured, formula in csr_bytes_against_sparsity():
        print(f"sparsity {target:5.0%}: dense {dense_bytes:>9,} B, CSR {measured:>9,} B (formula {formula:>9,}), "
              f"{measured / dense_bytes:5.2f}x of dense")

# %% [markdown]
# What it printed, with the figures of the benchmark's commands (above) from the same evening.
# Accuracies are on the 10,000 test images of the trained milestone models (MNIST MLP 98.32%,
# CIFAR-10 CNN 80.59% after the milestone's 7 epochs); fine-tuning and training used the
# milestone's training split without its validation images.
#
# **Magnitude pruning of the MNIST MLP** (784-512-256-10, 535,818 parameters, 2,143,272 bytes of
# arrays). One shot, no fine-tuning, global against per layer:
#
# | sparsity | 50% | 80% | 90% | 95% | 98% |
# |---|---|---|---|---|---|
# | global | 98.26% | 97.05% | 91.89% | 83.41% | 44.41% |
# | per layer | 98.22% | 96.23% | 61.63% | 27.62% | 13.01% |
#
# At 90% the global threshold takes 91.7% of the first layer's 401,408 weights, 85.4% of the
# second's 131,072 and only 60% of the last layer's 2,560: a per-layer 90% starves the ten
# outputs, which is most of the gap. Then three epochs of fine-tuning (Adam, lr 2e-4, cosine;
# about 20 s) with the masks re-applied after every step by `MaskedOptimizer` inside module 07's
# `Trainer`:
#
# | global sparsity | one shot | fine-tuned, 3 epochs | lost | CSR file (dense: 2,144,096 bytes) |
# |---|---|---|---|---|
# | 90%, one shot | 91.89% | 98.23% | **0.09 points** | 436,388 bytes (4.9x smaller) |
# | 95%, one shot | 83.41% | 97.59% | 0.73 points | 222,364 bytes (9.6x smaller) |
# | 95%, cubic schedule over the first 60% of the steps | — | 97.85% | **0.47 points** | 222,364 bytes |
#
# The sparsity measured on the fine-tuned weights is exactly the target (the masks held), and
# each sparse file reloads into the model with the same test accuracy. Gradual pruning beats one
# shot at 95% by a quarter of a point with the same number of steps. The 90% model's forward
# pass through `SparseLinear` layers: 0.24 ms against the dense 0.14 ms for one image, 4.0 ms
# against 1.5 ms for 128.
#
# **CSR** (512 x 784 float32, int32 indices): the bytes measured equal the formula at every
# sparsity; 2.00x the dense bytes at 0%, 1.00x at 50% (break-even 50.06%), 0.40x at 80%, 0.20x
# at 90%, 0.02x at 99%. The product (`csr`, one BLAS thread, medians of 100 alternating calls):
#
# | sparsity | one input: dense / CSR | batch 128: dense / CSR |
# |---|---|---|
# | 50% | 0.064 / 0.551 ms | 1.06 / 13.3 ms |
# | 90% | 0.050 / 0.152 ms | 0.98 / 2.42 ms |
# | 95% | 0.036 / 0.090 ms | 0.94 / 2.13 ms |
# | 99% | 0.034 / **0.027** ms | 0.99 / 1.67 ms |
#
# A dense BLAS product runs at tens of GFLOP/s; the sparse one does a tenth of the work at 90%
# but gathers scattered inputs and pays Python for each of the 512 rows, so it wins only at 99%,
# for one input. Sparse storage saves memory (and disk) long before it saves time.
#
# **Low rank, the MLP's first layer** (512 x 784, pays below rank 310), replaced in the model by
# a `FactorizedLinear`, no fine-tuning: rank 16, 21,248 parameters instead of 401,920: 95.25%;
# rank 32: 98.03% (98.14% after one epoch of fine-tuning); rank 64: 98.17% (98.32% after one
# epoch, the dense model's accuracy with a fifth of that layer's weights); rank 128: 98.22%;
# rank 256: 98.28%. The trained weight's spectrum falls fast: most of what it does lives in few
# directions.
#
# **Structured pruning of the CIFAR CNN**: 50% of the channels of every convolution removed by
# filter L1 norm (32-64-128-128 -> 16-32-64-64), 261,674 -> 70,938 parameters, file 1,052,960 ->
# 288,584 bytes. Without fine-tuning it reads 20.47%: half of every layer's inputs are gone and
# the batch-norm statistics no longer match. Fine-tuned (SGD Nesterov, label smoothing 0.1,
# warmup then cosine, augmented training images):
#
# | fine-tuning | epochs | time | test accuracy | lost |
# |---|---|---|---|---|
# | cross-entropy, peak lr 0.02 | 3 | 12.8 min (a loaded machine) | 78.26% | 2.33 points |
# | distillation from the dense model (T 4, alpha 0.9), peak lr 0.02 | 3 | 4.9 min | 78.22% | 2.37 points |
# | cross-entropy, peak lr 0.05 (two BLAS threads) | 8 | 21.6 min | **79.89%** | **0.70 points** |
#
# Three epochs are not enough to recover; eight are (the dense model itself trained seven).
# Inference (`speed`: each model timed alone in its own processes, 3 rounds, one BLAS thread):
# at load average 1.8, batch 1, 1.22 ms dense against 0.66 ms pruned (**1.84x faster**), batch
# 100, 73.1 ms against 31.6 ms (**2.31x**); run again at load average 4.5, 1.82x and 1.73x (the
# batch-100 figures spread by a third between quartiles on the loaded machine). The multiply-adds, counted from the layer shapes, fell
# 3.7x (12.7 to 3.4 million per image: the middle convolutions lose half of their inputs and
# half of their outputs); the time less, because the first layer keeps its three
# input channels and the per-layer overheads (im2col copies, batch norm, pooling, the framework's
# calls) do not shrink with the channels.
#
# **Distillation** (`distill`): a student of the pruned model's shape (16-32-64-64, 70,938
# parameters), trained from the same initialisation for the same 4 epochs on the same 20,000
# training images with the same one-cycle SGD (peak lr 0.05), alone or taught by the trained CNN
# (T = 4, alpha = 0.9): alone 67.91% (68.16% with label smoothing 0.1), **distilled 71.57%, +3.66
# points** (+3.41 against the smoothed one). The distilled run's 12.8 minutes overlapped with the
# pruning run's fine-tuning on the 2 cores; the runs alone, 1.6 minutes each, did not. A
# distillation step also runs the teacher's forward pass, which costs more than the small
# student's whole step.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **`torch.nn.utils.prune`** keeps a mask exactly as here, but as a *reparametrisation*: it
#   renames `weight` to `weight_orig`, registers `weight_mask` as a buffer and recomputes
#   `weight = weight_orig * weight_mask` in a forward pre-hook, so the optimizer updates
#   `weight_orig` and the mask is applied at every forward. `prune.global_unstructured(...,
#   pruning_method=prune.L1Unstructured, amount=0.9)` is our global scope; `prune.remove(module,
#   "weight")` makes it permanent. Our design applies the mask after the step instead (no
#   hook, no second copy of every weight), which the pre-hook design pays in memory.
# - **Gradual pruning**: the TensorFlow Model Optimization toolkit's `PolynomialDecay` schedule
#   is Zhu and Gupta's (power 3 by default), applied by a training callback every `frequency`
#   steps.
# - **Sparse storage and kernels**: `torch.sparse_csr_tensor` stores `crow_indices`, `col_indices`
#   and `values`, our three arrays; its kernels are compiled (MKL, cuSPARSE), yet unstructured
#   sparsity still pays in time only at high sparsity, for the reasons measured above. NVIDIA's
#   Ampere and later GPUs accelerate **2:4 semi-structured** sparsity (two zeros in every group
#   of four weights: 50%, up to twice the math throughput of the dense product),
#   `torch.sparse.to_sparse_semi_structured`.
# - **Structured pruning** in practice: `torch-pruning` (Fang et al., 2023, "DepGraph") builds
#   the dependency graph that our `_structure` walks by hand (residual connections and
#   concatenations make it a graph, not a chain) and removes coupled channels together.
# - **Low rank**: the same SVD split compresses fully connected layers (Denton et al., 2014,
#   Xue et al., 2013 for speech); LoRA (Hu et al., 2021) trains only a low-rank *update*
#   $W + BA$ with the same $r(m+n)$ count.
# - **Distillation**: DistilBERT (Sanh et al., 2019) is BERT distilled to 40% fewer parameters
#   keeping 97% of its GLUE score, with this loss (plus a cosine loss on hidden states);
#   PyTorch writes the soft term as `F.kl_div(F.log_softmax(s / T), F.softmax(t / T),
#   reduction="batchmean") * T * T`, equal to ours up to the teacher's entropy, a constant.
# - **Deep Compression** (Han, Mao and Dally, 2016) chains pruning (9-13x fewer weights on
#   AlexNet and VGG), quantisation to 5-8 bits with weight sharing (module 15), and Huffman coding,
#   for 35-49x smaller files at the same accuracy.

# %% [markdown]
# ## Integration test: prune, fine-tune, store sparse, reload

# %%
def test_integration_prune_finetune_store_reload():
    import tempfile
    from pathlib import Path

    from tinytorch.core.dataloader import ArrayDataset, DataLoader
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import Trainer, load_state, save_state

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 20)) * 2
    labels = rng.integers(0, 4, 600)
    features = (centres[labels] + rng.standard_normal((600, 20))).astype(np.float32)
    loader = DataLoader(ArrayDataset(features, labels), batch_size=50, shuffle=True, seed=0)
    manual_seed(0)
    model = Sequential(Linear(20, 64), ReLU(), Linear(64, 64), ReLU(), Linear(64, 4))
    trainer = Trainer(model, Adam(model.parameters(), lr=0.01), CrossEntropyLoss(), verbose=False)
    trainer.fit(loader, epochs=3)
    before = trainer.evaluate(loader)["accuracy"]
    pruner = magnitude_prune(model, 0.9)
    tuned = Trainer(model, MaskedOptimizer(Adam(model.parameters(), lr=0.005), pruner), CrossEntropyLoss(),
                    verbose=False)
    tuned.fit(loader, epochs=2)
    after = tuned.evaluate(loader)["accuracy"]
    assert after >= before - 0.02, f"fine-tuned at 90% sparsity: {after:.1%} against {before:.1%}"
    assert abs(sparsity(model) - 0.9) < 0.005, "fine-tuning kept the sparsity"
    pruner.remove()
    with tempfile.TemporaryDirectory() as folder:
        dense_file = save_state(Path(folder) / "dense.safetensors", model.state_dict())
        sparse_file = save_state(Path(folder) / "sparse.safetensors", sparse_state_dict(model))
        dense_bytes, sparse_bytes = dense_file.stat().st_size, sparse_file.stat().st_size
        assert sparse_bytes < 0.4 * dense_bytes, f"files: sparse {sparse_bytes:,} bytes, dense {dense_bytes:,}"
        manual_seed(1)
        fresh = Sequential(Linear(20, 64), ReLU(), Linear(64, 64), ReLU(), Linear(64, 4))
        load_sparse_state_dict(fresh, load_state(sparse_file))
    x = Tensor(features[:10])
    with no_grad():
        np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())
        sparse_model = Sequential(*[SparseLinear.from_linear(layer) if isinstance(layer, Linear) else layer
                                    for layer in fresh])
        np.testing.assert_allclose(sparse_model(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    print(f"integration: ok (accuracy {before:.1%} -> {after:.1%} at 90% sparsity; files {dense_bytes:,}"
          f" -> {sparse_bytes:,} bytes)")


test_integration_prune_finetune_store_reload()

# %% [markdown]
# ## ML systems thinking
#
# 1. The MNIST MLP at 90% global sparsity: which layer lost the most weights, and why does a
#    global threshold choose that? What would per-layer pruning at 90% do to the last layer
#    (2,560 weights, ten outputs)?
# 2. CSR with 4-byte values and 4-byte indices pays above 50% sparsity. What break-even do 2-byte
#    values with 1-byte *relative* column offsets give (Deep Compression's format)? What does it
#    cost when a gap between non-zeros exceeds 255?
# 3. Our sparse product is slower than the dense one at 90% sparsity although it does a tenth of
#    the multiplications. Where does the time go (think of the gathered rows' memory traffic and
#    the dense BLAS kernel's efficiency)? At what sparsity would you expect it to win?
# 4. Removing half of every layer's channels divides the FLOPs of the middle convolutions by
#    four, but the measured speedup is smaller. What did not shrink?
# 5. A 784 x 512 layer pays to factorise below rank 310. Rank 64 keeps 21% of its weights; how
#    many bytes does 79% unstructured sparsity take in CSR? Which of the two runs faster, and
#    which kept more accuracy in the measurements above?
# 6. Our student was distilled on 20,000 images for 4 epochs. Would you expect the gain over the
#    student alone to grow or shrink with all 48,000 images and 30 epochs? Why do soft targets
#    carry more information per example than a label, and what does the temperature change?
#
# ## Summary
#
# You made models smaller in four ways and measured each. **Magnitude pruning** with masks that
# a `MaskedOptimizer` re-applies after every step keeps pruned weights at zero through
# fine-tuning, globally or per layer, in one shot or along Zhu and Gupta's cubic schedule, and
# `remove` makes it permanent. **CSR** stores the survivors in values, column indices and row
# pointers, whose bytes beat the dense array only past about 50% sparsity, and whose product
# in NumPy lost to the dense BLAS product everywhere but at 99% sparsity for a single input.
# **Structured pruning** removes channels, their batch-norm entries and the next layer's inputs,
# giving an ordinary smaller network that is faster with every kernel. **Low-rank
# factorisation** replaces a `Linear` by two thin ones from a truncated SVD, paying below rank
# $mn/(m+n)$ with an error that is exactly the dropped singular values. **Knowledge
# distillation** is a loss in the graph that lets a small student learn from a teacher's
# softened outputs. Module 15 reduces the bytes of each remaining weight; module 18 makes the
# kernels themselves faster.
