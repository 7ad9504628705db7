"""Module 18 (Acceleration): the kernel seam, the NumPy reference kernels and the numba backend.

Every kernel test runs over every backend: "numpy" always, "numba" where the `accel` extra is
installed (its cases carry the `accel` marker and skip cleanly without numba). Each fused kernel
is checked three ways: its forward against the composed reference of the earlier modules, its
gradient by central differences in float64 with a random cotangent, and against PyTorch.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (switches backward() on)
from tinytorch.core import acceleration
from tinytorch.core.activations import gelu, relu
from tinytorch.core.autograd import gradcheck, numerical_gradient
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import Adam, AdamW
from tinytorch.core.spatial import batch_norm, max_pool2d
from tinytorch.core.tensor import (
    Tensor,
    backend_kernel,
    get_backend,
    manual_seed,
    set_backend,
    use_backend,
)
from tinytorch.core.transformer import gelu_tanh, layer_norm, layer_norm_composed

NUMBA_MISSING = "numba is not installed: pip install 'tinytorch[accel]' (numba>=0.60) to test the compiled backend"
BACKENDS = ["numpy", pytest.param("numba", marks=[pytest.mark.accel,
                                                  pytest.mark.skipif(not acceleration.NUMBA_AVAILABLE, reason=NUMBA_MISSING)])]
NUMBA_ONLY = BACKENDS[1:]  # the kernels that only the compiled backend has (Adam, BatchNorm + ReLU)
ROOT = Path(__file__).resolve().parents[2]


def f64(array, requires_grad=False):
    return Tensor(np.asarray(array, dtype=np.float64), dtype=np.float64, requires_grad=requires_grad)


def kernels(backend):
    return acceleration.NUMBA_KERNELS if backend == "numba" else acceleration.NUMPY_KERNELS


def kernel(backend, name):
    """The backend's kernel `name`; for one the NumPy backend leaves out (slower there), its NumPy reference."""
    return kernels(backend).get(name) or getattr(acceleration, f"{name}_numpy")


# ---- the seam ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_is_active_only_inside_use_backend(backend):
    assert get_backend() is None and backend_kernel("gelu") is None, "importing module 18 switches nothing on"
    with use_backend(backend):
        assert get_backend() == backend
        assert backend_kernel("gelu") is kernels(backend)["gelu"]
        out = gelu(Tensor([0.5, -1.0], requires_grad=True))
        assert out._op == "gelu", "with a backend active, GELU is one fused op"
    assert get_backend() is None and gelu(Tensor([0.5], requires_grad=True))._op != "gelu"
    assert backend in acceleration.backends()
    with pytest.raises(ValueError, match="no backend named 'cuda'.*numpy"):
        set_backend("cuda")
    assert get_backend() is None


# ---- the matmul ladder and the blocked product --------------------------------------------------
def test_python_loops_and_vectorised_matmul_equal_blas():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 9)), rng.standard_normal((9, 4))
    np.testing.assert_allclose(acceleration.matmul_python_loops(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acceleration.matmul_vectorised(a, b), a @ b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(6, 9\) and \(6, 9\)"):
        acceleration.matmul_python_loops(a, a)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tile", [1, 7, 16, 200])
def test_blocked_matmul_equals_blas_for_any_tile(backend, tile):
    rng = np.random.default_rng(tile)
    a, b = rng.standard_normal((45, 38)), rng.standard_normal((38, 23))  # no multiple of any tile
    np.testing.assert_allclose(kernels(backend)["blocked_matmul"](a, b, tile), a @ b, rtol=1e-10, atol=1e-10)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    result = kernels(backend)["blocked_matmul"](a32, b32, tile)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, a32 @ b32, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        kernels(backend)["blocked_matmul"](a, b, 0)




# ---- GELU -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fused_gelu_equals_the_composed_gelu_and_passes_gradcheck(backend, approximate):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7)) * 3
    composed = gelu(f64(x), approximate).numpy()
    with use_backend(backend):
        np.testing.assert_allclose(gelu(f64(x), approximate).numpy(), composed, atol=5e-7)
        gradcheck(lambda t: gelu(t, approximate), x, rng=rng)
        assert np.all(np.isfinite(gelu(f64([-1000.0, 1000.0]), approximate).numpy()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_gelu_matches_torch(backend, torch):
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32) * 3
    cotangent = np.random.default_rng(3).standard_normal((5, 6)).astype(np.float32)
    expected = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.gelu(expected).backward(torch.from_numpy(cotangent))
    with use_backend(backend):
        t = Tensor(x, requires_grad=True)
        out = gelu(t)
        out.backward(cotangent)
    np.testing.assert_allclose(out.numpy(), torch.nn.functional.gelu(torch.from_numpy(x)).numpy(), atol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), expected.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("backend", NUMBA_ONLY)
def test_module_13s_gelu_tanh_kernel_equals_its_numpy_op_and_passes_gradcheck(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 9)) * 3
    cotangent = rng.standard_normal((5, 9)).astype(np.float32)
    plain = Tensor(x.astype(np.float32), requires_grad=True)
    gelu_tanh(plain).backward(cotangent)
    reference = gelu_tanh(f64(x)).numpy()  # module 13's NumPy op
    with use_backend(backend):
        np.testing.assert_allclose(gelu_tanh(f64(x)).numpy(), reference, rtol=1e-12, atol=1e-14)
        gradcheck(gelu_tanh, x, rng=rng)
        fused = Tensor(x.astype(np.float32), requires_grad=True)
        out = gelu_tanh(fused)
        assert out._saved.get("backward") is not None, "the compiled kernel ran"
        out.backward(cotangent)
        extreme = gelu_tanh(Tensor(np.array([-1000.0, -60.0, 0.0, 60.0, 1000.0], np.float32))).numpy()
    np.testing.assert_allclose(out.numpy(), gelu_tanh(Tensor(x.astype(np.float32))).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused.grad.numpy(), plain.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extreme, [0.0, 0.0, 0.0, 60.0, 1000.0], atol=1e-30)


@pytest.mark.parametrize("backend", NUMBA_ONLY)
def test_module_13s_gelu_tanh_kernel_matches_torch(backend, torch):
    x = np.random.default_rng(5).standard_normal((6, 7)).astype(np.float32) * 3
    cotangent = np.random.default_rng(6).standard_normal((6, 7)).astype(np.float32)
    expected = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.gelu(expected, approximate="tanh").backward(torch.from_numpy(cotangent))
    with use_backend(backend):
        t = Tensor(x, requires_grad=True)
        out = gelu_tanh(t)
        out.backward(cotangent)
    np.testing.assert_allclose(out.numpy(), torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), expected.grad.numpy(), atol=1e-5)


# ---- Linear -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_is_one_op_equal_to_module_03_and_passes_gradcheck(backend, bias):
    from tinytorch.core.layers import Linear

    rng = np.random.default_rng(16)
    layer = Linear(5, 3, bias=bias).double()
    x = rng.standard_normal((2, 4, 5))
    expected = layer(f64(x)).numpy()
    with use_backend(backend):
        out = layer(f64(x, requires_grad=True))
        assert out._op == "linear" and len(out._inputs) == (3 if bias else 2)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
        gradcheck(layer, x, rng=rng)  # the input's gradient, through the layer
    # The weight's and the bias's gradients: the kernels against central differences.
    forward, backward = kernels(backend)["linear"], kernels(backend)["linear_backward"]
    w, b = layer.weight.numpy(), layer.bias.numpy() if bias else None
    cotangent = rng.standard_normal(expected.shape)
    grads = backward(cotangent, x, w, bias, True)
    arrays = [x, w] + ([b] if bias else [])
    numeric = numerical_gradient(lambda *a: np.sum(forward(a[0], a[1], a[2] if bias else None) * cotangent), arrays)
    for got, want in zip(grads, numeric):
        np.testing.assert_allclose(got, want, atol=1e-7)
    assert backward(cotangent, x, w, bias, False)[0] is None, "no input gradient when the input needs none"
    with use_backend(backend), pytest.raises(ValueError, match="expected input with last dimension 5"):
        layer(f64(np.ones((2, 4))))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_linear_matches_torch_and_gives_a_contiguous_weight_gradient(backend, torch):
    from tinytorch.core.layers import Linear

    rng = np.random.default_rng(17)
    layer = Linear(6, 4)
    x, cotangent = rng.standard_normal((3, 6)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    reference = torch.nn.Linear(6, 4)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.weight.data))
        reference.bias.copy_(torch.from_numpy(layer.bias.data))
    reference(torch.from_numpy(x)).backward(torch.from_numpy(cotangent))
    with use_backend(backend):
        layer(Tensor(x)).backward(cotangent)
    np.testing.assert_allclose(layer.weight.grad.numpy(), reference.weight.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), reference.bias.grad.numpy(), atol=1e-5)
    assert layer.weight.grad.numpy().flags.c_contiguous, "no transposed gradient for the optimizer to copy"


# ---- softmax ----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_kernel_equals_module_02_and_passes_gradcheck(backend, torch):
    from tinytorch.core.activations import softmax

    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 3, 7)) * 4
    expected = softmax(f64(x)).numpy()
    np.testing.assert_allclose(kernels(backend)["softmax"](x), expected, atol=1e-14)
    with use_backend(backend):
        np.testing.assert_allclose(softmax(f64(x)).numpy(), expected, atol=1e-14)
        gradcheck(softmax, x, rng=rng)
        x32 = x.astype(np.float32)
        np.testing.assert_allclose(softmax(Tensor(x32)).numpy(), torch.softmax(torch.from_numpy(x32), -1).numpy(), atol=1e-6)


# ---- layer norm -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_layer_norm_equals_composed_and_passes_gradcheck(backend):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 3, 6)), rng.standard_normal(6), rng.standard_normal(6)
    composed = layer_norm_composed(f64(x), (6,), f64(w), f64(b)).numpy()
    with use_backend(backend):
        out = layer_norm(f64(x), (6,), f64(w), f64(b))
        np.testing.assert_allclose(out.numpy(), composed, atol=1e-12)
        gradcheck(lambda t, u, v: layer_norm(t, (6,), u, v), x, w, b, rng=rng)
        no_bias = layer_norm(f64(x, requires_grad=True), (6,), f64(w, requires_grad=True))
        assert no_bias._op == "layer_norm" and len(no_bias._inputs) == 2
        np.testing.assert_allclose(no_bias.numpy(), layer_norm_composed(f64(x), (6,), f64(w)).numpy(), atol=1e-12)
        gradcheck(lambda t, u: layer_norm(t, (6,), u), x, w, rng=rng)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_layer_norm_matches_torch(backend, torch):
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 5, 8), (8,), (8,)))
    cotangent = rng.standard_normal((4, 5, 8)).astype(np.float32)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    expected = torch.nn.functional.layer_norm(tx, (8,), tw, tb)
    expected.backward(torch.from_numpy(cotangent))
    with use_backend(backend):
        inputs = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        out = layer_norm(inputs[0], (8,), inputs[1], inputs[2])
        out.backward(cotangent)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-5)
    for mine, theirs in zip(inputs, (tx, tw, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), atol=1e-4)


# ---- cross-entropy (log-softmax + NLL) ----------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_cross_entropy_equals_composed_and_passes_gradcheck(backend, reduction):
    rng = np.random.default_rng(6)
    logits, target = rng.standard_normal((5, 4)) * 3, Tensor(rng.integers(0, 4, 5))
    composed = cross_entropy(f64(logits), target, reduction=reduction).numpy()
    with use_backend(backend):
        out = cross_entropy(f64(logits), target, reduction=reduction)
        np.testing.assert_allclose(out.numpy(), composed, atol=1e-12)
        recorded = cross_entropy(f64(logits, requires_grad=True), target, reduction=reduction)
        assert recorded._op == "cross_entropy", "log-softmax and NLL run as one op"
        gradcheck(lambda t: cross_entropy(t, target, reduction=reduction), logits, rng=rng)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_cross_entropy_matches_torch(backend, torch):
    rng = np.random.default_rng(7)
    logits, target = rng.standard_normal((6, 10)).astype(np.float32) * 4, rng.integers(0, 10, 6)
    expected_logits = torch.from_numpy(logits).requires_grad_()
    expected = torch.nn.functional.cross_entropy(expected_logits, torch.from_numpy(target))
    expected.backward()
    with use_backend(backend):
        t = Tensor(logits, requires_grad=True)
        loss = cross_entropy(t, Tensor(target))
        loss.backward()
    assert abs(loss.item() - expected.item()) < 1e-5
    np.testing.assert_allclose(t.grad.numpy(), expected_logits.grad.numpy(), atol=1e-6)


# ---- 2x2 max-pooling --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_max_pool_equals_module_09_and_passes_gradcheck(backend):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 6))
    x[0, 0, :2, :2] = 1.5  # a tie: the first tap wins, as module 09's rule says
    reference_input = f64(x, requires_grad=True)
    expected = max_pool2d(reference_input, 2)
    expected.backward(np.ones(expected.shape))
    with use_backend(backend):
        t = f64(x, requires_grad=True)
        out = max_pool2d(t, 2)
        np.testing.assert_array_equal(out.numpy(), expected.numpy())
        out.backward(np.ones(out.shape))
        np.testing.assert_array_equal(t.grad.numpy(), reference_input.grad.numpy())
        gradcheck(lambda a: max_pool2d(a, 2), rng.standard_normal((1, 2, 4, 4)), rng=rng)
    pooled, winner = kernel(backend, "max_pool2d_2x2")(x)
    assert winner[0, 0, 0, 0] == 0, "ties go to the first tap"
    np.testing.assert_array_equal(kernel(backend, "max_pool2d_2x2_backward")(np.ones(pooled.shape), winner),
                                  reference_input.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_max_pool_matches_torch(backend, torch):
    x = np.random.default_rng(9).standard_normal((2, 2, 6, 4)).astype(np.float32)
    with use_backend(backend):
        out = max_pool2d(Tensor(x), 2).numpy()
    np.testing.assert_array_equal(out, torch.nn.functional.max_pool2d(torch.from_numpy(x), 2).numpy())


# ---- BatchNorm + ReLU -------------------------------------------------------------------------
def _bn_relu_composed(x, w, b):
    return relu(batch_norm(x, None, None, w, b, training=True))


def bn_relu_kernels(backend):
    return kernel(backend, "batch_norm_relu"), kernel(backend, "batch_norm_relu_backward")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_batch_norm_relu_equals_composed_with_numerical_gradients(backend):
    rng = np.random.default_rng(10)
    x, w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2), rng.standard_normal(2) * 0.5
    forward, backward = bn_relu_kernels(backend)
    out, x_hat, inv_std, mean = forward(x, w, b, 1e-5)
    np.testing.assert_allclose(out, _bn_relu_composed(f64(x), f64(w), f64(b)).numpy(), atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), atol=1e-12)
    cotangent = rng.standard_normal(x.shape)
    grads = backward(cotangent, out, x_hat, inv_std, w)
    expected = numerical_gradient(lambda a, c, d: np.sum(forward(a, c, d, 1e-5)[0] * cotangent), [x, w, b])
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_batch_norm_relu_matches_torch(backend, torch):
    rng = np.random.default_rng(11)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3, 5, 5), (3,), (3,)))
    cotangent = rng.standard_normal(x.shape).astype(np.float32)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    expected = torch.relu(torch.nn.functional.batch_norm(tx, None, None, tw, tb, training=True))
    expected.backward(torch.from_numpy(cotangent))
    forward, backward = bn_relu_kernels(backend)
    out, x_hat, inv_std, _ = forward(x, w, b, 1e-5)
    grads = backward(cotangent, out, x_hat, inv_std, w)
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=1e-5)
    for mine, theirs in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), atol=1e-4)


def trained_bn_cnn(seed=0):
    manual_seed(seed)
    sys.path.insert(0, str(ROOT / "milestones"))
    from cifar10_model import build_cifar_cnn

    return build_cifar_cnn()


@pytest.mark.parametrize("backend", [None, *BACKENDS])
def test_a_fused_cnn_trains_like_the_unfused_one(backend):
    """fuse_batchnorm_relu keeps the state's names; two SGD steps give the same losses, weights and statistics."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import SGD

    rng = np.random.default_rng(14)
    x = Tensor(rng.standard_normal((6, 3, 32, 32)).astype(np.float32))
    y = Tensor(rng.integers(0, 10, 6))
    results = []
    for fuse in (False, True):
        model = trained_bn_cnn()
        names = list(model.state_dict())
        if fuse:
            model, pairs = acceleration.fuse_batchnorm_relu(model)
            assert pairs == 4 and list(model.state_dict()) == names
            assert sum(isinstance(m, acceleration.BatchNormReLU2d) for m in model.modules()) == 4
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        with use_backend(backend if fuse else None):
            for _ in range(2):
                loss = CrossEntropyLoss()(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        model.eval()
        results.append((losses, model.state_dict(), model(x).numpy()))
    (losses, state, outputs), (fused_losses, fused_state, fused_outputs) = results
    np.testing.assert_allclose(fused_losses, losses, rtol=1e-5)
    for name, array in state.items():
        np.testing.assert_allclose(fused_state[name], array, rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(fused_outputs, outputs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", NUMBA_ONLY)
def test_the_fused_op_gradient_by_numerical_check(backend):
    rng = np.random.default_rng(15)
    x, w, b = (f64(rng.standard_normal(s), requires_grad=True) for s in ((3, 2, 4, 4), (2,), (2,)))
    cotangent = rng.standard_normal(x.shape)
    with use_backend(backend):
        out = acceleration.batch_norm_relu(x, None, None, w, b, training=True)
        assert out._op == "batch_norm_relu", "the fused kernel ran"
        (out * Tensor(cotangent, dtype=np.float64)).sum().backward()
    expected = numerical_gradient(
        lambda a, c, d: np.sum(acceleration.batch_norm_relu_numpy(a, c, d, 1e-5)[0] * cotangent), [x.data, w.data, b.data])
    for tensor, want in zip((x, w, b), expected):
        np.testing.assert_allclose(tensor.grad, want, atol=1e-6)


def test_the_numpy_backend_runs_batch_norm_relu_composed():
    x = Tensor(np.random.default_rng(16).standard_normal((4, 2, 3, 3)).astype(np.float32))
    bn = acceleration.BatchNormReLU2d(2)
    with use_backend("numpy"):
        out = bn(x)
    assert out._op != "batch_norm_relu" and np.all(out.numpy() >= 0)


# ---- the Adam / AdamW update --------------------------------------------------------------------
def test_the_numpy_backend_leaves_adam_to_module_06():
    assert "adam_update" not in acceleration.NUMPY_KERNELS
    with use_backend("numpy"):
        from tinytorch.core.tensor import backend_kernel

        assert backend_kernel("adam_update") is None, "module 06's update is the NumPy reference"


@pytest.mark.parametrize("backend", NUMBA_ONLY)
@pytest.mark.parametrize("kind,options", [(Adam, {"weight_decay": 0.1}), (AdamW, {"weight_decay": 0.05})])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_fused_adam_update_equals_module_06(backend, kind, options, layout):
    rng = np.random.default_rng(12)
    start = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3)]
    results = []
    for active in (None, backend):
        data = start.copy() if layout == "contiguous" else np.ascontiguousarray(start.T).T  # a transposed view
        param = Tensor(data, requires_grad=True)
        param.data = data  # keep the (possibly non-contiguous) layout the kernel must handle
        optimizer = kind([param], lr=0.01, **options)
        with use_backend(active):
            for g in grads:
                param.grad = g
                optimizer.step()
        results.append((param.numpy().copy(), optimizer.state[param]["exp_avg_sq"].copy()))
    assert not np.array_equal(results[0][0], start), "the steps moved the parameter"
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)


@pytest.mark.parametrize("backend", NUMBA_ONLY)
def test_fused_adamw_matches_torch(backend, torch):
    rng = np.random.default_rng(13)
    start = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(4)]
    theirs = torch.from_numpy(start.copy()).requires_grad_()
    torch_optimizer = torch.optim.AdamW([theirs], lr=0.02, weight_decay=0.1)
    mine = Tensor(start.copy(), requires_grad=True)
    optimizer = AdamW([mine], lr=0.02, weight_decay=0.1)
    with use_backend(backend):
        for g in grads:
            theirs.grad = torch.from_numpy(g)
            torch_optimizer.step()
            mine.grad = g
            optimizer.step()
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), atol=1e-6)


# ---- integration ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gpt_trains_the_same_on_every_backend(backend):
    from tinytorch.core.tensor import manual_seed
    from tinytorch.core.transformer import GPT, GPTConfig

    tokens = np.random.default_rng(14).integers(0, 13, (2, 9))
    runs = []
    for active in (None, backend):
        manual_seed(0)
        model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16))
        optimizer = AdamW(model.parameters(), lr=1e-2)
        losses = []
        with use_backend(active):
            for _ in range(3):
                _, loss = model(tokens[:, :-1], tokens[:, 1:])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        runs.append((losses, np.concatenate([p.numpy().ravel() for p in model.parameters()])))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    # Adam divides by sqrt(v): for a weight whose gradients are float32 rounding noise, the two
    # backends' different summation orders move it by up to a few lr * 1e-3; 1e-4 is 1% of lr.
    np.testing.assert_allclose(runs[1][1], runs[0][1], atol=1e-4)
    assert runs[1][0][-1] < runs[1][0][0], "three AdamW steps lower the loss"
