"""`tinytorch.nn.init` (written by hand), as `torch.nn.init`: fill a tensor in place."""

from tinytorch.core.layers import normal_, uniform_  # noqa: F401
