"""The `optimized` milestone runs as a script on fixture data, measures its tables, and fails honestly.

`--quick` runs as a subprocess, as `tito milestone run optimized --quick` starts it, on small
MNIST and CIFAR-10 files written in the official formats (the fixture writers of the vision
milestones' tests). No checkpoint exists in the temporary folder, so the script first trains
the MLP and the CNN with the mnist and cifar10 milestones' own code, then compresses them.
"""

import json

import pytest

from tests.milestones.test_milestones_vision import run_milestone, write_colour_cifar10
from tests.modules.fixtures_data import write_mnist

TABLE_ROWS = ("float32", "int8 PTQ (per-channel, minmax)", "int8 QAT", "structured 50% removed",
              "student, distilled", "student, alone")


def checkpoints(tmp_path):
    return ["--mnist-checkpoint", str(tmp_path / "ck" / "mnist" / "mnist_best.safetensors"),
            "--cifar-checkpoint", str(tmp_path / "ck" / "cifar10" / "cifar10_best.safetensors"),
            "--gpt-checkpoint", str(tmp_path / "no-tinygpt.safetensors")]


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("optimized-data")
    mnist = write_mnist(root, train_size=1200, test_size=300)
    write_colour_cifar10(root)
    return root, mnist.checksums


def measured_value(out, what):
    """The number after `measured: <what> = ` (up to its unit)."""
    line = next(line for line in out.splitlines() if line.startswith(f"measured: {what} = "))
    return float(line.split(" = ")[1].split("x")[0].split(" ")[0])


def table_rows(out, title):
    """The rows of the printed table that starts with `title`, as {variant: [columns]}."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        variant, columns = line[:36].strip(), line[36:].split()
        rows[variant] = columns
    return rows


def test_quick_run_prints_the_tables_and_meets_its_bars(tmp_path, fixture_data):
    data, checksums = fixture_data
    out_dir = tmp_path / "out"
    done = run_milestone("optimized", "--quick", "--out", str(out_dir), *checkpoints(tmp_path), data_folder=data,
                         mnist_checksums=checksums)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Milestone optimized: Make it small: from Optimal Brain Damage to Deep Compression (1990)" in out
    assert "Optimal Brain Damage (LeCun, Denker and Solla, 1990)" in out and "[quick mode]" in out
    assert "bars for --quick:" in out and "BLAS threads:" in out
    # Absent checkpoints are trained first by the milestones' own code.
    assert "training it first with milestones/mnist.py --quick" in out and "Milestone mnist:" in out
    assert "training it first with milestones/cifar10.py --quick" in out and "Milestone cifar10:" in out
    assert "(trained now by milestones/mnist.py (exit code 0)" in out

    mlp = table_rows(out, "MNIST MLP: 300 test images")
    cnn = table_rows(out, "CIFAR-10 CNN: 200 test images")
    assert set(TABLE_ROWS) | {"pruned 90% global, CSR", "pruned 95% global, CSR"} == set(mlp)
    assert set(TABLE_ROWS) | {"pruned 80% global, CSR"} == set(cnn)
    for rows in (mlp, cnn):  # weights, memory B, disk B, x fewer, test acc, points, b1 ms, b64 ms
        assert all(len(columns) == 8 for columns in rows.values()), rows
        float_bytes = int(rows["float32"][1].replace(",", ""))
        int8_bytes = int(rows["int8 PTQ (per-channel, minmax)"][1].replace(",", ""))
        assert float_bytes / int8_bytes >= 3.9
        assert all(float(columns[6]) > 0 and float(columns[7]) > 0 for columns in rows.values())
    # 90% of the MLP's weights are gone: the non-zero count is a tenth of the float32 weights (biases kept).
    kept = int(mlp["pruned 90% global, CSR"][0].replace(",", "")) / int(mlp["float32"][0].replace(",", ""))
    assert 0.09 < kept < 0.11
    assert "sparsity measured 90.00%" in out and "sparsity measured 95.00%" in out
    assert "file reloads to identical integers: True" in out and "reloads identically: True" in out

    assert "GPT: a module 13 GPT with random weights" in out and "identical greedy tokens: True" in out
    assert "further goals of the issue (measured against the goal; not bars)" in out
    assert sum(line.startswith("  goal: ") for line in out.splitlines()) == 7

    assert measured_value(out, "CIFAR CNN int8 PTQ: fewer bytes in memory (quick)") >= 3.9
    assert "measured: MNIST MLP at 90% sparsity: points lost (quick) = " in out and "(sparsity 90.00%)" in out
    assert "measured: KV cache speedup at 96 new tokens (quick) = " in out
    assert "result: bar met, 4 of 4 checks" in out

    results = json.loads((out_dir / "results.json").read_text())
    assert results["quick"] is True and [c["passed"] for c in results["checks"]] == [True] * 4
    ptq = results["tables"]["cifar"][1]
    assert ptq["variant"].startswith("int8 PTQ") and ptq["memory_ratio"] >= 3.9
    assert results["tables"]["cifar"][0]["memory_bytes"] / ptq["memory_bytes"] == pytest.approx(ptq["memory_ratio"])
    assert results["gpt"]["identical_tokens"] is True
    assert (out_dir / "results.md").read_text().startswith("# Milestone optimized: measured tables (quick mode)")
    for name in ("cifar_int8_ptq", "mnist_sparse90", "cifar_structured50", "mnist_student_distilled"):
        assert (out_dir / f"{name}.safetensors").stat().st_size > 0


def test_missing_data_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_milestone("optimized", "--quick", "--out", str(tmp_path / "out"), *checkpoints(tmp_path),
                         data_folder=empty)
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr
    assert "train-images-idx3-ubyte.gz" in error and str(empty) in error and "TINYTORCH_DATA" in error
    assert "--download" in error and "Traceback" not in error
    assert "measured:" not in done.stdout and not (tmp_path / "ck").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, bad", [("mnist", "garbage"), ("mnist", "folder"), ("gpt", "garbage")])
def test_bad_checkpoint_path_is_a_clear_error(tmp_path, fixture_data, option, bad):
    data, checksums = fixture_data
    path = tmp_path / f"{option}.safetensors"
    if bad == "garbage":
        path.write_bytes(b"not a checkpoint at all")
        expected = f"{path} is not a " + ("checkpoint of the MNIST MLP" if option == "mnist" else "tinygpt checkpoint")
    else:
        path.mkdir()
        expected = f"--mnist-checkpoint {path} is a folder; pass the checkpoint file"
    arguments = checkpoints(tmp_path)
    arguments[arguments.index(f"--{option}-checkpoint") + 1] = str(path)
    done = run_milestone("optimized", "--quick", "--out", str(tmp_path / "out"), *arguments, data_folder=data,
                         mnist_checksums=checksums)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "measured:" not in done.stdout and "training it first" not in done.stdout


def test_the_gpt_is_the_tinygpt_checkpoint_when_its_context_holds_the_tokens(tmp_path):
    """A tinygpt checkpoint is used when prompt + new tokens fit its context; else its shape, random weights."""
    import sys
    from dataclasses import asdict

    import numpy as np

    from tests.milestones.test_milestones_vision import ROOT
    from tinytorch.core.training import save_checkpoint
    from tinytorch.core.transformer import GPT, GPTConfig

    sys.path.insert(0, str(ROOT / "milestones"))
    try:
        import optimized
    finally:
        sys.path.remove(str(ROOT / "milestones"))
    for block_size in (64, 128):
        config = GPTConfig(block_size=block_size, vocab_size=65, n_layer=1, n_head=2, n_embd=16, bias=False)
        saved = GPT(config)
        save_checkpoint(tmp_path / f"gpt{block_size}.safetensors", saved, extra={"config": asdict(config)})
        path = tmp_path / f"gpt{block_size}.safetensors"
        model, what = optimized.gpt_model(path, optimized.saved_gpt_config(path), 1, 64, quick=True, seed=0)
        same = np.array_equal(model.state_dict()["token_embedding.weight"], saved.state_dict()["token_embedding.weight"])
        if block_size == 128:  # 1 + 64 tokens fit: the trained weights
            assert "(trained weights)" in what and model.config.block_size == 128
            assert same
        else:
            assert "random weights" in what and "64-token context" in what
            assert (model.config.n_embd, model.config.block_size) == (16, 512) and not same
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(optimized.BadCheckpoint, match="is not a tinygpt checkpoint"):
        optimized.saved_gpt_config(tmp_path / "bad.safetensors")
    assert optimized.saved_gpt_config(tmp_path / "absent.safetensors") is None
