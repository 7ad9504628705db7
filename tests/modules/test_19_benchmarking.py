"""Module 19 Benchmarking, graded through the exported package `tinytorch.core.benchmarking`.

The systems here are small and real: a tiny MLP trained in the test on separable data, and
callables whose service time is known because they sleep. Durations are a fraction of a second.
"""

import json
import math
import time

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (backward())
from tinytorch.core.benchmarking import (
    BenchmarkSettings,
    SystemUnderTest,
    accuracy_is_valid,
    benchmark,
    bootstrap_ci,
    capture_environment,
    compare_latencies,
    find_server_rate,
    load_system,
    mann_whitney_u,
    median_cv,
    pareto_front,
    percentile,
    run_accuracy,
    run_performance,
    run_suite,
    state_bytes,
    write_logs,
    write_suite,
)
from tinytorch.core.layers import Linear, Module, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import save_checkpoint

FAST = BenchmarkSettings(min_duration_s=0.05, min_query_count=30, warmup_queries=2)


def separable_data(n=150, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, features)) * 3
    labels = rng.integers(0, classes, size=n)
    return (centres[labels] + rng.standard_normal((n, features))).astype(np.float32), labels


def build_model(features=12, hidden=16, classes=3):
    return Sequential(Linear(features, hidden), ReLU(), Linear(hidden, classes))


@pytest.fixture(scope="module")
def trained():
    inputs, labels = separable_data()
    manual_seed(0)
    model = build_model()
    optimizer, loss_fn = Adam(model.parameters(), lr=0.05), CrossEntropyLoss()
    for _ in range(60):
        loss = loss_fn(model(Tensor(inputs)), Tensor(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), inputs, labels


class Recorder:
    """A system that records the batches it is given and sleeps `seconds` per call."""

    def __init__(self, seconds=0.0):
        self.seconds, self.batches = seconds, []

    def __call__(self, inputs):
        self.batches.append(np.array(inputs[:, 0]))
        if self.seconds:
            time.sleep(self.seconds)
        return np.zeros((len(inputs), 3), dtype=np.float32)


# ---- sizes and the system under test ------------------------------------------------------------
class Int8Linear(Module):
    """A layer that stores its weight as int8 with a float32 scale: 1 byte per weight."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", Tensor(np.ones((64, 32), dtype=np.int8)))
        self.register_buffer("scale", Tensor(np.ones(64, dtype=np.float32)))

    def forward(self, x):
        return x


def test_size_is_the_measured_bytes_of_the_state_not_params_times_four():
    assert state_bytes(build_model()) == (12 * 16 + 16 + 16 * 3 + 3) * 4
    quantized = Int8Linear()
    assert state_bytes(quantized) == 64 * 32 * 1 + 64 * 4, "int8 weights count one byte each"
    assert SystemUnderTest(quantized).size_bytes == 2304
    assert state_bytes(lambda x: x) is None


def test_a_system_must_answer_one_row_per_sample(trained):
    model, inputs, _ = trained
    assert SystemUnderTest(model).predict(inputs[:7]).shape == (7, 3)
    with pytest.raises(ValueError, match="one output row per input"):
        SystemUnderTest(lambda x: np.zeros(3), "bad").predict(inputs[:4])
    with pytest.raises(TypeError, match="must be callable"):
        SystemUnderTest(42)
    assert state_bytes(model) > 0


# ---- percentiles and settings -------------------------------------------------------------------
def test_percentile_is_nearest_rank():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        values = rng.lognormal(size=n)
        for q in (0.5, 0.9, 0.99, 1.0):
            expected = np.percentile(values, q * 100, method="inverted_cdf")
            assert percentile(values, q) == pytest.approx(expected), (n, q)
    assert percentile(range(1, 21), 0.9) == 18
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 90)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="scenario must be one of"):
        BenchmarkSettings(scenario="Batch")
    with pytest.raises(ValueError, match="min_duration_s"):
        BenchmarkSettings(min_duration_s=0)
    with pytest.raises(ValueError, match="min_query_count"):
        BenchmarkSettings(min_query_count=0)
    with pytest.raises(ValueError, match="target_qps"):
        BenchmarkSettings(target_qps=-1.0)
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


# ---- the scenarios ----------------------------------------------------------------------------
def test_single_stream_meets_its_minimums_and_times_each_query():
    system = Recorder(seconds=0.001)
    result = run_performance(SystemUnderTest(system), np.arange(40.0)[:, None], FAST)
    assert result.queries >= 30 and result.duration_s >= 0.05 and result.valid
    assert all(len(batch) == 1 for batch in system.batches), "one sample per query"
    assert len(system.batches) == result.queries + FAST.warmup_queries, "warm-up queries run but are not timed"
    assert result.p50_ms >= 1.0, "each query sleeps 1 ms, and its latency must show it"
    assert np.all(np.diff(result.issued_s) >= result.latencies_s[:-1] * 0.999), "the next query waits for the last"
    assert result.metric == ("90th percentile latency", result.p90_ms, "ms")


def test_query_order_is_seeded_and_covers_every_sample():
    inputs = np.arange(25.0)[:, None]
    orders = []
    for seed in (3, 3, 4):
        system = Recorder()
        run_performance(SystemUnderTest(system), inputs, BenchmarkSettings(
            min_duration_s=0.01, min_query_count=25, warmup_queries=0, seed=seed))
        orders.append([float(b[0]) for b in system.batches[:25]])
    assert orders[0] == orders[1], "the same seed issues the same queries"
    assert orders[0] != orders[2]
    assert sorted(orders[0]) == list(inputs[:, 0]), "every sample is used once before any repeats"
    assert percentile(orders[0], 1.0) == 24.0


def test_multi_stream_sends_eight_samples_and_offline_sends_everything():
    inputs = np.arange(50.0)[:, None]
    system = Recorder()
    multi = run_performance(SystemUnderTest(system), inputs, BenchmarkSettings(
        scenario="MultiStream", min_duration_s=0.02, min_query_count=10, warmup_queries=1))
    assert {len(b) for b in system.batches} == {8} and multi.samples == 8 * multi.queries
    assert multi.metric[0] == "99th percentile latency" and multi.p99_ms > 0
    system = Recorder()
    offline = run_performance(SystemUnderTest(system), inputs, BenchmarkSettings(
        scenario="Offline", min_duration_s=0.02, offline_batch_size=16, warmup_queries=0))
    assert [len(b) for b in system.batches[:4]] == [16, 16, 16, 2], "all 50 samples, in batches of 16"
    assert offline.samples == 50 * offline.queries
    assert offline.metric[1] == pytest.approx(offline.samples / offline.duration_s)
    assert offline.p50_ms > 0


def test_server_arrivals_are_poisson_and_latency_counts_the_wait():
    fast = run_performance(SystemUnderTest(Recorder()), np.zeros((10, 1)), BenchmarkSettings(
        scenario="Server", target_qps=2000.0, min_duration_s=0.2, min_query_count=200, warmup_queries=0))
    gaps = np.diff(fast.issued_s)
    assert abs(gaps.mean() * 2000 - 1) < 0.2, "mean gap 1/rate"
    assert abs(gaps.std() / gaps.mean() - 1) < 0.25, "exponential gaps: standard deviation = mean"
    overloaded = run_performance(SystemUnderTest(Recorder(seconds=0.004)), np.zeros((10, 1)), BenchmarkSettings(
        scenario="Server", target_qps=500.0, min_duration_s=0.1, min_query_count=30, warmup_queries=0,
        latency_bound_ms=5.0))
    assert overloaded.latencies_s[-5:].mean() > 3 * overloaded.latencies_s[:3].mean(), "a queue builds up"
    assert not overloaded.valid and overloaded.p99_ms > 5.0
    endless = run_performance(SystemUnderTest(Recorder(seconds=0.004)), np.zeros((10, 1)), BenchmarkSettings(
        scenario="Server", target_qps=5000.0, min_duration_s=0.1, max_duration_s=0.1, min_query_count=10,
        warmup_queries=0))
    assert not endless.completed and endless.duration_s < 0.3, "a queue longer than max_duration_s is cut off"
    with pytest.raises(ValueError, match="target_qps"):
        run_performance(SystemUnderTest(Recorder()), np.zeros((2, 1)), BenchmarkSettings(scenario="Server"))


def test_server_search_finds_the_highest_rate_that_meets_the_bound():
    # A system with a 3 ms service time (it sleeps): its capacity is about 333 queries/s. Above
    # capacity a queue grows all run long: at 2x capacity it is 150 ms deep after 0.15 s.
    settings = BenchmarkSettings(scenario="Server", min_duration_s=0.15, min_query_count=20, warmup_queries=1,
                                 latency_bound_ms=30.0)
    search = find_server_rate(SystemUnderTest(Recorder(seconds=0.003)), np.zeros((8, 1)), settings, iterations=3)
    assert search.best is not None and search.best.p99_ms <= 30.0
    assert 0.1 / 0.004 < search.rate < 2 / 0.003, "between a tenth of the capacity and twice it"
    failing = [t.target_qps for t in search.trials if not t.valid]
    assert failing and min(failing) > search.rate, "every rate that failed is above the one reported"
    impossible = find_server_rate(SystemUnderTest(Recorder(seconds=0.003)), np.zeros((8, 1)),
                                  BenchmarkSettings(scenario="Server", min_duration_s=0.05, min_query_count=10,
                                                    warmup_queries=0, latency_bound_ms=1.0), iterations=2)
    assert impossible.best is None and impossible.rate is None, "a bound below the service time: no rate passes"


# ---- statistics -------------------------------------------------------------------------------
def test_bootstrap_interval_matches_the_normal_theory_for_a_mean():
    sample = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    low, high = bootstrap_ci(sample, np.mean, confidence=0.95, resamples=2000, seed=1)
    half_width = 1.96 * sample.std() / math.sqrt(sample.size)
    assert low == pytest.approx(sample.mean() - half_width, abs=0.06)
    assert high == pytest.approx(sample.mean() + half_width, abs=0.06)
    assert bootstrap_ci(sample, seed=1) == bootstrap_ci(sample, seed=1), "seeded"
    assert 0 < median_cv(sample) < 0.02
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(sample, confidence=95)


def test_mann_whitney_u_counts_pairs_and_gives_the_normal_p_value():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 6, size=30).astype(float), rng.integers(1, 7, size=25).astype(float)
    u, p = mann_whitney_u(a, b)
    pairs = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    assert u == pytest.approx(pairs), "U counts the pairs where a is larger, ties one half"
    u, p = mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])
    assert u == 0 and p == pytest.approx(math.erfc(8 / math.sqrt(12) / math.sqrt(2)))
    assert mann_whitney_u([2.0, 2.0, 2.0], [2.0, 2.0])[1] == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        mann_whitney_u([1.0], [1.0, 2.0])


def test_comparing_two_systems_is_significant_only_when_they_differ():
    rng = np.random.default_rng(2)
    base = rng.lognormal(0.0, 0.2, size=300)
    slower = compare_latencies(rng.lognormal(0.0, 0.2, size=300) * 1.3, base)
    assert slower.significant and slower.ratio_ci[0] < 1.3 < slower.ratio_ci[1] * 1.05
    same = compare_latencies(rng.lognormal(0.0, 0.2, size=300), base)
    assert not same.significant and same.ratio_ci[0] < 1 < same.ratio_ci[1]


# ---- accuracy mode and validity ------------------------------------------------------------------
def test_accuracy_mode_scores_every_sample_in_order(trained):
    model, inputs, labels = trained
    result = run_accuracy(model, inputs, labels, batch_size=32)
    expected = model(Tensor(inputs)).numpy().argmax(axis=1)
    np.testing.assert_array_equal(result.predictions, expected)
    assert result.samples == len(labels) and result.accuracy == pytest.approx(np.mean(expected == labels))
    assert result.accuracy > 0.95, "the trained model reads its data"
    with pytest.raises(ValueError, match="one label per input"):
        run_accuracy(model, inputs, labels[:-1])


def test_a_run_below_99_percent_of_the_baseline_is_invalid(trained):
    model, inputs, labels = trained
    assert accuracy_is_valid(0.99 * 0.9, 0.9) and not accuracy_is_valid(0.99 * 0.9 - 1e-6, 0.9)
    wrong = SystemUnderTest(lambda x: np.eye(3, dtype=np.float32)[np.zeros(len(x), dtype=int)], "always 0")
    result = benchmark(wrong, inputs, labels, settings=FAST, baseline_accuracy=run_accuracy(model, inputs, labels).accuracy)
    assert not result.valid
    assert any("below 99% of the baseline" in reason for reason in result.invalid_reasons())


def test_the_environment_is_captured_with_the_result(trained):
    model, inputs, labels = trained
    result = benchmark(model, inputs, labels, settings=FAST, baseline_accuracy=1.0 * run_accuracy(model, inputs, labels).accuracy)
    environment = result.environment
    assert environment == {**capture_environment(), "load_average": environment["load_average"]}
    for key in ("cpu", "cores", "blas", "blas_threads", "numpy", "python", "git_commit"):
        assert key in environment
    assert environment["numpy"] == np.__version__ and environment["cores"] >= 1
    assert result.valid


# ---- logs and reports ------------------------------------------------------------------------
def test_logs_hold_every_query_and_the_outputs_that_accuracy_is_recomputed_from(trained, tmp_path):
    model, inputs, labels = trained
    result = benchmark(model, inputs, labels, ("SingleStream", "MultiStream"), FAST,
                       baseline_accuracy=0.9, name="mlp")
    paths = write_logs(result, tmp_path)
    summary = paths["summary"].read_text()
    assert "Scenario : SingleStream" in summary and "Scenario : MultiStream" in summary
    assert f"90.00 percentile latency (ns) : {result.performance['SingleStream'].p90_ms * 1e6:.0f}" in summary
    detail = paths["detail"].read_text().splitlines()
    queries = [json.loads(line[len(":::MLLOG "):]) for line in detail if '"key": "query"' in line]
    assert len(queries) == result.performance["SingleStream"].queries + result.performance["MultiStream"].queries
    rows = json.loads(paths["accuracy"].read_text())
    recomputed = np.array([np.frombuffer(bytes.fromhex(r["data"]), "<f4").argmax() for r in rows])
    assert np.mean(recomputed == labels) == pytest.approx(result.accuracy.accuracy)
    data = json.loads(paths["result"].read_text())
    assert data["valid"] and data["performance"]["SingleStream"]["p90_ms"] == result.performance["SingleStream"].p90_ms
    low, high = data["performance"]["SingleStream"]["median_ci_ms"]
    assert low <= data["performance"]["SingleStream"]["median_ms"] <= high
    report = paths["report"].read_text()
    assert "VALID" in report and "CV of the median: goal <= 5%" in report
    assert paths["latency_plot"].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


# ---- the suite -------------------------------------------------------------------------------
def test_pareto_front_keeps_only_the_undominated():
    points = [(0.98, 1.0, 100), (0.97, 0.5, 25), (0.96, 0.6, 30), (0.98, 2.0, 100), (0.99, 3.0, 400)]
    assert pareto_front(points) == [0, 1, 4]
    assert pareto_front([(0.9, 1.0, 10), (0.9, 1.0, 10)]) == [0, 1], "equal points do not dominate each other"
    assert pareto_front([(0.9, 1.0, None), (0.8, 2.0, None)]) == [0]


def test_suite_gives_ratios_a_comparison_and_a_report(trained, tmp_path):
    model, inputs, labels = trained
    slow = SystemUnderTest(lambda x: (time.sleep(0.0005), SystemUnderTest(model).predict(x))[1], "slow", size_bytes=10)
    suite = run_suite([("float32", model), slow], inputs, labels, settings=FAST, settle_s=0)  # NumPy only
    assert suite.results[1].baseline_accuracy == suite.results[0].accuracy.accuracy, "the reference is the baseline"
    ratios = suite.ratios()
    assert ratios["float32"]["p90_latency"] == 1.0 and ratios["slow"]["p90_latency"] > 1.0
    assert ratios["slow"]["size"] == pytest.approx(10 / state_bytes(model))
    assert suite.comparisons["slow"].significant and suite.comparisons["slow"].ratio > 1
    assert set(suite.pareto()) == {"float32", "slow"}, "faster against smaller: both on the front"
    paths = write_suite(suite, tmp_path)
    assert "slow" in paths["report"].read_text() and paths["pareto_plot"].read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "float32" / "mlperf_log_summary.txt").is_file()
    with pytest.raises(ValueError, match="names must differ"):
        run_suite([("a", model), ("a", model)], inputs, labels, settings=FAST)


def test_load_system_builds_the_model_and_measures_both_sizes(trained, tmp_path):
    model, inputs, labels = trained
    path = save_checkpoint(tmp_path / "model.safetensors", model)
    builder = tmp_path / "builders.py"
    builder.write_text("from tinytorch.core.layers import Linear, ReLU, Sequential\n"
                       "def build(hidden=16):\n    return Sequential(Linear(12, hidden), ReLU(), Linear(hidden, 3))\n")
    sut = load_system(f"{builder}:build", path, "loaded")
    assert sut.file_bytes == path.stat().st_size and sut.size_bytes == state_bytes(model)
    np.testing.assert_array_equal(run_accuracy(sut, inputs, labels).predictions, run_accuracy(model, inputs, labels).predictions)
    with pytest.raises(RuntimeError, match="shape"):
        load_system(f"{builder}:build", path, kwargs={"hidden": 8})
    with pytest.raises(AttributeError, match="no function"):
        load_system(f"{builder}:missing", path)


def test_pytorch_equivalent_gives_the_same_outputs(torch, trained):
    from benchmarks.torch_equivalent import torch_system

    model, inputs, labels = trained
    pytorch = torch_system(model, threads=1)
    np.testing.assert_allclose(pytorch.predict(inputs), SystemUnderTest(model).predict(inputs), rtol=1e-5, atol=1e-5)
    suite = run_suite([("tinytorch", model), pytorch], inputs, labels, settings=FAST)
    assert suite.results[1].accuracy.accuracy == suite.results[0].accuracy.accuracy
    assert suite.ratios()[pytorch.name]["p90_latency"] > 0
