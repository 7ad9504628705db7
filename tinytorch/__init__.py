"""TinyTorch: a PyTorch-like deep-learning framework built from scratch on NumPy.

This file is written by hand (it is not exported from a module): it gathers the public API of
the modules into PyTorch-shaped names. `from tinytorch import Tensor` works like
`from tinytorch.core.tensor import Tensor`.
"""

from tinytorch.core.tensor import (
    Tensor,
    arange,
    cat,
    full,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)

from tinytorch.core.activations import log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # turns gradients on
from tinytorch import data, nn, optim

__version__ = "0.1.0"
