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
# # Module 01: Tensor
#
# *Can I create and manipulate the building blocks of ML?*
#
# Every number a neural network touches — an image, a weight matrix, a gradient, a batch of
# token ids — lives in a **tensor**: an n-dimensional array with a shape and a dtype. In this
# module you build `Tensor`, the class every later module stands on.
#
# ## Learning objectives
# - Wrap a NumPy array in a `Tensor` with PyTorch's API: `shape`, `ndim`, `dtype`, `size()`, `numel()`.
# - Implement elementwise arithmetic with **broadcasting**, and say precisely when it fails.
# - Implement `matmul` / `@`, reductions (`sum`, `mean`, `max` with `dim` and `keepdim`),
#   and the movement ops (`reshape`, `transpose`, `permute`, indexing).
# - Measure what a tensor costs: bytes per element, and a **copy** against a **view**.
# - See the seam that module 05 (Autograd) will use to add gradients — without changing this file.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 01
# ```
#
# exports your code to `tinytorch/core/tensor.py` and grades it with `tests/modules/test_01_tensor.py`.

# %% [markdown]
# ## Mathematical foundations
#
# A tensor of shape $(d_1, \dots, d_n)$ holds $\prod_i d_i$ numbers. Stored **row-major**
# (C order), element $(i_1, \dots, i_n)$ sits at offset $\sum_k i_k s_k$, where the *strides*
# are $s_n = 1$ and $s_k = s_{k+1} d_{k+1}$. Changing the strides without moving data is how
# `transpose`, slicing and `reshape` can be free: they make a **view**.
#
# **Broadcasting** lets `x + b` work when `x` is $(N, D)$ and `b` is $(D,)$. Compare shapes
# from the right; each pair of sizes must be equal or one of them 1 (a missing dimension counts
# as 1). The result takes the larger size in each position:
#
# | a | b | a + b |
# |---|---|---|
# | (3, 4) | (4,) | (3, 4) |
# | (3, 1) | (1, 4) | (3, 4) |
# | (3, 4) | (3,) | error: 4 vs 3 |
#
# **Matrix multiplication** of $A \in \mathbb{R}^{m\times k}$ and $B \in \mathbb{R}^{k \times n}$:
# $C_{ij} = \sum_{p} A_{ip} B_{pj}$, costing $2mkn$ floating-point operations (one multiply and
# one add per term). Leading dimensions broadcast, so a batch of matrices multiplies in one call.

# %%
#| export
import builtins
import math
from collections import namedtuple

import numpy as np

DEFAULT_FLOAT = np.float32  # the dtype of floating-point data unless you ask for another

# %% [markdown]
# ## The autograd seam
#
# Module 05 will make every operation here differentiable. It will **not** edit this file or
# replace any method of `Tensor` at run time. Instead, this module already does two things:
#
# 1. Every operation builds its result with `Tensor.from_op(data, op, inputs, **saved)`. When an
#    input has `requires_grad=True`, the result remembers the op's name, its inputs, and anything
#    the backward pass will need (`saved`). That is the computation graph — just data.
# 2. `Tensor.backward()` hands the graph to an *engine*, and the engine looks up a *backward rule*
#    for each op name. Both start empty. Module 05 registers them through the two functions below.
#
# Because every operation passes through `from_op`, it is also the one place where a tool can
# *watch* operations. `set_op_observer(observer)` installs a function that `from_op` calls with
# `(op, inputs, output, saved)` for every result it builds, whether gradients are on or off
# (under `no_grad` too). Module 14's profiler counts FLOPs and bytes and times each op through it,
# from the op's name and arguments, never by guessing from class names. With no observer
# installed it costs one `is None` check per operation.
#
# The third seam is for the **kernels**: the array code behind an operation. A few operations
# of later modules (Linear, softmax, exact GELU, layer norm, cross-entropy, the Adam update,
# max-pooling) ask `backend_kernel(name)` for a kernel before they take their own NumPy path.
# No kernel is registered until module 18 (Acceleration) registers its backends
# (`register_kernel(backend, name)`) and one is switched on with `set_backend(name)` (or
# `with use_backend(name): ...`); with none active, `backend_kernel` returns None and every
# operation runs the code its own module wrote. A new backend (a GPU one, say) plugs in here by
# registering kernels of the same names.
#
# This cell is given to you: read it, it is the contract between this module and modules 05, 14 and 18.

# %%
#| export
_BACKWARD_RULES = {}  # op name -> rule(grad_of_output, output) -> one gradient per input
_backward_engine = None  # engine(tensor, gradient): walks the graph; installed by module 05
_grad_enabled = True  # recording switch; module 05's no_grad() turns it off
_op_observer = None  # observer(op, inputs, output, saved), called by every from_op; module 14's profiler


def register_backward(op):
    """Decorator: register the backward rule for the op named `op` (used from module 05 on)."""

    def register(rule):
        _BACKWARD_RULES[op] = rule
        return rule

    return register


def backward_rule(op):
    """The registered backward rule of an op; a clear error when no module registered one."""
    if op not in _BACKWARD_RULES:
        raise NotImplementedError(
            f"no backward rule for op '{op}': gradients come from module 05 (Autograd), which "
            "registers one rule per op; import tinytorch.core.autograd first"
        )
    return _BACKWARD_RULES[op]


def set_backward_engine(engine):
    """Install the function that `Tensor.backward()` calls (module 05 does this)."""
    global _backward_engine
    _backward_engine = engine


def set_op_observer(observer):
    """Install `observer(op, inputs, output, saved)`, called by every `Tensor.from_op`; None removes it.

    Returns the observer installed before, so that a tool can put it back when it is done.
    """
    global _op_observer
    previous, _op_observer = _op_observer, observer
    return previous


def get_op_observer():
    """The installed op observer, or None. Code that computes on arrays instead of ops (module
    17's decode plan) checks it: a tool that watches the ops must see them."""
    return _op_observer


_KERNELS = {}  # backend name -> {kernel name -> function}; module 18 registers its backends here
_backend = None  # the active backend's name; None: every op runs its own module's NumPy code


def register_kernel(backend, name):
    """Decorator: register `function` as kernel `name` of `backend` (module 18 does this)."""

    def register(function):
        _KERNELS.setdefault(backend, {})[name] = function
        return function

    return register


def backend_kernel(name):
    """The active backend's kernel `name`, or None (no backend active, or it has no such kernel)."""
    if _backend is None:
        return None
    return _KERNELS[_backend].get(name)


def available_backends():
    """The names of the registered backends, sorted (empty until module 18 registers some)."""
    return sorted(_KERNELS)


def get_backend():
    """The name of the active backend, or None when every op runs its own NumPy code."""
    return _backend


def set_backend(name):
    """Make backend `name` active (None: none); returns the name active before."""
    global _backend
    if name is not None and name not in _KERNELS:
        known = ", ".join(sorted(_KERNELS)) or "none yet: import tinytorch.core.acceleration (module 18)"
        raise ValueError(f"set_backend: no backend named {name!r} is registered; registered: {known}")
    previous, _backend = _backend, name
    return previous


class use_backend:
    """`with use_backend("numba"): ...` runs the block with that backend and restores the previous one."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = set_backend(self.name)
        return self

    def __exit__(self, *exception):
        set_backend(self.previous)
        return False


def is_grad_enabled():
    """True when operations on tensors that require gradients record the graph."""
    return _grad_enabled


class set_grad_enabled:
    """Turn graph recording on or off, at once, as `torch.set_grad_enabled` does.

    As a call it is a switch: `set_grad_enabled(False)`. As a context manager the previous
    setting comes back at the end of the block: `with set_grad_enabled(False): ...`. Module 05
    builds `no_grad()` and `enable_grad()` on it.
    """

    def __init__(self, mode):
        global _grad_enabled
        self.previous, _grad_enabled = _grad_enabled, bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        global _grad_enabled
        _grad_enabled = self.previous
        return False

# %% [markdown]
# ## Step 1: the Tensor class
#
# A `Tensor` wraps one NumPy array in `self.data`. The constructor decides its dtype:
#
# - `dtype=` given: use it exactly (`float64` for gradient checks, `int8` for quantization).
# - otherwise `float64` data (Python floats, NumPy's default) becomes `float32`, the default of
#   deep learning (half the
#   memory of NumPy's `float64`, and what fast matrix kernels are tuned for). **This differs
#   from `torch.tensor(np_array)`**, which keeps `float64`; we convert because a learner's
#   `np.random.randn` would otherwise silently run the whole network in double precision.
# - every other dtype is kept: `float16` stays `float16`, `int8` stays `int8`, Python ints
#   become `int64`, booleans stay `bool`.
#
# Only floating-point tensors can require gradients: the derivative of a step function between
# integers is not useful, so asking for one is an error, as in PyTorch.
#
# Everything else in the class is given: properties, `repr`, and operators that call the
# functions you write in the next steps (`a + b` calls `add(a, b)`), so that each step is small.

# %%
#| export
class Tensor:
    """An n-dimensional array with PyTorch's API, stored in a NumPy array (`self.data`)."""

    __slots__ = ("data", "_grad", "requires_grad", "_version", "_op", "_inputs", "_saved", "_saved_versions",
                 "__weakref__")

    def __init__(self, data, dtype=None, requires_grad=False):
        """Wrap `data` (a list, scalar, NumPy array or Tensor) in a tensor.

        TODO: set `self.data` to a NumPy array following the dtype rules above.
        HINT: `np.asarray(data, dtype=dtype)` converts without copying when it can; only
              float64 changes (to float32) when no dtype is given. `array.dtype.kind` is 'f',
              'i', 'u' or 'b' for numeric data.
              Ragged lists and non-numeric data (strings, objects) raise a TypeError or
              ValueError that says what was wrong.
        """
        if isinstance(data, Tensor):
            data = data.data
        ### BEGIN SOLUTION
        try:
            array = np.asarray(data, dtype=dtype)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Tensor: cannot make an array from {type(data).__name__} data ({error}); "
                "pass a number, a (nested, rectangular) list of numbers, or a NumPy array"
            ) from None
        if array.dtype.kind not in "fiub":
            raise TypeError(
                f"Tensor: data of dtype {array.dtype} is not numeric; pass numbers "
                "(floats, ints or bools)"
            )
        if dtype is None and array.dtype == np.float64:
            array = array.astype(DEFAULT_FLOAT)
        self.data = array
        ### END SOLUTION
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only floating-point tensors can require gradients, got {self.data.dtype}; "
                "pass dtype=np.float32 (or float64)"
            )
        self.requires_grad = bool(requires_grad)
        self._grad = None
        self._version = 0
        self._op = None
        self._inputs = ()
        self._saved = None
        self._saved_versions = ()

    # ---- the seam (module 05 gives these their meaning) ---------------------------------
    @staticmethod
    def from_op(data, op, inputs, **saved):
        """The result of op `op` on `inputs`; records the graph when an input requires a gradient.

        An installed op observer (`set_op_observer`) sees every result, recorded or not.
        """
        out = Tensor.__new__(Tensor)
        if type(data) is not np.ndarray:  # NumPy ufuncs turn 0-d results into scalars
            data = np.asarray(data)
        out.data = data
        out._grad = None
        out.requires_grad = False
        out._version = 0
        out._op = None
        out._inputs = ()
        out._saved = None
        out._saved_versions = ()
        # Only floating-point results can carry gradients (x.long() is cut from the graph).
        if _grad_enabled and data.dtype.kind == "f" and any(t.requires_grad for t in inputs):
            out.requires_grad = True
            out._op = op
            out._inputs = tuple(inputs)
            out._saved = saved
            # The backward rule will read the inputs' data: remember which version it saw.
            out._saved_versions = tuple(t._version for t in out._inputs)
        if _op_observer is not None:
            _op_observer(op, inputs, out, saved)
        return out

    @property
    def grad(self):
        """The gradient that `backward()` accumulated here (a Tensor of this shape), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                array = np.asarray(value)
                value = Tensor(array, dtype=array.dtype)
            if value.shape != self.shape:
                raise ValueError(
                    f"grad: a gradient of shape {value.shape} cannot belong to a tensor of shape "
                    f"{self.shape}; a gradient has its tensor's shape"
                )
        self._grad = value

    @property
    def version(self):
        """How many times this tensor's data was changed in place (PyTorch's `_version`)."""
        return self._version

    def mark_modified(self):
        """Record that `self.data` was changed in place (optimizers call it after each update).

        Every in-place method calls it too. Module 05 compares the versions of the tensors a
        backward rule reads with those the forward pass saw, and refuses a stale graph.
        """
        self._version += 1
        return self

    @property
    def is_leaf(self):
        """True for tensors you created (not produced by a recorded operation)."""
        return self._op is None

    def backward(self, gradient=None, retain_graph=False):
        """Compute gradients of this tensor with respect to every leaf that requires one."""
        if _backward_engine is None:
            raise RuntimeError(
                "Tensor.backward() needs module 05 (Autograd), which installs the engine; "
                "complete it (`tito module complete 05`) and import tinytorch.core.autograd"
            )
        _backward_engine(self, gradient, retain_graph=retain_graph)

    def detach(self):
        """A tensor sharing this data but cut out of the graph (requires_grad=False)."""
        return Tensor.from_op(self.data, "detach", ())

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad in place (for leaves) and return self, as in PyTorch."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    # ---- properties ---------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def size(self, dim=None):
        """The shape, or the size of one dimension (PyTorch's `size()`; see `numel()` for the count)."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        """Number of elements."""
        return self.data.size

    @property
    def nbytes(self):
        """Bytes of element storage (the Python object around it costs extra)."""
        return self.data.nbytes

    def stride(self):
        """Elements to skip to move one step along each dimension."""
        return tuple(s // self.data.itemsize for s in self.data.strides)

    def is_contiguous(self):
        return bool(self.data.flags.c_contiguous)

    def numpy(self):
        """The underlying NumPy array (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extras = ""
        if self.data.dtype != DEFAULT_FLOAT:
            extras += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extras += ", requires_grad=True"
        return f"Tensor({body}{extras})"

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    # `axis` and `out` are NumPy's names: np.any(tensor) calls tensor.any(axis=None, out=None).
    def any(self, dim=None, keepdim=False, axis=None, out=None):
        """True where any element (along `dim`; None: of all) is nonzero, as a bool tensor."""
        dim = axis if dim is None else dim
        return Tensor(np.any(self.data, axis=_dims(dim, self.ndim), keepdims=keepdim, out=out))

    def all(self, dim=None, keepdim=False, axis=None, out=None):
        """True where every element (along `dim`; None: of all) is nonzero, as a bool tensor."""
        dim = axis if dim is None else dim
        return Tensor(np.all(self.data, axis=_dims(dim, self.ndim), keepdims=keepdim, out=out))

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__  # comparisons return tensors, so hash by identity

    # ---- operators: each calls the function you write in the steps below -----------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(other, self)

    def __neg__(self):
        return neg(self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        self._check_in_place("assign into")
        self.data[_index_array(index)] = value.data if isinstance(value, Tensor) else value
        self.mark_modified()

    # ---- in-place operations (the trailing underscore, as in PyTorch) ------------------------
    def _check_in_place(self, what):
        if self.requires_grad and _grad_enabled:
            raise RuntimeError(
                f"cannot {what} a tensor that requires grad: the graph would be wrong; "
                "do it under no_grad() or on a detached tensor"
            )

    def zero_(self):
        """Fill with zeros, in place (`w.grad.zero_()`); returns self."""
        return self.fill_(0)

    def fill_(self, value):
        """Fill with `value`, in place; returns self."""
        self._check_in_place("fill")
        self.data[...] = value
        return self.mark_modified()

    def copy_(self, source):
        """Copy `source`'s values (broadcast to this shape, cast to this dtype) in place; returns self."""
        self._check_in_place("copy into")
        np.copyto(self.data, source.data if isinstance(source, Tensor) else np.asarray(source), casting="unsafe")
        return self.mark_modified()

    def add_(self, other, alpha=1):
        """self += alpha * other, in place; returns self."""
        self._check_in_place("add into")
        other = other.data if isinstance(other, Tensor) else other
        self.data += other if alpha == 1 else alpha * np.asarray(other)
        return self.mark_modified()

    def mul_(self, other):
        """self *= other, in place; returns self."""
        self._check_in_place("multiply into")
        self.data *= other.data if isinstance(other, Tensor) else other
        return self.mark_modified()

    def __eq__(self, other):
        return _compare(np.equal, self, other)

    def __ne__(self, other):
        return _compare(np.not_equal, self, other)

    def __lt__(self, other):
        return _compare(np.less, self, other)

    def __le__(self, other):
        return _compare(np.less_equal, self, other)

    def __gt__(self, other):
        return _compare(np.greater, self, other)

    def __ge__(self, other):
        return _compare(np.greater_equal, self, other)

    # ---- methods mirroring the functions --------------------------------------------------
    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return where(self.data >= 0, self, -self)

    def norm(self):
        """The Euclidean (Frobenius) norm of all elements, as `torch.norm` with its defaults."""
        return sqrt((self * self).sum())

    def matmul(self, other):
        return matmul(self, other)

    def sum(self, dim=None, keepdim=False):
        return sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return amax(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return argmax(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=False):
        centred = self - self.mean(dim, keepdim=True)
        count = self.numel() // centred.mean(dim, keepdim=keepdim).numel()
        return (centred * centred).sum(dim, keepdim) / (count - 1 if unbiased else count)

    def reshape(self, *shape):
        return reshape(self, *shape)

    view = reshape  # NumPy views whenever the layout allows, so one method serves both

    def flatten(self, start_dim=0, end_dim=-1):
        shape = self.shape
        start, end = start_dim % builtins.max(self.ndim, 1), end_dim % builtins.max(self.ndim, 1)
        return reshape(self, shape[:start] + (-1,) + shape[end + 1 :])

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return reshape(self, self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return reshape(self, tuple(s for s in self.shape if s != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return reshape(self, self.shape[:dim] + self.shape[dim + 1 :])

    def transpose(self, dim0=-2, dim1=-1):
        return transpose(self, dim0, dim1)

    @property
    def T(self):
        # Every dimension reversed, which is always a valid order: no check to run (Linear calls it each step).
        dims = tuple(range(self.ndim - 1, -1, -1))
        return Tensor.from_op(self.data.T, "permute", (self,), dims=dims)

    def permute(self, *dims):
        return permute(self, *dims)

    def expand(self, *shape):
        return expand(self, *shape)

    def to(self, dtype):
        return cast(self, dtype)

    def float(self):
        return cast(self, np.float32)

    def double(self):
        return cast(self, np.float64)

    def long(self):
        return cast(self, np.int64)

    def clone(self):
        return cast(self, self.dtype)

# %% [markdown]
# ### Test: creation and dtype

# %%
def test_unit_creation():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.shape == (2, 2) and x.ndim == 2 and x.numel() == 4
    assert x.dtype == np.float32, "floats become float32 by default"
    assert Tensor(np.arange(3, dtype=np.int8)).dtype == np.int8, "int8 stays int8"
    assert Tensor(np.zeros(2), dtype=np.float64).dtype == np.float64, "an explicit dtype is kept"
    assert Tensor([1, 2, 3]).dtype == np.int64
    assert Tensor(3.5).shape == ()
    try:
        Tensor([[1, 2], [3]])
        raise AssertionError("a ragged list must be rejected")
    except ValueError as error:
        assert "ragged" in str(error) or "rectangular" in str(error)
    ### BEGIN HIDDEN TESTS
    assert Tensor(np.array([True, False])).dtype == np.bool_
    assert Tensor(Tensor([1.0, 2.0])).dtype == np.float32
    ### END HIDDEN TESTS
    print("creation: ok")


test_unit_creation()

# %% [markdown]
# ## Step 2: creating tensors
#
# PyTorch's factory functions accept a shape either as separate ints, `zeros(2, 3)`, or as one
# tuple, `zeros((2, 3))`. `randn` draws from one seeded generator so that `manual_seed(0)` makes
# a run reproducible.

# %%
#| export
_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed the generator behind randn/rand/randint, for reproducible runs."""
    global _generator
    _generator = np.random.default_rng(seed)


def _is_int(value):
    """True for Python and NumPy integers, but not for booleans (True is an int in Python)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _shape_of(shape):
    """Accept f(2, 3) and f((2, 3)) alike; every entry must be an integer (2.5 is refused)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:  # the common case, plain ints, in one cheap pass (bool is not `int` here)
        if type(s) is not int:
            break
    else:
        return tuple(shape)
    if not builtins.all(_is_int(s) for s in shape):
        raise ValueError(f"shape: every dimension must be an integer, got {tuple(shape)!r}")
    return tuple(int(s) for s in shape)


def _new_shape(shape):
    """The shape of a new tensor: integers, none of them negative."""
    shape = _shape_of(shape)
    if builtins.any(s < 0 for s in shape):
        raise ValueError(f"shape: a new tensor's dimensions cannot be negative, got {shape!r}")
    return shape


def check_positive_int(where, name, value):
    """`value` as an int when it is a positive integer, else a ValueError naming `where` and `name`.

    Every layer checks its sizes with it: `Linear(0, 3)` or `Linear(2.5, 3)` fails where it is
    written, with a message that says which argument is wrong.
    """
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def tensor(data, dtype=None, requires_grad=False):
    """PyTorch-style constructor: `tensor([1.0, 2.0])`."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def as_tensor(data, dtype=None):
    """`data` itself when it is already a Tensor (of `dtype`, if given), else a new Tensor of it.

    As `torch.as_tensor`: the function that every layer and loss calls on its inputs, so that
    they accept NumPy arrays and lists as well as Tensors.
    """
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype):
        return data
    return Tensor(data.data if isinstance(data, Tensor) else data, dtype=dtype)


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """A tensor of zeros."""
    ### BEGIN SOLUTION
    return Tensor(np.zeros(_new_shape(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """A tensor of ones."""
    ### BEGIN SOLUTION
    return Tensor(np.ones(_new_shape(shape), dtype=dtype), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def full(shape, fill_value, dtype=DEFAULT_FLOAT, requires_grad=False):
    """A tensor of the given shape filled with one value."""
    ### BEGIN SOLUTION
    return Tensor(np.full(_new_shape((shape,)), fill_value, dtype=dtype), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def zeros_like(other, dtype=None):
    return zeros(other.shape, dtype=dtype or other.dtype)


def ones_like(other, dtype=None):
    return ones(other.shape, dtype=dtype or other.dtype)


def arange(start, end=None, step=1, dtype=None):
    """Evenly spaced values in [start, end), like `range` (int64 for ints, else float32)."""
    ### BEGIN SOLUTION
    if end is None:
        start, end = 0, start
    return Tensor(np.arange(start, end, step), dtype=dtype)
    ### END SOLUTION


def randn(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """Samples from the standard normal distribution."""
    ### BEGIN SOLUTION
    data = _generator.standard_normal(_new_shape(shape)).astype(dtype)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def rand(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """Samples from the uniform distribution on [0, 1)."""
    data = _generator.random(_new_shape(shape)).astype(dtype)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def randint(low, high, shape, dtype=np.int64):
    """Random integers in [low, high)."""
    return Tensor(_generator.integers(low, high, size=_new_shape((shape,))), dtype=dtype)

# %% [markdown]
# ### Test: factories

# %%
def test_unit_factories():
    assert zeros(2, 3).shape == (2, 3) and zeros((2, 3)).shape == (2, 3)
    assert float(ones(4).numpy().sum()) == 4.0
    assert full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert arange(1.0, 2.0, 0.5).dtype == np.float32
    manual_seed(0)
    first = randn(3).numpy().copy()
    manual_seed(0)
    assert np.array_equal(first, randn(3).numpy()), "manual_seed must make randn reproducible"
    print("factories: ok")


test_unit_factories()

# %% [markdown]
# ## Step 3: elementwise arithmetic with broadcasting
#
# All five binary operations (`+ - * / **`) share one job: turn both operands into tensors,
# apply a NumPy function, and explain a broadcasting failure in words a learner can act on.
# That job lives in one helper, `_elementwise`.
#
# Two dtype details matter:
# - A Python number takes the tensor's dtype (`x * 0.5` stays float32, `int8 + 1` stays int8).
# - Dividing integers gives float32, not NumPy's float64 (PyTorch does the same).

# %%
#| export
def _operand(value, reference):
    """`value` as a Tensor; a Python number takes the dtype of `reference` (PyTorch's rule)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (bool, int, float)):
        dtype = np.result_type(reference.data.dtype, value)
        if dtype == np.float64 and reference.data.dtype != np.float64:
            dtype = DEFAULT_FLOAT  # int tensor * 0.5 -> float32
        return Tensor.from_op(np.asarray(value, dtype=dtype), "constant", ())
    return Tensor(value)


def _broadcast_error(op, a, b):
    return ValueError(
        f"{op}: shapes {a.shape} and {b.shape} do not broadcast. Compare them from the right: "
        "each pair of sizes must be equal or one of them 1. Reshape or unsqueeze one operand."
    )


def _elementwise(op, kernel, a, b):
    """Apply a binary NumPy kernel with broadcasting, recording the op for autograd."""
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    b = _operand(b, a)
    ### BEGIN SOLUTION
    try:
        data = kernel(a.data, b.data)
    except ValueError:
        raise _broadcast_error(op, a, b) from None
    if data.dtype == np.float64 and a.data.dtype != np.float64 and b.data.dtype != np.float64:
        data = data.astype(DEFAULT_FLOAT)  # int / int, int * 0.5: float32, not float64
    ### END SOLUTION
    return Tensor.from_op(data, op, (a, b))


def add(a, b):
    """a + b, elementwise with broadcasting."""
    return _elementwise("add", np.add, a, b)


def sub(a, b):
    """a - b, elementwise with broadcasting."""
    return _elementwise("sub", np.subtract, a, b)


def mul(a, b):
    """a * b, elementwise with broadcasting."""
    return _elementwise("mul", np.multiply, a, b)


def div(a, b):
    """a / b, elementwise with broadcasting (true division)."""
    return _elementwise("div", np.true_divide, a, b)


def pow(a, b):
    """a ** b, elementwise with broadcasting."""
    return _elementwise("pow", np.power, a, b)


def neg(a):
    """-a."""
    ### BEGIN SOLUTION
    return Tensor.from_op(np.negative(a.data), "neg", (a,))
    ### END SOLUTION


def _compare(kernel, a, b):
    """Comparisons give boolean tensors; they have no gradient."""
    b = _operand(b, a)
    try:
        return Tensor(kernel(a.data, b.data))
    except ValueError:
        raise _broadcast_error(kernel.__name__, a, b) from None

# %% [markdown]
# ### Test: arithmetic and broadcasting

# %%
def test_unit_arithmetic():
    a = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = Tensor([10.0, 20.0, 30.0])
    assert (a + b).numpy().tolist() == [[11, 22, 33], [14, 25, 36]]
    assert (a - 1).numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    assert (2 * a).dtype == np.float32
    assert np.allclose((a / b).numpy(), a.numpy() / b.numpy())
    assert (a ** 2).numpy().tolist() == [[1, 4, 9], [16, 25, 36]]
    assert (-a).numpy()[0, 0] == -1.0
    assert (Tensor([1, 2]) / Tensor([2, 4])).dtype == np.float32
    assert (Tensor(np.array([1, 2], dtype=np.int8)) + 1).dtype == np.int8
    try:
        a + Tensor([1.0, 2.0])
        raise AssertionError("(2, 3) + (2,) must not broadcast")
    except ValueError as error:
        assert "add" in str(error) and "(2, 3)" in str(error) and "(2,)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert (Tensor([[1.0], [2.0]]) * Tensor([[1.0, 2.0]])).shape == (2, 2)
    assert (a == a).numpy().all() and (a > 3).numpy().sum() == 3
    ### END HIDDEN TESTS
    print("arithmetic: ok")


test_unit_arithmetic()

# %% [markdown]
# ## Step 4: elementwise functions
#
# `exp`, `log` and `maximum` are the remaining elementwise primitives; `sqrt` is `x ** 0.5` and
# `where(condition, a, b)` picks from `a` where the condition holds and from `b` elsewhere (the
# building block of masking in attention). ReLU in module 02 will be `maximum(x, 0)`.

# %%
#| export
def exp(a):
    """e ** a, elementwise."""
    ### BEGIN SOLUTION
    return Tensor.from_op(np.exp(a.data), "exp", (a,))
    ### END SOLUTION


def log(a):
    """Natural logarithm, elementwise."""
    ### BEGIN SOLUTION
    return Tensor.from_op(np.log(a.data), "log", (a,))
    ### END SOLUTION


def sqrt(a):
    """Square root, elementwise."""
    return pow(a, 0.5)


def maximum(a, b):
    """The larger of a and b, elementwise with broadcasting."""
    return _elementwise("maximum", np.maximum, a, b)


def where(condition, a, b):
    """Elements of `a` where `condition` holds, of `b` elsewhere (all three broadcast)."""
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    b = _operand(b, a)
    ### BEGIN SOLUTION
    try:
        data = np.where(condition, a.data, b.data)
    except ValueError:
        raise _broadcast_error("where", a, b) from None
    return Tensor.from_op(data, "where", (a, b), condition=condition)
    ### END SOLUTION

# %%
def test_unit_elementwise_functions():
    x = Tensor([0.0, 1.0, 4.0])
    assert np.allclose(exp(x).numpy(), np.exp([0.0, 1.0, 4.0]))
    assert np.allclose(log(Tensor([1.0, math.e])).numpy(), [0.0, 1.0])
    assert np.allclose(sqrt(x).numpy(), [0.0, 1.0, 2.0])
    assert maximum(Tensor([-1.0, 2.0]), 0).numpy().tolist() == [0.0, 2.0]
    assert where(Tensor([True, False]), Tensor([1.0, 1.0]), 0.0).numpy().tolist() == [1.0, 0.0]
    print("elementwise functions: ok")


test_unit_elementwise_functions()

# %% [markdown]
# ## Step 5: matrix multiplication
#
# `matmul` follows NumPy and PyTorch: 2-D times 2-D is a matrix product; leading dimensions
# broadcast (a batch of matrices); a 1-D operand is treated as a vector. The inner dimensions
# must agree, and when they do not, the error must show both shapes and which sizes clash —
# this is the most common bug you will meet in this course.

# %%
#| export
def matmul(a, b):
    """Matrix product a @ b (batched and broadcast over leading dimensions)."""
    a, b = as_tensor(a), as_tensor(b)
    ### BEGIN SOLUTION
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}; use * for scalars")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit: the last dimension of the left "
            f"({a.shape[-1]}) must equal the {'first' if b.ndim == 1 else 'second-to-last'} "
            f"dimension of the right ({inner_b})"
        )
    if a.ndim > 2 and b.ndim == 2 and a.data.flags.c_contiguous:
        # (batch..., n, k) @ (k, m): one big matrix product over all rows, not one per batch item.
        rows = np.matmul(a.data.reshape(-1, a.shape[-1]), b.data)
        return Tensor.from_op(rows.reshape(*a.shape[:-1], b.shape[-1]), "matmul", (a, b))
    try:
        data = np.matmul(a.data, b.data)
    except ValueError:
        raise ValueError(f"matmul: the batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
    return Tensor.from_op(data, "matmul", (a, b))
    ### END SOLUTION

# %%
def test_unit_matmul():
    a = Tensor([[1.0, 2.0], [3.0, 4.0]])
    b = Tensor([[5.0, 6.0], [7.0, 8.0]])
    assert (a @ b).numpy().tolist() == [[19.0, 22.0], [43.0, 50.0]]
    batch = randn(4, 2, 3)
    assert (batch @ randn(3, 5)).shape == (4, 2, 5)
    assert (a @ Tensor([1.0, 1.0])).shape == (2,)
    try:
        randn(2, 3) @ randn(4, 5)
        raise AssertionError("(2, 3) @ (4, 5) must fail")
    except ValueError as error:
        assert "(2, 3)" in str(error) and "(4, 5)" in str(error) and "matmul" in str(error)
    print("matmul: ok")


test_unit_matmul()

# %% [markdown]
# ## Step 6: reductions
#
# A reduction collapses dimensions: `x.sum(dim=1)` adds along dimension 1. PyTorch's names are
# `dim` (an int, a tuple of ints, or `None` for all) and `keepdim` (keep the reduced dimension
# with size 1, so the result still broadcasts against `x` — you will need that for softmax).
#
# `max` follows PyTorch too: `x.max()` is the largest element; `x.max(dim=1)` returns
# `(values, indices)`. `amax` returns only the values and is the differentiable primitive.

# %%
#| export
MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _dims(dim, ndim):
    """Normalise `dim` (None, int or tuple; negatives allowed) and check its range.

    A 0-d tensor accepts dim 0 or -1, as in PyTorch, and has no axis to reduce: ().
    """
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    for d in dims:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions")
    return () if ndim == 0 else tuple(int(d) % ndim for d in dims)


def _single_axis(dim, ndim):
    """The one NumPy axis that `dim` names (None for a 0-d tensor, which has none)."""
    dims = _dims(dim, ndim)
    return dims[0] if dims else None


def sum(a, dim=None, keepdim=False):
    """Sum over `dim` (None: all elements)."""
    ### BEGIN SOLUTION
    dims = _dims(dim, a.ndim)
    data = np.sum(a.data, axis=dims, keepdims=keepdim)
    return Tensor.from_op(np.asarray(data), "sum", (a,), dim=dims, keepdim=keepdim)
    ### END SOLUTION


def mean(a, dim=None, keepdim=False):
    """Average over `dim` (None: all elements)."""
    ### BEGIN SOLUTION
    dims = _dims(dim, a.ndim)
    count = a.numel() if dims is None else math.prod(a.shape[d] for d in dims)
    return sum(a, dims, keepdim) / count
    ### END SOLUTION


def amax(a, dim=None, keepdim=False):
    """Largest values over `dim` (None: all elements)."""
    dims = _dims(dim, a.ndim)
    if a.data.size == 0 and (dims is None or builtins.any(a.shape[d] == 0 for d in dims)):
        raise ValueError(f"max: the tensor of shape {a.shape} has no elements to take the largest of "
                         "along that dimension; an empty reduction has no identity for max")
    ### BEGIN SOLUTION
    data = np.max(a.data, axis=dims, keepdims=keepdim)
    return Tensor.from_op(np.asarray(data), "amax", (a,), dim=dims, keepdim=keepdim)
    ### END SOLUTION


def argmax(a, dim=None, keepdim=False):
    """Index of the largest value over `dim` (None: into the flattened tensor)."""
    if dim is None:
        return Tensor(np.argmax(a.data))
    return Tensor(np.argmax(a.data, axis=_single_axis(dim, a.ndim), keepdims=keepdim))


def max(a, dim=None, keepdim=False):
    """PyTorch's max: the largest element, or `(values, indices)` along `dim`."""
    if dim is None:
        return amax(a)
    return MaxResult(amax(a, dim, keepdim), argmax(a, dim, keepdim))


def min(a, dim=None, keepdim=False):
    """PyTorch's min: the smallest element, or `(values, indices)` along `dim`."""
    if dim is None:
        return -amax(-a)
    return MaxResult(-amax(-a, dim, keepdim), Tensor(np.argmin(a.data, axis=_single_axis(dim, a.ndim), keepdims=keepdim)))

# %%
def test_unit_reductions():
    x = Tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    assert x.sum().item() == 21.0
    assert x.sum(dim=0).numpy().tolist() == [5.0, 7.0, 9.0]
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert x.mean().item() == 3.5
    assert np.allclose(x.mean(dim=(0, 1)).numpy(), 3.5)
    values, indices = x.max(dim=1)
    assert values.numpy().tolist() == [5.0, 6.0] and indices.numpy().tolist() == [1, 2]
    assert x.max().item() == 6.0 and x.min().item() == 1.0
    try:
        x.sum(dim=2)
        raise AssertionError("dim 2 of a 2-D tensor must be rejected")
    except IndexError as error:
        assert "dim 2" in str(error)
    print("reductions: ok")


test_unit_reductions()

# %% [markdown]
# ## Step 7: movement — reshape, transpose, permute, expand, indexing
#
# Movement ops rearrange elements without arithmetic. Most of them are **views**: NumPy
# changes the shape and strides and keeps the same memory. `reshape` must keep the number of
# elements (one dimension may be `-1`, "whatever is left"); when it cannot, say both shapes
# and both element counts.

# %%
#| export
def reshape(a, *shape):
    """The same elements in a new shape (a view whenever the memory layout allows)."""
    shape = _shape_of(shape)
    ### BEGIN SOLUTION
    try:
        data = a.data.reshape(shape)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {a.shape} ({a.numel()} elements) into {shape}; "
            "the number of elements must stay the same (one dimension may be -1)"
        ) from None
    return Tensor.from_op(data, "reshape", (a,))
    ### END SOLUTION


def permute(a, *dims):
    """Reorder dimensions: permute(x, 2, 0, 1) moves the last dimension first."""
    dims = _shape_of(dims)
    ### BEGIN SOLUTION
    n = a.ndim
    if len(dims) != n or len({d % n for d in dims} if n else dims) != n or builtins.any(not -n <= d < n for d in dims):
        raise ValueError(f"permute: {dims} is not an ordering of the {a.ndim} dimensions of shape {a.shape}")
    dims = tuple(d % n for d in dims)
    return Tensor.from_op(np.transpose(a.data, dims), "permute", (a,), dims=dims)
    ### END SOLUTION


def transpose(a, dim0=-2, dim1=-1):
    """Swap two dimensions (default: the last two, as for a matrix)."""
    ### BEGIN SOLUTION
    order = list(range(a.ndim))
    order[dim0], order[dim1] = order[dim1], order[dim0]
    return permute(a, *order)
    ### END SOLUTION


def expand(a, *shape):
    """Broadcast to a larger shape without copying (-1 keeps a dimension)."""
    shape = _shape_of(shape)
    shape = tuple(a.shape[i - len(shape) + a.ndim] if s == -1 else s for i, s in enumerate(shape))
    try:
        data = np.broadcast_to(a.data, shape)
    except ValueError:
        raise ValueError(f"expand: shape {a.shape} cannot expand to {shape}") from None
    return Tensor.from_op(data, "expand", (a,))


def _index_array(index):
    """Tensors used as indices become their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def getitem(a, index):
    """Indexing and slicing with NumPy's rules: x[0], x[:, 1:3], x[mask], x[[2, 0]]."""
    index = _index_array(index)
    ### BEGIN SOLUTION
    return Tensor.from_op(np.asarray(a.data[index]), "getitem", (a,), index=index)
    ### END SOLUTION


def cat(tensors, dim=0):
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: got no tensors to join; pass a non-empty list of tensors")
    if tensors[0].ndim == 0:
        raise ValueError("cat: 0-d tensors have no dimension to join along; use stack() instead")
    _dims(dim, tensors[0].ndim)  # an IndexError naming dim and the number of dimensions
    try:
        data = np.concatenate([t.data for t in tensors], axis=dim)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"cat: shapes {shapes} differ outside dim {dim}") from None
    return Tensor.from_op(data, "cat", tuple(tensors), dim=dim % data.ndim)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dimension."""
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def cast(a, dtype):
    """A copy of `a` converted to `dtype` (gradients flow back in the original dtype)."""
    return Tensor.from_op(a.data.astype(dtype), "cast", (a,))

# %%
def test_unit_movement():
    x = arange(6).reshape(2, 3)
    assert x.shape == (2, 3) and x.reshape(-1).shape == (6,)
    assert x.transpose().shape == (3, 2) and x.T.numpy().tolist() == [[0, 3], [1, 4], [2, 5]]
    assert randn(2, 3, 4).permute(2, 0, 1).shape == (4, 2, 3)
    assert x[1].numpy().tolist() == [3, 4, 5] and x[:, 1:].shape == (2, 2)
    assert x[Tensor([1, 0])].numpy().tolist() == [[3, 4, 5], [0, 1, 2]]
    assert cat([x, x], dim=0).shape == (4, 3) and stack([x, x]).shape == (2, 2, 3)
    try:
        x.reshape(4, 2)
        raise AssertionError("6 elements cannot become (4, 2)")
    except ValueError as error:
        assert "(2, 3)" in str(error) and "(4, 2)" in str(error)
    print("movement: ok")


test_unit_movement()

# %% [markdown]
# ### In place, and the version counter
#
# A few methods change a tensor where it is, as PyTorch's trailing underscore says: `zero_()`,
# `fill_(v)`, `copy_(src)`, `add_(other, alpha=1)`, `mul_(other)`, and assignment `x[i] = v`.
# They are given to you. Each one counts the change in `tensor.version`. Why count? The graph
# that module 05 differentiates remembers *which* tensors an op read, not their values: change
# one in place after the forward pass, and the backward pass would read the new values and
# give a wrong gradient without a word. With the count, module 05 can tell and refuse. Code
# that writes into `.data` directly (an optimizer's update) calls `mark_modified()` to say so.
#
# `.grad`, too, is a Tensor (as in PyTorch), so `w.grad.norm()` and `w.grad.zero_()` work;
# assigning a NumPy array to it wraps the array, and a wrong shape is refused at once.

# %%
def test_unit_in_place_and_versions():
    x = Tensor([1.0, 2.0, 3.0])
    assert x.version == 0
    x[0] = 5.0
    x.add_(Tensor([1.0, 1.0, 1.0]), alpha=2).mul_(0.5)
    assert x.tolist() == [3.5, 2.0, 2.5] and x.version == 3, "each in-place change counts once"
    x.zero_()
    assert x.tolist() == [0.0, 0.0, 0.0] and x.version == 4
    x.copy_([7, 8, 9])
    assert x.tolist() == [7.0, 8.0, 9.0] and x.dtype == np.float32, "copy_ keeps the dtype"
    w = Tensor([3.0, 4.0], requires_grad=True)
    try:
        w.zero_()
        raise AssertionError("an in-place change of a tensor that requires grad must be refused")
    except RuntimeError as error:
        assert "requires grad" in str(error) and "no_grad" in str(error)
    w.grad = np.array([1.0, 2.0], dtype=np.float32)
    assert isinstance(w.grad, Tensor) and abs(w.grad.norm().item() - 5.0 ** 0.5) < 1e-6
    try:
        w.grad = np.ones(3)
        raise AssertionError("a gradient of another shape must be refused")
    except ValueError as error:
        assert "(3,)" in str(error) and "(2,)" in str(error)
    print("in place and versions: ok")


test_unit_in_place_and_versions()

# %% [markdown]
# ## Systems analysis: what does a tensor cost?
#
# Every module's systems analysis times its operations the same way, with the helper below:
# one warm-up call (caches, lazy allocations), then the **median** of several calls, which a
# single slow outlier (another process, a page fault) cannot move.

# %%
#| export
def median_milliseconds(function, repeats=5, warmup=1):
    """Median wall-clock milliseconds of `function()` over `repeats` calls, after `warmup` calls."""
    import time

    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return sorted(samples)[len(samples) // 2]

# %% [markdown]
#
# Two measurements. First, **bytes**: a tensor's storage is `numel() * itemsize`; the dtype is
# the lever. Second, **copy against view**: a view (`reshape` of contiguous data, `transpose`,
# basic slicing) shares memory and costs microseconds whatever the size; a copy (`clone`,
# `contiguous` after a transpose) moves every byte.

# %%
def measure_bytes_per_dtype(shape=(1024, 1024)):
    """Bytes of storage for the same shape in each dtype (measured from the arrays)."""
    rows = []
    for dtype in (np.float64, np.float32, np.float16, np.int8):
        t = zeros(shape, dtype=dtype)
        rows.append((np.dtype(dtype).name, t.nbytes))
    return rows


def measure_copy_vs_view(shape=(2048, 2048), repeats=20):
    """Median milliseconds of a view (reshape, transpose) against a full copy (clone)."""
    x = randn(*shape)
    operations = {
        "reshape (view)": lambda: x.reshape(-1),
        "transpose (view)": lambda: x.transpose(),
        "clone (copy)": lambda: x.clone(),
        "transpose then copy": lambda: Tensor(np.ascontiguousarray(x.transpose().data)),
    }
    return {name: median_milliseconds(operation, repeats) for name, operation in operations.items()}


if __name__ == "__main__":
    for name, nbytes in measure_bytes_per_dtype():
        print(f"1024x1024 {name:>8}: {nbytes / 2**20:6.2f} MiB")
    view_of = arange(12).reshape(3, 4)
    print("a transpose shares memory:", np.shares_memory(view_of.data, view_of.transpose().data))
    print("its strides (elements):", view_of.stride(), "->", view_of.transpose().stride())
    for name, milliseconds in measure_copy_vs_view().items():
        print(f"{name:>20}: {milliseconds:8.3f} ms")

# %% [markdown]
# On a 2-core laptop-class CPU, a 2048x2048 float32 tensor (16 MiB) reshapes and transposes in
# about a microsecond, while a copy takes milliseconds — three orders of magnitude. The
# transpose-then-copy is slower still: it reads memory in a strided order. Run the cell above to
# see your machine's figures. Lesson: know which operations copy.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# `torch.Tensor` is also a view over a *storage* with sizes, strides and an offset; `view()`
# fails on non-contiguous tensors where `reshape()` silently copies, which is why both exist.
# PyTorch's kernels are C++ (ATen) dispatched by device and dtype; ours are NumPy calls, the
# same idea with one backend. Its autograd also records the graph during the forward pass,
# through the same kind of seam as our `Tensor.from_op`: each op has a registered derivative
# formula (`derivatives.yaml`) — module 05 is where you write ours. Its profiler watches the
# same dispatch: `torch.profiler` registers `RecordFunction` callbacks that every ATen op calls
# on entry and exit, the counterpart of our `set_op_observer`, which module 14 uses.

# %% [markdown]
# ## Integration test: a linear layer by hand

# %%
def test_integration_linear_by_hand():
    manual_seed(1)
    inputs = randn(8, 4)
    weights = randn(4, 3)
    bias = zeros(3)
    outputs = inputs @ weights + bias
    expected = inputs.numpy() @ weights.numpy()
    assert outputs.shape == (8, 3)
    assert np.allclose(outputs.numpy(), expected, atol=1e-6)
    probabilities = exp(outputs) / exp(outputs).sum(dim=1, keepdim=True)
    assert np.allclose(probabilities.sum(dim=1).numpy(), 1.0, atol=1e-6)
    print("integration: ok")


test_integration_linear_by_hand()

# %% [markdown]
# ## ML systems thinking
#
# 1. A float32 weight matrix of a 7-billion-parameter model needs how many GB? In int8?
# 2. `x.T @ y` and `(x.T).contiguous() @ y` give the same numbers. When would the copy be worth it?
# 3. Broadcasting `(N, 1) + (1, M)` materialises an `(N, M)` result. What is the memory cost
#    for N = M = 100,000, and how would you avoid it?
# 4. Why does every operation record its inputs (when gradients are wanted), and what does that
#    cost in memory during training?
#
# ## Summary
#
# You built `Tensor`: creation with explicit dtype rules, broadcasting arithmetic with errors
# that name the op and both shapes, matrix multiplication, reductions with `dim` / `keepdim`,
# and views. You measured that a view is free and a copy is not. Every operation already
# records what module 05 needs to compute gradients; next, module 02 adds the nonlinearities.
