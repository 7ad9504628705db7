"""Checkpoint 09 (Vision): Can I build convolutional networks that see?

Capability: run a convolution and pooling on an NCHW batch and get the textbook numbers.
"""

import numpy as np

from tinytorch.core.spatial import Conv2d, MaxPool2d
from tinytorch.core.tensor import Tensor, manual_seed


def reference_conv(images, weight, bias):
    batch, _, height, width = images.shape
    out_channels, _, kh, kw = weight.shape
    out = np.zeros((batch, out_channels, height - kh + 1, width - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = images[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.tensordot(patch, weight, axes=([1, 2, 3], [1, 2, 3]))
    return out + bias[None, :, None, None]


def test_i_can_convolve_a_batch_of_images():
    manual_seed(0)
    conv = Conv2d(3, 4, kernel_size=3)
    images = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = conv(Tensor(images))
    assert out.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(out.numpy(), reference_conv(images, conv.weight.numpy(), conv.bias.numpy()),
                               rtol=1e-4, atol=1e-5)


def test_i_can_pool_features():
    features = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    pooled = MaxPool2d(2)(Tensor(features))
    assert pooled.numpy().tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
