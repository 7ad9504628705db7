"""Module 02 Activations, graded through the exported package `tinytorch.core.activations`.

Forward values only: module 05 (Autograd) tests the gradients of these ops.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core.activations import (
    GELU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    gelu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from tinytorch.core.tensor import Tensor

FAST = settings(max_examples=40, deadline=None)
FLOAT32_ARRAYS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                            elements=st.floats(-50, 50, width=32))
EXTREMES = np.array([[-1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0]], dtype=np.float32)


def numpy_softmax(array, axis):
    shifted = array.astype(np.float64) - array.max(axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def numpy_gelu_exact(array):
    erfc = np.vectorize(math.erfc)
    return 0.5 * array * erfc(-array / math.sqrt(2.0))


ELEMENTWISE = [
    (relu, lambda a: np.maximum(a, 0)),
    (sigmoid, lambda a: 1 / (1 + np.exp(-a.astype(np.float64)))),
    (tanh, np.tanh),
    (lambda x: gelu(x, approximate="tanh"),
     lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a.astype(np.float64) ** 3)))),
    (gelu, numpy_gelu_exact),
]


# ---- values against NumPy --------------------------------------------------------------------
@FAST
@given(array=FLOAT32_ARRAYS)
@pytest.mark.parametrize("function,reference", ELEMENTWISE, ids=["relu", "sigmoid", "tanh", "gelu_tanh", "gelu"])
def test_elementwise_activations_match_numpy(function, reference, array):
    result = function(Tensor(array))
    assert result.shape == array.shape and result.dtype == np.float32
    np.testing.assert_allclose(result.numpy(), reference(array), rtol=1e-5, atol=1e-5)


@FAST
@given(array=FLOAT32_ARRAYS, data=st.data())
def test_softmax_and_log_softmax_match_numpy_along_any_dim(array, data):
    dim = data.draw(st.integers(-array.ndim, array.ndim - 1))
    expected = numpy_softmax(array, dim)
    probabilities = softmax(Tensor(array), dim=dim)
    assert probabilities.shape == array.shape and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.numpy().sum(axis=dim), 1.0, rtol=1e-5)
    np.testing.assert_allclose(log_softmax(Tensor(array), dim=dim).numpy(), np.log(expected), rtol=1e-5, atol=1e-5)


def test_relu_keeps_integer_dtypes_and_the_others_make_float32():
    small = Tensor(np.array([-3, 0, 5], dtype=np.int8))
    assert relu(small).dtype == np.int8 and relu(small).numpy().tolist() == [0, 0, 5]
    for function in (sigmoid, tanh, gelu, softmax, log_softmax):
        assert function(Tensor([1, 2])).dtype == np.float32, f"{function.__name__} of integers is float32"


@pytest.mark.parametrize("function", [relu, sigmoid, tanh, gelu, softmax, log_softmax])
def test_float64_stays_float64_and_lists_are_accepted(function):
    assert function(Tensor([0.5, -0.5], dtype=np.float64)).dtype == np.float64
    assert function([0.5, -0.5]).shape == (2,)


def test_non_contiguous_input():
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    view = Tensor(array).transpose()
    assert not view.is_contiguous()
    np.testing.assert_allclose(softmax(view, dim=0).numpy(), numpy_softmax(array.T, 0), rtol=1e-6)
    np.testing.assert_allclose(sigmoid(view).numpy(), 1 / (1 + np.exp(-array.T)), rtol=1e-6)


# ---- numerical stability ------------------------------------------------------------------------
@pytest.mark.parametrize("function", [relu, sigmoid, tanh, gelu, lambda x: gelu(x, approximate="tanh"),
                                      softmax, log_softmax], ids=["relu", "sigmoid", "tanh", "gelu", "gelu_tanh",
                                                                  "softmax", "log_softmax"])
def test_no_inf_or_nan_at_plus_minus_1000(function):
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no warning may escape
        result = function(Tensor(EXTREMES)).numpy()
    assert np.all(np.isfinite(result))


def test_stable_values_at_the_extremes():
    x = Tensor(EXTREMES)
    assert sigmoid(x).numpy()[0, 0] == 0.0 and sigmoid(x).numpy()[0, -1] == 1.0
    assert tanh(x).numpy()[0, 0] == -1.0 and tanh(x).numpy()[0, -1] == 1.0
    np.testing.assert_allclose(softmax(x).numpy()[0], [0, 0, 0, 0, 0, 0, 1], atol=1e-30)
    np.testing.assert_allclose(log_softmax(x).numpy()[0], EXTREMES[0] - 1000.0, rtol=1e-6)
    np.testing.assert_allclose(gelu(x).numpy()[0, [0, -1]], [0.0, 1000.0])


def test_softmax_handles_masked_minus_infinity():
    masked = Tensor([[0.0, -np.inf, 0.0], [-np.inf, 5.0, -np.inf]])
    assert softmax(masked).numpy().tolist() == [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]
    assert log_softmax(masked).numpy()[1, 1] == 0.0


# ---- the autograd contract with module 05 ------------------------------------------------------
@pytest.mark.parametrize("function,op", [(relu, "relu"), (sigmoid, "sigmoid"), (tanh, "tanh")])
def test_fused_elementwise_ops_record_their_name(function, op):
    x = Tensor([[1.0, -2.0]], requires_grad=True)
    out = function(x)
    assert out._op == op and out._inputs == (x,) and out.requires_grad
    assert function(Tensor([1.0, -2.0])).is_leaf, "no graph without requires_grad"


@pytest.mark.parametrize("function,op", [(softmax, "softmax"), (log_softmax, "log_softmax")])
@pytest.mark.parametrize("dim,saved", [(-1, 2), (0, 0), (-2, 1), (1, 1)])
def test_softmax_ops_save_a_non_negative_dim(function, op, dim, saved):
    x = Tensor(np.zeros((2, 3, 4)), requires_grad=True)
    out = function(x, dim=dim)
    assert out._op == op and out._inputs == (x,)
    assert out._saved == {"dim": saved} and type(out._saved["dim"]) is int


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_is_composed_from_recorded_primitives(approximate):
    out = gelu(Tensor([0.5, -0.5], requires_grad=True), approximate=approximate)
    assert out.requires_grad and not out.is_leaf
    assert out._op not in ("gelu", None), "GELU is composed from primitives, not a fused op"


# ---- layers ---------------------------------------------------------------------------------------
def test_layers_call_forward_and_have_no_parameters():
    x = Tensor([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]])
    pairs = [(ReLU(), relu(x)), (Sigmoid(), sigmoid(x)), (Tanh(), tanh(x)), (GELU(), gelu(x)),
             (GELU(approximate="tanh"), gelu(x, approximate="tanh")), (Softmax(dim=0), softmax(x, dim=0)),
             (LogSoftmax(), log_softmax(x, dim=-1))]
    for layer, expected in pairs:
        np.testing.assert_array_equal(layer(x).numpy(), expected.numpy())
        np.testing.assert_array_equal(layer.forward(x).numpy(), expected.numpy())
        assert layer.parameters() == []


# ---- errors that teach ---------------------------------------------------------------------------
@pytest.mark.parametrize("function", [softmax, log_softmax])
def test_dim_out_of_range_names_the_op_dim_and_shape(function):
    with pytest.raises(IndexError) as error:
        function(Tensor(np.zeros((2, 3))), dim=2)
    message = str(error.value)
    assert function.__name__ in message and "dim 2" in message and "(2, 3)" in message
    with pytest.raises(ValueError, match="0-d"):
        function(Tensor(1.0))
    with pytest.raises(TypeError, match="dim must be an int"):
        function(Tensor(np.zeros(3)), dim=None)


def test_unknown_gelu_approximation_lists_the_choices():
    for make in (lambda: gelu(Tensor([1.0]), approximate="erf"), lambda: GELU(approximate="erf")):
        with pytest.raises(ValueError) as error:
            make()
        assert "'none'" in str(error.value) and "'tanh'" in str(error.value) and "'erf'" in str(error.value)


# ---- parity with PyTorch --------------------------------------------------------------------------
def test_forward_parity_with_torch_functional(torch):
    functional = torch.nn.functional
    array = np.concatenate([np.linspace(-12, 12, 97, dtype=np.float32), EXTREMES[0]]).reshape(8, 13)
    ours_theirs = [
        (relu, functional.relu), (sigmoid, torch.sigmoid), (tanh, torch.tanh),
        (lambda x: gelu(x, approximate="tanh"), lambda t: functional.gelu(t, approximate="tanh")),
        (lambda x: softmax(x, dim=1), lambda t: functional.softmax(t, dim=1)),
        (lambda x: softmax(x, dim=0), lambda t: functional.softmax(t, dim=0)),
        (lambda x: log_softmax(x, dim=-1), lambda t: functional.log_softmax(t, dim=-1)),
    ]
    for ours, theirs in ours_theirs:
        np.testing.assert_allclose(ours(Tensor(array)).numpy(), theirs(torch.from_numpy(array)).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_exact_gelu_matches_torch_within_the_abramowitz_stegun_bound(torch):
    array = np.linspace(-20, 20, 40001)
    expected = torch.nn.functional.gelu(torch.from_numpy(array)).numpy()
    error = np.abs(gelu(Tensor(array, dtype=np.float64)).numpy() - expected)
    # A&S 7.1.26 is within 1.5e-7 of erf, so Phi within 7.5e-8 and x * Phi within 7.5e-8 |x|.
    assert np.all(error <= 7.5e-8 * np.abs(array) + 1e-15), f"largest error {error.max():.3g}"
    # In float32, compare with PyTorch's float64 result: its float32 kernel is itself up to ~1e-6
    # off near x = -3.5 (-0.00084782 against the true -0.00084871 at x = -3.488).
    array32 = np.linspace(-10, 10, 20001, dtype=np.float32)
    expected32 = torch.nn.functional.gelu(torch.from_numpy(array32.astype(np.float64))).numpy()
    np.testing.assert_allclose(GELU()(Tensor(array32)).numpy(), expected32, rtol=1e-6, atol=1e-6)


def test_reprs_match_torch(torch):
    nn = torch.nn
    pairs = [(ReLU(), nn.ReLU()), (Sigmoid(), nn.Sigmoid()), (Tanh(), nn.Tanh()), (GELU(), nn.GELU()),
             (GELU(approximate="tanh"), nn.GELU(approximate="tanh")), (Softmax(dim=1), nn.Softmax(dim=1)),
             (LogSoftmax(dim=-1), nn.LogSoftmax(dim=-1))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
