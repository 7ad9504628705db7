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
# # Module 11: Embeddings
#
# *Can I represent tokens and their positions as learned vectors?*
#
# Module 10 turned text into integers: `"to be"` became `[58, 53, 1, 40, 43]`. A network cannot
# do arithmetic on those ids as numbers — token 58 is not "more" than token 53 — so the first
# layer of every language model replaces each id by a **vector** looked up in a trainable
# table: the **embedding**. Training moves the vectors so that tokens used alike end up close.
# A transformer also needs to know *where* each token sits, because attention (module 12) treats
# its input as a set; **positional encodings** add that information.
#
# ## Learning objectives
# - Explain why an embedding lookup is a matrix product with one-hot vectors, and implement it as
#   the row gather it really is, with errors that name the bad id and the vocabulary size.
# - Derive the embedding's gradient (a **scatter-add** into the rows that were used) and write
#   it as a fused operation with its own backward rule, sorted and reduced instead of looped.
# - Implement the sinusoidal positional encoding of Vaswani et al. (2017) and a learned one.
# - Measure what an embedding costs: table bytes against vocabulary size, and how few rows one
#   batch's gradient touches.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 11
# ```
#
# exports your code to `tinytorch/core/embeddings.py` and grades it with
# `tests/modules/test_11_embeddings.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **A lookup is a matrix product.** Write token $i$ of a vocabulary of $V$ as the one-hot row
# vector $e_i \in \{0, 1\}^V$ and the table as $W \in \mathbb{R}^{V \times d}$. Then
#
# $$e_i W = W_{i,:},$$
#
# row $i$ of the table. A batch of $N$ tokens is a one-hot matrix $E \in \{0,1\}^{N \times V}$ and
# the embeddings are $Y = E W$. Computing that product would cost $2NVd$ operations and an
# $N \times V$ matrix of zeros (for GPT-2, $V = 50{,}257$); **gathering** the $N$ rows costs
# nothing but a copy of $N d$ numbers. So we gather — and keep the matrix view for the gradient.
#
# **The gradient is a scatter-add.** With $Y = EW$ and the upstream gradient $\bar Y = \partial L / \partial Y$,
# the rule for a matrix product (module 05) gives
#
# $$\bar W = E^\top \bar Y, \qquad \bar W_{j,:} = \sum_{t \,:\, \text{id}_t = j} \bar Y_{t,:}.$$
#
# Row $j$ of the table's gradient is the *sum* of the gradients of every position where token
# $j$ appeared; rows of tokens absent from the batch get zero. A repeated token must accumulate,
# not overwrite: `grad[ids] = grad_y` would keep only the last occurrence.
#
# **Positions.** Attention computes the same thing for the input "dog bites man" and "man bites
# dog" up to a reordering: it sees a set, not a sequence. We add a position vector $p_t$ to the
# embedding of the token at position $t$. Vaswani et al. (2017, section 3.5) use fixed
# sinusoids of geometrically spaced frequencies:
#
# $$p_{t, 2i} = \sin\!\left(t\, \omega_i\right), \quad p_{t, 2i+1} = \cos\!\left(t\, \omega_i\right), \quad \omega_i = 10000^{-2i/d}.$$
#
# Each pair of dimensions is a clock turning at its own speed, from one turn every $2\pi$
# positions to one every $2\pi \cdot 10000$. Because $\sin$ and $\cos$ of $(t + k)\omega$ are a
# rotation of those of $t\omega$, the encoding of position $t + k$ is a *linear* function of the
# encoding of $t$ — one the attention layer can learn. GPT-2 instead **learns** a table of
# positions, one row per position up to a fixed maximum (the *block size*).

# %%
#| export
import math

import numpy as np

from tinytorch.core.layers import Module, Parameter
from tinytorch.core.tensor import DEFAULT_FLOAT, Tensor, as_tensor, check_positive_int, randn, register_backward

# %% [markdown]
# ## Step 1: the lookup, as one fused operation
#
# `embedding(ids, weight)` gathers rows: for `ids` of shape `(B, T)` and a table of shape
# `(V, d)` the result has shape `(B, T, d)`. NumPy's fancy indexing `weight.data[ids]` does the
# whole gather in C.
#
# We could write it with module 01's `getitem` (`weight[ids]`), whose gradient module 05 already
# knows. We make it an operation of its own instead, `"embedding"`, for two reasons: its
# backward (Step 2) can be much faster than a general-purpose scatter, and its errors can speak
# the language of tokens. An id outside `0..V-1` is the most common bug here (a tokenizer with
# a bigger vocabulary than the model); NumPy would say `index 70 is out of bounds for axis 0`,
# and a negative id would silently read from the *end* of the table. We check every id and name
# the first bad one, where it sits, and the vocabulary size.
#
# The operation's only differentiable input is the table: ids are integers and have no
# gradient. They travel to the backward rule in `saved` (module 01's seam).

# %%
#| export
def _ids_array(ids, op):
    """`ids` (a Tensor, array or nested list of ints) as an integer NumPy array."""
    array = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: token ids must be integers, got dtype {array.dtype}; convert them with "
            ".long() (a float id such as 3.0 cannot index a table)"
        )
    return array


def embedding(ids, weight):
    """Rows of `weight` (V, d) picked by the integer `ids` (any shape): shape ids.shape + (d,).

    TODO: check that every id lies in [0, V); raise an IndexError naming the first bad id, its
          position and the vocabulary size otherwise. Then gather the rows and return
          `Tensor.from_op(rows, "embedding", (weight,), ids=ids)`.
    HINT: `bad = np.flatnonzero((ids < 0) | (ids >= V))` finds the bad ones in the flattened
          array; `np.unravel_index(bad[0], ids.shape)` turns the first into a position.
          `weight.data[ids]` gathers (a copy of the rows, in the shape of ids plus d).
    """
    ids = _ids_array(ids, "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding: the table must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    ### BEGIN SOLUTION
    vocabulary = weight.shape[0]
    bad = np.flatnonzero((ids < 0) | (ids >= vocabulary))
    if bad.size:
        position = tuple(int(p) for p in np.unravel_index(bad[0], ids.shape))
        raise IndexError(
            f"embedding: token id {int(ids.reshape(-1)[bad[0]])} at position {position} is out of range "
            f"for a vocabulary of {vocabulary} (valid ids are 0..{vocabulary - 1}); does the tokenizer's "
            f"vocab_size match the embedding's num_embeddings?"
        )
    return Tensor.from_op(weight.data[ids], "embedding", (weight,), ids=ids)
    ### END SOLUTION

# %% [markdown]
# ### Test: the lookup

# %%
def test_unit_embedding_lookup():
    table = Tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    rows = embedding(np.array([[2, 0], [2, 3]]), table)
    assert rows.shape == (2, 2, 3)
    assert rows.numpy()[0, 0].tolist() == [6.0, 7.0, 8.0], "id 2 picks row 2"
    assert rows.numpy()[1, 1].tolist() == [9.0, 10.0, 11.0]
    assert embedding(Tensor([1]), table).numpy().tolist() == [[3.0, 4.0, 5.0]]
    try:
        embedding(np.array([[0, 1], [4, 2]]), table)
        raise AssertionError("id 4 of a 4-row table must be rejected")
    except IndexError as error:
        assert "4" in str(error) and "(1, 0)" in str(error) and "0..3" in str(error)
    ### BEGIN HIDDEN TESTS
    try:
        embedding(np.array([-1]), table)
        raise AssertionError("a negative id must be rejected, not read from the end")
    except IndexError as error:
        assert "-1" in str(error)
    try:
        embedding(np.array([1.0]), table)
        raise AssertionError("float ids must be rejected")
    except TypeError as error:
        assert "integers" in str(error)
    ### END HIDDEN TESTS
    print("embedding lookup: ok")


test_unit_embedding_lookup()

# %% [markdown]
# ## Step 2: the gradient, a scatter-add
#
# The backward rule receives `grad`, of the output's shape `ids.shape + (d,)`, and must return
# the gradient of the table: zeros of shape `(V, d)` with `grad[t]` *added* into row `ids[t]`
# for every position `t`.
#
# NumPy has a function for exactly this, `np.add.at(table_grad, ids, grad)`, which adds once per
# occurrence. It is correct and one line — and slow: it handles each index one at a time in a
# generic loop. The systems analysis below measures it 5x slower, at the size of module 13's
# GPT, than the method we use:
#
# 1. **sort** the positions by token id (`np.argsort`), so that equal ids sit next to each other;
# 2. find where each run of equal ids **starts**;
# 3. **reduce** each run with `np.add.reduceat(rows, starts)`, one vectorised sum per run;
# 4. write the sums into the rows of the distinct ids (each written exactly once, so plain
#    assignment is now correct).
#
# ```
# ids (sorted)   3  3  3  7  9  9
# starts         0        3  4
# reduceat       g0+g1+g2 g3 g4+g5   -> rows 3, 7, 9 of the table's gradient
# ```

# %%
#| export
@register_backward("embedding")
def embedding_backward(grad, out):
    """Gradient of the table: each position's gradient added into the row of its id.

    TODO: flatten the ids to (N,) and grad to (N, d); sort the positions by id; find where each
          run of equal ids starts; sum each run with np.add.reduceat; write the sums into a
          zero table at the distinct ids. Return a one-element tuple.
    HINT: `order = np.argsort(ids, kind="stable")`, `sorted_ids = ids[order]`;
          `starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])`;
          `np.add.reduceat(rows[order], starts, axis=0)`. With no ids at all (N = 0),
          return the zero table: reduceat needs at least one start.
    """
    weight = out._inputs[0]
    ids = out._saved["ids"].reshape(-1)
    ### BEGIN SOLUTION
    table_grad = np.zeros(weight.shape, dtype=grad.dtype)
    if ids.size == 0:
        return (table_grad,)
    rows = grad.reshape(-1, weight.shape[1])
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    table_grad[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return (table_grad,)
    ### END SOLUTION

# %% [markdown]
# ### Test: the gradient accumulates over repeated ids

# %%
import tinytorch.core.autograd  # noqa: E402,F401  (module 05: switches backward() on)


def test_unit_embedding_gradient():
    table = Tensor(np.zeros((5, 2), dtype=np.float32), requires_grad=True)
    ids = np.array([[3, 1, 3], [3, 0, 1]])
    rows = embedding(ids, table)
    upstream = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    rows.backward(upstream)
    expected = np.zeros((5, 2), dtype=np.float32)
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, 2))  # the slow, obviously right way
    assert np.array_equal(table.grad, expected), "repeated ids must add their gradients"
    assert table.grad[2].tolist() == [0.0, 0.0] and table.grad[4].tolist() == [0.0, 0.0], "unused rows get zero"
    assert table.grad[3].tolist() == [0.0 + 4 + 6, 1.0 + 5 + 7]
    ### BEGIN HIDDEN TESTS
    empty = embedding(np.zeros((0,), dtype=np.int64), table)
    table.grad = None
    empty.backward(np.zeros((0, 2), dtype=np.float32))
    assert table.grad.shape == (5, 2) and not table.grad.any()
    ### END HIDDEN TESTS
    print("embedding gradient: ok")


test_unit_embedding_gradient()

# %% [markdown]
# ## Step 3: the `Embedding` layer
#
# The layer owns the table as a `Parameter` of shape `(num_embeddings, embedding_dim)` and calls
# `embedding` in `forward`. PyTorch initialises `nn.Embedding` from $\mathcal{N}(0, 1)$: unlike a
# `Linear` layer, an embedding's output is not a sum over its input, so there is no fan-in to
# scale by. (GPT-2 re-initialises its embeddings with standard deviation 0.02; module 13 does
# that for its model.)

# %%
#| export
class Embedding(Module):
    """A trainable lookup table: integer ids (any shape) -> vectors (shape + (embedding_dim,))."""

    def __init__(self, num_embeddings, embedding_dim, dtype=DEFAULT_FLOAT):
        """Create the table, a Parameter of shape (num_embeddings, embedding_dim) drawn from N(0, 1).

        TODO: validate both sizes with `check_positive_int`, store them, and create `self.weight`.
        HINT: `randn(num_embeddings, embedding_dim, dtype=dtype)` draws from module 01's seeded
              generator; wrap its array in a Parameter.
        """
        super().__init__()
        ### BEGIN SOLUTION
        self.num_embeddings = check_positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("Embedding", "embedding_dim", embedding_dim)
        self.weight = Parameter(randn(self.num_embeddings, self.embedding_dim, dtype=dtype).data, dtype=dtype)
        ### END SOLUTION

    def forward(self, ids):
        """The vectors of `ids`: shape ids.shape + (embedding_dim,)."""
        return embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"

# %% [markdown]
# ### Test: the layer

# %%
def test_unit_embedding_layer():
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    layer = Embedding(10, 4)
    assert layer.weight.shape == (10, 4) and layer.weight.requires_grad
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    vectors = layer(Tensor([[1, 2, 3]]))
    assert vectors.shape == (1, 3, 4)
    assert np.array_equal(vectors.numpy()[0, 1], layer.weight.numpy()[2])
    assert repr(layer) == "Embedding(10, 4)"
    try:
        layer(Tensor([10]))
        raise AssertionError("id 10 of a 10-row table must be rejected")
    except IndexError as error:
        assert "10" in str(error) and "0..9" in str(error)
    ### BEGIN HIDDEN TESTS
    try:
        Embedding(0, 4)
        raise AssertionError("an empty vocabulary must be refused")
    except ValueError as error:
        assert "num_embeddings" in str(error)
    assert Embedding(3, 2, dtype=np.float64).weight.dtype == np.float64
    ### END HIDDEN TESTS
    print("Embedding: ok")


test_unit_embedding_layer()

# %% [markdown]
# ## Step 4: sinusoidal positional encoding
#
# Build the table of the formula above for positions `0..max_len-1`, shape `(max_len, d_model)`:
# even columns hold sines, odd columns cosines, and columns `2i` and `2i+1` share the frequency
# $\omega_i = 10000^{-2i/d}$. Compute $\omega$ as `exp(-log(10000) * 2i / d)`: one vectorised
# exponential instead of a power per entry. An odd `d_model` has one more sine column than
# cosine columns.
#
# The layer adds the first `T` rows to an input of shape `(..., T, d_model)`. The table is a
# formula, not a parameter: it is not trained and not saved in `state_dict()` (a checkpoint
# need not store what three lines can recompute).

# %%
#| export
def sinusoidal_encoding(max_len, d_model, dtype=DEFAULT_FLOAT):
    """The (max_len, d_model) NumPy table of Vaswani et al. (2017): sin and cos of t * omega_i.

    TODO: angles[t, i] = t * omega_i for the ceil(d_model / 2) frequencies omega_i =
          10000 ** (-2i / d_model); even columns get sin(angles), odd columns cos(angles)
          (one fewer column when d_model is odd).
    HINT: `positions = np.arange(max_len)[:, None]`; `np.arange(0, d_model, 2)` are the 2i;
          `table[:, 0::2]` and `table[:, 1::2]` are the even and odd columns. Compute in
          float64, convert at the end.
    """
    max_len = check_positive_int("sinusoidal_encoding", "max_len", max_len)
    d_model = check_positive_int("sinusoidal_encoding", "d_model", d_model)
    ### BEGIN SOLUTION
    positions = np.arange(max_len, dtype=np.float64)[:, None]
    frequencies = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    angles = positions * frequencies
    table = np.empty((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return table.astype(dtype)
    ### END SOLUTION


def _check_positions(layer, x, max_len, d_model):
    """x as a Tensor of shape (..., T, d_model) with T <= max_len; a clear error otherwise."""
    x = as_tensor(x)
    if x.ndim < 2 or x.shape[-1] != d_model:
        raise ValueError(
            f"{layer}: expected input of shape (..., seq_len, {d_model}) (token vectors), got shape {x.shape}"
        )
    if x.shape[-2] > max_len:
        raise ValueError(
            f"{layer}: sequence length {x.shape[-2]} exceeds max_len {max_len}: there is no position "
            f"vector beyond position {max_len - 1}. Crop the input to its last {max_len} tokens, or "
            f"build the layer with a larger max_len"
        )
    return x


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position vectors of Vaswani et al. (2017) to (..., T, d_model) inputs."""

    def __init__(self, max_len, d_model, dtype=DEFAULT_FLOAT):
        super().__init__()
        self.max_len = check_positive_int("SinusoidalPositionalEncoding", "max_len", max_len)
        self.d_model = check_positive_int("SinusoidalPositionalEncoding", "d_model", d_model)
        self.encoding = Tensor(sinusoidal_encoding(max_len, d_model, dtype), dtype=dtype)  # not a buffer: recomputed

    def forward(self, x):
        """x + the encodings of positions 0..T-1.

        TODO: check x with `_check_positions`, then add the first T rows of the table.
        HINT: `self.encoding[:T]` is a view; broadcasting adds it to every sequence of the batch.
        """
        x = _check_positions("SinusoidalPositionalEncoding", x, self.max_len, self.d_model)
        ### BEGIN SOLUTION
        encoding = self.encoding[: x.shape[-2]]
        if encoding.dtype != x.dtype:
            encoding = encoding.to(x.dtype)
        return x + encoding
        ### END SOLUTION

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}"

# %% [markdown]
# ### Test: sinusoids

# %%
def test_unit_sinusoidal_encoding():
    table = sinusoidal_encoding(50, 8)
    assert table.shape == (50, 8) and table.dtype == np.float32
    assert np.allclose(table[0], [0, 1, 0, 1, 0, 1, 0, 1]), "position 0: sin 0 = 0, cos 0 = 1"
    assert np.isclose(table[1, 0], math.sin(1.0)) and np.isclose(table[1, 1], math.cos(1.0))
    assert np.isclose(table[7, 2], math.sin(7 * 10000 ** (-2 / 8)), atol=1e-6)
    assert np.allclose(table[:, 0::2] ** 2 + table[:, 1::2] ** 2, 1.0, atol=1e-6), "each pair lies on a circle"
    assert sinusoidal_encoding(3, 5).shape == (3, 5), "an odd width works"
    layer = SinusoidalPositionalEncoding(16, 8)
    x = Tensor(np.zeros((2, 5, 8), dtype=np.float32))
    assert np.allclose(layer(x).numpy()[1], table[:5])
    assert layer.state_dict() == {}, "a formula is not saved in checkpoints"
    try:
        layer(Tensor(np.zeros((1, 17, 8), dtype=np.float32)))
        raise AssertionError("17 positions do not fit max_len 16")
    except ValueError as error:
        assert "17" in str(error) and "max_len 16" in str(error)
    ### BEGIN HIDDEN TESTS
    odd = sinusoidal_encoding(4, 5)
    assert np.isclose(odd[3, 4], math.sin(3 * 10000 ** (-4 / 5)), atol=1e-6)
    try:
        layer(Tensor(np.zeros((1, 4, 6), dtype=np.float32)))
        raise AssertionError("width 6 does not match d_model 8")
    except ValueError as error:
        assert "(1, 4, 6)" in str(error)
    ### END HIDDEN TESTS
    print("sinusoidal encoding: ok")


test_unit_sinusoidal_encoding()

# %% [markdown]
# ## Step 5: learned positional embedding
#
# GPT-2 learns its positions: a `Parameter` table of shape `(max_len, embedding_dim)`, one
# trainable row per position, added to the token vectors like the sinusoids. Slicing
# `weight[:T]` is a view, and module 05's `getitem` rule routes the gradient into the first `T`
# rows (summed over the batch by the engine's broadcasting rule). The price of learning: the
# model knows no position beyond `max_len`, where the sinusoids would at least give *some* vector.

# %%
#| export
class LearnedPositionalEmbedding(Module):
    """Adds a trainable vector per position (GPT-2's positions) to (..., T, embedding_dim) inputs."""

    def __init__(self, max_len, embedding_dim, dtype=DEFAULT_FLOAT):
        """Create `self.weight`, a Parameter of shape (max_len, embedding_dim) drawn from N(0, 1).

        TODO: validate and store both sizes, then create the table as in `Embedding`.
        HINT: `check_positive_int` and `randn`, as in Step 3.
        """
        super().__init__()
        ### BEGIN SOLUTION
        self.max_len = check_positive_int("LearnedPositionalEmbedding", "max_len", max_len)
        self.embedding_dim = check_positive_int("LearnedPositionalEmbedding", "embedding_dim", embedding_dim)
        self.weight = Parameter(randn(self.max_len, self.embedding_dim, dtype=dtype).data, dtype=dtype)
        ### END SOLUTION

    def forward(self, x):
        """x + the learned vectors of positions 0..T-1.

        TODO: check x, then add the first T rows of `self.weight` (a Tensor operation, so that the
              gradient reaches the table).
        HINT: `self.weight[:T]`.
        """
        x = _check_positions("LearnedPositionalEmbedding", x, self.max_len, self.embedding_dim)
        ### BEGIN SOLUTION
        return x + self.weight[: x.shape[-2]]
        ### END SOLUTION

    def extra_repr(self):
        return f"max_len={self.max_len}, embedding_dim={self.embedding_dim}"

# %% [markdown]
# ### Test: learned positions

# %%
def test_unit_learned_positions():
    layer = LearnedPositionalEmbedding(6, 3)
    assert layer.weight.shape == (6, 3) and list(layer.state_dict()) == ["weight"]
    x = Tensor(np.ones((2, 4, 3), dtype=np.float32), requires_grad=True)
    y = layer(x)
    assert np.allclose(y.numpy()[0], 1 + layer.weight.numpy()[:4])
    y.sum().backward()
    assert np.array_equal(layer.weight.grad[:4], np.full((4, 3), 2.0)), "two sequences: each used row gets 2"
    assert not layer.weight.grad[4:].any(), "positions beyond T get no gradient"
    assert np.array_equal(x.grad, np.ones((2, 4, 3)))
    try:
        layer(Tensor(np.ones((1, 7, 3), dtype=np.float32)))
        raise AssertionError("7 positions do not fit max_len 6")
    except ValueError as error:
        assert "7" in str(error) and "max_len 6" in str(error)
    print("learned positional embedding: ok")


test_unit_learned_positions()

# %% [markdown]
# ## Systems analysis: what does an embedding cost?
#
# Three measurements:
#
# 1. **Table bytes against vocabulary size.** $V \cdot d \cdot 4$ bytes in float32, checked
#    against `weight.nbytes` where the table is small enough to build. Training with Adam keeps
#    three more tables of the same size (gradient and two moments).
# 2. **Gradient sparsity.** Words follow Zipf's law (the $r$-th most frequent word has frequency
#    about $\propto 1/r$), so one batch uses few distinct tokens. We draw a nanoGPT-sized batch
#    (12 x 64 tokens) of Zipf-distributed ids and count the rows its gradient touches.
# 3. **Scatter-add speed**: `np.add.at` against our sort-and-reduce rule, same inputs. Timings
#    on a machine shared with other work only ever come out *slower* than the work itself, so
#    we interleave the two and report the fastest of several runs of each.

# %%
def table_bytes(num_embeddings, embedding_dim, itemsize=4):
    """Bytes of an embedding table."""
    return num_embeddings * embedding_dim * itemsize


def zipf_ids(vocabulary, count, exponent=1.1, seed=0):
    """`count` token ids whose frequencies fall as rank ** -exponent (Zipf's law), in [0, vocabulary)."""
    ranks = np.arange(1, vocabulary + 1, dtype=np.float64)
    probabilities = ranks ** -exponent
    probabilities /= probabilities.sum()
    return np.random.default_rng(seed).choice(vocabulary, size=count, p=probabilities)


def rows_touched(ids, vocabulary):
    """Fraction of the table's rows that a batch's gradient changes."""
    return np.unique(ids).size / vocabulary


def measure_scatter_add_ms(vocabulary, tokens, dim, repeats=7):
    """Fastest of `repeats` interleaved runs (ms) of np.add.at and of embedding_backward, same gradient."""
    import time

    rng = np.random.default_rng(0)
    ids = zipf_ids(vocabulary, tokens)
    grad = rng.standard_normal((tokens, dim), dtype=np.float32)
    table = Tensor(np.zeros((vocabulary, dim), dtype=np.float32), requires_grad=True)
    out = embedding(ids, table)

    def add_at():
        result = np.zeros((vocabulary, dim), dtype=np.float32)
        np.add.at(result, ids, grad)
        return result

    runs = {"np.add.at": add_at, "sort + reduceat": lambda: embedding_backward(grad, out)[0]}
    assert np.allclose(runs["np.add.at"](), runs["sort + reduceat"](), atol=1e-4)
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(times) for name, times in samples.items()}


if __name__ == "__main__":
    print("table bytes (float32):")
    for name, vocabulary, dim in (("characters (Shakespeare)", 65, 128), ("bytes", 256, 512),
                                  ("GPT-2", 50257, 768), ("Llama 2 7B", 32000, 4096), ("Llama 3 8B", 128256, 4096)):
        nbytes = table_bytes(vocabulary, dim)
        if nbytes <= 2**20:
            assert Embedding(vocabulary, dim).weight.nbytes == nbytes
        print(f"  {name:>24}: V = {vocabulary:>6}, d = {dim:>4}: {nbytes / 2**20:9.2f} MiB"
              f" ({4 * nbytes / 2**20:9.2f} MiB with gradient and Adam state)")
    print("rows touched by one batch of 12 x 64 Zipf-distributed tokens:")
    for vocabulary in (65, 1000, 50257):
        fraction = rows_touched(zipf_ids(vocabulary, 12 * 64), vocabulary)
        print(f"  V = {vocabulary:>6}: {fraction:7.2%} of the rows")
    for vocabulary, tokens, dim in ((65, 768, 128), (32000, 4096, 512)):
        timings = measure_scatter_add_ms(vocabulary, tokens, dim)
        print(f"scatter-add of {tokens} rows into ({vocabulary}, {dim}): "
              + ", ".join(f"{name} {ms:.2f} ms" for name, ms in timings.items()))

# %% [markdown]
# What the cell prints (2-core machine; run it for your own figures):
#
# | table | V | d | float32 | with gradient and Adam state |
# |---|---|---|---|---|
# | characters | 65 | 128 | 0.03 MiB | 0.13 MiB |
# | GPT-2 | 50,257 | 768 | 147 MiB | 589 MiB |
# | Llama 3 8B | 128,256 | 4,096 | 2,004 MiB | 8,016 MiB |
#
# The table grows linearly with the vocabulary: a byte-pair vocabulary of 50k tokens (module 10)
# costs GPT-2 small 38.6M of its 124M parameters in this one table. A character vocabulary is
# almost free — but makes sequences about four times longer, and module 12 shows that attention
# pays *quadratically* for length. That is the tokenizer trade-off in one line.
#
# The batch of 768 Zipf tokens touches every one of the 65 characters, 24% of a 1,000-token
# vocabulary, and 0.8% of a 50,257-token one: the *dense* gradient we allocate is over 99% zeros,
# and Adam then updates every row anyway.
#
# Scatter-add, fastest of 7 runs: for the tinygpt milestone's shape (768 positions into a
# (65, 128) table) our sort-and-reduce rule takes 0.4 ms against 1.9 ms for `np.add.at`, about
# 5x faster: `np.add.at` handles one index at a time in a generic loop, `reduceat` sums whole
# runs of rows with vectorised adds. For 4,096 positions into a (32000, 512) table the two are
# about even (50-80 ms each here): with rows of 512 numbers, `np.add.at`'s cost per index is
# spread thin, and moving 8 MB of gradient dominates both. We keep the sorted rule: it is never
# slower by much, and much faster where this course's models live.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# - `torch.nn.Embedding(num_embeddings, embedding_dim)` is our layer, initialised from
#   $\mathcal{N}(0, 1)$ like ours. Its options show what production needs: `padding_idx` (the
#   padding token's row gets no gradient and stays zero), `max_norm` (renormalise looked-up rows),
#   and `sparse=True`, which returns the gradient as a *sparse* tensor holding only the touched
#   rows — the fix for the 99%-zeros gradient measured above, paired with optimizers such as
#   `torch.optim.SparseAdam` that update only those rows.
# - Its backward (`embedding_dense_backward`) does what ours does: on GPUs it sorts the ids and
#   reduces runs of equal ids, because thousands of threads adding into the same row would
#   collide.
# - `torch.nn.EmbeddingBag` fuses the lookup with a sum or mean over each bag of ids, so the
#   `(N, d)` intermediate never exists: recommendation models with billion-row tables live on it.
# - **Weight tying** (Press & Wolf, 2017): GPT-2 uses the same table to turn vectors back into
#   token scores at the output. Module 13 shares one `Parameter` between the two, and the
#   gradient accumulates from both uses.
# - Positions in current models are mostly neither sinusoidal nor learned absolute vectors but
#   *relative*: rotary embeddings (RoPE, Su et al. 2021; Llama) rotate queries and keys by
#   position-dependent angles — the same clocks as our sinusoids, applied inside attention.

# %% [markdown]
# ## Integration test: tokens and positions into a trainable model

# %%
def test_integration_embeddings_learn():
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    tokens = Embedding(12, 8)
    positions = LearnedPositionalEmbedding(5, 8)
    fixed = SinusoidalPositionalEncoding(5, 8)
    head = Linear(8, 1)
    ids = np.array([[1, 4, 4, 2], [7, 7, 7, 7]])
    target = np.arange(8, dtype=np.float32).reshape(2, 4, 1)
    parameters = list(tokens.parameters()) + list(positions.parameters()) + list(head.parameters())

    def loss_value():
        prediction = head(fixed(positions(tokens(ids))))
        difference = prediction - Tensor(target)
        return (difference * difference).mean()

    first = loss_value()
    for _ in range(200):
        for parameter in parameters:
            parameter.grad = None
        loss = loss_value()
        loss.backward()
        for parameter in parameters:
            parameter.data -= 0.05 * parameter.grad
    assert loss_value().item() < 0.1 * first.item(), "the embeddings must learn the targets"
    touched = np.flatnonzero(np.abs(tokens.weight.grad).sum(axis=1))
    assert touched.tolist() == [1, 2, 4, 7], "only the rows of ids in the batch receive gradient"
    print("integration: ok")


test_integration_embeddings_learn()

# %% [markdown]
# ## ML systems thinking
#
# 1. GPT-2's vocabulary has 50,257 tokens and its width is 768. With Adam in float32, how many
#    bytes do the embedding table, its gradient and its two moment tables take? If only 1% of the
#    rows receive gradient in a step, which of these could be stored sparsely, and which could not?
# 2. A character tokenizer needs 65 rows; a byte-pair tokenizer 50,257. The same text becomes
#    about four times fewer byte-pair tokens. Which part of a transformer gets cheaper with the
#    big vocabulary, which gets more expensive, and by how much (think of module 12's $O(T^2)$)?
# 3. `np.add.at` handles one index at a time; the sort-based rule sorts $N$ ids first. For which
#    batch sizes and vocabulary sizes could `np.add.at` win? Measure it with
#    `measure_scatter_add_ms`.
# 4. Why can the sinusoidal table be recomputed instead of saved, while a learned table must be
#    saved? What happens to a model with learned positions when it meets a sequence longer than
#    its `max_len`?
#
# ## Summary
#
# You built the first layer of every language model. An embedding is a product with one-hot
# vectors, computed as the row gather it really is; its gradient is a scatter-add, which you
# wrote as a fused operation that sorts ids and sums runs of equal ones — 5x faster than NumPy's
# general `np.add.at` at the size of this course's GPT, and exact under repeated ids. Errors name the offending id,
# its position and the vocabulary size. You added position information two ways, fixed sinusoids
# (Vaswani et al., 2017) and a learned table (GPT-2), and measured that the embedding table grows
# with the vocabulary while one batch's gradient touches only a sliver of it. Next, module 12
# lets every token look at every other token: attention.
