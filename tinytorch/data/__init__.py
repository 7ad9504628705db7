"""PyTorch-shaped data namespace (written by hand): `from tinytorch.data import DataLoader, TensorDataset`."""

from tinytorch.core.dataloader import (
    CIFAR10,
    MNIST,
    ArrayDataset,
    Compose,
    DataLoader,
    Dataset,
    DatasetError,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    TensorDataset,
    TinyShakespeare,
    ToTensor,
    default_collate,
    random_split,
)
