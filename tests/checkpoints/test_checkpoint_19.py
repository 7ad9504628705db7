"""Checkpoint 19 (Benchmarking): Can I measure a system's performance fairly and reproducibly?

Capability: issue the same seeded queries to a system in MLPerf's SingleStream scenario, report
its nearest-rank p90 latency with a bootstrap interval of the median, score it over a whole test
split in accuracy mode, and call the run valid only when it keeps 99% of the baseline's accuracy.
"""

import numpy as np

from tinytorch.core.benchmarking import (
    BenchmarkSettings,
    benchmark,
    bootstrap_ci,
    percentile,
)
from tinytorch.core.layers import Linear, ReLU, Sequential
from tinytorch.core.tensor import manual_seed


def test_i_can_benchmark_a_model_fairly_and_reproducibly():
    manual_seed(0)
    model = Sequential(Linear(16, 32), ReLU(), Linear(32, 4))
    inputs = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    labels = model(inputs).numpy().argmax(axis=1)
    settings = BenchmarkSettings(min_duration_s=0.05, min_query_count=50, warmup_queries=2, seed=7)
    result = benchmark(model, inputs, labels, settings=settings, baseline_accuracy=1.0)
    run = result.performance["SingleStream"]
    assert result.valid and result.accuracy.accuracy == 1.0 and run.queries >= 50
    assert run.p90_ms == percentile(run.latencies_s * 1e3, 0.9)
    low, high = bootstrap_ci(run.latencies_s)
    assert low <= np.median(run.latencies_s) <= high
    assert result.size_bytes == (16 * 32 + 32 + 32 * 4 + 4) * 4

    always_zero = benchmark(lambda x: np.eye(4, dtype=np.float32)[np.zeros(len(x), int)], inputs, labels,
                            settings=settings, baseline_accuracy=1.0)
    assert not always_zero.valid, "a fast system that answers wrongly is not a valid result"
