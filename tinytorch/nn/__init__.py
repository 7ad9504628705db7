"""PyTorch-shaped `nn` namespace (written by hand): `from tinytorch import nn; nn.Linear(...)`."""

from tinytorch.core.layers import (  # the activations in their Module form (module 03), as torch.nn's
    GELU,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Linear,
    LogSoftmax,
    Module,
    ModuleList,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinytorch.core.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from tinytorch.core.spatial import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2D, Conv2d, MaxPool2d
from tinytorch.core.embeddings import Embedding, LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.transformer import MLP, LayerNorm, TransformerBlock
from tinytorch.nn import functional, init, utils
