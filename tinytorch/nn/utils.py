"""`tinytorch.nn.utils` (written by hand), as `torch.nn.utils`."""

from tinytorch.core.optimizers import clip_grad_norm_
