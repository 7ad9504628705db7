"""`tito benchmark`, through tito.cli.main, on the MNIST milestone's MLP trained on fixture data."""

import json

import pytest

from tests.modules.fixtures_olympics import olympics_setting, rounded_copy
from tito.cli import main

FAST = ["--duration", "0.1", "--queries", "40", "--warmup", "3"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    with olympics_setting(tmp_path_factory.mktemp("benchmark_cli")) as value:
        yield value


def test_benchmark_writes_the_suite_with_an_added_system(setting, tmp_path, capsys):
    rounded = rounded_copy(setting, tmp_path / "rounded.safetensors")
    out = tmp_path / "out"
    code = main(["benchmark", "mnist", "--checkpoint", str(setting.baseline), "--data", str(setting.data),
                 "--system", "rounded", "milestones/mnist.py:build_mlp", str(rounded), "--no-torch",
                 "--scenarios", "SingleStream", "Offline", "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "tinytorch mnist" in printed and "Pareto front" in printed
    suite = json.loads((out / "mnist" / "suite.json").read_text())
    assert [s["name"] for s in suite["systems"]] == ["tinytorch mnist", "rounded"]
    reference = suite["systems"][0]
    assert reference["accuracy_samples"] == 120 and reference["baseline_accuracy"] == reference["accuracy"]
    assert set(reference["performance"]) == {"SingleStream", "Offline"}
    assert suite["ratios"]["tinytorch mnist"]["p90_latency"] == 1.0
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "result.json",
                 "report.md", "latency.png"):
        assert (out / "mnist" / "tinytorch_mnist" / name).is_file(), name
    assert (out / "mnist" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_puts_pytorch_next_to_tinytorch(torch, setting, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["benchmark", "mnist", "--checkpoint", str(setting.baseline), "--data", str(setting.data),
                 "--threads", "1", "--out", str(out), *FAST])
    assert code == 0
    suite = json.loads((out / "mnist" / "suite.json").read_text())
    pytorch = suite["systems"][1]
    assert pytorch["name"] == "pytorch (1 threads)" and pytorch["accuracy"] == suite["systems"][0]["accuracy"]
    assert suite["ratios"][pytorch["name"]]["p90_latency"] > 0 and pytorch["name"] in suite["comparisons"]


def test_benchmark_explains_what_is_missing(setting, tmp_path, capsys):
    assert main(["benchmark", "imagenet"]) == 1
    assert "unknown model imagenet" in capsys.readouterr().out
    assert main(["benchmark", "mnist", "--checkpoint", str(tmp_path / "none.safetensors"), "--no-torch"]) == 1
    assert "no checkpoint at" in capsys.readouterr().out
    assert main(["benchmark", "mnist", "--checkpoint", str(setting.baseline), "--data", str(tmp_path / "empty"),
                 "--no-torch", *FAST]) == 1
    assert "MNIST" in capsys.readouterr().out
    assert main(["benchmark", "mnist", "--checkpoint", str(setting.baseline), "--duration", "0", "--no-torch"]) == 1
    assert "min_duration_s" in capsys.readouterr().out
    assert main(["benchmark", "mnist", "cifar10", "--checkpoint", str(setting.baseline)]) == 1
    assert "name exactly one" in capsys.readouterr().out
