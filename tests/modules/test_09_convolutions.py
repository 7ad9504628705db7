"""Module 09 Convolutions, graded through the exported package `tinytorch.core.spatial`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import assert_matches_torch, check_gradients
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Flatten, Linear, Sequential
from tinytorch.core.spatial import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2D,
    Conv2d,
    MaxPool2d,
    adaptive_avg_pool2d,
    avg_pool2d,
    batch_norm,
    col2im,
    conv2d,
    conv2d_naive,
    conv_output_size,
    im2col,
    max_pool2d,
)
from tinytorch.core.tensor import Tensor, manual_seed

FAST = settings(max_examples=30, deadline=None)


def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- output size ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "size,kernel,stride,padding,dilation,expected",
    [(32, 3, 1, 1, 1, 32), (32, 3, 1, 0, 1, 30), (32, 3, 2, 1, 1, 16), (32, 2, 2, 0, 1, 16),
     (7, 3, 1, 0, 2, 3), (5, 5, 1, 0, 1, 1), (10, 3, 3, 0, 1, 3), (28, 5, 1, 2, 1, 28)],
)
def test_conv_output_size_follows_the_formula(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_conv_output_size_explains_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError) as error:
        conv_output_size(2, 5)
    assert "spans 5 pixels" in str(error.value) and "only 2 pixels" in str(error.value)
    with pytest.raises(ValueError, match="stride"):
        conv_output_size(8, 3, stride=0)


# ---- im2col against the naive loops ------------------------------------------------------------------
def test_im2col_columns_are_the_receptive_fields():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    cols = im2col(x, 2)
    assert cols.shape == (4, 8) and cols.dtype == np.float32
    assert cols[:, 0].tolist() == [0, 1, 3, 4]
    assert cols[:, 3].tolist() == [4, 5, 7, 8]
    assert cols[:, 4].tolist() == [9, 10, 12, 13]
    padded = im2col(x, 3, padding=1)
    assert padded.shape == (9, 2 * 3 * 3) and padded[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 3, 4]


def test_naive_convolution_matches_the_formula_by_hand():
    image = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    kernel = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    assert np.all(conv2d_naive(image, kernel) == -5.0)
    assert conv2d_naive(image, np.ones((1, 1, 2, 2)), dilation=2)[0, 0, 0, 0] == 0 + 2 + 8 + 10
    grouped = conv2d_naive(np.ones((1, 4, 3, 3)), np.ones((2, 2, 3, 3)), groups=2)
    assert grouped.shape == (1, 2, 1, 1) and np.all(grouped == 18.0)


@FAST
@given(
    n=st.integers(1, 2), groups=st.sampled_from([1, 2]), c_per_group=st.integers(1, 2), o_per_group=st.integers(1, 2),
    h=st.integers(3, 7), w=st.integers(3, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), bias=st.booleans(), seed=st.integers(0, 1000),
)
def test_im2col_convolution_equals_the_naive_loops(n, groups, c_per_group, o_per_group, h, w, kh, kw, stride,
                                                   padding, dilation, bias, seed):
    if h + 2 * padding[0] < dilation[0] * (kh - 1) + 1 or w + 2 * padding[1] < dilation[1] * (kw - 1) + 1:
        return  # the kernel does not fit; covered by the error tests
    x = randn(n, groups * c_per_group, h, w, seed=seed)
    weight = randn(groups * o_per_group, c_per_group, kh, kw, seed=seed + 1)
    b = randn(groups * o_per_group, seed=seed + 2) if bias else None
    fast = conv2d(Tensor(x), Tensor(weight), None if b is None else Tensor(b), stride, padding, dilation, groups)
    slow = conv2d_naive(x, weight, b, stride, padding, dilation, groups)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast.numpy(), slow, rtol=1e-4, atol=1e-4)


def test_conv2d_keeps_float32_and_float64_and_accepts_arrays():
    assert conv2d(Tensor(randn(1, 2, 5, 5)), Tensor(randn(3, 2, 3, 3))).dtype == np.float32
    x64 = Tensor(randn(1, 2, 5, 5, dtype=np.float64), dtype=np.float64)
    assert conv2d(x64, Tensor(randn(3, 2, 3, 3, dtype=np.float64), dtype=np.float64)).dtype == np.float64
    assert Conv2d(2, 3, 3, dtype=np.float64)(x64).dtype == np.float64
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3, seed=1)
    np.testing.assert_allclose(conv2d(x, w).numpy(), conv2d_naive(x, w), rtol=1e-5, atol=1e-5)
    assert max_pool2d(x, 2).shape == (1, 2, 2, 2) and avg_pool2d(x, 2).shape == (1, 2, 2, 2)


# ---- conv2d gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [(1, 0, 1, 1), (1, 1, 1, 1), (2, 1, 1, 1), ((2, 1), (1, 0), 1, 1), (1, 2, 2, 1), (1, 1, 1, 2), (2, 0, (1, 2), 2)],
)
def test_conv2d_gradients_match_central_differences(stride, padding, dilation, groups):
    rng = np.random.default_rng(3)
    check_gradients(
        lambda x, w, b: conv2d(x, w, b, stride, padding, dilation, groups),
        (2, 2, 5, 4), (4, 2 // groups, 3, 2), (4,), rng=rng,
    )


def test_conv2d_gradients_without_bias_and_on_a_strided_input():
    transposed = np.random.default_rng(4).standard_normal((2, 1, 6, 5)).transpose(0, 1, 3, 2)
    check_gradients(lambda x, w: conv2d(x, w, padding=1), transposed, (3, 1, 3, 3))


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(5)
    for kernel, stride, padding, dilation in [(3, 1, 1, 1), (3, 2, 0, 1), ((2, 3), (2, 1), (1, 0), (2, 1))]:
        x = rng.standard_normal((2, 3, 7, 6))
        cols = im2col(x, kernel, stride, padding, dilation)
        c = rng.standard_normal(cols.shape)
        back = col2im(c, x.shape, kernel, stride, padding, dilation)
        assert back.shape == x.shape
        assert np.isclose(np.sum(cols * c), np.sum(x * back)), "<im2col(x), c> must equal <x, col2im(c)>"


def test_conv2d_backward_accepts_a_broadcast_gradient():
    x = Tensor(randn(2, 3, 6, 6), requires_grad=True)
    w = Tensor(randn(4, 3, 3, 3, seed=1), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()  # the gradient arrives as a read-only broadcast view
    expected_w = im2col(x.numpy(), 3, padding=1).sum(axis=1).reshape(1, 3, 3, 3)
    np.testing.assert_allclose(w.grad, np.broadcast_to(expected_w, (4, 3, 3, 3)), rtol=1e-4, atol=1e-5)
    assert x.grad.shape == x.shape


def test_conv2d_skips_gradients_nobody_needs():
    x = Tensor(randn(1, 2, 4, 4))
    w = Tensor(randn(3, 2, 3, 3, seed=1), requires_grad=True)
    out = conv2d(x, w)
    out.backward(np.ones(out.shape, dtype=np.float32))
    assert x.grad is None and w.grad is not None
    with no_grad():
        assert not conv2d(Tensor(randn(1, 2, 4, 4)), w).requires_grad


@pytest.mark.parametrize(
    "shape,weight_shape,stride,padding,dilation,groups,bias",
    [((4, 3, 8, 8), (5, 3, 3, 3), 1, 1, 1, 1, True), ((2, 4, 9, 7), (6, 2, 3, 2), (2, 1), (1, 0), 1, 2, True),
     ((2, 2, 10, 11), (3, 2, 3, 3), 2, 2, 2, 1, False), ((1, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 4, True),
     ((3, 3, 5, 9), (2, 3, 1, 1), 1, 0, 1, 1, True)],
)
def test_conv2d_matches_torch_forward_and_backward(torch, shape, weight_shape, stride, padding, dilation, groups, bias):
    arrays = [randn(*shape, seed=1), randn(*weight_shape, seed=2)] + ([randn(weight_shape[0], seed=3)] if bias else [])

    def ours(x, w, b=None):
        return conv2d(x, w, b, stride, padding, dilation, groups)

    def theirs(x, w, b=None):
        return torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups)

    assert_matches_torch(ours, theirs, *arrays, atol=1e-4, rtol=1e-4)


# ---- the Conv2d layer ------------------------------------------------------------------------------
def test_conv2d_layer_has_pytorchs_layout_and_initialisation():
    manual_seed(0)
    layer = Conv2d(6, 8, kernel_size=(3, 5), groups=2)
    assert layer.weight.shape == (8, 3, 3, 5) and layer.bias.shape == (8,)
    bound = 1 / math.sqrt(3 * 3 * 5)
    for parameter in (layer.weight, layer.bias):
        assert parameter.dtype == np.float32 and parameter.requires_grad
        assert np.abs(parameter.numpy()).max() <= bound
        assert np.abs(parameter.numpy()).max() > 0.5 * bound, "uniform over the whole range, not a narrow one"
    assert Conv2d(3, 4, 3, bias=False).bias is None
    assert list(dict(layer.named_parameters())) == ["weight", "bias"]
    assert Conv2D is Conv2d
    assert repr(Conv2d(3, 16, 3, stride=2, padding=1)) == "Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"


def test_conv2d_layer_loads_a_torch_checkpoint_and_gives_the_same_output(torch):
    reference = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    layer = Conv2d(3, 4, 3, stride=2, padding=1)
    layer.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = randn(2, 3, 9, 8)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), reference(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "make,message",
    [(lambda: Conv2d(3, 8, 3)(Tensor(np.zeros((1, 1, 28, 28), np.float32))), "expected an input with 3 channels"),
     (lambda: Conv2d(3, 8, 3)(Tensor(np.zeros((3, 32, 32), np.float32))), "unsqueeze(0)"),
     (lambda: Conv2d(3, 8, 5)(Tensor(np.zeros((1, 3, 3, 3), np.float32))), "spans 5 pixels"),
     (lambda: Conv2d(3, 8, 3, groups=2), "groups=2 must divide"),
     (lambda: Conv2d(0, 8, 3), "in_channels must be a positive integer"),
     (lambda: Conv2d(3, 8, (3, 3, 3)), "kernel_size must be an int or a pair"),
     (lambda: conv2d(Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((3, 1, 3, 3)))), "(3, 1, 3, 3)"),
     (lambda: conv2d(Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((3, 2, 3, 3))), Tensor(np.zeros(2))), "one value per output channel")],
)
def test_conv_errors_say_what_is_wrong(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_conv2d_refuses_mixed_dtypes_with_a_fix():
    with pytest.raises(TypeError) as error:
        conv2d(Tensor(np.zeros((1, 2, 4, 4)), dtype=np.float64), Tensor(np.zeros((3, 2, 3, 3), np.float32)))
    assert "float64" in str(error.value) and "float32" in str(error.value) and "same dtype" in str(error.value)


# ---- pooling --------------------------------------------------------------------------------------
def test_max_pool_routes_the_gradient_to_the_first_maximum():
    x = Tensor(np.array([[[[1.0, 2.0, 0.0, 0.0],
                           [3.0, 4.0, 0.0, 0.0],
                           [5.0, 9.0, 7.0, 1.0],
                           [6.0, 8.0, 2.0, 7.0]]]], dtype=np.float32), requires_grad=True)
    out = max_pool2d(x, 2)
    assert out.numpy().tolist() == [[[[4.0, 0.0], [9.0, 7.0]]]]
    out.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=np.float32))
    assert x.grad.tolist() == [[[[0, 0, 2, 0], [0, 1, 0, 0], [0, 3, 4, 0], [0, 0, 0, 0]]]]


@pytest.mark.parametrize(
    "shape,kernel,stride,padding,dilation",
    [((2, 3, 8, 8), 2, None, 0, 1), ((2, 3, 9, 7), 2, None, 0, 1), ((1, 2, 7, 9), 3, 2, 1, 1),
     ((2, 2, 6, 8), (2, 3), (1, 2), (1, 1), 1), ((1, 2, 9, 9), 3, 1, 0, 2), ((1, 1, 5, 5), 3, 1, 1, 1)],
)
def test_max_pool2d_matches_torch_forward_and_backward(torch, shape, kernel, stride, padding, dilation):
    x = np.maximum(randn(*shape, seed=7), 0)  # after a ReLU: many ties among zeros
    assert_matches_torch(
        lambda t: max_pool2d(t, kernel, stride, padding, dilation),
        lambda t: torch.nn.functional.max_pool2d(t, kernel, stride, padding, dilation),
        x,
    )


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_pool_gradients_match_central_differences(kernel, stride, padding):
    rng = np.random.default_rng(8)
    check_gradients(lambda x: max_pool2d(x, kernel, stride, padding), (2, 2, 6, 7), rng=rng)
    check_gradients(lambda x: avg_pool2d(x, kernel, stride, padding), (2, 2, 6, 7), rng=rng)


@pytest.mark.parametrize(
    "shape,kernel,stride,padding",
    [((2, 3, 8, 8), 2, None, 0), ((2, 3, 9, 7), 2, None, 0), ((1, 2, 7, 9), 3, 2, 1), ((2, 2, 6, 8), (2, 3), (1, 2), (1, 1))],
)
def test_avg_pool2d_matches_torch_forward_and_backward(torch, shape, kernel, stride, padding):
    assert_matches_torch(
        lambda t: avg_pool2d(t, kernel, stride, padding),
        lambda t: torch.nn.functional.avg_pool2d(t, kernel, stride, padding),
        randn(*shape, seed=9),
    )


@pytest.mark.parametrize("output_size", [1, (1, 1), (2, 3), 4])
def test_adaptive_avg_pool2d_matches_torch(torch, output_size):
    assert_matches_torch(
        lambda t: adaptive_avg_pool2d(t, output_size),
        lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size),
        randn(2, 3, 8, 12, seed=10),
    )


def test_global_average_pooling_averages_each_channel():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = AdaptiveAvgPool2d((1, 1))(Tensor(x))
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out.numpy()[:, :, 0, 0], x.mean(axis=(2, 3)))


def test_pooling_layers_and_their_errors():
    x = Tensor(randn(2, 3, 8, 8))
    assert MaxPool2d(2)(x).shape == (2, 3, 4, 4) and AvgPool2d(2)(x).shape == (2, 3, 4, 4)
    assert MaxPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 8, 8)
    assert MaxPool2d(2).stride == (2, 2), "stride defaults to the kernel size"
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    with pytest.raises(ValueError, match=r"4-D input \(N, C, H, W\), got shape \(3, 8, 8\).*unsqueeze"):
        max_pool2d(Tensor(randn(3, 8, 8)), 2)
    with pytest.raises(ValueError, match="at most half the kernel size"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        AdaptiveAvgPool2d(2)(Tensor(randn(1, 1, 5, 5)))


# ---- batch norm ------------------------------------------------------------------------------------
def test_batch_norm_normalises_each_channel_in_training():
    x = randn(8, 3, 4, 4, seed=11) * 3 + 2
    out = BatchNorm2d(3)(Tensor(x)).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, atol=1e-3)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_running_statistics_and_eval_match_torch(torch, momentum):
    ours, theirs = BatchNorm2d(4, momentum=momentum), torch.nn.BatchNorm2d(4, momentum=momentum)
    for step in range(3):
        x = randn(6, 4, 5, 3, seed=step) * (step + 1) + step
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-5, err_msg=name)
    ours.eval(), theirs.eval()
    x = randn(2, 4, 3, 3, seed=9)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch_forward_and_backward(torch, training):
    x = randn(4, 3, 5, 6, seed=12) * 2 + 1
    mean, var = randn(3, seed=13), np.abs(randn(3, seed=14)) + 0.5

    def ours(x, w, b):
        return batch_norm(x, Tensor(mean.copy()), Tensor(var.copy()), w, b, training=training)

    def theirs(x, w, b):
        return torch.nn.functional.batch_norm(x, torch.from_numpy(mean.copy()), torch.from_numpy(var.copy()), w, b,
                                              training=training)

    assert_matches_torch(ours, theirs, x, randn(3, seed=15), randn(3, seed=16), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_gradients_match_central_differences(training, affine):
    rng = np.random.default_rng(17)
    mean, var = Tensor(rng.standard_normal(3), dtype=np.float64), Tensor(rng.random(3) + 0.5, dtype=np.float64)
    if affine:
        check_gradients(lambda x, w, b: batch_norm(x, mean, var, w, b, training=training), (4, 3, 2, 3), (3,), (3,), rng=rng)
    else:
        check_gradients(lambda x: batch_norm(x, mean, var, training=training), (4, 3, 2, 3), rng=rng)


def test_batch_norm_layer_options_and_state_dict_match_torch(torch):
    assert set(BatchNorm2d(5).state_dict()) == set(torch.nn.BatchNorm2d(5).state_dict())
    plain = BatchNorm2d(5, affine=False)
    assert plain.weight is None and list(plain.parameters()) == []
    untracked = BatchNorm2d(3, track_running_stats=False)
    untracked.eval()
    x = randn(4, 3, 2, 2, seed=18)
    reference = torch.nn.BatchNorm2d(3, track_running_stats=False).eval()
    np.testing.assert_allclose(untracked(Tensor(x)).numpy(), reference(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_batch_norm_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, 3, H, W\), got shape \(2, 4, 5, 5\)"):
        BatchNorm2d(3)(Tensor(randn(2, 4, 5, 5)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm2d(3)(Tensor(randn(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        BatchNorm2d(0)


# ---- the whole network ------------------------------------------------------------------------------
def test_a_small_cnn_matches_torch_end_to_end(torch):
    """Same weights, same batch: the loss and every parameter's gradient agree with PyTorch."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.losses import cross_entropy

    ours = Sequential(Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                      Conv2d(4, 6, 3, padding=1, bias=False), BatchNorm2d(6), ReLU(), AdaptiveAvgPool2d(1),
                      Flatten(), Linear(6, 5))
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x, y = randn(6, 3, 8, 8, seed=19), np.random.default_rng(20).integers(0, 5, 6)
    our_loss = cross_entropy(ours(Tensor(x)), Tensor(y))
    their_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    our_loss.backward()
    their_loss.backward()
    assert np.isclose(our_loss.item(), their_loss.item(), atol=1e-5)
    our_parameters = dict(ours.named_parameters())
    for name, parameter in theirs.named_parameters():
        np.testing.assert_allclose(our_parameters[name].grad, parameter.grad.numpy(), atol=1e-5, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("arguments, message", [
    (dict(kernel_size=0), "kernel_size must be at least 1"),
    (dict(kernel_size=3, stride=0), "stride must be at least 1"),
    (dict(kernel_size=3, padding=-1), "padding must be at least 0"),
    (dict(kernel_size=3, dilation=(1, 0)), "dilation must be at least 1"),
    (dict(kernel_size=2.5), "kernel_size must be an int or a pair of ints"),
])
def test_conv2d_arguments_are_checked_where_the_layer_is_built(arguments, message):
    # Before: Conv2d(1, 1, 0) raised ZeroDivisionError; stride=0 and padding=-1 were accepted
    # until the first forward pass.
    with pytest.raises(ValueError, match=message):
        Conv2d(1, 1, **arguments)
