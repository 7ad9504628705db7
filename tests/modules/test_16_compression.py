"""Module 16 Compression, graded through the exported package `tinytorch.core.compression`.

Pruning masks must survive optimizer steps; CSR bytes are the three arrays' bytes; structured
pruning must give the outputs of the original with the removed channels zeroed; low-rank error is
the dropped singular values; the distillation loss is checked against a hand formula, by a
numerical gradient, and against PyTorch. No test times anything: speed is measured in
benchmarks/bench_compression.py.
"""

import copy
import itertools
import math

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (backward() and no_grad)
from tinytorch.core.autograd import gradcheck, no_grad
from tinytorch.core.compression import (
    CSRMatrix,
    CubicSparsity,
    DistillationLoss,
    FactorizedLinear,
    MaskedOptimizer,
    Pruner,
    SparseLinear,
    count_parameters,
    csr_break_even_sparsity,
    csr_nbytes,
    cubic_sparsity,
    distillation_loss,
    factorize_linear,
    load_sparse_state_dict,
    low_rank_break_even,
    magnitude_masks,
    magnitude_prune,
    prunable_weights,
    prune_channels,
    replace_module,
    sparse_state_dict,
    sparsity,
    to_csr,
    train_student,
)
from tinytorch.core.dataloader import ArrayDataset, DataLoader
from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss, cross_entropy
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.spatial import BatchNorm2d, Conv2d, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import Trainer, load_state, save_state


def mlp(seed=0, widths=(6, 16, 8, 3)):
    manual_seed(seed)
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [Linear(a, b), ReLU()]
    return Sequential(*layers[:-1])


def batch(seed=0, n=32, features=6, classes=3):
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal((n, features)).astype(np.float32)), rng.integers(0, classes, n)


def small_cnn(seed=0, bias=False, pool=True):
    """The milestone CNN's shape in miniature, with batch norm moved off its initial values."""
    manual_seed(seed)
    layers = [Conv2d(3, 8, 3, padding=1, bias=bias), BatchNorm2d(8), ReLU()] + ([MaxPool2d(2)] if pool else [])
    layers += [Conv2d(8, 6, 3, padding=1, bias=bias), BatchNorm2d(6), ReLU(), MaxPool2d(2),
               Conv2d(6, 10, 3, padding=1, bias=bias), BatchNorm2d(10), ReLU(), Flatten()]
    size = 2 if pool else 4
    model = Sequential(*layers, Linear(10 * size * size, 5))
    rng = np.random.default_rng(seed)
    for layer in model:
        if isinstance(layer, BatchNorm2d):
            n = layer.num_features
            layer.weight.data[:] = rng.uniform(0.5, 1.5, n)
            layer.bias.data[:] = rng.standard_normal(n) * 0.1
            layer.running_mean.data[:] = rng.standard_normal(n) * 0.1
            layer.running_var.data[:] = rng.uniform(0.5, 2.0, n)
    return model.eval()


def zero_removed(model, kept):
    """A copy whose removed channels output exactly 0: their filters, biases and batch-norm gamma and beta zeroed."""
    zeroed = copy.deepcopy(model)
    layers, names = list(zeroed), list(zeroed._modules)
    for index, layer in enumerate(layers):
        if names[index] in kept:
            removed = np.setdiff1d(np.arange(layer.weight.shape[0]), kept[names[index]])
            layer.weight.data[removed] = 0
            if layer.bias is not None:
                layer.bias.data[removed] = 0
            if index + 1 < len(layers) and isinstance(layers[index + 1], BatchNorm2d):
                layers[index + 1].weight.data[removed] = 0
                layers[index + 1].bias.data[removed] = 0
    return zeroed


# ---- magnitude masks --------------------------------------------------------------------------
def test_global_masks_use_one_threshold_for_all_layers():
    weights = {"a": np.array([[0.1, -0.2], [0.3, -0.4]]), "b": np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.05]])}
    masks = magnitude_masks(weights, 0.5, "global")
    assert masks["a"].sum() == 0 and masks["b"].sum() == 5
    assert not masks["b"][1, 2]
    everything = np.concatenate([np.abs(w).ravel() for w in weights.values()])
    kept = np.concatenate([w.ravel()[m.ravel()] for w, m in ((weights[n], masks[n]) for n in weights)])
    assert np.abs(kept).min() > np.sort(everything)[4], "every kept weight is larger than every pruned one"


def test_per_layer_masks_prune_each_layer_to_the_sparsity():
    rng = np.random.default_rng(0)
    weights = {"a": rng.standard_normal((10, 10)) * 0.01, "b": rng.standard_normal((20, 5)) * 10}
    masks = magnitude_masks(weights, 0.7, "layer")
    assert masks["a"].sum() == 30 and masks["b"].sum() == 30
    for name in weights:
        kept, pruned = np.abs(weights[name][masks[name]]), np.abs(weights[name][~masks[name]])
        assert kept.min() >= pruned.max()
    glob = magnitude_masks(weights, 0.7, "global")
    assert glob["a"].sum() < 30 < glob["b"].sum(), "globally the small layer loses more"


def test_masks_prune_exactly_the_requested_count_and_pruned_stay_pruned():
    ties = magnitude_masks({"w": np.ones((10, 10))}, 0.33)
    assert ties["w"].sum() == 67
    rng = np.random.default_rng(1)
    weights = {"a": rng.standard_normal((8, 8)), "b": rng.standard_normal((4, 16))}
    low = magnitude_masks(weights, 0.5)
    grown = {name: weights[name] * 100 * ~low[name] + weights[name] * low[name] for name in weights}
    high = magnitude_masks(grown, 0.6, masks=low)  # the pruned ones are now the largest values
    for name in weights:
        assert not np.any(high[name] & ~low[name]), "a pruned weight is never revived by a later prune"
    assert sum(m.size - m.sum() for m in high.values()) == round(0.6 * 128)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, True, "0.5", None])
def test_sparsity_outside_zero_one_is_refused(bad):
    assert magnitude_masks({"w": np.arange(1.0, 5.0)}, 0.5)["w"].tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        magnitude_masks({"w": np.ones((2, 2))}, bad)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        magnitude_prune(mlp(), bad)


def test_unknown_scope_is_refused():
    assert magnitude_masks({"w": np.arange(1.0, 5.0)}, 0.25, scope="layer")["w"].sum() == 3
    with pytest.raises(ValueError, match="scope must be 'global'"):
        magnitude_masks({"w": np.ones((2, 2))}, 0.5, scope="model")


def test_prunable_weights_are_linear_and_conv_weights_by_state_dict_name():
    model = small_cnn()
    names = list(prunable_weights(model))
    assert names == ["0.weight", "4.weight", "8.weight", "12.weight"]
    pruner = magnitude_prune(model, 0.5)
    assert list(pruner.masks) == names
    state = model.state_dict()
    assert np.all(state["1.weight"] != 0) and np.all(state["1.running_var"] != 0), "batch norm is not pruned"
    assert sparsity(model) == 0.5
    with pytest.raises(ValueError, match="nothing to prune"):
        prunable_weights(Sequential(ReLU(), Flatten()))


def test_sparsity_of_model_and_array():
    model = mlp()
    assert sparsity(model) == 0.0
    magnitude_prune(model, 0.75)
    total = sum(w.numel() for w in prunable_weights(model).values())
    assert sparsity(model) == round(0.75 * total) / total
    assert sparsity(np.array([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert all(np.count_nonzero(layer.bias.data) == layer.bias.numel() for layer in model if isinstance(layer, Linear))


# ---- masks persist ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1),
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: Adam(p, lr=0.01),
    lambda p: AdamW(p, lr=0.01, weight_decay=0.1),
], ids=["sgd", "sgd-momentum", "adam", "adamw"])
def test_pruned_weights_stay_zero_through_optimizer_steps(make):
    model = mlp()
    x, y = batch()
    pruner = magnitude_prune(model, 0.6)
    pruned = {name: ~mask for name, mask in pruner.masks.items()}
    optimizer = MaskedOptimizer(make(model.parameters()), pruner)
    kept_before = {name: w.data[~pruned[name]].copy() for name, w in pruner.weights.items()}
    for _ in range(15):
        loss = cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, weight in pruner.weights.items():
        assert np.all(weight.data[pruned[name]] == 0), f"{name}: a pruned weight grew back"
        assert not np.allclose(weight.data[~pruned[name]], kept_before[name]), "the kept weights did train"
    assert abs(sparsity(model) - 0.6) < 1e-3


def test_without_the_mask_a_step_regrows_pruned_weights():
    """The public course's bug: pruning without a persistent mask. One plain step undoes it."""
    model = mlp()
    x, y = batch()
    magnitude_prune(model, 0.6)
    optimizer = SGD(model.parameters(), lr=0.1)
    loss = cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert sparsity(model) < 0.5


def test_masked_optimizer_works_with_the_trainer_and_a_scheduler():
    from tinytorch.core.optimizers import CosineAnnealingLR

    model = mlp()
    x, y = batch(n=64)
    loader = DataLoader(ArrayDataset(x.numpy(), y), batch_size=16, shuffle=True, seed=0)
    pruner = magnitude_prune(model, 0.8)
    inner = Adam(model.parameters(), lr=0.01)
    trainer = Trainer(model, MaskedOptimizer(inner, pruner), CrossEntropyLoss(),
                      scheduler=CosineAnnealingLR(inner, T_max=3), verbose=False)
    history = trainer.fit(loader, epochs=3)
    assert history["lr"][1] < history["lr"][0], "the scheduler drives the wrapped optimizer's rate"
    total = sum(w.numel() for w in pruner.weights.values())
    assert sparsity(model) == round(0.8 * total) / total


def test_masked_optimizer_gives_the_optimizer_the_masked_gradient():
    model = mlp()
    x, y = batch()
    pruner = magnitude_prune(model, 0.5)
    optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.1), pruner)
    loss = cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name, weight in pruner.weights.items():
        assert np.all(weight.grad.data[~pruner.masks[name]] == 0)


def test_remove_makes_the_pruning_permanent():
    model = mlp()
    pruner = magnitude_prune(model, 0.5)
    zeros = {name: w.data == 0 for name, w in pruner.weights.items()}
    returned = pruner.remove()
    assert returned is model and pruner.masks is None
    state = model.state_dict()
    assert set(state) == set(mlp().state_dict()), "no masks or extra entries left in the model"
    for name, mask in zeros.items():
        assert np.all(state[name][mask] == 0)
    with pytest.raises(RuntimeError, match="remove"):
        pruner.apply()
    with pytest.raises(RuntimeError, match="remove"):
        pruner.prune(0.7)


def test_apply_bumps_the_version_so_stale_graphs_are_refused():
    model = mlp()
    x, _ = batch()
    pruner = Pruner(model)
    out = model(x).sum()
    pruner.prune(0.5)
    with pytest.raises(RuntimeError):
        out.backward()


# ---- the cubic schedule ------------------------------------------------------------------------
@pytest.mark.parametrize("step", [0, 10, 20, 35, 60, 99, 109, 110, 200])
def test_cubic_schedule_matches_zhu_and_gupta(step):
    s_i, s_f, t0, end, dt = 0.1, 0.9, 10, 110, 10
    t = min(max(step, t0), end)
    t = t0 + (t - t0) // dt * dt
    expected = s_f + (s_i - s_f) * (1 - (t - t0) / (end - t0)) ** 3
    assert math.isclose(cubic_sparsity(step, s_f, t0, end, dt, initial_sparsity=s_i), expected, abs_tol=1e-12)


def test_cubic_schedule_bad_settings_are_refused():
    assert CubicSparsity(0.5, 0, 10)(5) == 0.5 - 0.5 * 0.5 ** 3
    with pytest.raises(ValueError, match="begin_step < end_step"):
        cubic_sparsity(5, 0.9, 10, 10)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        CubicSparsity(1.0, 0, 10)
    with pytest.raises(ValueError, match="frequency"):
        CubicSparsity(0.5, 0, 10, frequency=0)


def test_gradual_pruning_follows_the_schedule_in_training():
    model = mlp()
    x, y = batch()
    pruner = Pruner(model)
    schedule = CubicSparsity(0.8, 2, 22, 4)
    optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.05), pruner, schedule=schedule)
    total = sum(w.numel() for w in pruner.weights.values())
    for step in range(1, 26):
        loss = cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert math.isclose(sparsity(model), round(schedule(step) * total) / total, abs_tol=1e-9), step


# ---- CSR ----------------------------------------------------------------------------------------
def sparse_array(seed=0, shape=(7, 9), density=0.3):
    rng = np.random.default_rng(seed)
    array = rng.standard_normal(shape).astype(np.float32)
    array[rng.random(shape) > density] = 0
    return array


def test_csr_round_trip_and_arrays():
    dense = sparse_array()
    dense[2] = 0
    matrix = to_csr(dense)
    assert np.array_equal(matrix.to_dense(), dense)
    rows, cols = np.nonzero(dense)
    assert np.array_equal(matrix.indices, cols) and np.array_equal(matrix.data, dense[rows, cols])
    assert np.array_equal(matrix.indptr, np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]))
    assert matrix.indices.dtype == np.int32 and matrix.data.dtype == np.float32


def test_csr_bytes_are_data_plus_indices_plus_indptr():
    dense = sparse_array(shape=(50, 40), density=0.2)
    matrix = to_csr(dense)
    nnz = int(np.count_nonzero(dense))
    assert matrix.nnz == nnz
    assert matrix.nbytes == matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    assert matrix.nbytes == 4 * nnz + 4 * nnz + 4 * 51 == csr_nbytes(50, nnz)
    assert to_csr(dense, index_dtype=np.int64).nbytes == csr_nbytes(50, nnz, index_itemsize=8)


def test_csr_break_even_is_where_the_bytes_cross():
    rows, cols = 64, 100
    s = csr_break_even_sparsity(rows, cols)
    assert 0.49 < s < 0.51
    weight = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    below, above = (weight * magnitude_masks({"w": weight}, target)["w"] for target in (s - 0.01, s + 0.01))
    assert to_csr(below).nbytes > weight.nbytes > to_csr(above).nbytes, "measured bytes cross at the break-even"
    assert csr_nbytes(rows, math.floor((1 - s) * rows * cols) - 1) < rows * cols * 4
    assert csr_nbytes(rows, math.ceil((1 - s) * rows * cols) + 1) > rows * cols * 4


def test_sparse_matmul_equals_dense():
    dense = sparse_array(shape=(12, 20), density=0.25)
    dense[[0, 5, 11]] = 0  # empty rows, first and last included
    matrix = to_csr(dense)
    b = np.random.default_rng(1).standard_normal((20, 6)).astype(np.float32)
    np.testing.assert_allclose(matrix @ b, dense @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(matrix.matmul(b[:, 0]), dense @ b[:, 0], rtol=1e-5, atol=1e-5)
    x = b.T.copy()
    np.testing.assert_allclose(matrix.times_transposed(x), x @ dense.T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs 20 rows"):
        matrix @ np.ones((19, 2))


def test_csr_refuses_bad_input():
    assert np.array_equal(to_csr(np.eye(3)).to_dense(), np.eye(3))
    with pytest.raises(ValueError, match="2-D"):
        to_csr(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="do not describe"):
        CSRMatrix(np.ones(3), np.zeros(3, dtype=np.int32), np.array([0, 1, 2]), (2, 4))


def test_sparse_linear_matches_the_pruned_linear():
    manual_seed(0)
    layer = Linear(30, 12)
    magnitude_prune(Sequential(layer), 0.8)
    sparse = SparseLinear.from_linear(layer)
    assert sparse.weight.nnz == round(0.2 * 360)
    x = Tensor(np.random.default_rng(0).standard_normal((5, 30)).astype(np.float32))
    with no_grad():
        np.testing.assert_allclose(sparse(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="no gradient"):
        sparse(Tensor(x.numpy(), requires_grad=True))


def test_sparse_state_dict_file_round_trip(tmp_path):
    model = small_cnn()
    magnitude_prune(model, 0.9).remove()
    state = sparse_state_dict(model)
    assert "0.weight" not in state and "0.weight.indices" in state and "1.running_mean" in state
    path = save_state(tmp_path / "sparse.safetensors", state)
    dense_path = save_state(tmp_path / "dense.safetensors", model.state_dict())
    assert path.stat().st_size < dense_path.stat().st_size
    fresh = small_cnn(seed=3)
    load_sparse_state_dict(fresh, load_state(path))
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], array)


# ---- structured pruning ----------------------------------------------------------------------------
@pytest.mark.parametrize("criterion", ["l1", "bn"])
@pytest.mark.parametrize("pool", [True, False])
def test_shrunk_cnn_equals_the_original_with_removed_channels_zeroed(criterion, pool):
    model = small_cnn(pool=pool)
    x = Tensor(np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32))
    pruned, kept = prune_channels(model, 0.5, criterion=criterion)
    with no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), zero_removed(model, kept)(x).numpy(), rtol=1e-5, atol=1e-5)


def test_structured_pruning_shrinks_every_array():
    model = small_cnn()
    pruned, kept = prune_channels(model, 0.5)
    assert {name: len(k) for name, k in kept.items()} == {"0": 4, "4": 3, "8": 5}
    assert pruned[0].weight.shape == (4, 3, 3, 3) and pruned[0].out_channels == 4
    assert pruned[1].weight.shape == pruned[1].running_var.shape == (4,) and pruned[1].num_features == 4
    assert pruned[4].weight.shape == (3, 4, 3, 3) and pruned[4].in_channels == 4
    assert pruned[8].weight.shape == (5, 3, 3, 3)
    assert pruned[12].weight.shape == (5, 5 * 4) and pruned[12].in_features == 20
    assert model[0].weight.shape == (8, 3, 3, 3), "the original model is untouched"
    assert count_parameters(pruned) < 0.4 * count_parameters(model)
    assert sum(a.nbytes for a in pruned.state_dict().values()) < 0.4 * sum(a.nbytes for a in model.state_dict().values())


def test_structured_pruning_keeps_the_largest_filters_and_biases():
    model = small_cnn(bias=True)
    pruned, kept = prune_channels(model, 0.25)
    l1 = np.abs(model[0].weight.data).reshape(8, -1).sum(axis=1)
    assert set(kept["0"]) == set(np.argsort(-l1)[:6]) and list(kept["0"]) == sorted(kept["0"])
    np.testing.assert_array_equal(pruned[0].bias.data, model[0].bias.data[kept["0"]])
    _, by_gamma = prune_channels(model, 0.25, criterion="bn")
    assert set(by_gamma["0"]) == set(np.argsort(-np.abs(model[1].weight.data))[:6])


def test_structured_pruning_of_an_mlp_removes_neurons():
    model = mlp(widths=(6, 16, 8, 3))
    x, _ = batch()
    pruned, kept = prune_channels(model, 0.5)
    assert pruned[0].weight.shape == (8, 6) and pruned[2].weight.shape == (4, 8) and pruned[4].weight.shape == (3, 4)
    with no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), zero_removed(model, kept)(x).numpy(), rtol=1e-5, atol=1e-6)


def test_the_pruned_model_trains_and_saves(tmp_path):
    model = small_cnn()
    pruned, _ = prune_channels(model, 0.5)
    pruned.train()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    loss = cross_entropy(pruned(x), np.array([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in pruned.parameters())
    path = save_state(tmp_path / "pruned.safetensors", pruned.state_dict())
    assert path.stat().st_size < 0.6 * save_state(tmp_path / "full.safetensors", model.state_dict()).stat().st_size


def test_structured_pruning_refuses_bad_input():
    with pytest.raises(ValueError, match="removes every one"):
        prune_channels(small_cnn(), 0.95)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        prune_channels(small_cnn(), 1.0)
    with pytest.raises(ValueError, match="criterion"):
        prune_channels(small_cnn(), 0.5, criterion="random")
    with pytest.raises(ValueError, match="has none"):
        prune_channels(mlp(), 0.5, criterion="bn")
    manual_seed(0)
    with pytest.raises(TypeError, match="cannot see through"):  # a layer that might mix channels
        prune_channels(Sequential(Linear(4, 8), Sequential(ReLU()), Linear(8, 2)), 0.5)
    with pytest.raises(TypeError, match="Sequential"):
        prune_channels(Linear(3, 3), 0.5)


# ---- low rank ------------------------------------------------------------------------------------
def test_factorized_linear_at_full_rank_equals_the_layer():
    manual_seed(0)
    layer = Linear(10, 7).double()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 10)))
    full = factorize_linear(layer, 7)
    assert isinstance(full, FactorizedLinear) and full.first.weight.shape == (7, 10)
    np.testing.assert_allclose(full(x).numpy(), layer(x).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 4, 6])
def test_factorization_error_equals_the_dropped_singular_values(rank):
    manual_seed(1)
    layer = Linear(9, 7).double()
    singular = np.linalg.svd(layer.weight.data, compute_uv=False)
    approx = factorize_linear(layer, rank)
    product = approx.second.weight.data @ approx.first.weight.data
    assert math.isclose(np.linalg.norm(layer.weight.data - product), math.sqrt(np.sum(singular[rank:] ** 2)),
                        rel_tol=1e-9)
    assert math.isclose(np.linalg.norm(layer.weight.data - product, 2), singular[rank], rel_tol=1e-9)
    assert count_parameters(approx) == rank * (9 + 7) + 7
    np.testing.assert_array_equal(approx.second.bias.data, layer.bias.data)


def test_factorized_layer_replaces_the_layer_in_the_model():
    model = mlp(widths=(20, 16, 3))
    x, _ = batch(features=20)
    with no_grad():
        before = model(x).numpy()
    old = replace_module(model, "0", factorize_linear(model[0], 16))
    assert isinstance(old, Linear) and isinstance(model[0], FactorizedLinear)
    assert {"0.first.weight", "0.second.weight", "0.second.bias"} <= set(model.state_dict())
    with no_grad():
        np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-4, atol=1e-5)
    loss = cross_entropy(model(x), np.zeros(32, dtype=np.int64))
    loss.backward()
    assert model[0].first.weight.grad is not None, "the factors are trainable"
    with pytest.raises(KeyError, match="no submodule"):
        replace_module(model, "7", Linear(2, 2))


def test_low_rank_pays_below_mn_over_m_plus_n():
    m, n = 512, 784
    r = low_rank_break_even(m, n)
    assert math.isclose(r, m * n / (m + n))
    manual_seed(0)
    layer = Linear(50, 24, bias=False)
    cheaper, dearer = (factorize_linear(layer, rank) for rank in (math.floor(low_rank_break_even(24, 50)),
                                                                   math.ceil(low_rank_break_even(24, 50))))
    assert count_parameters(cheaper) < 24 * 50 < count_parameters(dearer)
    assert math.floor(r) * (m + n) < m * n < math.ceil(r) * (m + n)


@pytest.mark.parametrize("rank", [0, 8, 2.0, True])
def test_factorization_refuses_a_bad_rank(rank):
    manual_seed(0)
    assert factorize_linear(Linear(10, 7), 7).first.weight.shape == (7, 10)
    with pytest.raises(ValueError, match=r"min\(out, in\) = 7"):
        factorize_linear(Linear(10, 7), rank)


# ---- distillation ----------------------------------------------------------------------------------
def log_softmax_np(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def logits(seed=0, n=6, classes=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, classes)), rng.standard_normal((n, classes)) * 3, rng.integers(0, classes, n)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (8.0, 1.0)])
def test_distillation_loss_value_matches_the_formula(temperature, alpha):
    student, teacher, labels = logits()
    p = np.exp(log_softmax_np(teacher / temperature))
    soft = -(p * log_softmax_np(student / temperature)).sum(axis=1).mean() * temperature ** 2
    hard = -log_softmax_np(student)[np.arange(len(labels)), labels].mean()
    value = distillation_loss(Tensor(student, dtype=np.float64), Tensor(teacher, dtype=np.float64), labels,
                              temperature, alpha).item()
    assert math.isclose(value, alpha * soft + (1 - alpha) * hard, rel_tol=1e-10)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (3.0, 1.0)])
def test_distillation_loss_gradient_by_numerical_check(temperature, alpha):
    student, teacher, labels = logits(1)
    teacher_t = Tensor(teacher, dtype=np.float64)
    gradcheck(lambda s: distillation_loss(s, teacher_t, labels, temperature, alpha), student)


def test_distillation_gradient_is_t_times_the_probability_gap():
    student, teacher, labels = logits(2)
    s = Tensor(student, dtype=np.float64, requires_grad=True)
    distillation_loss(s, Tensor(teacher, dtype=np.float64), labels, 5.0, 1.0).backward()
    q, p = np.exp(log_softmax_np(student / 5.0)), np.exp(log_softmax_np(teacher / 5.0))
    np.testing.assert_allclose(s.grad.numpy(), 5.0 * (q - p) / len(labels), rtol=1e-10, atol=1e-13)


def test_no_gradient_reaches_the_teacher():
    student, teacher, labels = logits(3)
    s = Tensor(student, dtype=np.float64, requires_grad=True)
    t = Tensor(teacher, dtype=np.float64, requires_grad=True)
    distillation_loss(s, t, labels).backward()
    assert s.grad is not None and t.grad is None


def test_distillation_matches_pytorch_soft_cross_entropy_and_kl(torch):
    F = torch.nn.functional
    student, teacher, labels = logits(4, n=8, classes=10)
    temperature, alpha = 4.0, 0.7
    s = Tensor(student, dtype=np.float64, requires_grad=True)
    ours = distillation_loss(s, Tensor(teacher, dtype=np.float64), labels, temperature, alpha)
    ours.backward()
    ts = torch.tensor(student, requires_grad=True)
    tt, tl = torch.tensor(teacher), torch.tensor(labels)
    soft_targets = F.softmax(tt / temperature, dim=1)
    soft = F.cross_entropy(ts / temperature, soft_targets) * temperature ** 2
    theirs = alpha * soft + (1 - alpha) * F.cross_entropy(ts, tl)
    theirs.backward()
    assert math.isclose(ours.item(), theirs.item(), rel_tol=1e-10)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-9, atol=1e-12)
    # KL divergence differs from the soft cross-entropy by the teacher's entropy (a constant): same gradient.
    ts.grad = None
    kl = F.kl_div(F.log_softmax(ts / temperature, dim=1), soft_targets, reduction="batchmean") * temperature ** 2
    kl_total = alpha * kl + (1 - alpha) * F.cross_entropy(ts, tl)
    kl_total.backward()
    entropy = -(soft_targets * soft_targets.log()).sum(dim=1).mean().item() * temperature ** 2
    assert math.isclose(ours.item() - kl_total.item(), alpha * entropy, rel_tol=1e-9)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_distillation_loss_refuses_bad_input():
    student, teacher, labels = logits()
    same = Tensor(teacher, dtype=np.float64)
    assert math.isclose(distillation_loss(same, same, labels, 2.0, 1.0).item(),
                        -4.0 * (np.exp(log_softmax_np(teacher / 2)) * log_softmax_np(teacher / 2)).sum(axis=1).mean())
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(student, teacher, labels, temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(student, teacher, labels, alpha=1.5)
    with pytest.raises(ValueError, match="batch, classes"):
        distillation_loss(student, teacher[:, :3], labels)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=-1)


def test_distillation_module_equals_the_function():
    student, teacher, labels = logits()
    loss_fn = DistillationLoss(temperature=3.0, alpha=0.6)
    a = loss_fn(Tensor(student, dtype=np.float64), Tensor(teacher, dtype=np.float64), labels).item()
    b = distillation_loss(Tensor(student, dtype=np.float64), Tensor(teacher, dtype=np.float64), labels, 3.0, 0.6).item()
    assert a == b


def test_a_student_learns_from_the_teacher_alone():
    """alpha = 1: no labels reach the student, only the teacher's outputs; it must learn the task."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 10)) * 2
    labels = rng.integers(0, 4, 400)
    features = (centres[labels] + rng.standard_normal((400, 10))).astype(np.float32)
    loader = DataLoader(ArrayDataset(features, labels), batch_size=40, shuffle=True, seed=0)
    teacher = mlp(0, widths=(10, 32, 4))
    train_student(teacher, loader, Adam(teacher.parameters(), lr=0.02), 5)
    student = mlp(1, widths=(10, 8, 4))
    scrambled = DataLoader(ArrayDataset(features, rng.integers(0, 4, 400)), batch_size=40, shuffle=True, seed=0)
    losses = train_student(student, scrambled, Adam(student.parameters(), lr=0.02), 5, teacher=teacher,
                           temperature=2.0, alpha=1.0)
    with no_grad():
        predicted = student(Tensor(features)).numpy().argmax(axis=1)
    assert losses[-1] < losses[0] and (predicted == labels).mean() > 0.9, "the teacher's knowledge, without labels"
    assert not teacher.training, "the teacher runs in eval mode"
