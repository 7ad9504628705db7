"""Timing helpers shared by the benchmarks: each candidate timed alone, medians, a ratio table.

A benchmark here compares TinyTorch with PyTorch on the same work. Three habits keep the
figures honest:

- **time each candidate alone, in its own process.** OpenBLAS's and PyTorch's OpenMP thread
  pools spin-wait after every call. Interleave single calls of two frameworks in one process
  and each call runs while the other's threads still burn the cores: the figure is neither
  framework's speed (the CIFAR step measured 1.04x interleaved and 2.85x alone). So `compare`
  starts this same script again once per candidate and round, with an environment variable
  that names the one candidate to time; that process builds everything as usual, waits for
  idle threads to sleep, times its candidate and hands the samples back;
- warm up first (first calls pay for imports, allocator growth and BLAS thread start-up), and
  alternate the order of the candidates' processes from round to round, so that a burst of
  load from elsewhere does not always hit the same one;
- report the median, which one slow outlier cannot move, with the interquartile range.

    from _timing import compare, print_table
    results = compare({"tinytorch": step_tt, "pytorch": step_torch}, repeats=30, warmup=5)
    print_table(results, baseline="pytorch")

A script that calls `compare` must build its candidates the same way on every run (same seeds,
same arguments): the processes that time them run the script again from the top.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

ONLY = "TINYTORCH_BENCH_ONLY"  # "<comparison number>/<candidate>": this process times just that one
_MARK = "TINYTORCH_BENCH_SAMPLES "  # the line that carries a timing process's samples back
_comparisons = itertools.count()  # which `compare` call of the script this is
SETTLE_SECONDS = 0.5  # idle thread pools of the candidates not timed go to sleep within this


@dataclass(frozen=True)
class Timing:
    """The seconds of every timed repeat of one candidate."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        """The 25th and 75th percentiles: how noisy the measurement was."""
        if len(self.samples) < 2:
            return (self.samples[0], self.samples[0])
        quartiles = statistics.quantiles(self.samples, n=4)
        return (quartiles[0], quartiles[2])


def time_once(function) -> float:
    """Seconds that one call of `function()` takes (wall clock)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(candidates: dict, repeats: int = 20, warmup: int = 3, rounds: int = 3) -> dict[str, Timing]:
    """Time each callable alone: `rounds` fresh processes per candidate, `warmup` + `repeats` calls each.

    Returns every timed call's seconds, pooled over the rounds, per candidate. In a timing
    process (started by this function) it times the one candidate named by $TINYTORCH_BENCH_ONLY,
    prints the samples and exits; the script's other comparisons return placeholders there.
    """
    if repeats < 1 or rounds < 1:
        raise ValueError(f"compare: repeats and rounds must be at least 1, got {repeats} and {rounds}")
    number = next(_comparisons)
    only = os.environ.get(ONLY)
    if only is not None:
        return _time_in_this_process(candidates, number, only, repeats, warmup)
    names = list(candidates)
    samples = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            samples[name] += _time_in_a_new_process(number, name)
    return {name: Timing(name, tuple(values)) for name, values in samples.items()}


def _time_in_a_new_process(number: int, name: str) -> list[float]:
    env = dict(os.environ, **{ONLY: f"{number}/{name}"})
    done = subprocess.run([sys.executable, *sys.argv], env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"compare: the process timing {name!r} failed (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(lines[-1][len(_MARK):])


def _time_in_this_process(candidates: dict, number: int, only: str, repeats: int, warmup: int):
    wanted, _, name = only.partition("/")
    if int(wanted) != number:  # another comparison of the script is being timed in this process
        return {candidate: Timing(candidate, (math.nan,)) for candidate in candidates}
    if name not in candidates:
        raise KeyError(f"compare: no candidate {name!r} in comparison {number}; have {sorted(candidates)}")
    function = candidates[name]
    time.sleep(SETTLE_SECONDS)
    for _ in range(warmup):
        function()
    samples = [time_once(function) for _ in range(repeats)]
    print(_MARK + json.dumps(samples), flush=True)
    os._exit(0)  # the samples are out; nothing after this comparison may run in a timing process


def ratios(results: dict[str, Timing], baseline: str) -> dict[str, float]:
    """Median time of each candidate divided by the baseline's median (1.0 = as fast)."""
    if baseline not in results:
        raise KeyError(f"ratios: no candidate named {baseline!r}; have {sorted(results)}")
    reference = results[baseline].median
    return {name: timing.median / reference for name, timing in results.items()}


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def print_table(results: dict[str, Timing], baseline: str, title: str | None = None) -> dict[str, float]:
    """Print median, interquartile range and ratio to `baseline` for each candidate; return the ratios."""
    ratio = ratios(results, baseline)
    if title:
        print(title)
    width = max(len(name) for name in results)
    print(f"  {'candidate':<{width}}  {'median':>10}  {'25%-75%':>21}  {'ratio':>7}  repeats (each alone)")
    for name, timing in results.items():
        low, high = timing.spread
        spread = f"{format_seconds(low)}-{format_seconds(high)}"
        print(f"  {name:<{width}}  {format_seconds(timing.median):>10}  {spread:>21}  "
              f"{ratio[name]:>6.2f}x  {len(timing.samples)}")
    return ratio


def machine_summary() -> str:
    """One line on the machine: cores and current load, so a printed figure carries its context."""
    cores = os.cpu_count() or 1
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:  # not available on every platform
        load = "unknown"
    return f"{cores} cores, load average (1, 5, 15 min): {load}"
