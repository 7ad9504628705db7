"""Milestone `perceptron`: Rosenblatt's learning rule (1957) on linearly separable 2-D data.

Frank Rosenblatt's perceptron learned from its mistakes: show it an example; if it answers
wrongly, add the example to the weights (or subtract it); otherwise do nothing. No loss
function, no derivative — and yet, when a straight line can separate the two classes, the rule
is guaranteed to find one in a finite number of mistakes (Novikoff, 1962: at most (R/gamma)^2,
where R bounds the length of the examples and gamma is the margin of a separating line).

This script builds the perceptron from TinyTorch's own parts — a `Linear` layer (module 03)
holds the weights, a step function made from module 01's `where` decides — trains it with the
perceptron rule (no autograd, no optimizer), and checks the bar: 100% training accuracy.

    python milestones/perceptron.py [--quick] [--seed N]
"""

from __future__ import annotations

import numpy as np
from _common import Milestone, run

from tinytorch.core.layers import Linear
from tinytorch.core.tensor import Tensor, manual_seed, ones_like, where

STORY = """
Rosenblatt's perceptron (Cornell Aeronautical Laboratory, 1957) was the first machine that
learned its weights from examples. Its rule: on a mistake, w <- w + y x and b <- b + y.
Novikoff (1962) proved it converges whenever the data are linearly separable.
"""


def separable_clusters(n_per_class, margin=0.3, seed=0):
    """Two Gaussian clusters in 2-D on either side of a random line, at least `margin` from it.

    Returns inputs (2n, 2) float32, labels (2n,) in {-1, +1}, and the separating line
    (unit normal `direction`, `offset`): label = sign(direction . x - offset).
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    offset = rng.uniform(-1.0, 1.0)
    inputs, labels = [], []
    for label in (-1, 1):
        centre = (offset + 1.0 * label) * direction
        points = rng.normal(centre, 1.0, size=(4 * n_per_class, 2))
        distance = label * (points @ direction - offset)
        kept = points[distance >= margin][:n_per_class]  # drop points inside the margin band
        inputs.append(kept)
        labels.append(np.full(len(kept), label))
    order = rng.permutation(2 * n_per_class)
    inputs = np.concatenate(inputs)[order].astype(np.float32)
    labels = np.concatenate(labels)[order]
    return inputs, labels, direction, offset


def step(scores):
    """Rosenblatt's threshold unit: +1 where the score is >= 0, else -1."""
    ones = ones_like(scores)
    return where(scores >= 0, ones, -ones)


def train_perceptron(layer, inputs, labels, max_epochs, rng):
    """The perceptron rule, one example at a time, until an epoch makes no mistake.

    Returns (epochs run, total weight updates, whether it converged).
    """
    weight, bias = layer.weight.data, layer.bias.data  # updated in place: no autograd needed
    updates = 0
    for epoch in range(1, max_epochs + 1):
        mistakes = 0
        for i in rng.permutation(len(labels)):
            example = Tensor(inputs[i : i + 1])
            prediction = step(layer(example)).item()
            if prediction != labels[i]:
                weight += labels[i] * inputs[i]
                bias += labels[i]
                mistakes += 1
        updates += mistakes
        if mistakes == 0:
            return epoch, updates, True
    return max_epochs, updates, False


def novikoff_bound(inputs, labels, direction, offset):
    """(R / gamma)^2 for the generating line, in the augmented space (x, 1) where b is a weight."""
    augmented = np.hstack([inputs, np.ones((len(inputs), 1))])
    separator = np.append(direction, -offset)
    separator /= np.linalg.norm(separator)
    radius = np.linalg.norm(augmented, axis=1).max()
    gamma = (labels * (augmented @ separator)).min()
    return (radius / gamma) ** 2


def main(argv=None) -> int:
    milestone = Milestone(
        "perceptron",
        people="Frank Rosenblatt (1957); convergence theorem: Albert Novikoff (1962)",
        story=STORY,
    )
    parser = milestone.parser()
    parser.add_argument("--epochs", type=int, default=100, help="most epochs to train (0: do not train)")
    args = milestone.parse_args(parser, argv)

    n_per_class = 50 if args.quick else 500
    inputs, labels, direction, offset = separable_clusters(n_per_class, seed=args.seed)
    milestone.step(f"data: {len(labels)} points in 2-D, two clusters, each at least 0.3 from a separating line")

    manual_seed(args.seed)
    layer = Linear(2, 1)
    layer.weight.data[...] = 0.0  # Rosenblatt's start: every weight zero
    layer.bias.data[...] = 0.0
    epochs, updates, converged = train_perceptron(
        layer, inputs, labels, args.epochs, np.random.default_rng(args.seed)
    )
    predictions = step(layer(Tensor(inputs))).data.reshape(-1)
    accuracy = float((predictions == labels).mean())

    state = "converged" if converged else "did not converge"
    milestone.step(f"perceptron rule: {state} after {epochs} epoch(s), {updates} weight updates")
    bound = novikoff_bound(inputs, labels, direction, offset)
    milestone.step(f"Novikoff's bound for this data: at most {bound:,.0f} updates")
    w, b = layer.weight.data[0], layer.bias.data[0]
    milestone.step(f"learned line: w = ({w[0]:.2f}, {w[1]:.2f}), b = {b:.2f}")
    print()
    milestone.check("training accuracy", f"{accuracy:.1%}", "100%", accuracy == 1.0)
    return milestone.finish()


if __name__ == "__main__":
    run(main, "perceptron")
