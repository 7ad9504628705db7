"""Module 14 Profiling, graded through the exported package `tinytorch.core.profiling`.

FLOP counts are checked against the formulas (and against PyTorch's own counter where it counts
the same op), byte counts against `nbytes`, memory against the arrays that hold it. No test
times anything against a bar: speed is measured in the module's analysis and in
`benchmarks/bench_profiler_overhead.py`.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch.core.autograd  # noqa: F401  (backward() and no_grad)
from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.profiling import (
    CALL_COSTS,
    FLOP_RULES,
    MemoryProfiler,
    OperandShape,
    Profiler,
    blas_threads,
    bytes_moved,
    call_cost,
    count_flops,
    machine_summary,
    matmul_peak_gflops,
    optimizer_state_bytes,
    profile_training_step,
    register_flops,
    saved_bytes,
    training_memory,
)
from tinytorch.core.spatial import conv2d
from tinytorch.core.tensor import Tensor, manual_seed, randn
from tinytorch.core.transformer import GPT, GPTConfig

FAST = settings(max_examples=20, deadline=None)


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def op_rows(prof, group_by_input_shape=False):
    return {row.name: row for row in prof.key_averages(group_by_input_shape)}


def conv_output(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ---- FLOPs: matmul ----------------------------------------------------------------------------------
@FAST
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), m=st.integers(1, 6), k=st.integers(1, 6),
       n=st.integers(1, 6), broadcast_right=st.booleans())
def test_matmul_flops_are_2_b_m_k_n_for_any_batch(batch, m, k, n, broadcast_right):
    a = Tensor(normal(*batch, m, k))
    b = Tensor(normal(k, n) if broadcast_right else normal(*batch, k, n, seed=1))
    with Profiler() as prof:
        a @ b
    assert prof.flops == 2 * math.prod(batch) * m * k * n
    assert op_rows(prof)["matmul"].input_shapes == (a.shape, b.shape)


def test_matmul_with_vectors_counts_one_multiply_add_per_term():
    with Profiler() as prof:
        Tensor(normal(5)) @ Tensor(normal(5, 3))
        Tensor(normal(4, 5)) @ Tensor(normal(5))
        Tensor(normal(5)) @ Tensor(normal(5))
    assert prof.flops == 2 * 5 * 3 + 2 * 4 * 5 + 2 * 5


def test_linear_is_a_matmul_and_a_bias_add():
    manual_seed(0)
    layer = Linear(784, 256)
    with Profiler() as prof:
        layer(randn(128, 784))
    rows = op_rows(prof)
    assert rows["matmul"].flops == 2 * 128 * 784 * 256
    assert rows["add"].flops == 128 * 256, "one addition per output element"
    assert rows["permute"].flops == 0 and rows["permute"].bytes == 0, "W.T is a view"


def test_mlp_matmul_flops_match_pytorchs_counter(torch):
    from torch.utils.flop_counter import FlopCounterMode

    manual_seed(0)
    sizes = (784, 256, 128, 10)
    ours = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                 torch.nn.ReLU(), torch.nn.Linear(128, 10))
    x = normal(64, 784)
    with Profiler() as prof:
        ours(Tensor(x))
    with FlopCounterMode(display=False) as counter:
        theirs(torch.from_numpy(x))
    assert op_rows(prof)["matmul"].flops == counter.get_total_flops() == \
        sum(2 * 64 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


# ---- FLOPs: convolution ------------------------------------------------------------------------------
CONV_CASES = [  # (N, C, H, W, O, k, stride, padding, dilation, groups)
    (2, 3, 8, 8, 4, 3, 1, 0, 1, 1),
    (2, 3, 8, 8, 4, 3, 1, 1, 1, 1),
    (1, 4, 9, 7, 6, 3, 2, 1, 1, 2),
    (1, 4, 11, 11, 4, 3, 1, 2, 2, 4),
    (3, 2, 6, 10, 5, 1, 3, 0, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "N{}C{}H{}W{}O{}k{}s{}p{}d{}g{}".format(*c))
def test_conv2d_flops_follow_padding_stride_dilation_and_groups(case):
    N, C, H, W, O, k, stride, padding, dilation, groups = case
    x, weight = Tensor(normal(N, C, H, W)), Tensor(normal(O, C // groups, k, k, seed=1))
    with Profiler() as prof:
        out = conv2d(x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    Ho, Wo = conv_output(H, k, stride, padding, dilation), conv_output(W, k, stride, padding, dilation)
    assert out.shape == (N, O, Ho, Wo)
    assert op_rows(prof)["conv2d"].flops == 2 * N * O * Ho * Wo * (C // groups) * k * k


def test_conv2d_bytes_include_the_im2col_columns_it_keeps():
    x, weight = Tensor(normal(2, 3, 8, 8), requires_grad=True), Tensor(normal(4, 3, 3, 3, seed=1), requires_grad=True)
    with Profiler() as prof:
        out = conv2d(x, weight, padding=1)
    columns = out._saved["cols"]
    assert columns.shape == (3 * 3 * 3, 2 * 8 * 8)
    assert op_rows(prof)["conv2d"].bytes == x.nbytes + weight.nbytes + out.nbytes + columns.nbytes


@pytest.mark.parametrize("case", CONV_CASES[1:4])
def test_conv2d_flops_match_pytorchs_counter(torch, case):
    from torch.utils.flop_counter import FlopCounterMode

    N, C, H, W, O, k, stride, padding, dilation, groups = case
    x, weight = normal(N, C, H, W), normal(O, C // groups, k, k, seed=1)
    with Profiler() as prof:
        conv2d(Tensor(x), Tensor(weight), stride=stride, padding=padding, dilation=dilation, groups=groups)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), stride=stride, padding=padding,
                                   dilation=dilation, groups=groups)
    assert prof.flops == counter.get_total_flops()


# ---- FLOPs: attention --------------------------------------------------------------------------------
@FAST
@given(batch=st.integers(1, 3), heads=st.integers(1, 3), L=st.integers(1, 6), S=st.integers(1, 6),
       E=st.integers(1, 5), Ev=st.integers(1, 5), causal=st.booleans())
def test_attention_flops_are_its_two_products(batch, heads, L, S, E, Ev, causal):
    q, k, v = Tensor(normal(batch, heads, L, E)), Tensor(normal(batch, heads, S, E, seed=1)), \
        Tensor(normal(batch, heads, S, Ev, seed=2))
    with Profiler() as prof:
        scaled_dot_product_attention(q, k, v, is_causal=causal and L == S)
    assert op_rows(prof)["scaled_dot_product_attention"].flops == 2 * batch * heads * L * S * (E + Ev)


def test_attention_flops_match_pytorchs_counter_where_it_counts(torch):
    """PyTorch 2.13's counter has no formula for the fused CPU kernel (head sizes equal): it reports 0.

    With different query and value widths PyTorch runs its math path (two bmm), which it counts.
    """
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v = normal(2, 3, 5, 8), normal(2, 3, 7, 8, seed=1), normal(2, 3, 7, 4, seed=2)
    with Profiler() as prof:
        scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)))
    assert prof.flops == counter.get_total_flops() == 2 * 6 * 5 * 7 * (8 + 4)


def test_gpt_forward_flops_follow_the_architecture():
    manual_seed(0)
    B, T, E, V, layers = 2, 8, 16, 13, 2
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=layers, n_head=2, n_embd=E)).eval()
    ids = Tensor(np.random.default_rng(0).integers(0, V, (B, T)))
    with no_grad(), Profiler() as prof:
        model(ids)
    rows = op_rows(prof)
    assert rows["scaled_dot_product_attention"].calls == layers
    assert rows["scaled_dot_product_attention"].flops == layers * 2 * B * T * T * (E + E)
    per_layer = 2 * B * T * (E * 3 * E + E * E + E * 4 * E + 4 * E * E)  # qkv, out, MLP up and down
    assert rows["matmul"].flops == layers * per_layer + 2 * B * T * E * V, "blocks and the language-model head"
    blocks = [row for row in prof.module_stats() if row.name.startswith("GPT.blocks.") and row.depth == 1]
    assert len(blocks) == layers
    assert all(row.flops >= per_layer + 2 * B * T * T * 2 * E for row in blocks), "a block counts its attention"


# ---- FLOP rules and costs ----------------------------------------------------------------------------
def test_elementwise_and_reduction_rules():
    a = randn(4, 5)
    with Profiler() as prof:
        b = a * 2.0 + a
        b.exp().sum(dim=1)
        b.max()
    rows = op_rows(prof)
    assert rows["mul"].flops == rows["add"].flops == rows["exp"].flops == 20
    assert rows["sum"].flops == 20 - 4 and rows["amax"].flops == 19
    assert "constant" not in rows, "a Python number is not an op of its own"


def test_an_op_without_a_rule_is_not_counted_not_zero():
    with Profiler() as prof:
        randn(3, 4).reshape(12)  # a rule (0 FLOPs)
    assert prof.uncounted_ops == []

    from tinytorch.core.activations import softmax

    with Profiler() as prof:
        softmax(randn(3, 4), dim=1)
    assert prof.uncounted_ops == ["softmax"] and op_rows(prof)["softmax"].flops is None
    assert "not counted" in prof.table(peak_gflops=100.0)


def test_a_registered_rule_is_used_and_invalidates_cached_costs():
    shapes = (OperandShape((3, 4), np.float32),)
    output = OperandShape((3, 4), np.float32)
    signature = ("softmax", (((3, 4), np.dtype(np.float32)),), (3, 4), np.dtype(np.float32), False, 0)
    assert call_cost(signature)[0] is None
    previous = FLOP_RULES.get("softmax")
    try:
        register_flops("softmax")(lambda inputs, out: 5 * out.numel())
        assert signature not in CALL_COSTS, "registering a rule forgets the costs computed before it"
        assert count_flops("softmax", shapes, output) == 60 and call_cost(signature)[0] == 60
    finally:
        FLOP_RULES.pop("softmax")
        if previous is not None:
            FLOP_RULES["softmax"] = previous
        CALL_COSTS.clear()


# ---- bytes -----------------------------------------------------------------------------------------
def test_bytes_are_inputs_read_and_output_written():
    a, b = randn(64, 32), randn(32, 16)
    with Profiler() as prof:
        out = a @ b
        out.reshape(-1)  # a view
        a.T.reshape(-1)  # a copy: the transpose is not contiguous
        a.double()
    rows = op_rows(prof, group_by_input_shape=True)
    assert rows["matmul"].bytes == a.nbytes + b.nbytes + out.nbytes
    reshapes = sorted(row.bytes for row in prof.key_averages(True) if row.name == "reshape")
    assert reshapes == [0, 2 * a.nbytes], "the view moves nothing, the copy reads and writes every byte"
    assert rows["cast"].bytes == a.nbytes + 2 * a.nbytes, "float32 read, float64 written"
    assert prof.bytes_moved == sum(row.bytes for row in prof.key_averages())


def test_a_gather_reads_only_what_it_picks():
    table = randn(1000, 8)
    with Profiler() as prof:
        rows = table[Tensor([3, 1, 4])]
    assert op_rows(prof)["getitem"].bytes == 2 * rows.nbytes + 3 * 8, "the picked rows, the output and the index"


def test_saved_bytes_and_bytes_moved_on_tensors():
    a = randn(8, 8)
    assert bytes_moved("add", (a, a), a + a) == 3 * a.nbytes
    assert bytes_moved("permute", (a,), a.T, view=True) == 0
    assert saved_bytes({"dim": 1, "cols": np.zeros(10, np.float64), "index": (np.arange(4), 2)}) == 80 + 32


# ---- the profiler: seams, time, layers ---------------------------------------------------------------
def test_the_profiler_sees_ops_under_no_grad_and_puts_the_seams_back():
    import tinytorch.core.tensor as tensor_module

    x = randn(4, 4, requires_grad=True)
    with no_grad(), Profiler() as prof:
        (x @ x).sum()
    assert set(op_rows(prof)) == {"matmul", "sum"}
    assert tensor_module._op_observer is None, "the op observer is removed when the block ends"
    with pytest.raises(ZeroDivisionError):
        with Profiler():
            1 / 0
    assert tensor_module._op_observer is None, "... also when it ends with an error"
    with Profiler():
        with pytest.raises(RuntimeError, match="nest"):
            with Profiler():
                pass


def test_times_add_up_and_leave_the_profilers_cost_out():
    manual_seed(0)
    model = Sequential(Linear(32, 64), ReLU(), Linear(64, 8))
    with Profiler() as prof:
        for _ in range(3):
            model(randn(16, 32))
    ops = prof.key_averages()
    assert all(row.time >= 0 for row in ops)
    assert sum(row.time for row in ops) + prof.between_ops_time == pytest.approx(prof.total_time, abs=1e-9)
    assert prof.total_time + prof.overhead_time == pytest.approx(prof.wall_time, abs=1e-9)
    assert prof.overhead_time > 0


def test_layers_are_named_by_their_place_and_their_times_nest():
    class Block(Module):
        def __init__(self):
            super().__init__()
            self.inner = Sequential(Linear(10, 10), ReLU())
            self.head = Linear(10, 2)

        def forward(self, x):
            return self.head(self.inner(x) + x)

    manual_seed(0)
    model = Block()
    x = randn(5, 10)
    with Profiler() as prof:
        model(x)
        model(x)
    layers = {row.name: row for row in prof.module_stats()}
    assert list(layers) == ["Block", "Block.inner", "Block.inner.0", "Block.inner.1", "Block.head"]
    assert [row.depth for row in layers.values()] == [0, 1, 2, 2, 1]
    assert all(row.calls == 2 for row in layers.values())
    assert layers["Block.inner.0"].kind == "Linear"
    root = layers["Block"]
    assert root.self_time + layers["Block.inner"].total_time + layers["Block.head"].total_time == \
        pytest.approx(root.total_time, abs=1e-9)
    residual = 5 * 10  # the `+ x` in Block's own forward
    assert root.flops == layers["Block.inner"].flops + layers["Block.head"].flops + 2 * residual
    assert layers["Block.inner.0"].flops == 2 * (2 * 5 * 10 * 10 + 5 * 10)


def test_the_report_states_machine_threads_convention_and_peak():
    manual_seed(0)
    with Profiler() as prof:
        Sequential(Linear(8, 8), ReLU())(randn(4, 8))
    report = prof.table(peak_gflops=123.0)
    threads, source = blas_threads()
    assert f"{threads} thread" in report and source in report
    assert "peak 123 GFLOP/s (given)" in report and "a multiply-add counts 2" in report
    assert "Sequential" in report and "0 (Linear)" in report and "matmul" in report


def test_blas_threads_and_the_measured_peak():
    threads, source = blas_threads()
    assert isinstance(threads, int) and threads >= 1 and source
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        assert "threadpoolctl is not installed" in source, "the report says where the count came from"
    gflops = matmul_peak_gflops(size=96, repeats=3, seconds=0.02)
    assert 0.01 < gflops < 1e5
    assert "measured" in machine_summary(gflops)


# ---- memory ------------------------------------------------------------------------------------------
def test_memory_profiler_measures_numpy_arrays():
    profiler = MemoryProfiler()
    with profiler.measure("allocate"):
        kept = np.zeros((500, 400), dtype=np.float64)  # noqa: F841
    assert profiler.measurements["allocate"].retained_bytes == pytest.approx(500 * 400 * 8, abs=2048)
    with profiler.measure("temporary"):
        np.ones((1000, 250), dtype=np.float32).sum()
    assert profiler.peak_memory_mb == pytest.approx(1e6 / 2**20, abs=0.01)
    assert profiler.measurements["temporary"].retained_bytes < 2048


def test_the_seeds_adam_step_example_works_as_written():
    manual_seed(0)
    model = Sequential(Linear(100, 50), ReLU(), Linear(50, 10))
    optimizer = Adam(model.parameters())
    CrossEntropyLoss()(model(randn(8, 100)), Tensor(np.arange(8) % 10)).backward()
    parameters = sum(p.nbytes for p in model.parameters())

    profiler = MemoryProfiler()
    with profiler.measure("adam_step"):
        optimizer.step()
    assert profiler.measurements["adam_step"].retained_bytes == pytest.approx(2 * parameters, rel=0.05), \
        "the first Adam step creates m and v, one array each per parameter"
    assert profiler.peak_memory_mb >= 2 * parameters / 2**20


def test_training_memory_with_adam_state_is_twice_the_parameters():
    manual_seed(0)
    model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10))
    optimizer = Adam(model.parameters())
    loss_fn = CrossEntropyLoss()
    x, y = randn(32, 64), Tensor(np.arange(32) % 10)
    split = training_memory(model, lambda a, b: loss_fn(model(a), b), optimizer, x, y)
    parameters = (64 * 128 + 128 + 128 * 10 + 10) * 4
    assert split.parameters == parameters and split.gradients == parameters
    assert split.optimizer_state == 2 * parameters == optimizer_state_bytes(optimizer)
    assert split.activations >= 32 * (128 * 3 + 10) * 4, "the graph keeps the layers' outputs until backward"
    assert split.peak >= split.gradients + split.optimizer_state
    assert all(p.grad is None for p in model.parameters())
    assert "2.00x the parameters" in split.table()


def test_sgd_without_momentum_keeps_no_state_and_tied_weights_count_once():
    manual_seed(0)
    first = Linear(6, 6)
    model = Sequential(first, ReLU(), first)  # the same layer twice: its parameters once
    split = training_memory(model, lambda a, b: ((model(a) - b) * (model(a) - b)).mean(), SGD(model.parameters()),
                            randn(4, 6), randn(4, 6))
    assert split.parameters == (36 + 6) * 4 and split.optimizer_state == 0
    with pytest.raises(TypeError, match="state"):
        optimizer_state_bytes(object())


# ---- a training step, in time ------------------------------------------------------------------------
def test_training_step_phases():
    manual_seed(0)
    model = Sequential(Linear(20, 20), ReLU(), Linear(20, 3))
    optimizer = Adam(model.parameters())
    loss_fn = CrossEntropyLoss()
    fetched = []

    def next_batch():
        fetched.append(1)
        return randn(16, 20), Tensor(np.arange(16) % 3)

    times = profile_training_step(lambda x, y: loss_fn(model(x), y), optimizer, next_batch, steps=3, warmup=1)
    assert len(fetched) == 4 and times.steps == 3
    assert min(times.data, times.forward, times.backward, times.optimizer) >= 0
    assert times.total == pytest.approx(times.data + times.forward + times.backward + times.optimizer)
    assert all(p.grad is None for p in model.parameters()), "each step ends with zero_grad"
    assert "optimizer" in times.table() and "thread" in times.table()


@pytest.mark.parametrize("collecting", [True, False])
def test_the_garbage_collector_is_off_inside_a_profile_and_restored_after(collecting):
    """Collections would walk the profiler's own event list and land on whichever layer triggered them."""
    import gc

    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        model = Sequential(Linear(4, 3), ReLU())
        with Profiler() as prof:
            assert not gc.isenabled()
            model(Tensor(np.ones((2, 4), np.float32)))
        assert gc.isenabled() == collecting
        with pytest.raises(ValueError), Profiler():  # an exception inside the block restores it too
            raise ValueError("inside")
        assert gc.isenabled() == collecting
        assert prof.total_time > 0
    finally:
        (gc.enable if was else gc.disable)()
