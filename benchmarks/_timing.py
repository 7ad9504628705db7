"""Timing helpers shared by the benchmarks: warmup, interleaved repeats, medians, a ratio table.

A benchmark here compares TinyTorch with PyTorch on the same work in the same run. Machines
are shared and noisy, so three habits keep the figures honest:

- warm up first (first calls pay for imports, allocator growth and BLAS thread start-up);
- interleave the candidates (A, B, A, B, ...) so that a burst of load from elsewhere hits
  both alike instead of only whichever ran during it;
- report the median, which one slow outlier cannot move.

    from _timing import compare, print_table
    results = compare({"tinytorch": step_tt, "pytorch": step_torch}, repeats=30, warmup=5)
    print_table(results, baseline="pytorch")
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass


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


def compare(candidates: dict, repeats: int = 20, warmup: int = 3) -> dict[str, Timing]:
    """Time each callable `repeats` times after `warmup` untimed calls, interleaving candidates."""
    if repeats < 1:
        raise ValueError(f"compare: repeats must be at least 1, got {repeats}")
    for function in candidates.values():
        for _ in range(warmup):
            function()
    samples = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, function in candidates.items():
            samples[name].append(time_once(function))
    return {name: Timing(name, tuple(values)) for name, values in samples.items()}


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
    print(f"  {'candidate':<{width}}  {'median':>10}  {'25%-75%':>21}  {'ratio':>7}  repeats")
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
