"""Module 05 Autograd, graded through the exported package `tinytorch.core.autograd`."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support import assert_matches_torch, check_gradients, numerical_gradient
from tinytorch.core.activations import log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.autograd import (
    backward,
    enable_grad,
    no_grad,
    set_grad_enabled,
    topological_order,
    unbroadcast,
)
from tinytorch.core.tensor import Tensor, cat, is_grad_enabled, maximum, register_backward, stack, where

GRADIENTS = settings(max_examples=12, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def draw(rng, shape, transposed=False, low=None, high=None):
    """A float64 array of `shape`: normal, or uniform in [low, high); `transposed` makes a strided view."""
    stored = shape[::-1] if transposed else shape
    array = rng.standard_normal(stored) if low is None else rng.uniform(low, high, stored)
    return array.T if transposed else array


def away_from_zero(rng, shape, transposed=False):
    """Like draw, with magnitudes in [0.5, 2) and random signs (for kinks and divisions)."""
    values = np.asarray(draw(rng, shape, transposed, 0.5, 2.0))
    values *= rng.choice([-1.0, 1.0], size=shape)  # in place: a strided view stays strided
    return values


# ---- unbroadcast: the one place where broadcasting is undone ----------------------------------------
@GRADIENTS
@given(shapes=PAIRS, seed=SEEDS)
def test_unbroadcast_is_the_adjoint_of_broadcasting(shapes, seed):
    rng = np.random.default_rng(seed)
    shape, result = shapes.input_shapes[0], shapes.result_shape
    grad = rng.standard_normal(result)
    reduced = unbroadcast(grad, shape)
    assert isinstance(reduced, np.ndarray) and reduced.shape == shape
    probe = rng.standard_normal(shape)
    # <unbroadcast(g), v> == <g, broadcast(v)>: summing is exactly the transpose of copying
    np.testing.assert_allclose(np.sum(reduced * probe), np.sum(grad * np.broadcast_to(probe, result)),
                               rtol=1e-10, atol=1e-10)


def test_unbroadcast_keeps_matching_shapes_and_explains_bad_ones():
    grad = np.ones((2, 3), dtype=np.float32)
    assert unbroadcast(grad, (2, 3)) is grad
    assert unbroadcast(grad, (3,)).dtype == np.float32
    with pytest.raises(ValueError) as error:
        unbroadcast(grad, (4,))
    assert "(2, 3)" in str(error.value) and "(4,)" in str(error.value)


# ---- every primitive's gradient, checked numerically (float64, random cotangent) -------------------
BINARY = {
    "add": (lambda a, b: a + b, draw, draw),
    "sub": (lambda a, b: a - b, draw, draw),
    "mul": (lambda a, b: a * b, draw, draw),
    "div": (lambda a, b: a / b, draw, away_from_zero),
    "pow": (lambda a, b: a ** b, lambda rng, s, t: draw(rng, s, t, 0.5, 2.0), draw),
    "maximum": (maximum, draw, draw),
}


@GRADIENTS
@given(shapes=PAIRS, seed=SEEDS, transposed=st.booleans())
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients_with_broadcasting(name, shapes, seed, transposed):
    fn, left, right = BINARY[name]
    rng = np.random.default_rng(seed)
    a = left(rng, shapes.input_shapes[0], transposed)
    b = right(rng, shapes.input_shapes[1], transposed)
    check_gradients(fn, a, b, rng=rng)


UNARY = {
    "neg": (lambda a: -a, draw),
    "exp": (lambda a: a.exp(), draw),
    "log": (lambda a: a.log(), lambda rng, s, t: draw(rng, s, t, 0.2, 3.0)),
    "sqrt": (lambda a: a.sqrt(), lambda rng, s, t: draw(rng, s, t, 0.2, 3.0)),
    "pow_constant": (lambda a: a ** 3, draw),
    "rpow": (lambda a: 2.0 ** a, draw),
    "abs": (lambda a: a.abs(), away_from_zero),
    "cast": (lambda a: a.to(np.float64) * 3.0, draw),
}
ACTIVATIONS = {"relu": (relu, away_from_zero), "sigmoid": (sigmoid, draw), "tanh": (tanh, draw)}


@GRADIENTS
@given(shape=SHAPES, seed=SEEDS, transposed=st.booleans())
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name, shape, seed, transposed):
    fn, make = UNARY[name]
    rng = np.random.default_rng(seed)
    check_gradients(fn, make(rng, shape, transposed), rng=rng)


@GRADIENTS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=SEEDS, transposed=st.booleans())
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_fused_activation_gradients(name, shape, seed, transposed):
    fn, make = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    check_gradients(fn, make(rng, shape, transposed), rng=rng)


def test_cast_through_float32_gives_the_gradient_back_in_float64():
    # float32 in the middle: a large step, exact for this linear function up to float32 rounding
    check_gradients(lambda a: a.float().double() * 3.0, (2, 3), eps=1e-2, atol=1e-4)


@GRADIENTS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=SEEDS)
def test_where_gradient_with_broadcast_condition(shapes, seed):
    rng = np.random.default_rng(seed)
    condition = rng.random(shapes.input_shapes[0]) > 0.5
    check_gradients(lambda a, b: where(condition, a, b), shapes.input_shapes[1], shapes.input_shapes[2], rng=rng)


def reduction_dims(ndim):
    single = st.integers(-ndim, ndim - 1) if ndim else st.nothing()
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple) if ndim else st.nothing()
    return st.one_of(st.none(), single, several)


@GRADIENTS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=SEEDS, keepdim=st.booleans(),
       transposed=st.booleans(), data=st.data())
@pytest.mark.parametrize("reduction", ["sum", "mean", "amax"])
def test_reduction_gradients(reduction, shape, seed, keepdim, transposed, data):
    dim = data.draw(reduction_dims(len(shape)))
    rng = np.random.default_rng(seed)
    check_gradients(lambda a: getattr(a, reduction)(dim=dim, keepdim=keepdim), draw(rng, shape, transposed), rng=rng)


@GRADIENTS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=SEEDS, data=st.data())
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradients(name, shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    fn = softmax if name == "softmax" else log_softmax
    rng = np.random.default_rng(seed)
    check_gradients(lambda a: fn(a, dim=dim), draw(rng, shape, transposed=len(shape) > 1), rng=rng)


@GRADIENTS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), seed=SEEDS, transposed=st.booleans(), data=st.data())
def test_movement_gradients(shape, seed, transposed, data):
    rng = np.random.default_rng(seed)
    x = draw(rng, shape, transposed)
    order = data.draw(st.permutations(range(len(shape))))
    check_gradients(lambda a: a.permute(*order), x, rng=rng)
    check_gradients(lambda a: a.reshape(-1) * Tensor(np.arange(x.size, dtype=np.float64)), x, rng=rng)
    check_gradients(lambda a: a.transpose(0, -1).reshape(x.size), x, rng=rng)
    check_gradients(lambda a: a.unsqueeze(0).expand(2, *shape), x, rng=rng)


@GRADIENTS
@given(sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=SEEDS, dim=st.integers(0, 1))
def test_cat_and_stack_gradients(sizes, seed, dim):
    rng = np.random.default_rng(seed)
    shapes = [(size, 2) if dim == 0 else (2, size) for size in sizes]
    check_gradients(lambda *parts: cat(parts, dim=dim), *shapes, rng=rng)
    check_gradients(lambda a, b: stack([a, b, a], dim=1), (2, 3), (2, 3), rng=rng)


@pytest.mark.parametrize("index", [
    (slice(1, None), slice(None, None, 2)),
    (Ellipsis, 0),
    (1, None, slice(None)),
    np.array([2, 0, 2, 2]),
    (np.array([0, 1, 1]), np.array([3, 3, 0])),
    (slice(None), np.array([1, 1])),
], ids=["slices", "ellipsis", "int-newaxis", "repeated-rows", "repeated-pairs", "slice-and-array"])
def test_getitem_gradients_accumulate_repeated_indices(index):
    check_gradients(lambda a: a[index], (3, 4), rng=np.random.default_rng(1))


def test_getitem_with_boolean_mask_and_tensor_index():
    rng = np.random.default_rng(2)
    mask = rng.random((3, 4)) > 0.4
    check_gradients(lambda a: a[mask], (3, 4), rng=rng)
    check_gradients(lambda a: a[Tensor([0, 0, 2])], (3, 2), rng=rng)


@GRADIENTS
@given(shapes=hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2, max_side=3),
       seed=SEEDS, transposed=st.booleans())
def test_matmul_gradients_for_vectors_matrices_and_batches(shapes, seed, transposed):
    rng = np.random.default_rng(seed)
    a = draw(rng, shapes.input_shapes[0], transposed)
    b = draw(rng, shapes.input_shapes[1], transposed)
    check_gradients(lambda x, y: x @ y, a, b, rng=rng)


def test_matmul_batched_input_with_shared_weight():
    check_gradients(lambda x, w: x @ w, (2, 3, 4), (4, 5))
    check_gradients(lambda x, w: x @ w, (3, 4), (2, 4, 5))
    check_gradients(lambda x, w: x @ w, (2, 1, 3, 4), (3, 4, 2))


def test_composite_expressions():
    check_gradients(lambda x: x.var(dim=1), (3, 4))
    check_gradients(lambda x, y: (x * y).sum(dim=0) / (x.exp() + 1.0).log().sum(), (3, 2), (3, 2))
    check_gradients(lambda x: x.max(dim=1).values + x.min(dim=0).values.sum(), (3, 4))


# ---- parity with PyTorch, forward and backward ----------------------------------------------------
def _rng_arrays(seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)

    return rng, normal, positive


def _parity_cases(torch):
    """name -> (TinyTorch function, PyTorch function, input arrays); `torch` is used only when called."""
    _, normal, positive = _rng_arrays()
    tied = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    return {
        "add": (lambda a, b: a + b, lambda a, b: a + b, [normal(3, 1, 4), normal(2, 4)]),
        "sub": (lambda a, b: a - b, lambda a, b: a - b, [normal(2, 3), normal(3)]),
        "mul": (lambda a, b: a * b, lambda a, b: a * b, [normal(2, 1), normal(1, 3)]),
        "div": (lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), positive(3)]),
        "pow": (lambda a, b: a ** b, lambda a, b: a ** b, [positive(2, 3), normal(2, 3)]),
        "pow_constant": (lambda a: a ** 2, lambda a: a ** 2, [normal(4)]),
        "neg": (lambda a: -a, lambda a: -a, [normal(3)]),
        "exp": (lambda a: a.exp(), lambda a: a.exp(), [normal(2, 3)]),
        "log": (lambda a: a.log(), lambda a: a.log(), [positive(2, 3)]),
        "sqrt": (lambda a: a.sqrt(), lambda a: a.sqrt(), [positive(4)]),
        "maximum_with_ties": (maximum, lambda a, b: torch.maximum(a, b),
                              [np.array([1.0, 2.0, 3.0], np.float32), np.array([1.0, 5.0, 3.0], np.float32)]),
        "where": (lambda a, b: where(a.data > 0, a, b), lambda a, b: torch.where(a > 0, a, b),
                  [normal(2, 3), normal(3)]),
        "sum_all": (lambda a: a.sum(), lambda a: a.sum(), [normal(2, 3)]),
        "sum_dims_keepdim": (lambda a: a.sum(dim=(0, 2), keepdim=True), lambda a: a.sum(dim=(0, 2), keepdim=True),
                             [normal(2, 3, 4)]),
        "mean": (lambda a: a.mean(dim=-1), lambda a: a.mean(dim=-1), [normal(2, 3)]),
        "amax_with_ties": (lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), [tied]),
        "amax_all_with_ties": (lambda a: a.amax(), lambda a: a.amax(), [tied]),
        "max_dim_values": (lambda a: a.max(dim=0).values, lambda a: a.max(dim=0).values, [normal(3, 4)]),
        "reshape": (lambda a: a.reshape(3, 2), lambda a: a.reshape(3, 2), [normal(2, 3)]),
        "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [normal(2, 3, 4)]),
        "transpose": (lambda a: a.transpose(0, 1), lambda a: a.transpose(0, 1), [normal(2, 3)]),
        "expand": (lambda a: a.expand(2, 3, 4), lambda a: a.expand(2, 3, 4), [normal(3, 1)]),
        "getitem_slices": (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [normal(3, 4)]),
        "getitem_repeated": (lambda a, i: a[i], lambda a, i: a[i], [normal(3, 2), np.array([2, 0, 2])]),
        "getitem_mask": (lambda a, m: a[m], lambda a, m: a[m], [normal(2, 3), normal(2, 3) > 0]),
        "cat": (lambda a, b: cat([a, b], dim=1), lambda a, b: torch.cat([a, b], dim=1),
                [normal(2, 3), normal(2, 1)]),
        "cast": (lambda a: a.double() * 2.0, lambda a: a.double() * 2.0, [normal(3)]),
        "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
        "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 2)]),
        "matmul_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
        "matmul_vector_left": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
        "matmul_vector_right": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(4)]),
        "matmul_dot": (lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(4)]),
        "relu": (relu, lambda a: a.relu(), [normal(3, 4)]),
        "sigmoid": (sigmoid, lambda a: a.sigmoid(), [normal(3, 4)]),
        "tanh": (tanh, lambda a: a.tanh(), [normal(3, 4)]),
        "softmax": (lambda a: softmax(a, dim=0), lambda a: a.softmax(dim=0), [normal(3, 4)]),
        "log_softmax": (lambda a: log_softmax(a, dim=-1), lambda a: a.log_softmax(dim=-1), [normal(2, 3, 5)]),
    }


@pytest.mark.parametrize("name", sorted(_parity_cases(torch=None)))
def test_matches_torch_forward_and_backward(torch, name):
    tt_fn, torch_fn, arrays = _parity_cases(torch)[name]
    assert_matches_torch(tt_fn, torch_fn, *arrays)


def test_mlp_matches_torch(torch):
    _, normal, _ = _rng_arrays(3)
    labels = np.array([0, 4, 2, 2, 1, 3])

    def ours(x, w1, b1, w2, b2, y):
        log_probs = log_softmax(relu(x @ w1 + b1) @ w2 + b2, dim=1)
        return -log_probs[Tensor(np.arange(len(labels))), y].mean()

    def theirs(x, w1, b1, w2, b2, y):
        log_probs = torch.log_softmax(torch.relu(x @ w1 + b1) @ w2 + b2, dim=1)
        return -log_probs[torch.arange(len(labels)), y].mean()

    assert_matches_torch(ours, theirs, normal(6, 8), normal(8, 16), normal(16), normal(16, 5), normal(5), labels)


# ---- the engine ------------------------------------------------------------------------------
def test_scalar_output_seeds_one_and_fan_out_adds():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    ((x * x) + x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.numpy() + 1)


def test_gradient_accumulates_across_two_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    first = x.grad.numpy().copy()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, first + 2 * x.numpy())
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, first)


def test_retain_graph_allows_a_second_backward_and_the_default_frees_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    backward(loss, retain_graph=True)
    once = x.grad.numpy().copy()
    backward(loss)
    np.testing.assert_allclose(x.grad, 2 * once)
    assert loss._inputs == (), "the default backward frees the graph"
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_non_leaves_keep_no_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2.0
    (hidden * hidden).sum().backward()
    assert hidden.grad is None and x.grad is not None


def test_gradients_keep_the_dtype_of_their_tensor():
    for dtype in (np.float32, np.float64):
        x = Tensor(np.array([1.0, 2.0]), dtype=dtype, requires_grad=True)
        (x * Tensor(np.array([3.0, 4.0]), dtype=np.float64)).sum().backward()
        assert x.grad.dtype == dtype
        assert isinstance(x.grad, Tensor) and not x.grad.requires_grad, ".grad is a plain Tensor, as in PyTorch"
    scalar = Tensor(2.0, requires_grad=True)
    (scalar * scalar).backward()
    assert isinstance(scalar.grad, Tensor) and scalar.grad.shape == () and scalar.grad.item() == 4.0


def test_integer_tensors_get_no_gradient():
    counts = Tensor([1, 2, 3])
    weights = Tensor([0.5, 0.5, 0.5], requires_grad=True)
    (counts * weights).sum().backward()
    assert counts.grad is None and weights.grad.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2]).requires_grad_()
    x = Tensor([1.5, 2.5], requires_grad=True)
    (x.long().float() * 2.0 + x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0], "no gradient flows through an integer cast"


def test_shared_gradients_are_never_aliased():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad), "add passes one array to both inputs; .grad must own its copy"
    a.grad += 100.0
    assert b.grad.tolist() == [1.0, 1.0]
    seed = np.array([[1.0, 2.0]], dtype=np.float32)
    x = Tensor([5.0, 6.0], requires_grad=True)
    x.reshape(1, 2).backward(seed)
    x.grad *= 0.0
    assert seed.tolist() == [[1.0, 2.0]], "the caller's gradient array is never modified"
    y = Tensor([1.0, 2.0], requires_grad=True)
    (y + y).sum().backward()
    assert y.grad.tolist() == [2.0, 2.0]


def test_a_transposed_weight_gets_its_gradient_in_its_own_shape():
    weight = Tensor(np.ones((3, 4)), requires_grad=True)
    x = Tensor(np.arange(8.0).reshape(2, 4))
    (x @ weight.T).sum().backward()
    assert weight.grad.shape == (3, 4)
    np.testing.assert_array_equal(weight.grad, np.tile(np.arange(8.0).reshape(2, 4).sum(0), (3, 1)))
    (x @ weight.T).sum().backward()
    np.testing.assert_array_equal(weight.grad, 2 * np.tile(np.arange(8.0).reshape(2, 4).sum(0), (3, 1)))


def test_exponent_gradient_only_when_the_exponent_needs_one():
    x = Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    with np.errstate(all="raise"):
        (x ** 2).sum().backward()
    assert x.grad.tolist() == [-4.0, 0.0, 6.0]
    base = Tensor([0.0, 2.0], requires_grad=True)
    exponent = Tensor([2.0, 3.0], requires_grad=True)
    (base ** exponent).sum().backward()
    assert exponent.grad[0] == 0.0 and np.isclose(exponent.grad[1], 8.0 * np.log(2.0))


def test_deep_chain_has_no_recursion_limit():
    x = Tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    assert len(topological_order(y)) == 10_001
    y.backward()
    assert np.isclose(x.grad, 1.0001**10_000)
    z = x
    for _ in range(10_000):
        z = z + 1.0
    backward(z, retain_graph=True)
    del z  # a retained deep graph is released without recursion either


def test_topological_order_puts_inputs_first_and_skips_constants():
    x = Tensor([1.0], requires_grad=True)
    h = x * x
    y = h + x * Tensor([2.0])
    order = topological_order(y)
    position = {id(t): i for i, t in enumerate(order)}
    assert position[id(x)] < position[id(h)] < position[id(y)]
    assert len(order) == 4, "x, h, x * 2, y: the constant is left out"


# ---- errors speak to a learner --------------------------------------------------------------------
def test_backward_of_a_non_scalar_needs_a_gradient():
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError) as error:
        y.backward()
    assert "grad can be implicitly created only for scalar outputs" in str(error.value)
    assert "(2,)" in str(error.value)


def test_backward_gradient_must_match_the_shape():
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ValueError) as error:
        y.backward(np.ones(3))
    assert "(3,)" in str(error.value) and "(2,)" in str(error.value)


def test_backward_of_a_tensor_without_graph_is_explained():
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        (Tensor([1.0]) * 2.0).sum().backward()


def test_an_op_without_rule_names_itself():
    x = Tensor([1.0], requires_grad=True)
    y = Tensor.from_op(x.data * 2, "op_nobody_registered", (x,))
    with pytest.raises(NotImplementedError, match="op_nobody_registered"):
        y.sum().backward()


# ---- grad modes, detach ----------------------------------------------------------------------------
def test_no_grad_records_nothing_and_restores_the_mode():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = (x * 2.0).exp().sum()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._inputs == ()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled(), "an exception leaving the block restores recording"


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = Tensor([1.0], requires_grad=True)

    @no_grad()
    def double(t):
        with enable_grad():
            inner = t * 1.0
        return t * 2.0, inner

    outer, inner = double(x)
    assert not outer.requires_grad and inner.requires_grad and is_grad_enabled()
    assert double.__name__ == "double"


def test_set_grad_enabled_as_call_and_as_context_manager():
    x = Tensor([1.0], requires_grad=True)
    set_grad_enabled(False)
    try:
        assert not (x * 2.0).requires_grad
    finally:
        set_grad_enabled(True)
    with set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert (x * 2.0).requires_grad


def test_detach_cuts_the_graph_and_requires_grad_makes_a_parameter():
    x = Tensor([1.0, 2.0], requires_grad=True)
    product = x * 3.0
    frozen = product.detach()
    assert not frozen.requires_grad and frozen.is_leaf
    assert np.shares_memory(frozen.numpy(), product.numpy()), "detach shares the data, it does not copy"
    (frozen * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])
    weight = Tensor([1.0, 2.0]).requires_grad_()
    (weight * weight).sum().backward()
    np.testing.assert_array_equal(weight.grad, [2.0, 4.0])


def test_importing_autograd_switches_gradients_on():
    """Module 05 installs its engine through module 01's seam; without it backward() says so.

    (`import tinytorch` imports every module, so the 'no engine' state is recreated through the seam.)
    """
    script = (
        "import tinytorch.core.tensor as tensor_module\n"
        "import tinytorch.core.autograd as autograd\n"
        "assert tensor_module._backward_engine is autograd.backward\n"
        "tensor_module.set_backward_engine(None)\n"
        "x = tensor_module.Tensor([1.0], requires_grad=True)\n"
        "try:\n    (x * 2.0).sum().backward()\nexcept RuntimeError as e:\n    assert 'module 05' in str(e)\n"
        "else:\n    raise SystemExit('backward worked without the engine')\n"
        "tensor_module.set_backward_engine(autograd.backward)\n"
        "(x * 2.0).sum().backward()\n"
        "assert x.grad.tolist() == [2.0]\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr + completed.stdout


# ---- the helpers themselves ------------------------------------------------------------------------
def test_numerical_gradient_matches_a_known_derivative():
    (gradient,) = numerical_gradient(lambda a: np.sum(a**3), [np.array([1.0, -2.0])])
    np.testing.assert_allclose(gradient, [3.0, 12.0], rtol=1e-6)


@register_backward("test_only_wrong_square")
def _wrong_square_backward(grad, out):
    return (grad * out._inputs[0].data,)  # the true rule is 2 * x * grad


def test_check_gradients_catches_a_wrong_rule():
    def wrong_square(a):
        return Tensor.from_op(a.data**2, "test_only_wrong_square", (a,))

    with pytest.raises(AssertionError, match="central differences"):
        check_gradients(wrong_square, (3,))


# ---- stale graphs: an input changed in place after the forward pass --------------------------------
def test_writing_into_an_input_after_the_forward_pass_is_refused_at_backward():
    x = Tensor([1.0, 2.0])
    w = Tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    x[0] = 100.0  # before: w.grad came out as [100, 2], silently wrong
    with pytest.raises(RuntimeError, match=r"input 0 of op 'mul' \(a tensor of shape \(2,\), float32\) was modified in place"):
        y.backward()
    assert w.grad is None, "nothing was accumulated"


def test_an_intermediate_changed_under_no_grad_is_refused_too():
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x.exp()
    out = (hidden * 2.0).sum()
    with no_grad():
        hidden[0] = 0.0  # the mul's saved input
    with pytest.raises(RuntimeError, match="modified in place"):
        out.backward()


def test_unchanged_graphs_backward_as_before_with_retain_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
