"""The `olympics` milestone: its CIFAR-10 entry computes what its codes say, and the script meets its quick bars.

The entry (milestones/olympics_cnn.py) is checked against the framework itself: the same folded
CNN with the entry's dequantized weights, run through module 09's layers, must give the entry's
outputs. The milestone runs as a subprocess on fixture CIFAR-10 files, as
`tito milestone run olympics --quick` starts it, training its checkpoint first.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.milestones.test_milestones_vision import run_milestone, write_colour_cifar10

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "milestones"))

from cifar10_model import build_cifar_cnn
from olympics_cnn import (
    EntryConv2d,
    WeightCodes,
    build_entry,
    make_entry,
    pack_nibbles,
    unpack_nibbles,
)

from tinytorch.core.acceleration import NUMBA_AVAILABLE
from tinytorch.core.autograd import no_grad
from tinytorch.core.benchmarking import state_bytes
from tinytorch.core.quantization import fold_batchnorm
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import load_checkpoint, save_checkpoint
from tinytorch.olympics import check_architecture, folded_batchnorms


def trained_like_cnn(seed=0):
    """The milestone's CNN with random weights and BatchNorm statistics that are not the identity."""
    manual_seed(seed)
    model = build_cifar_cnn()
    rng = np.random.default_rng(seed)
    for name, module in model.named_children():
        if hasattr(module, "running_var"):
            module.running_mean.data = rng.normal(0, 0.1, module.running_mean.shape).astype(np.float32)
            module.running_var.data = rng.uniform(0.5, 2.0, module.running_var.shape).astype(np.float32)
            module.weight.data = rng.uniform(0.5, 1.5, module.weight.shape).astype(np.float32)
            module.bias.data = rng.normal(0, 0.1, module.bias.shape).astype(np.float32)
    return model.eval()


def framework_output(model, entry, x):
    """The folded CNN run through the framework's layers, with the entry's dequantized weights and biases."""
    folded = fold_batchnorm(model)
    for (name, layer), (_, coded) in zip(folded.named_children(), entry.named_children()):
        if isinstance(coded, WeightCodes):
            layer.weight.data = coded.dequantized()
            layer.bias.data = coded.bias.data.copy()
    with no_grad():
        return folded(Tensor(x)).numpy()


@pytest.mark.parametrize("k", [1, 6, 7, 27])
def test_packed_codes_round_trip(k):
    codes = np.random.default_rng(k).integers(-8, 8, size=(5, k)).astype(np.int8)
    packed = pack_nibbles(codes)
    assert packed.dtype == np.uint8 and packed.shape == (5, (k + 1) // 2)
    assert np.array_equal(unpack_nibbles(packed, k), codes)
    with pytest.raises(ValueError, match=r"4-bit codes must lie in \[-8, 7\]"):
        pack_nibbles(np.array([[9]], np.int8))


@pytest.mark.parametrize("bits", [8, 4])
def test_the_codes_are_within_half_a_step_of_the_folded_weights(bits):
    model = trained_like_cnn()
    entry, folded = make_entry(model, {name: bits for name in ("0", "4", "8", "12", "16")}), fold_batchnorm(model)
    for (_, layer), (_, coded) in zip(folded.named_children(), entry.named_children()):
        if isinstance(coded, WeightCodes):
            scale = coded.weight_scale.data.reshape(-1, *([1] * (layer.weight.data.ndim - 1)))
            assert np.abs(coded.codes()).max() <= 2 ** (bits - 1) - 1
            assert np.all(np.abs(coded.dequantized() - layer.weight.data) <= scale / 2 * (1 + 1e-5))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bits", [{}, {"0": 4, "12": 4, "16": 4}])
def test_the_entry_computes_its_dequantized_network(batch, bits):
    model = trained_like_cnn()
    entry = make_entry(model, bits)
    x = np.random.default_rng(2).normal(size=(batch, 3, 32, 32)).astype(np.float32)
    with no_grad():
        got = entry(Tensor(x)).numpy()
    expected = framework_output(model, entry, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    with no_grad():
        np.testing.assert_array_equal(entry(Tensor(x)).numpy(), got)  # the memoized buffers give the same answer


NUMBA_MISSING = "numba is not installed: pip install 'tinytorch[accel]' to test the entry's compiled plan"


@pytest.mark.accel
@pytest.mark.skipif(not NUMBA_AVAILABLE, reason=NUMBA_MISSING)
@pytest.mark.parametrize("batch", [1, 3, 5])
@pytest.mark.parametrize("bits", [{}, {"0": 4, "4": 4, "12": 4, "16": 4}])
def test_the_compiled_plan_gives_the_numpy_plans_outputs(batch, bits):
    entry = make_entry(trained_like_cnn(), bits)
    x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
    original = x.copy()
    with no_grad():
        entry.compiled = False
        expected = entry(Tensor(x)).numpy()
        entry.compiled = True
        got = entry(Tensor(x)).numpy()
        again = entry(Tensor(x)).numpy()
    assert ((batch, 3, 32, 32), True) in entry._plans, "the compiled plan ran"
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(again, got)  # the memoized columns give the same answer
    np.testing.assert_array_equal(x, original)  # the caller's input is never written


@pytest.mark.accel
@pytest.mark.skipif(not NUMBA_AVAILABLE, reason=NUMBA_MISSING)
def test_the_compiled_plan_keeps_other_layers_on_the_numpy_path():
    """A 5x5 convolution and a pool before the flatten are not the compiled kernel's case: they still run, the same."""
    from olympics_cnn import EntryCNN, EntryLinear

    from tinytorch.core.layers import Flatten, Linear, ReLU
    from tinytorch.core.spatial import Conv2d, MaxPool2d

    manual_seed(1)
    layers = [EntryConv2d.from_conv(Conv2d(3, 8, 3, padding=1)), ReLU(), MaxPool2d(2),
              EntryConv2d.from_conv(Conv2d(8, 6, 5, padding=2), bits=4), ReLU(), MaxPool2d(2), Flatten(),
              EntryLinear.from_linear(Linear(6 * 4 * 4, 5), bits=4)]
    entry = EntryCNN(*layers).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    with no_grad():
        entry.compiled = False
        expected = entry(Tensor(x)).numpy()
        entry.compiled = True
        got = entry(Tensor(x)).numpy()
    assert ((2, 3, 16, 16), True) in entry._plans, "the compiled plan ran"
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_int8_entry_is_close_to_float32_and_holds_no_float_weight():
    model = trained_like_cnn()
    entry = make_entry(model, {"16": 4})
    x = np.random.default_rng(3).normal(size=(4, 3, 32, 32)).astype(np.float32)
    with no_grad():
        reference, got = model(Tensor(x)).numpy(), entry(Tensor(x)).numpy()
    assert np.abs(got - reference).max() < 0.05 * np.abs(reference).max()
    state = entry.state_dict()
    assert {state[f"{n}.weight"].dtype for n in ("0", "4", "8", "12")} == {np.dtype(np.int8)}
    assert state["16.weight"].dtype == np.uint8 and list(state["16.weight_shape"]) == [10, 2048]
    assert state_bytes(model) / state_bytes(entry) > 4


def test_a_saved_entry_loads_back_and_keeps_the_closed_division_rule(tmp_path):
    model = trained_like_cnn()
    entry = make_entry(model, {"4": 4, "16": 4})
    path = save_checkpoint(tmp_path / "entry.safetensors", entry)
    loaded = build_entry()
    load_checkpoint(path, model=loaded)
    x = np.random.default_rng(4).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with no_grad():
        np.testing.assert_array_equal(loaded(Tensor(x)).numpy(), entry(Tensor(x)).numpy())
    state = {k: v for k, v in loaded.state_dict().items()}
    reference = model.state_dict()
    assert check_architecture(state, reference, folded_batchnorms(model)) == []
    assert folded_batchnorms(model) == {"1", "5", "9", "13"}
    assert "1.weight is missing" in check_architecture(state, reference), "folding is allowed only where it may be"
    lying = {**state, "4.weight_shape": np.array([64, 16, 3, 3])}
    assert check_architecture(lying, reference, folded_batchnorms(model)) == [
        "4.weight has shape (64, 16, 3, 3), the milestone's is (64, 32, 3, 3)"]


def test_bad_input_is_a_clear_error():
    entry = make_entry(trained_like_cnn())
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, 3, H, W\), got shape \(1, 4, 32, 32\)"):
        entry[0].run(np.zeros((1, 4, 32, 32), np.float32))
    with pytest.raises(ValueError, match="no conv or linear layer named 7"):
        make_entry(trained_like_cnn(), {"7": 4})
    with pytest.raises(ValueError, match="bits must be 2 to 8"):
        EntryConv2d(3, 4, (3, 3), bits=9)


def test_quick_run_meets_its_bars(tmp_path):
    data = tmp_path / "data"
    write_colour_cifar10(data)
    out = tmp_path / "out"
    done = run_milestone("olympics", "--quick", "--out", str(out), "--cifar-checkpoint",
                         str(tmp_path / "ck" / "cifar10" / "cifar10_best.safetensors"), data_folder=data)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout
    assert "Milestone olympics: MLPerf-style Torch Olympics: a validated entry (2018)" in printed
    for what in ("CIFAR-10 closed-division submission validated", "bytes of state, float32 / entry",
                 "p90 batch-1 latency, float32 / entry", "test accuracy, entry / float32",
                 "TinyGPT submission with the KV cache validated"):
        assert f"measured: {what}" in printed, what
    assert "ok   rules: architecture: the milestone's, weight for weight" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["cifar10"]["validated"] and results["tinygpt"]["validated"]
    assert results["cifar10"]["bytes_ratio"] >= 4.0 and results["cifar10"]["bits"]
    manifest = json.loads((out / "cifar10-closed" / "manifest.json").read_text())
    assert manifest["model"]["builder"] == "milestones/olympics_cnn.py:build_entry"
    assert (out / "tinygpt" / "manifest.json").is_file()
