"""PyTorch's equivalent of a TinyTorch Sequential, built from the same state dict.

`tito benchmark` puts PyTorch's model next to TinyTorch's in the same suite, so that every
figure comes with a ratio. The translation walks the Sequential's layers (Flatten, Linear, ReLU,
Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d: the milestone models' layers) and builds the
`torch.nn` layer with the same arguments; the state dicts have the same keys and layouts
(Linear's weight is (out, in), Conv2d's (out, in/groups, kh, kw) in both), so the weights load
unchanged. PyTorch is imported here only: the library never needs it.

    from benchmarks.torch_equivalent import torch_system
    sut = torch_system(tinytorch_model, name="pytorch", threads=2)
"""

from __future__ import annotations

import numpy as np


def torch_module(model):
    """torch.nn.Sequential with the layers of TinyTorch Sequential `model` and its weights, in eval mode."""
    import torch
    from torch import nn

    layers = []
    for name, layer in model.named_children():
        kind = type(layer).__name__
        if kind == "Flatten":
            layers.append(nn.Flatten())
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "Linear":
            layers.append(nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None))
        elif kind == "Conv2d":
            layers.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                                    padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                                    bias=layer.bias is not None))
        elif kind == "BatchNorm2d":
            layers.append(nn.BatchNorm2d(layer.num_features, eps=layer.eps, affine=layer.affine,
                                         track_running_stats=layer.track_running_stats))
        elif kind == "MaxPool2d":
            layers.append(nn.MaxPool2d(layer.kernel_size, stride=layer.stride, padding=layer.padding,
                                       dilation=layer.dilation))
        elif kind == "AvgPool2d":
            layers.append(nn.AvgPool2d(layer.kernel_size, stride=layer.stride, padding=layer.padding))
        else:
            raise TypeError(f"torch_module: layer {name} is a {kind}, which has no PyTorch translation here; "
                            "the milestone models use Flatten, Linear, ReLU, Conv2d, BatchNorm2d and pooling")
    translated = nn.Sequential(*layers)
    state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in model.state_dict().items()}
    for key, value in translated.state_dict().items():  # e.g. num_batches_tracked is int64 in PyTorch
        if key in state:
            state[key] = state[key].to(value.dtype)
    translated.load_state_dict(state, strict=True)
    return translated.eval()


def torch_system(model, name="pytorch", threads=None):
    """A SystemUnderTest that runs PyTorch's equivalent of `model` (NumPy in, NumPy out, no grad)."""
    import torch

    from tinytorch.core.benchmarking import SystemUnderTest, state_bytes

    if threads is not None:
        torch.set_num_threads(threads)
    translated = torch_module(model)

    def predict(inputs):
        with torch.inference_mode():
            return translated(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()

    size = sum(t.numel() * t.element_size() for t in translated.state_dict().values())
    return SystemUnderTest(predict, f"{name} ({torch.get_num_threads()} threads)", size_bytes=size or state_bytes(model))
