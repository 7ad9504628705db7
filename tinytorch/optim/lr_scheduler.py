"""`tinytorch.optim.lr_scheduler` (written by hand), as `torch.optim.lr_scheduler`."""

from tinytorch.core.optimizers import CosineAnnealingLR, CosineWarmupLR, LambdaLR, LRScheduler, StepLR
