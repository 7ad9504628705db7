"""Module 04 Losses, graded through the exported package `tinytorch.core.losses`.

Forward values only: module 05 (Autograd) tests the gradients of these losses.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.core.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    MSELoss,
    NLLLoss,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from tinytorch.core.tensor import Tensor

FAST = settings(max_examples=40, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]
FINITE = st.floats(-30, 30, width=32)


def numpy_reduce(losses, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](losses)


def numpy_log_softmax(logits, axis):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def numpy_cross_entropy(logits, target, reduction, smoothing=0.0):
    """Reference with an explicit one-hot, so it shares no indexing trick with the code under test."""
    log_probs = numpy_log_softmax(logits, axis=1)
    one_hot = np.moveaxis(np.eye(logits.shape[1])[target], -1, 1)
    losses = -(one_hot * log_probs).sum(axis=1)
    losses = (1 - smoothing) * losses + smoothing * -log_probs.mean(axis=1)
    return numpy_reduce(losses, reduction)


def graph_ops(tensor):
    """Names of every op recorded in the graph below `tensor`."""
    seen, stack, ops = set(), [tensor], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._op is not None:
            ops.add(node._op)
        stack.extend(node._inputs)
    return ops


# ---- values against NumPy ----------------------------------------------------------------------
@FAST
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), reduction=st.sampled_from(REDUCTIONS),
       data=st.data())
def test_mse_matches_numpy(shape, reduction, data):
    prediction = data.draw(hnp.arrays(np.float32, shape, elements=FINITE))
    target = data.draw(hnp.arrays(np.float32, shape, elements=FINITE))
    result = mse_loss(Tensor(prediction), Tensor(target), reduction=reduction)
    expected = numpy_reduce((prediction.astype(np.float64) - target) ** 2, reduction)
    assert result.dtype == np.float32 and result.shape == np.shape(expected)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-4)


@FAST
@given(batch=st.integers(1, 6), classes=st.integers(1, 7), reduction=st.sampled_from(REDUCTIONS),
       smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]), data=st.data())
def test_cross_entropy_matches_numpy(batch, classes, reduction, smoothing, data):
    logits = data.draw(hnp.arrays(np.float32, (batch, classes), elements=FINITE))
    target = data.draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    result = cross_entropy(Tensor(logits), Tensor(target), reduction=reduction, label_smoothing=smoothing)
    expected = numpy_cross_entropy(logits, target, reduction, smoothing)
    assert result.dtype == np.float32 and result.shape == np.shape(expected)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


@FAST
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
       reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_cross_entropy_with_extra_dimensions_matches_numpy(shape, reduction, data):
    logits = data.draw(hnp.arrays(np.float32, shape, elements=FINITE))
    target = data.draw(hnp.arrays(np.int64, shape[:1] + shape[2:], elements=st.integers(0, shape[1] - 1)))
    result = cross_entropy(Tensor(logits), Tensor(target), reduction=reduction, label_smoothing=0.2)
    np.testing.assert_allclose(result.numpy(), numpy_cross_entropy(logits, target, reduction, 0.2),
                               rtol=1e-5, atol=1e-5)


def test_unbatched_cross_entropy_and_nll():
    logits = np.array([0.5, 2.0, -1.0], dtype=np.float32)
    expected = -numpy_log_softmax(logits, axis=0)[1]
    assert np.isclose(cross_entropy(Tensor(logits), Tensor(1)).item(), expected)
    assert np.isclose(nll_loss(Tensor(numpy_log_softmax(logits, 0)), Tensor(1)).item(), expected)


@FAST
@given(batch=st.integers(1, 6), classes=st.integers(1, 6), reduction=st.sampled_from(REDUCTIONS), data=st.data())
def test_nll_loss_matches_numpy(batch, classes, reduction, data):
    log_probs = data.draw(hnp.arrays(np.float32, (batch, classes), elements=FINITE))
    target = data.draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    expected = numpy_reduce(-(np.eye(classes)[target] * log_probs).sum(axis=1), reduction)
    np.testing.assert_allclose(nll_loss(Tensor(log_probs), Tensor(target), reduction=reduction).numpy(),
                               expected, rtol=1e-6, atol=1e-6)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), reduction=st.sampled_from(REDUCTIONS),
       data=st.data())
def test_binary_cross_entropy_matches_numpy(shape, reduction, data):
    open_unit_interval = st.floats(float(np.float32(1e-6)), float(np.float32(1 - 1e-6)), width=32)
    probabilities = data.draw(hnp.arrays(np.float32, shape, elements=open_unit_interval))
    target = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    p = probabilities.astype(np.float64)
    expected = numpy_reduce(-(target * np.log(p) + (1 - target) * np.log1p(-p)), reduction)
    result = binary_cross_entropy(Tensor(probabilities), Tensor(target), reduction=reduction)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-4, atol=1e-5)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), reduction=st.sampled_from(REDUCTIONS),
       data=st.data())
def test_binary_cross_entropy_with_logits_matches_numpy(shape, reduction, data):
    logits = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-100, 100, width=32)))
    target = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    x = logits.astype(np.float64)
    expected = numpy_reduce(np.logaddexp(0, x) - x * target, reduction)
    result = binary_cross_entropy_with_logits(Tensor(logits), Tensor(target), reduction=reduction)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_float64_inputs_give_float64_losses():
    x = Tensor([[0.2, 0.8]], dtype=np.float64)
    assert mse_loss(x, Tensor([[0.0, 1.0]], dtype=np.float64)).dtype == np.float64
    assert cross_entropy(x, Tensor([1])).dtype == np.float64
    assert binary_cross_entropy(x, Tensor([[0.0, 1.0]], dtype=np.float64)).dtype == np.float64


def test_integer_and_list_targets_are_accepted_where_they_make_sense():
    assert mse_loss(Tensor([1.0, 2.0]), [1, 3]).item() == 0.5
    assert np.isclose(binary_cross_entropy(Tensor([0.5, 0.5]), Tensor([1, 0])).item(), np.log(2))
    assert np.isclose(cross_entropy(Tensor(np.zeros((2, 4))), [0, 3]).item(), np.log(4))
    assert np.isclose(cross_entropy(Tensor(np.zeros((2, 4))), Tensor(np.array([0, 3], dtype=np.uint8))).item(),
                      np.log(4))


# ---- numerical stability ---------------------------------------------------------------------------
def test_cross_entropy_is_exact_at_plus_minus_1000():
    logits = Tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        losses = cross_entropy(logits, Tensor([1, 2]), reduction="none").numpy()
    np.testing.assert_allclose(losses, [2000.0, 0.0])
    assert np.isfinite(cross_entropy(logits, Tensor([1, 0]), label_smoothing=0.1).item())


def test_binary_cross_entropy_with_logits_is_exact_at_plus_minus_1000():
    logits = Tensor([1000.0, -1000.0, 1000.0, -1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        losses = binary_cross_entropy_with_logits(logits, Tensor([0.0, 1.0, 1.0, 0.0]), reduction="none").numpy()
    np.testing.assert_allclose(losses, [1000.0, 1000.0, 0.0, 0.0])


def test_binary_cross_entropy_floors_each_log_at_minus_100_without_warnings():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        losses = binary_cross_entropy(Tensor([0.0, 1.0, 0.0, 1.0]), Tensor([1.0, 0.0, 0.0, 1.0]), reduction="none")
    assert losses.numpy().tolist() == [100.0, 100.0, 0.0, 0.0]
    assert binary_cross_entropy(Tensor([1e-45]), Tensor([1.0])).item() == 100.0, "tiny p is floored too"


# ---- the graph module 05 will differentiate ---------------------------------------------------------
def test_losses_are_composed_from_recorded_primitives():
    logits = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    labels = Tensor([0, 2, 1, 1])
    cross = cross_entropy(logits, labels, label_smoothing=0.1)
    assert cross.requires_grad and {"log_softmax", "getitem"} <= graph_ops(cross)
    with_logits = binary_cross_entropy_with_logits(logits, Tensor(np.ones((4, 3))))
    assert with_logits.requires_grad and "where" in graph_ops(with_logits)
    probabilities = Tensor(np.full((4, 3), 0.5), requires_grad=True)
    assert binary_cross_entropy(probabilities, Tensor(np.ones((4, 3)))).requires_grad
    assert mse_loss(logits, Tensor(np.zeros((4, 3)))).requires_grad
    assert not cross_entropy(Tensor(logits.numpy()), labels).requires_grad


# ---- loss objects ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_objects_call_their_functions(reduction):
    rng = np.random.default_rng(1)
    logits = Tensor(rng.standard_normal((5, 4)))
    labels = Tensor(rng.integers(0, 4, 5))
    probabilities = Tensor(rng.uniform(0.01, 0.99, (5, 4)))
    soft = Tensor(rng.uniform(0, 1, (5, 4)))
    cases = [
        (MSELoss(reduction=reduction), (logits, soft), mse_loss(logits, soft, reduction=reduction)),
        (NLLLoss(reduction=reduction), (logits, labels), nll_loss(logits, labels, reduction=reduction)),
        (CrossEntropyLoss(reduction=reduction, label_smoothing=0.2), (logits, labels),
         cross_entropy(logits, labels, reduction=reduction, label_smoothing=0.2)),
        (BCELoss(reduction=reduction), (probabilities, soft),
         binary_cross_entropy(probabilities, soft, reduction=reduction)),
        (BCEWithLogitsLoss(reduction=reduction), (logits, soft),
         binary_cross_entropy_with_logits(logits, soft, reduction=reduction)),
    ]
    for loss_fn, arguments, expected in cases:
        np.testing.assert_array_equal(loss_fn(*arguments).numpy(), expected.numpy())
        assert list(loss_fn.parameters()) == []
        assert repr(loss_fn).startswith(type(loss_fn).__name__ + f"(reduction='{reduction}'")


# ---- errors that teach -------------------------------------------------------------------------------
def test_one_hot_float_targets_are_refused_with_a_hint():
    with pytest.raises(TypeError) as error:
        CrossEntropyLoss()(Tensor(np.zeros((4, 3))), Tensor(np.eye(3)[[0, 1, 2, 0]]))
    message = str(error.value)
    assert "class indices" in message and "(4,)" in message and "(4, 3)" in message
    assert "float32" in message and "argmax(dim=1)" in message


def test_float_class_indices_are_refused_with_a_hint():
    with pytest.raises(TypeError) as error:
        cross_entropy(Tensor(np.zeros((4, 3))), Tensor([0.0, 1.0, 2.0, 0.0]))
    assert "class indices" in str(error.value) and ".long()" in str(error.value)


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_target_out_of_range_names_the_class_and_the_range(bad):
    with pytest.raises(IndexError) as error:
        cross_entropy(Tensor(np.zeros((2, 3))), Tensor([0, bad]))
    assert f"class {bad}" in str(error.value) and "3 classes" in str(error.value) and "[0, 2]" in str(error.value)


def test_target_shape_mismatch_for_classes_names_both_shapes():
    with pytest.raises(ValueError) as error:
        cross_entropy(Tensor(np.zeros((4, 3))), Tensor([0, 1]))
    message = str(error.value)
    assert "(4, 3)" in message and "(4,)" in message and "(2,)" in message
    with pytest.raises(ValueError, match="class dimension"):
        cross_entropy(Tensor(1.0), Tensor(0))


@pytest.mark.parametrize("loss", [mse_loss, binary_cross_entropy, binary_cross_entropy_with_logits])
def test_elementwise_losses_refuse_shapes_that_would_broadcast(loss):
    with pytest.raises(ValueError) as error:
        loss(Tensor(np.full((4, 1), 0.5)), Tensor(np.full(4, 0.5)))
    assert "(4, 1)" in str(error.value) and "(4,)" in str(error.value) and loss.__name__ in str(error.value)


def test_bce_refuses_values_outside_zero_one():
    with pytest.raises(ValueError) as error:
        BCELoss()(Tensor([0.5, 3.0]), Tensor([1.0, 0.0]))
    assert "[0, 1]" in str(error.value) and "3" in str(error.value) and "BCEWithLogitsLoss" in str(error.value)


@pytest.mark.parametrize("make", [
    lambda: mse_loss(Tensor([1.0]), Tensor([1.0]), reduction="avg"),
    lambda: cross_entropy(Tensor([[1.0]]), Tensor([0]), reduction="avg"),
    lambda: binary_cross_entropy(Tensor([0.5]), Tensor([1.0]), reduction="avg"),
    lambda: binary_cross_entropy_with_logits(Tensor([0.5]), Tensor([1.0]), reduction="avg"),
    lambda: nll_loss(Tensor([[0.0]]), Tensor([0]), reduction="avg"),
    lambda: CrossEntropyLoss(reduction="avg"),
])
def test_unknown_reduction_lists_the_choices(make):
    with pytest.raises(ValueError) as error:
        make()
    assert "'avg'" in str(error.value) and "'mean', 'sum' or 'none'" in str(error.value)


@pytest.mark.parametrize("smoothing", [-0.1, 1.5])
def test_label_smoothing_out_of_range(smoothing):
    for make in (lambda: CrossEntropyLoss(label_smoothing=smoothing),
                 lambda: cross_entropy(Tensor([[1.0, 2.0]]), Tensor([0]), label_smoothing=smoothing)):
        with pytest.raises(ValueError) as error:
            make()
        assert "label_smoothing" in str(error.value) and str(smoothing) in str(error.value)


def test_settings_are_keyword_only_so_a_torch_weight_is_not_misread():
    with pytest.raises(TypeError):
        CrossEntropyLoss(None)
    with pytest.raises(TypeError):
        cross_entropy(Tensor([[1.0, 2.0]]), Tensor([0]), None)


# ---- parity with PyTorch ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (5,)])
def test_cross_entropy_parity_with_torch(torch, reduction, smoothing, shape):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal(shape) * 4).astype(np.float32)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, shape[1] if len(shape) > 1 else shape[0], target_shape)
    ours = cross_entropy(Tensor(logits), Tensor(target), reduction=reduction, label_smoothing=smoothing)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target),
                                               reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    their_log_probs = torch.log_softmax(torch.from_numpy(logits), dim=1 if len(shape) > 1 else 0)
    theirs_nll = torch.nn.functional.nll_loss(their_log_probs, torch.from_numpy(target), reduction=reduction)
    np.testing.assert_allclose(nll_loss(Tensor(their_log_probs.numpy()), Tensor(target), reduction=reduction).numpy(),
                               theirs_nll.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses_parity_with_torch(torch, reduction):
    functional = torch.nn.functional
    rng = np.random.default_rng(3)
    predictions = rng.standard_normal((4, 5)).astype(np.float32)
    soft_targets = rng.uniform(0, 1, (4, 5)).astype(np.float32)
    probabilities = np.concatenate([[0.0, 1.0, 1e-30, 1 - 1e-7], rng.uniform(0, 1, 16)]).astype(np.float32)
    probabilities = probabilities.reshape(4, 5)
    logits = np.concatenate([[1000.0, -1000.0, 40.0, -40.0], rng.standard_normal(16) * 5]).astype(np.float32)
    logits = logits.reshape(4, 5)
    cases = [
        (mse_loss(Tensor(predictions), Tensor(soft_targets), reduction=reduction),
         functional.mse_loss(torch.from_numpy(predictions), torch.from_numpy(soft_targets), reduction=reduction)),
        (binary_cross_entropy(Tensor(probabilities), Tensor(soft_targets), reduction=reduction),
         functional.binary_cross_entropy(torch.from_numpy(probabilities), torch.from_numpy(soft_targets),
                                         reduction=reduction)),
        (binary_cross_entropy_with_logits(Tensor(logits), Tensor(soft_targets), reduction=reduction),
         functional.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(soft_targets),
                                                     reduction=reduction)),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
