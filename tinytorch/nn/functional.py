"""PyTorch-shaped functional namespace (written by hand): `import tinytorch.nn.functional as F`."""

from tinytorch.core.activations import gelu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from tinytorch.core.spatial import adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d, max_pool2d
from tinytorch.core.embeddings import embedding
from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.core.transformer import layer_norm
