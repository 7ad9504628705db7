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
# # Module 05: Autograd
#
# *Can I compute gradients automatically for any computation?*
#
# Training a network means asking, for every weight, "if I nudge you, how does the loss move?"
# — the gradient. A 784-256-128-10 MLP has 235,146 weights; writing their derivatives by hand
# for every model you build is hopeless. **Automatic differentiation** does it for you: every
# operation in module 01 already records what it did (the computation graph); in this module
# you write the *engine* that walks that graph backwards and the *rules* that say how each
# operation passes a gradient to its inputs. After this module, `loss.backward()` works.
#
# ## Learning objectives
# - State the chain rule as a **vector-Jacobian product** and explain why reverse mode computes
#   all 235,146 gradients for the price of about two forward passes.
# - Undo broadcasting in exactly one place (`unbroadcast`), and say why a broadcast input's
#   gradient is a *sum*.
# - Order a computation graph topologically without recursion (a 10,000-op chain must work).
# - Write the backward rule of every primitive of module 01 and the fused activations of module 02.
# - Control recording with `no_grad()`, and measure what the graph costs: bytes kept alive for
#   the backward pass, and backward time against forward time.
#
# ## How to work through this module
# Each step has a short explanation, a code cell with `### BEGIN SOLUTION` / `### END SOLUTION`
# (in your edition: a `raise NotImplementedError` to replace), and a test cell right after it.
# Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 05
# ```
#
# exports your code to `tinytorch/core/autograd.py` and grades it with
# `tests/modules/test_05_autograd.py`. Importing that file (or `tinytorch`) switches gradients on.

# %% [markdown]
# ## Mathematical foundations
#
# **The chain rule, backwards.** A network is a chain of operations
# $x \to h_1 = f_1(x) \to h_2 = f_2(h_1) \to \dots \to L$, ending in one number, the loss $L$.
# Write $\bar{h} = \partial L / \partial h$ for "the gradient of the loss with respect to $h$"
# (same shape as $h$). The chain rule says
#
# $$\bar{h}_1 = J_{f_2}(h_1)^\top \, \bar{h}_2,$$
#
# where $J_{f_2}$ is the Jacobian of $f_2$. Going from the loss back to the inputs, each
# operation only has to turn the gradient of its *output* into gradients of its *inputs*: a
# **vector-Jacobian product** (VJP). We never build a Jacobian — for a $(64, 256)$ activation it
# would have $16384^2 \approx 2.7 \times 10^8$ entries. Each rule computes the product directly:
#
# | op | forward | backward: gradient of each input, given $\bar{y}$ |
# |---|---|---|
# | add | $y = a + b$ | $\bar{a} = \bar{y}$, $\bar{b} = \bar{y}$ |
# | mul | $y = a b$ | $\bar{a} = \bar{y}\, b$, $\bar{b} = \bar{y}\, a$ |
# | exp | $y = e^a$ | $\bar{a} = \bar{y}\, y$ |
# | sum | $y = \sum_i a_i$ | $\bar{a}_i = \bar{y}$ (copied back to every element) |
# | matmul | $Y = A B$ | $\bar{A} = \bar{Y} B^\top$, $\bar{B} = A^\top \bar{Y}$ |
#
# **Why reverse mode.** One backward pass gives the gradient with respect to *every* input at
# once, because the loss is a single number. Forward mode would need one pass per weight.
# The price of the backward pass is about twice the forward: a matmul's backward is two matmuls
# of the same size.
#
# **Two rules of bookkeeping.**
# 1. *Fan-out sums.* A tensor used twice ($y = x \cdot x$, or a residual connection) receives a
#    gradient from each use; they add up. That is also why `.grad` **accumulates** across
#    `backward()` calls, as in PyTorch, until you reset it.
# 2. *Broadcasting sums.* If `b` of shape $(D,)$ was broadcast to $(N, D)$ in `x + b`, every one
#    of its $N$ copies influenced the loss, so $\bar{b} = \sum_{n} \bar{y}_{n,:}$. Rules return
#    gradients in the broadcast shape; one function, `unbroadcast`, sums them back to the
#    input's shape. It is the *only* place in the framework where broadcasting is undone.

# %%
#| export
import functools

import numpy as np

from tinytorch.core.tensor import Tensor, backward_rule, register_backward, set_backward_engine
from tinytorch.core.tensor import is_grad_enabled, set_grad_enabled  # module 01's switch, re-exported here

# %%
# Functions of module 01 that this notebook's examples and tests use (not part of the export).
from tinytorch.core.tensor import cat, manual_seed, maximum, randn, where, zeros

# %% [markdown]
# ## What module 01 already gives us
#
# Every operation builds its result with `Tensor.from_op(data, op, inputs, **saved)`. When an
# input requires a gradient, the result remembers `_op` (the op's name), `_inputs` (a tuple of
# tensors) and `_saved` (what the backward rule will need, like the `dim` of a sum). Look:

# %%
_x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
_y = (_x * 2.0).sum()
print("op:", _y._op, "| inputs:", [t.shape for t in _y._inputs], "| saved:", _y._saved)
print("its input was made by:", _y._inputs[0]._op, "| leaf?", _x.is_leaf, _y.is_leaf)

# %% [markdown]
# That is the graph: just data. The contract with module 01 (see `CONTRIBUTING.md`) is that a
# **backward rule** is registered with `@register_backward("op")` and has the signature
#
# ```python
# rule(grad, out) -> tuple   # one NumPy array (or None) per tensor in out._inputs
# ```
#
# where `grad` is the NumPy gradient of `out`. A rule may return a gradient in the *broadcast*
# shape of `out`; the engine reduces it. A rule may return `grad` itself or views of it; any
# other array it returns must be new and given to one input only (never a tensor's own `.data`),
# because the engine may add into it in place.

# %% [markdown]
# ## Step 1: undo broadcasting, in one place
#
# `unbroadcast(grad, shape)` reduces a gradient of the broadcast shape to `shape`. Compare the
# shapes from the right, as broadcasting does:
#
# - dimensions that `grad` has *in front* of `shape` were added by broadcasting: sum them away;
# - a dimension where `shape` has size 1 but `grad` does not was stretched: sum it, keeping size 1.
#
# Example: `b` of shape $(1, 3)$ added to $(4, 2, 3)$ gets a gradient of shape $(4, 2, 3)$;
# sum dimension 0 (leading) and dimension 1 (stretched from 1), keep 1, and the result is $(1, 3)$.
# When the shapes already match, return `grad` untouched: no copy.

# %%
#| export
def unbroadcast(grad, shape):
    """Sum `grad` (broadcast shape) down to `shape`, the shape of the input it belongs to.

    Returns a NumPy array of exactly `shape` (a 0-d array, never a NumPy scalar).

    TODO: find the dimensions that broadcasting added or stretched, sum them, reshape to `shape`.
    HINT: `extra = grad.ndim - len(shape)` leading dimensions go entirely; dimension `i` of
          `shape` lines up with dimension `extra + i` of `grad`. `grad.sum(axis=axes,
          keepdims=True).reshape(shape)` does the rest. Raise a ValueError naming both shapes
          when `shape` cannot broadcast to `grad.shape`: that is a bug in a backward rule.
    """
    grad = np.asarray(grad)
    shape = tuple(shape)
    ### BEGIN SOLUTION
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0 or any(s != 1 and s != g for s, g in zip(shape, grad.shape[extra:])):
        raise ValueError(
            f"unbroadcast: a gradient of shape {grad.shape} cannot belong to an input of shape "
            f"{shape}; the backward rule that produced it returned the wrong shape"
        )
    stretched = tuple(extra + i for i, s in enumerate(shape) if s == 1 and grad.shape[extra + i] != 1)
    axes = tuple(range(extra)) + stretched
    return grad.sum(axis=axes, keepdims=True).reshape(shape)
    ### END SOLUTION

# %%
def test_unit_unbroadcast():
    grad = np.ones((4, 2, 3), dtype=np.float32)
    assert unbroadcast(grad, (4, 2, 3)) is grad, "matching shapes: return grad itself, no copy"
    assert unbroadcast(grad, (3,)).tolist() == [8.0, 8.0, 8.0], "(3,) was broadcast over 4*2 rows"
    assert unbroadcast(grad, (1, 3)).shape == (1, 3) and unbroadcast(grad, (1, 3))[0, 0] == 8.0
    assert unbroadcast(grad, (2, 1)).tolist() == [[12.0], [12.0]]
    scalar = unbroadcast(grad, ())
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and scalar == 24.0
    assert unbroadcast(grad, (3,)).dtype == np.float32, "keep the gradient's dtype"
    try:
        unbroadcast(grad, (5,))
        raise AssertionError("(4, 2, 3) cannot be the gradient of a (5,) input")
    except ValueError as error:
        assert "(4, 2, 3)" in str(error) and "(5,)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert unbroadcast(np.ones((2, 3)), (1, 1)).tolist() == [[6.0]]
    assert unbroadcast(np.ones((5, 1, 3)), (1, 3)).tolist() == [[5.0, 5.0, 5.0]]
    ### END HIDDEN TESTS
    print("unbroadcast: ok")


test_unit_unbroadcast()

# %% [markdown]
# ## Step 2: the first backward rules
#
# Five rules to start: `add`, `sub`, `mul`, `neg` and `sum` — enough to differentiate a small
# loss. Each reads its inputs from `out._inputs` (tensors; their arrays are `.data`) and returns
# one gradient per input, in order.
#
# `sum` copies the output's gradient back to every element that was summed. When the sum
# dropped dimensions (`keepdim=False`), put them back as size-1 dimensions first
# (`np.expand_dims`), then broadcast to the input's shape. `np.broadcast_to` does that without
# allocating anything: a read-only view with stride 0 along the summed dimensions. The rule
# reads `out._saved["dim"]` (None, or a tuple of non-negative dimensions, already normalised by
# module 01) and `out._saved["keepdim"]`.
#
# One systems habit from the start: **skip work nobody needs.** If an input does not require a
# gradient (a data batch, a constant like the `2.0` in `x * 2.0`), return `None` for it instead
# of computing an array that would be thrown away. For `mul` that saves one full-size
# multiplication; for the first layer's `x @ W` (Step 8) it saves a whole matrix product.

# %%
#| export
@register_backward("add")
def add_backward(grad, out):
    """a + b: both inputs receive the output's gradient unchanged.

    TODO: return (gradient of a, gradient of b).
    HINT: d(a+b)/da = 1, so the gradient passes straight through; broadcasting is the engine's job.
    """
    ### BEGIN SOLUTION
    return grad, grad
    ### END SOLUTION


@register_backward("sub")
def sub_backward(grad, out):
    """a - b: a receives the gradient, b receives its negation.

    TODO: return (gradient of a, gradient of b); compute -grad only if b requires a gradient.
    HINT: `a, b = out._inputs`.
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    return grad, (-grad if b.requires_grad else None)
    ### END SOLUTION


@register_backward("mul")
def mul_backward(grad, out):
    """a * b: each input's gradient is the output's gradient times the other input.

    TODO: return (grad * b, grad * a), each only when that input requires a gradient.
    HINT: use the arrays `a.data` and `b.data`; the result may have the broadcast shape.
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    grad_a = grad * b.data if a.requires_grad else None
    grad_b = grad * a.data if b.requires_grad else None
    return grad_a, grad_b
    ### END SOLUTION


@register_backward("neg")
def neg_backward(grad, out):
    """-a: the gradient changes sign.

    TODO: return a one-element tuple.
    HINT: `(-grad,)` — note the comma.
    """
    ### BEGIN SOLUTION
    return (-grad,)
    ### END SOLUTION


def _restore_reduced_dims(array, saved):
    """Give a reduction's result back the size-1 dimensions it dropped (for broadcasting)."""
    dim = saved["dim"]
    if dim is None or saved["keepdim"]:
        return array
    return np.expand_dims(array, dim)


@register_backward("sum")
def sum_backward(grad, out):
    """sum(a, dim, keepdim): every summed element receives the output's gradient.

    TODO: restore the dropped dimensions, then broadcast to the input's shape.
    HINT: `_restore_reduced_dims(grad, out._saved)` then `np.broadcast_to(..., a.shape)`.
    """
    ### BEGIN SOLUTION
    a = out._inputs[0]
    return (np.broadcast_to(_restore_reduced_dims(grad, out._saved), a.shape),)
    ### END SOLUTION

# %% [markdown]
# ### Test: the rules on their own
#
# A rule is a plain function: build a recorded result, call the rule with a gradient, compare.

# %%
def test_unit_first_rules():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 5.0], requires_grad=True)
    grad = np.array([1.0, 10.0], dtype=np.float32)
    grad_a, grad_b = mul_backward(grad, a * b)
    assert grad_a.tolist() == [3.0, 50.0] and grad_b.tolist() == [1.0, 20.0]
    grad_a, grad_b = sub_backward(grad, a - b)
    assert grad_a.tolist() == [1.0, 10.0] and grad_b.tolist() == [-1.0, -10.0]
    assert [g.tolist() for g in add_backward(grad, a + b)] == [[1.0, 10.0], [1.0, 10.0]]
    assert neg_backward(grad, -a)[0].tolist() == [-1.0, -10.0]
    matrix = Tensor(np.ones((2, 3)), requires_grad=True)
    assert sum_backward(np.array([1.0, 2.0]), matrix.sum(dim=1))[0].tolist() == [[1, 1, 1], [2, 2, 2]]
    assert sum_backward(np.array(4.0), matrix.sum())[0].shape == (2, 3)
    assert mul_backward(grad, a * 2.0)[1] is None, "the constant 2.0 needs no gradient"
    ### BEGIN HIDDEN TESTS
    assert sub_backward(grad, a - 1.0)[1] is None
    ### END HIDDEN TESTS
    print("first rules: ok")


test_unit_first_rules()

# %% [markdown]
# ## Step 3: topological order
#
# The engine must visit an operation only after **every** operation that used its result has
# passed its gradient back — otherwise a tensor used twice would be processed with half its
# gradient. A *topological order* (inputs before the results made from them) read backwards
# guarantees that.
#
# The textbook version is a recursive depth-first search. Python's recursion limit is about
# 1,000 frames, and an RNN unrolled over a long sequence, or a 10,000-op chain, is deeper than
# that. So write it with an explicit stack: each node is pushed once to *expand* (push its
# inputs) and once more, underneath them, to be *emitted* after all its inputs are done.
#
# Only tensors that take part in the gradient belong to the graph: those with
# `requires_grad=True` and a floating-point dtype (an integer tensor has no gradient).

# %%
#| export
def topological_order(tensor):
    """Every tensor of the graph behind `tensor` that needs a gradient, inputs before results.

    TODO: iterative depth-first search; append a node after all of its inputs.
    HINT: a stack of (node, inputs_done) pairs. Pop (node, False): skip it if already seen,
          otherwise mark it seen, push (node, True), then push (input, False) for each input that
          requires a gradient and is floating point. Pop (node, True): append node to the order.
          Keep "seen" as a set of `id(node)`: tensors compare elementwise, so they cannot be
          set members themselves. A recorded node whose `_inputs` is empty was freed by an
          earlier backward(): raise `_freed_graph_error()`.
    """
    ### BEGIN SOLUTION
    order, seen = [], set()
    stack = [(tensor, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._op is not None and not node._inputs:
            raise _freed_graph_error()
        stack.append((node, True))
        for child in node._inputs:
            if child.requires_grad and child.data.dtype.kind == "f" and id(child) not in seen:
                stack.append((child, False))
    return order
    ### END SOLUTION


def _freed_graph_error():
    return RuntimeError(
        "backward: this graph was already used by a backward() call, which freed it to save "
        "memory (as PyTorch does). Run the forward pass again, or keep the graph with "
        "tinytorch.core.autograd.backward(loss, retain_graph=True) on the first call"
    )

# %%
def test_unit_topological_order():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * x                      # x is used twice by h
    y = h + x                      # and once more by y
    order = topological_order(y)
    assert [id(t) for t in order].count(id(x)) == 1, "each tensor appears once"
    position = {id(t): i for i, t in enumerate(order)}
    assert position[id(x)] < position[id(h)] < position[id(y)], "inputs come before results"
    constant = Tensor([3.0, 4.0])
    assert len(topological_order(x * constant)) == 2, "tensors without requires_grad are left out"
    deep = x
    for _ in range(5000):
        deep = deep + 1.0
    assert len(topological_order(deep)) == 5001, "no recursion limit"
    ### BEGIN HIDDEN TESTS
    assert len(topological_order(x)) == 1
    ### END HIDDEN TESTS
    print("topological order: ok")


test_unit_topological_order()

# %% [markdown]
# ## Step 4: the engine
#
# `backward(tensor, gradient)` is what `tensor.backward()` calls. It
#
# 1. **seeds** the output's gradient: 1 for a scalar loss ($\partial L / \partial L = 1$). A
#    non-scalar output has no natural seed, so PyTorch asks you for one — and so do we;
# 2. walks the graph in **reverse** topological order, keeping a dictionary of pending
#    gradients (`id(tensor) -> gradient`);
# 3. at each recorded node, calls its rule and passes each input's gradient down: **reduced to
#    the input's shape** (`unbroadcast`, the one place), cast to the input's dtype, and **added**
#    to what that input has already received;
# 4. at each leaf that requires a gradient, **accumulates** into `leaf.grad`. Results of
#    operations (non-leaves) do not keep a `.grad`, as in PyTorch: only the weights need one;
# 5. **frees** the graph (each node forgets its `_inputs` and `_saved`) unless asked to retain
#    it, so the activations saved for backward are released as soon as they have been used.
#
# **Stale graphs.** A rule reads its inputs' data, as the forward pass left it. Change an input
# in place between forward and backward (`x[0] = 100.0`, or an optimizer step) and the rule
# computes a wrong gradient without a word. So every tensor counts its in-place changes
# (`tensor.version`, module 01), every recorded node remembers its inputs' versions, and
# `check_saved_versions(node)` refuses a node whose inputs have changed since, naming the op
# and the tensor, as PyTorch's "modified by an inplace operation" error does.
#
# **Adding without copying.** A gradient array can be shared: `add` hands the very same array
# to both of its inputs. Writing into a shared array in place would corrupt the other user's
# gradient; copying every gradient to be safe costs memory traffic on every step. So each
# pending gradient travels with a flag, *mine*: true when no one else can see the array, and
# only then does the engine add into it in place. `_pass_down` and `_accumulate` below are given;
# read them, then write the loop that uses them.

# %%
#| export
def _seed_gradient(tensor, gradient):
    """The gradient that starts the backward pass, checked (as PyTorch checks it)."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph behind it. Create "
            "its inputs with requires_grad=True (outside no_grad()) before computing it"
        )
    if tensor.data.dtype.kind != "f":
        raise RuntimeError(f"backward: only floating-point tensors have gradients, this one is {tensor.dtype}")
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, and this "
                f"tensor has shape {tensor.shape}. Reduce it to a scalar first (.sum() or "
                f".mean()), or pass the gradient of shape {tensor.shape}: tensor.backward(gradient)"
            )
        return np.ones_like(tensor.data)
    gradient = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
    if gradient.shape != tensor.shape:
        raise ValueError(
            f"backward: the gradient has shape {gradient.shape} but the tensor has shape "
            f"{tensor.shape}; they must be the same"
        )
    return gradient.astype(tensor.dtype, copy=False)


def _pass_down(pending, node, grad, grad_is_mine, input_grads):
    """Add the gradient of each input of `node` to `pending`: the one place shapes are reduced."""
    for child, child_grad in zip(node._inputs, input_grads):
        if child_grad is None or not child.requires_grad:
            continue
        child_grad = unbroadcast(child_grad, child.data.shape)
        if child_grad.dtype != child.data.dtype:
            child_grad = child_grad.astype(child.data.dtype)
        # A view of `grad` is ours only if `grad` was and no other input can receive one too.
        mine = child_grad.flags.writeable and (
            (grad_is_mine and len(node._inputs) == 1) or not np.may_share_memory(child_grad, grad)
        )
        key = id(child)
        if key not in pending:
            pending[key] = (child_grad, mine)
        else:
            total, total_is_mine = pending[key]
            if total_is_mine:
                np.add(total, child_grad, out=total)
            else:
                pending[key] = (total + child_grad, True)


def _accumulate(leaf, grad, grad_is_mine):
    """leaf.grad += grad; the first gradient is stored as is when no one else can see it.

    A leaf's gradient is stored row-major (C order) like its data: the weight gradient of
    `x @ W.T` arrives as a transposed view, and an optimizer reading it with large strides
    would be several times slower than this one reordering copy.
    """
    if leaf.grad is None:
        row_major = grad.flags.c_contiguous
        leaf.grad = grad if (grad_is_mine and row_major) else grad.copy(order="C")  # the setter wraps it
    else:
        np.add(leaf.grad.data, grad, out=leaf.grad.data)


def check_saved_versions(node):
    """Raise when an input of `node` changed in place after the forward pass recorded it."""
    for position, (tensor, seen) in enumerate(zip(node._inputs, node._saved_versions)):
        if tensor.version != seen:
            raise RuntimeError(
                f"backward: input {position} of op '{node._op}' (a tensor of shape {tensor.shape}, "
                f"{tensor.dtype}) was modified in place after the forward pass (its version is "
                f"{tensor.version}, the forward pass saw {seen}), so its gradient would be wrong. "
                "Run the forward pass again after changing it, or change a .clone() instead; an "
                "optimizer step belongs after backward(), not between forward and backward"
            )


def backward(tensor, gradient=None, retain_graph=False):
    """Accumulate d(tensor)/d(leaf) into `leaf.grad` for every leaf that requires a gradient.

    `gradient` is the gradient of some scalar with respect to `tensor` (default: 1 for a scalar
    tensor). With `retain_graph=False` (PyTorch's default) the graph is freed as it is used;
    a second backward through it raises an error that says so.

    TODO: seed, walk the graph in reverse topological order, call each node's rule, pass the
          gradients down, accumulate at the leaves, free the graph.
    HINT: `pending = {id(tensor): (seed, gradient is None)}` (we own the seed we made, not one
          the caller passed). For each node in `reversed(topological_order(tensor))`: pop its
          entry (it may have none, when a rule returned None for it); a leaf
          (`node.is_leaf`) goes to `_accumulate(node, grad, mine)`; otherwise
          `check_saved_versions(node)` first, then `backward_rule(node._op)(grad, node)` gives the
          input gradients for `_pass_down`. To free a node, set `node._inputs = ()` and
          `node._saved = None`.
    """
    seed = _seed_gradient(tensor, gradient)
    ### BEGIN SOLUTION
    pending = {id(tensor): (seed, gradient is None)}
    for node in reversed(topological_order(tensor)):
        entry = pending.pop(id(node), None)
        if node.is_leaf:
            if entry is not None:
                _accumulate(node, *entry)
            continue
        if entry is not None:
            grad, grad_is_mine = entry
            check_saved_versions(node)
            input_grads = backward_rule(node._op)(grad, node)
            _pass_down(pending, node, grad, grad_is_mine, input_grads)
        if not retain_graph:
            node._inputs, node._saved = (), None
    ### END SOLUTION


set_backward_engine(backward)

# %% [markdown]
# The last line installs the engine: from now on `tensor.backward()` (module 01) calls it.
# That one call, plus the `@register_backward` decorators, is all it takes to switch gradients
# on — no method of `Tensor` is replaced.

# %%
def test_unit_backward_engine():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([0.5], requires_grad=True)
    y = (x * x + b - x).sum()             # dy/dx = 2x - 1, dy/db = 3 (broadcast over 3)
    y.backward()
    assert x.grad.tolist() == [1.0, 3.0, 5.0], "fan-out: x is used three times, the gradients add"
    assert b.grad.tolist() == [3.0], "b was broadcast: its gradient is summed back to shape (1,)"
    assert x.grad.dtype == np.float32 and isinstance(x.grad, Tensor), ".grad is a Tensor, as in PyTorch"
    (x * 10.0).sum().backward()
    assert x.grad.tolist() == [11.0, 13.0, 15.0], ".grad accumulates across backward() calls"
    h = x * 2.0
    (h * h).sum().backward()
    assert h.grad is None, "non-leaves keep no gradient"
    try:
        (x * 2.0).backward()
        raise AssertionError("a (3,) output needs an explicit gradient")
    except RuntimeError as error:
        assert "scalar outputs" in str(error) and "(3,)" in str(error)
    x.grad = None
    (x * 2.0).backward(np.array([1.0, 0.0, -1.0]))
    assert x.grad.tolist() == [2.0, 0.0, -2.0], "an explicit gradient weights each output"
    ### BEGIN HIDDEN TESTS
    z = (x * x).sum()
    z.backward()
    try:
        z.backward()
        raise AssertionError("the graph was freed by the first backward")
    except RuntimeError as error:
        assert "retain_graph" in str(error)
    ### END HIDDEN TESTS
    print("backward engine: ok")


test_unit_backward_engine()

# %%
def test_unit_stale_graph_is_refused():
    x = Tensor([1.0, 2.0])
    w = Tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    x[0] = 100.0                           # after the forward pass: mul's backward would read 100
    try:
        y.backward()
        raise AssertionError("backward through a graph whose input changed must be refused")
    except RuntimeError as error:
        assert "'mul'" in str(error) and "modified in place" in str(error) and "(2,)" in str(error)
    y = (x * w).sum()                      # the forward pass again: fine
    y.backward()
    assert w.grad.tolist() == [100.0, 2.0]
    print("stale graph refused: ok")


test_unit_stale_graph_is_refused()

# %% [markdown]
# ## Step 5: checking gradients numerically
#
# How do you know a backward rule is right? Compare it with the definition of the derivative.
# The **central difference**
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon}$$
#
# has a truncation error of order $\varepsilon^2$ and a rounding error of order
# $u / \varepsilon$, where $u$ is the unit roundoff of the dtype. In **float64**
# ($u \approx 10^{-16}$), $\varepsilon = 10^{-6}$ leaves both near $10^{-10}$: about nine correct
# digits. In float32 ($u \approx 6 \times 10^{-8}$) the same step drowns in rounding, and even the
# best step (near $5 \times 10^{-3}$) leaves only about four digits — so gradient checks run in
# float64. To check a rule for a non-scalar output, contract the
# output with a **random cotangent** $c$ — check the gradient of $\sum_i y_i c_i$ — so that a
# rule which, say, swaps two output positions cannot pass by symmetry. The seed of
# `backward(gradient=c)` is exactly that contraction.
#
# The two functions below are given, and exported: `tinytorch.core.autograd.gradcheck` is the
# check every later module (and the project's test suite) runs on its backward rules, as
# PyTorch's `torch.autograd.gradcheck`. `gradcheck` draws random float64 inputs for the shapes
# you give it (or takes your arrays; anything else, such as an index array, is passed through
# unchecked), runs `backward(c)` for a random cotangent `c`, and compares every gradient with
# `numerical_gradient` of the same contraction.

# %%
#| export
class GradcheckError(AssertionError):
    """backward() and central differences disagree; the message names the input and the gap."""


def numerical_gradient(f, inputs, eps=1e-6):
    """Central-difference gradient of the scalar function `f(*inputs)`, in float64.

    `f` takes NumPy arrays and returns a number; `inputs` is a list of arrays. Each element is
    moved by +eps and -eps in turn: grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), with
    an error of order eps^2. Returns one float64 array per input; the inputs are not modified.
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


def _checked_input(spec, rng):
    """A shape tuple -> random normal float64 array; a floating array -> float64 (layout kept)."""
    if isinstance(spec, tuple):
        return rng.standard_normal(spec)
    if isinstance(spec, (np.ndarray, np.floating)) and spec.dtype.kind == "f":
        return np.asarray(spec).astype(np.float64, copy=False)
    return None


def gradcheck(function, *shapes_or_arrays, rng=None, eps=1e-6, atol=1e-6, rtol=1e-5):
    """Check backward() of `function` against central differences, in float64.

    Each entry of `shapes_or_arrays` is a shape tuple (a random normal input, checked), a
    floating-point array (used as float64, strided views kept; checked), or anything else
    (passed to `function` unchanged, not checked). Returns the analytic gradients (NumPy
    float64 arrays) of the checked inputs; raises GradcheckError naming the input otherwise.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = [_checked_input(spec, rng) for spec in shapes_or_arrays]
    checked = [i for i, a in enumerate(arrays) if a is not None]
    if not checked:
        raise ValueError("gradcheck: give at least one shape or floating-point array to check")

    def call(values):
        arguments = list(shapes_or_arrays)
        for i, value in zip(checked, values):
            arguments[i] = value
        return function(*arguments)

    leaves = [Tensor(arrays[i], dtype=np.float64, requires_grad=True) for i in checked]
    output = call(leaves)
    if not isinstance(output, Tensor) or output.dtype != np.float64:
        raise GradcheckError(f"gradcheck: the function must return a float64 Tensor for float64 inputs, got {output!r}")
    cotangent = rng.standard_normal(output.shape)
    output.backward(cotangent)

    def contracted(*values):
        with set_grad_enabled(False):
            result = call([Tensor(v, dtype=np.float64) for v in values])
        return np.sum(result.data * cotangent)

    expected = numerical_gradient(contracted, [arrays[i] for i in checked], eps=eps)
    analytic = []
    for index, leaf, numerical in zip(checked, leaves, expected):
        if leaf.grad is None:
            raise GradcheckError(f"gradcheck: input {index} received no gradient")
        if leaf.grad.shape != leaf.shape or leaf.grad.dtype != np.float64:
            raise GradcheckError(f"gradcheck: input {index} of shape {leaf.shape} got a gradient of shape "
                                 f"{leaf.grad.shape} and dtype {leaf.grad.dtype}")
        gap = np.abs(leaf.grad.data - numerical)
        if not np.all(gap <= atol + rtol * np.abs(numerical)):
            raise GradcheckError(
                f"gradcheck: input {index} (shape {leaf.shape}): backward() and central differences differ "
                f"by up to {gap.max():.3g}\nbackward: {leaf.grad.data}\nnumerical: {numerical}"
            )
        analytic.append(leaf.grad.data)
    return analytic

# %%
def test_unit_gradcheck():
    rng = np.random.default_rng(4)
    gradcheck(lambda a, b: a * b - a, rng.standard_normal((2, 3)), rng.standard_normal(3))
    gradcheck(lambda a: -(a * a * a), rng.standard_normal(4))
    print("gradient check: ok")


test_unit_gradcheck()

# %% [markdown]
# ## Step 6: the other elementwise rules
#
# | op | backward |
# |---|---|
# | div, $y = a / b$ | $\bar{a} = \bar{y} / b$, $\bar{b} = -\bar{y}\, a / b^2 = -\bar{y}\, y / b$ |
# | pow, $y = a^b$ | $\bar{a} = \bar{y}\, b\, a^{b-1}$, $\bar{b} = \bar{y}\, y \ln a$ |
# | exp, $y = e^a$ | $\bar{a} = \bar{y}\, y$ (the output is its own derivative: reuse it) |
# | log, $y = \ln a$ | $\bar{a} = \bar{y} / a$ |
# | maximum | the larger input gets $\bar{y}$; on a **tie**, each gets half (PyTorch's choice) |
# | where(c, a, b) | $\bar{a} = \bar{y}$ where $c$, else 0; $\bar{b}$ the other way round |
#
# Two details. `x ** 2` is the common case, and its exponent is a constant: computing
# $\ln x$ there would waste time and warn about negative $x$, so compute the exponent's gradient
# **only when it requires one**. And where $a = 0$ and $b \ge 0$, $y \ln a$ is $0 \cdot (-\infty)$:
# define that gradient as 0, as PyTorch does.

# %%
#| export
@register_backward("div")
def div_backward(grad, out):
    """a / b.

    TODO: return (grad / b, -grad * out / b), each only if that input requires a gradient.
    HINT: reusing `out.data` (= a / b) avoids computing b ** 2.
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    grad_a = grad / b.data if a.requires_grad else None
    grad_b = -grad * out.data / b.data if b.requires_grad else None
    return grad_a, grad_b
    ### END SOLUTION


@register_backward("pow")
def pow_backward(grad, out):
    """a ** b, differentiable in the base and (only when needed) in the exponent.

    TODO: base: grad * b * a ** (b - 1). Exponent, only if b.requires_grad: grad * out * log(a),
          and 0 where a == 0 and b >= 0.
    HINT: `np.where(condition, 0.0, value)`; wrap the log in `np.errstate(divide="ignore",
          invalid="ignore")` because the masked positions are computed (and discarded) too.
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    grad_a = grad * b.data * np.power(a.data, b.data - 1) if a.requires_grad else None
    grad_b = None
    if b.requires_grad:
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_b = grad * out.data * np.log(a.data)
        grad_b = np.where((a.data == 0) & (b.data >= 0), 0.0, grad_b)
    return grad_a, grad_b
    ### END SOLUTION


@register_backward("exp")
def exp_backward(grad, out):
    """e ** a: the derivative is the output itself.

    TODO: return (grad * out.data,).
    HINT: no need to call np.exp again.
    """
    ### BEGIN SOLUTION
    return (grad * out.data,)
    ### END SOLUTION


@register_backward("log")
def log_backward(grad, out):
    """log(a).

    TODO: return (grad / a,).
    HINT: the input is `out._inputs[0]`.
    """
    ### BEGIN SOLUTION
    return (grad / out._inputs[0].data,)
    ### END SOLUTION


@register_backward("maximum")
def maximum_backward(grad, out):
    """maximum(a, b): the larger input takes the gradient; ties split it half and half.

    TODO: a's share is 1 where a > b, 0.5 where a == b, 0 elsewhere; b gets the rest.
    HINT: `share = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)).astype(grad.dtype)`, then
          `grad * share` and `grad * (1 - share)`.
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    share = np.where(a.data > b.data, 1.0, np.where(a.data == b.data, 0.5, 0.0)).astype(grad.dtype)
    grad_a = grad * share if a.requires_grad else None
    grad_b = grad * (1 - share) if b.requires_grad else None
    return grad_a, grad_b
    ### END SOLUTION


@register_backward("where")
def where_backward(grad, out):
    """where(condition, a, b); the condition is `out._saved["condition"]`.

    TODO: a receives grad where the condition holds (0 elsewhere), b the opposite.
    HINT: `np.where(condition, grad, 0.0)` (a Python number keeps grad's dtype).
    """
    ### BEGIN SOLUTION
    a, b = out._inputs
    condition = out._saved["condition"]
    grad_a = np.where(condition, grad, 0.0) if a.requires_grad else None
    grad_b = np.where(condition, 0.0, grad) if b.requires_grad else None
    return grad_a, grad_b
    ### END SOLUTION

# %%
def test_unit_elementwise_rules():
    rng = np.random.default_rng(5)
    positive = rng.uniform(0.5, 2.0, (3, 4))
    gradcheck(lambda a, b: a / b, rng.standard_normal((3, 4)), positive[0])
    gradcheck(lambda a, b: a ** b, positive, rng.standard_normal(4))
    gradcheck(lambda a: a.exp(), rng.standard_normal((2, 3)))
    gradcheck(lambda a: a.log(), positive)
    gradcheck(maximum, rng.standard_normal(5), rng.standard_normal(5))
    gradcheck(lambda a, b: where(a.data > 0, a, b), rng.standard_normal((2, 3)), rng.standard_normal(3))
    x = Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    with np.errstate(all="raise"):
        (x ** 2).sum().backward()       # no log of a negative number: the exponent is a constant
    assert x.grad.tolist() == [-4.0, 0.0, 6.0]
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([1.0, 3.0], requires_grad=True)
    maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0] and b.grad.tolist() == [0.5, 1.0], "a tie splits the gradient"
    ### BEGIN HIDDEN TESTS
    base = Tensor([0.0, 2.0], requires_grad=True)
    exponent = Tensor([2.0, 3.0], requires_grad=True)
    (base ** exponent).sum().backward()
    assert np.isfinite(exponent.grad).all() and exponent.grad[0] == 0.0
    ### END HIDDEN TESTS
    print("elementwise rules: ok")


test_unit_elementwise_rules()

# %% [markdown]
# ## Step 7: the maximum of a reduction — amax
#
# `amax` sends the gradient to the element that was the largest. When several elements tie for
# the maximum, `torch.amax` shares the gradient **evenly** among them, and so do we (note that
# `max(dim)`, which also returns indices, picks one element in PyTorch; ours is built on `amax`).
#
# Like `sum`, it reads `out._saved["dim"]` and `out._saved["keepdim"]`, and `mean` (a sum
# divided by a count) needs no rule of its own.

# %%
#| export
@register_backward("amax")
def amax_backward(grad, out):
    """amax(a, dim, keepdim): the maxima share the gradient evenly.

    TODO: a mask of the elements equal to their maximum, divided by how many there are per
          reduced slice, times the (restored) gradient.
    HINT: compare `a.data` with the restored `out.data`; count with
          `mask.sum(axis=dim, keepdims=True, dtype=grad.dtype)` (a float count keeps the dtype).
    """
    ### BEGIN SOLUTION
    a = out._inputs[0]
    mask = a.data == _restore_reduced_dims(out.data, out._saved)
    count = mask.sum(axis=out._saved["dim"], keepdims=True, dtype=grad.dtype)
    return (mask * (_restore_reduced_dims(grad, out._saved) / count),)
    ### END SOLUTION

# %%
def test_unit_reduction_rules():
    rng = np.random.default_rng(7)
    gradcheck(lambda a: a.sum(), rng.standard_normal((2, 3)))
    gradcheck(lambda a: a.sum(dim=1), rng.standard_normal((2, 3, 4)))
    gradcheck(lambda a: a.sum(dim=(0, 2), keepdim=True), rng.standard_normal((2, 3, 4)))
    gradcheck(lambda a: a.amax(dim=0), rng.standard_normal((3, 4)))
    gradcheck(lambda a: a.mean(dim=-1), rng.standard_normal((3, 4)))
    x = Tensor([[1.0, 5.0, 5.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.amax(dim=1).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], "tied maxima share the gradient"
    ### BEGIN HIDDEN TESTS
    y = Tensor([3.0, 3.0, 3.0, 1.0], requires_grad=True)
    y.amax().backward()
    assert np.allclose(y.grad, [1 / 3, 1 / 3, 1 / 3, 0.0])
    ### END HIDDEN TESTS
    print("reduction rules: ok")


test_unit_reduction_rules()

# %% [markdown]
# ## Step 8: movement, indexing, joining, casting
#
# Movement ops move elements without arithmetic, so their rules move the gradient back:
#
# - `reshape`: reshape the gradient to the input's shape.
# - `permute(dims)`: apply the **inverse** permutation, `np.argsort(dims)`.
# - `expand`: the output is the input broadcast — return `grad` and let the engine's
#   `unbroadcast` sum it back. (That is the payoff of reducing in one place.)
# - `getitem(index)`: scatter the gradient into zeros of the input's shape. With *advanced*
#   indexing an element can be picked twice (`x[[0, 0]]`), and then its gradients must **add**:
#   `g[index] += grad` silently keeps only one of them, `np.add.at(g, index, grad)` adds all.
#   Plain slicing never repeats an element, so plain assignment (much faster) is enough there.
# - `cat(dim)`: split the gradient along `dim` into pieces the sizes of the inputs.
# - `cast`: the gradient goes back in the **input's** dtype (a float64 copy of a float32 weight
#   must still give the weight a float32 gradient).

# %%
#| export
@register_backward("reshape")
def reshape_backward(grad, out):
    """reshape: the gradient takes the input's shape.

    TODO: return (grad reshaped to the input's shape,).
    HINT: `grad.reshape(out._inputs[0].shape)`.
    """
    ### BEGIN SOLUTION
    return (grad.reshape(out._inputs[0].shape),)
    ### END SOLUTION


@register_backward("permute")
def permute_backward(grad, out):
    """permute(dims): undo the permutation.

    TODO: transpose the gradient by the inverse of `out._saved["dims"]`.
    HINT: `np.argsort(dims)` is the inverse permutation.
    """
    ### BEGIN SOLUTION
    return (np.transpose(grad, np.argsort(out._saved["dims"])),)
    ### END SOLUTION


@register_backward("expand")
def expand_backward(grad, out):
    """expand: the engine's unbroadcast sums the copies.

    TODO: return the gradient unchanged.
    HINT: one line; the reduction happens in exactly one place, and it is not here.
    """
    ### BEGIN SOLUTION
    return (grad,)
    ### END SOLUTION


def _is_basic_index(index):
    """True for indices made of ints, slices, None and Ellipsis (each element picked at most once)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(part, (int, np.integer, slice, type(None), type(Ellipsis))) for part in parts)


@register_backward("getitem")
def getitem_backward(grad, out):
    """a[index]: scatter the gradient back; repeated indices accumulate.

    TODO: zeros of the input's shape and dtype; put `grad` at `out._saved["index"]`.
    HINT: `g[index] = grad` for a basic index (`_is_basic_index`), otherwise
          `np.add.at(g, index, grad)`, which adds once per occurrence of an index.
    """
    ### BEGIN SOLUTION
    a = out._inputs[0]
    index = out._saved["index"]
    scattered = np.zeros(a.shape, dtype=grad.dtype)
    if _is_basic_index(index):
        scattered[index] = grad
    else:
        np.add.at(scattered, index, grad)
    return (scattered,)
    ### END SOLUTION


@register_backward("cat")
def cat_backward(grad, out):
    """cat(tensors, dim): each input gets its slice of the gradient.

    TODO: split `grad` along `out._saved["dim"]` at the running totals of the inputs' sizes.
    HINT: `np.split(grad, np.cumsum(sizes)[:-1], axis=dim)` returns one view per input.
    """
    ### BEGIN SOLUTION
    dim = out._saved["dim"]
    sizes = [t.shape[dim] for t in out._inputs]
    return tuple(np.split(grad, np.cumsum(sizes)[:-1], axis=dim))
    ### END SOLUTION


@register_backward("cast")
def cast_backward(grad, out):
    """cast(a, dtype): the gradient goes back in the input's dtype.

    TODO: return (grad converted to the input's dtype,).
    HINT: `astype(dtype, copy=False)` does nothing when the dtype already matches.
    """
    ### BEGIN SOLUTION
    return (grad.astype(out._inputs[0].dtype, copy=False),)
    ### END SOLUTION

# %%
def test_unit_movement_rules():
    rng = np.random.default_rng(8)
    gradcheck(lambda a: a.reshape(4, 3) * Tensor(np.arange(12.0).reshape(4, 3)), rng.standard_normal((2, 6)))
    gradcheck(lambda a: a.permute(2, 0, 1), rng.standard_normal((2, 3, 4)))
    gradcheck(lambda a: a.expand(3, 2, 4), rng.standard_normal((2, 1)))
    gradcheck(lambda a: a[1:, ::2], rng.standard_normal((3, 4)))
    gradcheck(lambda a: a[Tensor([2, 0, 2])], rng.standard_normal((3, 2)))
    gradcheck(lambda a, b: cat([a, b, a], dim=1), rng.standard_normal((2, 3)), rng.standard_normal((2, 1)))
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[Tensor([0, 0, 2])].sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 1.0], "x[0] was picked twice: its gradients add"
    weight = Tensor([1.0, 2.0], requires_grad=True)
    (weight.double() * 3.0).sum().backward()
    assert weight.grad.dtype == np.float32 and weight.grad.tolist() == [3.0, 3.0]
    ### BEGIN HIDDEN TESTS
    y = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y[y.data > 2].sum().backward()
    assert y.grad.tolist() == [[0, 0, 0], [1, 1, 1]]
    ### END HIDDEN TESTS
    print("movement rules: ok")


test_unit_movement_rules()

# %% [markdown]
# ## Step 9: matrix multiplication
#
# For $Y = A B$ with $A$ of shape $(n, k)$ and $B$ of shape $(k, m)$:
# $\bar{A} = \bar{Y} B^\top$ (shape $(n, k)$) and $\bar{B} = A^\top \bar{Y}$ (shape $(k, m)$).
# Check the shapes: they are the only ones that fit, a useful way to remember the formulas.
#
# `matmul` also accepts batches and vectors, and the rule must too:
#
# - **Batches** broadcast like elementwise ops: $(B, n, k) \mathbin{@} (k, m)$ uses the same
#   weight for all $B$ matrices, so its gradient is the sum over the batch. Computing
#   $A^\top \bar{Y}$ per batch element makes $B$ matrices of shape $(k, m)$ that `unbroadcast`
#   then sums; faster is to fold the batch into the rows — `A.reshape(-1, k).T @
#   grad.reshape(-1, m)` is one big matrix product that does the sum inside. Transformers hit
#   this case on every linear layer.
# - **Vectors**: a 1-D left operand acts as a row $(1, k)$, a 1-D right operand as a column
#   $(k, 1)$, and the inserted dimension is dropped from the result. Insert it back into `grad`,
#   use the matrix formulas, and drop it from the input gradients.
#
# Skip the gradient of an input that does not require one: for the first layer of a network,
# `x @ W` with a data batch `x`, that saves a matrix product as large as the forward one.

# %%
#| export
@register_backward("matmul")
def matmul_backward(grad, out):
    """a @ b, for matrices, batches of matrices (broadcast) and vectors.

    TODO: make 1-D operands 2-D (and grad to match), apply grad_a = grad @ b^T and
          grad_b = a^T @ grad, then drop the dimensions you inserted.
    HINT: a 1-D `a` becomes `a[None, :]` and grad gets `grad[..., None, :]`; a 1-D `b` becomes
          `b[:, None]` and grad gets `grad[..., None]` (do b first: a 0-d grad has no axis to
          slice). Transpose the last two axes with `np.swapaxes(x, -1, -2)`. When `b` is 2-D but
          grad has batch dimensions, fold them into rows (see above). Leave batch sums to the
          engine. At the end, `grad_a[..., 0, :]` and `grad_b[..., 0]` drop the inserted axes.
    """
    a, b = out._inputs
    ### BEGIN SOLUTION
    left, right = a.data, b.data
    if b.ndim == 1:
        right, grad = right[:, None], grad[..., None]
    if a.ndim == 1:
        left, grad = left[None, :], grad[..., None, :]
    grad_a = grad_b = None
    if a.requires_grad:
        grad_a = grad @ np.swapaxes(right, -1, -2)
        if a.ndim == 1:
            grad_a = grad_a[..., 0, :]
    if b.requires_grad:
        if right.ndim == 2 and grad.ndim > 2:
            grad_b = left.reshape(-1, left.shape[-1]).T @ grad.reshape(-1, grad.shape[-1])
        else:
            grad_b = np.swapaxes(left, -1, -2) @ grad
        if b.ndim == 1:
            grad_b = grad_b[..., 0]
    return grad_a, grad_b
    ### END SOLUTION

# %%
def test_unit_matmul_rule():
    rng = np.random.default_rng(9)
    gradcheck(lambda a, b: a @ b, rng.standard_normal((3, 4)), rng.standard_normal((4, 2)))
    gradcheck(lambda a, b: a @ b, rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2)))
    gradcheck(lambda a, b: a @ b, rng.standard_normal((3, 4)), rng.standard_normal((2, 4, 5)))
    gradcheck(lambda a, b: a @ b, rng.standard_normal(4), rng.standard_normal((2, 4, 3)))
    gradcheck(lambda a, b: a @ b, rng.standard_normal((2, 3, 4)), rng.standard_normal(4))
    gradcheck(lambda a, b: a @ b, rng.standard_normal(4), rng.standard_normal(4))
    data = Tensor(rng.standard_normal((5, 3)))
    weight = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    out = data @ weight
    assert matmul_backward(np.ones((5, 2)), out)[0] is None, "the data batch needs no gradient"
    ### BEGIN HIDDEN TESTS
    gradcheck(lambda a, b: a @ b, rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2)))
    ### END HIDDEN TESTS
    print("matmul rule: ok")


test_unit_matmul_rule()

# %% [markdown]
# ## Step 10: the fused activations of module 02
#
# Module 02 computes ReLU, sigmoid, tanh, softmax and log-softmax in one NumPy pass each and
# records a single node (`"relu"`, `"sigmoid"`, ...; softmax and log-softmax save `dim`). Their
# rules are short because the derivative is a function of the **output**, which the node keeps
# anyway — no input needs to be saved and nothing is recomputed:
#
# | op | $y$ | $\bar{x}$ |
# |---|---|---|
# | relu | $\max(x, 0)$ | $\bar{y} \cdot [y > 0]$ |
# | sigmoid | $\sigma(x)$ | $\bar{y}\, y (1 - y)$ |
# | tanh | $\tanh x$ | $\bar{y} (1 - y^2)$ |
# | softmax | $s = e^x / \sum e^x$ | $s \odot (\bar{y} - \sum_j \bar{y}_j s_j)$ |
# | log_softmax | $y = x - \log \sum e^x$ | $\bar{y} - e^{y} \sum_j \bar{y}_j$ |
#
# (The sums run along `dim`.) The softmax rule is the Jacobian-vector product of
# $\partial s_i / \partial x_j = s_i(\delta_{ij} - s_j)$ without ever forming that $n \times n$
# matrix. Composed from primitives, log-softmax would record six nodes and keep six arrays
# alive; fused, it keeps one.

# %%
#| export
@register_backward("relu")
def relu_backward(grad, out):
    """relu(x): the gradient passes where the output is positive.

    TODO: return (grad * (out.data > 0),).
    HINT: multiplying by a boolean array keeps grad's dtype.
    """
    ### BEGIN SOLUTION
    return (grad * (out.data > 0),)
    ### END SOLUTION


@register_backward("sigmoid")
def sigmoid_backward(grad, out):
    """sigmoid(x): sigma' = sigma (1 - sigma), from the output.

    TODO: return (grad * y * (1 - y),) with y = out.data.
    """
    ### BEGIN SOLUTION
    y = out.data
    return (grad * y * (1 - y),)
    ### END SOLUTION


@register_backward("tanh")
def tanh_backward(grad, out):
    """tanh(x): tanh' = 1 - tanh^2, from the output.

    TODO: return (grad * (1 - y * y),) with y = out.data.
    """
    ### BEGIN SOLUTION
    y = out.data
    return (grad * (1 - y * y),)
    ### END SOLUTION


@register_backward("softmax")
def softmax_backward(grad, out):
    """softmax(x, dim): s * (grad - sum(grad * s, dim)).

    TODO: with s = out.data and dim = out._saved["dim"], return the product above.
    HINT: `weighted = grad * s` is a new array, so `weighted -= s * weighted.sum(axis=dim,
          keepdims=True)` finishes the job in place (one temporary fewer).
    """
    ### BEGIN SOLUTION
    s = out.data
    weighted = grad * s
    weighted -= s * weighted.sum(axis=out._saved["dim"], keepdims=True)
    return (weighted,)
    ### END SOLUTION


@register_backward("log_softmax")
def log_softmax_backward(grad, out):
    """log_softmax(x, dim): grad - softmax * sum(grad, dim), with softmax = exp(out).

    TODO: return the expression above along `out._saved["dim"]`.
    HINT: `np.exp(out.data)` is the softmax, recovered from the output in one pass.
    """
    ### BEGIN SOLUTION
    result = np.exp(out.data)
    result *= -grad.sum(axis=out._saved["dim"], keepdims=True)
    result += grad
    return (result,)
    ### END SOLUTION

# %%
from tinytorch.core.activations import log_softmax, relu, sigmoid, softmax, tanh  # noqa: E402


def test_unit_activation_rules():
    rng = np.random.default_rng(10)
    gradcheck(relu, rng.standard_normal((3, 4)))
    gradcheck(sigmoid, rng.standard_normal((3, 4)))
    gradcheck(tanh, rng.standard_normal((3, 4)))
    gradcheck(lambda x: softmax(x, dim=0), rng.standard_normal((3, 4)))
    gradcheck(lambda x: log_softmax(x, dim=-1), rng.standard_normal((2, 3, 4)))
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0], "relu passes no gradient at or below 0 (as PyTorch)"
    logits = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    softmax(logits, dim=1).sum().backward()
    assert np.allclose(logits.grad, 0.0, atol=1e-7), "probabilities always sum to 1: no gradient"
    ### BEGIN HIDDEN TESTS
    gradcheck(lambda x: sigmoid(tanh(x)) * softmax(x, dim=1), rng.standard_normal((2, 5)))
    ### END HIDDEN TESTS
    print("activation rules: ok")


test_unit_activation_rules()

# %% [markdown]
# ### Rules for backend kernels (given)
#
# Module 18 (Acceleration) can hand an operation to a *backend kernel* through module 01's kernel
# seam: exact GELU and cross-entropy then run as one fused kernel each, not as a chain of
# primitives, and a Linear layer as one op instead of three (transpose, matmul, add). The
# forward pass saves the backend's own backward kernel next to its inputs, so the rules below
# only call it; the backward pass runs on the backend that ran the forward pass, even when
# another backend is active by then. Without module 18 these rules never run.

# %%
#| export
@register_backward("gelu")
def gelu_backward(grad, out):
    """Fused GELU: the backward kernel that the forward pass saved, d/dx (x Phi(x)) * grad."""
    return (out._saved["backward"](grad, out._inputs[0].data, out._saved["approximate"]),)


@register_backward("linear")
def linear_backward(grad, out):
    """Fused Linear (x @ W.T + b): the saved backward kernel gives x's (when needed), W's and b's gradients."""
    x, weight = out._inputs[0], out._inputs[1]
    return out._saved["backward"](grad, x.data, weight.data, len(out._inputs) == 3, x.requires_grad)


@register_backward("cross_entropy")
def cross_entropy_backward(grad, out):
    """Fused cross-entropy: the saved backward kernel, (softmax - one_hot) * grad, scaled by the reduction."""
    saved = out._saved
    return (saved["backward"](grad, saved["log_probs"], saved["target"], saved["reduction"]),)

# %% [markdown]
# ## Step 11: switching recording off — `no_grad()`
#
# Recording costs time and, worse, memory: every node keeps its inputs alive until backward.
# Evaluation, inference and the optimizer's own update `w -= lr * w.grad` need no graph. PyTorch's
# answer is a context manager that is also a decorator:
#
# ```python
# with no_grad():
#     predictions = model(images)      # no graph: intermediate arrays are freed at once
#
# @no_grad()
# def evaluate(model, data): ...
# ```
#
# Module 01 holds the switch: `set_grad_enabled(mode)` takes effect at once, like PyTorch's, and
# used with `with` it restores the previous mode at the end; `is_grad_enabled()` reads it. The
# context managers here set it on entry and **restore the previous mode** on exit, even when an
# exception escapes — so that they nest (`enable_grad()` inside `no_grad()` records again) —
# and they work as decorators too.
#
# Two more tools from module 01 complete the set: `tensor.detach()` shares the data but
# starts a new graph (nothing flows back through it), and `tensor.requires_grad_()` turns a
# leaf into a parameter in place.

# %%
#| export
class _GradMode:
    """Base of no_grad / enable_grad: a context manager and a decorator."""

    mode = True

    def __enter__(self):
        """Turn recording to `self.mode`, remembering the previous setting.

        TODO: store the previous mode and switch to `self.mode`.
        HINT: `is_grad_enabled()` reads the mode; `set_grad_enabled(mode)` switches it.
        """
        ### BEGIN SOLUTION
        self._previous = is_grad_enabled()
        set_grad_enabled(self.mode)
        ### END SOLUTION
        return self

    def __exit__(self, *exception):
        """Restore the previous setting (also when an exception is leaving the block).

        TODO: switch back to the mode stored by __enter__.
        """
        ### BEGIN SOLUTION
        set_grad_enabled(self._previous)
        ### END SOLUTION
        return False

    def __call__(self, function):
        mode = self.mode

        @functools.wraps(function)
        def run_in_mode(*args, **kwargs):
            with set_grad_enabled(mode):
                return function(*args, **kwargs)

        return run_in_mode


class no_grad(_GradMode):
    """Operations inside record no graph: `with no_grad():` or `@no_grad()` (as torch.no_grad)."""

    mode = False


class enable_grad(_GradMode):
    """Operations inside record the graph, even within no_grad() (as torch.enable_grad)."""

    mode = True

# %%
def test_unit_grad_modes():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = x * 3.0
        with enable_grad():
            z = x * 3.0
        assert not is_grad_enabled()
    assert is_grad_enabled(), "the mode is restored after the block"
    assert not y.requires_grad and y.is_leaf and y._inputs == (), "no_grad records nothing"
    assert z.requires_grad, "enable_grad records again inside no_grad"

    @no_grad()
    def predict(t):
        return t * 2.0

    assert not predict(x).requires_grad and is_grad_enabled()
    try:
        with no_grad():
            raise KeyError("boom")
    except KeyError:
        pass
    assert is_grad_enabled(), "the mode is restored even when an exception leaves the block"
    with set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert is_grad_enabled()
    detached = (x * 2.0).detach()
    assert not detached.requires_grad and detached.is_leaf, "detach starts a new graph"
    (detached * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0], "nothing flows back through the detached branch"
    ### BEGIN HIDDEN TESTS
    set_grad_enabled(False)
    assert not is_grad_enabled()
    set_grad_enabled(True)
    assert is_grad_enabled()
    ### END HIDDEN TESTS
    print("grad modes: ok")


test_unit_grad_modes()

# %% [markdown]
# ## Systems analysis: what does a gradient cost?
#
# Three measurements on the MLP of the MNIST milestone (784-256-128-10, ReLU, log-softmax and
# the negative log-likelihood):
#
# 1. **Memory kept alive by the graph.** Every recorded node holds its output and its inputs
#    until backward runs. We measure the bytes that NumPy has allocated (with `tracemalloc`,
#    which NumPy reports to) after a forward pass with recording and under `no_grad()`, and
#    compare with the sum of the arrays the graph holds. Activation memory grows with the batch;
#    the parameters do not.
# 2. **Backward time against forward time.** Each matmul of the forward pass becomes two in
#    the backward pass, which suggests a ratio of 2. But the first layer's input is data, so its
#    input gradient is skipped — and that layer holds 85% of this MLP's weights. Count the
#    FLOPs, then measure.
# 3. **A deep chain.** 10,000 operations in a row: the iterative topological sort has no
#    recursion limit; the time per node is the engine's own overhead.

# %%
def mlp_parameters(sizes=(784, 256, 128, 10), seed=0):
    """Weights (He initialisation) and zero biases of an MLP, as tensors that require gradients."""
    rng = np.random.default_rng(seed)
    parameters = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weight = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        parameters += [Tensor(weight, requires_grad=True), Tensor(np.zeros(fan_out), requires_grad=True)]
    return parameters


def mlp_loss(parameters, images, labels):
    """Mean negative log-likelihood of an MLP with ReLU between layers."""
    hidden = images
    for i in range(0, len(parameters), 2):
        hidden = hidden @ parameters[i] + parameters[i + 1]
        if i + 2 < len(parameters):
            hidden = relu(hidden)
    log_probabilities = log_softmax(hidden, dim=1)
    return -log_probabilities[np.arange(len(labels)), labels].mean()


def graph_bytes(tensor):
    """Bytes of the arrays that the graph behind `tensor` keeps alive (leaves excluded)."""
    buffers = {}
    for node in topological_order(tensor):
        if node.is_leaf:
            continue
        arrays = [node.data] + [v for v in (node._saved or {}).values() if isinstance(v, np.ndarray)]
        for array in arrays:
            owner = array if array.base is None else array.base  # views share their owner's bytes
            buffers[id(owner)] = owner.nbytes
    return sum(buffers.values())


def measure_graph_memory(batch_sizes=(32, 256, 1024)):
    """Bytes allocated by a forward pass with and without the graph, per batch size."""
    import tracemalloc

    parameters = mlp_parameters()
    parameter_bytes = sum(p.nbytes for p in parameters)
    rows = []
    rng = np.random.default_rng(0)
    for batch in batch_sizes:
        images = Tensor(rng.standard_normal((batch, 784)))
        labels = rng.integers(0, 10, batch)
        tracemalloc.start()
        with no_grad():
            start = tracemalloc.get_traced_memory()[0]
            loss = mlp_loss(parameters, images, labels)
            without_graph = tracemalloc.get_traced_memory()[0] - start
        del loss
        start = tracemalloc.get_traced_memory()[0]
        loss = mlp_loss(parameters, images, labels)
        with_graph = tracemalloc.get_traced_memory()[0] - start
        counted = graph_bytes(loss)
        loss.backward()
        after_backward = tracemalloc.get_traced_memory()[0] - start
        tracemalloc.stop()
        for p in parameters:
            p.grad = None
        rows.append((batch, without_graph, with_graph, counted, after_backward, parameter_bytes))
    return rows


def mlp_matmul_flops(batch, sizes=(784, 256, 128, 10)):
    """FLOPs of the matmuls of one forward and one backward pass (2 per multiply-add)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2 * batch * fan_in * fan_out for fan_in, fan_out in layers)
    weight_grads = forward                       # grad_W = x^T @ grad: same size as the forward matmul
    input_grads = sum(2 * batch * fan_in * fan_out for fan_in, fan_out in layers[1:])  # not for the data
    return forward, weight_grads + input_grads


def measure_backward_vs_forward(batch=128, repeats=30):
    """Milliseconds of forward (recording), forward under no_grad, and backward.

    The minimum over the repeats: on a machine shared with other work, the least disturbed run
    is the best estimate of what the computation itself costs.
    """
    import time

    parameters = mlp_parameters()
    rng = np.random.default_rng(1)
    images = Tensor(rng.standard_normal((batch, 784)))
    labels = rng.integers(0, 10, batch)
    samples = {"forward (recording)": [], "forward (no_grad)": [], "backward": []}
    for _ in range(repeats):
        start = time.perf_counter()
        with no_grad():
            mlp_loss(parameters, images, labels)
        samples["forward (no_grad)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        loss = mlp_loss(parameters, images, labels)
        samples["forward (recording)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        loss.backward()
        samples["backward"].append(time.perf_counter() - start)
        for p in parameters:
            p.grad = None
    return {name: 1e3 * min(times) for name, times in samples.items()}


def measure_deep_chain(depth=10_000):
    """Backward through `depth` chained operations: the gradient, and microseconds per node."""
    import time

    x = Tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001
    start = time.perf_counter()
    y.backward()
    seconds = time.perf_counter() - start
    return x.grad.item(), 1.0001**depth, 1e6 * seconds / depth


if __name__ == "__main__":
    print("batch | forward, no_grad | forward, recording | arrays in graph | after backward | parameters")
    for batch, plain, recorded, counted, after, params in measure_graph_memory():
        print(f"{batch:5d} | {plain / 1e3:13.0f} kB | {recorded / 1e3:15.0f} kB | {counted / 1e3:12.0f} kB"
              f" | {after / 1e3:11.0f} kB | {params / 1e3:7.0f} kB")
    forward_flops, backward_flops = mlp_matmul_flops(128)
    print(f"matmul FLOPs at batch 128: forward {forward_flops / 1e6:.1f} M, backward {backward_flops / 1e6:.1f} M "
          f"(ratio {backward_flops / forward_flops:.2f})")
    timings = measure_backward_vs_forward()
    for name, milliseconds in timings.items():
        print(f"{name:>20}: {milliseconds:7.3f} ms")
    print(f"backward / forward: {timings['backward'] / timings['forward (recording)']:.2f}")
    gradient, expected, per_node = measure_deep_chain()
    print(f"deep chain of 10,000 ops: gradient {gradient:.6f} (exact {expected:.6f}), {per_node:.1f} us per node")

# %% [markdown]
# Run the cell above (or `python modules/05_autograd/autograd.py`) to see your machine's
# figures. What to look for:
#
# - Under `no_grad()` a forward pass leaves almost nothing behind (each intermediate array is
#   freed as soon as the next op has read it); with recording, the graph holds every activation
#   — about 1.2 MB at batch 256, growing linearly with the batch, and matching the sum of the
#   arrays in the graph. At batch 1024 the activations are five times the size of the
#   parameters. This is why large models train with small micro-batches, why inference runs
#   under `no_grad()`, and why *activation checkpointing* (store some activations, recompute
#   the others during backward) exists.
# - After backward the graph has been freed: what remains is the gradients, exactly the size of
#   the parameters.
# - The matmul FLOPs of backward are only 1.15 times those of forward (68.8 M against 60.1 M at
#   batch 128): the skipped input gradient of the first layer would have been the largest
#   product of all. In a network whose first layer is small (a transformer's embedding lookup),
#   expect the textbook factor of 2.
# - Time is not FLOPs. On a shared 2-core machine with one BLAS thread we measured backward at
#   0.5 to 1.1 times the forward pass, and PyTorch's backward on the same machine at 2.1-2.6 ms
#   against our 2.0-2.5 ms. The forward's first product, (128, 784) @ (784, 256), and the
#   backward's weight gradient, (784, 128) @ (128, 256), have the same FLOPs, but BLAS libraries
#   block and vectorise each shape differently, so they need not run equally fast. Measure.
# - The deep chain gets the exact gradient $1.0001^{10000} \approx e$, and the time per node —
#   10 to 20 microseconds on a busy 2-core machine, nearly all of it Python bookkeeping — is the
#   engine's overhead. It is why frameworks
#   fuse operations (fewer, bigger nodes) and why PyTorch's engine is written in C++.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **The graph.** PyTorch records the same thing during the forward pass: each result's
#   `grad_fn` is a C++ `Node` (`MulBackward0`, `AddmmBackward0`, ...) holding its *saved
#   tensors* and edges to the nodes of its inputs. Leaves get an `AccumulateGrad` node that adds
#   into `.grad` — our `_accumulate`. Try `print((x * y).grad_fn.next_functions)`.
# - **The rules.** PyTorch's derivative formulas live in one file, `derivatives.yaml` (e.g.
#   `mul: self: grad * other`), from which C++ is generated; ours are the registered functions
#   above. Broadcasting is undone by `sum_to_size`, one function called by every rule, like our
#   `unbroadcast`.
# - **The engine.** Instead of a depth-first topological sort, PyTorch counts, for each node,
#   how many gradients it still waits for, and runs a node when that count reaches zero (a ready
#   queue, with one worker thread per device). Same order guarantee, and it parallelises.
# - **Memory.** Saved tensors are freed after backward unless `retain_graph=True` (ours too), and
#   each saved tensor carries a *version counter*: modify it in place before backward and
#   PyTorch raises an error instead of computing a wrong gradient. We have no such check — module
#   01 refuses `x[i] = v` on tensors that require a gradient instead.
# - **Checking.** `torch.autograd.gradcheck` is our `gradient_check`: float64, central
#   differences, a tolerance. Every PyTorch op is tested with it.
# - **What we leave out.** Our rules compute with NumPy arrays, so the backward pass is not
#   itself recorded: no gradients of gradients (PyTorch's `create_graph=True`, needed for some
#   meta-learning and physics losses). JAX goes further and makes differentiation a function
#   transformation (`jax.grad(f)`), with the same vector-Jacobian products underneath.

# %% [markdown]
# ## Integration test: learning XOR by hand
#
# XOR is the problem that a single layer cannot solve (Minsky and Papert, 1969). With a hidden
# layer and gradients from `backward()`, plain gradient descent solves it. Module 06 will wrap
# the update `w -= lr * w.grad` in an optimizer; here we write it out.

# %%
def test_integration_xor_by_gradient_descent():
    manual_seed(0)
    inputs = Tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    targets = Tensor([[0.0], [1.0], [1.0], [0.0]])
    weights1, bias1 = randn(2, 8, requires_grad=True), zeros(8, requires_grad=True)
    weights2, bias2 = randn(8, 1, requires_grad=True), zeros(1, requires_grad=True)
    parameters = [weights1, bias1, weights2, bias2]
    losses = []
    for _ in range(500):
        hidden = tanh(inputs @ weights1 + bias1)
        predictions = sigmoid(hidden @ weights2 + bias2)
        loss = ((predictions - targets) ** 2).mean()
        loss.backward()
        for parameter in parameters:
            parameter.data -= 2.0 * parameter.grad
            parameter.grad = None
        losses.append(loss.item())
    with no_grad():
        predictions = sigmoid(tanh(inputs @ weights1 + bias1) @ weights2 + bias2)
    assert ((predictions.numpy() > 0.5) == (targets.numpy() > 0.5)).all(), f"XOR not learned: {predictions}"
    assert losses[-1] < losses[0] / 10, "the loss falls by more than 10x"
    print(f"integration: XOR learned, loss {losses[0]:.3f} -> {losses[-1]:.4f}")


test_integration_xor_by_gradient_descent()

# %% [markdown]
# ## ML systems thinking
#
# 1. The graph of a training step holds every activation until backward. For a 7-billion-
#    parameter transformer with sequences of 4,096 tokens, would you expect the parameters or the
#    activations to dominate memory? What does *activation checkpointing* trade, and for what?
# 2. Our engine adds into a gradient in place only when it owns the array (`mine`). Construct
#    a graph where adding in place into the array that `add` passed down would give a wrong
#    gradient somewhere else.
# 3. `x @ W` in the first layer skips the gradient of `x`. Which other gradients in a training
#    step are computed and then never used? How could an engine find them automatically?
# 4. The deep chain costs 10-20 microseconds per node whatever the size of the arrays. At
#    what array size does that overhead stop mattering next to the arithmetic? What does this say
#    about fused operations like `log_softmax`?
# 5. Why do gradient checks run in float64, while training runs in float32 (or bfloat16)?
#
# ## Summary
#
# You wrote reverse-mode automatic differentiation: `unbroadcast`, the single place where
# broadcasting is undone; an iterative topological sort that handles any depth; the engine that
# seeds, walks, accumulates and frees; and a backward rule for every primitive of module 01 and
# every fused activation of module 02, each verified against central differences in float64.
# `no_grad()` switches recording off, and you measured why it matters: the graph keeps every
# activation alive, and backward costs about one to two forward passes. Every later module
# (optimizers, training, convolutions, attention) builds on `loss.backward()`; next, module 06
# turns these gradients into better parameters.
