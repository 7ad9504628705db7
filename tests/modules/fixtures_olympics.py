"""A small, honest Torch Olympics setting for the tests of module 20 and `tito olympics`.

MNIST-format fixture files (tests/modules/fixtures_data.py: learnable class templates plus
noise) in a temporary data folder, and the MNIST milestone's own MLP (milestones/mnist.py's
build_mlp, 784-512-256-10) trained on them for a few full-batch steps: a real float32 baseline
with a real accuracy, in about a second.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (backward())
from tests.modules.fixtures_data import write_mnist
from tinytorch.core import dataloader
from tinytorch.core.benchmarking import BenchmarkSettings, import_builder
from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.training import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
_TRAINED = {}  # "baseline" / "narrow" -> state dict, trained on the first use
SETTINGS = BenchmarkSettings(min_duration_s=0.1, min_query_count=40, warmup_queries=3)
NARROW_BUILDER = (
    "from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential\n\n\n"
    "def build():\n"
    "    return Sequential(Flatten(), Linear(784, 32), ReLU(), Linear(32, 10))\n"
)


@dataclass
class OlympicsSetting:
    data: Path  # the data folder holding mnist/
    baseline: Path  # the trained float32 MLP's checkpoint
    narrow_builder: str  # a builder spec of another architecture (784-32-10)
    narrow: Path  # its trained checkpoint
    folder: Path


def train(model, data, steps, seed=0):
    split = dataloader.MNIST(data, train=True)
    transform = dataloader.Compose([dataloader.ToTensor(), dataloader.Normalize(dataloader.MNIST_MEAN, dataloader.MNIST_STD)])
    x, train_labels = transform.batch(split.data), split.targets
    optimizer, loss_fn = Adam(model.parameters(), lr=1e-3), CrossEntropyLoss()
    for _ in range(steps):
        loss = loss_fn(model(x), Tensor(train_labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@contextlib.contextmanager
def olympics_setting(folder: Path):
    """Write the fixture data, train the baseline and a narrower model; patch MNIST's checksums meanwhile."""
    folder = Path(folder)
    fixture = write_mnist(folder / "data", train_size=300, test_size=120, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        for name, checksums in fixture.checksums.items():
            patch.setitem(dataloader.MNIST_FILES, name, checksums)
        build_mlp = import_builder("milestones/mnist.py:build_mlp", ROOT)
        model, narrow = build_mlp(), Sequential(Flatten(), Linear(784, 32), ReLU(), Linear(32, 10))
        if not _TRAINED:  # the data and the seeds are fixed: train once per test process
            manual_seed(0)
            _TRAINED["baseline"] = train(model, folder / "data", 12).state_dict()
            manual_seed(1)
            _TRAINED["narrow"] = train(narrow, folder / "data", 40).state_dict()
        model.load_state_dict(_TRAINED["baseline"])
        narrow.load_state_dict(_TRAINED["narrow"])
        baseline = save_checkpoint(folder / "baseline.safetensors", model.eval())
        (folder / "narrow.py").write_text(NARROW_BUILDER)
        narrow_path = save_checkpoint(folder / "narrow.safetensors", narrow.eval())
        yield OlympicsSetting(folder / "data", baseline, f"{folder / 'narrow.py'}:build", narrow_path, folder)


def rounded_copy(setting: OlympicsSetting, path: Path) -> Path:
    """The baseline with every weight rounded to float16 (stored back as float32): an optimised entry."""
    from tinytorch.core.training import load_checkpoint

    model = import_builder("milestones/mnist.py:build_mlp", ROOT)()
    load_checkpoint(setting.baseline, model)
    model.load_state_dict({k: v.astype(np.float16).astype(np.float32) for k, v in model.state_dict().items()})
    return save_checkpoint(path, model)
