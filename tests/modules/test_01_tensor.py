"""Module 01 Tensor, graded through the exported package `tinytorch.core.tensor`."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core.tensor import (
    Tensor,
    arange,
    cat,
    full,
    manual_seed,
    matmul,
    ones,
    randn,
    stack,
    where,
    zeros,
)

FAST = settings(max_examples=40, deadline=None)


def floats_array(shape):
    return hnp.arrays(np.float32, shape, elements=st.floats(-100, 100, width=32))


# ---- creation and dtype --------------------------------------------------------------------------
def test_float_data_defaults_to_float32():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.random.rand(3)).dtype == np.float32  # float64 arrays become float32


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.float16, np.bool_])
def test_given_dtype_is_kept(dtype):
    assert Tensor(np.zeros(3, dtype=dtype)).dtype == dtype


def test_explicit_dtype_wins():
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert zeros(2, dtype=np.float64).dtype == np.float64


def test_shape_ndim_size_numel():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.shape == (2, 3, 4) and x.ndim == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.numel() == 24


def test_requires_grad_is_stored_and_integer_tensors_refuse_it():
    assert Tensor([1.0], requires_grad=True).requires_grad is True
    assert Tensor([1.0]).requires_grad is False
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2], requires_grad=True)


def test_bad_data_is_explained():
    with pytest.raises(ValueError, match="rectangular"):
        Tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="not numeric"):
        Tensor(["a", "b"])


def test_factories():
    assert zeros(2, 3).numpy().tolist() == [[0, 0, 0], [0, 0, 0]]
    assert ones((2,)).numpy().tolist() == [1.0, 1.0]
    assert full((1, 2), 3.0).numpy().tolist() == [[3.0, 3.0]]
    assert arange(3).numpy().tolist() == [0, 1, 2]
    assert arange(2, 8, 2).numpy().tolist() == [2, 4, 6]
    manual_seed(123)
    a = randn(4, 5).numpy().copy()
    manual_seed(123)
    assert np.array_equal(a, randn(4, 5).numpy())
    assert randn(2, 2).dtype == np.float32


def test_numpy_item_repr():
    x = Tensor([[1.5, 2.0]])
    assert isinstance(x.numpy(), np.ndarray)
    assert Tensor(4.0).item() == 4.0
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    text = repr(Tensor([1.0, 2.0], requires_grad=True))
    assert text.startswith("Tensor(") and "requires_grad=True" in text
    assert "int8" in repr(Tensor(np.array([1], dtype=np.int8)))


# ---- elementwise with broadcasting ------------------------------------------------------------------
OPS = [
    (lambda a, b: a + b, np.add),
    (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / b, np.divide),
]


@FAST
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), data=st.data())
@pytest.mark.parametrize("op,reference", OPS)
def test_elementwise_matches_numpy_with_broadcasting(op, reference, shapes, data):
    a = data.draw(floats_array(shapes.input_shapes[0]))
    b = data.draw(floats_array(shapes.input_shapes[1]).filter(lambda x: np.all(np.abs(x) > 1e-3)))
    result = op(Tensor(a), Tensor(b))
    assert result.shape == shapes.result_shape
    assert result.dtype == np.float32
    np.testing.assert_allclose(result.numpy(), reference(a, b), rtol=1e-6, atol=1e-6)


def test_scalars_on_either_side_keep_dtype():
    x = Tensor([1.0, 2.0])
    assert (2 * x).numpy().tolist() == [2.0, 4.0] and (x * 2).dtype == np.float32
    assert (1 - x).numpy().tolist() == [0.0, -1.0]
    assert (2 / x).numpy().tolist() == [2.0, 1.0]
    assert (x ** 2).numpy().tolist() == [1.0, 4.0] and (2 ** x).numpy().tolist() == [2.0, 4.0]
    small = Tensor(np.array([1, 2], dtype=np.int8))
    assert (small + 1).dtype == np.int8 and (small * small).dtype == np.int8


def test_integer_division_gives_float32():
    assert (Tensor([1, 2]) / Tensor([2, 4])).dtype == np.float32
    assert (Tensor([1, 2]) * 0.5).dtype == np.float32


def test_float64_stays_float64():
    x = Tensor([1.0, 2.0], dtype=np.float64)
    assert (x * 2.0).dtype == np.float64 and (x + x).dtype == np.float64


@pytest.mark.parametrize("left,right", [((2, 3), (2,)), ((4, 3), (3, 4)), ((2, 3, 4), (3, 1, 5))])
def test_broadcast_errors_name_the_op_and_both_shapes(left, right):
    with pytest.raises(ValueError) as error:
        Tensor(np.ones(left)) * Tensor(np.ones(right))
    message = str(error.value)
    assert "mul" in message and str(left) in message and str(right) in message


def test_negation_exp_log_sqrt_maximum_where():
    x = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    np.testing.assert_allclose((-Tensor(x)).numpy(), -x)
    np.testing.assert_allclose(Tensor(x).exp().numpy(), np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(Tensor(x).log().numpy(), np.log(x), rtol=1e-6)
    np.testing.assert_allclose(Tensor(x).sqrt().numpy(), np.sqrt(x), rtol=1e-6)
    from tinytorch.core.tensor import maximum

    assert maximum(Tensor([-1.0, 3.0]), 0.0).numpy().tolist() == [0.0, 3.0]
    assert where(Tensor([True, False]), 1.0, Tensor([5.0, 6.0])).numpy().tolist() == [1.0, 6.0]


def test_comparisons_give_boolean_tensors():
    x = Tensor([1.0, 2.0, 3.0])
    assert (x > 1.5).dtype == np.bool_ and (x > 1.5).numpy().tolist() == [False, True, True]
    assert (x == Tensor([1.0, 0.0, 3.0])).numpy().tolist() == [True, False, True]
    assert (x <= 2).numpy().sum() == 2 and (x != 2).numpy().sum() == 2 and (x >= 3).numpy().sum() == 1


# ---- matmul ---------------------------------------------------------------------------------
@FAST
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), batch=st.integers(0, 3), data=st.data())
def test_matmul_matches_numpy(m, k, n, batch, data):
    left_shape = (batch, m, k) if batch else (m, k)
    a = data.draw(floats_array(left_shape))
    b = data.draw(floats_array((k, n)))
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).numpy(), a @ b, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(matmul(Tensor(a), Tensor(b)).numpy(), a @ b, rtol=1e-5, atol=1e-3)


def test_matmul_vectors():
    a = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert (a @ Tensor([1.0, 1.0])).numpy().tolist() == [3.0, 7.0]
    assert (Tensor([1.0, 1.0]) @ a).numpy().tolist() == [4.0, 6.0]


def test_matmul_error_names_both_shapes():
    with pytest.raises(ValueError) as error:
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    message = str(error.value)
    assert "matmul" in message and "(2, 3)" in message and "(4, 5)" in message
    with pytest.raises(ValueError, match="matmul"):
        Tensor(2.0) @ Tensor([1.0])


# ---- reductions -----------------------------------------------------------------------------
@FAST
@given(array=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                        elements=st.floats(-100, 100, width=32)),
       keepdim=st.booleans(), data=st.data())
def test_reductions_match_numpy(array, keepdim, data):
    dim = data.draw(st.integers(-array.ndim, array.ndim - 1))
    x = Tensor(array)
    np.testing.assert_allclose(x.sum(dim=dim, keepdim=keepdim).numpy(),
                               array.sum(axis=dim, keepdims=keepdim), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(x.mean(dim=dim, keepdim=keepdim).numpy(),
                               array.mean(axis=dim, keepdims=keepdim), rtol=1e-5, atol=1e-3)
    values, indices = x.max(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(values.numpy(), array.max(axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(indices.numpy(), array.argmax(axis=dim, keepdims=keepdim))
    np.testing.assert_allclose(x.sum().numpy(), array.sum(), rtol=1e-4, atol=1e-2)


def test_reduction_over_several_dims_and_all():
    x = Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert x.sum(dim=(0, 2)).numpy().tolist() == np.arange(24).reshape(2, 3, 4).sum(axis=(0, 2)).tolist()
    assert x.max().item() == 23.0 and x.min().item() == 0.0 and x.mean().item() == 11.5
    with pytest.raises(IndexError, match="out of range"):
        x.sum(dim=3)


# ---- movement ---------------------------------------------------------------------------------
@FAST
@given(array=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4)), data=st.data())
def test_permute_and_reshape_match_numpy(array, data):
    order = data.draw(st.permutations(range(array.ndim)))
    np.testing.assert_array_equal(Tensor(array).permute(*order).numpy(), array.transpose(order))
    np.testing.assert_array_equal(Tensor(array).reshape(-1).numpy(), array.reshape(-1))


def test_reshape_view_transpose_and_errors():
    x = arange(12).reshape(3, 4)
    assert x.view(4, 3).shape == (4, 3) and x.reshape((2, -1)).shape == (2, 6)
    assert np.shares_memory(x.numpy(), x.reshape(12).numpy()), "reshape of contiguous data is a view"
    assert x.transpose(0, 1).shape == (4, 3) and x.T.shape == (4, 3)
    assert not x.T.is_contiguous() and x.T.stride() == (1, 4)
    assert x.unsqueeze(0).shape == (1, 3, 4) and x.unsqueeze(0).squeeze(0).shape == (3, 4)
    assert randn(2, 3, 4).flatten(1).shape == (2, 12)
    with pytest.raises(ValueError) as error:
        x.reshape(5, 5)
    assert "(3, 4)" in str(error.value) and "(5, 5)" in str(error.value)


def test_indexing_and_slicing_match_numpy():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = Tensor(array)
    for index in [0, (1, 2), (slice(None), 1), (Ellipsis, slice(1, 3)), (0, slice(None, None, -1))]:
        np.testing.assert_array_equal(x[index].numpy(), array[index])
    np.testing.assert_array_equal(x[Tensor([1, 0])].numpy(), array[[1, 0]])
    np.testing.assert_array_equal(x[x > 20].numpy(), array[array > 20])


def test_cat_stack_expand():
    a, b = Tensor([[1.0, 2.0]]), Tensor([[3.0, 4.0]])
    assert cat([a, b], dim=0).numpy().tolist() == [[1, 2], [3, 4]]
    assert cat([a, b], dim=1).numpy().tolist() == [[1, 2, 3, 4]]
    assert stack([a, b], dim=0).shape == (2, 1, 2)
    assert a.expand(3, 2).shape == (3, 2)
    with pytest.raises(ValueError, match="cat"):
        cat([a, Tensor([[1.0, 2.0, 3.0]])], dim=0)


def test_dtype_conversions():
    x = Tensor([1.7, -2.2])
    assert x.double().dtype == np.float64 and x.long().dtype == np.int64 and x.long().numpy().tolist() == [1, -2]
    y = x.clone()
    y.numpy()[0] = 99.0
    assert x.numpy()[0] == np.float32(1.7), "clone copies"


# ---- the seam for module 05 -----------------------------------------------------------------------
def test_operations_record_the_graph_only_when_a_gradient_is_wanted():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0])
    c = a * b
    assert c.requires_grad and not c.is_leaf
    d = b * b
    assert not d.requires_grad and d.is_leaf
    assert not a.detach().requires_grad


# ---- in place, versions, .grad, and arguments checked where they are written -------------------
def test_in_place_methods_change_the_data_and_count_each_change():
    from tinytorch.core.tensor import Tensor

    x = Tensor([1.0, 2.0, 3.0])
    assert x.version == 0
    assert x.add_(1.0) is x and x.tolist() == [2.0, 3.0, 4.0] and x.version == 1
    x.mul_(Tensor([2.0, 2.0, 2.0])).add_([1.0, 1.0, 1.0], alpha=-1)
    assert x.tolist() == [3.0, 5.0, 7.0] and x.version == 3
    x[1] = 0.0
    x.fill_(9.0)
    x.zero_()
    assert x.tolist() == [0.0, 0.0, 0.0] and x.version == 6
    x.copy_(np.array([1, 2, 3]))
    assert x.dtype == np.float32 and x.tolist() == [1.0, 2.0, 3.0] and x.version == 7


def test_in_place_changes_of_a_tensor_that_requires_grad_are_refused():
    from tinytorch.core.tensor import Tensor, set_grad_enabled

    w = Tensor([1.0, 2.0], requires_grad=True)
    for change in (lambda: w.zero_(), lambda: w.add_(1.0), lambda: w.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="requires grad.*no_grad"):
            change()
    assert w.tolist() == [1.0, 2.0] and w.version == 0
    with set_grad_enabled(False):
        w.add_(1.0)  # allowed, as PyTorch allows it under no_grad()
    assert w.tolist() == [2.0, 3.0] and w.version == 1


def test_grad_is_a_tensor_of_the_same_shape_or_none():
    from tinytorch.core.tensor import Tensor

    w = Tensor(np.zeros((2, 3)), requires_grad=True)
    assert w.grad is None
    gradient = np.arange(6.0).reshape(2, 3)
    w.grad = gradient
    assert isinstance(w.grad, Tensor) and w.grad.data is gradient and w.grad.dtype == np.float64
    assert w.grad.norm().item() == pytest.approx(np.sqrt(55.0))
    w.grad.zero_()
    assert not w.grad.any() and w.grad.all().item() is False
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2, 3\)"):
        w.grad = np.ones(3)
    w.grad = None
    assert w.grad is None


@pytest.mark.parametrize("make", [lambda t: t.zeros(2.5, 3), lambda t: t.ones(2, -1), lambda t: t.randn((2, "3")),
                                  lambda t: t.full((True, 2), 1.0)])
def test_a_shape_must_be_non_negative_integers(make):
    import tinytorch.core.tensor as t

    with pytest.raises(ValueError, match="shape"):
        make(t)


def test_cat_explains_an_empty_list_and_a_dim_out_of_range():
    from tinytorch.core.tensor import Tensor, cat

    with pytest.raises(ValueError, match="no tensors"):
        cat([])
    with pytest.raises(IndexError, match="dim 5 is out of range for a tensor with 1 dimensions"):
        cat([Tensor([1.0]), Tensor([2.0])], dim=5)
    with pytest.raises(ValueError, match=r"shapes \(1, 2\), \(1, 3\) differ outside dim 0"):
        cat([Tensor(np.zeros((1, 2))), Tensor(np.zeros((1, 3)))])
    with pytest.raises(ValueError, match="stack"):
        cat([Tensor(1.0), Tensor(2.0)])


def test_reductions_of_empty_and_zero_dimensional_tensors_speak_our_language():
    from tinytorch.core.tensor import Tensor, zeros

    with pytest.raises(ValueError, match=r"shape \(0, 3\) has no elements"):
        zeros((0, 3)).max()
    assert zeros((0, 3)).sum().item() == 0.0, "an empty sum is 0, as in PyTorch"
    scalar = Tensor(3.0)
    assert scalar.sum(dim=0).item() == 3.0 and scalar.sum(dim=-1).item() == 3.0 and scalar.max(dim=0).values.item() == 3.0
    with pytest.raises(IndexError, match="dim 1 is out of range"):
        scalar.sum(dim=1)


def test_as_tensor_and_check_positive_int():
    from tinytorch.core.tensor import Tensor, as_tensor, check_positive_int

    t = Tensor([1.0, 2.0])
    assert as_tensor(t) is t and as_tensor(t, dtype=np.float64).dtype == np.float64
    assert as_tensor([1, 2]).dtype == np.int64 and as_tensor(np.ones(2)).dtype == np.float32
    assert check_positive_int("Linear", "in_features", np.int64(3)) == 3
    for bad in (0, -1, 2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"Linear: in_features must be a positive integer, got"):
            check_positive_int("Linear", "in_features", bad)


# ---- the op observer (module 14's seam) -----------------------------------------------------------
def test_op_observer_sees_every_result_with_its_inputs_and_saved_arguments():
    from tinytorch.core.tensor import set_grad_enabled, set_op_observer

    seen = []
    a, b = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True), Tensor([[1.0], [2.0]])
    previous = set_op_observer(lambda op, inputs, output, saved: seen.append((op, inputs, output, saved)))
    try:
        product = a @ b
        total = product.sum(dim=0)
        with set_grad_enabled(False):
            unrecorded = (a * 2.0).reshape(4)
    finally:
        assert set_op_observer(previous) is not None, "set_op_observer returns the observer it replaces"
    assert previous is None
    ops = [op for op, *_ in seen]
    assert ops == ["matmul", "sum", "constant", "mul", "reshape"], ops
    assert seen[0][1] == (a, b) and seen[0][2] is product
    assert seen[1][3] == {"dim": (0,), "keepdim": False} and seen[1][2] is total
    assert seen[-1][2] is unrecorded and not unrecorded.requires_grad, "observed under no_grad too"
    seen.clear()
    a + b
    assert seen == [], "a removed observer sees nothing"
