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
# # Module 14: Profiling
#
# *Can I find where time and memory go?*
#
# Make it fast, but first find out what is slow. Modules 15 to 18 will quantize, prune, cache and
# accelerate; each of them is worth doing only where the time or the memory actually goes, and
# each must be measured against what it replaces. This module builds the instruments: a
# **profiler** that watches every operation the framework runs and every layer it runs in, counts
# the floating-point operations and bytes of each from the operation's own arguments, times it,
# and compares the speed reached with what this machine can do; a **memory profiler** that
# measures the bytes NumPy really allocates; and a split of a training step into data, forward,
# backward and optimizer, in time and in memory. Then we point them at the course's three models:
# the MNIST MLP, the CIFAR-10 CNN and the GPT.
#
# ## Learning objectives
# - Count FLOPs analytically, PyTorch's way (a multiply-add is 2 FLOPs), for matrix products,
#   convolutions with padding, stride, groups and dilation, and attention, and check the counts
#   against the formulas and against PyTorch's own counter.
# - Compute the bytes an operation must move and its **arithmetic intensity**, and use the
#   roofline to tell a compute-bound operation from a memory-bound one.
# - Build a profiler on two explicit seams (module 01's op observer, module 03's forward hooks),
#   time each op as the interval since the previous event, and measure the profiler's own cost.
# - Measure memory for real with `tracemalloc`, and split a training step's memory into
#   parameters, gradients, optimizer state and activations (Adam's state: twice the parameters).
# - Say where the time of a training step goes for an MLP, a CNN and a GPT, with measured figures.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 14
# ```
#
# exports your code to `tinytorch/core/profiling.py` and grades it with
# `tests/modules/test_14_profiling.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **FLOPs.** A floating-point operation is one addition or one multiplication. We follow the
# convention of PyTorch's `torch.utils.flop_counter.FlopCounterMode` (and of most papers): a
# **multiply-add counts 2 FLOPs**. A matrix product $C = AB$ with $A \in \mathbb{R}^{m\times k}$,
# $B \in \mathbb{R}^{k\times n}$ computes $mn$ outputs of $k$ multiply-adds each:
#
# $$\text{FLOPs}(A B) = 2\,m\,k\,n, \qquad \text{batched over } b \text{ matrices: } 2\,b\,m\,k\,n.$$
#
# A **convolution** of an input $(N, C, H, W)$ with $O$ filters of $C/g$ channels and size
# $k_h \times k_w$ ($g$ groups) computes $N \cdot O \cdot H_o \cdot W_o$ outputs, each a dot
# product of $(C/g)\,k_h\,k_w$ terms, where padding $p$, stride $s$ and dilation $d$ fix the output size:
#
# $$H_o = \left\lfloor \frac{H + 2p - d(k_h - 1) - 1}{s} \right\rfloor + 1, \qquad
# \text{FLOPs} = 2\,N\,O\,H_o\,W_o\,\frac{C}{g}\,k_h\,k_w.$$
#
# Padding makes a convolution *more* expensive (more output positions), stride cheaper (fewer),
# groups cheaper by $g$ (each filter sees $C/g$ channels); dilation changes only $H_o$. A counter
# that ignores them, as the public course's did, is wrong by those factors.
#
# **Attention** with queries $(B, L, E)$, keys $(B, S, E)$ and values $(B, S, E_v)$ is two
# matrix products: the scores $QK^\top$ and the weighted sum of the values,
#
# $$\text{FLOPs} = 2\,B\,L\,S\,E + 2\,B\,L\,S\,E_v,$$
#
# quadratic in the sequence length. As in PyTorch's counter, the fused kernels (convolution,
# attention) are counted by their products: a convolution's bias and attention's scale, mask
# and softmax cost a few FLOPs per output and are left out. Unlike PyTorch's counter, which
# counts *only* products, we also count elementwise arithmetic (1 FLOP per output element:
# `add`, `mul`, `exp`, `relu`, ...) and reductions (a sum of $n$ numbers is $n-1$ additions),
# because an op that shows 0 FLOPs cannot show you that it is memory-bound. Ops without a rule
# (layer norm, softmax, pooling, ...) are reported as *not counted*, never as zero.
#
# **Bytes and arithmetic intensity.** An operation must at least read its inputs once and write
# its output once. Its **arithmetic intensity** is FLOPs per byte moved:
#
# $$I = \frac{\text{FLOPs}}{\text{bytes moved}}, \qquad
# \text{a } 1024^3 \text{ matmul: } \frac{2 \cdot 1024^3}{3 \cdot 1024^2 \cdot 4} \approx 171, \qquad
# \text{an elementwise add: } \frac{n}{3 \cdot 4n} = \tfrac{1}{12}.$$
#
# The **roofline** model says a kernel cannot run faster than
# $\min(\text{peak FLOP/s},\; I \times \text{memory bandwidth})$. A 2-core machine does about
# 150 GFLOP/s of float32 matmul and reads about 10-20 GB/s from memory, so the ridge point where
# the two limits meet is near 10 FLOP/byte: below it an op waits for memory, above it for the
# arithmetic units. The add is a hundred times below the ridge; no amount of clever arithmetic
# makes it faster, only moving fewer bytes (fusing it into its neighbour) does.
#
# **Timing by intervals.** In this framework a kernel (a NumPy call) runs *before* its result is
# wrapped by `Tensor.from_op`, so the observer hears about an op only when it is over. We time op
# $i$ as the interval between the previous event (op or layer boundary) and its own:
# $t_i = \tau_i - \tau_{i-1}$. The interval includes the op's Python around the kernel (argument
# checks, dtype rules) and any code the model ran between two ops; the error is that Python, a few
# microseconds per op, which we measure below. The profiler subtracts its own bookkeeping:
# each callback notes the clock on entry and on exit, and the next interval starts at the exit.
#
# **Memory of a training step.** With $P$ bytes of parameters, training holds the parameters, a
# gradient of each ($P$), the optimizer's state (SGD: 0; momentum: $P$; Adam: $m$ and $v$, $2P$) and
# the activations that the forward pass keeps for the backward pass ($A$, proportional to the
# batch):
#
# $$M_{\text{train}} \approx P + P + S_{\text{opt}} + A, \qquad \text{Adam: } 4P + A.$$

# %%
#| export
import contextlib
import ctypes
import gc
import math
import os
import statistics
import tracemalloc
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from tinytorch.core.layers import register_module_forward_hook, register_module_forward_pre_hook
from tinytorch.core.tensor import set_op_observer

MIB = 2**20  # "MB" in this module's reports is 2**20 bytes (MiB), as in PyTorch's memory reports

# %% [markdown]
# ## Step 1: counting FLOPs at the op, from its arguments
#
# The public course chose a FLOP formula by the *class name* of a layer, so a convolution with
# padding, a grouped convolution or an attention layer got the wrong count, or none. We count where
# the work happens: at the op. Every op of this framework ends in `Tensor.from_op(data, op,
# inputs, **saved)`, which knows the op's name, its input tensors and its result. A **FLOP rule**
# is a function `rule(inputs, output)` that returns the FLOPs of one call, registered for an op
# name — the same pattern as module 05's backward rules. A rule reads **shapes only**
# (`.shape`, `.numel()`): the profiler records the shapes of each call and evaluates the rule
# afterwards, once per distinct call signature, on stand-ins that carry just the shapes and dtypes.
# The arguments an op saves (a convolution's padding, stride, dilation and groups) are not needed:
# they fix the output's shape, and the output's shape is what the rule reads.
#
# Write the three rules that carry the cost of a network. Two facts make them one-liners:
# - in a matrix product (batched or not, with 1-D operands too), every output element is a dot
#   product of `k = a.shape[-1]` terms;
# - in a convolution, every output element is a dot product over one filter: the weight has
#   shape `(O, C // groups, kh, kw)`, so each filter holds `weight.numel() // O` terms. Padding,
#   stride and dilation enter through the number of output elements.

# %%
#| export
FLOP_RULES = {}  # op name -> rule(inputs, output): the FLOPs of one call, from shapes
CALL_COSTS = {}  # call signature -> (FLOPs or None, bytes) of one call, filled by the profiler (Step 4)


def register_flops(*ops):
    """Decorator: register `rule(inputs, output) -> FLOPs of one call` for each op in `ops`.

    A rule reads only shapes (`.shape`, `.numel()`, `.ndim`): the profiler evaluates it once per
    distinct call signature, on stand-ins that carry the shapes and dtypes of the call.
    """

    def register(rule):
        for op in ops:
            FLOP_RULES[op] = rule
        CALL_COSTS.clear()  # costs computed with the rules before this one are stale
        return rule

    return register


@register_flops("matmul")
def matmul_flops(inputs, output):
    """FLOPs of `a @ b` (batched and broadcast): 2 per multiply-add, `k` multiply-adds per output element.

    TODO: return 2 * (number of output elements) * k, where k is the contracted length.
    HINT: k is the last dimension of the left operand, `inputs[0].shape[-1]`, for every case
          (matrix, batch of matrices, vector); `output.numel()` counts the outputs.
    """
    ### BEGIN SOLUTION
    return 2 * output.numel() * inputs[0].shape[-1]
    ### END SOLUTION


@register_flops("conv2d")
def conv2d_flops(inputs, output):
    """FLOPs of a 2-D convolution: 2 * N * O * Ho * Wo * (C / groups) * kh * kw (bias not counted).

    TODO: each output element (there are N * O * Ho * Wo) is a dot product over one filter of the
          weight `inputs[1]`, of shape (O, C // groups, kh, kw); two FLOPs per term.
    HINT: the terms of one filter: `weight.numel() // weight.shape[0]`. Padding, stride and
          dilation are already in the output's shape.
    """
    ### BEGIN SOLUTION
    weight = inputs[1]
    return 2 * output.numel() * (weight.numel() // weight.shape[0])
    ### END SOLUTION


@register_flops("scaled_dot_product_attention")
def attention_flops(inputs, output):
    """FLOPs of fused attention: the scores q @ k^T and the weighted sum of v, 2*B*L*S*(E + Ev).

    TODO: with q of shape (..., L, E), k (..., S, E) and v (..., S, Ev), return
          2 * B * L * S * E + 2 * B * L * S * Ev, B the number of (broadcast) batch items.
    HINT: the output has shape (..., L, Ev): B = output.numel() // (L * Ev). Guard L * Ev == 0.
    """
    q, k, v = inputs[:3]
    ### BEGIN SOLUTION
    L, E = q.shape[-2:]
    S, Ev = k.shape[-2], v.shape[-1]
    if L * Ev == 0:
        return 0
    batch = output.numel() // (L * Ev)
    return 2 * batch * L * S * E + 2 * batch * L * S * Ev
    ### END SOLUTION


@register_flops("add", "sub", "mul", "div", "neg", "pow", "maximum", "exp", "log", "relu", "sigmoid", "tanh")
def elementwise_flops(inputs, output):
    """One FLOP per output element (exp and log count 1 too, by convention: they cost more cycles)."""
    return output.numel()


@register_flops("sum", "amax")
def reduction_flops(inputs, output):
    """Folding n numbers into one takes n - 1 operations: input elements minus output elements."""
    return inputs[0].numel() - output.numel()


@register_flops("reshape", "permute", "expand", "getitem", "cat", "cast", "where", "embedding")
def no_arithmetic(inputs, output):
    """Movement, copies and selections: 0 FLOPs (their cost is bytes, counted in Step 2)."""
    return 0


def count_flops(op, inputs, output):
    """FLOPs of one call of `op`, or None when no rule is registered (reported as "not counted")."""
    rule = FLOP_RULES.get(op)
    return None if rule is None else int(rule(inputs, output))

# %% [markdown]
# ### Test: FLOP rules against the formulas
#
# The test gives each rule tensors of the shapes its op would see. A convolution is an op of
# module 09, which this module does not build on, so here its output shape is worked out by hand
# from the formula; the graded tests run the real `conv2d` with padding, stride, groups and
# dilation under the profiler, and compare with PyTorch's own counter.

# %%
from tinytorch.core.tensor import Tensor, manual_seed, randn  # noqa: E402


def test_unit_flop_rules():
    a, b = randn(4, 3, 5), randn(5, 2)
    out = a @ b
    assert count_flops("matmul", (a, b), out) == 2 * 4 * 3 * 5 * 2, "batched: 2 * b * m * k * n"
    vector = randn(5)
    assert count_flops("matmul", (vector, b), vector @ b) == 2 * 5 * 2
    x, weight = randn(2, 6, 9, 9), randn(8, 3, 3, 3)  # groups = 2: each filter sees 6 / 2 channels
    conv_out = randn(2, 8, 4, 4)  # padding 1, stride 2: Ho = (9 + 2 - 2 - 1) // 2 + 1 = 4
    assert count_flops("conv2d", (x, weight), conv_out) == 2 * 2 * 8 * 4 * 4 * 3 * 3 * 3
    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5)
    assert count_flops("scaled_dot_product_attention", (q, k, v), randn(2, 3, 4, 5)) == \
        2 * 6 * 4 * 6 * 8 + 2 * 6 * 4 * 6 * 5
    assert count_flops("add", (a, a), a + a) == a.numel()
    assert count_flops("sum", (a,), a.sum(dim=1)) == 60 - 20, "3 numbers -> 1: 2 additions, 20 times"
    assert count_flops("softmax", (a,), a) is None, "no rule: not counted, not zero"
    ### BEGIN HIDDEN TESTS
    square, column = randn(7, 7), randn(7)
    assert count_flops("matmul", (square, column), square @ column) == 2 * 7 * 7, "matrix @ vector: 2 * m * k"
    assert count_flops("reshape", (a,), a.reshape(-1)) == 0
    ### END HIDDEN TESTS
    print("FLOP rules: ok")


test_unit_flop_rules()

# %% [markdown]
# ## Step 2: bytes moved and arithmetic intensity
#
# The bytes an op must move, at the least: it reads each input once and writes its output once.
# Two exceptions:
#
# - a **view** (a reshape of contiguous data, a transpose, a basic slice, an `expand`) shares its
#   input's memory: it moves nothing;
# - a **gather** (`embedding`, indexing with an array) reads only the rows it picks, as many
#   bytes as it writes.
#
# On top of that, an op writes (or reads, for an index or a mask) every array it keeps in `saved`
# for the backward pass: a convolution's im2col columns, attention's probabilities. The profiler
# adds those with `saved_bytes`. The intensity is then FLOPs per byte. This is still a lower bound
# on the traffic: a kernel whose working set does not fit in cache moves more.

# %%
#| export
ALWAYS_VIEWS = frozenset({"permute", "expand"})  # their result always shares its input's memory
MAYBE_VIEWS = frozenset({"reshape", "getitem"})  # a view or a copy, depending on the input and the index
_GATHERS = frozenset({"getitem", "embedding"})


def saved_bytes(saved):
    """Bytes of the NumPy arrays among an op's saved arguments (inside tuples too: an index of arrays)."""
    total = 0
    for value in saved.values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, np.ndarray):
                total += item.nbytes
    return total


def bytes_moved(op, inputs, output, view=False):
    """Bytes one call of `op` must move: its inputs read, its output written (0 for a view).

    TODO: 0 for a view; otherwise the bytes of every input plus the output's. A gather (op in
          _GATHERS) reads only what it writes: count its first input as `output.nbytes`
          instead of its full size.
    HINT: `tensor.nbytes` is the storage of a tensor.
    """
    if view:
        return 0
    ### BEGIN SOLUTION
    read = output.nbytes if op in _GATHERS else inputs[0].nbytes
    read += sum(t.nbytes for t in inputs[1:])
    return read + output.nbytes
    ### END SOLUTION


def arithmetic_intensity(flops, nbytes):
    """FLOPs per byte moved; None when either is unknown or nothing moved."""
    if flops is None or not nbytes:
        return None
    return flops / nbytes

# %% [markdown]
# ### Test: bytes against nbytes

# %%
def test_unit_bytes_moved():
    a, b = randn(64, 32), randn(32, 16)
    out = a @ b
    assert bytes_moved("matmul", (a, b), out) == a.nbytes + b.nbytes + out.nbytes
    assert bytes_moved("reshape", (a,), a.reshape(-1), view=True) == 0, "a view moves nothing"
    table = randn(100, 8)
    rows = table[Tensor([3, 1, 4])]
    assert bytes_moved("getitem", (table,), rows) == 2 * rows.nbytes, "a gather reads the rows it picks, not the table"
    flops = count_flops("matmul", (a, b), out)
    assert abs(arithmetic_intensity(flops, bytes_moved("matmul", (a, b), out)) - flops / (4 * (2048 + 512 + 1024))) < 1e-12
    assert arithmetic_intensity(None, 10) is None and arithmetic_intensity(5, 0) is None
    cols = np.zeros((9, 50), dtype=np.float32)
    assert saved_bytes({"cols": cols, "stride": (1, 1), "index": (np.arange(3), slice(None))}) == cols.nbytes + 24
    ### BEGIN HIDDEN TESTS
    assert bytes_moved("add", (a, a[0]), a + a[0]) == 2 * a.nbytes + a[0].nbytes
    ### END HIDDEN TESTS
    print("bytes moved: ok")


test_unit_bytes_moved()

# %% [markdown]
# ## Step 3: what can this machine do?
#
# "Achieved 40 GFLOP/s" means nothing until you know the machine's peak. We **measure** it: the
# speed of a large float32 matrix product, the best case of the best kernel we have (OpenBLAS
# through NumPy). A peak is a best case, so we keep the *fastest* of many runs spread over half a
# second: on a shared machine the median measures the load of the moment (with 2 BLAS threads,
# one run in which another job holds the second core can take four times as long), and an op of
# the model could then beat the "peak". Every report also states how many threads the BLAS library runs, because a figure
# measured on 1 thread and one on 2 differ by up to 2x on this machine.
#
# The thread count comes from `threadpoolctl` when it is installed (it asks every loaded BLAS
# library). It is not a dependency of this project, so without it we ask OpenBLAS itself, through
# the `openblas_get_num_threads` function of the library that NumPy loaded, then fall back to the
# environment variables that set it. The report says which source answered.

# %%
#| export
_peak_cache = {}  # (size, threads) -> measured GFLOP/s


def matmul_peak_gflops(size=1024, repeats=20, seconds=0.5):
    """Measured float32 matmul peak (GFLOP/s): the fastest size x size product, of at least
    `repeats` products spread over at least `seconds` (so that a moment of load cannot hide it).

    TODO: time `a @ b` for two random float32 (size, size) arrays, once untimed (warm-up), then
          again and again until both `repeats` products and `seconds` have passed; turn the
          fastest time into GFLOP/s with the formula of Step 1.
    HINT: `perf_counter()` before and after each product; 2 * size**3 FLOPs in `s` seconds is
          2 * size**3 / s / 1e9 GFLOP/s.
    """
    key = (size, blas_threads()[0])
    if key in _peak_cache:
        return _peak_cache[key]
    ### BEGIN SOLUTION
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    fastest, runs, deadline = math.inf, 0, perf_counter() + seconds
    while runs < repeats or perf_counter() < deadline:
        start = perf_counter()
        a @ b
        fastest = min(fastest, perf_counter() - start)
        runs += 1
    gflops = 2 * size**3 / fastest / 1e9
    ### END SOLUTION
    _peak_cache[key] = gflops
    return gflops


def _openblas_threads():
    """OpenBLAS's own thread count, from the library NumPy loaded (Linux: found in /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            libraries = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in libraries:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            function = getattr(library, symbol, None)
            if function is not None:
                return int(function())
    return None


def blas_threads():
    """(threads, source): how many threads NumPy's BLAS uses, and who said so."""
    try:
        from threadpoolctl import threadpool_info

        counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
        if counts:
            return max(counts), "threadpoolctl"
    except ImportError:
        pass
    threads = _openblas_threads()
    if threads is not None:
        return threads, "asked OpenBLAS; threadpoolctl is not installed"
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable]), f"from ${variable}; threadpoolctl is not installed"
    return os.cpu_count() or 1, "assumed one per core: threadpoolctl is not installed and the BLAS did not say"


def blas_library():
    """The name and version of the BLAS library NumPy was built with, as NumPy reports it."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', 'unknown BLAS')} {blas.get('version', '')}".strip()
    except (TypeError, KeyError, ValueError):  # NumPy < 1.25 has no mode="dicts"
        return "BLAS (NumPy did not report which)"


def machine_summary(peak_gflops=None, measured=True):
    """One line for every report: cores, the BLAS library and its threads, and the matmul peak."""
    threads, source = blas_threads()
    line = f"machine: {os.cpu_count()} cores; {blas_library()} on {threads} thread(s) ({source})"
    if peak_gflops is not None:
        line += f"; float32 matmul peak {peak_gflops:.0f} GFLOP/s ({'measured' if measured else 'given'})"
    return line

# %% [markdown]
# ### Test: the machine

# %%
def test_unit_machine():
    threads, source = blas_threads()
    assert threads >= 1 and source
    gflops = matmul_peak_gflops(size=256, repeats=5, seconds=0.05)
    assert 0.1 < gflops < 1e5, f"{gflops} GFLOP/s is not a plausible matmul speed"
    assert matmul_peak_gflops(size=256) == gflops, "the peak is measured once per size and thread count"
    summary = machine_summary(gflops)
    assert f"{threads} thread" in summary and "GFLOP/s" in summary and "cores" in summary
    print(summary)


test_unit_machine()

# %% [markdown]
# ## Step 4: the profiler
#
# The profiler stands on two seams that earlier modules show, and replaces nothing:
#
# - **module 01's op observer**: `set_op_observer(callback)` makes `Tensor.from_op` call
#   `callback(op, inputs, output, saved)` for every result it builds, with gradients on or off;
# - **module 03's global forward hooks**: `register_module_forward_pre_hook(hook)` and
#   `register_module_forward_hook(hook)` run around the `forward` of every `Module`.
#
# Inside `with Profiler() as prof:` every op and every layer boundary becomes an **event** in a
# list. An op's event holds the interval since the previous event and the op's *call signature*:
# its name, the shapes and dtypes of its inputs, its output's shape and dtype, whether the result
# is a view, and the bytes of the arrays it saved. A layer's events mark where it starts and ends.
# The callbacks do as little as they can, because every microsecond they spend lands in the
# program being measured — and it is more than you would think: measured inside a forward pass,
# each Python statement of a callback costs about a microsecond on this machine, several times
# what the same statement costs in a tight loop (the NumPy kernel that ran just before has pushed
# the interpreter's data out of the CPU's caches). So the callback only records. It notes the
# clock on entry and on exit, and the next interval starts at the exit, so its own cost is left
# out of the times.
#
# Everything else happens afterwards, when you ask for results: the FLOPs and bytes of each
# distinct signature are computed once (and kept in `CALL_COSTS` for later profiles), and a walk
# over the events adds up the intervals per op and per layer. The sum of the intervals is a clock
# that runs without the profiler's overhead; a layer's **total** time is that clock at its end
# minus the clock at its start, its **self** time the total minus its children's totals. Ops without inputs (a Python
# number turned into a constant, a `detach`) are not events: their time belongs to the op that
# uses them. Intervals that end at a layer boundary are Python between ops (the layer's own code,
# the call overhead): reported as such, so that the rows add up to the whole.
#
# Write the op callback (the interval and the signature) and the accounting that closes a
# layer's frame. The class's plumbing (installing the seams, the walk, the results) is given.

# %%
#| export
_OP, _ENTER, _EXIT = 0, 1, 2  # event kinds


class OperandShape:
    """What a FLOP or byte rule reads of an op's tensor, without its data: shape and dtype."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    def numel(self):
        return math.prod(self.shape)

    @property
    def nbytes(self):
        return self.numel() * self.dtype.itemsize


def call_cost(signature):
    """(FLOPs or None, bytes) of one call with this signature; computed once, then kept in CALL_COSTS."""
    cost = CALL_COSTS.get(signature)
    if cost is None:
        op, inputs, shape, dtype, view, kept = signature
        operands = tuple(OperandShape(*pair) for pair in inputs)
        output = OperandShape(shape, dtype)
        cost = CALL_COSTS[signature] = (count_flops(op, operands, output), bytes_moved(op, operands, output, view) + kept)
    return cost


@dataclass(frozen=True)
class OpStats:
    """One row of the op table: an op (or an op and its input shapes) summed over its calls."""

    name: str
    calls: int
    time: float  # seconds, the intervals of its calls added up
    input_shapes: tuple  # of the signature that took the most time
    flops: int | None  # all calls together; None: no FLOP rule
    bytes: int  # all calls together
    signatures: int = 1  # distinct input shapes merged into this row

    @property
    def intensity(self):
        return arithmetic_intensity(self.flops, self.bytes)

    @property
    def gflops_per_second(self):
        return None if self.flops is None or self.time <= 0 else self.flops / self.time / 1e9


@dataclass(frozen=True)
class ModuleStats:
    """One row of the layer table: a module, by its dotted name under the outermost module called."""

    name: str
    kind: str  # the module's class
    depth: int
    calls: int
    self_time: float  # seconds in the module itself (its ops and Python), not in child modules
    total_time: float  # seconds from its forward's start to its end
    flops: int  # of the ops it ran, children included (ops without a rule count 0)
    bytes: int
    all_counted: bool = True  # False: it ran ops without a FLOP rule, so `flops` is a lower bound

    @property
    def intensity(self):
        return arithmetic_intensity(self.flops, self.bytes)

    @property
    def gflops_per_second(self):
        return None if self.total_time <= 0 else self.flops / self.total_time / 1e9


class Profiler:
    """Watch every op and layer: `with Profiler() as prof: model(x)`, then `prof.flops`, `print(prof.table())`.

    Entering the same profiler again adds to its profile. Profilers do not nest.

    Python's cyclic garbage collector is off inside the block (as it was, afterwards): every
    collection would walk the profiler's own growing list of events, and each pause would be
    charged to whichever layer happened to trigger it. Measured on a GPT decoding with its KV
    cache: one block's attention showed 3x the time of the three others, and the profile 22% more
    time, until the collector was off. Reference counting still frees everything without cycles.
    """

    def __init__(self):
        self._events = []  # (seconds since the previous event, kind, signature of an op or module)
        self._wall = 0.0  # seconds inside `with` blocks, overhead included
        self._tail = 0.0  # seconds from the last event to the end of each block
        self._last = self._started = 0.0
        self._handles = ()
        self._summary = None
        self._collecting = False  # whether the garbage collector was on when the block began

    # ---- installing and removing the two seams ------------------------------------------------
    def __enter__(self):
        previous = set_op_observer(self._on_op)
        if previous is not None:
            set_op_observer(previous)
            raise RuntimeError(
                "Profiler: another profiler (or op observer) is already watching the ops, and "
                "profilers do not nest; finish the other `with Profiler()` block first"
            )
        self._handles = (register_module_forward_pre_hook(self._on_enter), register_module_forward_hook(self._on_exit))
        self._summary = None
        self._collecting = gc.isenabled()
        gc.disable()
        self._started = self._last = perf_counter()
        return self

    def __exit__(self, *exception):
        now = perf_counter()
        if self._collecting:
            gc.enable()
        set_op_observer(None)
        for handle in self._handles:
            handle.remove()
        self._tail += now - self._last
        self._wall += now - self._started
        self._summary = None
        return False

    # ---- the callbacks ---------------------------------------------------------------------------
    def _on_op(self, op, inputs, output, saved):
        """Module 01's observer: one event per op, its interval since the previous event and its signature.

        TODO: skip ops without inputs (return at once: their time goes to the next op). Build the
              signature (op, ((shape, dtype) of each input), output shape, output dtype, view,
              bytes saved), where view is True for an op in ALWAYS_VIEWS and for an op in
              MAYBE_VIEWS whose output shares memory with inputs[0], and bytes saved is
              saved_bytes(saved) (0 for a view, and when `saved` is empty: skip the call).
              Append (now - self._last, _OP, signature) to self._events, and end with
              `self._last = perf_counter()`: the next interval starts when this callback is done.
        HINT: `np.may_share_memory(output.data, inputs[0].data)` is a cheap overlap test. Read
              shapes from `.data.shape` and dtypes from `.data.dtype`; build one tuple.
        """
        now = perf_counter()
        ### BEGIN SOLUTION
        if not inputs:
            return
        data = output.data
        view = op in ALWAYS_VIEWS or (op in MAYBE_VIEWS and np.may_share_memory(data, inputs[0].data))
        kept = saved_bytes(saved) if saved and not view else 0
        shapes = tuple([(t.data.shape, t.data.dtype) for t in inputs])
        self._events.append((now - self._last, _OP, (op, shapes, data.shape, data.dtype, view, kept)))
        self._last = perf_counter()
        ### END SOLUTION

    def _on_enter(self, module, args):
        self._events.append((perf_counter() - self._last, _ENTER, module))
        self._last = perf_counter()

    def _on_exit(self, module, args, output):
        self._events.append((perf_counter() - self._last, _EXIT, module))
        self._last = perf_counter()

    # ---- the accounting, done when results are asked for ---------------------------------------
    def _close_frame(self, frame, clock, stack, modules):
        """Account a finished call of a module: `frame` = [module, name, depth, start clock,
        seconds in child modules, FLOPs, bytes], `clock` the overhead-free time of its end.

        TODO: total = clock - start; self time = total - seconds in child modules. Add one call,
              the self and total times, FLOPs and bytes to modules[name], a list [kind, depth,
              calls, self, total, flops, bytes, all counted]. If a parent frame is open
              (stack[-1]), add this call's total to the parent's seconds in child modules, and
              its FLOPs and bytes to the parent's (a frame's items 4, 5 and 6).
        """
        module, name, depth, start, in_children, flops, nbytes = frame
        ### BEGIN SOLUTION
        total = clock - start
        entry = modules[name]
        entry[2] += 1
        entry[3] += total - in_children
        entry[4] += total
        entry[5] += flops
        entry[6] += nbytes
        if stack:
            parent = stack[-1]
            parent[4] += total
            parent[5] += flops
            parent[6] += nbytes
        ### END SOLUTION

    def _summarise(self):
        """Walk the events once: per-signature calls and time, per-module rows, Python between ops."""
        if self._summary is not None:
            return self._summary
        clock = between = 0.0
        per_signature = {}  # signature -> [calls, seconds, (FLOPs or None, bytes) of one call]
        modules = {}  # name -> [kind, depth, calls, self, total, flops, bytes, all counted], in order of first call
        stack = []  # open frames, innermost last
        subtree_names = {}  # id(parent) -> {id(descendant): dotted name}
        for seconds, kind, payload in self._events:
            clock += seconds
            if kind == _OP:
                entry = per_signature.get(payload)
                if entry is None:
                    entry = per_signature[payload] = [0, 0.0, call_cost(payload)]
                entry[0] += 1
                entry[1] += seconds
                if stack:
                    flops, nbytes = entry[2]
                    stack[-1][5] += flops or 0
                    stack[-1][6] += nbytes
                    if flops is None:  # this layer and all around it ran an op without a FLOP rule
                        for frame in stack:
                            modules[frame[1]][7] = False
                continue
            between += seconds
            if kind == _ENTER:
                name = self._module_name(stack, payload, subtree_names)
                modules.setdefault(name, [type(payload).__name__, len(stack), 0, 0.0, 0.0, 0, 0, True])
                stack.append([payload, name, len(stack), clock, 0.0, 0, 0])
            elif any(frame[0] is payload for frame in stack):
                while True:  # frames above it were left open by an exception: they end here too
                    frame = stack.pop()
                    self._close_frame(frame, clock, stack, modules)
                    if frame[0] is payload:
                        break
        clock += self._tail
        between += self._tail
        while stack:  # still open when the block ended (the profiler was left from inside a forward)
            self._close_frame(stack.pop(), clock, stack, modules)
        self._summary = (clock, between, per_signature, modules)
        return self._summary

    @staticmethod
    def _module_name(stack, module, subtree_names):
        """Dotted name of `module` under the outermost module being called ("GPT.blocks.0.mlp")."""
        if not stack:
            return type(module).__name__
        parent, parent_name = stack[-1][0], stack[-1][1]
        names = subtree_names.get(id(parent))
        if names is None:
            names = subtree_names[id(parent)] = {id(m): n for n, m in parent.named_modules() if n}
        return f"{parent_name}.{names.get(id(module), type(module).__name__)}"

    # ---- results ---------------------------------------------------------------------------------
    @property
    def total_time(self):
        """Seconds profiled, the profiler's own overhead left out."""
        return self._summarise()[0]

    @property
    def wall_time(self):
        """Seconds inside the `with` blocks, the profiler's overhead included."""
        return self._wall

    @property
    def overhead_time(self):
        """Seconds the profiler's callbacks took: the wall time that no interval holds."""
        return self._wall - self.total_time

    @property
    def between_ops_time(self):
        """Seconds of Python that ran between ops (layers' own code, call overhead)."""
        return self._summarise()[1]

    @property
    def flops(self):
        """FLOPs of every op that has a rule (a multiply-add counts 2)."""
        return sum((flops or 0) * calls for calls, _, (flops, _) in self._summarise()[2].values())

    @property
    def bytes_moved(self):
        """Bytes every op must have moved, added up."""
        return sum(nbytes * calls for calls, _, (_, nbytes) in self._summarise()[2].values())

    @property
    def uncounted_ops(self):
        """Names of the ops that ran but have no FLOP rule."""
        return sorted({signature[0] for signature, (_, _, (flops, _)) in self._summarise()[2].items() if flops is None})

    def key_averages(self, group_by_input_shape=False):
        """One OpStats per op name (or per name and input shapes), the most time first."""
        rows = {}
        for signature, (calls, seconds, (flops, nbytes)) in self._summarise()[2].items():
            shapes = tuple(shape for shape, _ in signature[1])
            key = (signature[0], shapes) if group_by_input_shape else signature[0]
            row = rows.setdefault(key, {"calls": 0, "time": 0.0, "flops": 0, "bytes": 0, "shapes": {}, "counted": True})
            row["calls"] += calls
            row["time"] += seconds
            row["bytes"] += nbytes * calls
            row["counted"] &= flops is not None
            row["flops"] += (flops or 0) * calls
            row["shapes"][shapes] = row["shapes"].get(shapes, 0.0) + seconds
        stats = [OpStats(key[0] if group_by_input_shape else key, row["calls"], row["time"],
                         max(row["shapes"], key=row["shapes"].get), row["flops"] if row["counted"] else None,
                         row["bytes"], len(row["shapes"]))
                 for key, row in rows.items()]
        return sorted(stats, key=lambda row: -row.time)

    def module_stats(self):
        """One ModuleStats per module name, in the order of their first call."""
        return [ModuleStats(*[name, *entry]) for name, entry in self._summarise()[3].items()]

    def table(self, row_limit=15, group_by_input_shape=False, peak_gflops=None, max_depth=None):
        """The report: the machine, the totals, then the op table and the layer table (text).

        row_limit: ops shown (the rest summed in one row); max_depth: deepest layer shown.
        """
        return format_profile(self, row_limit, group_by_input_shape, peak_gflops, max_depth)

# %% [markdown]
# ### Test: the profiler sees every op, under `no_grad` too, and counts its FLOPs

# %%
import tinytorch.core.autograd  # noqa: E402,F401  (module 05: backward() and no_grad)
from tinytorch.core.autograd import no_grad  # noqa: E402


def test_unit_profiler_ops():
    a, b = randn(32, 64), randn(64, 16)
    with Profiler() as prof:
        product = a @ b
        shifted = product + 1.0  # the constant 1.0 is not an op of its own
        flat = shifted.reshape(-1)
        with no_grad():
            flat.sum()
    rows = {row.name: row for row in prof.key_averages()}
    assert set(rows) == {"matmul", "add", "reshape", "sum"}, sorted(rows)
    assert rows["matmul"].flops == 2 * 32 * 64 * 16 and rows["add"].flops == 32 * 16
    assert rows["reshape"].bytes == 0, "a reshape of contiguous data is a view"
    assert rows["matmul"].input_shapes == ((32, 64), (64, 16))
    assert prof.flops == 2 * 32 * 64 * 16 + 32 * 16 + (32 * 16 - 1)
    assert all(row.time >= 0 for row in rows.values())
    assert prof.total_time <= prof.wall_time, "the profiler leaves its own overhead out"
    assert abs(sum(r.time for r in rows.values()) + prof.between_ops_time - prof.total_time) < 1e-9, \
        "the rows and the Python between ops add up to the whole"
    try:
        with Profiler():
            with Profiler():
                pass
        raise AssertionError("profilers must not nest")
    except RuntimeError as error:
        assert "nest" in str(error)
    with Profiler() as after:
        a + b[:32, :1]
    assert {r.name for r in after.key_averages()} == {"getitem", "add"}, "the observer was put back cleanly"
    ### BEGIN HIDDEN TESTS
    with Profiler() as by_shape:
        a @ b
        b.T @ a.T
    assert len(by_shape.key_averages(group_by_input_shape=True)) == 4, "two matmuls, two transposes"
    merged = {row.name: row for row in by_shape.key_averages()}
    assert merged["matmul"].calls == 2 and merged["matmul"].signatures == 2 and merged["permute"].bytes == 0
    ### END HIDDEN TESTS
    print("profiler, ops: ok")


test_unit_profiler_ops()

# %% [markdown]
# ### Test: time and FLOPs per layer
#
# A small model of module 03's layers: the profiler names each layer by its place in the
# model (`Sequential.0`), and a layer's FLOPs include its children's.

# %%
from tinytorch.core.layers import Linear, ReLU, Sequential  # noqa: E402


def test_unit_profiler_modules():
    manual_seed(0)
    model = Sequential(Linear(20, 30), ReLU(), Sequential(Linear(30, 10), ReLU()))
    x = randn(8, 20)
    with Profiler() as prof:
        model(x)
    layers = {row.name: row for row in prof.module_stats()}
    assert list(layers) == ["Sequential", "Sequential.0", "Sequential.1", "Sequential.2",
                            "Sequential.2.0", "Sequential.2.1"], list(layers)
    assert layers["Sequential.0"].kind == "Linear" and layers["Sequential.2.0"].depth == 2
    first = 2 * 8 * 20 * 30 + 8 * 30  # matmul + bias add
    second = 2 * 8 * 30 * 10 + 8 * 10
    assert layers["Sequential.0"].flops == first
    assert layers["Sequential.2"].flops == second + 8 * 10, "a container counts its children's ops"
    assert layers["Sequential"].flops == prof.flops == first + 8 * 30 + second + 8 * 10
    root = layers["Sequential"]
    children = [layers[n] for n in ("Sequential.0", "Sequential.1", "Sequential.2")]
    assert abs(root.self_time + sum(c.total_time for c in children) - root.total_time) < 1e-9
    assert all(row.self_time >= -1e-12 and row.self_time <= row.total_time + 1e-12 for row in layers.values())
    ### BEGIN HIDDEN TESTS
    with Profiler() as twice:
        model(x)
        model(x)
    assert {row.name: row.calls for row in twice.module_stats()}["Sequential.2.1"] == 2
    ### END HIDDEN TESTS
    print("profiler, layers: ok")


test_unit_profiler_modules()

# %% [markdown]
# ## Step 5: the report
#
# The report is given: it prints what Steps 1 to 4 measured. It always begins with the machine
# (cores, BLAS library and threads, and the measured matmul peak) and the FLOP convention, and
# ends with the ops it could not count. For each op: calls, time, share of the profiled time, the
# input shapes of its most expensive signature, FLOPs, bytes moved, arithmetic intensity, and the
# speed reached in GFLOP/s and as a fraction of the peak.

# %%
#| export
def _quantity(value, scale, digits=1):
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def _shapes(shapes, signatures):
    text = " ".join(str(s).replace(" ", "") for s in shapes)
    return text + (f" +{signatures - 1}" if signatures > 1 else "")


def format_profile(profiler, row_limit=15, group_by_input_shape=False, peak_gflops=None, max_depth=None):
    """The text report of a Profiler (see `Profiler.table`)."""
    peak = matmul_peak_gflops() if peak_gflops is None else peak_gflops
    total = profiler.total_time
    flops = profiler.flops
    speed = flops / total / 1e9 if total > 0 else 0.0
    lines = [
        f"TinyTorch profile: {total * 1e3:.3f} ms profiled, the profiler's own {profiler.overhead_time * 1e3:.3f} ms "
        "left out",
        machine_summary(peak, measured=peak_gflops is None),
        f"FLOPs (a multiply-add counts 2, as PyTorch's counter): {flops / 1e6:,.2f} MFLOP, "
        f"{profiler.bytes_moved / MIB:,.2f} MiB moved, {speed:.1f} GFLOP/s = {speed / peak:.0%} of the peak",
        "",
        f"{'op':<30} {'calls':>6} {'ms':>9} {'share':>6}  {'input shapes':<30} {'MFLOP':>9} {'MiB':>8} "
        f"{'FLOP/B':>7} {'GFLOP/s':>8} {'%peak':>6}",
    ]
    rows = profiler.key_averages(group_by_input_shape)
    for row in rows[:row_limit]:
        rate = row.gflops_per_second
        lines.append(
            f"{row.name:<30} {row.calls:>6} {row.time * 1e3:>9.3f} {row.time / total if total else 0:>6.1%}  "
            f"{_shapes(row.input_shapes, row.signatures):<30.30} {_quantity(row.flops, 1e6):>9} "
            f"{_quantity(row.bytes, MIB, 2):>8} {_quantity(row.intensity, 1, 2):>7} {_quantity(rate, 1):>8} "
            f"{'-' if rate is None else f'{rate / peak:.0%}':>6}"
        )
    if len(rows) > row_limit:
        rest = rows[row_limit:]
        lines.append(f"{f'({len(rest)} more ops)':<30} {sum(r.calls for r in rest):>6} "
                     f"{sum(r.time for r in rest) * 1e3:>9.3f} {sum(r.time for r in rest) / total if total else 0:>6.1%}")
    between = profiler.between_ops_time
    lines.append(f"{'(Python between ops)':<30} {'':>6} {between * 1e3:>9.3f} {between / total if total else 0:>6.1%}")
    modules = profiler.module_stats()
    if modules:
        lines += ["", f"{'layer':<40} {'calls':>6} {'self ms':>9} {'total ms':>9} {'share':>6} {'MFLOP':>9} "
                      f"{'MiB':>8} {'FLOP/B':>7} {'GFLOP/s':>8}"]
        names = [row.name for row in modules]
        for row in modules:
            if max_depth is not None and row.depth > max_depth:
                continue
            label = row.name
            if row.depth:  # the name under its parent: what follows the longest layer name it extends
                parent = max((n for n in names if row.name.startswith(n + ".")), key=len, default="")
                label = f"{row.name[len(parent) + 1:] if parent else row.name} ({row.kind})"
            label = "  " * row.depth + label
            at_least = "" if row.all_counted else "+"
            lines.append(
                f"{label:<40.40} {row.calls:>6} {row.self_time * 1e3:>9.3f} {row.total_time * 1e3:>9.3f} "
                f"{row.total_time / total if total else 0:>6.1%} {_quantity(row.flops, 1e6) + at_least:>9} "
                f"{_quantity(row.bytes, MIB, 2):>8} {_quantity(row.intensity, 1, 2) + at_least:>7} "
                f"{_quantity(row.gflops_per_second, 1) + at_least:>8}"
            )
    uncounted = profiler.uncounted_ops
    if uncounted:
        lines += ["", "not counted (no FLOP rule, see FLOP_RULES): " + ", ".join(uncounted)
                  + ("; a layer's + marks a lower bound: it ran some of them" if modules else "")]
    return "\n".join(lines)

# %% [markdown]
# ### Test: the report

# %%
def test_unit_report():
    from tinytorch.core.layers import Softmax

    manual_seed(0)
    model = Sequential(Linear(20, 30), ReLU(), Sequential(Linear(30, 10), Softmax(dim=1)))
    with Profiler() as prof:
        model(randn(8, 20))
    report = prof.table(peak_gflops=100.0)
    for expected in ("thread", "peak 100 GFLOP/s", "multiply-add counts 2", "matmul", "(Python between ops)",
                     "Sequential", "  0 (Linear)", "    1 (Softmax)", "not counted (no FLOP rule, see FLOP_RULES): softmax"):
        assert expected in report, f"the report lacks {expected!r}:\n{report}"
    print(report)


test_unit_report()

# %% [markdown]
# ## Step 6: memory, measured
#
# The public course estimated memory as "parameters x 4 bytes" when its measurement came out
# small. We measure. Python's `tracemalloc` records every allocation that goes through Python's
# allocator hooks — and NumPy reports its array buffers to it (`PyTraceMalloc_Track`), so every
# array the framework creates is counted, and every array it frees is subtracted. We check that
# in the test below: a 1000x1000 float32 array shows up as 4,000,000 bytes.
#
# `MemoryProfiler.measure(name)` is a context manager. It starts tracing if nobody has, resets
# the peak, and records two numbers for the block:
#
# - **peak**: the most memory allocated at once during the block, above what existed before it;
# - **retained**: what is still allocated at its end (what the block left behind: the graph of
#   a forward pass, the state an optimizer created).
#
# `tracemalloc` keeps one peak for the whole process, and `reset_peak()` forgets it. A block
# inside another must not make the outer block forget its peak, so before every reset the
# profiler hands the peak seen so far to every block still open (`_note_peak`, given).
#
# Tracing has a price: every allocation, of every Python object too, goes through a hook that
# records where it came from. Measured on the MLP's forward and backward pass (without the
# optimizer): 1.80 ms without tracing, 2.59 ms with it at batch 128, and 1.07 against 1.82 ms at
# batch 1, where small objects are most of the work. Measure memory and time in separate runs.

# %%
#| export
@dataclass(frozen=True)
class MemoryMeasurement:
    """What one `measure(name)` block allocated."""

    name: str
    peak_bytes: int  # most bytes allocated at once during the block, above the start
    retained_bytes: int  # bytes still allocated at the end, above the start

    @property
    def peak_mb(self):
        return self.peak_bytes / MIB

    @property
    def retained_mb(self):
        return self.retained_bytes / MIB


class MemoryProfiler:
    """`with profiler.measure("adam_step"): optimizer.step()`, then `profiler.peak_memory_mb`."""

    def __init__(self):
        self.measurements = {}  # name -> MemoryMeasurement of its last block
        self._open = []  # [start bytes, highest bytes seen] of the blocks not yet finished
        self._last = None

    def _note_peak(self):
        peak = tracemalloc.get_traced_memory()[1]
        for block in self._open:
            block[1] = max(block[1], peak)

    @contextlib.contextmanager
    def measure(self, name):
        """Measure the peak and the retained bytes of the block, under `name`.

        TODO: start tracemalloc if it is not tracing yet (and stop it at the end in that case);
              hand the peak so far to the open blocks, reset the peak, note the current bytes;
              yield; then (in a `finally:`) hand the peak to the open blocks again, and record
              MemoryMeasurement(name, highest - start, current - start) in self.measurements
              and as self._last.
        HINT: `tracemalloc.get_traced_memory()` returns (current, peak) in bytes;
              `tracemalloc.reset_peak()` sets the peak to the current size. Push
              `[start, start]` on self._open before the yield and pop it after.
        """
        ### BEGIN SOLUTION
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        self._note_peak()
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        block = [start, start]
        self._open.append(block)
        try:
            yield self
        finally:
            self._note_peak()
            self._open.remove(block)
            current = tracemalloc.get_traced_memory()[0]
            self._last = self.measurements[name] = MemoryMeasurement(name, block[1] - start, current - start)
            if started:
                tracemalloc.stop()
        ### END SOLUTION

    @property
    def peak_memory_mb(self):
        """Peak of the last finished block, in MB (2**20 bytes)."""
        if self._last is None:
            raise RuntimeError("MemoryProfiler: nothing measured yet; use `with profiler.measure('name'): ...` first")
        return self._last.peak_mb

    def report(self):
        """One line per measured block: peak and retained MB."""
        return "\n".join(f"{m.name:<24} peak {m.peak_mb:9.3f} MB   retained {m.retained_mb:9.3f} MB"
                         for m in self.measurements.values())

# %% [markdown]
# ### Test: tracemalloc sees NumPy's arrays

# %%
def test_unit_memory_profiler():
    profiler = MemoryProfiler()
    with profiler.measure("one array"):
        kept = np.ones((1000, 1000), dtype=np.float32)
    measured = profiler.measurements["one array"]
    assert abs(measured.retained_bytes - kept.nbytes) < 4096, f"NumPy's 4,000,000 bytes, measured {measured.retained_bytes}"
    with profiler.measure("temporary"):
        temporary = np.ones((500, 1000), dtype=np.float32)
        del temporary
    assert abs(profiler.peak_memory_mb - 2_000_000 / MIB) < 0.01 and profiler.measurements["temporary"].retained_bytes < 4096
    with profiler.measure("outer"):
        big = np.ones((1000, 500), dtype=np.float32)
        del big
        with profiler.measure("inner"):
            small = np.ones(1000, dtype=np.float32)  # noqa: F841
    assert profiler.measurements["outer"].peak_bytes >= 2_000_000, "an inner block must not hide the outer's peak"
    assert profiler.measurements["inner"].peak_bytes < 100_000
    assert "outer" in profiler.report()
    ### BEGIN HIDDEN TESTS
    try:
        MemoryProfiler().peak_memory_mb
        raise AssertionError("asking before measuring must explain itself")
    except RuntimeError as error:
        assert "measure" in str(error)
    ### END HIDDEN TESTS
    print("memory profiler: ok")


test_unit_memory_profiler()

# %% [markdown]
# ## Step 7: a training step, split
#
# One training step does four things: fetch a batch, run the forward pass (and the loss), run the
# backward pass, and update the parameters. `profile_training_step` times each phase separately,
# over several steps after a warm-up, and reports the medians. It takes the step's parts as
# functions, so that it fits any model: `next_batch()` returns `(inputs, targets)` and
# `loss_of(inputs, targets)` runs the model and returns the loss (for the MLP,
# `lambda x, y: loss_fn(model(x), y)`; for the GPT, `lambda x, y: model(x, y)[1]`).
#
# `training_memory` runs one step under the memory profiler and splits the memory into the four
# parts of the mathematical foundations, each **measured**: parameters and gradients from their
# arrays, the optimizer's state from the arrays in `optimizer.state`, and the activations as the
# bytes that the forward pass left allocated (the graph's saved arrays, held until backward).
# The step's peak comes from `tracemalloc` too.

# %%
#| export
PHASES = ("data", "forward", "backward", "optimizer")


@dataclass(frozen=True)
class StepTimes:
    """Median milliseconds of each phase of a training step."""

    data: float
    forward: float
    backward: float
    optimizer: float
    steps: int

    @property
    def total(self):
        return self.data + self.forward + self.backward + self.optimizer

    def table(self):
        lines = [f"training step, median of {self.steps} steps: {self.total:.2f} ms ({machine_summary()})"]
        for phase in PHASES:
            milliseconds = getattr(self, phase)
            lines.append(f"  {phase:<10} {milliseconds:9.2f} ms  {milliseconds / self.total:6.1%}")
        return "\n".join(lines)


def profile_training_step(loss_of, optimizer, next_batch, steps=5, warmup=2):
    """Time the four phases of `steps` training steps (after `warmup` untimed ones); medians in ms.

    data: `next_batch()`; forward: `loss_of(inputs, targets)`; backward: `loss.backward()`;
    optimizer: `optimizer.step()` then `optimizer.zero_grad()`.

    TODO: run warmup + steps steps; in each, read perf_counter() between the phases; keep
          the milliseconds of each phase of the timed steps; return StepTimes of the medians.
    HINT: `statistics.median(values)`; `dict(zip(PHASES, ...))` pairs phases with durations.
    """
    ### BEGIN SOLUTION
    samples = {phase: [] for phase in PHASES}
    for step in range(warmup + steps):
        start = perf_counter()
        inputs, targets = next_batch()
        fetched = perf_counter()
        loss = loss_of(inputs, targets)
        forwarded = perf_counter()
        loss.backward()
        backwarded = perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        done = perf_counter()
        if step >= warmup:
            durations = (fetched - start, forwarded - fetched, backwarded - forwarded, done - backwarded)
            for phase, seconds in zip(PHASES, durations):
                samples[phase].append(seconds * 1e3)
    return StepTimes(**{phase: statistics.median(values) for phase, values in samples.items()}, steps=steps)
    ### END SOLUTION


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of one training step, each part measured."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: int  # what the forward pass left allocated for the backward pass
    peak: int  # the step's peak above what existed before it (tracemalloc)

    def table(self):
        lines = [f"training-step memory (MB = 2**20 bytes); parameters {self.parameters / MIB:.2f} MB"]
        for part in ("parameters", "gradients", "optimizer_state", "activations"):
            nbytes = getattr(self, part)
            lines.append(f"  {part:<16} {nbytes / MIB:9.2f} MB  {nbytes / max(self.parameters, 1):6.2f}x the parameters")
        lines.append(f"  {'step peak':<16} {self.peak / MIB:9.2f} MB  (allocated during the step, at most, at once)")
        return "\n".join(lines)


def unique_parameters(model):
    """The model's parameters, each once (tied weights are one tensor)."""
    seen = {}
    for parameter in model.parameters():
        seen.setdefault(id(parameter), parameter)
    return list(seen.values())


def optimizer_state_bytes(optimizer):
    """Bytes of the arrays an optimizer keeps per parameter (its `state`: momentum, Adam's m and v)."""
    state = getattr(optimizer, "state", None)
    if not isinstance(state, dict):
        raise TypeError(f"optimizer_state_bytes: {type(optimizer).__name__} has no `state` dict of per-parameter "
                        "entries; pass an optimizer of module 06 (SGD, Adam, AdamW) or one built the same way")
    total = 0
    for entry in state.values():
        for value in entry.values():  # arrays (or Tensors) of state; step counters are plain numbers
            array = value.data if isinstance(getattr(value, "data", None), np.ndarray) else value
            if isinstance(array, np.ndarray):
                total += array.nbytes
    return total


def training_memory(model, loss_of, optimizer, inputs, targets):
    """Run one training step under the memory profiler; return its TrainingMemory.

    TODO: with a MemoryProfiler, measure the whole step ("step") and, inside it, the forward pass
          ("forward": loss = loss_of(inputs, targets)); then loss.backward() and optimizer.step().
          parameters: bytes of unique_parameters(model); gradients: bytes of their .grad;
          optimizer_state: optimizer_state_bytes(optimizer); activations: what "forward"
          retained; peak: the "step" block's peak. Call optimizer.zero_grad() at the very end.
    HINT: `profiler.measurements["forward"].retained_bytes`; `p.grad.nbytes` for p with a grad.
    """
    ### BEGIN SOLUTION
    profiler = MemoryProfiler()
    parameters = unique_parameters(model)
    with profiler.measure("step"):
        with profiler.measure("forward"):
            loss = loss_of(inputs, targets)
        loss.backward()
        optimizer.step()
    split = TrainingMemory(
        parameters=sum(p.nbytes for p in parameters),
        gradients=sum(p.grad.nbytes for p in parameters if p.grad is not None),
        optimizer_state=optimizer_state_bytes(optimizer),
        activations=profiler.measurements["forward"].retained_bytes,
        peak=profiler.measurements["step"].peak_bytes,
    )
    optimizer.zero_grad()
    return split
    ### END SOLUTION

# %% [markdown]
# ### Test: the split of a small training step
#
# Module 06's optimizers are not among this module's prerequisites, so the test writes the
# smallest optimizer with state: SGD with momentum, one buffer per parameter (state = 1x the
# parameters). The graded tests run module 06's Adam, whose state must measure 2x.

# %%
class _MomentumSGD:
    """SGD with momentum in a few lines: `state[param]["momentum_buffer"]`, as module 06 keeps it."""

    def __init__(self, parameters, lr=0.01, momentum=0.9):
        self.parameters, self.lr, self.momentum, self.state = list(parameters), lr, momentum, {}

    def step(self):
        for p in self.parameters:
            buffer = self.state.setdefault(p, {}).setdefault("momentum_buffer", np.zeros_like(p.data))
            buffer *= self.momentum
            buffer += p.grad.data
            p.data -= self.lr * buffer
            p.mark_modified()  # an in-place update: a graph recorded before it is stale

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None


def test_unit_training_step_split():
    manual_seed(0)
    model = Sequential(Linear(50, 40), ReLU(), Linear(40, 5))
    optimizer = _MomentumSGD(model.parameters())
    x, y = randn(16, 50), randn(16, 5)

    def loss_of(inputs, targets):
        difference = model(inputs) - targets
        return (difference * difference).mean()

    times = profile_training_step(loss_of, optimizer, lambda: (x, y), steps=3, warmup=1)
    assert all(getattr(times, phase) >= 0 for phase in PHASES) and times.steps == 3
    assert abs(times.total - sum(getattr(times, p) for p in PHASES)) < 1e-9 and "backward" in times.table()
    memory = training_memory(model, loss_of, _MomentumSGD(model.parameters()), x, y)
    parameter_bytes = (50 * 40 + 40 + 40 * 5 + 5) * 4
    assert memory.parameters == parameter_bytes and memory.gradients == parameter_bytes
    assert memory.optimizer_state == parameter_bytes, "one momentum buffer per parameter: 1x"
    assert memory.activations >= 16 * (40 + 40 + 5) * 4, "the forward pass keeps at least the layers' outputs"
    assert memory.peak >= memory.gradients + memory.optimizer_state, "the step allocated the gradients and the buffers"
    assert all(p.grad is None for p in model.parameters()), "the split leaves no gradients behind"
    ### BEGIN HIDDEN TESTS
    assert "optimizer_state" in memory.table() and "1.00x" in memory.table()
    try:
        optimizer_state_bytes(object())
        raise AssertionError("an object without state must be explained")
    except TypeError as error:
        assert "state" in str(error)
    ### END HIDDEN TESTS
    print(memory.table())


test_unit_training_step_split()

# %% [markdown]
# ## Systems analysis: where do time and memory go?
#
# The measurements below run on random inputs of the right shapes (the profile of a step does not
# depend on the values): the MNIST MLP of module 03 (784-256-128-10, batch 128, the benchmark's
# setting; the milestone trains a 784-512-256-10 with the same pipeline), the CIFAR-10 CNN that
# `milestones/cifar10_model.py` builds (batch 64), and module 13's GPT in nanoGPT's CPU
# configuration from `milestones/tinygpt.py` (4 layers, 4 heads, 128-wide, context 64, batch 12,
# Tiny Shakespeare's 65 characters). They use modules 04, 06, 09 and 13, which this module does
# not build on: a model whose module you have not completed is skipped with a note.
#
#     python modules/14_profiling/profiling.py
#     OPENBLAS_NUM_THREADS=1 python modules/14_profiling/profiling.py
#
# Figures quoted below: the course's 2-core machine, shared with other jobs while they were taken
# (load average about 2), float32, OpenBLAS 0.3.31 (NumPy's scipy-openblas) on the number of
# threads stated; `threadpoolctl` is not installed, so the thread count comes from OpenBLAS itself.
#
# **1. What the profiler costs, and what its timing misses.** The overhead is the median forward
# pass inside a fresh `with Profiler():` against the median without, call by call, the two
# alternating (`profiler_overhead`, given below; `benchmarks/bench_profiler_overhead.py` runs it
# on two MLPs). Alternating in one process is right here: both candidates are the same framework
# on the same thread pool, and the effect sought, a few percent, is smaller than the drift between
# two processes on a shared machine. The timing error: three timings of the same op in turn, the
# bare NumPy kernel, the framework's op without the profiler, and the interval the profiler
# charges to that op.

# %%
#| export
def profiler_overhead(function, repeats=1000, warmup=20):
    """(median ms of `function()`, median ms of it inside a fresh `with Profiler():`), call by call.

    The two alternate, the order reversed every round, so that a load that comes and goes slows
    both alike; the profiler's setup is included in the second.
    """

    def profiled():
        with Profiler():
            function()

    candidates = (function, profiled)
    for _ in range(warmup):
        function()
        profiled()
    samples = ([], [])
    for round_number in range(repeats):
        for index in (0, 1) if round_number % 2 == 0 else (1, 0):
            start = perf_counter()
            candidates[index]()
            samples[index].append(perf_counter() - start)
    return statistics.median(samples[0]) * 1e3, statistics.median(samples[1]) * 1e3

# %%
def _milestone_module(name):
    """Import `milestones/<name>.py` of this checkout (the models that the milestones train)."""
    import importlib
    import sys
    from pathlib import Path

    import tinytorch

    folder = str(Path(tinytorch.__file__).resolve().parents[1] / "milestones")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def mnist_mlp():
    return Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))


def measure_timing_error(repeats=200):
    """{op: (us of the bare NumPy kernel, us of the framework's op, us the profiler charges to it)}.

    The three are timed in turn, `repeats` times; medians.
    """
    cases = {
        "add, 1,000 floats": (randn(1000), randn(1000), np.add, lambda a, b: a + b, repeats),
        "add, 1,000,000 floats": (randn(1000, 1000), randn(1000, 1000), np.add, lambda a, b: a + b, repeats // 4),
        "matmul 128x128": (randn(128, 128), randn(128, 128), np.matmul, lambda a, b: a @ b, repeats),
        "matmul 1024x1024": (randn(1024, 1024), randn(1024, 1024), np.matmul, lambda a, b: a @ b, repeats // 10),
    }
    rows = {}
    for name, (a, b, kernel, op, count) in cases.items():
        bare, framework, charged = [], [], []
        for _ in range(count):
            start = perf_counter()
            result = kernel(a.data, b.data)
            bare.append(perf_counter() - start)
            del result
            start = perf_counter()
            result = op(a, b)
            framework.append(perf_counter() - start)
            del result
            with Profiler() as prof:
                result = op(a, b)
            charged.append(prof.key_averages()[0].time)
            del result
        rows[name] = tuple(statistics.median(samples) * 1e6 for samples in (bare, framework, charged))
    return rows


if __name__ == "__main__":
    print(machine_summary(matmul_peak_gflops()))
    mlp = mnist_mlp()
    for rows in (128, 1):
        inputs = randn(rows, 784)
        plain, watched = profiler_overhead(lambda: mlp(inputs), repeats=2000)
        print(f"MLP forward, batch {rows:>3}: {plain:.3f} ms plain, {watched:.3f} ms profiled: overhead "
              f"{watched / plain - 1:+.1%} ({(watched - plain) * 1e3 / 23:.1f} us per event: 11 ops, 12 layer calls)")
    for name, (bare, framework, charged) in measure_timing_error().items():
        print(f"{name:<22}: NumPy kernel {bare:9.1f} us, the framework's op {framework:9.1f} us, "
              f"charged to it by the profiler {charged:9.1f} us")

# %% [markdown]
# Measured (`benchmarks/bench_profiler_overhead.py`, 2,000 calls of each, medians):
#
# | forward pass | BLAS threads | plain | profiled | overhead | per event |
# |---|---|---|---|---|---|
# | MLP 784-256-128-10, batch 128 | 2 | 0.534 ms | 0.581 ms | **+8.8%** | 2.0 us |
# | MLP 784-256-128-10, batch 128 | 1 | 0.817 ms | 0.870 ms | +6.5% | 2.3 us |
# | MLP 784-512-256-10 (the milestone's), batch 128 | 2 | 1.147 ms | 1.214 ms | +5.9% | 2.6 us |
# | MLP 784-512-256-10 (the milestone's), batch 128 | 1 | 1.662 ms | 1.729 ms | +4.1% | 2.6 us |
# | MLP 784-256-128-10, batch 1 | 2 | 0.078 ms | 0.105 ms | +35% | 1.2 us |
#
# (The module's own run of the cell above, 2,000 calls: +8.1% on 2 threads, +5.9% on 1.) The
# forward pass of the small MLP is 23 events (11 ops, 6 layers entered and left); the profiler
# costs about 2 microseconds for each, callbacks and hooks together: under 10% on every forward
# pass that does a batch's worth of work, and a third of a batch-1 pass (78 microseconds for 11
# ops and 6 layers: there the framework's own Python is the whole pass). The same profiler timed
# in separate processes gave 10.7% and 11.4%: there the drift between processes was larger than
# the effect.
#
# What the intervals charge to an op (1 BLAS thread):
#
# | op | NumPy kernel alone | the framework's op | charged by the profiler |
# |---|---|---|---|
# | add, 1,000 floats | 0.7 us | 1.7 us | 2.0 us |
# | matmul 128x128 | 34.9 us | 38.3 us | 36.2 us |
# | add, 1,000,000 floats | 444.5 us | 479.4 us | 469.8 us |
# | matmul 1024x1024 | 14,095 us | 14,175 us | 14,152 us |
#
# The interval charges an op what the op costs *in this framework* — its kernel and the Python
# around it — and that is what the framework's op measures on its own, within the noise. Against
# the bare kernel the gap is 1 to 4 microseconds of Python for small ops (most of a small op's
# time: per-op overhead is where a small framework wins or loses), and at most 8% for large ones
# (the million-float add). What the interval cannot separate is code that runs between two ops
# without being one (a NumPy call in a layer's `forward`, freeing an op's temporaries): it lands
# in the next op or, at a layer boundary, in "Python between ops", 2 to 5% of the profiles below.
# %% [markdown]
# **2. Where the time of each model goes.** Each model is profiled with its milestone's own
# recipe, taken from the milestone's script: the MNIST MLP (`build_mlp`, 784-512-256-10, batch
# 128, Adam at 1e-3), the CIFAR-10 CNN (`build_cifar_cnn`, batch 128, SGD with Nesterov momentum
# and weight decay, cross-entropy with label smoothing 0.1) and the GPT (nanoGPT's CPU
# configuration, batch 12, AdamW). The milestones combine modules that this one does not build on
# (04, 06, 08, 09, 12, 13); taking each model, loss and optimizer from its milestone keeps module
# 14 itself on modules 01, 03 and 05, and a milestone whose modules you have not completed is
# skipped with a note. Inputs are random, of the right shapes (a profile does not depend on the
# values); the data phase indexes a batch out of a pool of examples, as a loader slices a
# shuffled array. For each model: the forward pass under the profiler (op and layer tables),
# then the training step split into its four phases.

# %%
def _random_batches(inputs, targets, batch_size, seed=0):
    """next_batch() for a pool of examples: a random batch, indexed out of the pool."""
    rng = np.random.default_rng(seed)

    def next_batch():
        rows = rng.integers(0, len(inputs), batch_size)
        return Tensor(inputs[rows]), Tensor(targets[rows])

    return next_batch


@dataclass
class Recipe:
    """One milestone's training step: the model, its loss, its optimizer and its batches."""

    title: str
    model: object
    loss_of: object  # loss_of(inputs, targets) -> loss
    optimizer: object
    next_batch: object  # next_batch() -> (inputs, targets)
    forward: object  # forward(inputs): the model's forward pass alone
    max_depth: int = None  # deepest layer the report shows


def milestone_recipes(seed=0):
    """{name: Recipe} for the MNIST, CIFAR-10 and TinyGPT milestones whose modules are complete."""
    rng = np.random.default_rng(seed)
    manual_seed(seed)
    recipes = {}
    try:
        mnist = _milestone_module("mnist")
        mlp, loss_fn = mnist.build_mlp(), mnist.CrossEntropyLoss()
        pixels, digits = rng.standard_normal((1024, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1024)
        recipes["mlp"] = Recipe(f"MNIST MLP {'-'.join(map(str, (784, *mnist.HIDDEN, 10)))}, batch {mnist.BATCH_SIZE}",
                                mlp, lambda x, y: loss_fn(mlp(x), y),
                                mnist.Adam(mlp.parameters(), lr=mnist.LEARNING_RATE),
                                _random_batches(pixels, digits, mnist.BATCH_SIZE, seed), mlp)
    except NotImplementedError as missing:
        print(f"MNIST MLP skipped: {missing}")
    try:
        cifar10 = _milestone_module("cifar10")
        cnn, smoothed = cifar10.build_cifar_cnn(), cifar10.CrossEntropyLoss(label_smoothing=0.1)
        images, labels = rng.standard_normal((512, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 512)
        recipes["cnn"] = Recipe("CIFAR-10 CNN (build_cifar_cnn), batch 128", cnn, lambda x, y: smoothed(cnn(x), y),
                                cifar10.SGD(cnn.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                                _random_batches(images, labels, 128, seed), cnn)
    except NotImplementedError as missing:
        print(f"CIFAR-10 CNN skipped: {missing}")
    try:
        tinygpt = _milestone_module("tinygpt")
        settings = tinygpt.FULL
        gpt = tinygpt.GPT(tinygpt.GPTConfig(block_size=settings["block_size"], vocab_size=65,
                                            n_layer=settings["n_layer"], n_head=settings["n_head"],
                                            n_embd=settings["n_embd"]))
        ids = rng.integers(0, 65, (512, settings["block_size"] + 1))
        recipes["gpt"] = Recipe(
            f"GPT {settings['n_layer']} layers x {settings['n_embd']}, context {settings['block_size']}, "
            f"batch {settings['batch_size']}", gpt, lambda x, y: gpt(x, y)[1],
            tinygpt.AdamW(gpt.parameters(), lr=settings["lr"], betas=tinygpt.BETAS, weight_decay=tinygpt.WEIGHT_DECAY),
            _random_batches(ids[:, :-1], ids[:, 1:], settings["batch_size"], seed), lambda x: gpt(x), max_depth=2)
    except NotImplementedError as missing:
        print(f"GPT skipped: {missing}")
    return recipes


def analyse_models(steps=5):
    """Print each milestone model's forward-pass profile and the split of its training step."""
    results = {}
    for name, recipe in milestone_recipes().items():
        inputs, _ = recipe.next_batch()
        recipe.forward(inputs)  # warm-up: first calls pay for allocation and BLAS start-up
        with Profiler() as prof:
            recipe.forward(inputs)
        print(f"\n===== {recipe.title} =====")
        print(prof.table(row_limit=10, max_depth=recipe.max_depth))
        times = profile_training_step(recipe.loss_of, recipe.optimizer, recipe.next_batch, steps=steps)
        print(times.table())
        results[name] = prof, times
    return results


if __name__ == "__main__":
    analyse_models()

# %% [markdown]
# Measured with 1 BLAS thread, the steadier setting on a shared machine (2 threads: see the step
# table). Forward passes:
#
# **MNIST MLP** 784-512-256-10, batch 128: 1.76 ms profiled, 137 MFLOP, 78 GFLOP/s overall
# (51% of the measured peak, 154 GFLOP/s).
#
# | op | calls | ms | share | MFLOP | MiB | FLOP/B | GFLOP/s |
# |---|---|---|---|---|---|---|---|
# | matmul | 3 | 1.471 | 83.7% | 137.0 | 3.18 | 41.1 | 93.1 |
# | add (bias) | 3 | 0.116 | 6.6% | 0.1 | 0.76 | 0.12 | 0.9 |
# | relu | 2 | 0.076 | 4.3% | 0.1 | 0.75 | 0.12 | 1.3 |
# | permute (`W.T`), reshape (Flatten): views | 4 | 0.067 | 3.8% | 0 | 0 | | |
# | Python between ops | | 0.028 | 1.6% | | | | |
#
# By layer: the first Linear, 784 -> 512, takes 66% of the time and 75% of the FLOPs.
#
# **CIFAR-10 CNN** (`build_cifar_cnn`), batch 128: 140 ms profiled, 3,259 MFLOP, 23 GFLOP/s
# overall (15% of the peak).
#
# | op | calls | ms | share | MFLOP | MiB | FLOP/B | GFLOP/s |
# |---|---|---|---|---|---|---|---|
# | conv2d | 4 | 84.1 | 59.9% | 3,246 | 114.9 | 26.9 | 38.6 |
# | max_pool2d | 3 | 28.6 | 20.4% | not counted | 38.5 | | |
# | batch_norm | 4 | 16.0 | 11.4% | not counted | 58.0 | | |
# | relu | 4 | 8.4 | 6.0% | 7.6 | 58.0 | 0.12 | 0.9 |
# | matmul (the classifier) | 1 | 0.2 | 0.1% | 5.2 | 1.1 | 4.6 | 25.3 |
# | Python between ops | | 2.9 | 2.0% | | | | |
#
# By layer: the 32->64 convolution at 16x16 takes 23% (32.7 ms, 37 GFLOP/s); the first
# convolution 12% although it does 7% of the FLOPs (3 input channels: each output a dot product
# of 27 terms, 7 FLOP per byte, 14 GFLOP/s); the first max pool 11%.
#
# **GPT** (4 layers, 128 wide, context 64), batch 12: 47.1 ms profiled, 1,326 MFLOP, 28 GFLOP/s.
#
# | op | calls | ms | share | MFLOP | MiB | FLOP/B | GFLOP/s |
# |---|---|---|---|---|---|---|---|
# | matmul | 17 | 16.0 | 34.0% | 1,221 | 27.6 | 42.2 | 76.3 |
# | add (biases, residuals) | 25 | 7.6 | 16.2% | 4.4 | 36.8 | 0.11 | 0.6 |
# | gelu_tanh | 4 | 7.6 | 16.0% | not counted | 18.0 | | |
# | scaled_dot_product_attention | 4 | 7.4 | 15.7% | 101 | 9.0 | 10.7 | 13.6 |
# | layer_norm | 9 | 4.8 | 10.2% | not counted | 10.2 | | |
# | reshape, permute, getitem, embedding | 65 | 1.6 | 3.5% | 0 | 3.8 | | |
# | Python between ops | | 2.1 | 4.4% | | | | |
#
# By layer: each block 10 to 12 ms (21 to 25%), of which attention 3.6 to 4.6 ms and the MLP 5.0
# to 5.5 ms.
#
# The training step, split (medians of 5 steps after 2 warm-up steps, each milestone's recipe):
#
# | model | BLAS threads | step | data | forward | backward | optimizer |
# |---|---|---|---|---|---|---|
# | MLP, batch 128, Adam | 1 | 6.36 ms | 1.9% | 27.5% | 44.5% | 26.2% |
# | MLP, batch 128, Adam | 2 | 4.6-5.4 ms | 2-3% | 24% | 39-41% | 32-34% |
# | CNN, batch 128, SGD | 1 | 284 ms | 0.1% | 43.6% | 55.9% | 0.4% |
# | CNN, batch 128, SGD | 2 | 260-679 ms | 0.1-0.2% | 45-50% | 50-54% | 0.3-0.8% |
# | GPT, batch 12, AdamW | 1 | 94.5 ms | 0.1% | 48.2% | 46.0% | 5.8% |
# | GPT, batch 12, AdamW | 2 | 78-199 ms | 0.1-0.2% | 46-48% | 46-47% | 6-7% |
#
# (1 thread: two more runs gave 6.55-6.86, 306-334 and 99 ms; 2 threads: the range of three runs.)
#
# What the tables say:
#
# - **The MLP is matmul, and then the optimizer.** Three matrix products are 84% of its forward
#   pass and run at 60% of the peak. But Adam's update of 535,818 parameters (1.7 ms: a dozen
#   passes over arrays of their size) costs about as much as the forward pass: in a small model,
#   per-parameter and per-op costs show.
# - **The CNN is convolution, and then memory-bound ops.** Convolution is 60% of the forward pass
#   at a quarter of the peak — its time includes building the im2col columns, a strided copy nine
#   times its input, and reordering the result to NCHW — and max pooling, batch norm and ReLU,
#   which do next to no arithmetic (ReLU: 0.12 FLOP per byte), take 38% between them. The
#   backward pass costs 1.0 to 1.3 times the forward pass, although its products do twice the
#   FLOPs (a gradient for the input and one for the weight): it reuses what the forward pass
#   saved, the columns above all. (The profiler does not see the backward pass op by op: module
#   05's engine runs the backward rules on arrays, not through `from_op`; it is one phase here.)
# - **The GPT is not matmul-bound at this size.** Its matrix products are a third of the forward
#   pass; the elementwise and normalising ops (bias and residual adds, GELU, layer norm: 0.1 FLOP
#   per byte or less) take 42%, and attention over 64 tokens, many small products and a softmax,
#   runs at 14 GFLOP/s. Fusing those memory-bound ops is where module 18 can win most.
# - **Threads are part of the result.** With 2 BLAS threads on this shared machine the MLP's step
#   was 15 to 33% faster than on 1, but the CNN's and the GPT's varied by 2.6 times from run to
#   run, sometimes faster than on 1 thread and sometimes more than twice as slow: OpenBLAS's
#   second thread waited for a core that another job held. Every report above says how many
#   threads it ran on for that reason.
# %% [markdown]
# **3. Where the memory of a training step goes.** One step of each milestone's recipe under the
# memory profiler (Step 7's split) — Adam for the MLP, SGD with momentum for the CNN, AdamW for
# the GPT — and the course's own example: the memory of one Adam step, measured with
# `MemoryProfiler.measure("adam_step")`.

# %%
def analyse_memory():
    """The memory split of a training step of each milestone's recipe, and one Adam step measured."""
    recipes = milestone_recipes()
    for recipe in recipes.values():
        inputs, targets = recipe.next_batch()
        split = training_memory(recipe.model, recipe.loss_of, recipe.optimizer, inputs, targets)
        print(f"{recipe.title}, {type(recipe.optimizer).__name__}:\n{split.table()}")
    if "mlp" in recipes:
        mlp = recipes["mlp"]
        parameters = sum(p.nbytes for p in unique_parameters(mlp.model))
        fresh = type(mlp.optimizer)(mlp.model.parameters())
        profiler = MemoryProfiler()
        for label in ("first adam_step", "adam_step"):
            mlp.loss_of(*mlp.next_batch()).backward()
            with profiler.measure(label):
                fresh.step()
            fresh.zero_grad()
            measured = profiler.measurements[label]
            print(f"{label:<16}: peak {measured.peak_mb:.2f} MB, retained {measured.retained_mb:.2f} MB "
                  f"({measured.retained_bytes / parameters:.2f}x the parameters' {parameters / MIB:.2f} MB)")


if __name__ == "__main__":
    analyse_memory()

# %% [markdown]
# Measured (the same on 1 and 2 BLAS threads):
#
# | one training step | parameters | gradients | optimizer state | activations | step peak |
# |---|---|---|---|---|---|
# | MNIST MLP, batch 128, Adam | 2.04 MB | 2.04 MB (1.00x) | 4.09 MB (**2.00x**) | 1.15 MB (0.56x) | 6.64 MB |
# | CIFAR-10 CNN, batch 128, SGD with momentum | 1.00 MB | 1.00 MB (1.00x) | 1.00 MB (1.00x) | 174.0 MB (174x) | 203.7 MB |
# | GPT, batch 12 x 64 tokens, AdamW | 3.09 MB | 3.09 MB (1.00x) | 6.18 MB (**2.00x**) | 56.0 MB (18x) | 60.8 MB |
#
# Adam's state is exactly twice the parameters, counted from its `exp_avg` and `exp_avg_sq`
# arrays, where SGD's momentum is once. Measured by `tracemalloc`, the first Adam step of the MLP
# left 4.09 MB allocated (2.00x the parameters) and peaked at 4.59 MB (its `work` temporary on
# top); a later step retains nothing and peaks at 1.53 MB, the temporary of the largest weight.
# That is the course's "Adam uses 3x your model size": the parameters, then m and v, measured.
# A step's peak is what the step allocated on top of the parameters that existed before it —
# gradients, the optimizer's new state, activations and temporaries, as they overlap in time; it
# is less than their sum, because the backward pass frees the arrays each op saved once it has
# used them, before the optimizer creates its state.
#
# The models are opposite cases. The MLP's memory is its parameters and their companions (4x the
# parameters with Adam, as the mathematical foundations predict), with activations smaller than
# the weights. The CNN's activations are 174 times its parameters: every layer keeps its input or
# output for the backward pass, and each convolution its im2col columns, nine times its input
# (module 09 measured them). Halving its batch halves its memory; quantizing its weights (module
# 15) would save almost nothing of it. The GPT sits between: 18 times its parameters in
# activations for 768 tokens, growing with batch x context, and with batch x heads x context^2
# for the attention probabilities that each layer keeps.
# %% [markdown]
# ## Production context: how PyTorch does it
#
# - **Where the profiler hooks in.** `torch.profiler.profile` registers `RecordFunction`
#   callbacks in the dispatcher: every ATen op calls them on entry *and* exit, so PyTorch
#   times each op directly (we see only the exit and time intervals). The Kineto library
#   collects the events, adds GPU kernels from CUPTI, and writes Chrome traces
#   (`prof.export_chrome_trace`). `prof.key_averages(group_by_input_shape=True).table(sort_by=
#   "self_cpu_time_total")` is the table our `key_averages` and `table` imitate.
# - **FLOPs.** `torch.utils.flop_counter.FlopCounterMode` counts at the dispatcher too, through
#   a `TorchDispatchMode`, with one formula per op (`mm`, `addmm`, `bmm`, `convolution`,
#   `_scaled_dot_product_*_attention`, ...); the formulas read the op's shapes and arguments, as
#   our rules do, and a multiply-add counts 2. It counts nothing else: elementwise ops are
#   free there. It attributes FLOPs to modules with global module hooks, as we do
#   (`register_module_forward_pre_hook`). The profiler's `with_flops=True` does the same for
#   matmul and convolution only. A counter is only as good as its table of formulas: on this
#   machine's PyTorch 2.13 (CPU), `F.scaled_dot_product_attention` with equal query and value
#   widths runs `_scaled_dot_product_flash_attention_for_cpu`, which has no formula, and
#   FlopCounterMode reports **0 FLOPs** for it (with unequal widths PyTorch takes its math path,
#   two `bmm`s, and counts them: the graded tests compare with that case). Test your counter
#   against the formulas, as this module's tests do.
# - **Memory.** `profile_memory=True` records every allocation and free of PyTorch's own
#   allocators; on GPUs `torch.cuda.max_memory_allocated()` and
#   `torch.cuda.memory._record_memory_history()` (a snapshot you can explore at
#   pytorch.org/memory_viz) show which tensors hold the peak. On CPU, NumPy has no allocator of
#   its own to ask, which is why we use `tracemalloc`.
# - **Overhead.** PyTorch's profiler adds a few microseconds per op too; production profiling
#   samples a few steps (`schedule(wait, warmup, active)`) instead of watching a whole run.
# - **Threads.** `torch.get_num_threads()` reports PyTorch's intra-op pool;
#   `threadpoolctl` is what scikit-learn and friends use to ask NumPy's BLAS.

# %% [markdown]
# ## Integration test: profile a training step end to end
#
# A small MLP trains for a few steps with the momentum optimizer of Step 7. The profiler must
# see every op of the forward pass with the FLOPs of the formulas, attribute them to the layers,
# and the memory split must come out of real measurements.

# %%
def test_integration_profile_a_training_step():
    manual_seed(1)
    model = Sequential(Linear(64, 32), ReLU(), Linear(32, 4))
    optimizer = _MomentumSGD(model.parameters(), lr=0.05)
    x, y = randn(32, 64), randn(32, 4)

    def loss_of(inputs, targets):
        difference = model(inputs) - targets
        return (difference * difference).mean()

    first = loss_of(x, y).item()
    with Profiler() as prof:
        for _ in range(3):
            loss = loss_of(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert loss.item() < first, "training with the profiler on still trains"
    forward_flops = 2 * 32 * 64 * 32 + 32 * 32 + 32 * 32 + 2 * 32 * 32 * 4 + 32 * 4  # matmul, add, relu, matmul, add
    loss_flops = 32 * 4 + 32 * 4 + (32 * 4 - 1) + 1  # sub, mul, sum, divide by the count
    assert prof.flops == 3 * (forward_flops + loss_flops), prof.flops
    layers = {row.name: row for row in prof.module_stats()}
    assert layers["Sequential"].calls == 3 and layers["Sequential.0"].flops == 3 * (2 * 32 * 64 * 32 + 32 * 32)
    times = profile_training_step(loss_of, optimizer, lambda: (x, y), steps=2, warmup=1)
    assert times.forward > 0 and times.backward > 0
    memory = training_memory(model, loss_of, optimizer, x, y)
    assert memory.gradients == memory.parameters == memory.optimizer_state
    print("integration: ok")


test_integration_profile_a_training_step()

# %% [markdown]
# ## ML systems thinking
#
# 1. The MLP's first matmul reaches a good share of the machine's peak, its bias add and ReLU a
#    tiny one. Compute the arithmetic intensity of each from the table; which would a faster
#    CPU speed up, and which a faster memory? What would fusing the add and the ReLU into the
#    matmul save?
# 2. Our profiler times an op as the interval since the previous event. Which costs does that
#    charge to the wrong op, and when would it matter? How does PyTorch's entry-and-exit
#    callback avoid it, and what does it pay for that?
# 3. The GPT's attention FLOPs grow as $L^2$ and its linear layers' as $L$. At which context
#    length do they cost the same for `n_embd = 128`? Check with the profiler.
# 4. Adam keeps $2P$ bytes of state. For a 7-billion-parameter model in float32, how much memory
#    do parameters, gradients and Adam's state take before one activation is stored? What do
#    8-bit optimizers and ZeRO change?
# 5. The CNN's activations are many times its parameters; the MLP's are not. Why, and which
#    would gradient checkpointing help?
# 6. A profile taken under `tracemalloc` runs slower than one without. Why must memory and time
#    be measured in separate runs, and which measurement does each distort?
#
# ## Summary
#
# You built the instruments of the Optimization tier on two explicit seams — module 01's op
# observer and module 03's forward hooks — without replacing a single method. The profiler
# counts FLOPs at the op, from the op's own arguments (matmul, convolution with its padding,
# stride, groups and dilation, attention), and the bytes each op must move; it times each op by
# the interval since the previous event, leaves its own overhead out, attributes time and FLOPs
# to layers, and compares the speed reached with the machine's measured peak and its BLAS
# threads. The memory profiler measures what NumPy really allocates. You measured where the time
# of a training step goes for an MLP, a CNN and a GPT, and that Adam's state is twice the
# parameters. Next, module 15 (Quantization) makes the largest of those arrays four times smaller,
# and this profiler will measure whether that helps.
