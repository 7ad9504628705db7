# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 08: DataLoader
#
# *Can I feed real datasets to a model efficiently?*
#
# A training loop asks one question over and over: "give me the next batch". How fast that
# answer comes decides whether your processor computes or waits. A CNN step on a CIFAR-10 batch
# takes tens of milliseconds; if fetching and augmenting the batch takes as long, training is
# twice as slow as it should be. In this module you build the pipe between the files on disk
# and the model: datasets, batching, shuffling, augmentation, and the download code that gets
# the real data there in the first place.
#
# ## Learning objectives
# - Describe data with PyTorch's protocol: a `Dataset` has `__len__` and `__getitem__`;
#   `TensorDataset(X, y)` wraps arrays you already hold.
# - Build `DataLoader(dataset, batch_size, shuffle, drop_last)`: a new random order every epoch,
#   reproducible with a seed, and a `collate` step that stacks samples into batch tensors.
# - **Vectorise the pipeline**: fetch a whole batch with one fancy-index gather instead of a
#   Python loop per sample, and run random crops and flips on the whole batch at once. Measure
#   the difference in samples per second.
# - Read MNIST, CIFAR-10 and Tiny Shakespeare in their official file formats, downloaded with
#   checksums, cached, and never half-written.
# - Measure what storage costs: a dataset kept as `uint8` against the same data in `float32`.
#
# ## How to work through this module
# Each step has a short explanation, a code cell with `### BEGIN SOLUTION` / `### END SOLUTION`
# (in your edition: a `raise NotImplementedError` to replace), and a test cell right after it.
# When every step passes:
#
# ```
# tito module complete 08
# ```
#
# exports your code to `tinytorch/core/dataloader.py` and grades it with
# `tests/modules/test_08_dataloader.py`.

# %% [markdown]
# ## Mathematical foundations
#
# **Epochs and batches.** One epoch is one pass over the $N$ samples of a dataset in batches of
# $B$. That takes $\lceil N / B \rceil$ batches, the last one holding $N - B \lfloor N/B \rfloor$
# samples when $B$ does not divide $N$; with `drop_last=True` the short batch is skipped and an
# epoch has $\lfloor N/B \rfloor$ batches (useful when a layer such as batch norm dislikes a batch of 3).
#
# **Shuffling.** Each epoch draws a fresh uniformly random permutation $\pi$ of $\{0,\dots,N-1\}$
# and cuts it into batches. Every sample is seen exactly once per epoch (sampling *without*
# replacement), and each batch is a uniformly random subset, so the mean gradient of a batch is an
# unbiased estimate of the full-data gradient, $\mathbb{E}[\nabla L_{\text{batch}}] = \nabla L$.
# Without shuffling, a file sorted by class would feed the model a thousand cats, then a thousand
# dogs: each step's gradient would point the wrong way for most of the data.
#
# **Normalisation.** An 8-bit pixel $p \in \{0,\dots,255\}$ becomes $x = p/255 \in [0,1]$, then
# per channel $c$: $x' = (x - \mu_c)/\sigma_c$, with $\mu_c, \sigma_c$ the mean and standard
# deviation of channel $c$ over the training set. Inputs near zero mean and unit variance keep
# the first layer's activations in a range where its initial weights work.
#
# **Augmentation.** A random crop of size $H \times W$ from an image padded by $p$ pixels on every
# side chooses one of $(2p+1)^2$ offsets; a random horizontal flip doubles that. For CIFAR-10's
# usual $p = 4$: $81 \times 2 = 162$ slightly different versions of every image, for free.
#
# **Memory.** $N$ images of $C \times H \times W$ pixels take $NCHW$ bytes as `uint8` and $4NCHW$
# as `float32`. For the 50,000 CIFAR-10 training images: 153,600,000 bytes against 614,400,000.
# Keep the dataset in `uint8` and convert one batch at a time.

# %%
#| export
import codecs
import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import pickletools
import shutil
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch_base.files import open_atomic
from tinytorch.core.tensor import Tensor, check_positive_int, randint

# %% [markdown]
# Two small helpers used throughout: everything inside the pipeline is a NumPy array (fast
# to index and slice), and only what leaves it becomes a `Tensor`. Random choices (shuffling,
# crops, flips) each own a NumPy generator: give it a `seed` (or your own `generator`) for a
# reproducible run; without one, it is seeded from `tinytorch`'s global generator, so
# `manual_seed(0)` at the top of a script makes the whole run repeatable, as `torch.manual_seed`
# does in PyTorch.

# %%
#| export
def _array(x):
    """The NumPy array behind a Tensor (shared, not copied), or `x` as an array."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _make_generator(seed=None, generator=None):
    """A NumPy generator: the one given, one seeded with `seed`, or one seeded from manual_seed's."""
    if seed is not None and generator is not None:
        raise ValueError("pass seed= or generator=, not both")
    if generator is not None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator (np.random.default_rng(0)), got {type(generator).__name__}")
        return generator
    if seed is None:
        seed = int(randint(0, 2**62, ()).item())  # follows tinytorch.manual_seed
    return np.random.default_rng(seed)

# %% [markdown]
# ## Step 1: Dataset and TensorDataset
#
# PyTorch's data protocol is two methods: `len(dataset)` is the number of samples and
# `dataset[i]` is sample `i`, usually a tuple `(input, target)`. Anything that answers both is
# a dataset: a folder of JPEGs decoded on demand, a table in memory, a generator of synthetic
# puzzles. `Dataset` is the abstract base class that says so.
#
# A third, optional method is our addition, and it is where speed comes from:
# `dataset.get_batch(indices)` returns a whole **batch** for an array of indices. The base class
# answers it the slow way (one `dataset[i]` per index, then `default_collate` from Step 2), and a
# dataset whose samples live in arrays overrides it with **one fancy-index gather**:
# `X[indices]` copies 128 rows in one C loop, where 128 calls of `X[i]` pay Python's overhead 128
# times.
#
# `TensorDataset(X, y)` is the simplest array-backed dataset: sample `i` is `(X[i], y[i])`.
# All its tensors must agree on the number of samples, their first dimension.

# %%
#| export
class Dataset:
    """A map from an index to a sample. Subclasses define __len__ and __getitem__ (PyTorch's protocol)."""

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__: the number of samples")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__: the sample at an index")

    def get_batch(self, indices):
        """The samples at `indices` collated into one batch (array-backed datasets do this faster)."""
        return default_collate([self[i] for i in np.asarray(indices).tolist()])


class TensorDataset(Dataset):
    """Samples are slices of tensors along their first dimension: dataset[i] == (t[i] for t in tensors)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor, e.g. TensorDataset(images, labels)")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        shapes = [t.shape for t in self.tensors]
        if any(len(shape) == 0 for shape in shapes) or len({shape[0] for shape in shapes}) != 1:
            raise ValueError(
                f"TensorDataset: every tensor needs the same first dimension (the number of samples), "
                f"got shapes {', '.join(map(str, shapes))}"
            )

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        """Sample `index`: a tuple with one Tensor per wrapped tensor.

        TODO: slice every tensor at `index`, keeping each tensor's dtype.
        HINT: work on `t.data` (the NumPy array) so no autograd graph is recorded, and pass
              `dtype=t.dtype` to Tensor so float64 data stays float64.
        """
        ### BEGIN SOLUTION
        return tuple(Tensor(t.data[index], dtype=t.dtype) for t in self.tensors)
        ### END SOLUTION

    def get_batch(self, indices):
        """The samples at `indices` as one batch: a tuple with one Tensor per wrapped tensor.

        TODO: gather all the rows at once with fancy indexing, no Python loop over the indices.
        HINT: `array[indices]` with an integer array `indices` returns those rows, stacked.
        """
        ### BEGIN SOLUTION
        return tuple(Tensor(t.data[indices], dtype=t.dtype) for t in self.tensors)
        ### END SOLUTION

# %%
def test_unit_tensor_dataset():
    features = Tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    labels = Tensor(np.array([0, 1, 0, 1, 1, 0]))
    dataset = TensorDataset(features, labels)
    assert len(dataset) == 6
    x, y = dataset[2]
    assert x.numpy().tolist() == [4.0, 5.0] and y.item() == 0 and y.dtype == np.int64
    xb, yb = dataset.get_batch(np.array([5, 0, 3]))
    assert xb.shape == (3, 2) and yb.numpy().tolist() == [0, 0, 1]
    try:
        TensorDataset(features, Tensor([1, 2, 3]))
        raise AssertionError("6 features and 3 labels must be rejected")
    except ValueError as error:
        assert "(6, 2)" in str(error) and "(3,)" in str(error)
    ### BEGIN HIDDEN TESTS
    assert TensorDataset(Tensor(np.zeros(3), dtype=np.float64))[0][0].dtype == np.float64
    assert dataset[-1][1].item() == 0
    ### END HIDDEN TESTS
    print("TensorDataset: ok")


test_unit_tensor_dataset()

# %% [markdown]
# ## Step 2: collate — from a list of samples to a batch
#
# The per-sample path produces a list like `[(x0, y0), (x1, y1), ...]`; the model wants
# `(X, Y)` with a new leading batch dimension. `default_collate` does that recursively:
#
# | each sample is | the batch is |
# |---|---|
# | a Tensor or array of shape `S` | one Tensor of shape `(B, *S)`, same dtype |
# | a Python int | an `int64` Tensor of shape `(B,)` (class labels stay integers) |
# | a Python float | a `float32` Tensor of shape `(B,)` (PyTorch gives float64; we keep the default float) |
# | a tuple or list of fields | a tuple of collated fields |
# | a dict | a dict of collated values |
#
# Samples whose shapes differ cannot be stacked. The error must say which shapes and what to do:
# resize them with a transform, or pass your own `collate_fn` (one that pads sequences, say).

# %%
#| export
def default_collate(samples):
    """Stack a list of samples into a batch: tuples of (x, y) become tuples of (X, Y) Tensors.

    TODO: follow the table above; recurse into tuples/lists and dicts.
    HINT: check `isinstance(first, bool)` before `int` (a bool is an int in Python);
          `np.stack` joins same-shaped arrays along a new first axis.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("default_collate: got no samples; a batch needs at least one")
    first = samples[0]
    ### BEGIN SOLUTION
    if isinstance(first, (tuple, list)):
        if any(len(sample) != len(first) for sample in samples):
            raise ValueError(f"default_collate: samples have different numbers of fields ({sorted({len(s) for s in samples})})")
        return tuple(default_collate(field) for field in zip(*samples))
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.array(samples, dtype=np.bool_))
    if isinstance(first, (int, np.integer)):
        return Tensor(np.array(samples, dtype=np.int64))
    if isinstance(first, (float, np.floating)):
        return Tensor(np.array(samples, dtype=np.float32))
    if isinstance(first, (Tensor, np.ndarray)):
        arrays = [_array(sample) for sample in samples]
        for array in arrays:
            if array.shape != arrays[0].shape:
                raise ValueError(
                    f"default_collate: cannot stack samples of shapes {arrays[0].shape} and {array.shape} "
                    "into one batch; make them the same size with a transform, or pass a collate_fn "
                    "(for example one that pads) to the DataLoader"
                )
        return Tensor(np.stack(arrays), dtype=arrays[0].dtype)
    raise TypeError(
        f"default_collate: cannot batch samples of type {type(first).__name__}; have __getitem__ return "
        "Tensors, NumPy arrays, numbers, or tuples/dicts of them, or pass a collate_fn to the DataLoader"
    )
    ### END SOLUTION

# %%
def test_unit_default_collate():
    samples = [(np.full((3, 2), i, dtype=np.float32), i) for i in range(4)]
    images, labels = default_collate(samples)
    assert images.shape == (4, 3, 2) and images.dtype == np.float32
    assert labels.dtype == np.int64 and labels.numpy().tolist() == [0, 1, 2, 3]
    batch = default_collate([{"x": Tensor([1.0, 2.0]), "w": 0.5}, {"x": Tensor([3.0, 4.0]), "w": 1.5}])
    assert batch["x"].shape == (2, 2) and batch["w"].dtype == np.float32
    try:
        default_collate([np.zeros((3, 2)), np.zeros((3, 5))])
        raise AssertionError("different shapes cannot be stacked")
    except ValueError as error:
        assert "(3, 2)" in str(error) and "(3, 5)" in str(error) and "collate_fn" in str(error)
    ### BEGIN HIDDEN TESTS
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.int8(1), np.int8(2)]).dtype == np.int64
    assert default_collate([np.zeros(2, dtype=np.uint8)] * 3).dtype == np.uint8
    ### END HIDDEN TESTS
    print("default_collate: ok")


test_unit_default_collate()

# %% [markdown]
# ## Step 3: DataLoader — batches, shuffling, epochs
#
# `DataLoader` is an iterable: every `for batch in loader:` is one epoch. Each epoch it
#
# 1. takes the order `0..N-1`, or a fresh permutation from its generator when `shuffle=True`
#    (the generator is created once, so epoch 2 gets a different order from epoch 1, and two
#    loaders built with the same `seed` give the same sequence of epochs);
# 2. cuts the order into slices of `batch_size` indices, dropping a short last slice when
#    `drop_last=True`;
# 3. turns each slice into a batch: with the default collate it asks the dataset for the whole
#    batch (`get_batch`, the fast path); with your own `collate_fn` it fetches the samples one
#    by one and hands the list to your function.
#
# `len(loader)` is the number of batches per epoch, what a progress bar needs.

# %%
#| export
def _fetch_batch(dataset, indices):
    """One batch from any dataset: its fast get_batch when it has one, else sample by sample."""
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    return default_collate([dataset[i] for i in indices.tolist()])


class DataLoader:
    """Iterate over a dataset in batches: DataLoader(dataset, batch_size=32, shuffle=True, seed=0).

    collate_fn=None uses the dataset's batched fast path (`get_batch`); any other collate_fn
    receives the list of samples `[dataset[i] for i in batch_indices]`, as in PyTorch.
    Shuffling draws from a NumPy generator: `seed=` or `generator=` (PyTorch's `generator` is a
    torch.Generator; ours is a numpy.random.Generator); without either it follows manual_seed.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None,
                 seed=None, generator=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: a dataset needs __len__ and __getitem__, got {type(dataset).__name__}")
        batch_size = check_positive_int("DataLoader", "batch_size", batch_size)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        # Only a shuffling loader draws a seed, so building a plain loader never moves manual_seed's stream.
        self.generator = _make_generator(seed, generator) if shuffle else None

    def __len__(self):
        """Batches per epoch.

        TODO: ceil(N / batch_size), or floor when drop_last.
        HINT: `-(-n // b)` is ceil(n / b) with integers only.
        """
        ### BEGIN SOLUTION
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        ### END SOLUTION

    def __iter__(self):
        """Yield the batches of one epoch.

        TODO: make the epoch's order (a fresh permutation when shuffling), cut it into slices of
              batch_size indices (skip a short last one when drop_last) and yield one batch each.
        HINT: `self.generator.permutation(n)`; with collate_fn None use `_fetch_batch(dataset,
              indices)`, else `self.collate_fn([self.dataset[i] for i in indices.tolist()])`.
        """
        ### BEGIN SOLUTION
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            indices = order[start : start + self.batch_size]
            if self.collate_fn is None:
                yield _fetch_batch(self.dataset, indices)
            else:
                yield self.collate_fn([self.dataset[i] for i in indices.tolist()])
        ### END SOLUTION

# %%
def test_unit_dataloader():
    dataset = TensorDataset(Tensor(np.arange(10, dtype=np.float32).reshape(10, 1)), Tensor(np.arange(10)))
    loader = DataLoader(dataset, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == list(range(10)), "no shuffle: in order"
    assert len(DataLoader(dataset, batch_size=4, drop_last=True)) == 2
    assert [len(b[1]) for b in DataLoader(dataset, batch_size=4, drop_last=True)] == [4, 4]
    shuffled = DataLoader(dataset, batch_size=3, shuffle=True, seed=0)
    epoch1 = np.concatenate([b[1].numpy() for b in shuffled])
    epoch2 = np.concatenate([b[1].numpy() for b in shuffled])
    assert sorted(epoch1.tolist()) == list(range(10)), "every sample exactly once per epoch"
    assert epoch1.tolist() != epoch2.tolist(), "a new order every epoch"
    again = np.concatenate([b[1].numpy() for b in DataLoader(dataset, batch_size=3, shuffle=True, seed=0)])
    assert again.tolist() == epoch1.tolist(), "the same seed gives the same order"
    ### BEGIN HIDDEN TESTS
    per_sample = DataLoader(dataset, batch_size=4, collate_fn=default_collate)
    assert [b[1].numpy().tolist() for b in per_sample] == [b[1].numpy().tolist() for b in batches]
    assert len(DataLoader(dataset, batch_size=20)) == 1 and len(DataLoader(dataset, batch_size=20, drop_last=True)) == 0
    ### END HIDDEN TESTS
    print("DataLoader: ok")


test_unit_dataloader()

# %% [markdown]
# ## Step 4: transforms, one batch at a time
#
# A transform changes a sample on its way to the model: convert pixels to floats, normalise,
# and for training, **augment** with random crops and flips so the model never sees exactly the
# same image twice. torchvision applies transforms to one image at a time, inside the per-sample
# loop. We write each transform **once, for a whole batch** `(N, C, H, W)`, with per-sample random
# choices drawn as arrays: `N` crop offsets, `N` coin flips. Calling a transform on one image
# `(C, H, W)` runs it as a batch of one, so both paths share one implementation.
#
# - `ToTensor()`: `uint8` pixels to `float32` in `[0, 1]`. Our datasets keep images channels-first
#   (CIFAR-10's own file layout, and what convolutions want), so that is the default; images
#   stored height-width-channels (as decoded JPEG/PNG files are, and what torchvision's ToTensor
#   expects) need `ToTensor(channels_last=True)`. A grey `(H, W)` image gains a channel axis.
# - `Normalize(mean, std)`: per channel, $(x - \mu_c)/\sigma_c$; needs float input.
# - `RandomHorizontalFlip(p=0.5)`: mirror each image left-right with probability `p`.
# - `RandomCrop(size, padding=0)`: zero-pad each side by `padding`, then cut a `size` window at a
#   random offset per image.
# - `Compose([...])` chains them.
#
# The crop is the interesting one. Looping over the batch would cost a Python iteration per
# image. Instead, `sliding_window_view(padded, (h, w), axis=(2, 3))` is a **view** of shape
# `(N, C, H', W', h, w)` holding every possible window of every image without copying a byte;
# indexing it with the offset arrays, `windows[np.arange(N), :, top, left]`, gathers each
# image's chosen window in one call. Order the pipeline crop and flip **before** `ToTensor`: they
# then move 1-byte pixels instead of 4-byte floats.

# %%
#| export
def _check_images(name, images):
    if images.ndim != 4:
        raise ValueError(
            f"{name}: expects a batch of images (N, C, H, W) or one image (C, H, W), got shape "
            f"{images.shape}; a grey image (H, W) needs a channel axis: image[None]"
        )


class Transform:
    """A transform written for a batch (N, C, H, W); calling it on one image (C, H, W) runs a batch of one."""

    def __call__(self, image):
        return self.batch(_array(image)[None])[0]

    def batch(self, images):
        raise NotImplementedError(f"{type(self).__name__} must define batch(images)")


def apply_batch(transform, images):
    """Run `transform` on a whole batch: its vectorised `batch` method, or one image at a time."""
    if hasattr(transform, "batch"):
        return transform.batch(images)
    # A plain function (a lambda in a Compose): correct, but it pays Python's cost per image.
    return Tensor(np.stack([_array(transform(image)) for image in _array(images)]))


class Compose(Transform):
    """Apply transforms in order: Compose([RandomCrop(32, padding=4), ToTensor()])."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image

    def batch(self, images):
        for transform in self.transforms:
            images = apply_batch(transform, images)
        return images


class ToTensor(Transform):
    """uint8 pixels in [0, 255] -> float32 in [0, 1], channels first (float input is only cast)."""

    def __init__(self, channels_last=False):
        self.channels_last = channels_last

    def batch(self, images):
        """(N, C, H, W) uint8 -> float32 Tensor; also (N, H, W) grey and, with channels_last, (N, H, W, C).

        TODO: add the channel axis to grey batches, move channels first when channels_last,
              then divide uint8 by 255 into a new contiguous float32 array.
        HINT: `images.transpose(0, 3, 1, 2)` is a free view; `np.divide(images, np.float32(255),
              out=np.empty(shape, np.float32))` writes a C-contiguous result in one pass.
        """
        images = _array(images)
        ### BEGIN SOLUTION
        if images.ndim == 3:
            images = images[:, None]
        elif self.channels_last and images.ndim == 4:
            images = images.transpose(0, 3, 1, 2)
        _check_images("ToTensor", images)
        if images.dtype == np.uint8:
            out = np.empty(images.shape, dtype=np.float32)
            np.divide(images, np.float32(255), out=out)
            return Tensor(out)
        if images.dtype.kind == "f":
            return Tensor(np.ascontiguousarray(images, dtype=np.float32))
        raise TypeError(f"ToTensor: expects uint8 pixels or floats, got {images.dtype}")
        ### END SOLUTION


class Normalize(Transform):
    """Per channel: (x - mean[c]) / std[c], for float images (N, C, H, W) or (C, H, W)."""

    def __init__(self, mean, std):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"Normalize: mean and std need one value per channel, got {mean.shape} and {std.shape}")
        if np.any(std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std.tolist()}")
        self.mean, self.std = mean, std
        # x * (1/std) - mean/std is (x - mean) / std with one multiply and one subtract, in place.
        self._scale = (1.0 / std)[:, None, None]
        self._shift = (mean / std)[:, None, None]

    def batch(self, images):
        """Normalise every channel of every image.

        TODO: check the input is float with as many channels as there are means, then compute
              images * scale - shift into one new array (never modify the input).
        HINT: `out = images * self._scale` makes a new array; `out -= self._shift` then works in place.
        """
        images = _array(images)
        _check_images("Normalize", images)
        ### BEGIN SOLUTION
        if images.dtype.kind != "f":
            raise TypeError(
                f"Normalize: expects float images, got {images.dtype}; put ToTensor() before Normalize "
                "to turn uint8 pixels into floats in [0, 1]"
            )
        channels = images.shape[1]
        if len(self.mean) not in (1, channels):
            raise ValueError(
                f"Normalize: {len(self.mean)} means and stds for images with {channels} channels "
                f"(shape {images.shape}); give one value per channel"
            )
        out = images * self._scale
        out -= self._shift
        return Tensor(out)
        ### END SOLUTION


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p (an independent coin per image)."""

    def __init__(self, p=0.5, seed=None, generator=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p is a probability in [0, 1], got {p}")
        self.p = p
        self.generator = _make_generator(seed, generator)

    def batch(self, images):
        """Flip the chosen images of the batch.

        TODO: draw one uniform number per image; where it is below p, take the image reversed
              along its last axis. Return a new array: never modify the input.
        HINT: `images[..., ::-1]` is a free view; a boolean mask over the first axis,
              `out[flip] = images[flip, ..., ::-1]`, rewrites only the chosen images.
        """
        images = _array(images)
        _check_images("RandomHorizontalFlip", images)
        ### BEGIN SOLUTION
        flip = self.generator.random(len(images)) < self.p
        out = images.copy()
        out[flip] = images[flip, ..., ::-1]
        return Tensor(out)
        ### END SOLUTION


class RandomCrop(Transform):
    """Zero-pad by `padding` on every side, then cut a `size` window at a random offset per image."""

    def __init__(self, size, padding=0, seed=None, generator=None):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size is an int or (height, width), got {size!r}")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding cannot be negative, got {padding}")
        self.padding = int(padding)
        self.generator = _make_generator(seed, generator)

    def batch(self, images):
        """A random (size) window of every padded image.

        TODO: pad H and W with zeros, draw N top and N left offsets, gather the windows.
        HINT: a zeros array of the padded shape with the images assigned into its centre is the
              padding; `sliding_window_view(padded, self.size, axis=(2, 3))` holds every window;
              index it with `[np.arange(n), :, top, left]`.
        """
        images = _array(images)
        _check_images("RandomCrop", images)
        n, channels, height, width = images.shape
        p = self.padding
        crop_h, crop_w = self.size
        if crop_h > height + 2 * p or crop_w > width + 2 * p:
            raise ValueError(
                f"RandomCrop: a {self.size} crop does not fit in images of {height}x{width} padded by {p}; "
                "use a smaller size or more padding"
            )
        ### BEGIN SOLUTION
        if p:
            padded = np.zeros((n, channels, height + 2 * p, width + 2 * p), dtype=images.dtype)
            padded[:, :, p : p + height, p : p + width] = images
        else:
            padded = images
        top = self.generator.integers(0, padded.shape[2] - crop_h + 1, size=n)
        left = self.generator.integers(0, padded.shape[3] - crop_w + 1, size=n)
        windows = sliding_window_view(padded, (crop_h, crop_w), axis=(2, 3))
        return Tensor(windows[np.arange(n), :, top, left])
        ### END SOLUTION

# %%
def test_unit_transforms():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 8, 8), dtype=np.uint8)
    floats = ToTensor().batch(images)
    assert floats.dtype == np.float32 and floats.shape == (5, 3, 8, 8)
    assert np.allclose(floats.numpy(), images / 255.0)
    assert ToTensor()(images[0]).shape == (3, 8, 8), "one image runs as a batch of one"
    assert ToTensor(channels_last=True).batch(images.transpose(0, 2, 3, 1)).shape == (5, 3, 8, 8)
    normalized = Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.5]).batch(floats)
    reference = (images / 255.0 - np.array([0.5, 0.4, 0.3])[:, None, None]) / np.array([0.2, 0.25, 0.5])[:, None, None]
    assert np.allclose(normalized.numpy(), reference, atol=1e-5)
    flipped = RandomHorizontalFlip(p=1.0, seed=0).batch(images)
    assert np.array_equal(flipped.numpy(), images[..., ::-1])
    assert np.array_equal(RandomHorizontalFlip(p=0.0, seed=0).batch(images).numpy(), images)
    crops = RandomCrop(8, padding=2, seed=0).batch(images).numpy()
    assert crops.shape == (5, 3, 8, 8) and crops.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for crop, image in zip(crops, padded):  # each crop must be some window of its padded image
        assert any(np.array_equal(crop, image[:, i : i + 8, j : j + 8]) for i in range(5) for j in range(5))
    try:
        Normalize([0.5], [0.2]).batch(images)
        raise AssertionError("Normalize on uint8 must ask for ToTensor first")
    except TypeError as error:
        assert "ToTensor" in str(error)
    ### BEGIN HIDDEN TESTS
    assert ToTensor().batch(images[:, 0]).shape == (5, 1, 8, 8)
    pipeline = Compose([RandomCrop(6, seed=1), RandomHorizontalFlip(seed=2), ToTensor()])
    assert pipeline.batch(images).shape == (5, 3, 6, 6) and pipeline(images[0]).shape == (3, 6, 6)
    ### END HIDDEN TESTS
    print("transforms: ok")


test_unit_transforms()

# %% [markdown]
# ## Step 5: the fast path — datasets that live in arrays
#
# Real image datasets fit in memory as one `uint8` array: MNIST's training images are 47 MB,
# CIFAR-10's 154 MB. `ArrayDataset(data, targets, transform)` holds such a pair and implements
# both paths:
#
# - `dataset[i]`: image `i`, transformed, and its target as a Python number (the per-sample path,
#   what a custom `collate_fn` receives);
# - `dataset.get_batch(indices)`: **one** gather `data[indices]` (a fresh contiguous copy of just
#   this batch), the transform run once on the whole batch, and the targets gathered alike.
#
# `MNIST` and `CIFAR10` below are `ArrayDataset`s that fill the arrays from the official files.
# Following torchvision, the arrays are called `data` and `targets`; unlike torchvision, images are
# stored channels-first, `(N, C, H, W)`, so no transpose is ever needed.
#
# Two more pieces complete the toolkit: `Subset(dataset, indices)` (a view of some samples,
# keeping the fast path) and `random_split(dataset, [0.9, 0.1], seed=0)` (a reproducible
# train/validation split).

# %%
#| export
class ArrayDataset(Dataset):
    """Samples stored in two arrays: (transform(data[i]), targets[i]); batches are one gather each."""

    def __init__(self, data, targets, transform=None):
        data, targets = _array(data), _array(targets)
        if len(data) != len(targets):
            raise ValueError(
                f"{type(self).__name__}: {len(data)} samples but {len(targets)} targets (shapes {data.shape} "
                f"and {targets.shape}); every sample needs one target"
            )
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image = self.data[index]
        image = Tensor(image) if self.transform is None else self.transform(image)
        return image, self.targets[index].item()

    def get_batch(self, indices):
        """The batch (transform(data[indices]), targets[indices]) as two Tensors.

        TODO: gather the images and targets with fancy indexing, transform the images as one batch.
        HINT: `apply_batch(self.transform, images)`; a transform may return a Tensor or an array,
              so wrap only arrays: `x if isinstance(x, Tensor) else Tensor(x)`.
        """
        ### BEGIN SOLUTION
        images = self.data[indices]
        if self.transform is not None:
            images = apply_batch(self.transform, images)
        images = images if isinstance(images, Tensor) else Tensor(images)
        return images, Tensor(self.targets[indices])
        ### END SOLUTION


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order (keeps the batched fast path)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        return _fetch_batch(self.dataset, self.indices[indices])


def random_split(dataset, lengths, seed=None, generator=None):
    """Split into non-overlapping random Subsets: lengths are counts, or fractions that sum to 1."""
    n = len(dataset)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * fraction)) for fraction in lengths]
        for i in range(n - sum(counts)):  # hand out the rounding remainder, as PyTorch does
            counts[i % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if sum(counts) != n or min(counts, default=0) < 0:
        raise ValueError(
            f"random_split: lengths {list(lengths)} must be non-negative counts that sum to the dataset's "
            f"{n} samples, or fractions that sum to 1"
        )
    order = _make_generator(seed, generator).permutation(n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]

# %%
def test_unit_array_dataset():
    images = np.arange(6 * 1 * 2 * 2, dtype=np.uint8).reshape(6, 1, 2, 2)
    labels = np.array([3, 1, 4, 1, 5, 9])
    dataset = ArrayDataset(images, labels, transform=ToTensor())
    image, label = dataset[4]
    assert image.shape == (1, 2, 2) and image.dtype == np.float32 and label == 5
    xb, yb = dataset.get_batch(np.array([4, 0]))
    assert xb.shape == (2, 1, 2, 2) and np.allclose(xb.numpy(), images[[4, 0]] / 255.0)
    assert yb.dtype == np.int64 and yb.numpy().tolist() == [5, 3]
    slow = [b[0].numpy() for b in DataLoader(dataset, batch_size=4, collate_fn=default_collate)]
    fast = [b[0].numpy() for b in DataLoader(dataset, batch_size=4)]
    assert all(np.array_equal(s, f) for s, f in zip(slow, fast)), "both paths give the same batches"
    train, val = random_split(dataset, [0.5, 0.5], seed=0)
    assert len(train) == 3 and len(val) == 3
    assert sorted(train.indices.tolist() + val.indices.tolist()) == list(range(6))
    ### BEGIN HIDDEN TESTS
    assert ArrayDataset(images, labels)[0][0].dtype == np.uint8
    assert train.get_batch(np.array([0]))[1].item() == labels[train.indices[0]]
    ### END HIDDEN TESTS
    print("ArrayDataset, Subset, random_split: ok")


test_unit_array_dataset()

# %% [markdown]
# ## Step 6: data files — a folder, checksums, and downloads that never half-write
#
# Real datasets come from their official homes, once, and are cached. Four rules make that
# robust, and each one fixes a failure that people meet:
#
# 1. **One data folder**, chosen in this order: the `root=` argument; the environment variable
#    `TINYTORCH_DATA`; `$XDG_CACHE_HOME/tinytorch`; `~/.cache/tinytorch`. Inside it:
#
#    | dataset | files | official source |
#    |---|---|---|
#    | MNIST | `mnist/train-images-idx3-ubyte.gz`, `mnist/train-labels-idx1-ubyte.gz`, `mnist/t10k-images-idx3-ubyte.gz`, `mnist/t10k-labels-idx1-ubyte.gz` | the IDX files, as mirrored for torchvision |
#    | CIFAR-10 | `cifar-10-batches-py/` (`data_batch_1` … `data_batch_5`, `test_batch`), extracted from `cifar-10-python.tar.gz` (kept beside it) | University of Toronto |
#    | Tiny Shakespeare | `tinyshakespeare/input.txt`, or `tinyshakespeare.txt` | karpathy/char-rnn |
#
# 2. **Verify by checksum.** A file's MD5 digest is compared with the published one; a truncated
#    download, a disk error or an HTML error page saved under the right name all fail the check.
#    (MD5 is broken against an attacker who crafts collisions, but it still detects accidents,
#    and it is what the datasets publish.)
# 3. **Write atomically.** A download goes through `open_atomic` (module 07 explains it): to a
#    temporary file in the same folder, renamed into place only after its checksum passed; an
#    archive is extracted into a temporary folder that is renamed when complete. A rename within
#    one file system is atomic: a crash, a Ctrl-C or a lost connection leaves either nothing or
#    the whole file, never half of it (and the next write removes what a killed process left).
# 4. **Offline is an answer, not a crash.** With `download=False` (the default) and a file
#    missing, the error names the file, the folder to put it in, and the URL to get it from.
#
# The download itself (`download_file`) is given: it streams the response in 1 MiB chunks into
# the temporary file, hashing as it goes and drawing a progress bar, and tries each mirror in
# turn. You write the decision that every dataset makes first: `ensure_file`.

# %%
#| export
DATA_ENV = "TINYTORCH_DATA"  # the environment variable naming the data folder
_CHUNK_BYTES = 1 << 20


class DatasetError(RuntimeError):
    """A data file is damaged, of the wrong format, or could not be downloaded; the message says how to fix it."""


def data_dir(root=None):
    """The data folder: `root`, else $TINYTORCH_DATA, else $XDG_CACHE_HOME/tinytorch, else ~/.cache/tinytorch."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tinytorch"


def file_md5(path):
    """MD5 hex digest of a file, read in chunks (a 170 MB archive never sits in memory)."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(urls, destination, md5):
    """Fetch `destination` from the first of `urls` that delivers a file with this MD5; atomic."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _fetch(url, destination, md5)
            return destination
        except (OSError, http.client.HTTPException, DatasetError) as error:  # URLError is an OSError
            failures.append(f"  {url}: {error}")
    raise DatasetError(
        f"could not download {destination.name}:\n" + "\n".join(failures)
        + f"\nDownload it yourself and put it at {destination}, then run again."
    )


def _fetch(url, destination, md5):
    """Stream one URL into `destination` through `open_atomic`: it appears only complete and verified."""
    from rich.console import Console  # only downloads need rich's progress bar
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    request = urllib.request.Request(url, headers={"User-Agent": "tinytorch"})
    # An error raised inside this block (a cut connection, a wrong checksum) deletes the temporary
    # file and leaves `destination` as it was; one left by a killed process is removed next time.
    with open_atomic(destination) as out, urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        digest, received = hashlib.md5(), 0
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task(destination.name, total=total)
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except http.client.IncompleteRead as error:
                    received += len(error.partial)
                    break
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress.update(task, advance=len(chunk))
        if total is not None and received != total:
            raise DatasetError(f"the connection closed after {received:,} of {total:,} bytes")
        if digest.hexdigest() != md5:
            raise DatasetError(f"checksum mismatch: got md5 {digest.hexdigest()}, expected {md5} (a damaged or different file)")


def ensure_file(path, urls, md5, download, dataset, accept=None, hint=""):
    """The path of a verified local copy of a data file: checked, else downloaded, else a clear error.

    `accept(path)` may accept a local file whose own MD5 differs (a recompressed copy whose
    content is verified another way); `hint` adds a dataset's own advice to the missing-file error.

    TODO: if the file exists and passes (md5 or accept), return it. If it exists but fails:
          without download, raise DatasetError naming the file and the fix; with download,
          fetch it again. If it is missing: without download, raise FileNotFoundError naming the
          file, the folder, and the URL; with download, fetch it.
    HINT: `file_md5(path)`; `download_file(urls, path, md5)` returns the path.
    """
    path = Path(path)
    ### BEGIN SOLUTION
    if path.is_file():
        actual = file_md5(path)
        if actual == md5 or (accept is not None and accept(path)):
            return path
        if not download:
            raise DatasetError(
                f"{dataset}: {path} is damaged or incomplete (md5 {actual}, expected {md5}). Delete it and "
                f"run again with download=True, or replace it with a good copy from {urls[0]}"
            )
    elif not download:
        raise FileNotFoundError(
            f"{dataset}: {path.name} is not in {path.parent}. Pass download=True to fetch it, or download "
            f"{urls[0]} yourself and put it at {path}.{(' ' + hint) if hint else ''} (The data folder is "
            f"root=, else ${DATA_ENV}, else ~/.cache/tinytorch.)"
        )
    return download_file(urls, path, md5)
    ### END SOLUTION


def extract_folder(archive, destination):
    """Extract the folder `destination.name`/ of a .tar.gz into `destination`, atomically.

    Only regular files directly inside that folder are written, under their base names, so a
    hostile archive cannot write outside the staging folder (no absolute paths, no `..`, no links).
    """
    archive, destination = Path(archive), Path(destination)
    import tarfile  # only CIFAR-10 needs it

    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    parts = PurePosixPath(member.name).parts
                    if member.isfile() and len(parts) == 2 and parts[0] == destination.name:
                        with tar.extractfile(member) as source, open(staging / parts[1], "wb") as target:
                            shutil.copyfileobj(source, target, _CHUNK_BYTES)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetError(f"{archive} is not a readable .tar.gz archive ({error}); delete it and download it again") from None
        if not any(staging.iterdir()):
            raise DatasetError(f"{archive} holds no {destination.name}/ folder; it is not the expected archive")
        os.replace(staging, destination)
        return destination
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

# %%
def test_unit_ensure_file():
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "official" / "numbers.txt"
        source.parent.mkdir()
        source.write_bytes(b"0123456789")
        good_md5 = hashlib.md5(b"0123456789").hexdigest()
        target = Path(folder) / "data" / "numbers.txt"
        try:
            ensure_file(target, [source.as_uri()], good_md5, download=False, dataset="Numbers")
            raise AssertionError("a missing file without download=True must be an error")
        except FileNotFoundError as error:
            assert "numbers.txt" in str(error) and str(target.parent) in str(error) and source.as_uri() in str(error)
        assert ensure_file(target, [source.as_uri()], good_md5, download=True, dataset="Numbers") == target
        assert target.read_bytes() == b"0123456789"
        target.write_bytes(b"01234")  # damaged
        try:
            ensure_file(target, [source.as_uri()], good_md5, download=False, dataset="Numbers")
            raise AssertionError("a damaged file must be reported")
        except DatasetError as error:
            assert "damaged" in str(error) and "download=True" in str(error)
        ensure_file(target, [source.as_uri()], good_md5, download=True, dataset="Numbers")
        assert target.read_bytes() == b"0123456789", "a damaged file is fetched again"
        try:
            ensure_file(Path(folder) / "data" / "other.txt", [source.as_uri()], "0" * 32, download=True, dataset="Numbers")
            raise AssertionError("a checksum mismatch must be an error")
        except DatasetError as error:
            assert "checksum mismatch" in str(error)
        assert sorted(p.name for p in target.parent.iterdir()) == ["numbers.txt"], "nothing half-written left behind"
    ### BEGIN HIDDEN TESTS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.bin"
        path.write_bytes(b"abc")
        assert ensure_file(path, ["file:///nowhere"], "0" * 32, download=False, dataset="X", accept=lambda p: True) == path
    ### END HIDDEN TESTS
    print("data files: ok")


test_unit_ensure_file()

# %% [markdown]
# ## Step 7: MNIST, CIFAR-10 and Tiny Shakespeare in their official formats
#
# **MNIST** ships as four gzip-compressed **IDX** files. An IDX file is a tiny header and then raw
# bytes: two zero bytes, a type code (`0x08` for unsigned bytes), the number of dimensions, then
# each dimension as a big-endian 32-bit integer. The training images are
# `00 00 08 03 | 60000 | 28 | 28` and then 47,040,000 pixel bytes; the labels are
# `00 00 08 01 | 60000` and then 60,000 bytes. `np.frombuffer` reads the pixels without copying
# them. The copies of MNIST you may find (this course's machines hold one) are sometimes
# recompressed: the `.gz` bytes differ from the official download while the content is the
# same, so a local file is also accepted when its *decompressed* MD5 matches the official content.
#
# **CIFAR-10** ships as `cifar-10-python.tar.gz`, which extracts to `cifar-10-batches-py/`: five
# training batches and one test batch of 10,000 images each. Each batch is a Python **pickle** of a
# dict: `b"data"` is a `(10000, 3072)` `uint8` array whose rows hold the red, then green, then blue
# 32x32 plane, so `data.reshape(-1, 3, 32, 32)` is already `(N, C, H, W)`; `b"labels"` is a list
# of ints. Unpickling can run arbitrary code named in the file, so this is the **only** pickle
# TinyTorch ever reads, and it reads it through an unpickler that allows nothing but the NumPy
# array constructors such a batch needs: a file that asks for anything else is refused. (Model
# checkpoints never use pickle; module 07 writes safetensors or `.npz`.)
#
# Refusing code is not enough: an extracted batch carries no checksum, and a damaged one must
# not take the process down with it. Three more defences, each found by feeding the reader
# damaged files (`tests/modules/test_untrusted_files.py`):
#
# - Even NumPy's own constructors trust their arguments: one flipped byte in a dtype's pickled
#   state crashed Python with a segmentation fault. So they never run: stand-ins record what the
#   file asks for, and the reader builds each array with `np.frombuffer` from a plain dtype name,
#   a shape and exactly the right number of bytes.
# - Python's fast unpickler trusts the sizes in the file: a 5-byte opcode that stores an object
#   at memo slot 1,280,835,944 makes it allocate 10 GB. `pickletools.genops` walks the opcodes
#   first and checks every length and slot against what the file really holds.
# - The reader checks what it got before converting anything — `b"data"` a `uint8` array of
#   shape `(n, 3072)`, `b"labels"` n integers in 0..9 — because a pickle can repeat one list a
#   million times at 2 bytes a reference, and `np.asarray` would copy every repetition.
#
# **Tiny Shakespeare** is one UTF-8 text file of 1,115,394 characters. `TinyShakespeare(split=...)`
# returns its text, whole or split 90% / 10% into training and validation text (as nanoGPT does);
# module 10 turns the characters into token ids.

# %%
#| export
MNIST_MIRRORS = (  # tried in order, as torchvision does
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_FILES = {  # name: (md5 of the .gz as distributed, md5 of its decompressed content)
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
MNIST_MEAN = (0.1307,)  # pixel mean and std of the 60,000 training images, in [0, 1]
MNIST_STD = (0.3081,)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per channel (R, G, B) over the 50,000 training images, in [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_MAX_DIMS = 32  # the header allows 255; NumPy arrays have at most 32 (NumPy 1) or 64 (NumPy 2)


def read_idx(raw, name="IDX data"):
    """The array stored in the bytes of an (uncompressed) IDX file, as used by MNIST.

    TODO: check the magic (two zero bytes, a known type code) and the number of dimensions
          (at most _IDX_MAX_DIMS), read the dimensions, check the length, and view the rest of
          the bytes as an array of that shape.
    HINT: `raw[2]` is the type code and `raw[3]` the number of dimensions;
          `struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])` gives the sizes;
          `np.frombuffer(raw, dtype, offset=header)` does not copy.
    """
    ### BEGIN SOLUTION
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(
            f"{name} is not an IDX file: it starts with bytes {bytes(raw[:4]).hex(' ')}, and an IDX file starts "
            "00 00 <type> <ndim> (00 00 08 03 for MNIST images); the file is damaged or of another format"
        )
    ndim = raw[3]
    if ndim > _IDX_MAX_DIMS:
        raise DatasetError(f"{name}: the IDX header declares {ndim} dimensions, more than an array can have "
                           f"({_IDX_MAX_DIMS}); the file is damaged")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{name}: the IDX header is cut off ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if math.prod(size for size in shape if size) * dtype.itemsize > np.iinfo(np.intp).max:  # even when a 0 empties it
        raise DatasetError(f"{name}: the IDX header promises shape {shape}, larger than any array can be; it is damaged")
    if len(raw) != expected:
        raise DatasetError(
            f"{name}: the IDX header promises shape {shape} ({expected:,} bytes) but the file has "
            f"{len(raw):,} bytes; it is truncated or damaged"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
    ### END SOLUTION


def _gunzipped_md5(path):
    """MD5 of a .gz file's decompressed content; None when it does not decompress (truncated, not gzip).

    Read in chunks: a small damaged or hostile .gz can unpack to gigabytes, and it is not trusted yet.
    """
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):  # not gzip (BadGzipFile is an OSError), cut off, or corrupt
        return None
    return digest.hexdigest()


class MNIST(ArrayDataset):
    """MNIST digits: data (N, 1, 28, 28) uint8, targets (N,) int64; 60,000 train / 10,000 test.

    `data` is a read-only view of the decompressed file (no copy); transforms return new arrays.
    """

    classes = tuple(str(digit) for digit in range(10))

    def __init__(self, root=None, train=True, download=False, transform=None):
        folder = data_dir(root) / "mnist"
        prefix = "train" if train else "t10k"
        images = self._read(folder, f"{prefix}-images-idx3-ubyte.gz", download)
        labels = self._read(folder, f"{prefix}-labels-idx1-ubyte.gz", download)
        if (images.dtype != np.uint8 or images.shape[1:] != (28, 28) or labels.dtype != np.uint8
                or labels.shape != images.shape[:1]):
            raise DatasetError(
                f"MNIST: {folder} holds images {images.dtype}{images.shape} and labels {labels.dtype}{labels.shape}; "
                "expected uint8 (N, 28, 28) and uint8 (N,). Replace the files with the official ones."
            )
        _check_labels("MNIST", folder / f"{prefix}-labels-idx1-ubyte.gz", labels.tolist(), len(self.classes))
        super().__init__(images[:, None], labels.astype(np.int64), transform)

    @staticmethod
    def _read(folder, name, download):
        gz_md5, content_md5 = MNIST_FILES[name]
        path = ensure_file(
            folder / name, [mirror + name for mirror in MNIST_MIRRORS], gz_md5, download, "MNIST",
            accept=lambda p: _gunzipped_md5(p) == content_md5,
        )
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"MNIST: {path} does not decompress ({error}); delete it and download it again") from None
        return read_idx(raw, str(path))


def _check_labels(dataset, path, labels, classes):
    """A DatasetError naming the file unless every label of the list is an int class index 0 .. classes - 1."""
    for position, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < classes:
            raise DatasetError(
                f"{dataset}: {path} holds the label {label!r} at position {position}; labels are class indices "
                f"0..{classes - 1}. The file is damaged or not {dataset}: replace it with the official one"
            )


def _text(value):
    """A pickle written by Python 2 (as the official batches were) holds its strings as bytes."""
    return value.decode("latin1") if isinstance(value, bytes) else value


class _PickledDtype:
    """What a pickle asks `numpy.dtype(...)` for, recorded instead of built (see _CifarUnpickler)."""

    def __init__(self, name, align=False, copy=False):
        self.name, self.state = _text(name), None

    def __setstate__(self, state):  # (3, byte order, subarray, names, fields, itemsize, alignment, flags)
        self.state = state

    def dtype(self):
        """The plain NumPy dtype recorded, e.g. uint8 or little-endian int64; anything else is refused."""
        state = self.state if isinstance(self.state, tuple) and len(self.state) == 8 else (None,) * 8
        plain = isinstance(self.name, str) and self.name in _PLAIN_DTYPES and all(part is None for part in state[2:5])
        order = _text(state[1])
        if not plain or order not in ("|", "<", ">", "="):
            raise DatasetError(f"it holds an array of dtype {self.name!r} {self.state!r}, not one of plain numbers")
        return np.dtype(self.name).newbyteorder(order if order in "<>" else "=")


class _PickledArray:
    """What a pickle asks NumPy to rebuild an array from, recorded: (shape, dtype, Fortran order, bytes)."""

    def __init__(self, state=None):
        self.state = state

    def __setstate__(self, state):  # ndarray.__reduce__'s state: (version 1, shape, dtype, is_fortran, bytes)
        self.state = state[1:] if isinstance(state, tuple) and len(state) == 5 and state[0] == 1 else None

    def array(self):
        """The array, built by np.frombuffer from checked parts only."""
        if not (isinstance(self.state, tuple) and len(self.state) == 4):
            raise DatasetError("it holds an array in a form NumPy does not write")
        shape, dtype, fortran, data = self.state
        if not (isinstance(shape, tuple) and all(type(size) is int and size >= 0 for size in shape)
                and isinstance(dtype, _PickledDtype) and type(fortran) in (bool, int) and fortran in (0, 1) and isinstance(data, (bytes, bytearray))):
            raise DatasetError("it holds an array with a damaged description")
        dtype = dtype.dtype()
        if math.prod(shape) * dtype.itemsize != len(data):
            raise DatasetError(f"it holds an array of shape {shape} with {len(data):,} bytes of data, the wrong number")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _latin1(text, encoding):
    """_codecs.encode as Python 3's protocol 2 uses it to store bytes; no other codec (some take quadratic time)."""
    if encoding != "latin1":
        raise DatasetError(f"it asks to encode text as {encoding!r}; a CIFAR-10 batch stores bytes as latin1 only")
    return codecs.encode(text, "latin1")


_PLAIN_DTYPES = {"b1", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8"}


def _check_opcodes(data):
    """A DatasetError unless every opcode of the pickle `data` asks only for memory that the file backs.

    Python's fast unpickler trusts two numbers in a pickle: the length an opcode declares for a
    string (it allocates that much, then reads), and the memo slot an object is stored at (it
    grows its memo table to reach it). One 5-byte opcode storing at slot 1,280,835,944 makes it
    allocate 10 GB. pickletools.genops reads each opcode in pure Python and checks each length
    against the bytes that are really there; the memo may only grow one slot at a time, as
    every pickler writes it.
    """
    slots = 0
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if argument > slots:
                raise DatasetError(f"it stores an object at memo slot {argument:,}, while {slots:,} are in use")
            slots += argument == slots
        elif opcode.name == "MEMOIZE":
            slots += 1


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch and nothing else: a dict of lists, bytes and NumPy arrays.

    A pickle names the functions that rebuild its objects, and unpickling calls them with
    arguments from the file. This unpickler lets a file name only NumPy's array and dtype
    constructors, and even those never run: NumPy's own rebuilding trusts its arguments (damaged
    ones can crash Python), so stand-ins record what the file asks for, and `load` builds the
    arrays itself, with np.frombuffer, once their shape, dtype and length check out. Before
    any of that, `_check_opcodes` walks the whole file.
    """

    def __init__(self, stream, **options):
        data = stream.read()
        _check_opcodes(data)
        super().__init__(io.BytesIO(data), **options)

    ALLOWED = {
        ("numpy", "ndarray"): _PickledArray,  # only ever passed to _reconstruct
        ("numpy", "dtype"): _PickledDtype,
        ("numpy.core.multiarray", "_reconstruct"): lambda cls, shape, typecode: _PickledArray(),
        ("numpy._core.multiarray", "_reconstruct"): lambda cls, shape, typecode: _PickledArray(),
        # protocol 5 keeps the data apart from the state: (buffer, dtype, shape, order)
        ("numpy.core.numeric", "_frombuffer"): lambda data, dtype, shape, order: _PickledArray(
            (shape, dtype, order == "F", bytes(data))),
        ("numpy._core.numeric", "_frombuffer"): lambda data, dtype, shape, order: _PickledArray(
            (shape, dtype, order == "F", bytes(data))),
        ("_codecs", "encode"): lambda text, encoding: _latin1(text, encoding),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DatasetError(
                f"this file asks to load {module}.{name}; a CIFAR-10 batch holds only arrays, lists and "
                "bytes, so it is not one (TinyTorch refuses to run code from a data file)"
            )
        return self.ALLOWED[module, name]

    def load(self):
        batch = super().load()
        if isinstance(batch, dict):
            for key, value in batch.items():
                if isinstance(value, _PickledArray):
                    batch[key] = value.array()
        return batch


def read_cifar_batch(path):
    """(data (n, 3072) uint8, labels (n,) int64) from one pickled batch file of cifar-10-batches-py.

    TODO: unpickle the file with `_CifarUnpickler(stream, encoding="bytes")` (never pickle.load),
          check it is a dict with b"data" and b"labels", and take those two (the checks of
          their shapes, dtypes and label range that follow are given).
    HINT: wrap unpickling errors (except DatasetError, which already explains itself) in a
          DatasetError that names the file and says to extract the archive again.
    """
    ### BEGIN SOLUTION
    try:
        with open(path, "rb") as stream:
            batch = _CifarUnpickler(stream, encoding="bytes").load()
    except DatasetError as error:
        raise DatasetError(f"CIFAR10: {path}: {error}") from None
    except Exception as error:  # a damaged pickle can fail in many ways
        raise DatasetError(
            f"CIFAR10: {path} is not a readable CIFAR-10 batch ({type(error).__name__}: {error}); delete the "
            f"{CIFAR10_FOLDER} folder and extract the archive again"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"CIFAR10: {path} is not a CIFAR-10 batch: expected a dict with b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    ### END SOLUTION
    # Checked before any conversion: a pickle can repeat one object a million times at 2 bytes a
    # reference, and np.asarray would copy every repetition.
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise DatasetError(
            f"CIFAR10: {path} holds data {_describe(data)}; a CIFAR-10 batch holds a uint8 array of shape (n, 3072)"
        )
    if isinstance(labels, np.ndarray) and labels.ndim == 1:
        labels = labels.tolist()  # some copies of the dataset store the list of labels as an array
    if not (isinstance(labels, list) and len(labels) == len(data)):
        raise DatasetError(f"CIFAR10: {path} holds labels {_describe(labels)}; a CIFAR-10 batch holds a list of "
                           f"{len(data)} integers, one per image")
    _check_labels("CIFAR10", path, labels, len(CIFAR10_CLASSES))
    return data, np.array(labels, dtype=np.int64)


def _describe(value):
    """What a value from a data file is, for an error message: a dtype and shape, or a type and length."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}"
    return type(value).__name__ + (f" of length {len(value)}" if isinstance(value, (list, tuple, bytes)) else "")


class CIFAR10(ArrayDataset):
    """CIFAR-10: data (N, 3, 32, 32) uint8, targets (N,) int64; 50,000 train / 10,000 test, 10 classes."""

    classes = CIFAR10_CLASSES

    def __init__(self, root=None, train=True, download=False, transform=None):
        root = data_dir(root)
        folder = root / CIFAR10_FOLDER
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        if not folder.exists():
            archive = ensure_file(
                root / "cifar-10-python.tar.gz", [CIFAR10_URL], CIFAR10_MD5, download, "CIFAR10",
                hint=f"Or put the extracted {CIFAR10_FOLDER}/ folder in {root}.",
            )
            extract_folder(archive, folder)
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise DatasetError(
                f"CIFAR10: {folder} lacks {', '.join(missing)}; delete that folder and run again to extract "
                f"cifar-10-python.tar.gz afresh (download=True fetches it)"
            )
        batches = [read_cifar_batch(folder / name) for name in names]
        data = np.concatenate([batch[0] for batch in batches]).reshape(-1, 3, 32, 32)
        super().__init__(data, np.concatenate([batch[1] for batch in batches]), transform)


class TinyShakespeare:
    """The Tiny Shakespeare text: `.text` is the whole file, or its first 90% (split="train") or last 10% ("val")."""

    VAL_FRACTION = 0.1

    def __init__(self, root=None, split=None, download=False):
        if split not in (None, "train", "val"):
            raise ValueError(f"TinyShakespeare: split is None (all), 'train' or 'val', got {split!r}")
        root = data_dir(root)
        path = root / "tinyshakespeare" / "input.txt"
        if not path.exists() and (root / "tinyshakespeare.txt").exists():
            path = root / "tinyshakespeare.txt"  # the name this course's offline copy uses
        path = ensure_file(
            path, [TINYSHAKESPEARE_URL], TINYSHAKESPEARE_MD5, download, "TinyShakespeare",
            hint=f"({root / 'tinyshakespeare.txt'} is accepted too.)",
        )
        text = path.read_text(encoding="utf-8")
        cut = int(len(text) * (1 - self.VAL_FRACTION))
        self.split = split
        self.text = {None: text, "train": text[:cut], "val": text[cut:]}[split]

    def __len__(self):
        return len(self.text)

# %%
def test_unit_file_formats():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + images.tobytes()
    assert np.array_equal(read_idx(raw), images)
    try:
        read_idx(b"\x1f\x8b\x08\x00" + raw[4:])
        raise AssertionError("gzip bytes are not IDX: the magic must be checked")
    except DatasetError as error:
        assert "not an IDX file" in str(error)
    try:
        read_idx(raw[:-1])
        raise AssertionError("a truncated IDX file must be rejected")
    except DatasetError as error:
        assert "truncated" in str(error)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data_batch_1"
        batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [7, 1], b"batch_label": b"x"}
        path.write_bytes(pickle.dumps(batch, protocol=2))
        data, labels = read_cifar_batch(path)
        assert data.shape == (2, 3072) and labels.tolist() == [7, 1] and labels.dtype == np.int64
        path.write_bytes(pickle.dumps({b"data": os.getcwd}))  # a pickle that names a function
        try:
            read_cifar_batch(path)
            raise AssertionError("a pickle that loads anything but arrays must be refused")
        except DatasetError as error:
            assert "refuses" in str(error)
        path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [10]}, protocol=2))
        try:
            read_cifar_batch(path)
            raise AssertionError("CIFAR-10 has classes 0..9: a label 10 means a damaged file")
        except DatasetError as error:
            assert "label 10" in str(error) and "data_batch_1" in str(error)
    ### BEGIN HIDDEN TESTS
    wide = np.array([[1, -2]], dtype=">i4")
    raw32 = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 1, 2) + wide.tobytes()
    assert read_idx(raw32).tolist() == [[1, -2]]
    ### END HIDDEN TESTS
    print("file formats: ok")


test_unit_file_formats()

# %% [markdown]
# ### Using the real data
#
# ```python
# train = MNIST(train=True, download=True, transform=Compose([ToTensor(), Normalize(MNIST_MEAN, MNIST_STD)]))
# loader = DataLoader(train, batch_size=128, shuffle=True)
# ```
#
# The first run downloads into the data folder; later runs read the cache. Where the machine is
# offline but holds copies (this course's machines keep them in a shared folder), point
# `TINYTORCH_DATA` at a folder laid out as in the table of Step 6. The cell below loads whatever
# is there and says what is missing.

# %%
if __name__ == "__main__":
    print("data folder:", data_dir())
    for name, make in (("MNIST", lambda: MNIST(train=False)), ("CIFAR-10", lambda: CIFAR10(train=False)),
                       ("Tiny Shakespeare", lambda: TinyShakespeare())):
        try:
            loaded = make()
            shape = loaded.data.shape if hasattr(loaded, "data") else f"{len(loaded):,} characters"
            print(f"  {name}: {shape}")
        except (FileNotFoundError, DatasetError) as error:
            print(f"  {name}: not available here ({str(error).splitlines()[0][:100]}...)")

# %% [markdown]
# ## Systems analysis: is the data pipeline fast enough?
#
# Two measurements. First, **throughput**: samples per second through a DataLoader on an array
# shaped like CIFAR-10's training set (50,000 x 3 x 32 x 32 `uint8`), with and without the usual
# augmentation (random crop with 4 pixels of padding, flip, ToTensor, Normalize), on the
# per-sample path (`collate_fn=default_collate`: one `dataset[i]` and one transform call per
# image, then a stack) against the batched path (one gather and one transform call per batch).
# Second, **memory**: the same dataset stored as `uint8` against `float32`.

# %%
def measure_loader_throughput(num_samples=50_000, batch_size=128, batches=20):
    """Samples per second of each (path, augmentation) pair, timed over `batches` batches."""
    import time

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(num_samples, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=num_samples)
    pipelines = {
        "plain": Compose([ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
        "augmented": Compose([RandomCrop(32, padding=4, seed=1), RandomHorizontalFlip(seed=2), ToTensor(),
                              Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
    }
    rates = {}
    for pipeline_name, pipeline in pipelines.items():
        dataset = ArrayDataset(images, labels, transform=pipeline)
        for path_name, collate_fn in (("per-sample", default_collate), ("batched", None)):
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=0, collate_fn=collate_fn)
            iterator = iter(loader)
            next(iterator)  # warm up
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            rates[(path_name, pipeline_name)] = batches * batch_size / (time.perf_counter() - start)
    return rates


def measure_dataset_memory(shape=(50_000, 3, 32, 32)):
    """Bytes of a CIFAR-10-sized training set in each dtype (np.empty: the pages are never touched)."""
    return {np.dtype(dtype).name: np.empty(shape, dtype=dtype).nbytes for dtype in (np.uint8, np.float32)}


if __name__ == "__main__":
    rates = measure_loader_throughput()
    for (path_name, pipeline_name), rate in rates.items():
        epoch = 50_000 / rate
        print(f"{path_name:>10} {pipeline_name:>9}: {rate:10,.0f} samples/s  (one CIFAR-10 epoch: {epoch:6.2f} s)")
    speedup = rates[("batched", "augmented")] / rates[("per-sample", "augmented")]
    print(f"batched augmentation is {speedup:.1f}x faster than per-sample")
    for name, nbytes in measure_dataset_memory().items():
        print(f"CIFAR-10 training set as {name:>7}: {nbytes:>11,} bytes ({nbytes / 2**20:6.1f} MiB)")

# %% [markdown]
# Measured with `python modules/08_dataloader/dataloader.py` on this course's 2-core machine,
# once quiet and once shared with other jobs (load average 7):
#
# | path | plain | augmented | one augmented CIFAR-10 epoch |
# |---|---|---|---|
# | per-sample (`collate_fn=default_collate`) | 14,000 / 5,500 samples/s | 4,700 / 1,650 samples/s | 10.7 s / 30 s |
# | batched (one gather per batch) | 64,000 / 23,000 samples/s | 38,700 / 15,100 samples/s | 1.3 s / 3.3 s |
#
# Whatever the load, batching wins by about 4.5x on plain batches and 8-9x with augmentation,
# where the per-sample path pays for a padding, a window view and a gather per image. On the
# real CIFAR-10 files (the JPEG-q75 copy of this course's machines) an augmented epoch at batch
# 128 took 2.0 s. For scale: PyTorch trains the milestone CNN here at about 3 minutes per epoch,
# so the batched loader adds 1-2% to an epoch and the per-sample one 6-17% — and on a GPU,
# where the epoch takes seconds, the per-sample loader would be the bottleneck.
#
# Memory: 153,600,000 bytes (146.5 MiB) as `uint8` against 614,400,000 (585.9 MiB) as
# `float32`. Keeping `uint8` and converting one batch per step costs 1.5 MB of floats for a batch
# of 128, instead of 440 MiB of extra resident memory for the whole set.

# %% [markdown]
# ## Production context: how PyTorch does it
#
# `torch.utils.data.DataLoader` has the same shape: a `Sampler` yields indices (sequential, or a
# `RandomSampler` drawing a permutation each epoch from a `torch.Generator`), a `BatchSampler`
# groups them, a fetcher calls `dataset[i]` per index (or `dataset.__getitems__(indices)` when a
# dataset defines it — PyTorch's own hook for batched fetching, which then still collates a list),
# and `default_collate` stacks. What it adds is **parallelism**: with `num_workers=k` it forks `k`
# processes that each build whole batches and send them back through shared memory, with
# `prefetch_factor` batches in flight per worker, `pin_memory=True` to page-lock batches for a
# fast copy to the GPU, and `persistent_workers` to keep the processes between epochs. That is
# how it hides per-sample Python costs (JPEG decoding, PIL transforms): spread over cores. We
# removed the cost instead by vectorising, which works because our datasets sit in memory as
# arrays; decoding compressed images from disk would need the workers. torchvision's transforms
# v2 and NVIDIA DALI move augmentation onto whole batches (and onto the GPU) for the same reason
# we did. torchvision's `MNIST` and `CIFAR10` download with MD5 checks much as ours do, keep
# images as `uint8` and, for CIFAR-10, in height-width-channel order.

# %% [markdown]
# ## Integration test: one augmented epoch of a CIFAR-shaped dataset

# %%
def test_integration_augmented_epoch():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(300, 3, 32, 32), dtype=np.uint8)
    dataset = ArrayDataset(images, np.arange(300), transform=Compose([
        RandomCrop(32, padding=4, seed=0), RandomHorizontalFlip(seed=1), ToTensor(), Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ]))
    train, val = random_split(dataset, [250, 50], seed=0)
    loader = DataLoader(train, batch_size=64, shuffle=True, drop_last=True, seed=0)
    seen = []
    for xb, yb in loader:
        assert xb.shape == (64, 3, 32, 32) and xb.dtype == np.float32 and yb.dtype == np.int64
        seen += yb.numpy().tolist()
    assert len(loader) == 3 and len(seen) == 192 and len(set(seen)) == 192, "no sample twice in an epoch"
    assert set(seen) <= set(train.indices.tolist()) and not set(seen) & set(val.indices.tolist())
    xb, _ = next(iter(DataLoader(val, batch_size=50)))
    assert abs(float(xb.numpy().mean())) < 0.5, "normalised inputs sit near zero"
    print("integration: ok")


test_integration_augmented_epoch()

# %% [markdown]
# ## ML systems thinking
#
# 1. ImageNet's training set is 1.28 million JPEGs; decoded to 224x224 `uint8` arrays it would
#    take 1.28e6 x 150,528 bytes, about 193 GB. Which parts of this module still work, and where
#    would you need PyTorch's worker processes?
# 2. The batched `RandomCrop` pads the whole batch first. How much memory does that cost for a
#    batch of 128 CIFAR images with padding 4, and how could you crop without padding at all?
# 3. `DataLoader(..., shuffle=True)` without a seed follows `manual_seed`. Why does a reproducible
#    experiment need the *data order* fixed, not only the weight initialisation?
# 4. MD5 catches a truncated download. What does it not protect you from, and what would you
#    use instead if the mirror might be malicious?
# 5. `Normalize` uses the training set's mean and standard deviation for the test set too. Why
#    not compute them on the test set?
#
# ## Summary
#
# You built the data pipeline: `Dataset` and `TensorDataset` with PyTorch's protocol,
# `default_collate`, and a `DataLoader` that batches, shuffles reproducibly with a new order every
# epoch, and drops a short last batch on request. You made it fast by asking array-backed
# datasets for whole batches (one gather) and by writing every transform — ToTensor, Normalize,
# random crop and flip — once, for a whole batch, with per-image randomness drawn as arrays. You
# read MNIST, CIFAR-10 and Tiny Shakespeare from their official formats, downloaded with
# checksums and atomic writes, and unpickled CIFAR-10 without letting a data file run code. Next,
# module 09 builds the convolutions that these batches of images feed.
