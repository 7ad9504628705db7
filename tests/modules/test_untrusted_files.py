"""Fuzz tests: every loader of a file that may be damaged or hostile ends in its own error or a correct load.

The loaders: module 07's checkpoints (safetensors and .npz), module 10's tokenizer files, module
08's IDX files and CIFAR-10 batches. Each test takes a small valid file and cuts it, flips bytes
in it, or edits its structure (headers, metadata, JSON, pickled contents), then checks that the
loader either raises its own error (CheckpointError, ValueError, DatasetError) naming the file,
or returns a correct result: for a checkpoint, exactly what the valid file held (its checksum
makes any other result a silent error); for files without a checksum, a result that obeys every
rule of its format. Every load runs under `bounded()`, which fails it if it takes more than a few
seconds (a hang) or allocates more than a few MiB (an unbounded allocation).
"""

import contextlib
import io
import json
import pickle
import signal
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.modules.fixtures_data import (
    cifar_batch_bytes,
    idx_bytes,
    npy_bytes,
    npz_file,
    npz_members,
    safetensors_file,
    safetensors_parts,
    text_npy,
)
from tinytorch.core import tokenization, training
from tinytorch.core.dataloader import DatasetError, read_cifar_batch, read_idx
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.optimizers import Adam, StepLR
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.tokenization import BPETokenizer
from tinytorch.core.training import CheckpointError, load_checkpoint, load_state, save_checkpoint

FORMATS = ["safetensors", "npz"]
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- limits on every load ---------------------------------------------------------------------------------
class Hang(BaseException):
    """Raised into a loader that runs too long; a BaseException, so that no loader's `except` can swallow it."""


@contextlib.contextmanager
def bounded(seconds=5.0, memory=16 << 20):
    """Fail if the block runs longer than `seconds` or allocates more than `memory` bytes at once."""
    def expire(signum, frame):
        raise Hang(f"the loader ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < memory, f"the loader allocated {peak:,} bytes for a file of a few KiB"


def same_tree(a, b):
    """True when two loaded state trees are equal, arrays by dtype, shape and value."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and same_tree(a.data, b.data)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def flipped(data, flips):
    data = bytearray(data)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    return bytes(data)


FLIPS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1, max_size=3)


# ---- checkpoints ------------------------------------------------------------------------------------------
def make_run(seed=0):
    """A small model with an Adam that has stepped (so its state holds moments) and a StepLR."""
    manual_seed(seed)
    model = Sequential(Linear(2, 3), Linear(3, 2))
    optimizer = Adam(model.parameters(), lr=0.01)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    for param in model.parameters():
        param.grad = np.full(param.shape, 0.5, dtype=param.dtype)
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def everything(model, optimizer, scheduler):
    """All that a load can change, as plain values."""
    groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    state = {index: {key: np.copy(value) for key, value in entry.items()}
             for index, entry in optimizer.state_dict()["state"].items()}
    return model.state_dict(), groups, state, scheduler.state_dict()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{format: (file bytes, what load_state returns for it)} of one small, complete checkpoint."""
    folder = tmp_path_factory.mktemp("checkpoints")
    files = {}
    for format in FORMATS:
        path = save_checkpoint(folder / f"run.{format}", *make_run(), epoch=1,
                               history={"train_loss": [0.5]}, extra={"note": (1, "two")}, format=format)
        files[format] = (path.read_bytes(), load_state(path))
    return files


def load_mutated(tmp_path, data, expected):
    """Load `data` as a checkpoint: it must be refused with a CheckpointError naming it, or load as `expected`."""
    path = tmp_path / "mutated.ckpt"
    path.write_bytes(data)
    try:
        with bounded():
            loaded = load_state(path)
    except CheckpointError as error:
        assert "mutated.ckpt" in str(error)
        return
    assert same_tree(loaded, expected), "a damaged checkpoint loaded as something else"


@pytest.mark.parametrize("format", FORMATS)
@FUZZ
@given(data=st.data())
def test_a_cut_checkpoint_is_refused(tmp_path, checkpoints, format, data):
    original, expected = checkpoints[format]
    cut = data.draw(st.integers(0, len(original) - 1), label="length kept")
    load_mutated(tmp_path, original[:cut], expected)


@pytest.mark.parametrize("format", FORMATS)
@FUZZ
@given(flips=FLIPS)
def test_flipped_bytes_in_a_checkpoint_are_refused_or_harmless(tmp_path, checkpoints, format, flips):
    original, expected = checkpoints[format]
    load_mutated(tmp_path, flipped(original, flips), expected)


def test_a_flip_in_every_byte_of_tensor_data_is_detected(tmp_path, checkpoints):
    """Not by chance: every single byte of the safetensors tensor region, flipped in turn."""
    original, expected = checkpoints["safetensors"]
    header_end = 8 + int.from_bytes(original[:8], "little")
    path = tmp_path / "flipped.safetensors"
    for position in range(header_end, len(original)):
        path.write_bytes(flipped(original, [(position, 0x01)]))
        with pytest.raises(CheckpointError, match="checksum mismatch"):
            load_state(path)


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                      st.text(max_size=8))
SHAPES = st.lists(st.one_of(st.integers(-2, 4), st.just(2**40), st.just(2**63), st.text(max_size=2)), max_size=4)


@st.composite
def header_edits(draw, header):
    """A safetensors header with one of its tensors' entries (or its metadata) edited."""
    header = json.loads(json.dumps(header))
    names = sorted(key for key in header if key != "__metadata__")
    name = draw(st.sampled_from(names))
    edit = draw(st.sampled_from(["dtype", "shape", "offsets", "drop", "rename", "metadata", "junk"]))
    if edit == "dtype":
        header[name]["dtype"] = draw(st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "C64", "X"]))
    elif edit == "shape":
        header[name]["shape"] = draw(SHAPES)
    elif edit == "offsets":
        header[name]["data_offsets"] = draw(st.lists(st.integers(-1, 2**64), min_size=0, max_size=3))
    elif edit == "drop":
        del header[name]
    elif edit == "rename":
        header[draw(st.text(min_size=1, max_size=12))] = header.pop(name)
    elif edit == "metadata":
        key = draw(st.sampled_from(["tinytorch", "tinytorch_sha256", "other"]))
        header["__metadata__"][key] = draw(st.one_of(JSON_LEAF, st.just({"nested": "object"})))
    else:
        header[name][draw(st.text(max_size=6))] = draw(JSON_LEAF)
    return header


@FUZZ
@given(data=st.data())
def test_edited_safetensors_headers_are_refused_or_harmless(tmp_path, checkpoints, data):
    original, expected = checkpoints["safetensors"]
    header, body = safetensors_parts(original)
    edited = data.draw(header_edits(header), label="header")
    load_mutated(tmp_path, safetensors_file(edited, body), expected)


MEMBER_NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/"), min_size=1, max_size=10)
NPY_DESCR = st.sampled_from(["<f4", "<f8", ">f4", "|u1", "<i8", "|b1", "<c16", "<U3", "|O", "V8", "<f0", "zz"])


@st.composite
def npy_headers(draw):
    """The bytes of a .npy header with any descr and shape, and a few bytes of data or none."""
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 5), st.just(10**12), st.integers(-3, -1)), max_size=3)))
    descr = draw(NPY_DESCR)
    text = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, draw(st.booleans()), shape)
    text = text.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + bytes(draw(st.integers(0, 64)))


@FUZZ
@given(data=st.data())
def test_edited_npz_members_are_refused_or_harmless(tmp_path, checkpoints, data):
    original, expected = checkpoints["npz"]
    members = npz_members(original)
    name = data.draw(st.sampled_from(sorted(members)), label="member")
    edit = data.draw(st.sampled_from(["header", "drop", "rename", "truncate"]), label="edit")
    if edit == "header":
        members[name] = data.draw(npy_headers(), label="npy")
    elif edit == "drop":
        del members[name]
    elif edit == "rename":
        members[data.draw(MEMBER_NAMES, label="new name")] = members.pop(name)
    else:
        members[name] = members[name][: data.draw(st.integers(0, len(members[name]) - 1), label="cut")]
    load_mutated(tmp_path, npz_file(members), expected)


def test_a_compressed_npz_member_is_refused(tmp_path, checkpoints):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in npz_members(checkpoints["npz"][0]).items():
            archive.writestr(name + ".npy", payload)
    path = tmp_path / "deflated.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="not an uncompressed .npy array"):
        load_state(path)


# Skeletons: random JSON with tags in it, some naming real arrays, some nested deep. Python's json
# cannot write 2000 levels, so a marker string stands for them until `metadata_text` spells them out.
DEEP = "\x00deep:"


def metadata_text(skeleton):
    text = json.dumps(skeleton)
    for depth in (90, 101, 2000):
        text = text.replace(json.dumps(f"{DEEP}{depth}"), "[" * depth + "0" + "]" * depth)
    return text


def _tagged(children, names):
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.sampled_from(["__array__", "__x__", "__dict__"])),
                        children, max_size=3),
        st.builds(lambda name: {"__array__": name}, st.one_of(st.sampled_from(names), st.text(max_size=4), JSON_LEAF)),
        st.builds(lambda name: {"__tensor__": name}, st.sampled_from(names)),
        st.builds(lambda items: {"__tuple__": items}, st.one_of(st.lists(children, max_size=3), JSON_LEAF)),
        st.builds(lambda pairs: {"__dict__": pairs},
                  st.lists(st.one_of(st.tuples(JSON_LEAF, children).map(list), st.lists(children, max_size=3)),
                           max_size=3)),
        st.sampled_from([90, 101, 2000]).map(lambda depth: f"{DEEP}{depth}"),
    )


def skeletons(names):
    return st.recursive(JSON_LEAF, lambda children: _tagged(children, names), max_leaves=12)


def _paths(node, path=()):
    """Every place in a JSON tree: a tuple of keys and indices."""
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, path + (key,))


def _replaced(node, path, value):
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _replaced(node[path[0]], path[1:], value)
    return copy


def write_checkpoint(path, arrays, skeleton, format):
    """A checkpoint file holding `arrays` and the metadata `skeleton`, with a checksum that matches them."""
    metadata = metadata_text(skeleton)
    checksum = training._checksum(arrays, metadata)  # the loader's own: only the structure is wrong
    if format == "safetensors":
        from safetensors.numpy import save

        path.write_bytes(save(arrays, metadata={"tinytorch": metadata, "tinytorch_sha256": checksum}))
    else:
        members = {name: npy_bytes(array) for name, array in arrays.items()}
        path.write_bytes(npz_file({**members, "tinytorch": text_npy(metadata), "tinytorch_sha256": text_npy(checksum)}))
    return path


@pytest.mark.parametrize("format", FORMATS)
@FUZZ
@given(data=st.data())
def test_edited_metadata_with_a_valid_checksum_is_refused_or_loads_without_partial_change(tmp_path, checkpoints,
                                                                                          format, data):
    """A crafted file: structure edited and checksum recomputed. A load of it into a run is all or nothing."""
    arrays, skeleton = training.flatten_state(checkpoints[format][1])
    where = data.draw(st.sampled_from(list(_paths(skeleton))), label="where")
    value = data.draw(skeletons(sorted(arrays)), label="value")
    path = write_checkpoint(tmp_path / "crafted.ckpt", arrays, _replaced(skeleton, where, value), format)
    run = make_run(seed=5)
    before = everything(*run)
    try:
        with bounded():
            state = load_checkpoint(path, *run)
    except CheckpointError as error:
        assert "crafted.ckpt" in str(error)
        assert same_tree(everything(*run), before), "a refused checkpoint changed the run"
        return
    for name, array in run[0].state_dict().items():  # loaded: the model holds what the file holds
        np.testing.assert_array_equal(array, np.asarray(state["model"][name]))


# ---- tokenizer files --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    text = "the cat sat on the mat; the rat ate the hat. " * 20
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    BPETokenizer().train(text, vocab_size=290, special_tokens=["<|endoftext|>"]).save(path)
    return path.read_bytes()


def load_tokenizer(tmp_path, data):
    """Load `data` as a tokenizer file: a ValueError naming it, or a tokenizer within the limits."""
    path = tmp_path / "fuzzed.json"
    path.write_bytes(data)
    try:
        with bounded():
            tokenizer = BPETokenizer.load(path)
    except ValueError as error:
        assert "fuzzed.json" in str(error)
        return
    assert tokenizer.vocab_size <= tokenization.MAX_VOCAB_SIZE
    assert max(map(len, tokenizer.token_bytes[:256 + len(tokenizer.merges)])) <= tokenization.MAX_TOKEN_BYTES
    sample = "the cat<|endoftext|> 🙂"
    assert tokenizer.decode(tokenizer.encode(sample, allow_special=False)) == sample


@FUZZ
@given(data=st.data())
def test_a_cut_or_flipped_tokenizer_file_is_refused_or_valid(tmp_path, tokenizer_file, data):
    if data.draw(st.booleans(), label="cut"):
        mutated = tokenizer_file[: data.draw(st.integers(0, len(tokenizer_file) - 1), label="length kept")]
    else:
        mutated = flipped(tokenizer_file, data.draw(FLIPS, label="flips"))
    load_tokenizer(tmp_path, mutated)


IDS = st.one_of(st.integers(-2, 300), st.integers(256, 400), st.just(2**64), st.booleans(), st.floats(), st.text(max_size=2))


@st.composite
def merge_lists(draw):
    """Random merges, and chains of merges that double a token (the memory bomb), of any length."""
    if draw(st.booleans()):
        merges = [[97, 97]] + [[256 + i, 256 + i] for i in range(draw(st.integers(0, 60)))]
    else:
        merges = draw(st.lists(st.lists(IDS, max_size=3), max_size=12))
    return merges


@FUZZ
@given(merges=merge_lists(),
       special=st.dictionaries(st.text(max_size=6), st.one_of(st.integers(250, 330), st.text(max_size=2)), max_size=3),
       depth=st.sampled_from([0, 0, 3, 50_000]))
def test_structurally_edited_tokenizer_files_are_refused_or_valid(tmp_path, tokenizer_file, merges, special, depth):
    payload = json.loads(tokenizer_file)
    payload["merges"] = merges
    if special or depth:
        payload["special_tokens"] = special
    text = json.dumps(payload, separators=(",", ":"))
    if depth:
        text = "[" * depth + text + "]" * depth
    load_tokenizer(tmp_path, text.encode())


# ---- IDX files --------------------------------------------------------------------------------------------
IDX_ORIGINAL = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


def read_fuzzed_idx(raw):
    """read_idx must raise a DatasetError naming its input, or return an array that the bytes really hold."""
    try:
        with bounded():
            array = read_idx(raw, name="fuzzed.idx")
    except DatasetError as error:
        assert "fuzzed.idx" in str(error)
        return
    header = 4 + 4 * raw[3]
    assert array.shape == struct.unpack(f">{raw[3]}I", raw[4:header])
    stored = np.frombuffer(raw, dtype=array.dtype.newbyteorder(">"), offset=header)  # IDX is big-endian
    assert np.array_equal(array.reshape(-1), stored, equal_nan=array.dtype.kind == "f")


@FUZZ
@given(data=st.data())
def test_a_cut_or_flipped_idx_file_is_refused_or_read_as_it_is(data):
    if data.draw(st.booleans(), label="cut"):
        raw = IDX_ORIGINAL[: data.draw(st.integers(0, len(IDX_ORIGINAL) - 1), label="length kept")]
    else:
        raw = flipped(IDX_ORIGINAL, data.draw(FLIPS, label="flips"))
    read_fuzzed_idx(raw)


@FUZZ
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]), ndim=st.integers(0, 255),
       dims=st.lists(st.one_of(st.integers(0, 6), st.just(2**32 - 1)), max_size=8), payload=st.integers(0, 300))
def test_idx_headers_with_any_sizes_are_refused_or_read_as_they_are(code, ndim, dims, payload):
    sizes = (dims * (ndim // max(len(dims), 1) + 1))[:ndim] if dims else [1] * ndim
    raw = bytes([0, 0, code, ndim]) + struct.pack(f">{ndim}I", *sizes) + bytes(payload)
    read_fuzzed_idx(raw)


# ---- CIFAR-10 batches -------------------------------------------------------------------------------------
CIFAR_ORIGINAL = cifar_batch_bytes(np.arange(3 * 3072, dtype=np.uint8).reshape(3, 3072) % 251, [3, 0, 9], "batch")


def read_fuzzed_batch(tmp_path, payload):
    """read_cifar_batch must raise a DatasetError naming the file, or return a batch that obeys the format.

    A CIFAR-10 batch has no checksum of its own (the archive's MD5 is checked before extraction),
    so a flipped pixel cannot be detected; every rule of the format can.
    """
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    try:
        with bounded():
            data, labels = read_cifar_batch(path)
    except DatasetError as error:
        assert "data_batch_1" in str(error)
        return
    assert data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
    assert labels.dtype == np.int64 and labels.shape == (len(data),)
    assert np.all((labels >= 0) & (labels <= 9))


@FUZZ
@given(data=st.data())
def test_a_cut_or_flipped_cifar_batch_is_refused_or_well_formed(tmp_path, data):
    if data.draw(st.booleans(), label="cut"):
        payload = CIFAR_ORIGINAL[: data.draw(st.integers(0, len(CIFAR_ORIGINAL) - 1), label="length kept")]
    else:
        payload = flipped(CIFAR_ORIGINAL, data.draw(FLIPS, label="flips"))
    read_fuzzed_batch(tmp_path, payload)


ARRAYS = st.builds(
    lambda dtype, shape: np.zeros(shape, dtype=dtype),
    st.sampled_from([np.uint8, np.int64, np.float32, np.bool_]),
    st.sampled_from([(0, 3072), (2, 3072), (2, 1024), (3072,), (2, 3, 32, 32), ()]),
)
VALUES = st.one_of(ARRAYS, st.lists(st.one_of(st.integers(-3, 12), st.floats(), st.booleans(), st.text(max_size=2),
                                              st.just(2**70), st.none()), max_size=4),
                   st.binary(max_size=8), st.none(), st.integers())


@FUZZ
@given(data=VALUES, labels=VALUES, protocol=st.sampled_from([2, 4, 5]))
def test_cifar_batches_with_any_contents_are_refused_or_well_formed(tmp_path, data, labels, protocol):
    read_fuzzed_batch(tmp_path, pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol))


def test_a_pickle_that_repeats_one_row_a_million_times_is_refused_without_copying_it(tmp_path):
    row = [0] * 3072
    payload = pickle.dumps({b"data": [row] * 200_000, b"labels": [0] * 200_000}, protocol=2)  # 1 MB of references
    read_fuzzed_batch(tmp_path, payload)  # np.asarray of the list would build 600 million numbers (5 GB)
