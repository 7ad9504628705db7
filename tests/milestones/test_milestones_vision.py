"""The vision-path milestones (mnist, cifar10) run as scripts, meet their bars, and fail honestly.

Each milestone runs in its `--quick` mode as a subprocess, the way `tito milestone run` starts
it: the project on PYTHONPATH, the project root as the working directory. The data are small
files that the tests write in the official formats (MNIST's gzipped IDX files, CIFAR-10's
pickled batches) into a temporary folder named by TINYTORCH_DATA; the real data sets are never
needed. The images are learnable, so the quick bars are met only when the pipeline learns.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.modules.fixtures_data import (
    MNIST_NAMES,
    cifar_batch_bytes,
    gzipped,
    idx_bytes,
    md5,
    write_mnist,
)

ROOT = Path(__file__).resolve().parents[2]

# MNIST checks its files against the official checksums; fixture files have their own. The tests
# start the milestone through this launcher, which gives MNIST the fixture's checksums (as
# test_08 does with monkeypatch) and then runs the script as `python milestones/mnist.py` would.
WITH_FIXTURE_CHECKSUMS = (
    "import json, runpy, sys\n"
    "import tinytorch.core.dataloader as dataloader\n"
    "dataloader.MNIST_FILES = json.loads(sys.argv.pop(1))\n"
    "sys.argv.pop(0)\n"
    "sys.path.insert(0, str(__import__('pathlib').Path(sys.argv[0]).parent))\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_milestone(name, *args, data_folder, mnist_checksums=None):
    """Run milestones/<name>.py from the project root with TINYTORCH_DATA=data_folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["TINYTORCH_DATA"] = str(data_folder)
    script = str(ROOT / "milestones" / f"{name}.py")
    command = [sys.executable, script, *args]
    if mnist_checksums is not None:
        command = [sys.executable, "-c", WITH_FIXTURE_CHECKSUMS, json.dumps(mnist_checksums), script, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def measured(out, what):
    """The percentage on the `measured: <what> = NN.NN%` line."""
    line = next(line for line in out.splitlines() if line.startswith(f"measured: {what} = "))
    return float(line.split(" = ")[1].split("%")[0])


def write_colour_cifar10(root, per_batch=240, test_size=200, seed=0):
    """cifar-10-batches-py/ with learnable images: each class has its own colour, plus pixel noise.

    Colour survives the milestone's augmentation (crop with zero padding, horizontal flip), so a
    CNN that learns reads these images; fixed random textures would be scrambled by the crop.
    """
    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(1234).integers(30, 226, size=(10, 3))
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def images(labels):
        noise = rng.integers(-60, 61, size=(len(labels), 3, 32, 32))
        pixels = np.clip(palette[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)
        return pixels.reshape(len(labels), 3072)

    for number in range(1, 6):
        labels = rng.integers(0, 10, size=per_batch)
        (folder / f"data_batch_{number}").write_bytes(
            cifar_batch_bytes(images(labels), labels.tolist(), f"training batch {number} of 5"))
    labels = rng.integers(0, 10, size=test_size)
    (folder / "test_batch").write_bytes(cifar_batch_bytes(images(labels), labels.tolist(), "testing batch 1 of 1"))
    return folder


def test_mnist_quick_meets_the_bar(tmp_path):
    fixture = write_mnist(tmp_path / "data", train_size=1200, test_size=300)
    done = run_milestone("mnist", "--quick", "--out", str(tmp_path / "out"), data_folder=tmp_path / "data",
                         mnist_checksums=fixture.checksums)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Milestone mnist: An MLP on MNIST with the full training pipeline (the backprop era) (1986)" in out
    assert "Rumelhart" in out and "bar:  >= 97.5% test accuracy  [quick mode]" in out
    assert f"data: MNIST from {tmp_path / 'data' / 'mnist'}: 1,080 training, 120 validation" in out
    assert "300 test images" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val acc" in line and " s" in line for line in epochs), out
    assert measured(out, "test accuracy (quick)") >= 88.0
    assert "|  bar: >= 88.0%  |  ok" in out and "result: bar met, 1 of 1 checks" in out
    assert (tmp_path / "out" / "mnist_best.safetensors").is_file()
    assert (tmp_path / "out" / "mnist_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mnist_misses_the_bar_when_labels_carry_no_signal(tmp_path):
    """Labels drawn independently of the images: no model can beat chance on the test split."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    checksums = {}
    for split, size in (("train", 1200), ("test", 300)):
        arrays = (rng.integers(0, 256, size=(size, 28, 28)).astype(np.uint8),
                  rng.integers(0, 10, size=size).astype(np.uint8))
        for name, array in zip(MNIST_NAMES[split], arrays):
            raw = idx_bytes(array)
            (folder / name).write_bytes(gzipped(raw))
            checksums[name] = (md5(gzipped(raw)), md5(raw))
    done = run_milestone("mnist", "--quick", "--out", str(tmp_path / "out"), data_folder=tmp_path / "data",
                         mnist_checksums=checksums)
    assert done.returncode == 1, done.stdout + done.stderr
    assert measured(done.stdout, "test accuracy (quick)") < 88.0
    assert "|  MISSED" in done.stdout and "result: bar MISSED (test accuracy (quick))" in done.stdout


def test_cifar10_quick_meets_the_bar(tmp_path):
    write_colour_cifar10(tmp_path / "data")
    done = run_milestone("cifar10", "--quick", "--out", str(tmp_path / "out"), data_folder=tmp_path / "data")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Milestone cifar10: A CNN on CIFAR-10 (LeNet 1998 -> modern CNN), the North Star (1998)" in out
    assert "Yann LeCun" in out and "Krizhevsky" in out and "[quick mode]" in out
    assert "bar for --quick: >= 25% test accuracy" in out
    assert f"CIFAR-10 from {tmp_path / 'data' / 'cifar-10-batches-py'}: 1,024 training, 64 validation" in out
    assert "200 test images" in out and "RandomCrop(32, padding=4), RandomHorizontalFlip()" in out
    assert "SGD Nesterov momentum 0.9" in out and "label smoothing 0.1" in out and "one-cycle" in out
    assert "model: 4 conv blocks (32-64-128-128 channels;" in out and "261,674 parameters" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3 and all("train loss" in line and "val acc" in line for line in epochs), out
    assert "test accuracy per class: airplane" in out
    assert "kernels: module 18's numba backend; 4 BatchNorm2d+ReLU pairs fused" in out or (
        "kernels: the plain ops" in out and "numba is not installed" in out)
    assert "each averaged with its mirror image (FlipAveraged)" in out and "one view only: accuracy" in out
    assert measured(out, "test accuracy (quick)") >= 25.0
    assert "result: bar met, 1 of 1 checks" in out
    assert (tmp_path / "out" / "cifar10_best.safetensors").is_file()
    assert (tmp_path / "out" / "cifar10_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, missing", [("mnist", "train-images-idx3-ubyte.gz"),
                                           ("cifar10", "cifar-10-python.tar.gz")])
def test_missing_data_is_a_clear_error(tmp_path, name, missing):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_milestone(name, "--quick", "--out", str(tmp_path / "out"), data_folder=empty)
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr
    assert missing in error and str(empty) in error and "TINYTORCH_DATA" in error and "--download" in error
    assert "Traceback" not in error
    assert "measured:" not in done.stdout and not (tmp_path / "out").exists()


def test_quick_and_long_exclude_each_other(tmp_path):
    done = run_milestone("cifar10", "--quick", "--long", data_folder=tmp_path)
    assert done.returncode == 2 and "--quick and --long exclude each other" in done.stderr


def test_long_setting_trains_the_wider_model():
    """--long trains six conv layers in pairs of 64, 128 and 256 channels; its parameter count
    follows from the layer shapes."""
    cifar10, cifar10_model = milestone_module("cifar10"), milestone_module("cifar10_model")
    BLOCKS, LONG_BLOCKS, build_cifar_cnn = cifar10_model.BLOCKS, cifar10_model.LONG_BLOCKS, cifar10_model.build_cifar_cnn
    from tinytorch.core.tensor import Tensor

    assert cifar10.SETTINGS["default"]["blocks"] == cifar10.SETTINGS["quick"]["blocks"] == BLOCKS
    assert cifar10.SETTINGS["long"]["blocks"] == LONG_BLOCKS
    assert [width for width, _ in LONG_BLOCKS] == [64, 64, 128, 128, 256, 256]
    model = build_cifar_cnn(blocks=LONG_BLOCKS)
    convs = 9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
    batch_norms = 2 * (64 + 64 + 128 + 128 + 256 + 256)
    classifier = 256 * 4 * 4 * 10 + 10  # three 2x2 pools: 32 -> 4
    assert sum(p.numel() for p in model.parameters()) == convs + batch_norms + classifier == 1_187_274
    logits = model(Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)))
    assert logits.shape == (2, 10) and np.isfinite(logits.data).all()


def milestone_module(name):
    """Import milestones/<name>.py (and what it imports from milestones/) as a module."""
    sys.path.insert(0, str(ROOT / "milestones"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "milestones"))


def test_flip_averaged_is_the_mean_of_both_views_and_ignores_a_mirror():
    cifar10 = milestone_module("cifar10")
    from tinytorch.core.tensor import Tensor, manual_seed

    manual_seed(0)
    model = milestone_module("cifar10_model").build_cifar_cnn().eval()
    images = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    mirrored = np.ascontiguousarray(images[:, :, :, ::-1])
    both = cifar10.FlipAveraged(model)
    expected = (model(Tensor(images)).data + model(Tensor(mirrored)).data) / 2
    np.testing.assert_allclose(both(Tensor(images)).data, expected, rtol=1e-5, atol=1e-6)
    # a mirrored photo gets the same scores: the average does not depend on which view came first
    np.testing.assert_allclose(both(Tensor(mirrored)).data, both(Tensor(images)).data, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(Tensor(images)).data, model(Tensor(mirrored)).data)


def test_backend_option_resolves_and_explains_what_is_missing(monkeypatch, capsys):
    common = milestone_module("_common")
    from tinytorch.core import acceleration

    parser = common.argparse.ArgumentParser(prog="milestones/cifar10.py")
    common.add_backend_option(parser)
    assert parser.parse_args([]).backend == "auto"
    assert common.kernel_backend(parser, "none") is None
    assert common.kernel_backend(parser, "numpy") == "numpy"
    assert common.kernel_backend(parser, "auto") == ("numba" if acceleration.NUMBA_AVAILABLE else None)
    monkeypatch.setattr(acceleration, "NUMBA_AVAILABLE", False)
    assert common.kernel_backend(parser, "auto") is None  # the plain ops: module 18's NumPy kernels are slower
    with pytest.raises(SystemExit):
        common.kernel_backend(parser, "numba")
    error = capsys.readouterr().err
    assert "--backend numba needs numba, which is not installed" in error and "pip install -e '.[accel]'" in error
