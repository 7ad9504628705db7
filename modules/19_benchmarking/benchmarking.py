# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 19: Benchmarking
#
# *Can I measure a system's performance fairly and reproducibly?*
#
# Modules 14 to 18 made models smaller and faster. Each claim they made ("4x fewer bytes", "2x
# lower latency") is only as good as the measurement behind it, and measurements of computer
# systems are easy to get wrong: the first calls are slow, a background job steals a core, a
# faster median hides a slower tail, a smaller model quietly loses accuracy. MLPerf, the
# industry's benchmark, answers with rules: a **load generator** that issues queries the same way
# to every system, **scenarios** that say what "fast" means (one user waiting, a camera with
# eight streams, a server under random load, a batch job), a minimum duration and query count,
# an **accuracy run** over the whole test set that must reach 99% of the float32 reference, and
# logs that anyone can audit.
#
# The public course this design comes from *simulated* its benchmark: accuracy was
# `0.85 + i * 0.05` plus noise when a model had no evaluate method, random inputs were scored
# against random labels and 0.1 added, model size was `params * 4` (so quantization could never
# show), energy came from a formula, and no percentile was reported. Here every figure is
# measured: latency with `time.perf_counter` around each query, accuracy from the model's own
# predictions on the real test split, size as the bytes the model's arrays occupy.
#
# ## Learning objectives
# - Separate the **load generator** (which queries, when) from the **system under test** (how
#   it answers), as MLPerf Inference's LoadGen does, and implement its four scenarios:
#   SingleStream, MultiStream, Server (Poisson arrivals) and Offline.
# - Report tail latency the way MLPerf does (nearest-rank percentiles: p50, p90, p99) and explain
#   why the tail, not the mean, is what a user feels.
# - Put error bars on a measurement with the **bootstrap**, say whether two systems differ with a
#   **significance test** (Mann-Whitney U), and report the coefficient of variation of the median.
# - Run **accuracy mode** over the whole test split, apart from performance mode, and call a run
#   valid only when it reaches 99% of the float32 baseline.
# - Capture the environment that a figure depends on, write MLPerf-style logs, a JSON result, a
#   markdown report and plots, and find the **Pareto front** of accuracy, latency and size.
#
# ## How to work through this module
# Each step has a short explanation, a code cell with `### BEGIN SOLUTION` / `### END SOLUTION`
# (in your edition: a `raise NotImplementedError` to replace), and a test cell right after it.
# When every step passes:
#
# ```
# tito module complete 19
# ```
#
# exports your code to `tinytorch/core/benchmarking.py` and grades it with
# `tests/modules/test_19_benchmarking.py`. The command line `tito benchmark` runs this module's
# suite over the milestone models.

# %% [markdown]
# ## Mathematical foundations
#
# **Percentiles, nearest rank.** Sort the $n$ latencies $x_{(1)} \le \dots \le x_{(n)}$. The
# $q$-th percentile is the smallest latency that at least a fraction $q$ of the queries did not
# exceed:
#
# $$P_q = x_{(\lceil q n \rceil)}, \qquad P_{0.9} \text{ of 20 queries} = x_{(18)}.$$
#
# It is always a latency that really happened (no interpolation between two queries), which is
# how MLPerf's LoadGen reports it. With $n$ queries, $P_{0.99}$ rests on the slowest $n/100$ of
# them: 64 queries give a p99 that is just the slowest query or the one below it. This is why
# MLPerf asks for thousands of queries, and why we report how many we had.
#
# **Poisson arrivals.** A server's users do not wait for each other. If they arrive
# independently at rate $\lambda$ per second, the gaps between arrivals are exponential,
# $P(\text{gap} > t) = e^{-\lambda t}$, with mean $1/\lambda$. A system that answers one query in
# $s$ seconds is busy a fraction $\rho = \lambda s$ of the time; as $\rho \to 1$ queries queue up
# and the tail latency grows without bound (for M/D/1, the mean wait is
# $\frac{\rho s}{2(1-\rho)}$). The Server scenario's result is therefore *the highest rate whose
# p99 still meets a latency bound*, found by search.
#
# **Bootstrap.** We have one sample of $n$ latencies and a statistic $T$ (the median). Draw $n$
# latencies *with replacement* from the sample, compute $T$; repeat $B$ times. The spread of the
# $B$ values estimates how much $T$ would move if we measured again; the 2.5th and 97.5th
# percentiles of them are a 95% confidence interval (Efron, 1979). Their standard deviation over
# $T$ is the **coefficient of variation** of the median, $\mathrm{CV} = \sigma_T / T$.
#
# **Mann-Whitney U.** Are system A's latencies lower than system B's, or is it noise? Rank all
# $n_a + n_b$ latencies together; $U = R_a - n_a(n_a+1)/2$, where $R_a$ is the sum of A's ranks,
# counts the pairs in which A was slower. Without a difference $U$ has mean $n_a n_b / 2$ and, with
# ties, variance
#
# $$\sigma_U^2 = \frac{n_a n_b}{12}\left((n+1) - \frac{\sum_k (t_k^3 - t_k)}{n(n-1)}\right),$$
#
# so $z = (U - n_a n_b/2)/\sigma_U$ is close to a standard normal, and the two-sided p-value is
# $\operatorname{erfc}(|z|/\sqrt{2})$. It makes no assumption about the shape of the
# distributions, which for latencies (skewed, with a long tail) is the right choice.

# %%
#| export
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Module
from tinytorch.core.profiling import blas_library, blas_threads
from tinytorch.core.tensor import Tensor, check_positive_int
from tinytorch_base.files import write_atomic

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
# MLPerf Inference's rules, scaled down: its minimum run is 600 s; ours defaults to a few seconds
# so that a course machine can run every scenario in a minute. Every field can be changed.
DEFAULT_PERCENTILE = {"SingleStream": 0.90, "MultiStream": 0.99, "Server": 0.99, "Offline": None}
ACCURACY_TARGET = 0.99  # a valid run keeps 99% of the float32 baseline's accuracy (MLPerf's closed division)
MEDIAN_CV_GOAL = 0.05  # a median whose bootstrap CV is above 5% is reported as too noisy to compare

# %% [markdown]
# ## Step 1: the system under test
#
# The load generator must not know what it is timing. A **system under test** (SUT) is anything
# that takes a batch of inputs (a NumPy array, the samples along the first axis) and returns one
# output row per sample. A TinyTorch `Module` is one (it runs in `eval()` mode under `no_grad()`,
# so no graph is recorded while we time it); so is any Python callable — a quantized model from
# module 15, a compiled one from module 18, or PyTorch's model wrapped in a function. The SUT
# also knows its **size in bytes**: the sum of `nbytes` over its state's arrays, as they sit in
# memory. An int8 weight counts one byte per element, a float32 one four: the bytes show what
# quantization did, which `params * 4` never could.

# %%
#| export
def state_bytes(model):
    """Bytes of a model's state (parameters and buffers) as held in memory: sum of `nbytes`.

    Returns None for a callable without `state_dict()` (its size cannot be measured from here).
    """
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return None
    ### BEGIN SOLUTION
    return int(sum(np.asarray(array).nbytes for array in state_dict().values()))
    ### END SOLUTION


class SystemUnderTest:
    """What the load generator times: `predict(inputs) -> outputs`, one output row per sample.

    `model` is a TinyTorch Module (run in eval mode, under no_grad) or any callable taking a NumPy
    array and returning an array or a Tensor. `size_bytes` defaults to the model's measured state
    bytes; `file_bytes` is the size of the artifact it was loaded from, when there is one.
    """

    def __init__(self, model, name=None, size_bytes=None, file_bytes=None):
        if not callable(model):
            raise TypeError(f"SystemUnderTest: the model must be callable (a Module or a function), "
                            f"got {type(model).__name__}")
        self.model = model
        self.name = name or type(model).__name__
        self.size_bytes = state_bytes(model) if size_bytes is None else int(size_bytes)
        self.file_bytes = None if file_bytes is None else int(file_bytes)
        if isinstance(model, Module):
            model.eval()

    def predict(self, inputs):
        """Outputs of the model for a batch of inputs, as a NumPy array with one row per sample."""
        if isinstance(self.model, Module):
            with no_grad():
                outputs = self.model(Tensor(inputs))
        else:
            outputs = self.model(inputs)
        outputs = outputs.numpy() if isinstance(outputs, Tensor) else np.asarray(outputs)
        if outputs.ndim == 0 or outputs.shape[0] != len(inputs):
            raise ValueError(f"SystemUnderTest {self.name!r}: {len(inputs)} inputs gave outputs of shape "
                             f"{outputs.shape}; a system must return one output row per input sample")
        return outputs


# %%
def _tiny_classifier(seed=0):
    """A 2-layer MLP for the unit tests: 20 features, 3 classes."""
    from tinytorch.core.layers import Linear, ReLU, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(seed)
    return Sequential(Linear(20, 16), ReLU(), Linear(16, 3))


def test_unit_system_under_test():
    model = _tiny_classifier()
    sut = SystemUnderTest(model, "mlp")
    assert sut.size_bytes == (20 * 16 + 16 + 16 * 3 + 3) * 4, "float32 state: 4 bytes per element"
    outputs = sut.predict(np.zeros((5, 20), dtype=np.float32))
    assert outputs.shape == (5, 3) and isinstance(outputs, np.ndarray)
    halved = SystemUnderTest(lambda x: x[:, :3].astype(np.float16), "callable")
    assert halved.size_bytes is None and halved.predict(np.ones((2, 20))).dtype == np.float16
    print("SystemUnderTest: Module and callable answer with one row per sample; bytes measured")


test_unit_system_under_test()

# %% [markdown]
# ## Step 2: percentiles, and the settings of a run
#
# Write the nearest-rank percentile of the foundations. Then the settings: a scenario, a minimum
# duration and query count (a run ends only when both are reached), warm-up queries that are run
# but not timed (the first calls pay for imports, allocator growth, BLAS thread start-up), and a
# seed that fixes the order in which samples are drawn, so that two systems see the same queries.

# %%
#| export
def percentile(values, q):
    """Nearest-rank percentile: the smallest value that at least a fraction q (0 < q <= 1) of `values` do not exceed.

    TODO: sort the values and return the one at rank ceil(q * n) (1-based).
    HINT: `math.ceil(q * n) - 1` is the 0-based index; guard against q * n rounding to 0.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("percentile: no values (the run recorded no queries)")
    if not 0 < q <= 1:
        raise ValueError(f"percentile: q is a fraction in (0, 1], got {q!r} (use 0.9 for p90)")
    ### BEGIN SOLUTION
    rank = max(1, math.ceil(q * values.size - 1e-9))
    return float(np.sort(values)[rank - 1])
    ### END SOLUTION


@dataclass(frozen=True)
class BenchmarkSettings:
    """How a performance run issues its queries (MLPerf's TestSettings, scaled down).

    A run ends when it has lasted `min_duration_s` and issued `min_query_count` queries (both).
    `max_duration_s` stops a run that a slow system would make endless; it is then marked INVALID.
    """

    scenario: str = "SingleStream"
    min_duration_s: float = 2.0
    min_query_count: int = 100
    max_duration_s: float = 120.0
    warmup_queries: int = 10
    seed: int = 0
    samples_per_query: int = 8  # MultiStream: MLPerf's 8 streams
    target_qps: float | None = None  # Server: the arrival rate of one run
    latency_bound_ms: float = 10.0  # Server: the p99 a rate must meet
    offline_batch_size: int = 64  # Offline: the batch the system is fed

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"BenchmarkSettings: scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        for name in ("min_duration_s", "max_duration_s", "latency_bound_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"BenchmarkSettings: {name} must be a positive number of seconds "
                                 f"(milliseconds for latency_bound_ms), got {value!r}")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(f"BenchmarkSettings: max_duration_s ({self.max_duration_s}) is below "
                             f"min_duration_s ({self.min_duration_s})")
        for name in ("min_query_count", "samples_per_query", "offline_batch_size"):
            check_positive_int("BenchmarkSettings", name, getattr(self, name))
        if not isinstance(self.warmup_queries, int) or self.warmup_queries < 0:
            raise ValueError(f"BenchmarkSettings: warmup_queries must be a whole number >= 0, got {self.warmup_queries!r}")
        if self.target_qps is not None and not (math.isfinite(self.target_qps) and self.target_qps > 0):
            raise ValueError(f"BenchmarkSettings: target_qps must be a positive rate (queries/s), got {self.target_qps!r}")


# %%
def test_unit_percentile_and_settings():
    latencies = list(range(1, 21))  # 1..20
    assert percentile(latencies, 0.9) == 18, "nearest rank: ceil(0.9 * 20) = 18th value"
    assert percentile(latencies, 0.5) == 10 and percentile(latencies, 1.0) == 20
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([3, 1, 2], 0.01) == 1, "a tiny q still picks the first value"
    try:
        BenchmarkSettings(scenario="Batch")
    except ValueError as error:
        assert "SingleStream" in str(error)
    else:
        raise AssertionError("an unknown scenario must be refused")
    print("percentile: nearest rank; settings checked")


test_unit_percentile_and_settings()

# %% [markdown]
# ## Step 3: the load generator
#
# One function per scenario, all sharing one loop shape: draw the next samples from a seeded
# order, issue the query, note when it was issued and when it completed. Every latency is
# `time.perf_counter()` after the answer minus `time.perf_counter()` when the query *arrived*:
#
# - **SingleStream**: one sample per query; the next query is issued when the last completes. The
#   metric is the 90th-percentile latency (a phone's camera, one user).
# - **MultiStream**: `samples_per_query` (8) samples per query, back to back; metric p99.
# - **Server**: queries arrive at Poisson times, at `target_qps`. Our system answers one query at
#   a time, so a query that arrives while another runs *waits*, and its latency includes the wait:
#   this is what a real server's users feel. The loop sleeps until the next arrival when the
#   system is idle.
# - **Offline**: all samples at once (in batches of `offline_batch_size`); the metric is
#   throughput, samples per second.
#
# Write the SingleStream loop; the other three are given and follow its shape.

# %%
#| export
@dataclass
class PerformanceResult:
    """What one performance run measured: the latency of every query, in seconds, and the run's span."""

    scenario: str
    settings: BenchmarkSettings
    latencies_s: np.ndarray  # per query, completion minus arrival
    issued_s: np.ndarray  # per query, arrival time since the run began
    samples_per_query: int
    duration_s: float
    completed: bool = True  # False when max_duration_s stopped the run before its minimums
    target_qps: float | None = None

    @property
    def queries(self):
        return int(self.latencies_s.size)

    @property
    def samples(self):
        return self.queries * self.samples_per_query

    def latency_ms(self, q):
        """The q-th percentile of the query latencies, in milliseconds (nearest rank)."""
        return percentile(self.latencies_s, q) * 1e3

    @property
    def p50_ms(self):
        return self.latency_ms(0.50)

    @property
    def p90_ms(self):
        return self.latency_ms(0.90)

    @property
    def p99_ms(self):
        return self.latency_ms(0.99)

    @property
    def throughput(self):
        """Samples per second over the whole run."""
        return self.samples / self.duration_s

    @property
    def metric(self):
        """(name, value, unit) of the scenario's result, as MLPerf reports it."""
        if self.scenario == "SingleStream":
            return "90th percentile latency", self.p90_ms, "ms"
        if self.scenario == "MultiStream":
            return "99th percentile latency", self.p99_ms, "ms"
        if self.scenario == "Server":
            return "scheduled queries per second", self.target_qps, "queries/s"
        return "samples per second", self.throughput, "samples/s"

    @property
    def valid(self):
        """The minimums were reached (and, for Server, the p99 met the latency bound)."""
        if not self.completed:
            return False
        if self.scenario == "Server":
            return self.p99_ms <= self.settings.latency_bound_ms
        return True


class _SampleOrder:
    """Sample indices in a seeded random order, reshuffled each time the set is used up."""

    def __init__(self, count, seed):
        self.count = check_positive_int("load generator", "number of samples", count)
        self.rng = np.random.default_rng(seed)
        self.order, self.position = self.rng.permutation(count), 0

    def take(self, size):
        chosen = []
        while len(chosen) < size:
            if self.position == self.count:
                self.order, self.position = self.rng.permutation(self.count), 0
            step = min(size - len(chosen), self.count - self.position)
            chosen.extend(self.order[self.position:self.position + step])
            self.position += step
        return np.asarray(chosen)


def _warm_up(sut, inputs, settings, size):
    order = _SampleOrder(len(inputs), settings.seed + 1)  # not the timed run's order
    for _ in range(settings.warmup_queries):
        sut.predict(inputs[order.take(size)])


def _enough(settings, elapsed, queries):
    return elapsed >= settings.min_duration_s and queries >= settings.min_query_count


def run_single_stream(sut, inputs, settings):
    """SingleStream: one sample per query, the next issued when the last completes.

    TODO: loop until `_enough(settings, elapsed, queries)` (or `elapsed >= settings.max_duration_s`,
          which marks the run incomplete): take one sample index from `order`, time
          `sut.predict(inputs[indices])` with time.perf_counter, and record the arrival time
          (relative to `start`) in `issued` and the latency in `latencies`.
    HINT: `order.take(1)` gives an index array of length 1, so the batch keeps its first axis.
    """
    order = _SampleOrder(len(inputs), settings.seed)
    _warm_up(sut, inputs, settings, 1)
    latencies, issued = [], []
    completed = True
    start = time.perf_counter()
    ### BEGIN SOLUTION
    while True:
        now = time.perf_counter()
        if _enough(settings, now - start, len(latencies)):
            break
        if now - start >= settings.max_duration_s:
            completed = False
            break
        indices = order.take(1)
        arrival = time.perf_counter()
        sut.predict(inputs[indices])
        latencies.append(time.perf_counter() - arrival)
        issued.append(arrival - start)
    ### END SOLUTION
    duration = time.perf_counter() - start
    return PerformanceResult("SingleStream", settings, np.asarray(latencies), np.asarray(issued), 1, duration, completed)


def run_multi_stream(sut, inputs, settings):
    """MultiStream: `samples_per_query` samples per query, issued back to back."""
    size = settings.samples_per_query
    order = _SampleOrder(len(inputs), settings.seed)
    _warm_up(sut, inputs, settings, size)
    latencies, issued, completed = [], [], True
    start = time.perf_counter()
    while not _enough(settings, time.perf_counter() - start, len(latencies)):
        if time.perf_counter() - start >= settings.max_duration_s:
            completed = False
            break
        indices = order.take(size)
        arrival = time.perf_counter()
        sut.predict(inputs[indices])
        latencies.append(time.perf_counter() - arrival)
        issued.append(arrival - start)
    duration = time.perf_counter() - start
    return PerformanceResult("MultiStream", settings, np.asarray(latencies), np.asarray(issued), size, duration, completed)


def run_server(sut, inputs, settings):
    """Server: one-sample queries arriving at Poisson times at `settings.target_qps`; a query that
    arrives while the system is busy waits, and its latency counts the wait."""
    if settings.target_qps is None:
        raise ValueError("run_server: set BenchmarkSettings(target_qps=...), the arrival rate to test, "
                         "or use find_server_rate to search for the highest rate that meets the bound")
    order = _SampleOrder(len(inputs), settings.seed)
    gaps = np.random.default_rng(settings.seed + 2)
    _warm_up(sut, inputs, settings, 1)
    latencies, issued, completed = [], [], True
    start = time.perf_counter()
    arrival = 0.0  # seconds since start
    while not (arrival >= settings.min_duration_s and len(latencies) >= settings.min_query_count):
        arrival += gaps.exponential(1.0 / settings.target_qps)
        if arrival >= settings.max_duration_s:
            completed = False
            break
        if time.perf_counter() - start >= settings.max_duration_s:  # a queue longer than the run may last
            completed = False
            break
        idle = start + arrival - time.perf_counter()
        if idle > 0:
            time.sleep(idle)  # the system waits for its next user
        sut.predict(inputs[order.take(1)])
        latencies.append(time.perf_counter() - (start + arrival))
        issued.append(arrival)
    duration = time.perf_counter() - start
    return PerformanceResult("Server", settings, np.asarray(latencies), np.asarray(issued), 1, duration,
                             completed, target_qps=settings.target_qps)


def run_offline(sut, inputs, settings):
    """Offline: every sample in one query, fed in batches; repeated until the minimum duration.
    A query here is one pass over the whole set; its latency is that pass's time."""
    order = _SampleOrder(len(inputs), settings.seed)
    batch = settings.offline_batch_size
    _warm_up(sut, inputs, replace(settings, warmup_queries=min(settings.warmup_queries, 2)), batch)
    latencies, issued, completed = [], [], True
    start = time.perf_counter()
    while not (time.perf_counter() - start >= settings.min_duration_s and latencies):
        if time.perf_counter() - start >= settings.max_duration_s:
            completed = False
            break
        indices = order.take(len(inputs))
        arrival = time.perf_counter()
        for first in range(0, len(indices), batch):
            sut.predict(inputs[indices[first:first + batch]])
        latencies.append(time.perf_counter() - arrival)
        issued.append(arrival - start)
    duration = time.perf_counter() - start
    return PerformanceResult("Offline", settings, np.asarray(latencies), np.asarray(issued), len(inputs),
                             duration, completed)


RUNNERS = {"SingleStream": run_single_stream, "MultiStream": run_multi_stream, "Server": run_server,
           "Offline": run_offline}


def run_performance(sut, inputs, settings=None):
    """Performance mode: issue the settings' scenario to `sut` over `inputs` (the samples on axis 0)."""
    settings = settings or BenchmarkSettings()
    inputs = np.asarray(inputs)
    if inputs.ndim == 0 or len(inputs) == 0:
        raise ValueError("run_performance: inputs must hold at least one sample along the first axis")
    if not isinstance(sut, SystemUnderTest):
        sut = SystemUnderTest(sut)
    return RUNNERS[settings.scenario](sut, inputs, settings)


# %%
def test_unit_single_stream():
    sut = SystemUnderTest(_tiny_classifier(), "mlp")
    inputs = np.random.default_rng(0).standard_normal((32, 20)).astype(np.float32)
    settings = BenchmarkSettings(min_duration_s=0.05, min_query_count=40, warmup_queries=2)
    result = run_performance(sut, inputs, settings)
    assert result.queries >= 40 and result.duration_s >= 0.05 and result.valid
    assert np.all(result.latencies_s > 0) and np.all(np.diff(result.issued_s) > 0)
    assert result.p50_ms <= result.p90_ms <= result.p99_ms
    assert result.metric[0] == "90th percentile latency"
    print(f"SingleStream: {result.queries} queries, p90 {result.p90_ms:.3f} ms")


test_unit_single_stream()

# %% [markdown]
# ## Step 4: the Server scenario's search
#
# A Server run at one rate says only whether that rate was good enough. The scenario's result is
# the *highest* rate whose p99 latency meets the bound. Tail latency grows with the rate (more
# queueing), so the answer is found by bisection: start from the system's capacity (one over its
# median service time), keep a rate known to pass and one known to fail, and try their geometric
# mean a few times (the two may be ten times apart, so we halve their ratio, not their gap). Each trial is a full Server run with its own minimum duration; the search reports every
# trial, so a reader can see the curve it walked along.

# %%
#| export
@dataclass
class ServerSearch:
    """The Server scenario's search: the best passing run (or None) and every trial run."""

    best: PerformanceResult | None
    trials: list

    @property
    def rate(self):
        return None if self.best is None else self.best.target_qps


def find_server_rate(sut, inputs, settings=None, iterations=5):
    """Highest Poisson arrival rate whose p99 latency meets `settings.latency_bound_ms`, by bisection.

    TODO: measure the median service time with a short SingleStream run; the capacity is its
          inverse. Try 0.1 x capacity (if that fails, no rate passes: return ServerSearch(None, trials)),
          then bisect between a passing rate and a failing one (start: 1.2 x capacity, doubled while
          it still passes) for `iterations` steps, each a `run_server` at the geometric middle rate.
    HINT: `replace(settings, scenario="Server", target_qps=rate)` makes the settings of one trial;
          `result.valid` says whether it met the bound.
    """
    settings = settings or BenchmarkSettings(scenario="Server")
    check_positive_int("find_server_rate", "iterations", iterations)
    if not isinstance(sut, SystemUnderTest):
        sut = SystemUnderTest(sut)
    inputs = np.asarray(inputs)
    ### BEGIN SOLUTION
    probe = run_single_stream(sut, inputs, replace(settings, scenario="SingleStream",
                                                    min_duration_s=min(settings.min_duration_s, 0.5),
                                                    min_query_count=min(settings.min_query_count, 50)))
    capacity = 1.0 / statistics.median(probe.latencies_s)
    trials = []

    def trial(rate):
        result = run_server(sut, inputs, replace(settings, scenario="Server", target_qps=rate))
        trials.append(result)
        return result

    low = trial(0.1 * capacity)
    if not low.valid:
        return ServerSearch(None, trials)
    best, high_rate = low, 1.2 * capacity
    while trial(high_rate).valid and high_rate < 100 * capacity:
        best, high_rate = trials[-1], high_rate * 2
    low_rate = best.target_qps
    for _ in range(iterations):
        middle = trial(math.sqrt(low_rate * high_rate))  # halve the ratio: the rates span decades
        if middle.valid:
            best, low_rate = middle, middle.target_qps
        else:
            high_rate = middle.target_qps
    return ServerSearch(best, trials)
    ### END SOLUTION


# %%
def test_unit_server_search():
    def sleeper(x):  # a system with a known service time of about 3 ms per query: capacity ~333/s
        time.sleep(0.003)
        return x[:, :3]

    sut = SystemUnderTest(sleeper, "sleeper")
    inputs = np.zeros((8, 20), dtype=np.float32)
    settings = BenchmarkSettings(scenario="Server", min_duration_s=0.15, min_query_count=20,
                                 warmup_queries=1, latency_bound_ms=30.0)
    search = find_server_rate(sut, inputs, settings, iterations=3)
    assert search.best is not None and search.best.valid
    assert all(t.scenario == "Server" for t in search.trials) and len(search.trials) >= 4
    assert search.rate < 2 / 0.003, "at twice its capacity a queue 150 ms deep builds in 0.15 s"
    failing = [t for t in search.trials if not t.valid]
    assert failing and min(t.target_qps for t in failing) > search.rate
    print(f"Server: {search.rate:.0f} queries/s meet p99 <= 30 ms ({len(search.trials)} trials)")


test_unit_server_search()

# %% [markdown]
# ## Step 5: statistics done right
#
# A median on its own says nothing about how sure we are of it. Write the **bootstrap
# confidence interval** of a statistic (resample with replacement, take the percentiles of the
# statistic over the resamples), and the **Mann-Whitney U test** of the foundations with its tie
# correction. `compare_latencies` puts them together: the ratio of the two medians, its
# bootstrap interval, and the p-value.

# %%
#| export
def _bootstrap_statistics(values, statistic, resamples, seed):
    """The statistic of `resamples` resamples of `values` (with replacement), in chunks to bound memory."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("bootstrap: no values to resample")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // values.size)
    out = []
    for first in range(0, resamples, chunk):
        rows = min(chunk, resamples - first)
        out.append(statistic(values[rng.integers(0, values.size, size=(rows, values.size))], axis=1))
    return np.concatenate(out)


def bootstrap_ci(values, statistic=np.median, confidence=0.95, resamples=1000, seed=0):
    """(low, high): the percentile bootstrap confidence interval of `statistic(values)`.

    `statistic(array, axis=1)` must reduce each row (np.median, np.mean, ...).

    TODO: compute the statistic of `resamples` resamples with `_bootstrap_statistics`, and return
          its (1 - confidence) / 2 and (1 + confidence) / 2 quantiles.
    HINT: np.quantile(stats, [lower, upper]).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_ci: confidence is a fraction in (0, 1), got {confidence!r}")
    check_positive_int("bootstrap_ci", "resamples", resamples)
    ### BEGIN SOLUTION
    stats = _bootstrap_statistics(values, statistic, resamples, seed)
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
    ### END SOLUTION


def median_cv(values, resamples=1000, seed=0):
    """Coefficient of variation of the median: bootstrap standard deviation of the median over the median."""
    stats = _bootstrap_statistics(values, np.median, resamples, seed)
    return float(np.std(stats) / np.median(np.asarray(values, dtype=np.float64)))


def _average_ranks(values):
    """Ranks 1..n of `values`, tied values sharing the average of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse], counts


def mann_whitney_u(a, b):
    """(U, two-sided p-value) of the Mann-Whitney U test that `a` and `b` come from one distribution.

    U counts the pairs (x in a, y in b) with x > y (ties count one half). The p-value uses the
    normal approximation with the tie correction, good for the tens of samples and more of a run.

    TODO: rank all values together (`_average_ranks`), U = (sum of a's ranks) - n_a (n_a + 1) / 2;
          z = (U - n_a n_b / 2) / sigma with the tie-corrected sigma of the foundations;
          p = erfc(|z| / sqrt(2)). If sigma is 0 (every value equal), p is 1.
    HINT: `_average_ranks` also returns the size of each group of ties (t_k).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        raise ValueError(f"mann_whitney_u: each sample needs at least 2 values, got {a.size} and {b.size}")
    ### BEGIN SOLUTION
    n_a, n_b = a.size, b.size
    n = n_a + n_b
    ranks, ties = _average_ranks(np.concatenate([a, b]))
    u = ranks[:n_a].sum() - n_a * (n_a + 1) / 2
    variance = n_a * n_b / 12 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1)))
    if variance <= 0:
        return float(u), 1.0
    z = (u - n_a * n_b / 2) / math.sqrt(variance)
    return float(u), float(math.erfc(abs(z) / math.sqrt(2)))
    ### END SOLUTION


@dataclass(frozen=True)
class Comparison:
    """System a against system b: ratio of median latencies (a / b), its bootstrap interval, the U test."""

    ratio: float
    ratio_ci: tuple
    p_value: float
    alpha: float = 0.05

    @property
    def significant(self):
        return self.p_value < self.alpha


def compare_latencies(a, b, confidence=0.95, resamples=1000, seed=0, alpha=0.05):
    """Compare two samples of latencies: median(a) / median(b) with a bootstrap interval, and a U test."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    _, p_value = mann_whitney_u(a, b)
    ratios = (_bootstrap_statistics(a, np.median, resamples, seed)
              / _bootstrap_statistics(b, np.median, resamples, seed + 1))
    low, high = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Comparison(float(np.median(a) / np.median(b)), (float(low), float(high)), p_value, alpha)


# %%
def test_unit_statistics():
    rng = np.random.default_rng(0)
    sample = rng.lognormal(0.0, 0.3, size=400)
    low, high = bootstrap_ci(sample, seed=1)
    assert low < np.median(sample) < high and high - low < 0.2
    assert 0 < median_cv(sample) < 0.05
    u, p = mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])
    assert u == 0 and p < 0.05, "every a below every b: U = 0"
    _, p_same = mann_whitney_u(sample[:200], sample[200:])
    assert p_same > 0.01, "two halves of one sample do not differ"
    slower = compare_latencies(sample * 1.5, sample[::-1].copy(), seed=2)
    assert slower.significant and slower.ratio_ci[0] < 1.5 < slower.ratio_ci[1]
    print(f"bootstrap CI ({low:.3f}, {high:.3f}); U test p={p:.4f}; ratio {slower.ratio:.2f}")


test_unit_statistics()

# %% [markdown]
# ## Step 6: accuracy mode, validity, and the environment
#
# Performance mode never looks at an answer; **accuracy mode** runs every sample of the test
# split once, in order, and keeps the predictions. A run is **valid** only when its accuracy is at
# least 99% of the float32 baseline's (MLPerf's closed division), so a system cannot buy speed
# with wrong answers. The two modes are separate runs, as in MLPerf: timing the accuracy run
# would mix batch sizes and the cost of keeping outputs into the latency.
#
# A figure also depends on where it was measured. `capture_environment` records the CPU model,
# the cores, the BLAS library and its thread count (module 14's `blas_library` and
# `blas_threads`), NumPy's and Python's versions, and the git commit of the code that ran.

# %%
#| export
@dataclass
class AccuracyResult:
    """Accuracy mode over a whole split: each sample's predicted class and output row, in order."""

    predictions: np.ndarray
    outputs: np.ndarray
    accuracy: float
    samples: int


def run_accuracy(sut, inputs, labels, batch_size=256):
    """Accuracy mode: run every sample once, in order, and score the predicted classes (argmax).

    TODO: feed `inputs` in batches of `batch_size` to `sut.predict`, keep the output rows,
          take the argmax of each row as its class, and compare with `labels`.
    HINT: np.concatenate the output batches; accuracy is the mean of predictions == labels.
    """
    if not isinstance(sut, SystemUnderTest):
        sut = SystemUnderTest(sut)
    inputs, labels = np.asarray(inputs), np.asarray(labels).ravel()
    if len(inputs) != len(labels) or len(labels) == 0:
        raise ValueError(f"run_accuracy: {len(inputs)} inputs and {len(labels)} labels; "
                         "give one label per input, and at least one")
    check_positive_int("run_accuracy", "batch_size", batch_size)
    ### BEGIN SOLUTION
    outputs = np.concatenate([sut.predict(inputs[first:first + batch_size])
                              for first in range(0, len(inputs), batch_size)])
    predictions = outputs.reshape(len(inputs), -1).argmax(axis=1).astype(np.int64)
    return AccuracyResult(predictions, outputs, float(np.mean(predictions == labels)), len(labels))
    ### END SOLUTION


def accuracy_is_valid(accuracy, baseline_accuracy, target=ACCURACY_TARGET):
    """True when `accuracy` reaches `target` (0.99) of the float32 baseline's accuracy."""
    return accuracy >= target * baseline_accuracy - 1e-12


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit():
    """(commit, dirty) of the git checkout that holds this package, or (None, None) outside one."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10,
                                check=False)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=30, check=False)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def capture_environment():
    """The facts a latency depends on: CPU, cores, BLAS and its threads, versions, git commit."""
    threads, source = blas_threads()
    commit, dirty = _git_commit()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "blas": blas_library(),
        "blas_threads": threads,
        "blas_threads_source": source,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# %%
def test_unit_accuracy_and_environment():
    model = _tiny_classifier()
    inputs = np.random.default_rng(1).standard_normal((50, 20)).astype(np.float32)
    from tinytorch.core.tensor import Tensor as T

    labels = model(T(inputs)).numpy().argmax(axis=1)
    labels[:5] = (labels[:5] + 1) % 3  # five wrong labels
    result = run_accuracy(SystemUnderTest(model), inputs, labels, batch_size=16)
    assert result.samples == 50 and abs(result.accuracy - 0.9) < 1e-12
    assert accuracy_is_valid(0.891, 0.9) and not accuracy_is_valid(0.890, 0.9)
    environment = capture_environment()
    assert environment["cores"] >= 1 and environment["numpy"] == np.__version__
    print(f"accuracy {result.accuracy:.2f}; environment: {environment['cpu']}, {environment['blas']}")


test_unit_accuracy_and_environment()

# %% [markdown]
# ## Step 7: one benchmark run, its logs and its report
#
# `benchmark` runs accuracy mode once and each requested scenario in performance mode, and puts
# the figures together with the environment. `write_logs` keeps them as MLPerf does:
#
# - `mlperf_log_summary.txt`: the scenario, its result, the percentiles, the settings, and
#   whether the run is VALID (and why not);
# - `mlperf_log_detail.txt`: one `:::MLLOG {json}` line per event (settings, and every query's
#   arrival and latency), which is what an auditor replays;
# - `mlperf_log_accuracy.json`: every sample's index and output row (hex of the float32 bytes,
#   as LoadGen writes it), from which accuracy can be recomputed;
#
# and adds `result.json` (every figure, machine-readable), `report.md` (for a person) and
# `latency.png` (the latency distribution with p50/p90/p99 marked). Every file is written
# atomically.

# %%
#| export
@dataclass
class BenchmarkResult:
    """One system's benchmark: accuracy mode, the performance runs, size, validity, environment."""

    name: str
    performance: dict  # scenario -> PerformanceResult
    accuracy: AccuracyResult | None
    baseline_accuracy: float | None
    size_bytes: int | None
    file_bytes: int | None
    environment: dict
    server_search: ServerSearch | None = None
    target: float = ACCURACY_TARGET

    @property
    def accuracy_valid(self):
        if self.accuracy is None or self.baseline_accuracy is None:
            return None
        return accuracy_is_valid(self.accuracy.accuracy, self.baseline_accuracy, self.target)

    @property
    def valid(self):
        """Every performance run valid, and accuracy at the target when a baseline was given."""
        return all(r.valid for r in self.performance.values()) and self.accuracy_valid is not False

    def invalid_reasons(self):
        reasons = [f"{s}: stopped by max_duration_s before its minimum duration and query count"
                   for s, r in self.performance.items() if not r.completed]
        reasons += [f"Server: p99 {r.p99_ms:.3f} ms exceeds the bound {r.settings.latency_bound_ms} ms"
                    for s, r in self.performance.items() if s == "Server" and r.completed and not r.valid]
        if self.accuracy_valid is False:
            reasons.append(f"accuracy {self.accuracy.accuracy:.4%} is below {self.target:.0%} of the "
                           f"baseline's {self.baseline_accuracy:.4%}")
        return reasons

    def to_dict(self):
        performance = {}
        for scenario, run in self.performance.items():
            name, value, unit = run.metric
            performance[scenario] = {
                "metric": name, "value": value, "unit": unit, "valid": run.valid,
                "queries": run.queries, "samples": run.samples, "duration_s": run.duration_s,
                "p50_ms": run.p50_ms, "p90_ms": run.p90_ms, "p99_ms": run.p99_ms,
                "median_ms": float(np.median(run.latencies_s) * 1e3),
                "median_ci_ms": [v * 1e3 for v in bootstrap_ci(run.latencies_s)],
                "median_cv": median_cv(run.latencies_s),
                "throughput_samples_per_s": run.throughput,
                "settings": {k: v for k, v in run.settings.__dict__.items()},
            }
        if self.server_search is not None:
            performance.setdefault("Server", {})["trials"] = [
                {"target_qps": t.target_qps, "p99_ms": t.p99_ms, "valid": t.valid} for t in self.server_search.trials]
        return {
            "name": self.name,
            "valid": self.valid,
            "invalid_reasons": self.invalid_reasons(),
            "accuracy": None if self.accuracy is None else self.accuracy.accuracy,
            "accuracy_samples": None if self.accuracy is None else self.accuracy.samples,
            "baseline_accuracy": self.baseline_accuracy,
            "accuracy_target": self.target,
            "size_bytes": self.size_bytes,
            "file_bytes": self.file_bytes,
            "performance": performance,
            "environment": self.environment,
        }


def benchmark(sut, inputs, labels=None, scenarios=("SingleStream",), settings=None, baseline_accuracy=None,
              name=None, search_iterations=4):
    """Accuracy mode (when labels are given), then performance mode for each scenario.

    Server searches for its highest passing rate (find_server_rate) unless settings.target_qps is set.
    """
    settings = settings or BenchmarkSettings()
    if not isinstance(sut, SystemUnderTest):
        sut = SystemUnderTest(sut, name)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        raise ValueError(f"benchmark: scenarios must be some of {', '.join(SCENARIOS)}, got {list(scenarios)}")
    inputs = np.asarray(inputs)
    accuracy = None if labels is None else run_accuracy(sut, inputs, labels)
    performance, search = {}, None
    for scenario in scenarios:
        scenario_settings = replace(settings, scenario=scenario)
        if scenario == "Server" and settings.target_qps is None:
            search = find_server_rate(sut, inputs, scenario_settings, search_iterations)
            performance[scenario] = search.best if search.best is not None else search.trials[0]
        else:
            performance[scenario] = run_performance(sut, inputs, scenario_settings)
    return BenchmarkResult(name or sut.name, performance, accuracy, baseline_accuracy, sut.size_bytes,
                           sut.file_bytes, capture_environment(), search)


def _mllog(key, value, **extra):
    return ":::MLLOG " + json.dumps({"key": key, "value": value, **extra}, sort_keys=True)


def summary_text(result):
    """The text of mlperf_log_summary.txt for one benchmark result."""
    lines = ["=" * 64, f"TinyTorch benchmark summary: {result.name}", "=" * 64]
    for scenario, run in result.performance.items():
        name, value, unit = run.metric
        lines += [f"Scenario : {scenario}", f"Result is : {'VALID' if run.valid else 'INVALID'}",
                  f"{name} ({unit}) : {value:.6g}" if value is not None else f"{name} : none",
                  f"Completed queries : {run.queries}", f"Completed samples : {run.samples}",
                  f"Duration (s) : {run.duration_s:.3f}", f"Samples per second : {run.throughput:.6g}",
                  f"50.00 percentile latency (ns) : {run.p50_ms * 1e6:.0f}",
                  f"90.00 percentile latency (ns) : {run.p90_ms * 1e6:.0f}",
                  f"99.00 percentile latency (ns) : {run.p99_ms * 1e6:.0f}",
                  f"min_duration (s) : {run.settings.min_duration_s}",
                  f"min_query_count : {run.settings.min_query_count}",
                  f"warmup_queries : {run.settings.warmup_queries}", f"seed : {run.settings.seed}", "-" * 64]
    if result.accuracy is not None:
        lines.append(f"Accuracy : {result.accuracy.accuracy:.4%} over {result.accuracy.samples} samples")
    if result.baseline_accuracy is not None:
        lines.append(f"Accuracy target : {result.target:.0%} of {result.baseline_accuracy:.4%}"
                     f" -> {'met' if result.accuracy_valid else 'NOT met'}")
    if result.size_bytes is not None:
        lines.append(f"Model state bytes : {result.size_bytes}")
    if result.file_bytes is not None:
        lines.append(f"Model file bytes : {result.file_bytes}")
    lines.append(f"Overall result : {'VALID' if result.valid else 'INVALID'}")
    lines += [f"  invalid because {reason}" for reason in result.invalid_reasons()]
    return "\n".join(lines) + "\n"


def detail_text(result):
    """The text of mlperf_log_detail.txt: settings, environment, and every query as :::MLLOG lines."""
    lines = [_mllog("environment", result.environment)]
    for scenario, run in result.performance.items():
        lines.append(_mllog("effective_settings", {k: v for k, v in run.settings.__dict__.items()}, scenario=scenario))
        lines += [_mllog("query", {"issued_s": float(t), "latency_s": float(lat)}, scenario=scenario, query=i)
                  for i, (t, lat) in enumerate(zip(run.issued_s, run.latencies_s))]
        lines.append(_mllog("result_validity", "VALID" if run.valid else "INVALID", scenario=scenario))
    return "\n".join(lines) + "\n"


def accuracy_log(accuracy):
    """mlperf_log_accuracy.json's content: [{"qsl_idx": i, "data": hex of the float32 output row}]."""
    rows = np.ascontiguousarray(accuracy.outputs.reshape(accuracy.samples, -1), dtype="<f4")
    return [{"qsl_idx": i, "data": row.tobytes().hex()} for i, row in enumerate(rows)]


def markdown_report(result):
    """A person's report: validity, accuracy, size, and each scenario's percentiles with intervals."""
    data = result.to_dict()
    env = result.environment
    lines = [f"# Benchmark: {result.name}", "",
             f"**Result: {'VALID' if result.valid else 'INVALID'}**" +
             ("" if result.valid else " (" + "; ".join(result.invalid_reasons()) + ")"), ""]
    if result.accuracy is not None:
        lines.append(f"- accuracy: {result.accuracy.accuracy:.4%} over {result.accuracy.samples} samples"
                     + (f" (baseline {result.baseline_accuracy:.4%}, target {result.target:.0%} of it)"
                        if result.baseline_accuracy is not None else ""))
    if result.size_bytes is not None:
        lines.append(f"- model state: {result.size_bytes:,} bytes (measured nbytes)")
    if result.file_bytes is not None:
        lines.append(f"- model file: {result.file_bytes:,} bytes")
    lines += ["", "| scenario | metric | value | p50 ms | p90 ms | p99 ms | median 95% CI ms | CV of median | queries |",
              "|---|---|---|---|---|---|---|---|---|"]
    for scenario, figures in data["performance"].items():
        if "metric" not in figures:
            continue
        low, high = figures["median_ci_ms"]
        value = "none" if figures["value"] is None else f"{figures['value']:.4g} {figures['unit']}"
        lines.append(f"| {scenario} | {figures['metric']} | {value} | {figures['p50_ms']:.4g} | "
                     f"{figures['p90_ms']:.4g} | {figures['p99_ms']:.4g} | {low:.4g}-{high:.4g} | "
                     f"{figures['median_cv']:.2%} | {figures['queries']} |")
    noisy = [f"{scenario} ({figures['median_cv']:.1%})" for scenario, figures in data["performance"].items()
             if "median_cv" in figures and figures["median_cv"] > MEDIAN_CV_GOAL]
    lines += ["", f"CV of the median: goal <= {MEDIAN_CV_GOAL:.0%}; " +
              (f"above it: {', '.join(noisy)} (too few queries, or a loaded machine: run longer)" if noisy
               else "every scenario meets it.")]
    lines += ["", f"Machine: {env['cpu']}, {env['cores']} cores; {env['blas']} on {env['blas_threads']} thread(s); "
              f"NumPy {env['numpy']}, Python {env['python']}; git {env['git_commit'] or 'unknown'}"
              + (" (uncommitted changes)" if env.get("git_dirty") else "")
              + (f"; load average {env['load_average'][0]:.2f}" if env.get("load_average") else ""), ""]
    return "\n".join(lines)


def _plain_log_axis(axis):
    """A log-scale axis labelled 0.1, 1, 10 (plain text: the default 10^k labels cost a mathtext parse each)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save_figure(figure, path):
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # imported here: only plots need it
    )

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return write_atomic(path, buffer.getvalue())


def plot_latency_distribution(result, path):
    """Histogram of each scenario's query latencies (ms, log scale), p50/p90/p99 marked; a PNG at `path`."""
    from matplotlib.figure import Figure

    runs = [(s, r) for s, r in result.performance.items() if r.queries > 1]
    figure = Figure(figsize=(6.4, 2.6 * max(1, len(runs))))
    for row, (scenario, run) in enumerate(runs, start=1):
        axes = figure.add_subplot(len(runs), 1, row)
        latencies = run.latencies_s * 1e3
        bins = np.geomspace(latencies.min(), latencies.max() * 1.0001, 40) if latencies.min() > 0 else 40
        axes.hist(latencies, bins=bins, color="#4878a8")
        axes.set_xscale("log")
        _plain_log_axis(axes.xaxis)
        for q, style in ((0.5, ":"), (0.9, "--"), (0.99, "-")):
            axes.axvline(run.latency_ms(q), color="#c44e52", linestyle=style, label=f"p{int(q * 100)} {run.latency_ms(q):.3g} ms")
        axes.set_title(f"{result.name}: {scenario}, {run.queries} queries")
        axes.set_xlabel("query latency (ms)")
        axes.set_ylabel("queries")
        axes.legend(fontsize=8)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.18 / max(1, len(runs)), top=1 - 0.1 / max(1, len(runs)),
                           hspace=0.6)  # fixed margins: tight_layout costs a second per plot
    return _save_figure(figure, path)


def write_logs(result, folder):
    """Write the run's logs, JSON result, markdown report and latency plot into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": write_atomic(folder / "mlperf_log_summary.txt", summary_text(result)),
        "detail": write_atomic(folder / "mlperf_log_detail.txt", detail_text(result)),
        "result": write_atomic(folder / "result.json", json.dumps(result.to_dict(), indent=2) + "\n"),
        "report": write_atomic(folder / "report.md", markdown_report(result)),
        "latency_plot": plot_latency_distribution(result, folder / "latency.png"),
    }
    if result.accuracy is not None:
        paths["accuracy"] = write_atomic(folder / "mlperf_log_accuracy.json", json.dumps(accuracy_log(result.accuracy)) + "\n")
    return paths


# %%
def test_unit_benchmark_and_logs():
    import tempfile

    model = _tiny_classifier()
    inputs = np.random.default_rng(2).standard_normal((40, 20)).astype(np.float32)
    labels = SystemUnderTest(model).predict(inputs).argmax(axis=1)
    settings = BenchmarkSettings(min_duration_s=0.05, min_query_count=20, warmup_queries=1)
    result = benchmark(model, inputs, labels, ("SingleStream", "Offline"), settings, baseline_accuracy=1.0, name="mlp")
    assert result.valid and result.accuracy.accuracy == 1.0
    with tempfile.TemporaryDirectory() as folder:
        paths = write_logs(result, folder)
        summary = paths["summary"].read_text()
        assert "Scenario : SingleStream" in summary and "Overall result : VALID" in summary
        rows = json.loads(paths["accuracy"].read_text())
        recomputed = [np.frombuffer(bytes.fromhex(r["data"]), "<f4").argmax() for r in rows]
        assert recomputed == list(labels), "accuracy is recomputed from the accuracy log"
        assert paths["latency_plot"].read_bytes()[:4] == b"\x89PNG"
    print(summary_text(result).splitlines()[5])


test_unit_benchmark_and_logs()

# %% [markdown]
# ## Step 8: a suite, its ratios and its Pareto front
#
# One number per system hides the trade-off that modules 15-18 make: a quantized model is smaller
# and may be faster but a little less accurate. A system **dominates** another when it is at
# least as good on every axis (accuracy higher, latency lower, size smaller) and better on one.
# The **Pareto front** is the set of systems nobody dominates: the only ones worth choosing.
# Write it. `run_suite` benchmarks several systems on the same inputs and settings, one after
# another with a pause between them (thread pools that spin-wait after a call fall asleep within
# half a second: benchmarks/_timing.py measured it), and gives every figure as a ratio to a
# reference system.

# %%
#| export
def pareto_front(points):
    """Indices of the points (accuracy, latency, size) that no other point dominates.

    A point dominates another when its accuracy is >= and its latency and size are <=, with at
    least one strictly better. Points with a None coordinate are compared on the others.

    TODO: for each point, check whether any other point dominates it; keep those that none does.
    HINT: turn each point into a tuple where smaller is better: (-accuracy, latency, size).
    """
    ### BEGIN SOLUTION
    def better_is_smaller(point):
        accuracy, latency, size = point
        return (None if accuracy is None else -accuracy, latency, size)

    costs = [better_is_smaller(p) for p in points]

    def dominates(a, b):
        pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    return [i for i, cost in enumerate(costs) if not any(dominates(other, cost) for j, other in enumerate(costs) if j != i)]
    ### END SOLUTION


@dataclass
class SuiteResult:
    """Several systems on the same work; `reference` names the one every ratio is taken against."""

    results: list
    reference: str
    comparisons: dict = field(default_factory=dict)  # name -> Comparison of its SingleStream latencies

    def by_name(self, name):
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no system named {name!r} in this suite ({', '.join(r.name for r in self.results)})")

    def points(self, scenario="SingleStream"):
        """(accuracy, p90 ms, size bytes) of every system."""
        return [(None if r.accuracy is None else r.accuracy.accuracy,
                 r.performance[scenario].p90_ms if scenario in r.performance else None, r.size_bytes)
                for r in self.results]

    def pareto(self, scenario="SingleStream"):
        return [self.results[i].name for i in pareto_front(self.points(scenario))]

    def ratios(self, scenario="SingleStream"):
        """name -> {p90_latency, throughput, size}: each system's figure over the reference's."""
        reference = self.by_name(self.reference)
        out = {}
        for result in self.results:
            mine, theirs = result.performance.get(scenario), reference.performance.get(scenario)
            out[result.name] = {
                "p90_latency": mine.p90_ms / theirs.p90_ms if mine and theirs else None,
                "throughput": mine.throughput / theirs.throughput if mine and theirs else None,
                "size": (result.size_bytes / reference.size_bytes
                         if result.size_bytes and reference.size_bytes else None),
            }
        return out


SETTLE_SECONDS = 0.5  # spin-waiting BLAS / OpenMP threads of the previous system sleep within this


def run_suite(systems, inputs, labels=None, scenarios=("SingleStream",), settings=None, reference=None,
              baseline_accuracy=None, settle_s=SETTLE_SECONDS):
    """Benchmark each system (SystemUnderTest, or (name, model)) on the same inputs and settings.

    Without `baseline_accuracy`, the reference system's measured accuracy is every system's baseline.
    `settle_s` is the pause before each system after the first, for the previous one's threads to sleep.
    """
    systems = [s if isinstance(s, SystemUnderTest) else SystemUnderTest(s[1], s[0]) for s in systems]
    if not systems:
        raise ValueError("run_suite: give at least one system")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"run_suite: system names must differ, got {names}")
    results = []
    for number, sut in enumerate(systems):
        if number and settle_s:
            time.sleep(settle_s)
        results.append(benchmark(sut, inputs, labels, scenarios, settings, baseline_accuracy, sut.name))
    suite = SuiteResult(results, reference or names[0])
    reference_result = suite.by_name(suite.reference)
    if baseline_accuracy is None and reference_result.accuracy is not None:
        for result in results:
            result.baseline_accuracy = reference_result.accuracy.accuracy
    base = suite.by_name(suite.reference).performance.get("SingleStream")
    if base is not None and base.queries >= 2:
        for result in results:
            run = result.performance.get("SingleStream")
            if run is not None and result.name != suite.reference and run.queries >= 2:
                suite.comparisons[result.name] = compare_latencies(run.latencies_s, base.latencies_s)
    return suite


def plot_pareto(suite, path, scenario="SingleStream"):
    """Accuracy against p90 latency, marker area by size, the Pareto front joined; a PNG at `path`."""
    from matplotlib.figure import Figure

    points = suite.points(scenario)
    front = set(pareto_front(points))
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot(1, 1, 1)
    sizes = [p[2] for p in points if p[2]]
    largest = max(sizes) if sizes else 1
    for index, (result, (accuracy, latency, size)) in enumerate(zip(suite.results, points)):
        if accuracy is None or latency is None:
            continue
        area = 40 + 400 * (size / largest if size else 0.2)
        axes.scatter([latency], [accuracy * 100], s=area, alpha=0.7,
                     color="#c44e52" if index in front else "#8c8c8c", edgecolors="black")
        label = result.name + (f"\n{size / 2**20:.2f} MiB" if size else "")
        axes.annotate(label, (latency, accuracy * 100), fontsize=7, xytext=(6, 4), textcoords="offset points")
    ordered = sorted((points[i][1], points[i][0] * 100) for i in front if points[i][0] is not None and points[i][1] is not None)
    if len(ordered) > 1:
        axes.plot(*zip(*ordered), color="#c44e52", linestyle="--", linewidth=1, label="Pareto front")
        axes.legend(fontsize=8)
    axes.set_xscale("log")
    _plain_log_axis(axes.xaxis)
    axes.set_xlabel(f"{scenario} p90 latency (ms)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("accuracy / latency / size (marker area: bytes)")
    figure.subplots_adjust(left=0.12, right=0.95, bottom=0.12, top=0.92)
    return _save_figure(figure, path)


def suite_markdown(suite, scenario="SingleStream"):
    """The suite's table: each system's figures and their ratios to the reference, and the Pareto front."""
    ratios = suite.ratios(scenario)
    lines = [f"# Benchmark suite ({scenario}; ratios against {suite.reference})", "",
             ("| system | valid | accuracy | p50 ms | p90 ms | p99 ms | samples/s | state bytes | file bytes | "
              "p90 ratio | size ratio | vs reference |"), "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in suite.results:
        run = result.performance.get(scenario)
        ratio = ratios[result.name]
        comparison = suite.comparisons.get(result.name)
        verdict = "-" if comparison is None else (
            f"median x{comparison.ratio:.2f} (95% CI {comparison.ratio_ci[0]:.2f}-{comparison.ratio_ci[1]:.2f}), "
            f"p={comparison.p_value:.2g}{'' if comparison.significant else ', not significant'}")
        cells = [result.name, "yes" if result.valid else "NO",
                 "-" if result.accuracy is None else f"{result.accuracy.accuracy:.2%}",
                 *(("-",) * 4 if run is None else (f"{run.p50_ms:.4g}", f"{run.p90_ms:.4g}", f"{run.p99_ms:.4g}",
                                                   f"{run.throughput:.4g}")),
                 "-" if result.size_bytes is None else f"{result.size_bytes:,}",
                 "-" if result.file_bytes is None else f"{result.file_bytes:,}",
                 "-" if ratio["p90_latency"] is None else f"{ratio['p90_latency']:.2f}x",
                 "-" if ratio["size"] is None else f"{ratio['size']:.2f}x", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    env = suite.results[0].environment
    lines += ["", f"Pareto front (accuracy, p90 latency, bytes): {', '.join(suite.pareto(scenario))}", "",
              (f"Machine: {env['cpu']}, {env['cores']} cores; {env['blas']} on {env['blas_threads']} thread(s); "
               f"NumPy {env['numpy']}, Python {env['python']}; git {env['git_commit'] or 'unknown'}"), ""]
    return "\n".join(lines)


def write_suite(suite, folder, scenario="SingleStream"):
    """Each system's logs in folder/<name>/, plus suite.json, suite.md and pareto.png; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for result in suite.results:
        write_logs(result, folder / "".join(c if c.isalnum() or c in "-_." else "_" for c in result.name))
    data = {"reference": suite.reference, "scenario": scenario, "pareto_front": suite.pareto(scenario),
            "ratios": suite.ratios(scenario),
            "comparisons": {name: {"median_ratio": c.ratio, "median_ratio_ci": list(c.ratio_ci), "p_value": c.p_value,
                                   "significant": c.significant} for name, c in suite.comparisons.items()},
            "systems": [result.to_dict() for result in suite.results]}
    return {
        "json": write_atomic(folder / "suite.json", json.dumps(data, indent=2) + "\n"),
        "report": write_atomic(folder / "suite.md", suite_markdown(suite, scenario)),
        "pareto_plot": plot_pareto(suite, folder / "pareto.png", scenario),
    }


# %%
def test_unit_pareto_front():
    points = [(0.98, 1.0, 100), (0.97, 0.5, 25), (0.96, 0.6, 30), (0.98, 2.0, 100), (0.99, 3.0, 400)]
    assert pareto_front(points) == [0, 1, 4], "2 is beaten by 1 on every axis, 3 by 0"
    assert pareto_front([(0.9, 1.0, None), (0.8, 2.0, None)]) == [0]
    print("Pareto front:", pareto_front(points))


test_unit_pareto_front()

# %% [markdown]
# ## Step 9: the systems to benchmark, from their files
#
# A benchmark of the milestone models starts from what the milestones wrote: a checkpoint (module
# 07's `save_checkpoint`, or a bare state dict saved with `save_state`) and the function that
# builds the model's layers (`milestones/mnist.py:build_mlp`). `load_system` builds the model,
# loads the state (every key and shape checked by `load_state_dict`) and returns a
# `SystemUnderTest` that knows both sizes: the bytes of its arrays in memory and the bytes of
# the file. `milestone_test_split` reads a milestone's test split (module 08's loaders) and
# applies the milestone's own preprocessing, so the benchmark scores the model on the inputs it
# was trained for.

# %%
#| export
def import_builder(spec, root=None):
    """The function that `spec` names: "package.module:function" or "path/to/file.py:function".

    A relative file path is taken from `root` (default: the working directory); the file's folder
    is on sys.path while it is imported, so a milestone's sibling imports work.
    """
    import importlib
    import importlib.util

    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"import_builder: a builder is 'module:function' or 'file.py:function', got {spec!r}")
    where, name = spec.split(":")
    if where.endswith(".py"):
        path = Path(where) if Path(where).is_absolute() else Path(root or ".") / where
        if not path.is_file():
            raise FileNotFoundError(f"import_builder: no file {path} (from the builder {spec!r})")
        module_name = "_tinytorch_builder_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.path.insert(0, str(path.parent))
        try:
            loader_spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
    else:
        module = importlib.import_module(where)
    builder = getattr(module, name, None)
    if not callable(builder):
        raise AttributeError(f"import_builder: {where} has no function {name!r} (from the builder {spec!r})")  # noqa: TRY004 (what getattr raises)
    return builder


def checkpoint_state_dict(path):
    """The model state dict in a file: a save_checkpoint checkpoint's "model", or a saved state dict."""
    from tinytorch.core.training import load_state

    state = load_state(path)
    if isinstance(state, dict) and state.get("format") == "tinytorch-checkpoint":
        state = state.get("model")
    is_state_dict = isinstance(state, dict) and bool(state) and all(isinstance(v, np.ndarray) for v in state.values())
    if not is_state_dict:
        raise ValueError(f"{path} holds no model state dict (a save_checkpoint file, or save_state(path, "
                         "model.state_dict()))")
    return state


def load_system(builder, checkpoint, name=None, root=None, kwargs=None):
    """A SystemUnderTest: the model that `builder` (a spec or a function) makes, with `checkpoint`'s state."""
    build = import_builder(builder, root) if isinstance(builder, str) else builder
    model = build(**(kwargs or {}))
    model.load_state_dict(checkpoint_state_dict(checkpoint))
    return SystemUnderTest(model, name or Path(checkpoint).stem, file_bytes=Path(checkpoint).stat().st_size)


MILESTONE_DATASETS = ("mnist", "cifar10")


def milestone_test_split(dataset, root=None, limit=None):
    """(inputs float32, labels int64) of a milestone's test split, preprocessed as the milestone does.

    `dataset` is "mnist" or "cifar10"; `root` the data folder (default $TINYTORCH_DATA); `limit`
    keeps the first images only. Missing data raises module 08's DatasetError, which says how to get it.
    """
    from tinytorch.core.dataloader import (
        CIFAR10,
        CIFAR10_MEAN,
        CIFAR10_STD,
        MNIST,
        MNIST_MEAN,
        MNIST_STD,
        Compose,
        Normalize,
        ToTensor,
    )

    if dataset == "mnist":
        split, mean, std = MNIST(root, train=False), MNIST_MEAN, MNIST_STD
    elif dataset == "cifar10":
        split, mean, std = CIFAR10(root, train=False), CIFAR10_MEAN, CIFAR10_STD
    else:
        raise ValueError(f"milestone_test_split: dataset is one of {', '.join(MILESTONE_DATASETS)}, got {dataset!r}")
    count = len(split) if limit is None else min(check_positive_int("milestone_test_split", "limit", limit), len(split))
    inputs = Compose([ToTensor(), Normalize(mean, std)]).batch(split.data[:count]).numpy()
    return np.ascontiguousarray(inputs, dtype=np.float32), np.asarray(split.targets[:count], dtype=np.int64)


# %% [markdown]
# ## Systems analysis: how sure is a latency?
#
# The measurement below benchmarks a float32 MLP of the MNIST milestone's shape (784-512-256-10,
# random weights: latency does not depend on what the weights are) in SingleStream, and asks
# three questions of it: how wide is the bootstrap interval of the median, what is the CV of the
# median (the goal on this 2-core machine is 5% or less), and how does the p99 compare with the
# median. It then runs the same system in a second run and checks with the U test whether the
# two runs differ: on an idle machine they should not; on a loaded one they may, and that is the
# point of reporting the machine's load with every figure.
#
# Run it with `python modules/19_benchmarking/benchmarking.py` (it takes about 10 seconds).

# %%
if __name__ == "__main__":
    from tinytorch.core.layers import Linear, ReLU, Sequential
    from tinytorch.core.tensor import manual_seed

    manual_seed(0)
    mlp = Sequential(Linear(784, 512), ReLU(), Linear(512, 256), ReLU(), Linear(256, 10))
    images = np.random.default_rng(0).standard_normal((256, 784)).astype(np.float32)
    settings = BenchmarkSettings(min_duration_s=3.0, min_query_count=500)
    first = run_performance(SystemUnderTest(mlp, "mlp"), images, settings)
    second = run_performance(SystemUnderTest(mlp, "mlp"), images, replace(settings, seed=1))
    for label, run in (("run 1", first), ("run 2", second)):
        low, high = bootstrap_ci(run.latencies_s)
        print(f"{label}: {run.queries} queries, median {np.median(run.latencies_s) * 1e3:.3f} ms "
              f"(95% CI {low * 1e3:.3f}-{high * 1e3:.3f}), CV of median {median_cv(run.latencies_s):.2%}, "
              f"p90 {run.p90_ms:.3f} ms, p99 {run.p99_ms:.3f} ms")
    same = compare_latencies(second.latencies_s, first.latencies_s)
    print(f"run 2 / run 1: median x{same.ratio:.3f} (95% CI {same.ratio_ci[0]:.3f}-{same.ratio_ci[1]:.3f}), "
          f"U test p = {same.p_value:.3g}")
    print(f"MultiStream p99: {run_performance(mlp, images, replace(settings, scenario='MultiStream')).p99_ms:.3f} ms; "
          f"Offline: {run_performance(mlp, images, replace(settings, scenario='Offline')).throughput:.0f} samples/s")
    print(capture_environment())

# %% [markdown]
# What one run of it printed on this 2-core machine (OPENBLAS_NUM_THREADS=1, load average 1.4 from
# other jobs): run 1, 18,852 queries, median 0.153 ms (95% CI 0.152-0.153 ms), CV of the median
# 0.12%, p90 0.184 ms, p99 0.270 ms; run 2, median 0.137 ms, CV 0.74%; run 2 / run 1 = 0.894
# (95% CI 0.879-0.905), U test p < 1e-300. Read it twice:
#
# - *within* a run, the median is known to a fraction of a percent (far inside the 5% goal): with
#   twenty thousand queries the bootstrap has plenty to resample;
# - *between* two runs seconds apart the median moved by 10%, and the U test calls that
#   overwhelmingly significant. Nothing about the model changed; the machine did (another job's
#   burst, a different core, caches). The bootstrap measures the noise of *sampling*, not the drift
#   of the *machine*, which is why a benchmark states the load and the threads with each figure and
#   why module 20's validator allows 10% between a claim and its re-measurement.
#
# The p99 sits well above the median (a query that a context switch hits); MultiStream's 8-sample
# queries and Offline's batches of 64 read each weight once for many samples, which is why "how
# fast" has no answer until you say for what kind of load.

# %% [markdown]
# ## Production context: MLPerf Inference and PyTorch's benchmark tools
#
# - **MLPerf Inference's LoadGen** (C++, with Python bindings) is the load generator every
#   submitter links against; the submitter supplies a *System Under Test* with `issue_query` and
#   a *Query Sample Library* that loads samples, exactly the separation of Step 1. Its scenarios
#   and metrics are ours (SingleStream p90, MultiStream p99 with 8 samples, Server with Poisson
#   arrivals and a latency bound per model, Offline throughput); its minimums are 600 seconds and
#   thousands of queries, and its logs are `mlperf_log_summary.txt`, `mlperf_log_detail.txt` and
#   `mlperf_log_accuracy.json`. Real Server systems answer many queries at once (threads,
#   batching), so their queueing differs from our one-at-a-time server.
# - **Audits**: MLPerf's compliance tests re-run a submission. TEST01 logs a random subset of the
#   performance run's outputs and checks them against the accuracy run (a system must not answer
#   differently when it is timed); module 20's validator does the same.
# - **PyTorch** has `torch.utils.benchmark.Timer`, which warms up, picks a number of runs
#   adaptively, reports the median and interquartile range, and states the thread count
#   (`num_threads`) with each figure, and `Compare` to print tables of several measurements.
#   `torch.profiler` (module 14) says where time goes; the Timer says how long, and how sure.
#
# ## Integration test: the suite over two systems and its report
#
# Two real systems on the same data: a float32 nearest-centre classifier written as a layer,
# and the same model with its weights rounded to float16 and back (a different system with nearly
# the same answers). The suite measures both, every figure as a ratio to the first, and writes the logs.

# %%
def test_integration_suite_over_two_systems():
    import tempfile

    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import manual_seed

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 20)) * 3
    labels = rng.integers(0, 3, size=120)
    inputs = (centres[labels] + rng.standard_normal((120, 20))).astype(np.float32)
    # The nearest-centre classifier as one Linear layer: score_k = x . c_k - |c_k|^2 / 2 (the Bayes
    # rule for classes that are round Gaussians of equal spread).
    manual_seed(0)
    model = Sequential(Linear(20, 3))
    model.load_state_dict({"0.weight": centres.astype(np.float32),
                           "0.bias": (-(centres**2).sum(axis=1) / 2).astype(np.float32)})
    baseline = run_accuracy(model, inputs, labels).accuracy
    rounded = Sequential(Linear(20, 3))
    rounded.load_state_dict({k: v.astype(np.float16).astype(np.float32) for k, v in model.state_dict().items()})
    settings = BenchmarkSettings(min_duration_s=0.05, min_query_count=30, warmup_queries=2)
    suite = run_suite([("float32", model), ("float16-rounded", rounded)], inputs, labels, settings=settings,
                      baseline_accuracy=baseline)
    assert baseline > 0.9 and all(r.valid for r in suite.results)
    assert suite.ratios()["float32"]["p90_latency"] == 1.0
    with tempfile.TemporaryDirectory() as folder:
        paths = write_suite(suite, folder)
        assert "float16-rounded" in paths["report"].read_text()
    print(suite_markdown(suite).splitlines()[4])


test_integration_suite_over_two_systems()

# %% [markdown]
# ## ML-systems thinking questions
#
# 1. SingleStream's metric is p90 and Server's is p99. Why does a server, with many users, need a
#    higher percentile than a phone with one? (Hint: how many of a page's hundred requests must be
#    fast for the page to be fast?)
# 2. A Server run at 90% of capacity passes at 2 seconds and fails at 600. Which is right, and what
#    does queueing theory say happens to the p99 as a run gets longer near capacity?
# 3. The bootstrap interval of the median is narrow, yet two runs an hour apart differ by 10%.
#    What does the bootstrap measure, and what does it not?
# 4. A pruned model keeps its dense float32 arrays with zeros in them. Its measured state bytes
#    do not change. What would have to change for pruning to show in bytes, and in latency?
# 5. Why must the accuracy run be separate from the performance run, and why does MLPerf's TEST01
#    still compare a sample of the timed outputs with the accuracy run's?
#
# ## Summary
#
# - A load generator issues queries; a system under test answers them; neither knows the other's
#   internals. Four scenarios turn "how fast" into four precise questions.
# - Tail latency is a nearest-rank percentile of many queries; its trust comes from the number of
#   queries, the bootstrap interval, and the machine's state recorded next to it.
# - Accuracy is measured over the whole test split, apart from timing; a run that loses more than
#   1% of the float32 accuracy is invalid, however fast it is.
# - Logs, a JSON result, a report and plots make a benchmark something others can audit, which is
#   what module 20's Torch Olympics validator does.
