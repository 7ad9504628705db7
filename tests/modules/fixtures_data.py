"""Small dataset files in the official formats, and a local HTTP server to download them from.

The test suite needs neither network nor real data: these helpers write MNIST (gzip-compressed
IDX), CIFAR-10 (`cifar-10-python.tar.gz` holding pickled batches) and Tiny Shakespeare
(`input.txt`) fixtures with a few learnable samples, and serve bytes from 127.0.0.1 so that the
download code runs for real. Milestone tests use them too: write the files into a temporary data
folder, then point `root=` (or TINYTORCH_DATA) at it and, for MNIST, patch
`tinytorch.core.dataloader.MNIST_FILES` with the checksums that `write_mnist` returns.

At the end, helpers that write checkpoint files by hand (raw safetensors headers, raw .npy
members), for the tests of module 07's loaders on damaged and hostile files.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

IDX_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
                  np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SHAKESPEARE_SAMPLE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of an array: 00 00 <type> <ndim>, big-endian sizes, big-endian data."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, IDX_TYPE_CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def gzipped(data: bytes, level: int = 9) -> bytes:
    """gzip with a fixed timestamp, so the same data always gives the same bytes (and MD5)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def learnable_images(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator,
                     template_seed: int = 1234) -> np.ndarray:
    """uint8 images: one fixed random template per class plus fresh noise, so a small model can learn them."""
    templates = np.random.default_rng(template_seed).integers(0, 256, size=(10, *shape))
    noise = rng.integers(-40, 41, size=(len(labels), *shape))
    return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)


@dataclass
class MnistFixture:
    folder: Path  # the dataset folder, <root>/mnist
    files: dict[str, bytes]  # name -> the .gz bytes written
    checksums: dict[str, tuple[str, str]]  # name -> (md5 of the .gz, md5 of its content): MNIST_FILES' format
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # "train"/"test" -> (images (n, 28, 28), labels (n,))


def write_mnist(root: Path, train_size: int = 40, test_size: int = 20, seed: int = 0) -> MnistFixture:
    """Write the four MNIST .gz files into root/mnist/ with small, learnable contents."""
    folder = Path(root) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    files, checksums, arrays = {}, {}, {}
    rng = np.random.default_rng(seed)
    for split, size in (("train", train_size), ("test", test_size)):
        labels = rng.integers(0, 10, size=size).astype(np.uint8)
        images = learnable_images(labels, (28, 28), rng)
        arrays[split] = (images, labels)
        for name, array in zip(MNIST_NAMES[split], (images, labels)):
            raw = idx_bytes(array)
            files[name] = gzipped(raw)
            checksums[name] = (md5(files[name]), md5(raw))
            (folder / name).write_bytes(files[name])
    return MnistFixture(folder, files, checksums, arrays)


def cifar_batch_bytes(data: np.ndarray, labels: list[int], name: str, protocol: int = 2) -> bytes:
    """One pickled batch in the official layout: a dict with bytes keys, data (n, 3072) uint8."""
    batch = {b"batch_label": name.encode(), b"labels": list(labels), b"data": data,
             b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(batch, protocol=protocol)


@dataclass
class Cifar10Fixture:
    archive: bytes  # the bytes of cifar-10-python.tar.gz
    md5: str
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # "train"/"test" -> (images (n, 3, 32, 32), labels)
    batches: dict[str, bytes] = field(default_factory=dict)  # file name -> pickled bytes


def make_cifar10(per_batch: int = 8, test_size: int = 10, seed: int = 0, protocol: int = 2) -> Cifar10Fixture:
    """A tiny CIFAR-10 in the official archive layout: five training batches, a test batch, batches.meta."""
    rng = np.random.default_rng(seed)
    batches, arrays = {}, {}
    train_labels = rng.integers(0, 10, size=5 * per_batch)
    test_labels = rng.integers(0, 10, size=test_size)
    train_images = learnable_images(train_labels, (3, 32, 32), rng)
    test_images = learnable_images(test_labels, (3, 32, 32), rng)
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        batches[f"data_batch_{i + 1}"] = cifar_batch_bytes(
            train_images[part].reshape(per_batch, 3072), train_labels[part].tolist(), f"training batch {i + 1} of 5", protocol)
    batches["test_batch"] = cifar_batch_bytes(test_images.reshape(test_size, 3072), test_labels.tolist(), "testing batch 1 of 1", protocol)
    classes = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    batches["batches.meta"] = pickle.dumps({b"label_names": classes, b"num_cases_per_batch": per_batch, b"num_vis": 3072},
                                           protocol=protocol)
    arrays["train"] = (train_images, train_labels)
    arrays["test"] = (test_images, test_labels)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mtime = len(payload), 0
            tar.addfile(info, io.BytesIO(payload))
    data = archive.getvalue()
    return Cifar10Fixture(data, md5(data), arrays, batches)


def write_cifar10_folder(root: Path, fixture: Cifar10Fixture | None = None) -> Cifar10Fixture:
    """Write the extracted root/cifar-10-batches-py/ folder (no archive needed, no checksum to patch)."""
    fixture = fixture or make_cifar10()
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in fixture.batches.items():
        (folder / name).write_bytes(payload)
    return fixture


# ---- a local HTTP server -------------------------------------------------------------------------
@dataclass
class CutOff:
    """A response that promises all of `body` (Content-Length) but sends only `sent` bytes, then hangs up.

    With `hold`, the connection stalls after those bytes until the event is set (a download in progress).
    """

    body: bytes
    sent: int
    hold: threading.Event | None = None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.server.requests.append(self.path)
        payload = self.server.files.get(self.path)
        if payload is None:
            self.send_error(404, "not found")
            return
        body, sent = (payload.body, payload.sent) if isinstance(payload, CutOff) else (payload, len(payload))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()
        if isinstance(payload, CutOff) and payload.hold is not None:
            payload.hold.wait(timeout=60)
        self.close_connection = True

    def log_message(self, format, *args):  # keep test output clean
        pass


@dataclass
class LocalServer:
    base_url: str  # http://127.0.0.1:PORT
    files: dict[str, bytes | CutOff]  # URL path ("/mnist/x.gz") -> what to send; edit it while serving
    requests: list[str]  # every path requested, in order

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.contextmanager
def serve_files(files: dict[str, bytes | CutOff] | None = None):
    """Serve `files` over HTTP on 127.0.0.1 (an ephemeral port) from a background thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = dict(files or {})
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield LocalServer(f"http://{host}:{port}", server.files, server.requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---- checkpoint files written by hand ---------------------------------------------------------------
# The loaders of module 07 must refuse damaged and hostile files. These helpers write such files
# the way another program (or an attacker) would: raw safetensors headers, raw .npy members.
def safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    """(header dict, tensor bytes) of a safetensors file."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def safetensors_file(header: dict, body: bytes) -> bytes:
    """A safetensors file from a header dict (any content, valid or not) and the tensor bytes."""
    text = json.dumps(header).encode("utf-8")
    return len(text).to_bytes(8, "little") + text + body


def npy_bytes(array: np.ndarray) -> bytes:
    """One .npy file, as np.save writes it."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npz_file(members: dict[str, bytes]) -> bytes:
    """A .npz (a zip of stored .npy members, as np.savez writes) from raw member bytes, named without .npy."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name + ".npy", payload)
    return buffer.getvalue()


def npz_members(data: bytes) -> dict[str, bytes]:
    """The raw .npy bytes of each member of a .npz, named without .npy."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name[: -len(".npy")]: archive.read(name) for name in archive.namelist()}


def text_npy(text: str) -> bytes:
    """A .npz member holding text as uint8 bytes, as module 07 stores its metadata."""
    return npy_bytes(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def python2_cifar_batch_bytes(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled as Python 2's cPickle wrote the official files: every string a byte string."""
    def string(value: bytes) -> bytes:  # SHORT_BINSTRING
        return b"U" + bytes([len(value)]) + value

    def integer(value: int) -> bytes:  # BININT
        return b"J" + struct.pack("<i", value)

    raw = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
    return b"".join([
        b"\x80\x02}(",  # PROTO 2, EMPTY_DICT, MARK
        string(b"labels"), b"](", *map(integer, labels), b"e",  # EMPTY_LIST, MARK, ..., APPENDS
        string(b"data"),
        b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", integer(0), b"\x85", string(b"b"), b"\x87R",
        b"(", integer(1), integer(data.shape[0]), integer(data.shape[1]), b"\x86",  # state: version, shape,
        b"cnumpy\ndtype\n", string(b"u1"), integer(0), integer(1), b"\x87R",  # dtype('u1', 0, 1)
        b"(", integer(3), string(b"|"), b"NNN", integer(-1), integer(-1), integer(0), b"tb",  # its state
        b"\x89", b"T" + struct.pack("<I", len(raw)) + raw, b"tb",  # is_fortran False, the bytes; BUILD
        b"u.",  # SETITEMS, STOP
    ])
