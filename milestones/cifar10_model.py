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
    model = build_cifar_cnn(blocks=LONG_BLOCKS)  # the --long setting's 64-64-128-128-256-256 network
"""

from __future__ import annotations

from tinytorch.core.layers import Flatten, Linear, ReLU, Sequential
from tinytorch.core.spatial import BatchNorm2d, Conv2d, MaxPool2d

# (out_channels, max pool after the block?) for each 3x3 conv block; the input has 3 channels.
BLOCKS = ((32, True), (64, True), (128, True), (128, False))
# The milestone's --long setting trains a wider, deeper network for its hour: six conv layers in
# pairs of 64, 128 and 256 channels (a VGG-style stack), a pool after the first of each pair, then
# the same flatten and linear classifier. 1,187,274 parameters and 136 MFLOP per image forward
# (5.3x BLOCKS), about 237 s an epoch here with numba. BLOCKS is too small to use an hour: after 16
# epochs it fits its augmented training images hardly better than held-out ones (86.9% against
# 85.2%); this one reached 87.54% in 14 epochs (55.2 min) where BLOCKS' wider-last-block variant
# (32-64-128-192) reached 84.21% in 17.
LONG_BLOCKS = ((64, True), (64, False), (128, True), (128, False), (256, True), (256, False))
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
