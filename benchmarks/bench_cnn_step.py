"""Benchmark: the CIFAR-10 CNN's training step and its largest conv layer, TinyTorch against PyTorch.

Two measurements, TinyTorch and PyTorch with the same threads on the same data, each candidate
timed alone in its own process (benchmarks/_timing.py), median of several repeats after warmup:

(a) one convolution layer, forward + backward: 32 -> 64 channels, 3x3, padding 1, a batch of
    64 images of 32x32 (the layer the course's issue names; 2.4 GFLOP forward, 7.2 GFLOP in all);
(b) one training step of the CIFAR-10 milestone's model (milestones/cifar10_model.py) at batch
    64 (the milestone trains at batch 128, 375 steps per epoch):

        loss = cross_entropy(model(x), y, label_smoothing=0.1)
        optimizer.zero_grad(); loss.backward()
        optimizer.step()        # SGD, momentum 0.9, Nesterov, weight decay 5e-4

Goals: the conv layer within about 2x PyTorch, the training step at most 1.5x.
The machine is shared: the script prints the load average next to the figures; compare ratios,
not absolute times, and measure when the load is low. Both frameworks use the same number of
threads: PyTorch is set to OPENBLAS_NUM_THREADS when that variable is set (NumPy's BLAS reads
it at start-up), so `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_cnn_step.py` compares one
core against one core, a figure that a busy machine disturbs less.

    python benchmarks/bench_cnn_step.py [--repeats 10] [--warmup 2] [--batch 64]

PyTorch is needed only here, as the reference; TinyTorch never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "milestones"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # the checkout's own tinytorch, and the milestone's model

from _timing import compare, machine_summary, print_table  # noqa: E402
from cifar10_model import build_cifar_cnn  # noqa: E402

import tinytorch.core.autograd  # noqa: E402,F401  (turns on Tensor.backward())
from tinytorch.core.losses import cross_entropy  # noqa: E402
from tinytorch.core.optimizers import SGD  # noqa: E402
from tinytorch.core.spatial import Conv2d  # noqa: E402
from tinytorch.core.tensor import Tensor, manual_seed  # noqa: E402

LEARNING_RATE, MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING = 0.05, 0.9, 5e-4, 0.1


def conv_layer_candidates(torch, batch):
    """Forward + backward of a 32->64, 3x3, padding-1 conv layer in both frameworks."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 32), dtype=np.float32)
    upstream = rng.standard_normal((batch, 64, 32, 32), dtype=np.float32)
    manual_seed(0)
    ours = Conv2d(32, 64, 3, padding=1)
    theirs = torch.nn.Conv2d(32, 64, 3, padding=1)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.numpy()))
        theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))
    our_x = Tensor(x, requires_grad=True)
    their_x, their_upstream = torch.from_numpy(x).requires_grad_(), torch.from_numpy(upstream)

    def tinytorch_layer():
        our_x.grad = None
        ours.zero_grad()
        ours(our_x).backward(upstream)

    def pytorch_layer():
        their_x.grad = None
        theirs.zero_grad()
        theirs(their_x).backward(their_upstream)

    # Same weights, same data: the two must agree before their times mean anything.
    tinytorch_layer(), pytorch_layer()
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(our_x.grad, their_x.grad.numpy(), rtol=1e-3, atol=1e-3)
    return {"tinytorch": tinytorch_layer, "pytorch": pytorch_layer}


def torch_cifar_cnn(torch, ours):
    """PyTorch's twin of the milestone's CNN, holding a copy of our model's weights."""
    nn = torch.nn
    layers = []
    for layer in ours:
        kind = type(layer).__name__
        if kind == "Conv2d":
            layers.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                    layer.padding, bias=layer.bias is not None))
        elif kind == "BatchNorm2d":
            layers.append(nn.BatchNorm2d(layer.num_features))
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "MaxPool2d":
            layers.append(nn.MaxPool2d(layer.kernel_size, layer.stride))
        elif kind == "Flatten":
            layers.append(nn.Flatten())
        elif kind == "Linear":
            layers.append(nn.Linear(layer.in_features, layer.out_features))
        else:
            raise TypeError(f"torch_cifar_cnn: no PyTorch twin for layer {kind}")
    model = nn.Sequential(*layers)
    model.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in ours.state_dict().items()})
    return model


def training_step_candidates(torch, batch, fuse=False):
    """One SGD training step of the CIFAR CNN in both frameworks, from the same weights and batch.

    fuse=True first rewrites TinyTorch's BatchNorm2d + ReLU pairs as module 18's BatchNormReLU2d.
    """
    rng = np.random.default_rng(1)
    images = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    manual_seed(0)
    ours = build_cifar_cnn()
    theirs = torch_cifar_cnn(torch, ours)
    if fuse:  # after the twin is made: the fused model keeps the same state under the same names
        from tinytorch.core.acceleration import fuse_batchnorm_relu

        fuse_batchnorm_relu(ours)
    our_optimizer = SGD(ours.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    their_optimizer = torch.optim.SGD(theirs.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                      weight_decay=WEIGHT_DECAY, nesterov=True)
    our_x, our_y = Tensor(images), Tensor(labels)
    their_x, their_y = torch.from_numpy(images), torch.from_numpy(labels)

    def tinytorch_step():
        loss = cross_entropy(ours(our_x), our_y, label_smoothing=LABEL_SMOOTHING)
        our_optimizer.zero_grad()
        loss.backward()
        our_optimizer.step()
        return loss.item()

    def pytorch_step():
        loss = torch.nn.functional.cross_entropy(theirs(their_x), their_y, label_smoothing=LABEL_SMOOTHING)
        their_optimizer.zero_grad()
        loss.backward()
        their_optimizer.step()
        return loss.item()

    first_losses = (tinytorch_step(), pytorch_step())
    if not np.isclose(*first_losses, rtol=1e-4):
        raise AssertionError(f"the two models disagree on the first step's loss: {first_losses}")
    parameters = sum(p.numel() for p in ours.parameters())
    return {"tinytorch": tinytorch_step, "pytorch": pytorch_step}, parameters


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per candidate (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("bench_cnn_step needs PyTorch as the reference: pip install torch==2.13.0") from None
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))

    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"machine: {machine_summary()}; numpy {np.__version__} (OPENBLAS_NUM_THREADS={blas_threads}), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    flops = 3 * 2 * args.batch * 64 * 32 * 32 * 32 * 3 * 3  # forward 2*N*O*Ho*Wo*C*kh*kw, backward twice that
    results = compare(conv_layer_candidates(torch, args.batch), repeats=args.repeats, warmup=args.warmup)
    layer_ratio = print_table(results, baseline="pytorch",
                              title=f"(a) conv 32->64, 3x3, pad 1, batch {args.batch}, 32x32: forward + backward "
                                    f"({flops / 1e9:.1f} GFLOP)")["tinytorch"]
    for name, timing in results.items():
        print(f"  {name}: {flops / timing.median / 1e9:.1f} GFLOP/s")

    candidates, parameters = training_step_candidates(torch, args.batch)
    results = compare(candidates, repeats=args.repeats, warmup=args.warmup)
    step_ratio = print_table(results, baseline="pytorch",
                             title=f"(b) CIFAR-10 CNN training step, batch {args.batch} ({parameters:,} parameters): "
                                   "forward, cross-entropy (label smoothing 0.1), backward, SGD Nesterov")["tinytorch"]
    epoch = results["tinytorch"].median * 50_000 / args.batch
    print(f"  one epoch of 50,000 images at this speed: TinyTorch {epoch / 60:.1f} min, "
          f"PyTorch {results['pytorch'].median * 50_000 / args.batch / 60:.1f} min")
    print(f"goals: conv layer about 2x PyTorch (measured {layer_ratio:.2f}x), "
          f"training step <= 1.5x (measured {step_ratio:.2f}x)")
    print(f"machine after the run: {machine_summary()}")


if __name__ == "__main__":
    main()
