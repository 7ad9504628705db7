"""The benchmarks' timing harness times each candidate alone, in a process of its own."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys
sys.path.insert(0, {benchmarks!r})
from _timing import compare

calls = {{"a": 0, "b": 0}}
log = open({log!r}, "a")

def make(name):
    def step():
        calls[name] += 1
        log.write(f"{{os.getpid()}} {{name}}\\n"); log.flush()
    return step

first = compare({{"a": make("a"), "b": make("b")}}, repeats=4, warmup=2, rounds=2)
second = compare({{"a": make("a")}}, repeats=3, warmup=0, rounds=1)
print("RESULT", {{name: len(t.samples) for name, t in {{**first, "second": second["a"]}}.items()}})
"""


def test_each_candidate_is_timed_alone_in_its_own_process(tmp_path):
    log = tmp_path / "calls.log"
    script = tmp_path / "bench.py"
    script.write_text(SCRIPT.format(benchmarks=str(ROOT / "benchmarks"), log=str(log)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT {'a': 8, 'b': 8, 'second': 3}", result  # repeats x rounds, pooled
    by_process = {}
    for line in log.read_text().splitlines():
        pid, name = line.split()
        by_process.setdefault(pid, set()).add(name)
    assert len(by_process) == 5, "one process per candidate and round (2 x 2), plus one for the second comparison"
    assert all(len(names) == 1 for names in by_process.values()), f"a process ran two candidates: {by_process}"
    calls_per_process = sorted(json.dumps(sorted(names)) for names in by_process.values())
    assert calls_per_process.count('["a"]') == 3 and calls_per_process.count('["b"]') == 2
