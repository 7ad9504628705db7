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
# # Module 03: Layers
#
# *Can I build the layers that neural networks are made of?*
#
# A neural network is a function with millions of adjustable numbers. Module 01 gave you the
# arrays; this module gives those numbers a home. You build `Module`, the base class that every
# layer and every model in the course inherits from: it finds its own parameters, names them,
# switches between training and evaluation, and saves and loads itself. Then you build the
# layers themselves: `Linear`, the containers `Sequential` and `ModuleList`, and the small
# helpers `Flatten`, `Dropout` and `Identity`.
#
# ## Learning objectives
# - Explain why a model must *find* its parameters (the optimizer needs the list) and implement
#   automatic registration through `__setattr__`, with PyTorch's dotted names (`0.weight`).
# - Implement `state_dict()` / `load_state_dict()` so that a checkpoint loads into a fresh model,
#   and so that a wrong checkpoint is refused, unchanged, with every missing, unexpected, mis-shaped
#   and mis-typed key.
# - Implement `Linear` with PyTorch's weight layout and initialisation, and derive its bound.
# - Implement inverted dropout and say why it is scaled during training, not at inference.
# - Measure what a layer costs: parameters, bytes, FLOPs and milliseconds.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 03
# ```
#
# exports your code to `tinytorch/core/layers.py` and grades it with `tests/modules/test_03_layers.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **The linear layer** maps a batch $X \in \mathbb{R}^{N \times d_{in}}$ to
# $Y = X W^\top + b$ with $W \in \mathbb{R}^{d_{out} \times d_{in}}$ and $b \in \mathbb{R}^{d_{out}}$.
# It holds $d_{out} d_{in} + d_{out}$ parameters and its forward pass costs $2 N d_{in} d_{out}$
# floating-point operations (a multiply and an add per term of the matrix product; the bias adds
# only $N d_{out}$ more). We store $W$ as $(d_{out}, d_{in})$, PyTorch's layout, so that a PyTorch
# checkpoint loads into our model key for key and shape for shape.
#
# **Initialisation** decides whether a deep network trains at all. If each input $x_j$ has
# variance $\sigma_x^2$ and each weight is drawn independently with variance $\sigma_w^2$, then
# $\mathrm{Var}(y_i) = d_{in}\,\sigma_w^2\,\sigma_x^2$: with $\sigma_w$ fixed, the signal grows
# with the layer's width, and after ten layers it has exploded or vanished. Scaling the weights
# as $1/\sqrt{d_{in}}$ keeps the variance of every layer's output in the same range.
#
# PyTorch's default for `nn.Linear` is *Kaiming-uniform with* $a = \sqrt{5}$: weights from
# $U(-\text{bound}, \text{bound})$ with $\text{bound} = \text{gain}\sqrt{3 / d_{in}}$ and
# $\text{gain} = \sqrt{2 / (1 + a^2)} = \sqrt{1/3}$. The two square roots cancel:
#
# $$\text{bound} = \sqrt{\tfrac{1}{3}} \cdot \sqrt{\tfrac{3}{d_{in}}} = \frac{1}{\sqrt{d_{in}}},
# \qquad \mathrm{Var}(w) = \frac{\text{bound}^2}{3} = \frac{1}{3 d_{in}}.$$
#
# The bias uses the same bound. (A uniform variable on $[-c, c]$ has variance $c^2/3$.) So the
# output variance is a third of the input's: a gentle shrink that ReLU networks of a few layers
# tolerate well. He initialisation ($a = 0$, bound $\sqrt{6/d_{in}}$) keeps the variance exactly
# for ReLU networks; we follow PyTorch's default so that our results match PyTorch's.
#
# **Inverted dropout** zeroes each element with probability $p$ during training and scales the
# survivors by $1/(1-p)$, so $\mathbb{E}[\text{dropout}(x)] = (1-p)\cdot\frac{x}{1-p} = x$. Because
# the expectation is already right during training, evaluation is the identity: no rescaling
# at inference, where speed matters most.

# %%
#| export
import itertools
import math
from collections import namedtuple

import numpy as np

import tinytorch.core.activations as activations  # module 02, whose layers become Modules in Step 6
from tinytorch.core.tensor import (
    DEFAULT_FLOAT,
    Tensor,
    as_tensor,
    backend_kernel,
    check_positive_int,
    rand,
    randn,
    set_grad_enabled,
)

# %% [markdown]
# ## Step 1: Parameter
#
# A **parameter** is a tensor that training will change. Two things set it apart from the
# tensors that flow through a network:
#
# 1. It requires a gradient by default: the whole point of a weight is that we will compute
#    $\partial \text{loss} / \partial W$ and move $W$ against it.
# 2. Its *type* marks it. When you write `self.weight = Parameter(...)` inside a layer, the
#    layer can tell that this attribute is a parameter, not an intermediate result it happened to
#    keep, and register it. That is all `Parameter` adds to `Tensor`: a type and a default.
#
# A parameter is a **leaf** of the computation graph (nothing computed it), which is where
# module 05's gradients accumulate. Operations on a parameter return plain tensors:
# `weight * 2` is a result, not a new parameter.

# %%
#| export
class Parameter(Tensor):
    """A Tensor that is a trainable parameter of a Module (requires_grad=True by default)."""

    def __init__(self, data, dtype=None, requires_grad=True):
        """Wrap `data` like `Tensor(data, dtype)`, requiring a gradient unless told otherwise.

        TODO: initialise the Tensor part with the same arguments.
        HINT: `super().__init__(...)` runs Tensor's constructor, dtype rules and checks included.
        """
        ### BEGIN SOLUTION
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)
        ### END SOLUTION

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

# %% [markdown]
# ### Test: Parameter

# %%
def test_unit_parameter():
    weight = Parameter(np.ones((2, 3)))
    assert isinstance(weight, Tensor), "a Parameter is a Tensor"
    assert weight.requires_grad and weight.is_leaf
    assert weight.dtype == np.float32, "float64 data becomes float32, as for every Tensor"
    assert not Parameter([1.0], requires_grad=False).requires_grad
    doubled = weight * 2
    assert type(doubled) is Tensor, "operations on a Parameter give plain tensors"
    ### BEGIN HIDDEN TESTS
    assert Parameter(np.zeros(2), dtype=np.float64).dtype == np.float64
    assert repr(weight).startswith("Parameter containing:")
    ### END HIDDEN TESTS
    print("Parameter: ok")


test_unit_parameter()

# %% [markdown]
# ## Step 2: Module, the base class of every layer and model
#
# An optimizer needs a list of every parameter in a model; a checkpoint needs a name for each.
# Asking the author of every model to maintain such lists by hand would be a bug farm. Instead,
# `Module` watches its own attribute assignments. Python calls `__setattr__(name, value)` for
# every `self.name = value`, so `Module.__setattr__` can sort each value as it arrives:
#
# | assigned value | what `Module` does |
# |---|---|
# | a `Parameter` | records it in `self._parameters[name]` |
# | a `Module`, or a parameter-free layer such as `ReLU()` | records it as a child in `self._modules[name]` |
# | a non-empty list of such layers | wraps it in a `ModuleList` (Step 4), a child |
# | a Tensor, for a name registered with `register_buffer` | updates the buffer |
# | a plain Tensor, for a name that holds a Parameter | refuses it: `self.weight = self.weight * 2` would silently stop training `weight` |
# | anything else | a plain attribute (and forgets the name if it was registered) |
#
# The value is also stored as an ordinary attribute, so `self.weight` is a plain lookup.
# Dictionaries keep insertion order, so *registration order* is the order of assignment.
#
# **Layers that are not Modules.** Module 02's activation layers (`ReLU()`, `Softmax(dim=1)`)
# came before `Module` existed, so they are plain classes with a `forward` method and no
# parameters. `Module` accepts any such object as a child (`_is_layer` below), so that
# `Sequential(Linear(784, 256), ReLU(), Linear(256, 10))` works; the tree walks skip it, as
# there is nothing inside to find. An object with a `forward` that *does* have parameters but
# is not a Module is refused: its parameters would never be trained or saved.
#
# **Lists of modules differ from PyTorch on purpose.** PyTorch ignores a plain Python list of
# layers: their parameters are silently missing from `parameters()`, never trained, never
# saved, one of the most common bugs in PyTorch code. We register such a list as a `ModuleList`.
#
# With the registries in place, everything else is a walk over the tree of modules:
#
# - `named_modules()` visits the module, then each child's subtree, in registration order
#   (pre-order), naming them with dots: `""`, `"encoder"`, `"encoder.0"`.
# - `named_parameters()` lists each module's own parameters under its prefix: `"encoder.0.weight"`.
#   A parameter shared by two layers (tied weights) is listed **once**, so an optimizer does not
#   update it twice.
# - `train()` / `eval()` set `training` on every module (Dropout and, later, BatchNorm behave
#   differently in the two modes).
# - `state_dict()` maps every name to a *copy* of the array; `load_state_dict()` checks **every**
#   key, shape and dtype first (`check_state_dict()`) and copies only when all is well, in place,
#   so that an optimizer holding the parameters keeps seeing them. A refused checkpoint leaves the
#   model untouched — even one whose last array is complex numbers, which no float tensor can hold.
#
# **Buffers** are tensors that belong to the model's state but are not trained, such as
# BatchNorm's running mean (module 09). They are saved in `state_dict()` but never returned by
# `parameters()`.
#
# **Forward hooks.** Calling a module runs `forward`, and also, as in PyTorch, the *global forward
# hooks*: functions registered with `register_module_forward_pre_hook(hook)` run as
# `hook(module, args)` before every module's `forward`, and those registered with
# `register_module_forward_hook(hook)` run as `hook(module, args, output)` after it (a hook that
# returns a value replaces the arguments or the output, PyTorch's rule). Each registration
# returns a handle whose `remove()` takes the hook away again. Module 14's profiler uses them to
# say which layer an operation ran in; without hooks, `__call__` checks two empty dicts and runs
# `forward`.
#
# This is the largest step of the module. The class is given in one cell (a class cannot be
# split across cells); its answer regions are the parts that carry the ideas.

# %%
#| export
LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


def _is_layer(value):
    """True for a Module, and for a parameter-free layer that is not one (module 02's activations)."""
    if isinstance(value, Module):
        return True
    if isinstance(value, type) or not callable(getattr(value, "forward", None)):
        return False  # a class, or an object that is not a layer
    parameters = getattr(value, "parameters", None)
    if callable(parameters) and list(parameters()):
        raise TypeError(
            f"{type(value).__name__} has parameters but is not a Module: subclass Module (and call "
            "super().__init__()) so that its parameters are found, trained and saved"
        )
    return True


_forward_pre_hooks = {}  # handle id -> hook(module, args), run before every Module's forward
_forward_hooks = {}  # handle id -> hook(module, args, output), run after it
_hook_ids = itertools.count()


class RemovableHandle:
    """What a hook registration returns: `handle.remove()` unregisters the hook (also on `with` exit)."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.remove()
        return False


def register_module_forward_pre_hook(hook):
    """Run `hook(module, args)` before the forward of every Module; returns a RemovableHandle.

    As `torch.nn.modules.module.register_module_forward_pre_hook`: a hook that returns a value
    replaces the positional arguments (a tuple, or one value).
    """
    key = next(_hook_ids)
    _forward_pre_hooks[key] = hook
    return RemovableHandle(_forward_pre_hooks, key)


def register_module_forward_hook(hook):
    """Run `hook(module, args, output)` after the forward of every Module; returns a RemovableHandle.

    As `torch.nn.modules.module.register_module_forward_hook`: a hook that returns a value
    replaces the output.
    """
    key = next(_hook_ids)
    _forward_hooks[key] = hook
    return RemovableHandle(_forward_hooks, key)


def has_module_forward_hooks():
    """True while a global forward hook or pre-hook is registered (module 14's profiler registers
    both); code that bypasses Module calls (module 17's decode plan) checks it."""
    return bool(_forward_pre_hooks or _forward_hooks)


class Module:
    """Base class of layers and models: registers parameters and children as you assign them.

    Subclasses call `super().__init__()` first, assign their parameters and layers as
    attributes, and define `forward`. Calling the module runs `forward`.
    """

    def __init__(self):
        # The registries themselves bypass __setattr__ (they are what it writes to).
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ---- registration ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        """Store `value` as an attribute and register it when it is a Parameter or a Module.

        TODO: sort `value` into self._parameters, self._modules or self._buffers (see the table
              above), remove `name` from the registries it no longer belongs to, then store
              it with `object.__setattr__(self, name, value)`.
        HINT: `_is_layer(value)` tells a child; a list of layers becomes `ModuleList(value)` first.
              `dict.pop(name, None)` removes a key that may be absent; assigning to a key that
              is present keeps its position (a replaced layer stays where it was).
        """
        if "_parameters" not in self.__dict__:
            if isinstance(value, Parameter) or _is_layer(value):
                raise RuntimeError(
                    f"{type(self).__name__}: cannot register '{name}' before Module.__init__ ran; "
                    f"call super().__init__() at the start of {type(self).__name__}.__init__"
                )
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Tensor) and not isinstance(value, Parameter) and name in self._parameters:
            raise TypeError(
                f"{type(self).__name__}.{name} is a Parameter; assign a Parameter (or None), not a "
                f"Tensor. To change its values, write into {name}.data in place"
            )
        ### BEGIN SOLUTION
        if isinstance(value, list) and value and all(_is_layer(item) for item in value):
            value = ModuleList(value)
        if isinstance(value, Parameter):
            registry = self._parameters
        elif _is_layer(value):
            registry = self._modules
        elif name in self._buffers and (value is None or isinstance(value, Tensor)):
            registry = self._buffers
        else:
            registry = None
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        if registry is not None:
            registry[name] = value  # a reassigned name keeps its place in the order
        object.__setattr__(self, name, value)
        ### END SOLUTION

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def _check_name(self, kind, name):
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"{type(self).__name__}: a {kind} name must be a non-empty string without '.', got {name!r}"
            )

    def register_parameter(self, name, parameter):
        """Register `parameter` (a Parameter, or None to remove) under `name`."""
        self._check_name("parameter", name)
        if parameter is not None and not isinstance(parameter, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(parameter).__name__}")
        setattr(self, name, parameter)

    def add_module(self, name, module):
        """Register `module` as a child named `name` (what Sequential does with "0", "1", ...)."""
        self._check_name("module", name)
        if not _is_layer(module):
            raise TypeError(f"add_module: '{name}' must be a Module (or a layer with a forward method), "
                            f"got {type(module).__name__}")
        setattr(self, name, module)

    def register_buffer(self, name, tensor):
        """Register a tensor that is saved in state_dict() but not trained (e.g. running statistics)."""
        self._check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    # ---- walking the tree ----------------------------------------------------------------------
    def named_modules(self, prefix="", remove_duplicate=True):
        """Yield (name, module) for this module and every descendant Module, in pre-order.

        TODO: yield `(prefix, self)`, then recurse into each child of `self._modules` that is a
              Module, with the name `prefix + "." + child_name` (no leading dot when prefix is
              empty). With `remove_duplicate`, a module reachable by two paths is yielded only
              the first time.
        HINT: a nested generator function and a set of `id(module)` values. Children that are
              not Modules (activation layers) hold nothing to walk: skip them.
        """
        ### BEGIN SOLUTION
        seen = set()

        def visit(name, module):
            if remove_duplicate:
                if id(module) in seen:
                    return
                seen.add(id(module))
            yield name, module
            for child_name, child in module._modules.items():
                if isinstance(child, Module):
                    yield from visit(f"{name}.{child_name}" if name else child_name, child)

        yield from visit(prefix, self)
        ### END SOLUTION

    def modules(self):
        """Every Module in the tree, this one first."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield (name, layer) for the direct children (activation layers included), each once."""
        seen = set()
        for name, child in self._modules.items():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        """The direct child modules, in registration order."""
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix="", recurse=True):
        """Yield (dotted name, parameter) for every parameter, each parameter once.

        TODO: for each (module_name, module) of `self.named_modules(prefix)` (or only this module
              when `recurse` is False), yield its own parameters under `module_name + "." + name`,
              skipping parameters already yielded.
        HINT: track `id(parameter)` in a set; a Tensor's `==` compares values, not identity.
        """
        ### BEGIN SOLUTION
        seen = set()
        walk = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in walk:
            for name, parameter in module._parameters.items():
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield (f"{module_name}.{name}" if module_name else name), parameter
        ### END SOLUTION

    def parameters(self, recurse=True):
        """Every parameter of the model, each once, in registration order (for the optimizer)."""
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix=""):
        """Yield (dotted name, buffer) for every buffer that holds a tensor."""
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self):
        for _, buffer in self.named_buffers():
            yield buffer

    # ---- modes and gradients --------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on this module and every descendant; returns self.

        TODO: set `training = mode` on every module of the tree.
        HINT: `self.modules()` walks the tree.
        """
        ### BEGIN SOLUTION
        for module in self.modules():
            module.training = bool(mode)
        return self
        ### END SOLUTION

    def eval(self):
        """Evaluation mode (Dropout becomes the identity); same as train(False)."""
        return self.train(False)

    def zero_grad(self):
        """Forget the gradients of every parameter (set them to None, as PyTorch does by default)."""
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, dtype):
        """Convert floating-point parameters and buffers to `dtype` in place; returns self."""
        for tensor in list(self.parameters()) + list(self.buffers()):
            if tensor.data.dtype.kind == "f":
                tensor.data = tensor.data.astype(dtype, copy=False)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ---- saving and loading ---------------------------------------------------------------------
    def _state_tensors(self):
        """{dotted name: tensor} of every parameter and buffer, shared ones under each name."""
        tensors = {}
        for module_name, module in self.named_modules(remove_duplicate=False):
            prefix = f"{module_name}." if module_name else ""
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        tensors[prefix + name] = tensor
        return tensors

    def state_dict(self):
        """{dotted name: NumPy copy} of every parameter and buffer: what a checkpoint stores.

        TODO: copy the array of every tensor from `self._state_tensors()`.
        HINT: a copy, so that training on after saving does not change the saved values.
        """
        ### BEGIN SOLUTION
        return {name: tensor.data.copy() for name, tensor in self._state_tensors().items()}
        ### END SOLUTION

    def check_state_dict(self, state_dict, strict=True):
        """Check that `state_dict` fits this model, changing nothing: returns (arrays, result).

        `arrays` maps each name to load to its array; `result` is (missing_keys, unexpected_keys).
        Every key, shape and dtype is checked, and a checkpoint that does not fit raises one
        RuntimeError listing every problem. `load_state_dict` calls it before it copies anything;
        a caller that loads several objects (model, optimizer, scheduler) checks them all first.

        TODO: compare the keys of `state_dict` with `self._state_tensors()`: collect the missing
              keys, the unexpected keys, the shape mismatches and the dtypes that cannot be cast to
              the model's (complex or text into a float tensor). Raise one RuntimeError that lists
              them all (missing and unexpected only when `strict`), else return the arrays to load
              and LoadResult(missing, unexpected).
        HINT: values may be NumPy arrays or Tensors: `np.asarray(value)` handles both;
              `np.can_cast(array.dtype, tensor.dtype, "same_kind")` is the rule `np.copyto` follows.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"load_state_dict: expects a dict {{name: array}}, as state_dict() returns, got {type(state_dict).__name__}"
            )
        own = self._state_tensors()
        ### BEGIN SOLUTION
        arrays = {name: np.asarray(value) for name, value in state_dict.items()}
        missing = [name for name in own if name not in arrays]
        unexpected = [name for name in arrays if name not in own]
        shared = [name for name in own if name in arrays]
        mismatched = [
            f"{name} has shape {arrays[name].shape} in the checkpoint but {own[name].shape} in the model"
            for name in shared
            if arrays[name].shape != own[name].shape
        ]
        uncastable = [
            f"{name} is {arrays[name].dtype} in the checkpoint, which cannot be stored in the model's {own[name].dtype}"
            for name in shared
            if not np.can_cast(arrays[name].dtype, own[name].dtype, "same_kind")
        ]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if uncastable:
            problems.append("dtype mismatches: " + "; ".join(uncastable))
        if problems:
            raise RuntimeError(
                f"load_state_dict: the checkpoint does not fit this {type(self).__name__}; nothing was loaded.\n  "
                + "\n  ".join(problems)
                + "\nMissing or unexpected keys mean the model and the checkpoint have different layers or "
                "names; pass strict=False to load only the keys they share."
            )
        return {name: arrays[name] for name in shared}, LoadResult(missing, unexpected)
        ### END SOLUTION

    def load_state_dict(self, state_dict, strict=True):
        """Copy the arrays of `state_dict` into this model's parameters and buffers, in place.

        Everything is checked first (`check_state_dict`): a refused checkpoint leaves the model as
        it was. Returns (missing_keys, unexpected_keys) like PyTorch.

        TODO: copy each checked array into its tensor, in place, so that an optimizer holding the
              parameters keeps seeing them.
        HINT: `tensor.copy_(array)` writes into the existing array and counts the change in
              `tensor.version` (a graph recorded before the load is then refused, not silently
              wrong); parameters require grad, so copy under `set_grad_enabled(False)`, as
              PyTorch's load_state_dict copies under no_grad.
        """
        arrays, result = self.check_state_dict(state_dict, strict)
        own = self._state_tensors()
        ### BEGIN SOLUTION
        with set_grad_enabled(False):
            for name, array in arrays.items():
                own[name].copy_(array)
        ### END SOLUTION
        return result

    # ---- calling and printing -------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no forward(): define `def forward(self, x):` in your Module subclass"
        )

    def __call__(self, *args, **kwargs):
        """Run `forward`, and the global forward hooks around it when any are registered."""
        if not (_forward_pre_hooks or _forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in tuple(_forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(_forward_hooks.values()):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        return output

    def extra_repr(self):
        """The text between the parentheses of this module's repr (e.g. a layer's sizes)."""
        return ""

    def __repr__(self):
        lines = self.extra_repr().splitlines()
        for name, child in self._modules.items():
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

# %% [markdown]
# ### Test: registration and names
#
# A small model with a parameter of its own and a child layer. Registration order is assignment
# order; names are dotted paths; a tied parameter appears once.

# %%
class _Scale(Module):
    def __init__(self, size):
        super().__init__()
        self.scale = Parameter(np.ones(size))
        self.note = "not a parameter"

    def forward(self, x):
        return x * self.scale


class _Pair(Module):
    def __init__(self):
        super().__init__()
        self.first = _Scale(3)
        self.offset = Parameter(np.zeros(3))
        self.second = _Scale(3)


def test_unit_module_registration():
    model = _Pair()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["offset", "first.scale", "second.scale"], names
    assert [name for name, _ in model.named_modules()] == ["", "first", "second"]
    assert list(model.children()) == [model.first, model.second]
    assert len(list(model.parameters())) == 3
    model.second.scale = model.first.scale  # tie the two parameters
    assert len(list(model.parameters())) == 2, "a shared parameter is listed once"
    del model.offset
    assert [name for name, _ in model.named_parameters()] == ["first.scale"]
    ### BEGIN HIDDEN TESTS
    model.first = None
    assert [name for name, _ in model.named_modules()] == ["", "second"]
    try:
        model.second.scale = Tensor([1.0, 2.0, 3.0])
        raise AssertionError("a plain Tensor must not silently replace a Parameter")
    except TypeError as error:
        assert "Parameter" in str(error)
    ### END HIDDEN TESTS
    print("registration: ok")


test_unit_module_registration()

# %% [markdown]
# ### Test: modes, gradients and state

# %%
def test_unit_module_modes_and_state():
    model = _Pair()
    assert model.training and model.first.training
    assert model.eval() is model and not model.first.training and not model.second.training
    model.train()
    assert model.second.training
    model.first.scale.grad = np.ones(3)
    model.zero_grad()
    assert model.first.scale.grad is None

    state = model.state_dict()
    assert list(state) == ["offset", "first.scale", "second.scale"]
    state["offset"][:] = 5.0
    assert model.offset.numpy().sum() == 0.0, "state_dict returns copies"
    fresh = _Pair()
    fresh.load_state_dict(state)
    assert fresh.offset.numpy().tolist() == [5.0, 5.0, 5.0]
    try:
        fresh.load_state_dict({"offset": np.zeros(4), "extra": np.zeros(1)})
        raise AssertionError("a checkpoint that does not fit must be refused")
    except RuntimeError as error:
        message = str(error)
        assert "first.scale" in message and "extra" in message and "(4,)" in message
    assert fresh.offset.numpy().tolist() == [5.0, 5.0, 5.0], "a refused checkpoint changes nothing"
    complex_last = {"offset": np.zeros(3), "first.scale": np.zeros(3), "second.scale": np.zeros(3, np.complex128)}
    try:
        fresh.load_state_dict(complex_last)
        raise AssertionError("complex numbers cannot go into a float tensor")
    except RuntimeError as error:
        assert "second.scale is complex128" in str(error)
    assert fresh.offset.numpy().tolist() == [5.0, 5.0, 5.0], "checked before anything is copied"
    print("modes and state: ok")


test_unit_module_modes_and_state()

# %% [markdown]
# ## Step 3: Linear
#
# `Linear(in_features, out_features)` holds `weight` of shape `(out_features, in_features)` and
# `bias` of shape `(out_features,)`, both drawn from $U(-1/\sqrt{d_{in}}, 1/\sqrt{d_{in}})$ with
# module 01's seeded generator (`rand`), so `manual_seed` makes a model reproducible.
#
# The forward pass is `x @ weight.T + bias`, written with Tensor operations so that module 05 can
# differentiate it. Two details:
#
# - `weight.T` is a view, not a copy: NumPy hands the transposed layout to the matrix kernel,
#   which reads it as fast as the original.
# - `@` broadcasts over leading dimensions, so the same layer maps `(N, d_in)`, a sequence batch
#   `(N, T, d_in)`, or a single vector `(d_in,)`.
#
# A wrong input width is the most common error in building networks; the message must name the
# layer, its expected width and the shape it got.

# %%
#| export
def uniform_(tensor, a=0.0, b=1.0):
    """Fill `tensor` in place with U(a, b) samples from module 01's seeded generator; returns it.

    As `torch.nn.init.uniform_` (also `tinytorch.nn.init.uniform_`); every layer initialises
    its weights through it or `normal_`.
    """
    data = rand(*tensor.shape, dtype=tensor.dtype).data
    data *= b - a
    data += a
    tensor.data[...] = data
    return tensor.mark_modified()


def normal_(tensor, mean=0.0, std=1.0):
    """Fill `tensor` in place with N(mean, std^2) samples from module 01's seeded generator; returns it."""
    data = randn(*tensor.shape, dtype=tensor.dtype).data
    data *= std
    data += mean
    tensor.data[...] = data
    return tensor.mark_modified()


class Linear(Module):
    """y = x @ W.T + b, with W of shape (out_features, in_features) as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, dtype=DEFAULT_FLOAT):
        """Create the weight and (optionally) the bias with PyTorch's default initialisation.

        TODO: set `self.weight` to a Parameter of shape (out_features, in_features) and `self.bias`
              to a Parameter of shape (out_features,) (or None when bias is False), both from
              U(-bound, bound) with bound = 1 / sqrt(in_features).
        HINT: `uniform_(Parameter(np.zeros(shape, dtype), dtype=dtype), -bound, bound)` makes one.
        """
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        ### BEGIN SOLUTION
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = uniform_(Parameter(np.zeros((self.out_features, self.in_features), dtype), dtype=dtype), -bound, bound)
        self.bias = uniform_(Parameter(np.zeros(self.out_features, dtype), dtype=dtype), -bound, bound) if bias else None
        ### END SOLUTION

    def forward(self, x):
        """Apply the layer to `x` of shape (..., in_features); returns (..., out_features).

        TODO: check the last dimension of x, then compute x @ W.T (+ b) with Tensor operations.
        HINT: `self.weight.T` is the transpose; a 0-d input has no last dimension.
        """
        x = as_tensor(x)
        fused = backend_kernel("linear")
        if fused is not None and x.ndim and x.shape[-1] == self.in_features:  # module 18: one op, not three
            inputs = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
            out = fused(x.data, self.weight.data, None if self.bias is None else self.bias.data)
            return Tensor.from_op(out, "linear", inputs, backward=backend_kernel("linear_backward"))
        ### BEGIN SOLUTION
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r} expected input with last dimension {self.in_features}, got shape {x.shape}; "
                "check the out_features of the layer before it, or flatten the input first"
            )
        out = x @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return out
        ### END SOLUTION

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


Dense = Linear  # the name the course's older material uses

# %% [markdown]
# ### Test: Linear

# %%
def test_unit_linear():
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    layer = Linear(4, 3)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(4)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    assert np.allclose(layer(Tensor(x)).numpy(), expected, atol=1e-6)
    assert layer(Tensor(np.zeros((5, 7, 4)))).shape == (5, 7, 3), "leading dimensions are kept"
    assert Linear(4, 3, bias=False).bias is None
    try:
        layer(Tensor(np.zeros((2, 5))))
        raise AssertionError("a width-5 input must be refused by Linear(4, 3)")
    except ValueError as error:
        assert "in_features=4" in str(error) and "(2, 5)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert Dense is Linear
    assert repr(layer) == "Linear(in_features=4, out_features=3, bias=True)"
    assert [name for name, _ in Linear(2, 2, bias=False).named_parameters()] == ["weight"]
    ### END HIDDEN TESTS
    print("Linear: ok")


test_unit_linear()

# %% [markdown]
# ## Step 4: containers — ModuleList and Sequential
#
# A network of ten layers should not need ten attribute names. A **ModuleList** holds modules
# in order and registers them as children named `"0"`, `"1"`, ... (so their parameters are
# `"0.weight"`, `"1.weight"`: exactly PyTorch's names). You loop over it in your own `forward`.
#
# A **Sequential** is a ModuleList whose `forward` feeds each module's output to the next — the
# common case of a plain stack of layers. Both are indexable, sliceable, and have a length.
#
# The registration itself is already done: `add_module(str(i), module)` goes through the
# `__setattr__` you wrote. Sequential also accepts a dict `{"fc1": Linear(...), ...}` to give
# the layers names of your choice.

# %%
#| export
class ModuleList(Module):
    """An ordered list of modules, registered as children "0", "1", ... (no forward of its own)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        """Add `module` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def _position(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for {len(self)} modules")
        return index % len(self)

    def __getitem__(self, index):
        """The module at `index`, or a new container of the same modules for a slice.

        TODO: return the module at position `index` (negative counts from the end); for a slice,
              a new ModuleList of the selected modules (shared, not copied).
        HINT: `list(self._modules.values())` is the modules in order; `self._position(index)`
              checks the range.
        """
        ### BEGIN SOLUTION
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[self._position(index)]
        ### END SOLUTION

    def __setitem__(self, index, module):
        self.add_module(list(self._modules)[self._position(index)], module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "ModuleList is a container, not a layer: it has no forward(). Loop over it in your "
            "model's forward, or use Sequential to chain the modules"
        )


class Sequential(ModuleList):
    """Modules applied one after another: Sequential(a, b, c)(x) == c(b(a(x)))."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            named = modules[0]
        else:
            named = {str(i): module for i, module in enumerate(modules)}
        for name, module in named.items():
            self.add_module(name, module)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*list(self._modules.values())[index])
        return super().__getitem__(index)

    def forward(self, x):
        """Feed `x` through every module in order.

        TODO: apply each module to the output of the previous one.
        HINT: iterating over `self` yields the modules in order.
        """
        ### BEGIN SOLUTION
        for module in self:
            x = module(x)
        return x
        ### END SOLUTION

# %% [markdown]
# ### Test: containers

# %%
def test_unit_containers():
    model = Sequential(Linear(4, 8), Linear(8, 2))
    assert len(model) == 2 and isinstance(model[0], Linear) and model[-1] is model[1]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert model(Tensor(np.ones((3, 4)))).shape == (3, 2)
    assert isinstance(model[:1], Sequential) and len(model[:1]) == 1
    expected = model[1](model[0](Tensor(np.ones((1, 4))))).numpy()
    assert np.allclose(model(Tensor(np.ones((1, 4)))).numpy(), expected)

    class Tower(Module):
        def __init__(self):
            super().__init__()
            self.blocks = [Linear(2, 2), Linear(2, 2)]  # a plain list is registered too

    tower = Tower()
    assert isinstance(tower.blocks, ModuleList)
    assert [name for name, _ in tower.named_parameters()][:2] == ["blocks.0.weight", "blocks.0.bias"]
    ### BEGIN HIDDEN TESTS
    named = Sequential({"fc1": Linear(2, 3), "fc2": Linear(3, 1)})
    assert list(named.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    try:
        model[2]
        raise AssertionError("index 2 of 2 modules must fail")
    except IndexError as error:
        assert "2" in str(error)
    ### END HIDDEN TESTS
    print("containers: ok")


test_unit_containers()

# %% [markdown]
# ## Step 5: Flatten, Dropout and Identity
#
# **Flatten** turns `(N, C, H, W)` images into `(N, C*H*W)` rows for a Linear layer, keeping the
# batch dimension (`start_dim=1`). It is a reshape, so it costs nothing for contiguous input.
#
# **Dropout** builds a random mask with module 01's generator — each element kept with
# probability $1 - p$ — scales it by $1/(1-p)$ once, and multiplies: `x * mask` is a Tensor
# operation, so gradients flow through the kept elements only (module 05 gives `mul` its rule).
# Scaling the mask instead of the result saves one pass over the data. In evaluation mode, or
# with `p = 0`, Dropout returns its input untouched; with `p = 1` everything is dropped.
#
# **Identity** returns its input: a placeholder when a configuration switches a layer off.

# %%
#| export
class Flatten(Module):
    """Flatten dimensions start_dim..end_dim into one (default: everything but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x):
        if not (-x.ndim <= self.start_dim < x.ndim and -x.ndim <= self.end_dim < x.ndim):
            raise ValueError(
                f"{self!r} cannot flatten an input of shape {x.shape}: it has only {x.ndim} dimension(s); "
                "Flatten keeps dimension 0 as the batch, so it needs at least 2"
            )
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout: zero elements with probability p in training, scale the rest by 1/(1-p)."""

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p is the probability of zeroing an element and must be in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x):
        """Apply dropout in training mode; the identity in evaluation mode.

        TODO: when training and p > 0, multiply x by a mask that is 0 with probability p and
              1 / (1 - p) elsewhere (all zeros when p == 1).
        HINT: `rand(*x.shape, dtype=x.dtype).data >= self.p` is True with probability 1 - p.
              Multiply with `x * Tensor(mask)` so the operation is recorded for gradients.
        """
        if not self.training or self.p == 0.0:
            return x
        ### BEGIN SOLUTION
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            mask = (rand(*x.shape, dtype=x.dtype).data >= self.p).astype(x.dtype)
            mask *= 1.0 / (1.0 - self.p)
        return x * Tensor(mask, dtype=x.dtype)
        ### END SOLUTION

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """Returns its input unchanged."""

    def forward(self, x):
        return x

# %% [markdown]
# ### Test: Flatten, Dropout, Identity

# %%
def test_unit_flatten_dropout_identity():
    from tinytorch.core.tensor import manual_seed

    images = Tensor(np.zeros((2, 3, 4, 5)))
    assert Flatten()(images).shape == (2, 60) and Flatten(0)(images).shape == (120,)
    assert Flatten(1, 2)(images).shape == (2, 12, 5)

    manual_seed(0)
    x = Tensor(np.ones((200, 100)))
    dropout = Dropout(0.25)
    y = dropout(x).numpy()
    assert np.allclose(np.unique(y), [0.0, 1 / 0.75]), "survivors are scaled by 1/(1-p)"
    assert abs((y == 0).mean() - 0.25) < 0.02, "about a quarter is dropped"
    assert abs(y.mean() - 1.0) < 0.03, "the mean is preserved"
    dropout.eval()
    assert dropout(x) is x, "evaluation mode is the identity"
    assert Identity()(x) is x
    try:
        Dropout(1.5)
        raise AssertionError("p = 1.5 must be refused")
    except ValueError as error:
        assert "[0, 1]" in str(error)
    ### BEGIN HIDDEN TESTS
    assert np.all(Dropout(1.0)(x).numpy() == 0)
    assert Dropout(0.0)(x) is x
    try:
        Flatten()(Tensor(np.zeros(3)))
        raise AssertionError("Flatten(start_dim=1) of a 1-D input must fail")
    except ValueError as error:
        assert "(3,)" in str(error)
    ### END HIDDEN TESTS
    print("Flatten, Dropout, Identity: ok")


test_unit_flatten_dropout_identity()

# %% [markdown]
# ## Step 6: the activation layers become Modules
#
# Module 02's `ReLU()`, `Sigmoid()`, `Tanh()`, `GELU()`, `Softmax()` and `LogSoftmax()` came
# before `Module` existed, so they are plain callable objects. In PyTorch they are `nn.Module`s:
# they answer `train()`, `eval()`, `state_dict()`, `named_modules()` like any layer. Here they
# gain that without a line of their logic written twice: each class below *is* module 02's
# class (same `forward`, same repr) and a `Module`. Python's method resolution order looks in
# module 02's class first, then in `Module`; module 02's `__init__`s call `super().__init__()`,
# which, in these classes, runs `Module.__init__`. `tinytorch.nn.ReLU` is this one. Their common
# base, `ActivationModule`, picks `Module.__call__` over module 02's plain `__call__`, so that
# calling the layer runs the forward hooks of Step 2 like any other Module's.

# %%
#| export
class ActivationModule(activations.Activation, Module):
    """What the Module forms of module 02's activations share: Module's `__call__` (hooks and all)."""

    __call__ = Module.__call__


class ReLU(activations.ReLU, ActivationModule):
    """max(x, 0) as a Module (module 02's ReLU, with Module's train/eval/state_dict)."""


class Sigmoid(activations.Sigmoid, ActivationModule):
    """1 / (1 + exp(-x)) as a Module."""


class Tanh(activations.Tanh, ActivationModule):
    """tanh(x) as a Module."""


class GELU(activations.GELU, ActivationModule):
    """x * Phi(x) as a Module; approximate="none" (exact, via erf) or "tanh"."""


class Softmax(activations.Softmax, ActivationModule):
    """Probabilities along `dim` as a Module."""


class LogSoftmax(activations.LogSoftmax, ActivationModule):
    """Log-probabilities along `dim` as a Module."""

# %%
def test_unit_activation_modules():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2), LogSoftmax(dim=-1))
    assert isinstance(model[1], Module) and isinstance(model[1], activations.ReLU)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1", "2", "3"]
    assert model.eval() is model and not model[1].training, "eval() reaches the activation too"
    assert repr(GELU(approximate="tanh")) == "GELU(approximate='tanh')" and repr(Softmax(dim=0)) == "Softmax(dim=0)"
    assert GELU().state_dict() == {} and list(Tanh().parameters()) == []
    x = Tensor([[-1.0, 0.0, 2.0]])
    assert ReLU()(x).tolist() == [[0.0, 0.0, 2.0]]
    print("activation modules: ok")


test_unit_activation_modules()

# %% [markdown]
# ## Systems analysis: what does a layer cost?
#
# Three measurements on the MNIST network of the course, an MLP 784-256-128-10:
#
# 1. **Parameters and bytes**, counted from the model itself. (ReLU, module 02, has no
#    parameters, so the three Linear layers are the whole bill.)
# 2. **FLOPs** of a Linear forward pass, $2 N d_{in} d_{out}$.
# 3. **Milliseconds** of a Linear(784, 256) forward at batch 128, against the bare NumPy
#    expression `x @ W.T + b`: the difference is what our Module and Tensor wrappers cost.

# %%
def count_parameters(model):
    """Number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters())


def parameter_bytes(model):
    """Bytes of parameter storage."""
    return sum(p.nbytes for p in model.parameters())


def linear_forward_flops(batch, in_features, out_features):
    """Floating-point operations of x @ W.T for x of shape (batch, in_features)."""
    return 2 * batch * in_features * out_features


def measure_linear_forward_ms(batch=128, in_features=784, out_features=256, repeats=50):
    """Median milliseconds of a Linear forward pass and of the same computation in bare NumPy.

    The two run alternately, so that a busy machine slows both alike.
    """
    import time

    layer = Linear(in_features, out_features)
    x = Tensor(np.random.default_rng(0).standard_normal((batch, in_features), dtype=np.float32))
    weight, bias, array = layer.weight.numpy(), layer.bias.numpy(), x.numpy()
    runs = {"Linear forward": lambda: layer(x), "bare NumPy": lambda: array @ weight.T + bias}
    samples = {name: [] for name in runs}
    for _ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: sorted(times[1:])[len(times) // 2] for name, times in samples.items()}  # first run: warm-up


if __name__ == "__main__":

    mlp = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    print(mlp)
    for name, parameter in mlp.named_parameters():
        print(f"{name:>9}: shape {str(parameter.shape):>11}  {parameter.numel():>7} numbers")
    print(f"MLP 784-256-128-10: {count_parameters(mlp):,} parameters, "
          f"{parameter_bytes(mlp):,} bytes ({parameter_bytes(mlp) / 2**20:.2f} MiB) in float32")
    flops = linear_forward_flops(128, 784, 256)
    print(f"Linear(784, 256) forward at batch 128: {flops / 1e6:.1f} MFLOP")
    for name, milliseconds in measure_linear_forward_ms().items():
        print(f"{name:>15}: {milliseconds:.3f} ms  ({flops / milliseconds / 1e6:.1f} GFLOP/s)")

# %% [markdown]
# The MLP holds 235,146 parameters: 940,584 bytes (0.90 MiB) in float32, and 85% of them sit in
# the first layer, whose input is the 784 pixels. The Linear(784, 256) forward pass at batch
# 128 is 51.4 MFLOP. On the shared 2-core machine this module was written on (other jobs
# running, BLAS on one thread: `OPENBLAS_NUM_THREADS=1 python modules/03_layers/layers.py`),
# it took 5 to 9 ms, and our Module and Tensor wrappers added 3 to 5% to the bare NumPy
# expression. A quiet 2-core machine reaches about 155 GFLOP/s in float32 matrix products,
# which would make it a third of a millisecond: compare your figure with that. Either way, the
# matrix product dominates, not our Python.
#
# Two consequences. Memory for *parameters* is small; training needs more for gradients
# (the same size again), optimizer state (module 06: Adam doubles it again) and activations
# (proportional to the batch). And the first layer, with the widest input, is where the time
# and the parameters go: shrinking the input (pooling, convolutions, module 09) pays most.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# `torch.nn.Module` works the way yours does: `__setattr__` sorts values into `_parameters`,
# `_buffers` and `_modules`, and `state_dict()` walks the tree with dotted names — which is why
# a PyTorch checkpoint of the same architecture loads into your model. Differences worth knowing:
#
# - PyTorch keeps registered values *only* in those dictionaries and finds them with
#   `__getattr__`; we also store them as plain attributes, which keeps lookups fast and simple.
# - PyTorch's `__call__` also runs *hooks* (functions called before and after `forward`), used by
#   profilers, quantization observers and gradient checkpointing: per module
#   (`register_forward_hook`) and global (`register_module_forward_hook`). Ours has the global
#   kind only, which is what module 14 (Profiling) needs to attribute time to layers.
# - `nn.Linear` calls one fused kernel (`addmm`: the bias added inside the matrix product);
#   ours is a matmul then an add, two primitives whose gradients module 05 already knows.
# - PyTorch ignores plain lists of layers; we register them (see Step 2).
# - `load_state_dict` in PyTorch also reports all problems at once; it copies under `no_grad`,
#   in place, exactly as here.

# %% [markdown]
# ## Integration test: a model from parts, saved and restored

# %%
def test_integration_model_round_trip():
    from tinytorch.core.tensor import manual_seed

    class Classifier(Module):
        def __init__(self):
            super().__init__()
            self.flatten = Flatten()
            self.hidden = [Linear(12, 16), ReLU(), Linear(16, 8), ReLU()]
            self.dropout = Dropout(0.5)
            self.head = Linear(8, 3)

        def forward(self, x):
            x = self.flatten(x)
            for layer in self.hidden:
                x = layer(x)
            return self.head(self.dropout(x))

    manual_seed(3)
    model = Classifier().eval()
    images = Tensor(np.random.default_rng(1).standard_normal((4, 3, 2, 2)))
    before = model(images).numpy()
    assert before.shape == (4, 3)
    assert count_parameters(model) == 12 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3

    manual_seed(4)
    restored = Classifier().eval()
    assert not np.allclose(restored(images).numpy(), before), "a different seed gives a different model"
    restored.load_state_dict(model.state_dict())
    assert np.array_equal(restored(images).numpy(), before), "the restored model computes the same"
    assert "(hidden): ModuleList(" in repr(model) and "(1): ReLU()" in repr(model)
    assert [name for name, _ in model.named_parameters()][:3] == ["hidden.0.weight", "hidden.0.bias", "hidden.2.weight"]
    print("integration: ok")


test_integration_model_round_trip()

# %% [markdown]
# ## ML systems thinking
#
# 1. GPT-2 small has 124 million parameters. How many bytes do its float32 parameters take?
#    Training with Adam keeps the parameters, their gradients and two moment estimates: how
#    much memory before a single activation is stored?
# 2. Our `Linear` computes `x @ W.T` on a transposed *view* of `W`. Why store `W` as
#    `(out, in)` and not `(in, out)`, which would avoid the transpose? (Think of checkpoints and
#    of which dimension a matrix kernel reads contiguously.)
# 3. Dropout draws a random mask the size of the activations at every training step. What does
#    that cost in memory for a batch of 128 at width 4096, and why must the mask be kept until
#    the backward pass?
# 4. `load_state_dict` checks every key before copying any. What could go wrong in a training
#    job that resumes from a checkpoint if it copied as it checked?
#
# ## Summary
#
# You built `Module`: assignments register parameters and children, so a model can list its
# parameters with PyTorch's dotted names, switch between training and evaluation, and save and
# restore itself — refusing, with every reason at once, a checkpoint that does not fit. On it you
# built `Linear` with PyTorch's layout and initialisation (bound $1/\sqrt{d_{in}}$, derived above),
# the containers `ModuleList` and `Sequential`, and `Flatten`, `Dropout`, `Identity`. You measured
# that an MLP for MNIST holds under a megabyte of parameters and that its matrix products, not
# our Python wrappers, take the time. Next, module 04 measures how wrong a model's predictions
# are, and module 05 computes the gradients that module 06's optimizers turn into better weights.
