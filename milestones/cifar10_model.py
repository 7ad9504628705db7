"""The CIFAR-10 milestone's CNN, defined once: the milestone trains it, the benchmark times it.

A compact modern CNN that follows the description of the PyTorch reference run of the
course's issue (a 5-layer CNN with 32, 64 and 128 channels and batch norm, which PyTorch trains
to 75% test accuracy in 4 epochs on the course's 2-core machine): 5 weight layers, 3x3
convolutions, batch norm, max pooling. It reads top to bottom like its figure:

    input 3x32x32
    conv 3x3,   3 -> 32,  BN, ReLU, max pool 2x2      16x16
    conv 3x3,  32 -> 64,  BN, ReLU, max pool 2x2       8x8
    conv 3x3,  64 -> 128, BN, ReLU, max pool 2x2       4x4
    conv 3x3, 128 -> 128, BN, ReLU                     4x4
    flatten, linear 2048 -> 10

About 262,000 parameters and 1.6 GFLOP for the forward pass of a batch of 64 (about
4.8 GFLOP for a training step). Pooling after the first convolution keeps the expensive layers
at 16x16 and below: an earlier version ran the 32 -> 64 convolution at full 32x32 resolution
and cost four times the FLOPs, which made an epoch take about 12 minutes here instead of 4.
The convolutions have no bias: the batch norm that follows subtracts the channel's mean,
which would cancel any bias, and adds its own shift (beta).

    import sys; sys.path.insert(0, "milestones")
    from cifar10_model import build_cifar_cnn
    model = build_cifar_cnn()                    # BLOCKS
    model = build_cifar_cnn(blocks=LONG_BLOCKS)  # the --long setting's wider last block
"""

from __future__ import annotations

from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, MaxPool2d

# (out_channels, max pool after the block?) for each 3x3 conv block; the input has 3 channels.
BLOCKS = ((32, True), (64, True), (128, True), (128, False))
# The milestone's --long setting widens the last block to 192 channels. That block works on 4x4
# maps, so its extra 1.2 million multiply-adds per image cost little: one training step at batch 128
# took 485 ms against 489 ms for BLOCKS on this 2-core machine (12 repeats, medians). The extra
# capacity is for a run long enough to use it: after 16 epochs BLOCKS still fits its augmented
# training images no better than the held-out ones (86.9% against 85.2%).
LONG_BLOCKS = ((32, True), (64, True), (128, True), (192, False))
IMAGE_SIZE = 32
NUM_CLASSES = 10


def conv_block(in_channels, out_channels, pool):
    """conv 3x3 (padding 1, no bias) -> batch norm -> ReLU [-> max pool 2x2]."""
    layers = [Conv2d(in_channels, out_channels, 3, padding=1, bias=False), BatchNorm2d(out_channels), ReLU()]
    return layers + [MaxPool2d(2)] if pool else layers


def build_cifar_cnn(num_classes=NUM_CLASSES, blocks=BLOCKS, in_channels=3, image_size=IMAGE_SIZE):
    """The milestone's CNN as a Sequential (layer names "0", "1", ... as in PyTorch's Sequential)."""
    layers, channels, size = [], in_channels, image_size
    for out_channels, pool in blocks:
        layers += conv_block(channels, out_channels, pool)
        channels, size = out_channels, size // 2 if pool else size
    return Sequential(*layers, Flatten(), Linear(channels * size * size, num_classes))
