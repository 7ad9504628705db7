"""Module 08 DataLoader, graded through the exported package `tinytorch.core.dataloader`.

Download tests serve fixture files in the official formats from a local HTTP server on
127.0.0.1; no test needs the network. Tests on the real datasets run only where a copy exists
(the folder $TINYTORCH_DATA names) and skip cleanly elsewhere.
"""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch.core.dataloader as dl
from tests.modules.fixtures_data import (
    CutOff,
    cifar_batch_bytes,
    gzipped,
    idx_bytes,
    make_cifar10,
    md5,
    python2_cifar_batch_bytes,
    serve_files,
    write_cifar10_folder,
    write_mnist,
)
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
    data_dir,
    default_collate,
    random_split,
    read_idx,
)
from tinytorch.core.tensor import Tensor, manual_seed

FAST = settings(max_examples=30, deadline=None)


def labels_of(loader):
    return [batch[1].numpy().tolist() for batch in loader]


# ---- Dataset and TensorDataset -------------------------------------------------------------------
def test_tensor_dataset_samples_and_batches_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=7)
    dataset = TensorDataset(Tensor(x), y)
    assert len(dataset) == 7
    xi, yi = dataset[3]
    np.testing.assert_array_equal(xi.numpy(), x[3])
    assert yi.item() == y[3] and yi.dtype == np.int64
    index = np.array([6, 0, 3, 3])
    xb, yb = dataset.get_batch(index)
    np.testing.assert_array_equal(xb.numpy(), x[index])
    np.testing.assert_array_equal(yb.numpy(), y[index])
    assert not xb.requires_grad


def test_tensor_dataset_keeps_dtypes_and_records_no_graph():
    weights = Tensor(np.ones((3, 2)), dtype=np.float64, requires_grad=True)
    x, = TensorDataset(weights)[0]
    assert x.dtype == np.float64 and not x.requires_grad and x.is_leaf


def test_tensor_dataset_rejects_different_lengths_and_names_the_shapes():
    with pytest.raises(ValueError) as error:
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    assert "(5, 2)" in str(error.value) and "(4,)" in str(error.value) and "first dimension" in str(error.value)
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()


def test_dataset_base_class_says_what_to_define():
    class Incomplete(Dataset):
        pass

    with pytest.raises(NotImplementedError, match="Incomplete must define __len__"):
        len(Incomplete())
    with pytest.raises(NotImplementedError, match="Incomplete must define __getitem__"):
        Incomplete()[0]


def test_custom_dataset_and_plain_list_use_the_per_sample_path():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float32), i

    batches = list(DataLoader(Squares(), batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    assert batches[1][0].numpy().tolist() == [[2, 4], [3, 9]] and batches[1][1].dtype == np.int64
    plain = [(np.float32(i), i % 2) for i in range(5)]  # a list is a dataset too (len + getitem)
    x, y = next(iter(DataLoader(plain, batch_size=5)))
    assert x.dtype == np.float32 and y.numpy().tolist() == [0, 1, 0, 1, 0]


# ---- default_collate ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64])
def test_collate_stacks_arrays_and_tensors_keeping_dtype(dtype):
    samples = [np.full((2, 3), i, dtype=dtype) for i in range(4)]
    for batch in (default_collate(samples), default_collate([Tensor(s, dtype=dtype) for s in samples])):
        assert batch.shape == (4, 2, 3) and batch.dtype == dtype
        np.testing.assert_array_equal(batch.numpy(), np.stack(samples))


def test_collate_numbers_tuples_and_dicts():
    images, labels = default_collate([(np.zeros(3, np.float32), 7), (np.ones(3, np.float32), 2)])
    assert images.shape == (2, 3) and labels.dtype == np.int64 and labels.numpy().tolist() == [7, 2]
    assert default_collate([0.5, 1.5]).dtype == np.float32
    assert default_collate([np.int32(1), np.int32(2)]).dtype == np.int64
    assert default_collate([True, False]).dtype == np.bool_
    batch = default_collate([{"x": np.zeros(2), "y": (1, 2.0)}, {"x": np.ones(2), "y": (3, 4.0)}])
    assert batch["x"].shape == (2, 2) and batch["y"][0].numpy().tolist() == [1, 3]


def test_collate_errors_explain_the_fix():
    with pytest.raises(ValueError) as error:
        default_collate([np.zeros((3, 32, 32)), np.zeros((3, 28, 28))])
    message = str(error.value)
    assert "(3, 32, 32)" in message and "(3, 28, 28)" in message and "collate_fn" in message
    with pytest.raises(TypeError, match="cannot batch samples of type str"):
        default_collate(["a", "b"])
    with pytest.raises(ValueError, match="numbers of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(ValueError, match="no samples"):
        default_collate([])


def test_collate_matches_pytorch(torch):
    from torch.utils.data import default_collate as torch_collate

    samples = [(np.full((2, 2), i, dtype=np.float32), i) for i in range(3)]
    ours, theirs = default_collate(samples), torch_collate(samples)
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
    assert theirs[1].dtype == torch.int64 and ours[1].dtype == np.int64


# ---- DataLoader -------------------------------------------------------------------------------------
def indexed_dataset(n):
    return TensorDataset(Tensor(np.arange(n, dtype=np.float32)[:, None]), Tensor(np.arange(n)))


@FAST
@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans())
def test_len_is_the_number_of_batches_and_every_sample_comes_once(n, batch_size, drop_last, shuffle):
    loader = DataLoader(indexed_dataset(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=0)
    batches = labels_of(loader)
    assert len(batches) == len(loader)
    expected_len = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == expected_len
    assert all(len(b) == batch_size for b in batches[:-1])
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    if not drop_last:
        assert sorted(flat) == list(range(n))
    if not shuffle:
        assert flat == list(range(len(flat)))


def test_shuffle_gives_a_new_order_each_epoch_reproducible_with_a_seed():
    loader = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=123)
    first, second = labels_of(loader), labels_of(loader)
    assert first != second, "each epoch draws a new permutation"
    assert sorted(sum(first, [])) == list(range(50))
    twin = DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=123)
    assert labels_of(twin) == first and labels_of(twin) == second, "same seed, same sequence of epochs"
    assert labels_of(DataLoader(indexed_dataset(50), batch_size=8, shuffle=True, seed=7)) != first


def test_shuffle_accepts_a_generator_and_follows_manual_seed():
    a = DataLoader(indexed_dataset(30), batch_size=30, shuffle=True, generator=np.random.default_rng(5))
    b = DataLoader(indexed_dataset(30), batch_size=30, shuffle=True, seed=5)
    assert labels_of(a) == labels_of(b)
    manual_seed(42)
    c = labels_of(DataLoader(indexed_dataset(30), batch_size=30, shuffle=True))
    manual_seed(42)
    assert labels_of(DataLoader(indexed_dataset(30), batch_size=30, shuffle=True)) == c
    with pytest.raises(ValueError, match="not both"):
        DataLoader(indexed_dataset(3), shuffle=True, seed=1, generator=np.random.default_rng(1))


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "8", True])
def test_bad_batch_size_is_explained(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(indexed_dataset(3), batch_size=batch_size)


def test_a_non_dataset_is_explained():
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(42)


def test_custom_collate_fn_receives_the_list_of_samples():
    received = []

    def collate(samples):
        received.append(samples)
        return len(samples)

    assert list(DataLoader(indexed_dataset(5), batch_size=2, collate_fn=collate)) == [2, 2, 1]
    assert isinstance(received[0], list) and isinstance(received[0][0], tuple)
    assert received[2][0][1].item() == 4


def test_loader_matches_pytorch_without_shuffle(torch):
    x = np.random.default_rng(1).standard_normal((11, 3)).astype(np.float32)
    y = np.arange(11)
    ours = list(DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True))
    theirs = list(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                              batch_size=4, drop_last=True))
    assert len(ours) == len(theirs) == 2
    for (xo, yo), (xt, yt) in zip(ours, theirs):
        np.testing.assert_array_equal(xo.numpy(), xt.numpy())
        np.testing.assert_array_equal(yo.numpy(), yt.numpy())


# ---- transforms -----------------------------------------------------------------------------------------
def uint8_images(n=6, c=3, h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def test_to_tensor_scales_uint8_and_handles_layouts():
    images = uint8_images()
    reference = images.astype(np.float32) / 255
    out = ToTensor().batch(images)
    assert out.dtype == np.float32 and out.is_contiguous()
    np.testing.assert_array_equal(out.numpy(), reference)
    np.testing.assert_array_equal(ToTensor()(images[2]).numpy(), reference[2])
    hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(ToTensor(channels_last=True).batch(hwc).numpy(), reference)
    np.testing.assert_array_equal(ToTensor(channels_last=True)(hwc[1]).numpy(), reference[1])
    grey = images[:, 0]
    np.testing.assert_array_equal(ToTensor().batch(grey).numpy(), reference[:, :1])
    np.testing.assert_array_equal(ToTensor()(grey[0]).numpy(), reference[0, :1])
    floats = np.random.default_rng(0).random((2, 1, 3, 3))
    np.testing.assert_allclose(ToTensor().batch(floats).numpy(), floats, rtol=1e-7)
    with pytest.raises(TypeError, match="uint8"):
        ToTensor().batch(np.zeros((1, 1, 2, 2), dtype=np.int32))


def test_to_tensor_matches_pytorch(torch):
    images = uint8_images()
    np.testing.assert_array_equal(ToTensor().batch(images).numpy(), torch.from_numpy(images).float().div(255).numpy())


@FAST
@given(channels=st.integers(1, 4), n=st.integers(1, 3), side=st.integers(1, 5), data=st.data())
def test_normalize_matches_numpy(channels, n, side, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    images = rng.random((n, channels, side, side), dtype=np.float32)
    mean = rng.random(channels).astype(np.float32)
    std = rng.random(channels).astype(np.float32) + 0.1
    reference = (images - mean[:, None, None]) / std[:, None, None]
    out = Normalize(mean, std).batch(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Normalize(mean, std)(images[0]).numpy(), reference[0], rtol=1e-5, atol=1e-5)


def test_normalize_matches_pytorch_and_leaves_input_alone(torch):
    images = np.random.default_rng(0).random((4, 3, 5, 5), dtype=np.float32)
    before = images.copy()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = (torch.from_numpy(images) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_allclose(Normalize(mean, std).batch(images).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(images, before)


def test_normalize_errors_say_what_to_do():
    with pytest.raises(TypeError, match=r"put ToTensor\(\) before Normalize"):
        Normalize(0.5, 0.5).batch(uint8_images())
    with pytest.raises(ValueError) as error:
        Normalize([0.5, 0.5], [0.2, 0.2]).batch(np.zeros((2, 3, 4, 4), np.float32))
    assert "2 means" in str(error.value) and "3 channels" in str(error.value) and "(2, 3, 4, 4)" in str(error.value)
    with pytest.raises(ValueError, match="positive"):
        Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Normalize(0.5, 0.5).batch(np.zeros((4, 4), np.float32))


def test_flip_mirrors_the_chosen_images_only():
    images = uint8_images(n=200)
    before = images.copy()
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0, seed=0).batch(images).numpy(), images[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0, seed=0).batch(images).numpy(), images)
    out = RandomHorizontalFlip(p=0.5, seed=0).batch(images).numpy()
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, images)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped ^ kept), "each image is either flipped or kept, whole"
    assert 60 < flipped.sum() < 140, "an independent coin per image"
    np.testing.assert_array_equal(images, before)
    with pytest.raises(ValueError, match="probability"):
        RandomHorizontalFlip(p=1.5)


def test_flip_matches_pytorch(torch):
    images = uint8_images()
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0, seed=0).batch(images).numpy(),
                                  torch.flip(torch.from_numpy(images), dims=[3]).numpy())


def test_random_crop_cuts_a_window_of_the_padded_image_at_per_image_offsets():
    images = uint8_images(n=300, c=2, h=6, w=6) | 1  # no zero pixels: zeros mark the padding
    before = images.copy()
    crops = RandomCrop(6, padding=2, seed=0).batch(images).numpy()
    assert crops.shape == (300, 2, 6, 6) and crops.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for crop, image in zip(crops, padded):
        found = [(i, j) for i in range(5) for j in range(5) if np.array_equal(crop, image[:, i : i + 6, j : j + 6])]
        assert found, "every crop is a window of its own padded image"
        offsets.add(found[0])
    assert len(offsets) == 25, "all (2p+1)^2 offsets occur"
    np.testing.assert_array_equal(images, before)
    rectangular = RandomCrop((4, 3), seed=1).batch(images[:5]).numpy()
    assert rectangular.shape == (5, 2, 4, 3)


def test_random_crop_without_padding_and_errors():
    images = uint8_images(n=4, h=5, w=5)
    np.testing.assert_array_equal(RandomCrop(5, seed=0).batch(images).numpy(), images)
    with pytest.raises(ValueError) as error:
        RandomCrop(12, padding=2).batch(images)
    assert "(12, 12)" in str(error.value) and "5x5" in str(error.value)


def test_random_transforms_are_reproducible_with_a_seed():
    images = uint8_images(n=32)
    for make in (lambda: RandomCrop(8, padding=3, seed=9), lambda: RandomHorizontalFlip(seed=9)):
        np.testing.assert_array_equal(make().batch(images).numpy(), make().batch(images).numpy())


def test_compose_chains_batches_and_accepts_plain_functions():
    images = uint8_images()
    pipeline = Compose([lambda image: image[:, ::-1], ToTensor(), Normalize(0.5, 0.25)])
    expected = (images[:, :, ::-1].astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(pipeline.batch(images).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pipeline(images[0]).numpy(), expected[0], rtol=1e-5, atol=1e-6)


# ---- ArrayDataset, Subset, random_split ------------------------------------------------------------------
def test_array_dataset_batched_and_per_sample_paths_agree():
    images, labels = uint8_images(n=10), np.arange(10) % 3
    dataset = ArrayDataset(images, labels, transform=Compose([ToTensor(), Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.2])]))
    fast = list(DataLoader(dataset, batch_size=4))
    slow = list(DataLoader(dataset, batch_size=4, collate_fn=default_collate))
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_allclose(xf.numpy(), xs.numpy(), rtol=1e-6)
        assert yf.dtype == ys.dtype == np.int64 and yf.numpy().tolist() == ys.numpy().tolist()
    image, label = ArrayDataset(images, labels)[4]
    assert image.dtype == np.uint8 and label == 1 and isinstance(label, int)


def test_array_dataset_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="10 samples but 9 targets"):
        ArrayDataset(uint8_images(n=10), np.zeros(9))


def test_augmented_batches_differ_between_epochs():
    dataset = ArrayDataset(uint8_images(n=16), np.zeros(16, np.int64),
                           transform=Compose([RandomCrop(8, padding=2, seed=0), RandomHorizontalFlip(seed=1)]))
    loader = DataLoader(dataset, batch_size=16)
    first, second = next(iter(loader))[0].numpy(), next(iter(loader))[0].numpy()
    assert first.shape == (16, 3, 8, 8) and not np.array_equal(first, second)


def test_random_split_is_disjoint_complete_and_reproducible():
    dataset = indexed_dataset(10)
    parts = random_split(dataset, [6, 3, 1], seed=0)
    indices = [p.indices.tolist() for p in parts]
    assert [len(p) for p in parts] == [6, 3, 1] and sorted(sum(indices, [])) == list(range(10))
    assert [p.indices.tolist() for p in random_split(dataset, [6, 3, 1], seed=0)] == indices
    assert [len(p) for p in random_split(dataset, [0.7, 0.2, 0.1], seed=0)] == [7, 2, 1]
    assert [len(p) for p in random_split(indexed_dataset(11), [0.5, 0.5], seed=0)] == [6, 5]
    with pytest.raises(ValueError, match="sum to the dataset's 10 samples"):
        random_split(dataset, [5, 4])


def test_subset_keeps_the_fast_path_and_the_order():
    dataset = ArrayDataset(uint8_images(n=8), np.arange(8))
    subset = Subset(dataset, [7, 2, 5])
    assert len(subset) == 3 and subset[0][1] == 7
    x, y = subset.get_batch(np.array([2, 0]))
    assert y.numpy().tolist() == [5, 7]
    np.testing.assert_array_equal(x.numpy(), dataset.data[[5, 7]])


# ---- the data folder -----------------------------------------------------------------------------------
def test_data_dir_prefers_root_then_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir(tmp_path / "given") == tmp_path / "given"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("TINYTORCH_DATA")
    assert data_dir() == tmp_path / "xdg" / "tinytorch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "tinytorch"


def test_datasets_read_the_folder_named_by_the_environment(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path)
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path))
    assert len(MNIST(train=False)) == 20


# ---- MNIST: files, downloads, damage ------------------------------------------------------------------
def mnist_server_files(fixture, prefix="/mnist/"):
    return {prefix + name: data for name, data in fixture.files.items()}


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []


def test_mnist_reads_idx_files_into_nchw_uint8(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path, train_size=30, test_size=12)
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    train, test = MNIST(root=tmp_path), MNIST(root=tmp_path, train=False)
    assert train.data.shape == (30, 1, 28, 28) and train.data.dtype == np.uint8 and len(test) == 12
    assert train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.data[:, 0], fixture.arrays["train"][0])
    np.testing.assert_array_equal(test.targets, fixture.arrays["test"][1])
    loader = DataLoader(MNIST(root=tmp_path, transform=ToTensor()), batch_size=8, shuffle=True, seed=0)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32 and float(x.numpy().max()) <= 1.0


def test_mnist_download_verifies_and_caches(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path / "source")
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    with serve_files(mnist_server_files(fixture)) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/mnist/"),))
        dataset = MNIST(root=tmp_path / "data", train=True, download=True)
        assert len(dataset) == 40 and len(server.requests) == 2
        assert files_in(tmp_path / "data" / "mnist") == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
        MNIST(root=tmp_path / "data", train=True, download=True)
        assert len(server.requests) == 2, "a verified local copy is not downloaded again"


def test_mnist_tries_the_next_mirror(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path / "source")
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    with serve_files(mnist_server_files(fixture, "/second/")) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/first/"), server.url("/second/")))
        assert len(MNIST(root=tmp_path / "data", train=False, download=True)) == 20
        assert server.requests[:2] == ["/first/t10k-images-idx3-ubyte.gz", "/second/t10k-images-idx3-ubyte.gz"]


def test_mnist_damaged_file_is_fetched_again_or_reported(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path / "source")
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    target = tmp_path / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    with serve_files(mnist_server_files(fixture)) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/mnist/"),))
        MNIST(root=tmp_path / "data", train=False, download=True)
        target.write_bytes(fixture.files[target.name][:50])  # a truncated gzip
        with pytest.raises(DatasetError) as error:
            MNIST(root=tmp_path / "data", train=False)
        assert str(target) in str(error.value) and "download=True" in str(error.value)
        requests = len(server.requests)
        np.testing.assert_array_equal(MNIST(root=tmp_path / "data", train=False, download=True).data[:, 0],
                                      fixture.arrays["test"][0])
        assert server.requests[requests:] == ["/mnist/t10k-images-idx3-ubyte.gz"], "only the damaged file"
        assert target.read_bytes() == fixture.files[target.name]


@pytest.mark.parametrize("damage", ["flipped bytes", "not gzip", "empty"])
def test_mnist_any_damage_is_reported_not_crashed_on(monkeypatch, tmp_path, damage):
    fixture = write_mnist(tmp_path)
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    path = fixture.folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data = {"flipped bytes": data[:12] + b"\xff" * 8 + data[20:], "not gzip": b"<html>404</html>", "empty": b""}[damage]
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="damaged or incomplete"):
        MNIST(root=tmp_path, train=False)


def test_mnist_recompressed_copy_is_accepted_by_its_content(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path)
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    for name in fixture.files:  # same content, different .gz bytes (like the course machines' copy)
        path = fixture.folder / name
        path.write_bytes(gzipped(gzip.decompress(path.read_bytes()), level=1))
        assert md5(path.read_bytes()) != fixture.checksums[name][0]
    assert len(MNIST(root=tmp_path)) == 40


def test_mnist_offline_missing_file_says_which_file_where_and_the_url(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "MNIST_MIRRORS", ("https://example.invalid/mnist/",))
    with pytest.raises(FileNotFoundError) as error:
        MNIST(root=tmp_path, train=False)
    message = str(error.value)
    assert "t10k-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert "https://example.invalid/mnist/t10k-images-idx3-ubyte.gz" in message and "download=True" in message
    assert "TINYTORCH_DATA" in message
    assert not (tmp_path / "mnist").exists(), "a failed lookup creates nothing"


def test_checksum_mismatch_on_download_is_reported_and_leaves_nothing(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path / "source")
    wrong = dict(fixture.checksums)
    wrong["t10k-images-idx3-ubyte.gz"] = ("0" * 32, "0" * 32)
    monkeypatch.setattr(dl, "MNIST_FILES", wrong)
    with serve_files(mnist_server_files(fixture)) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/mnist/"),))
        with pytest.raises(DatasetError) as error:
            MNIST(root=tmp_path / "data", train=False, download=True)
    message = str(error.value)
    assert "checksum mismatch" in message and "0" * 32 in message and "t10k-images-idx3-ubyte.gz" in message
    assert files_in(tmp_path / "data" / "mnist") == []


def test_cut_off_download_leaves_no_file_behind(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path / "source")
    monkeypatch.setattr(dl, "MNIST_FILES", fixture.checksums)
    name = "t10k-images-idx3-ubyte.gz"
    files = mnist_server_files(fixture)
    files["/mnist/" + name] = CutOff(fixture.files[name], sent=100)
    with serve_files(files) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/mnist/"),))
        with pytest.raises(DatasetError) as error:
            MNIST(root=tmp_path / "data", train=False, download=True)
        assert f"after 100 of {len(fixture.files[name]):,} bytes" in str(error.value)
        assert files_in(tmp_path / "data" / "mnist") == []
        server.files["/mnist/" + name] = fixture.files[name]  # the connection is back
        assert len(MNIST(root=tmp_path / "data", train=False, download=True)) == 20


def test_http_error_is_reported_with_the_url(monkeypatch, tmp_path):
    with serve_files({}) as server:
        monkeypatch.setattr(dl, "MNIST_MIRRORS", (server.url("/gone/"),))
        with pytest.raises(DatasetError) as error:
            MNIST(root=tmp_path, train=False, download=True)
    message = str(error.value)
    assert server.url("/gone/t10k-images-idx3-ubyte.gz") in message and "404" in message
    assert "put it at" in message


def test_idx_reader_checks_magic_and_length():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(idx_bytes(array)), array)
    ints = np.array([[1, -70000], [3, 4]], dtype=np.int32)
    np.testing.assert_array_equal(read_idx(idx_bytes(ints)), ints)
    floats = np.array([0.5, -2.25], dtype=np.float64)
    assert read_idx(idx_bytes(floats)).tolist() == [0.5, -2.25]
    with pytest.raises(DatasetError, match="not an IDX file: it starts with bytes 1f 8b"):
        read_idx(gzipped(idx_bytes(array)))
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(idx_bytes(array)[:-3])


def test_mnist_with_bad_idx_magic_is_reported(monkeypatch, tmp_path):
    fixture = write_mnist(tmp_path)
    name = "t10k-labels-idx1-ubyte.gz"
    content = b"\x00\x00\x99\x01" + gzip.decompress(fixture.files[name])[4:]  # unknown type code
    (fixture.folder / name).write_bytes(gzipped(content))
    checksums = dict(fixture.checksums)
    checksums[name] = (md5(gzipped(content)), md5(content))  # even a file whose checksum passes is checked
    monkeypatch.setattr(dl, "MNIST_FILES", checksums)
    with pytest.raises(DatasetError, match="not an IDX file"):
        MNIST(root=tmp_path, train=False)


def _mnist_with(monkeypatch, tmp_path, images, labels):
    """An MNIST test split holding these arrays, with checksums that pass: only the content is wrong."""
    folder = tmp_path / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    checksums = dict(dl.MNIST_FILES)
    for name, array in zip(("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"), (images, labels)):
        raw = idx_bytes(array)
        (folder / name).write_bytes(gzipped(raw))
        checksums[name] = (md5(gzipped(raw)), md5(raw))
    monkeypatch.setattr(dl, "MNIST_FILES", checksums)


def test_mnist_labels_outside_0_to_9_are_refused_naming_the_file(monkeypatch, tmp_path):
    _mnist_with(monkeypatch, tmp_path, np.zeros((3, 28, 28), np.uint8), np.array([1, 10, 2], np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz holds the label 10 at position 1"):
        MNIST(root=tmp_path, train=False)


@pytest.mark.parametrize("images", [np.zeros((2, 32, 32), np.uint8), np.zeros((2, 28, 28), np.float32)])
def test_mnist_images_of_another_size_or_dtype_are_refused(monkeypatch, tmp_path, images):
    _mnist_with(monkeypatch, tmp_path, images, np.array([1, 2], np.uint8))
    with pytest.raises(DatasetError, match=r"expected uint8 \(N, 28, 28\)"):
        MNIST(root=tmp_path, train=False)


def test_an_unverified_gz_is_hashed_without_unpacking_it_into_memory(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.gz"
    path.write_bytes(gzipped(bytes(64 << 20)))  # 64 KiB on disk, 64 MiB unpacked
    tracemalloc.start()
    try:
        digest = dl._gunzipped_md5(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == md5(bytes(64 << 20))
    assert peak < 8 << 20, f"hashing used {peak:,} bytes of memory"


def test_a_killed_download_leaves_no_half_file_and_the_next_one_cleans_up(tmp_path):
    import signal
    import subprocess
    import sys
    import threading
    import time

    body = bytes(range(256)) * 64
    hold = threading.Event()
    destination = tmp_path / "data.bin"
    with serve_files({"/data.bin": CutOff(body, sent=1000, hold=hold)}) as server:
        script = ("import sys; from tinytorch.core.dataloader import download_file; "
                  "download_file([sys.argv[1]], sys.argv[2], sys.argv[3])")
        writer = subprocess.Popen([sys.executable, "-c", script, server.url("/data.bin"), str(destination), md5(body)],
                                  cwd=Path(__file__).resolve().parents[2], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (server.requests and list(tmp_path.iterdir())):  # connected, its temporary file open
                assert time.monotonic() < deadline and writer.poll() is None, "the download never started"
                time.sleep(0.05)
            time.sleep(0.2)  # reading the first bytes; the rest never comes
            writer.send_signal(signal.SIGKILL)  # no cleanup code runs
            writer.wait()
        finally:
            hold.set()
            writer.kill()
        assert not destination.exists(), "a killed download must not leave a half file under the real name"
        left = [p.name for p in tmp_path.iterdir()]
        assert len(left) == 1 and left[0].startswith(".data.bin."), left
        server.files["/data.bin"] = body
        dl.download_file([server.url("/data.bin")], destination, md5(body))
    assert destination.read_bytes() == body
    assert files_in(tmp_path) == ["data.bin"], "the next download removes what the killed one left"


# ---- CIFAR-10 --------------------------------------------------------------------------------------------
def test_cifar10_download_extracts_atomically_and_caches(monkeypatch, tmp_path):
    fixture = make_cifar10(per_batch=4, test_size=6)
    monkeypatch.setattr(dl, "CIFAR10_MD5", fixture.md5)
    with serve_files({"/cifar-10-python.tar.gz": fixture.archive}) as server:
        monkeypatch.setattr(dl, "CIFAR10_URL", server.url("/cifar-10-python.tar.gz"))
        train = CIFAR10(root=tmp_path, train=True, download=True)
        test = CIFAR10(root=tmp_path, train=False, download=True)
        assert len(server.requests) == 1, "downloaded once, extracted once"
    assert files_in(tmp_path) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"], "no staging folder left"
    assert train.data.shape == (20, 3, 32, 32) and train.data.dtype == np.uint8 and len(test) == 6
    np.testing.assert_array_equal(train.data, fixture.arrays["train"][0])
    np.testing.assert_array_equal(test.targets, fixture.arrays["test"][1])
    assert train.classes[3] == "cat"


def test_cifar10_extracted_folder_is_enough(tmp_path):
    fixture = write_cifar10_folder(tmp_path)
    dataset = CIFAR10(root=tmp_path, train=False, transform=Compose([ToTensor(), Normalize(dl.CIFAR10_MEAN, dl.CIFAR10_STD)]))
    x, y = next(iter(DataLoader(dataset, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), fixture.arrays["test"][1][:4])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches_written_with_any_pickle_protocol_load(tmp_path, protocol):
    fixture = write_cifar10_folder(tmp_path, make_cifar10(protocol=protocol))
    np.testing.assert_array_equal(CIFAR10(root=tmp_path).data, fixture.arrays["train"][0])


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path):
    write_cifar10_folder(tmp_path)
    evil = tmp_path / "cifar-10-batches-py" / "test_batch"
    evil.write_bytes(pickle.dumps({b"data": os.system}))  # would resolve posix.system on load
    with pytest.raises(DatasetError) as error:
        CIFAR10(root=tmp_path, train=False)
    assert "system" in str(error.value) and "refuses" in str(error.value) and str(evil) in str(error.value)


def test_cifar10_damaged_batch_and_incomplete_folder_are_explained(tmp_path):
    write_cifar10_folder(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="not a readable CIFAR-10 batch"):
        CIFAR10(root=tmp_path, train=False)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError) as error:
        CIFAR10(root=tmp_path, train=True)
    assert "data_batch_3" in str(error.value) and "delete that folder" in str(error.value)


def test_cifar10_offline_missing_says_what_to_put_where(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "CIFAR10_URL", "https://example.invalid/cifar-10-python.tar.gz")
    with pytest.raises(FileNotFoundError) as error:
        CIFAR10(root=tmp_path)
    message = str(error.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path) in message
    assert "https://example.invalid/cifar-10-python.tar.gz" in message and "cifar-10-batches-py/" in message


def test_cifar10_corrupt_archive_is_fetched_again(monkeypatch, tmp_path):
    fixture = make_cifar10()
    monkeypatch.setattr(dl, "CIFAR10_MD5", fixture.md5)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(fixture.archive[:1000])
    with pytest.raises(DatasetError, match="damaged or incomplete"):
        CIFAR10(root=tmp_path)
    with serve_files({"/c.tar.gz": fixture.archive}) as server:
        monkeypatch.setattr(dl, "CIFAR10_URL", server.url("/c.tar.gz"))
        assert len(CIFAR10(root=tmp_path, download=True)) == 40 and server.requests == ["/c.tar.gz"]


def test_cifar10_archive_without_the_folder_leaves_nothing(monkeypatch, tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil/data_batch_1")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setattr(dl, "CIFAR10_MD5", md5(buffer.getvalue()))
    with pytest.raises(DatasetError, match="holds no cifar-10-batches-py/ folder"):
        CIFAR10(root=tmp_path)
    assert files_in(tmp_path) == ["cifar-10-python.tar.gz"] and not (tmp_path.parent / "evil").exists()


# ---- Tiny Shakespeare ------------------------------------------------------------------------------------
def test_tinyshakespeare_download_split_and_cache(monkeypatch, tmp_path):
    text = "".join(f"Line {i}: to be, or not to be.\n" for i in range(100))
    monkeypatch.setattr(dl, "TINYSHAKESPEARE_MD5", md5(text.encode()))
    with serve_files({"/input.txt": text.encode()}) as server:
        monkeypatch.setattr(dl, "TINYSHAKESPEARE_URL", server.url("/input.txt"))
        whole = TinyShakespeare(root=tmp_path, download=True)
        train = TinyShakespeare(root=tmp_path, split="train", download=True)
        val = TinyShakespeare(root=tmp_path, split="val")
        assert len(server.requests) == 1
    assert whole.text == text and (tmp_path / "tinyshakespeare" / "input.txt").read_text() == text
    assert train.text + val.text == text and len(train) == int(len(text) * 0.9)


def test_tinyshakespeare_accepts_the_flat_file_name_and_explains_misses(monkeypatch, tmp_path):
    text = "ROMEO:\nBut soft!\n"
    (tmp_path / "tinyshakespeare.txt").write_text(text)
    monkeypatch.setattr(dl, "TINYSHAKESPEARE_MD5", md5(text.encode()))
    assert TinyShakespeare(root=tmp_path).text == text
    with pytest.raises(FileNotFoundError) as error:
        TinyShakespeare(root=tmp_path / "empty")
    message = str(error.value)
    assert "input.txt" in message and "tinyshakespeare.txt" in message and dl.TINYSHAKESPEARE_URL in message
    with pytest.raises(ValueError, match="'test'"):
        TinyShakespeare(root=tmp_path, split="test")


# ---- the real datasets, where a copy exists ---------------------------------------------------------------
def real_data_folder():
    """The project's data folder setting, where a copy of the real datasets may be."""
    folder = os.environ.get("TINYTORCH_DATA")
    return Path(folder) if folder and Path(folder).is_dir() else None


REAL = real_data_folder()


def needs_real(*parts):
    present = REAL is not None and (REAL.joinpath(*parts)).exists()
    return pytest.mark.skipif(not present, reason=f"real data not present ({'/'.join(parts)} under $TINYTORCH_DATA)")


@needs_real("mnist", "train-images-idx3-ubyte.gz")
def test_real_mnist_matches_its_published_shape_and_statistics():
    train, test = MNIST(root=REAL, train=True), MNIST(root=REAL, train=False)
    assert train.data.shape == (60000, 1, 28, 28) and test.data.shape == (10000, 1, 28, 28)
    assert np.bincount(train.targets, minlength=10).tolist()[:2] == [5923, 6742]
    counts = np.bincount(train.data.ravel(), minlength=256)  # exact statistics without a float copy
    values = np.arange(256) / 255
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * values**2).sum() / counts.sum() - mean**2)
    assert abs(mean - dl.MNIST_MEAN[0]) < 1e-4 and abs(std - dl.MNIST_STD[0]) < 1e-4


@needs_real("cifar-10-batches-py", "test_batch")
def test_real_cifar10_test_split():
    test = CIFAR10(root=REAL, train=False)
    assert test.data.shape == (10000, 3, 32, 32) and np.bincount(test.targets).tolist() == [1000] * 10


def test_real_tinyshakespeare():
    if REAL is None or not ((REAL / "tinyshakespeare.txt").exists() or (REAL / "tinyshakespeare" / "input.txt").exists()):
        pytest.skip("real data not present (tinyshakespeare under $TINYTORCH_DATA)")
    text = TinyShakespeare(root=REAL).text
    assert len(text) == 1_115_394 and len(set(text)) == 65


@pytest.mark.parametrize("labels", [[10], [-1], [1.5], [True], ["3"], [2**70], [None]])
def test_cifar_labels_outside_the_classes_are_refused_naming_the_file(tmp_path, labels):
    path = tmp_path / "data_batch_1"
    path.write_bytes(cifar_batch_bytes(np.zeros((1, 3072), np.uint8), labels, "training batch 1 of 5"))
    with pytest.raises(DatasetError, match=r"data_batch_1 holds the label .* at position 0; labels are class indices 0\.\.9"):
        dl.read_cifar_batch(path)


@pytest.mark.parametrize("data,labels,fragment", [
    ([[0] * 3072], [1], "holds data list of length 1"),
    (np.zeros((1, 3072), np.float32), [1], r"holds data float32\(1, 3072\)"),
    (np.zeros((1, 1024), np.uint8), [1], r"holds data uint8\(1, 1024\)"),
    (np.zeros((2, 3072), np.uint8), [1], "holds labels list of length 1; .* a list of 2 integers"),
    (np.zeros((1, 3072), np.uint8), b"\x01", "holds labels bytes of length 1"),
])
def test_a_cifar_batch_of_the_wrong_layout_is_refused_naming_the_file(tmp_path, data, labels, fragment):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    with pytest.raises(DatasetError, match=f"test_batch {fragment}"):
        dl.read_cifar_batch(path)


def test_cifar_labels_stored_as_an_array_load_as_int64(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([3, 9])}, protocol=2))
    data, labels = dl.read_cifar_batch(path)
    assert labels.tolist() == [3, 9] and labels.dtype == np.int64


@pytest.mark.parametrize("protocol", [2, 4, 5, "python 2"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_cifar_batches_pickled_every_way_numpy_writes_them_load(tmp_path, protocol, order):
    data = np.asarray(np.arange(2 * 3072).reshape(2, 3072) % 256, dtype=np.uint8, order=order)
    path = tmp_path / "data_batch_1"
    if protocol == "python 2":  # the layout of the official files
        path.write_bytes(python2_cifar_batch_bytes(data, [4, 8]))
    else:
        path.write_bytes(pickle.dumps({b"data": data, b"labels": [4, 8]}, protocol=protocol))
    loaded, labels = dl.read_cifar_batch(path)
    np.testing.assert_array_equal(loaded, data)
    assert loaded.dtype == np.uint8 and labels.tolist() == [4, 8]


class _DamagedDtype:
    def __reduce__(self):  # dtype("u1") whose pickled state holds a number where a subarray belongs
        return (np.dtype, ("u1", False, True), (3, "|", 1_313_754_653, -1, -1, 0))


class _ArrayWithDamagedDtype:
    def __reduce__(self):  # what ndarray.__reduce__ writes, with that dtype
        rebuild = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, wherever this NumPy keeps it
        return (rebuild, (np.ndarray, (0,), b"b"), (1, (3, 3072), _DamagedDtype(), False, bytes(3 * 3072)))


def test_a_damaged_dtype_in_a_cifar_batch_cannot_crash_python(tmp_path):
    """NumPy's own unpickling trusts a dtype's pickled state: this file crashed Python with a segfault."""
    import subprocess
    import sys

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _ArrayWithDamagedDtype(), b"labels": [3, 0, 9]}, protocol=2))
    script = ("import sys; from tinytorch.core.dataloader import read_cifar_batch, DatasetError\n"
              "try:\n    read_cifar_batch(sys.argv[1])\nexcept DatasetError as error:\n    print(error)")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, f"Python crashed reading a damaged batch (exit {done.returncode})"
    assert "data_batch_1" in done.stdout and "not one of plain numbers" in done.stdout


@pytest.mark.parametrize("payload", [
    b"\x80\x02N" + b"r" + struct.pack("<I", 1_280_835_944) + b".",  # store None at memo slot 1.28 billion
    b"\x80\x04\x8e" + struct.pack("<Q", 2**34) + b"abc",  # a string of 16 GiB, of which 3 bytes are there
    b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x08\x00\x00\x00punycode\x86R.",  # a quadratic codec
])
def test_a_pickle_cannot_make_the_unpickler_allocate_or_compute_without_bound(tmp_path, payload):
    import tracemalloc

    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="data_batch_1"):
            dl.read_cifar_batch(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"refusing a {len(payload)}-byte file allocated {peak:,} bytes"


@pytest.mark.parametrize("header,message", [
    (bytes([0, 0, 0x08, 100]) + struct.pack(">100I", *[1] * 100), "declares 100 dimensions"),  # NumPy allows 32 or 64
    (bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 0, 2**32 - 1), "larger than any array"),  # empty, and too big
])
def test_idx_headers_that_no_array_can_hold_are_refused(header, message):
    with pytest.raises(DatasetError, match=f"damaged.idx: the IDX header .*{message}"):
        read_idx(header + b"\x00", name="damaged.idx")
