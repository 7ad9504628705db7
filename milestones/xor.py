"""Milestone `xor`: a single layer cannot learn XOR; a hidden layer trained by backprop can.

In 1969 Minsky and Papert's book *Perceptrons* proved what a single layer of threshold units
cannot compute — the simplest case is XOR, whose two classes no straight line separates. Any
line gets at most 3 of the 4 points right: 75%. In 1986 Rumelhart, Hinton and Williams showed
that a network with a hidden layer, trained by back-propagating errors, learns XOR (and much
more). This script replays both with TinyTorch: the same data, the same loss
(`BCEWithLogitsLoss`, module 04), autograd (module 05) and Adam (module 06) for both models;
only the hidden layer differs.

    python milestones/xor.py [--quick] [--seed N]

Bar: the single layer stays at or below 75%; the two-layer MLP reaches 100% (in full mode, on
every one of five seeds).
"""

from __future__ import annotations

import math

import numpy as np
from _common import Milestone, run

import tinytorch.core.autograd  # noqa: F401  (importing it turns on Tensor.backward())
from tinytorch.core.activations import tanh
from tinytorch.core.layers import Linear, Module
from tinytorch.core.losses import BCEWithLogitsLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor, manual_seed

STORY = """
Minsky and Papert (1969) proved that a single-layer perceptron cannot compute XOR: no line
separates {(0,1), (1,0)} from {(0,0), (1,1)}. Rumelhart, Hinton and Williams (1986) trained a
network with a hidden layer by back-propagation, and it learned XOR.
"""

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_TARGETS = np.array([[0], [1], [1], [0]], dtype=np.float32)


class TwoLayerMLP(Module):
    """x -> tanh(x W1^T + b1) -> W2^T + b2: one hidden layer, one logit out."""

    def __init__(self, hidden=4):
        super().__init__()
        self.hidden = Linear(2, hidden)
        self.output = Linear(hidden, 1)

    def forward(self, x):
        return self.output(tanh(self.hidden(x)))


def train(model, epochs, lr):
    """Full-batch training on the four XOR points; returns (accuracy, final loss)."""
    inputs, targets = Tensor(XOR_INPUTS), Tensor(XOR_TARGETS)
    loss_fn = BCEWithLogitsLoss()
    optimizer = Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    logits = model(inputs)
    predictions = (logits.data > 0).astype(np.float32)  # logit > 0 means probability > 0.5
    return float((predictions == XOR_TARGETS).mean()), loss_fn(logits, targets).item()


def main(argv=None) -> int:
    milestone = Milestone(
        "xor",
        people="Marvin Minsky and Seymour Papert (1969); David Rumelhart, Geoffrey Hinton and Ronald Williams (1986)",
        story=STORY,
    )
    parser = milestone.parser()
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 300, quick 150)")
    args = milestone.parse_args(parser, argv)
    epochs = args.epochs if args.epochs is not None else (150 if args.quick else 300)
    seeds = [args.seed] if args.quick else [args.seed + k for k in range(5)]

    milestone.step("data: the four XOR points, targets [0, 1, 1, 0]")
    milestone.step(f"training: full batch, BCEWithLogitsLoss, Adam, {epochs} epochs, seeds {seeds}")
    single, mlp = [], []
    for seed in seeds:
        manual_seed(seed)
        accuracy, loss = train(Linear(2, 1), epochs, lr=0.1)
        single.append(accuracy)
        milestone.step(f"seed {seed}: single layer Linear(2, 1)     accuracy {accuracy:6.1%}, loss {loss:.4f}")
        manual_seed(seed)
        accuracy, loss = train(TwoLayerMLP(hidden=4), epochs, lr=0.1)
        mlp.append(accuracy)
        milestone.step(f"seed {seed}: MLP 2 -> 4 (tanh) -> 1         accuracy {accuracy:6.1%}, loss {loss:.4f}")
    milestone.step(f"a line's best loss on XOR is ln 2 = {math.log(2):.4f}: it can only answer 0.5 everywhere")
    print()
    milestone.check("single-layer accuracy (best seed)", f"{max(single):.1%}", "<= 75%", max(single) <= 0.75)
    milestone.check("MLP accuracy (worst seed)", f"{min(mlp):.1%}", "100%", min(mlp) == 1.0)
    return milestone.finish()


if __name__ == "__main__":
    run(main, "xor")
