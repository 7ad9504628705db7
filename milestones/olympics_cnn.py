"""The `olympics` milestone's closed-division CIFAR-10 entry: the milestone's CNN, made small and fast.

This is the code a capstone competitor writes, and the code a Torch Olympics submission names as
its builder (the validator records its SHA-256 and calls `build_entry()` to load the submitted
state). It keeps the CIFAR-10 milestone's architecture weight for weight, as the closed division
asks, and uses the Optimization tier's tools on it:

- module 15: BatchNorm folded into the convolution before it (an exact rewrite of eval mode), then
  **weight-only** quantization: every weight stored as symmetric per-channel integer codes with a
  float32 scale per output channel, and a float32 bias. The activations stay float32: on a CPU
  without int8 matrix instructions, quantizing every layer's input only adds work at batch 1
  (module 15 measured its int8-activation layers at 1.04x the float32 latency), while the bytes
  saved are all in the weights;
- sub-byte storage for the layers that tolerate it: 4-bit codes, two per byte. int8 alone cannot
  reach 4x fewer bytes than float32: the codes are exactly 4x, and the scales and biases cost the
  rest (3.96x for this model). Which layers get 4 bits is the milestone's choice, measured on
  held-out validation images (`olympics.py`);
- module 18 / module 17: inference without a graph. `EntryCNN.forward` runs NumPy arrays through
  the layers: BatchNorm is gone, ReLU runs after the pool, a 2x2 max pool is two `np.maximum` of
  strided views, a convolution is one im2col copy and one BLAS product per tile of output
  channels, its column buffer memoized per input shape. The integer codes are converted to
  float32 one tile of at most TILE_VALUES values at a time, so no float32 copy of a weight exists;
- module 18's compiled kernels, when numba is installed (the `accel` extra): a 3x3 convolution's
  im2col columns are written in one pass straight from the previous convolution's product, with
  its ReLU and 2x2 pool on the way (`_window_columns`), each weight tile is filled from the codes
  in one pass (`_fill_tile`), and the batch-1 linear layer is a dot product over its codes
  (`_codes_product`). The BLAS products stay. Without numba the NumPy plan runs; both give the same
  outputs (tested). On the 2-core machine at batch 1, one BLAS thread: the NumPy plan about
  0.70 ms a pass, the compiled one about 0.55 ms, the float32 model through the framework 1.3 ms.

    import sys; sys.path.insert(0, "milestones")
    from olympics_cnn import build_entry, make_entry
    entry = make_entry(trained_float_cnn, bits={"16": 4})   # layer name -> bits (default 8)
    model = build_entry()                                    # empty, to load a saved entry into
"""

from __future__ import annotations

import copy

import numpy as np
from cifar10_model import (
    build_cifar_cnn,  # milestones/ is on the path: a milestone, or a builder import
)

from tinytorch.core.acceleration import NUMBA_AVAILABLE
from tinytorch.core.layers import Flatten, Identity, Linear, Module, ReLU, Sequential
from tinytorch.core.quantization import fold_batchnorm, quantize_array, weight_qparams
from tinytorch.core.spatial import Conv2d, MaxPool2d, conv_output_size
from tinytorch.core.tensor import Tensor, as_tensor

TILE_VALUES = 2**16  # float32 values of one converted weight tile: 256 KiB, which stays in the L2 cache beside the columns
PACKED_BITS = 4  # codes of at most this many bits are stored two per byte


if NUMBA_AVAILABLE:  # module 18's `accel` extra: compiled loops for what NumPy does in several passes
    import numba

    def _kernel(function):
        # Compiled in each process (about 1.4 s at the first call), not cached on disk: the
        # validator imports a builder from its file under a name of its own, and numba's disk
        # cache, shared by every import of the file, then names a module that another process
        # cannot import. fastmath: the activations and weights are finite, no NaN rules needed.
        return numba.njit(cache=False, fastmath=True)(function)
else:
    def _kernel(function):
        return None  # no compiled path: EntryCNN runs its NumPy plan


@_kernel
def _window_columns(y, columns, pool, relu):
    """im2col of a 3x3 convolution (stride 1, padding 1), straight from the previous layer's output, in one pass.

    y: (C, N, H, W), the layout a convolution's product leaves; `pool` takes its 2x2 max first
    (H and W even) and `relu` its ReLU (the two commute). Every input value is read once and
    written into the up to 9 columns that use it: columns[(c, i, j), (n, oh, ow)] =
    input[c, n, oh + i - 1, ow + j - 1]. Positions that fall in the padding are never written:
    the buffer was zeroed once, as in EntryConv2d._columns_for. The 3x3 is written out on
    purpose: with the kernel size a variable, the compiled loop measured three times slower.
    """
    channels, batch, height, width = y.shape
    h, w = (height // 2, width // 2) if pool else (height, width)
    for c in range(channels):
        for n in range(batch):
            for a in range(h):
                for b in range(w):
                    if pool:
                        v = max(max(y[c, n, 2 * a, 2 * b], y[c, n, 2 * a, 2 * b + 1]),
                                max(y[c, n, 2 * a + 1, 2 * b], y[c, n, 2 * a + 1, 2 * b + 1]))
                    else:
                        v = y[c, n, a, b]
                    if relu and v < 0:
                        v = 0.0
                    for i in range(3):
                        oh = a - i + 1
                        if 0 <= oh < h:
                            for j in range(3):
                                ow = b - j + 1
                                if 0 <= ow < w:
                                    columns[c * 9 + i * 3 + j, (n * h + oh) * w + ow] = v


@_kernel
def _fill_tile(codes, packed, start, block, k, scale, bias, scale_codes):
    """block[r] = [codes of row start + r (times its scale when scale_codes), bias]: one pass per row.

    codes: (rows, k) int8, or (rows, ceil(k / 2)) uint8 two per byte when `packed`, decoded with
    NIBBLE_PAIRS (pack_nibbles' layout; numba reads the global table as a constant).
    """
    for r in range(block.shape[0]):
        row = start + r
        s = scale[row] if scale_codes else np.float32(1.0)
        if packed:
            for p in range(k // 2):
                block[r, 2 * p] = NIBBLE_PAIRS[codes[row, p], 0] * s
                block[r, 2 * p + 1] = NIBBLE_PAIRS[codes[row, p], 1] * s
            if k % 2:
                block[r, k - 1] = NIBBLE_PAIRS[codes[row, k // 2], 0] * s
        elif scale_codes:
            for p in range(k):
                block[r, p] = np.float32(codes[row, p]) * s
        else:
            for p in range(k):
                block[r, p] = np.float32(codes[row, p])
        block[r, k] = bias[row]


@_kernel
def _codes_product(codes, packed, k, x, scale, bias, out):
    """out[n, o] = scale[o] * (codes[o] . x[n]) + bias[o], straight from the codes, for a few rows x (N, k).

    A compiled dot product per output: for a batch-1 linear layer (10 x 2048 here) it measured
    1.5 us, where converting the codes and calling BLAS took 12 us. BLAS wins from a few columns on.
    """
    for n in range(x.shape[0]):
        for o in range(codes.shape[0]):
            total = np.float32(0.0)
            if packed:
                for p in range(k // 2):
                    total += NIBBLE_PAIRS[codes[o, p], 0] * x[n, 2 * p] + NIBBLE_PAIRS[codes[o, p], 1] * x[n, 2 * p + 1]
                if k % 2:
                    total += NIBBLE_PAIRS[codes[o, k // 2], 0] * x[n, k - 1]
            else:
                for p in range(k):
                    total += np.float32(codes[o, p]) * x[n, p]
            out[n, o] = total * scale[o] + bias[o]


DIRECT_ROWS = 4  # a compiled linear layer with at most this many input rows skips BLAS (see _codes_product)


def pack_nibbles(codes):
    """int8 codes (rows, k) in [-8, 7] -> uint8 (rows, ceil(k/2)): two per byte, the first of a pair in the low nibble."""
    codes = np.asarray(codes, np.int8)
    if codes.ndim != 2:
        raise ValueError(f"pack_nibbles: expects a 2-D array of codes (rows, k), got shape {codes.shape}")
    if codes.size and (codes.min() < -8 or codes.max() > 7):
        raise ValueError("pack_nibbles: 4-bit codes must lie in [-8, 7]")
    if codes.shape[1] % 2:
        codes = np.concatenate([codes, np.zeros((codes.shape[0], 1), np.int8)], axis=1)
    biased = (codes.astype(np.int16) + 8).astype(np.uint8)  # offset binary: -8 -> 0, 7 -> 15
    return biased[:, 0::2] | (biased[:, 1::2] << 4)


# every byte's two codes as float32: NIBBLE_PAIRS[byte] = (low - 8, high - 8)
NIBBLE_PAIRS = np.stack([np.arange(256) % 16 - 8, np.arange(256) // 16 - 8], axis=1).astype(np.float32)


def unpack_nibbles(packed, k):
    """The int8 codes (rows, k) that pack_nibbles stored in `packed` (rows, ceil(k/2))."""
    packed = np.asarray(packed, np.uint8)
    return NIBBLE_PAIRS[packed].astype(np.int8).reshape(packed.shape[0], -1)[:, :k]


class WeightCodes(Module):
    """What the entry's conv and linear layers share: integer weight codes, per-channel scales, a float32 bias.

    State: `weight` (int8 codes of the layer's weight shape, or for 4 bits and below the codes
    packed two per byte, with `weight_shape` holding the logical shape), `weight_scale` (float32,
    one per output channel) and `bias` (float32).
    """

    def _register(self, weight_shape, bits):
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"{type(self).__name__}: bits must be 2 to 8, got {bits}")
        self.bits, self.weight_shape_ = int(bits), tuple(int(n) for n in weight_shape)
        if self.bits <= PACKED_BITS:
            k = int(np.prod(weight_shape[1:]))
            self.register_buffer("weight", Tensor(np.zeros((weight_shape[0], (k + 1) // 2), np.uint8), dtype=np.uint8))
            self.register_buffer("weight_shape", Tensor(np.array(weight_shape, np.int64), dtype=np.int64))
        else:
            self.register_buffer("weight", Tensor(np.zeros(weight_shape, np.int8), dtype=np.int8))
        self.register_buffer("weight_scale", Tensor(np.ones(weight_shape[0], np.float32), dtype=np.float32))
        self.register_buffer("bias", Tensor(np.zeros(weight_shape[0], np.float32), dtype=np.float32))
        self._memo = None  # the tiles of multiply(), see _tiles

    def use_storage(self, packed):
        """Switch between int8 codes and codes packed two per byte (4 bits); the state is emptied."""
        if packed != (self.bits <= PACKED_BITS):
            if not packed:
                self._buffers.pop("weight_shape", None)
                object.__delattr__(self, "weight_shape")
            self._register(self.weight_shape_, PACKED_BITS if packed else 8)

    def load_float(self, weight, bias):
        """Quantize a float weight (and bias, or None) into the state."""
        weight = np.asarray(weight)
        if weight.shape != self.weight_shape_:
            raise ValueError(f"{type(self).__name__}: weight of shape {weight.shape}, expected {self.weight_shape_}")
        scale, zero_point = weight_qparams(weight, per_channel=True, bits=self.bits)  # module 15: symmetric, zero 0
        codes = quantize_array(weight, scale, zero_point, self.bits, symmetric=True, axis=0)
        self.weight.data = pack_nibbles(codes.reshape(codes.shape[0], -1)) if self.bits <= PACKED_BITS else codes
        self.weight_scale.data = scale
        self.bias.data = np.zeros(weight.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32)
        return self

    def stored_codes(self):
        """The state's codes as rows: (out, K) int8, or (out, ceil(K / 2)) uint8 when packed two per byte."""
        return self.weight.data if self.bits <= PACKED_BITS else self.weight.data.reshape(self.weight_shape_[0], -1)

    def codes(self):
        """The int8 codes, (out_channels, everything else): unpacked when stored two per byte."""
        rows = self.weight_shape_[0]
        if self.bits <= PACKED_BITS:
            return unpack_nibbles(self.weight.data, int(np.prod(self.weight_shape_[1:])))
        return self.weight.data.reshape(rows, -1)

    def dequantized(self):
        """The float32 weight that the codes stand for (logical shape), for checks."""
        return (self.codes() * self.weight_scale.data[:, None]).reshape(self.weight_shape_).astype(np.float32)

    def multiply(self, columns, compiled=False):
        """scale * (codes @ x) + bias for columns = [x; ones]: (K + 1, M) float32 -> (out, M) float32.

        The codes are converted to float32 a tile of output channels at a time into one shared
        scratch buffer of TILE_VALUES values, so the float32 weight never exists whole. Each tile
        carries one more column, the bias, which meets the row of ones that the caller appends to
        its columns: BLAS adds the bias. The scales multiply the tile or the product, whichever
        holds fewer values: at batch 1 the deep layers' products are far smaller than their
        weights, the first layer's far larger. `compiled` fills each tile in one compiled pass
        (`_fill_tile`) instead of NumPy's two or three.
        """
        m = columns.shape[1]
        tiles, scale_codes, bias_column = self._tiles(m)
        k = columns.shape[0] - 1
        packed = self.bits <= PACKED_BITS
        pairs = packed and k % 2 == 0  # packed codes decode straight into the tile
        codes = self.stored_codes() if compiled or pairs else self.codes()
        out = np.empty((self.weight_shape_[0], m), np.float32)
        scale = self.weight_scale.data[:, None]
        for rows, block in tiles:
            if compiled:  # codes, scale and bias column in one pass
                _fill_tile(codes, packed, rows.start, block, k, self.weight_scale.data, bias_column, scale_codes)
            else:
                if pairs:  # a table lookup per byte gives its two codes as float32
                    np.take(NIBBLE_PAIRS, codes[rows], axis=0, out=block[:, :-1].reshape(-1, k // 2, 2), mode="clip")
                else:
                    np.copyto(block[:, :-1], codes[rows])  # int -> float32, exact
                if scale_codes:
                    block[:, :-1] *= scale[rows]
                block[:, -1] = bias_column[rows]
            np.matmul(block, columns, out=out[rows])
        if not scale_codes:
            out *= scale
        return out

    def _tiles(self, m):
        """([(row slice, scratch view)], scale the codes?, bias column) for products with m columns, memoized."""
        key = (m,) + tuple((t.version, id(t.data)) for t in (self.weight, self.weight_scale, self.bias))
        if self._memo is None or self._memo[0] != key:
            rows, k = self.weight_shape_[0], int(np.prod(self.weight_shape_[1:])) + 1  # + the bias column
            fit = max(1, TILE_VALUES // k)  # rows that fit in the scratch buffer
            even = -(-rows // -(-rows // fit))  # as few tiles as fit, of equal size...
            step = min(fit, rows, -(-even // 16) * 16)  # ...in whole 16-row blocks where they fit (BLAS's unit)
            scratch = _scratch(step * k)
            tiles = [(slice(start, min(start + step, rows)), scratch[:(min(start + step, rows) - start) * k]
                      .reshape(-1, k)) for start in range(0, rows, step)]
            scale_codes = k - 1 < m  # scale whichever is smaller: the weight tile or the product
            bias = self.bias.data.astype(np.float32)
            self._memo = (key, tiles, scale_codes, bias if scale_codes else bias / self.weight_scale.data)
        return self._memo[1:]

    def extra_repr(self):
        return f"{self.bits}-bit weights" + (", two per byte" if self.bits <= PACKED_BITS else "")


class EntryConv2d(WeightCodes):
    """A 3x3-style convolution (groups 1, dilation 1) with integer weight codes; NCHW float32 arrays in and out."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0), bits=8):
        super().__init__()
        self.kernel_size, self.stride, self.padding = tuple(kernel_size), tuple(stride), tuple(padding)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self._register((self.out_channels, self.in_channels) + self.kernel_size, bits)
        self._columns = None  # (input shape, im2col buffer, tap slices), memoized for the last input shape

    @classmethod
    def from_conv(cls, conv, bits=8):
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"EntryConv2d: only groups=1 and dilation=1 convolutions, got groups={conv.groups}, "
                             f"dilation={conv.dilation}; keep that layer as it is")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bits)
        return layer.load_float(conv.weight.data, None if conv.bias is None else conv.bias.data)

    def run(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expected a 4-D input (N, {self.in_channels}, H, W), got shape {x.shape}")
        n = x.shape[0]
        image, copies, columns, (ho, wo) = self._columns_for(x.shape)
        np.copyto(image, x.transpose(1, 0, 2, 3))  # (C, N, H, W): the columns' row order is (C, kh, kw)
        for target, source in copies:
            np.copyto(target, source)
        out = self.multiply(columns).reshape(self.out_channels, n, ho, wo)
        return out[None, :, 0] if n == 1 else out.transpose(1, 0, 2, 3)

    def _columns_for(self, shape):
        """(image buffer, [(columns view, image view)] per tap, columns (K + 1, N*Ho*Wo), (Ho, Wo)), memoized.

        Memoized for the last input shape (module 17): the buffers and every tap's views are made
        once. The columns are zeroed once and each call writes only the positions that a tap reads
        from inside the image, so the padding stays zero without a padded copy of the input; their
        last row is ones, for the bias (see multiply).
        """
        if self._columns is not None and self._columns[0] == shape:
            return self._columns[1]
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
        k, m = c * kh * kw, n * ho * wo
        columns = np.zeros((k + 1, m), np.float32)
        columns[k] = 1.0
        image, grid = np.empty((c, n, h, w), np.float32), columns[:k].reshape(c, kh, kw, n, ho, wo)
        copies = []
        for i in range(kh):
            for j in range(kw):
                rows, cols = _tap_slices(i, ph, sh, h, ho), _tap_slices(j, pw, sw, w, wo)
                if rows and cols:
                    copies.append((grid[:, i, j, :, rows[0], cols[0]], image[:, :, rows[1], cols[1]]))
        self._columns = (shape, (image, copies, columns, (ho, wo)))
        return self._columns[1]

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, " + super().extra_repr())


class EntryLinear(WeightCodes):
    """y = x @ W.T + b with integer weight codes; float32 arrays (N, in) -> (N, out)."""

    def __init__(self, in_features, out_features, bits=8):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._register((self.out_features, self.in_features), bits)

    @classmethod
    def from_linear(cls, linear, bits=8):
        layer = cls(linear.in_features, linear.out_features, bits)
        return layer.load_float(linear.weight.data, None if linear.bias is None else linear.bias.data)

    def run(self, x, compiled=False):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r} expected input (N, {self.in_features}), got shape {x.shape}")
        if compiled and x.shape[0] <= DIRECT_ROWS:
            out = np.empty((x.shape[0], self.out_features), np.float32)
            _codes_product(self.stored_codes(), self.bits <= PACKED_BITS, self.in_features,
                           np.ascontiguousarray(x, np.float32), self.weight_scale.data, self.bias.data, out)
            return out
        columns = np.empty((self.in_features + 1, x.shape[0]), np.float32)
        columns[:-1], columns[-1] = x.T, 1.0  # the row of ones meets the tile's bias column (see multiply)
        return self.multiply(columns, compiled).T

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " + super().extra_repr()


_SCRATCH = []


def _scratch(size):
    """The one float32 buffer that every layer converts its codes into: TILE_VALUES values, more for a long row."""
    if not _SCRATCH or _SCRATCH[0].size < size:
        _SCRATCH[:] = [np.empty(max(size, TILE_VALUES), np.float32)]
    return _SCRATCH[0]


def _tap_slices(tap, padding, stride, size, out_size):
    """(output slice, input slice) along one axis for kernel tap `tap`: the outputs whose input lies inside the image."""
    first = max(0, -(-(padding - tap) // stride))  # ceil((padding - tap) / stride)
    last = min(out_size - 1, (size - 1 + padding - tap) // stride)
    if last < first:
        return None
    start = first * stride + tap - padding
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


def max_pool_2x2(x):
    """2x2 max pool, stride 2, on an (N, C, H, W) array with even H and W: pairs along W, then along H."""
    pairs = np.maximum(x[..., 0::2], x[..., 1::2])
    return np.maximum(pairs[:, :, 0::2], pairs[:, :, 1::2])


class EntryCNN(Sequential):
    """The entry's layers, run on NumPy arrays without building a graph (inference only).

    A ReLU followed by a 2x2 max pool runs after the pool, on a quarter of the values: the two
    commute, since max(relu(a), relu(b)) = relu(max(a, b)).

    With numba installed (module 18's `accel` extra) `compiled` is True and the plan fuses more:
    each stride-1 convolution builds its im2col columns straight from the previous product, its
    ReLU and its 2x2 pool in one compiled pass (`_window_columns`), and the weight tiles are filled
    in one pass each (`_fill_tile`). Set `entry.compiled = False` for the NumPy plan; the two give
    the same outputs.
    """

    def __init__(self, *layers):
        super().__init__(*layers)
        self.compiled = NUMBA_AVAILABLE
        self._plans = {}  # (input shape, compiled) -> the list of array functions that forward runs (memoized)

    def forward(self, x):
        a = np.asarray(as_tensor(x).data, dtype=np.float32)
        key = (a.shape, bool(self.compiled and NUMBA_AVAILABLE))
        plan = self._plans.get(key) or self._plan_for(*key)
        for step in plan:
            a = step(a)
        return Tensor(np.ascontiguousarray(a), dtype=np.float32)

    def _plan_for(self, shape, compiled=False):
        """The steps for an input shape, decided once: which pools are the fast 2x2 kind, where ReLU goes."""
        layers = [layer for layer in self if not isinstance(layer, Identity)]  # Identity: a folded BatchNorm
        if compiled:
            self._plans[shape, True] = plan = _compiled_plan(layers, shape)
            return plan
        plan, probe = [], np.zeros(shape, np.float32)
        for index, layer in enumerate(layers):
            following = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(layer, ReLU):
                if _fast_pool(following, probe):
                    continue  # applied after the pool, below
                step = _relu_in_place if plan else _relu_copy  # never overwrite the caller's input
            elif _fast_pool(layer, probe):
                step = _pool_relu if index and isinstance(layers[index - 1], ReLU) else max_pool_2x2
            elif isinstance(layer, Flatten):
                step = _flatten
            elif isinstance(layer, WeightCodes):
                step = layer.run
            else:
                raise _no_rule(layer)
            probe = step(probe)
            plan.append(step)
        self._plans[shape, False] = plan
        return plan

    def check_state_dict(self, state_dict, strict=True):
        """Check a saved entry against this entry's layers, each in the storage (int8 or packed) the state holds."""
        probe = copy.deepcopy(self) if self._storage_differs(state_dict) else self
        if probe is not self:
            probe._use_storage_of(state_dict)
        return Sequential.check_state_dict(probe, state_dict, strict)

    def load_state_dict(self, state_dict, strict=True):
        """Load a saved entry: checked first (nothing changes if it does not fit), then each layer takes its storage."""
        self.check_state_dict(state_dict, strict)
        self._use_storage_of(state_dict)
        return super().load_state_dict(state_dict, strict)

    def _coded_layers(self):
        return [(name, layer) for name, layer in self.named_children() if isinstance(layer, WeightCodes)]

    def _storage_differs(self, state_dict):
        return any((f"{name}.weight_shape" in state_dict) != (layer.bits <= PACKED_BITS)
                   for name, layer in self._coded_layers())

    def _use_storage_of(self, state_dict):
        for name, layer in self._coded_layers():
            layer.use_storage(packed=f"{name}.weight_shape" in state_dict)


def _compiled_plan(layers, shape):
    """EntryCNN's steps with the compiled kernels (see EntryCNN), for an (N, C, H, W) input shape.

    Between two convolutions the array stays in the (C, N, H, W) layout of the product, and the
    ReLU and 2x2 pool after a convolution are left pending until the next layer: a stride-1
    convolution takes them into its im2col pass; any other layer gets them applied first (the
    NumPy way) on the (N, C, H, W) array.
    """
    plan, probe = [], np.zeros(shape, np.float32)
    state = {"channels_first": False, "relu": False, "pool": False}  # the array's layout and what is pending

    def add(step):
        nonlocal probe
        probe = step(probe)
        plan.append(step)

    for layer in layers:
        nchw = probe.transpose(1, 0, 2, 3) if state["channels_first"] else probe
        if isinstance(layer, ReLU):
            state["relu"] = True
        elif not state["pool"] and _fast_pool(layer, nchw):
            state["pool"] = True
        elif isinstance(layer, EntryConv2d) and _window_conv(layer) and probe.ndim == 4:
            add(_columns_step(layer, dict(state), _pooled_shape(nchw.shape, state["pool"])))
            state = {"channels_first": True, "relu": False, "pool": False}
        else:
            if state["channels_first"] or state["relu"] or state["pool"]:
                add(_pending_step(dict(state)))
                state = {"channels_first": False, "relu": False, "pool": False}
            if isinstance(layer, Flatten):
                add(_flatten)
            elif isinstance(layer, EntryLinear):
                add(lambda a, linear=layer: linear.run(a, compiled=True))
            elif isinstance(layer, WeightCodes):
                add(layer.run)
            elif _fast_pool(layer, probe):
                add(max_pool_2x2)
            else:
                raise _no_rule(layer)
    if state["channels_first"] or state["relu"] or state["pool"]:
        add(_pending_step(dict(state)))
    return plan


def _window_conv(conv):
    """Whether `_window_columns` builds this convolution's columns: 3x3, stride 1, padding 1."""
    return conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)


def _pooled_shape(shape, pool):
    n, c, h, w = shape
    return (n, c, h // 2, w // 2) if pool else shape


def _columns_step(conv, state, input_shape):
    """A compiled convolution step: the pending ReLU / pool and im2col in one pass, then the product."""
    if input_shape[1] != conv.in_channels:
        raise ValueError(f"{conv!r} expected a 4-D input (N, {conv.in_channels}, H, W), got shape {input_shape}")

    def step(a):
        _, _, columns, (ho, wo) = conv._columns_for(input_shape)
        y = a if state["channels_first"] else a.transpose(1, 0, 2, 3)  # (C, N, H, W)
        _window_columns(y, columns, state["pool"], state["relu"])
        return conv.multiply(columns, compiled=True).reshape(conv.out_channels, input_shape[0], ho, wo)

    return step


def _pending_step(state):
    """Back to (N, C, H, W), with the pending pool and ReLU applied (in place on the entry's own buffer)."""

    owned = state["channels_first"] or state["pool"]  # a buffer of the entry's, not the caller's input
    finish = {(True, True): _pool_relu, (True, False): max_pool_2x2, (False, True): _relu_in_place if owned else _relu_copy,
              (False, False): None}[state["pool"], state["relu"]]

    def step(a):
        a = a.transpose(1, 0, 2, 3) if state["channels_first"] else a
        return a if finish is None else finish(a)

    return step


def _no_rule(layer):
    return TypeError(f"EntryCNN: no inference rule for {type(layer).__name__}; the entry runs "
                     "EntryConv2d, EntryLinear, ReLU, 2x2 MaxPool2d, Flatten and Identity")


def _relu_copy(a):
    return np.maximum(a, 0)


def _relu_in_place(a):
    return np.maximum(a, 0, out=a)


def _pool_relu(a):
    return _relu_in_place(max_pool_2x2(a))


def _flatten(a):
    return a.reshape(a.shape[0], -1)


def _fast_pool(layer, a):
    """Whether `layer` is a 2x2, stride-2 max pool that max_pool_2x2 computes for the array `a`."""
    return (isinstance(layer, MaxPool2d) and a.ndim == 4 and a.shape[2] % 2 == 0 and a.shape[3] % 2 == 0
            and tuple(layer.kernel_size) == (2, 2) and tuple(layer.stride) == (2, 2) and tuple(layer.padding) == (0, 0)
            and tuple(getattr(layer, "dilation", (1, 1))) == (1, 1))


def make_entry(model, bits=None):
    """The entry made from a trained float CNN (a Sequential of Conv2d/BatchNorm2d/ReLU/MaxPool2d/Flatten/Linear).

    `bits` maps a layer's name ("0", "16", ...) to its weight bits; the others get 8.
    """
    bits = dict(bits or {})
    folded = fold_batchnorm(model)
    layers = []
    for name, layer in folded.named_children():
        if isinstance(layer, Conv2d):
            layers.append(EntryConv2d.from_conv(layer, bits.pop(name, 8)))
        elif isinstance(layer, Linear):
            layers.append(EntryLinear.from_linear(layer, bits.pop(name, 8)))
        else:
            layers.append(layer)
    if bits:
        raise ValueError(f"make_entry: no conv or linear layer named {', '.join(sorted(bits))}")
    return EntryCNN(*layers).eval()


def build_entry(bits=None):
    """The empty entry of the CIFAR-10 milestone's CNN, for a saved entry's state (its layer bits are read from it)."""
    return make_entry(build_cifar_cnn(), bits)
