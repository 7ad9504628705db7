"""PyTorch-shaped `optim` namespace (written by hand): `tinytorch.optim.Adam(model.parameters(), lr=1e-3)`."""

from tinytorch.core.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from tinytorch.optim import lr_scheduler
