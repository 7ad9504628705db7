"""Module 15 Quantization, graded through the exported package `tinytorch.core.quantization`."""

import copy
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import check_gradients
from tinytorch.core.autograd import no_grad
from tinytorch.core.dataloader import DataLoader, TensorDataset
from tinytorch.core.layers import Flatten, Identity, Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.quantization import (
    EXACT_FLOAT32_TERMS,
    FakeQuantize,
    FrozenBatchNorm2d,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    QATConv2d,
    QATLinear,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedTensor,
    calculate_qparams,
    checkpoint_file_bytes,
    convert,
    empty_quantized_model,
    fake_quantize,
    fold_batchnorm,
    freeze_batchnorm,
    freeze_observers,
    integer_matmul,
    make_observer,
    model_bytes,
    prepare_qat,
    quantization_range,
    quantize,
    quantize_array,
    weight_qparams,
)
from tinytorch.core.spatial import BatchNorm2d, Conv2d, MaxPool2d, conv2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


# ---- fixtures: small models that were really trained ----------------------------------------------
def clouds(seed=0, n=800, dims=20, classes=3):
    """Gaussian clouds around random centres: a task a small MLP learns in a few dozen steps."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)).astype(np.float32) * 2
    labels = rng.integers(0, classes, n)
    return centres[labels] + rng.standard_normal((n, dims)).astype(np.float32), labels


def train(model, inputs, labels, steps, lr=1e-2):
    optimizer, loss_fn = Adam(model.parameters(), lr=lr), CrossEntropyLoss()
    for _ in range(steps):
        loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained_mlp():
    inputs, labels = clouds()
    manual_seed(0)
    model = train(Sequential(Linear(20, 64), ReLU(), Linear(64, 32), ReLU(), Linear(32, 3)), inputs[:400], labels[:400], 60)
    return model, inputs, labels


def small_cnn(seed=0):
    manual_seed(seed)
    return Sequential(Conv2d(3, 8, 3, padding=1, bias=False), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                      Conv2d(8, 8, 3, padding=1), BatchNorm2d(8), ReLU(), Flatten(), Linear(8 * 4 * 4, 5))


@pytest.fixture(scope="module")
def trained_cnn():
    """The small CNN trained a few steps (BN statistics learnt from data), with its images."""
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((96, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, 96)
    images += labels[:, None, None, None].astype(np.float32) * 0.5  # a learnable signal
    model = small_cnn()
    optimizer, loss_fn = SGD(model.parameters(), lr=0.05, momentum=0.9), CrossEntropyLoss()
    for step in range(12):
        batch = slice(32 * (step % 2), 32 * (step % 2) + 32)
        loss = loss_fn(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), images, labels


def loader_of(inputs, batch_size=50):
    return DataLoader(TensorDataset(Tensor(inputs)), batch_size=batch_size)


def fake_quant_reference(layer, x, float_bias):
    """Dequantized input codes and weight codes multiplied in float64 with the float bias."""
    xq = QuantizedTensor.quantize(x, layer.input_scale.data, layer.input_zero_point.data).dequantize().numpy()
    w = layer.quantized_weight.dequantize().numpy().astype(np.float64)
    if isinstance(layer, QuantizedLinear):
        return xq.astype(np.float64) @ w.T + float_bias
    return conv2d(Tensor(xq, dtype=np.float64), Tensor(w, dtype=np.float64), Tensor(float_bias, dtype=np.float64),
                  layer.stride, layer.padding, layer.dilation).numpy()


# ---- ranges, codes, int8 storage ---------------------------------------------------------------------
def test_codes_are_int8_and_nbytes_counts_codes_scales_and_zero_points():
    x = np.random.default_rng(0).uniform(-2, 5, (100, 30)).astype(np.float32)
    scale, zero_point = calculate_qparams(x.min(), x.max())
    q = QuantizedTensor.quantize(x, scale, zero_point)
    assert q.data.dtype == np.int8 and q.data.shape == (100, 30)
    assert q.nbytes == 3000 + 4 + 4 == q.data.nbytes + q.scale.nbytes + q.zero_point.nbytes
    per_channel = QuantizedTensor.quantize(x, *weight_qparams(x), axis=0, symmetric=True)
    assert per_channel.nbytes == 3000 + 100 * 4 + 100 * 4
    assert per_channel.dequantize().dtype == np.float32


@given(st.integers(1, 6), st.floats(-50, -0.01), st.floats(0.01, 50), st.sampled_from([8, 6, 4]), st.booleans())
def test_round_trip_error_is_at_most_half_a_step(seed, low, high, bits, symmetric):
    x = np.random.default_rng(seed).uniform(low, high, 500).astype(np.float32)
    scale, zero_point = calculate_qparams(x.min(), x.max(), bits, symmetric)
    codes = quantize_array(x, scale, zero_point, bits, symmetric)
    qmin, qmax = quantization_range(bits, symmetric)
    assert codes.dtype == np.int8 and codes.min() >= qmin and codes.max() <= qmax
    restored = QuantizedTensor(codes, scale, zero_point, bits=bits, symmetric=symmetric).dequantize().numpy()
    assert np.abs(restored - x).max() <= scale / 2 * (1 + 1e-4) + 1e-7


def test_affine_qparams_cover_the_range_and_represent_zero_exactly():
    scale, zero_point = calculate_qparams(-1.0, 3.0)
    assert np.isclose(scale, 4 / 255) and zero_point.dtype == np.int32
    assert quantize_array(np.array([0.0], np.float32), scale, zero_point)[0] == zero_point
    assert QuantizedTensor.quantize(np.zeros(3, np.float32), scale, zero_point).dequantize().numpy().tolist() == [0, 0, 0]
    low, high = calculate_qparams(0.5, 2.0)  # widened to contain 0
    assert high == -128 and np.isclose(low, 2 / 255)
    assert quantization_range(8) == (-128, 127) and quantization_range(8, True) == (-127, 127)
    assert calculate_qparams(0.0, 0.0)[0] > 0, "a constant tensor still gets a positive scale"


def test_symmetric_per_channel_weight_scales_follow_each_row():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 4, 3, 3)).astype(np.float32) * np.array([0.01, 0.1, 1, 2, 5, 10], np.float32)[:, None, None, None]
    scale, zero_point = weight_qparams(weight, per_channel=True)
    np.testing.assert_allclose(scale, np.abs(weight).reshape(6, -1).max(axis=1) / 127, rtol=1e-6)
    assert scale.shape == (6,) and np.all(zero_point == 0)
    codes = quantize_array(weight, scale, zero_point, symmetric=True, axis=0)
    assert np.all(np.abs(codes).reshape(6, -1).max(axis=1) == 127), "every channel uses its full range"
    tensor_scale, _ = weight_qparams(weight, per_channel=False)
    assert tensor_scale.shape == () and np.isclose(tensor_scale, np.abs(weight).max() / 127)
    per_tensor_error = np.abs(QuantizedTensor.quantize(weight, tensor_scale, 0, symmetric=True).dequantize().numpy() - weight)
    assert per_tensor_error[0].max() > 10 * np.abs(weight[0]).max() / 127, "the small channel loses its values per tensor"


# ---- observers --------------------------------------------------------------------------------------------
def test_observers_report_their_ranges():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((40, 8)).astype(np.float32) * (i + 1) for i in range(5)]
    minmax, moving = MinMaxObserver(), MovingAverageMinMaxObserver(averaging_constant=0.25)
    for batch in batches:
        minmax(batch)
        moving(batch)
    assert minmax.min_val == min(b.min() for b in batches) and minmax.max_val == max(b.max() for b in batches)
    low, high = batches[0].min(), batches[0].max()
    for batch in batches[1:]:
        low, high = low + 0.25 * (batch.min() - low), high + 0.25 * (batch.max() - high)
    assert np.isclose(moving.min_val, low) and np.isclose(moving.max_val, high)
    channels = MinMaxObserver(axis=1)
    channels(batches[0])
    np.testing.assert_array_equal(channels.min_val, batches[0].min(axis=0))
    scale, zero_point = channels.calculate_qparams()
    assert scale.shape == (8,) and zero_point.shape == (8,)


def test_percentile_observer_ignores_rare_outliers():
    values = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
    values[:5] = [500, -400, 300, 800, -900]
    observer = make_observer("percentile", percentile=99.9)
    observer(values[:100_000])
    observer(values[100_000:])
    assert 2.8 < observer.max_val < 3.5 and -3.5 < observer.min_val < -2.8
    minmax = make_observer("minmax")
    minmax(values)
    assert minmax.max_val == 800 and minmax.min_val == -900


def test_calibration_sets_each_layers_input_range(trained_mlp):
    model, inputs, _ = trained_mlp
    int8 = quantize(model, loader_of(inputs[:400]))
    first, second = int8[0], int8[2]
    expected_scale, expected_zero = calculate_qparams(inputs[:400].min(), inputs[:400].max())
    assert np.isclose(first.input_scale.data, expected_scale) and first.input_zero_point.data == expected_zero
    assert second.input_zero_point.data == -128, "after ReLU the range starts at 0, the lowest code"
    with no_grad():
        before = int8(inputs[:10]).numpy()
        first.input_scale.data = first.input_scale.data * 4
        assert not np.allclose(int8(inputs[:10]).numpy(), before), "the layer quantizes with its calibrated input scale"


# ---- integer arithmetic ------------------------------------------------------------------------------------
@given(st.integers(1, 12), st.sampled_from([1, 7, 300, 1024, 1025, 2100]), st.integers(1, 9), st.integers(0, 10**6))
def test_integer_matmul_is_bit_exact_against_int32(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    reference = a.astype(np.int32) @ b.astype(np.int32)
    result = integer_matmul(a, b)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, reference)
    as_float = integer_matmul(a, b, dtype=np.float32)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float.astype(np.int64), reference, err_msg="the same integers, as float32")


def test_integer_matmul_is_exact_at_the_extremes():
    assert EXACT_FLOAT32_TERMS == 1024
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (700, 300)).astype(np.int8)  # a batch-1 product over several tiles
    for rows in (1, 3, 40):
        x = rng.integers(-128, 128, (rows, 300)).astype(np.int8)
        for b in (weight.T, np.ascontiguousarray(weight.T)):
            np.testing.assert_array_equal(integer_matmul(x, b), x.astype(np.int32) @ b.astype(np.int32))
    for k in (1024, 1025, 4096):
        a = np.full((2, k), -128, np.int8)
        assert integer_matmul(a, a.T.copy())[0, 0] == k * 128 * 128
        mixed = np.tile(np.array([127, -128], np.int8), k // 2 + 1)[:k][None, :]
        assert integer_matmul(mixed, mixed.T.copy())[0, 0] == int((mixed.astype(np.int64) ** 2).sum())
    # 2**24 + 1 has no float32: one float32 dot product of these 1025 terms would round it to 2**24
    a = np.concatenate([np.full(1024, -128, np.int8), np.ones(1, np.int8)])
    assert np.float32(a.astype(np.float32) @ a.astype(np.float32)) == 2**24
    assert integer_matmul(a[None, :], a[:, None])[0, 0] == 2**24 + 1


def test_quantized_linear_is_within_one_step_of_fake_quantization():
    manual_seed(3)
    rng = np.random.default_rng(3)
    linear = Linear(1500, 7)  # more than 1024 inputs: two exact float32 chunks
    x = rng.standard_normal((9, 1500)).astype(np.float32)
    q = QuantizedLinear.from_float(linear, *calculate_qparams(x.min() * 0.8, x.max() * 0.8))  # some inputs clip
    step = q.input_scale.data * q.weight_scale.data
    difference = np.abs(q(x).numpy() - fake_quant_reference(q, x, linear.bias.data))
    assert np.all(difference <= step), f"{(difference / step).max():.2f} steps"
    assert q(x[None]).shape == (1, 9, 7), "leading dimensions are kept"


@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_quantized_conv_is_within_one_step_of_fake_quantization(stride, padding, dilation):
    manual_seed(0)
    rng = np.random.default_rng(0)
    conv = Conv2d(4, 6, 3, stride=stride, padding=padding, dilation=dilation)
    x = rng.uniform(0.3, 2.0, (2, 4, 9, 9)).astype(np.float32)  # positive inputs: the zero point is far from code 0
    q = QuantizedConv2d.from_float(conv, *calculate_qparams(x.min(), x.max()))
    out = q(x).numpy()
    assert out.shape == conv(x).shape
    step = (q.input_scale.data * q.weight_scale.data)[None, :, None, None]
    assert np.all(np.abs(out - fake_quant_reference(q, x, conv.bias.data)) <= step)


def test_quantized_layers_keep_no_float32_weights(trained_cnn):
    model, images, _ = trained_cnn
    int8 = quantize(model, loader_of(images, 32))
    for layer in int8.modules():
        if isinstance(layer, (QuantizedLinear, QuantizedConv2d)):
            assert layer.weight.dtype == np.int8 and layer.bias.dtype == np.int32
            for name, value in vars(layer).items():
                array = value.data if isinstance(value, Tensor) else value
                if isinstance(array, np.ndarray) and array.dtype.kind == "f":
                    assert array.size <= layer.weight.shape[0], f"{name} holds {array.size} floats"
    assert not any(isinstance(m, (Linear, Conv2d, BatchNorm2d)) for m in int8.modules())


# ---- batch norm folding ----------------------------------------------------------------------------------
def test_folded_conv_equals_conv_and_batchnorm_in_eval_mode(trained_cnn):
    model, images, _ = trained_cnn
    model = copy.deepcopy(model)
    rng = np.random.default_rng(1)
    model[5].weight.data[:3] *= -1  # negative gammas fold too
    model[5].running_var.data[...] = rng.uniform(0.2, 3.0, 8).astype(np.float32)
    with no_grad():
        expected = model(images).numpy()
        folded = fold_batchnorm(model)
        np.testing.assert_allclose(folded(images).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(folded[1], Identity) and isinstance(folded[5], Identity)
    assert isinstance(model[1], BatchNorm2d) and model.training is False, "the original model is untouched"
    assert folded[0].bias is not None, "a conv without a bias gets the folded one"


# ---- whole models ---------------------------------------------------------------------------------------------
def test_quantized_mlp_predicts_like_the_trained_float_model(trained_mlp):
    model, inputs, labels = trained_mlp
    int8 = quantize(model, loader_of(inputs[:400]), observer="moving_average")
    with no_grad():
        float_out, int8_out = model(inputs[400:]).numpy(), int8(inputs[400:]).numpy()
    assert (float_out.argmax(1) == int8_out.argmax(1)).mean() >= 0.99
    assert (int8_out.argmax(1) == labels[400:]).mean() >= (float_out.argmax(1) == labels[400:]).mean() - 0.01
    np.testing.assert_allclose(int8_out, float_out, atol=0.05 * np.abs(float_out).max())


def test_quantized_cnn_per_channel_is_close_to_the_float_model(trained_cnn):
    model, images, _ = trained_cnn
    int8 = quantize(model, loader_of(images[:64], 32), observer="minmax", per_channel=True)
    assert isinstance(int8[0], QuantizedConv2d) and isinstance(int8[8], QuantizedLinear)
    with no_grad():
        expected = model(images[64:]).numpy()
        np.testing.assert_allclose(int8(images[64:]).numpy(), expected, atol=0.05 * np.abs(expected).max())


def test_model_bytes_and_the_saved_file_are_about_a_quarter(tmp_path):
    manual_seed(0)
    model = Sequential(Linear(256, 256), ReLU(), Linear(256, 10)).eval()
    inputs = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    int8 = quantize(model, loader_of(inputs, 32))
    weights, channels = 256 * 256 + 256 * 10, 256 + 10
    assert model_bytes(model) == (weights + channels) * 4
    assert model_bytes(int8) == weights + channels * (4 + 4 + 4) + 2 * (4 + 4)
    assert model_bytes(model) / model_bytes(int8) > 3.8
    float_file = checkpoint_file_bytes(model, tmp_path / "float.safetensors")
    int8_file = checkpoint_file_bytes(int8, tmp_path / "int8.safetensors")
    assert float_file == os.path.getsize(tmp_path / "float.safetensors")
    assert float_file / int8_file > 3.7


def test_a_quantized_checkpoint_loads_back_to_the_same_integers(trained_cnn, tmp_path):
    model, images, _ = trained_cnn
    int8 = quantize(model, loader_of(images, 32), observer="percentile")
    path = tmp_path / "int8.safetensors"
    save_checkpoint(path, int8)
    restored = empty_quantized_model(model)
    with pytest.raises(RuntimeError, match="uncalibrated"):
        restored(images[:2])
    load_checkpoint(path, model=restored)
    original, loaded = int8.state_dict(), restored.state_dict()
    assert original.keys() == loaded.keys()
    for name in original:
        assert loaded[name].dtype == original[name].dtype, name
        np.testing.assert_array_equal(loaded[name], original[name])
    assert original["0.weight"].dtype == np.int8 and original["0.bias"].dtype == np.int32
    with no_grad():
        np.testing.assert_array_equal(restored(images).numpy(), int8(images).numpy())
    save_checkpoint(tmp_path / "float.safetensors", model)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "float.safetensors", model=empty_quantized_model(model))


# ---- fake quantization and QAT --------------------------------------------------------------------------
def test_straight_through_gradient_is_identity_inside_and_zero_outside():
    x = Tensor(np.array([-2.0, -1.0, -0.3, 0.0, 0.41, 1.2, 1.3, 9.0]), dtype=np.float64, requires_grad=True)
    out = fake_quantize(x, 0.01, 3, bits=8)  # codes -128..127 cover [-1.31, 1.24]
    np.testing.assert_allclose(out.numpy(), [-1.31, -1.0, -0.3, 0.0, 0.41, 1.2, 1.24, 1.24], atol=1e-12)
    cotangent = np.random.default_rng(0).standard_normal(8)
    out.backward(cotangent)
    np.testing.assert_array_equal(x.grad.numpy(), cotangent * np.array([0, 1, 1, 1, 1, 1, 0, 0]))


def test_gradcheck_through_the_paths_that_do_not_round():
    rng = np.random.default_rng(0)
    fixed = Tensor(rng.standard_normal((3, 6)), dtype=np.float64)
    check_gradients(lambda w: fake_quantize(fixed, 0.02, -5) @ w, (6, 4))
    check_gradients(lambda w, b: fake_quantize(fixed, np.full(3, 0.03), np.zeros(3, np.int32), axis=0) @ w + b,
                    (6, 2), (2,))


def test_fake_quantize_matches_torch_per_tensor_and_per_channel(torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32) * 2
    cotangent = rng.standard_normal(x.shape).astype(np.float32)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.fake_quantize_per_tensor_affine(theirs, 0.013, 7, -128, 127)
    expected.backward(torch.tensor(cotangent))
    ours = Tensor(x, requires_grad=True)
    out = fake_quantize(ours, np.float32(0.013), 7)
    out.backward(cotangent)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())

    scales, zeros = np.array([0.01, 0.02, 0.05, 0.1, 0.002], np.float32), np.array([0, 3, -4, 10, 0], np.int32)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.fake_quantize_per_channel_affine(theirs, torch.tensor(scales), torch.tensor(zeros), 1, -128, 127)
    expected.backward(torch.tensor(cotangent))
    ours = Tensor(x, requires_grad=True)
    out = fake_quantize(ours, scales, zeros, axis=1)
    out.backward(cotangent)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")  # deprecated in PyTorch, still the reference
def test_int8_codes_match_torch_quantize_per_tensor_and_per_channel(torch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    scale, zero_point = calculate_qparams(x.min(), x.max())
    expected = torch.quantize_per_tensor(torch.tensor(x), float(scale), int(zero_point), torch.qint8).int_repr().numpy()
    np.testing.assert_array_equal(quantize_array(x, scale, zero_point), expected)
    scales, zeros = weight_qparams(x)
    expected = torch.quantize_per_channel(torch.tensor(x), torch.tensor(scales, dtype=torch.float64),
                                          torch.tensor(zeros, dtype=torch.int64), 0, torch.qint8).int_repr().numpy()
    np.testing.assert_array_equal(quantize_array(x, scales, zeros, symmetric=True, axis=0), expected)


def test_qat_freezes_observers_and_batchnorm_then_converts(trained_cnn):
    model, images, labels = trained_cnn
    qat = prepare_qat(model)
    assert isinstance(qat[0], QATConv2d) and isinstance(qat[8], QATLinear) and qat.training
    assert isinstance(model[0], Conv2d) and not isinstance(model[0], QATConv2d), "prepare_qat copies"
    optimizer, loss_fn = SGD(qat.parameters(), lr=0.01, momentum=0.9), CrossEntropyLoss()
    for step in range(4):
        if step == 2:
            freeze_observers(freeze_batchnorm(qat))
            frozen_range = (qat[4].input_quantizer.observer.min_val, qat[4].input_quantizer.observer.max_val)
            frozen_statistics = qat[5].running_mean.numpy().copy()
        loss = loss_fn(qat(images[:32]), labels[:32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert isinstance(qat[5], FrozenBatchNorm2d) and qat[5].weight.grad is not None, "frozen BN still trains gamma"
    assert (qat[4].input_quantizer.observer.min_val, qat[4].input_quantizer.observer.max_val) == frozen_range
    np.testing.assert_array_equal(qat[5].running_mean.numpy(), frozen_statistics)
    int8 = convert(qat)
    assert isinstance(int8[0], QuantizedConv2d) and isinstance(int8[5], Identity) and isinstance(int8[8], QuantizedLinear)
    with no_grad():
        expected = qat.eval()(images).numpy()
        np.testing.assert_allclose(int8(images).numpy(), expected, atol=0.02 * np.abs(expected).max())


def test_fake_quantize_module_observes_only_while_enabled():
    module = FakeQuantize("minmax")
    module(Tensor(np.array([-1.0, 2.0], np.float32)))
    module.observer_enabled = False
    out = module(Tensor(np.array([-5.0, 0.5, 5.0], np.float32)))
    assert module.observer.max_val == 2.0
    np.testing.assert_allclose(out.numpy(), [-1.0, 0.5, 2.0], atol=3 / 255)


# ---- bad input --------------------------------------------------------------------------------------------------
def test_bad_input_is_refused_with_a_clear_message(trained_mlp):
    model, inputs, _ = trained_mlp
    assert isinstance(quantize(model, loader_of(inputs[:100]), bits=4)[0], QuantizedLinear)
    with pytest.raises(ValueError, match="unknown observer 'histogramm'"):
        quantize(model, loader_of(inputs[:100]), observer="histogramm")
    with pytest.raises(ValueError, match="from 2 to 8"):
        quantize(model, loader_of(inputs[:100]), bits=16)
    with pytest.raises(ValueError, match="from 2 to 8"):
        QuantizedLinear(4, 2, bits=1)
    with pytest.raises(ValueError, match="no batches"):
        quantize(model, [])
    with pytest.raises(RuntimeError, match="uncalibrated"):
        MinMaxObserver().calculate_qparams()
    with pytest.raises(RuntimeError, match="uncalibrated"):
        QuantizedLinear(20, 64)(inputs[:2])
    with pytest.raises(TypeError, match="int8"):
        integer_matmul(np.ones((2, 2), np.int32), np.ones((2, 2), np.int8))
    with pytest.raises(ValueError, match="cannot multiply"):
        integer_matmul(np.ones((2, 3), np.int8), np.ones((2, 2), np.int8))
    with pytest.raises(TypeError, match="convert"):
        quantize(prepare_qat(model), loader_of(inputs[:100]))


def test_convert_refuses_a_qat_model_that_never_saw_data(trained_mlp):
    model, inputs, _ = trained_mlp
    qat = prepare_qat(model)
    with pytest.raises(RuntimeError, match="uncalibrated"):
        convert(qat)
    qat(inputs[:50])
    assert isinstance(convert(qat)[0], QuantizedLinear)


# ---- the real milestone model, where its checkpoint and data are present -----------------------------------
def test_the_trained_mnist_mlp_keeps_its_accuracy_in_int8():
    checkpoint = ROOT / "runs" / "mnist" / "mnist_best.safetensors"
    from tinytorch.core.dataloader import (
        MNIST,
        MNIST_MEAN,
        MNIST_STD,
        Compose,
        Normalize,
        Subset,
        ToTensor,
        data_dir,
    )
    from tinytorch.core.training import evaluate_model

    if not checkpoint.is_file() or not (data_dir() / "mnist").is_dir():
        pytest.skip("needs runs/mnist/mnist_best.safetensors and MNIST in the data folder")
    model = Sequential(Flatten(), Linear(784, 512), ReLU(), Linear(512, 256), ReLU(), Linear(256, 10))
    load_checkpoint(checkpoint, model=model)
    transform = Compose([ToTensor(), Normalize(MNIST_MEAN, MNIST_STD)])
    train_split, test_split = MNIST(train=True, transform=transform), MNIST(train=False, transform=transform)
    calibration = DataLoader(Subset(train_split, np.arange(59_000, 60_000)), batch_size=250)
    int8 = quantize(model.eval(), calibration)
    test = DataLoader(test_split, batch_size=1000)
    float_accuracy = evaluate_model(model, test)["accuracy"]
    int8_accuracy = evaluate_model(int8, test)["accuracy"]
    assert model_bytes(model) / model_bytes(int8) >= 3.9
    assert int8_accuracy >= float_accuracy - 0.002, f"{float_accuracy:.2%} -> {int8_accuracy:.2%}"
