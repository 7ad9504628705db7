"""Module 12 Attention, graded through the exported package `tinytorch.core.attention`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support import assert_matches_torch, check_gradients
from tinytorch.core.attention import (
    MultiHeadAttention,
    attention_composed,
    causal_mask,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
)
from tinytorch.core.tensor import Tensor, manual_seed

FAST = settings(max_examples=30, deadline=None)


def normal(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def numpy_attention(q, k, v, allowed=None, bias=None):
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# ---- masks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("query_len,key_len", [(1, 1), (4, 4), (3, 5), (5, 3)])
def test_causal_mask_is_the_lower_triangle_aligned_top_left(query_len, key_len):
    mask = causal_mask(query_len, key_len)
    assert mask.dtype == np.bool_ and mask.shape == (query_len, key_len)
    np.testing.assert_array_equal(mask, np.arange(key_len)[None, :] <= np.arange(query_len)[:, None])


def test_padding_mask_broadcasts_over_heads_and_queries_and_checks_its_input():
    valid = Tensor(np.array([[True, False], [True, True]]))
    assert padding_mask(valid).shape == (2, 1, 1, 2)
    with pytest.raises(ValueError, match=r"\(batch, seq_len\) boolean.*pad_batch"):
        padding_mask(np.array([[1, 0]]))


# ---- masked softmax ------------------------------------------------------------------------------
@FAST
@given(scores=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                         elements=st.floats(-30, 30, width=32)), data=st.data())
def test_masked_softmax_matches_numpy_and_zeroes_dead_rows(scores, data):
    mask = data.draw(hnp.arrays(np.bool_, scores.shape))
    weights = masked_softmax(Tensor(scores), mask).numpy()
    shifted = np.where(mask, scores.astype(np.float64), -np.inf)
    alive = mask.any(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        expected = np.exp(shifted - np.where(alive, shifted.max(-1, keepdims=True), 0))
        expected = np.where(alive, expected / expected.sum(-1, keepdims=True), 0.0)
    assert weights.dtype == np.float32 and np.isfinite(weights).all()
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)


def test_masked_softmax_gradient_matches_central_differences():
    mask = np.array([[True, False, True, True], [False, False, False, False], [True, True, True, True]])
    gradients = check_gradients(lambda s: masked_softmax(s, mask), (2, 3, 4))
    assert not gradients[0][:, 1].any(), "a fully masked row passes no gradient"


def test_masked_softmax_matches_pytorch_softmax_with_a_minus_inf_mask(torch):
    mask = np.array([[True, False, True], [False, True, True]])
    bias = np.where(mask, 0.0, -np.inf).astype(np.float32)
    assert_matches_torch(lambda s: masked_softmax(s, mask), lambda s: torch.softmax(s + torch.from_numpy(bias), -1),
                         normal(4, 2, 3))


# ---- scaled_dot_product_attention against PyTorch -----------------------------------------------
MASK_CASES = {
    "none": lambda L, S: {},
    "causal": lambda L, S: {"is_causal": True},
    "boolean padding": lambda L, S: {"attn_mask": np.array([True] * (S - 2) + [False] * 2)[None, None, None, :]
                                     .repeat(2, axis=0)},
    "boolean per query": lambda L, S: {"attn_mask": np.random.default_rng(5).random((L, S)) < 0.7},
    "additive float": lambda L, S: {"attn_mask": normal(L, S, seed=6)},
    "additive -inf": lambda L, S: {"attn_mask": np.where(causal_mask(L, S), 0.0, -np.inf).astype(np.float32)},
}


@pytest.mark.parametrize("case", list(MASK_CASES))
@pytest.mark.parametrize("query_len,key_len", [(7, 7), (5, 9)])
def test_attention_matches_pytorch_forward_and_backward(torch, case, query_len, key_len):
    options = MASK_CASES[case](query_len, key_len)
    if case == "boolean per query":
        options["attn_mask"][:, 0] = True  # keep every row alive here; dead rows are tested below
    theirs = {name: torch.from_numpy(np.asarray(value)) if name == "attn_mask" else value
              for name, value in options.items()}
    q, k, v = normal(2, 3, query_len, 8, seed=1), normal(2, 3, key_len, 8, seed=2), normal(2, 3, key_len, 5, seed=3)
    assert_matches_torch(lambda q, k, v: scaled_dot_product_attention(q, k, v, **options),
                         lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, **theirs),
                         q, k, v)


def test_fully_masked_rows_give_zeros_like_pytorch(torch):
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False
    assert_matches_torch(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=mask),
        lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(mask)),
        normal(1, 2, 4, 3, seed=1), normal(1, 2, 4, 3, seed=2), normal(1, 2, 4, 3, seed=3))
    out = scaled_dot_product_attention(*(Tensor(normal(1, 2, 4, 3, seed=s)) for s in (1, 2, 3)), attn_mask=mask)
    assert not out.numpy()[:, :, 2].any()


def test_custom_scale_matches_pytorch(torch):
    assert_matches_torch(lambda q, k, v: scaled_dot_product_attention(q, k, v, scale=0.05, is_causal=True),
                         lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.05,
                                                                                          is_causal=True),
                         normal(2, 6, 4, seed=1), normal(2, 6, 4, seed=2), normal(2, 6, 4, seed=3))


def test_trainable_additive_mask_receives_its_gradient_like_pytorch(torch):
    assert_matches_torch(
        lambda q, k, v, bias: scaled_dot_product_attention(q, k, v, attn_mask=bias),
        lambda q, k, v, bias: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias),
        normal(2, 2, 5, 4, seed=1), normal(2, 2, 5, 4, seed=2), normal(2, 2, 5, 4, seed=3), normal(5, 5, seed=4))


# ---- gradients, numerically ----------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"attn_mask": np.tril(np.ones((4, 3), dtype=bool), -1) | np.eye(4, 3, dtype=bool)}])
def test_fused_attention_gradients_match_central_differences(options):
    check_gradients(lambda q, k, v: scaled_dot_product_attention(q, k, v, **options), (2, 4, 3), (2, 3, 3), (2, 3, 2))


def test_fused_attention_gradient_of_a_float_mask_and_of_broadcast_batches():
    check_gradients(lambda q, k, v, bias: scaled_dot_product_attention(q, k, v, attn_mask=bias),
                    (2, 3, 4, 2), (3, 4, 2), (1, 4, 2), (4, 4))


def test_fused_attention_gradients_with_dropout_use_the_same_mask():
    def attention(q, k, v):
        manual_seed(11)
        return scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    check_gradients(attention, (2, 5, 3), (2, 5, 3), (2, 5, 3))


# ---- fused against composed ----------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"dropout_p": 0.5},
                                     {"attn_mask": np.array([[True, True, False]])},
                                     {"attn_mask": normal(4, 3, seed=9)}, {"scale": 2.0}])
def test_fused_attention_equals_the_composition(options):
    arrays = (normal(2, 4, 5), normal(2, 3, 5, seed=1), normal(2, 3, 6, seed=2))
    cotangent = normal(2, 4, 6, seed=3)
    results = []
    for attention in (attention_composed, scaled_dot_product_attention):
        manual_seed(4)
        inputs = [Tensor(a, requires_grad=True) for a in arrays]
        out = attention(*inputs, **options)
        out.backward(cotangent)
        results.append([out.numpy()] + [t.grad for t in inputs])
    for composed, fused in zip(*results):
        np.testing.assert_allclose(fused, composed, rtol=1e-5, atol=1e-6)


def test_attention_matches_the_formula_in_numpy():
    q, k, v = normal(3, 6, 4), normal(3, 6, 4, seed=1), normal(3, 6, 2, seed=2)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v).numpy(), numpy_attention(q, k, v), rtol=1e-5)
    allowed = causal_mask(6)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, is_causal=True).numpy(),
                               numpy_attention(q, k, v, allowed), rtol=1e-5, atol=1e-6)
    assert scaled_dot_product_attention(Tensor(q, dtype=np.float64), k, v).dtype == np.float64


def test_dropout_is_seeded_scaled_and_total_at_one():
    q, k, v = normal(1, 8, 4), normal(1, 8, 4, seed=1), normal(1, 8, 4, seed=2)
    manual_seed(3)
    first = scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    manual_seed(3)
    np.testing.assert_array_equal(scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy(), first)
    assert not np.allclose(first, scaled_dot_product_attention(q, k, v).numpy())
    assert not scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy().any()
    ones = np.ones((1, 400, 1), dtype=np.float32)
    kept = scaled_dot_product_attention(np.zeros((1, 400, 2), np.float32), np.zeros((1, 400, 2), np.float32), ones,
                                        dropout_p=0.25).numpy()
    assert abs(kept.mean() - 1.0) < 0.05, "surviving weights are scaled by 1 / (1 - p)"


# ---- errors --------------------------------------------------------------------------------------
def test_attention_errors_name_the_shapes_and_the_fix():
    q = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 4, 3\).*\(2, 4, 5\).*same last"):
        scaled_dot_product_attention(q, np.zeros((2, 4, 5), np.float32), q)
    with pytest.raises(ValueError, match=r"key \(2, 4, 3\) and value \(2, 6, 3\)"):
        scaled_dot_product_attention(q, q, np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, q, q, attn_mask=causal_mask(4), is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\) does not fit 4 queries and 4 keys"):
        scaled_dot_product_attention(q, q, q, attn_mask=causal_mask(3))
    with pytest.raises(TypeError, match="boolean .* or float"):
        scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=1.5)
    with pytest.raises(TypeError, match="floating point"):
        scaled_dot_product_attention(np.zeros((2, 4, 3), np.int64), q, q)
    with pytest.raises(ValueError, match=r"\(\.\.\., seq_len, dim\)"):
        scaled_dot_product_attention(np.zeros(3, np.float32), q, q)


# ---- MultiHeadAttention --------------------------------------------------------------------------
def torch_twin(torch, ours):
    """nn.MultiheadAttention with our weights: its in_proj_weight is our fused qkv_proj.weight."""
    bias = ours.qkv_proj.bias is not None
    theirs = torch.nn.MultiheadAttention(ours.embed_dim, ours.num_heads, bias=bias, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.from_numpy(ours.qkv_proj.weight.numpy()))
        theirs.out_proj.weight.copy_(torch.from_numpy(ours.out_proj.weight.numpy()))
        if bias:
            theirs.in_proj_bias.copy_(torch.from_numpy(ours.qkv_proj.bias.numpy()))
            theirs.out_proj.bias.copy_(torch.from_numpy(ours.out_proj.bias.numpy()))
    return theirs


@pytest.mark.parametrize("causal,padded,bias", [(False, False, True), (True, False, True), (False, True, True),
                                                (True, True, False)])
def test_multi_head_attention_matches_pytorch_with_copied_weights(torch, causal, padded, bias):
    manual_seed(0)
    ours = MultiHeadAttention(12, 3, bias=bias, causal=causal)
    theirs = torch_twin(torch, ours)
    x = normal(2, 6, 12, seed=1)
    valid = np.array([[True] * 6, [True] * 4 + [False] * 2])
    x_ours, x_theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ours = ours(x_ours, padding_mask=valid if padded else None)
    out_theirs, _ = theirs(x_theirs, x_theirs, x_theirs, need_weights=False,
                           attn_mask=torch.from_numpy(~causal_mask(6)) if causal else None,
                           key_padding_mask=torch.from_numpy(~valid) if padded else None)
    np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    cotangent = normal(2, 6, 12, seed=2)
    out_ours.backward(cotangent)
    out_theirs.backward(torch.from_numpy(cotangent))
    np.testing.assert_allclose(x_ours.grad, x_theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.qkv_proj.weight.grad, theirs.in_proj_weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.out_proj.weight.grad, theirs.out_proj.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    if bias:
        np.testing.assert_allclose(ours.qkv_proj.bias.grad, theirs.in_proj_bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_multi_head_attention_with_a_boolean_and_a_float_mask():
    manual_seed(1)
    layer = MultiHeadAttention(8, 2, causal=True)
    x = Tensor(normal(2, 5, 8))
    allowed = np.ones((5, 5), dtype=bool)
    allowed[:, 1] = False
    boolean = layer(x, attn_mask=allowed).numpy()
    additive = layer(x, attn_mask=np.where(allowed, 0.0, -np.inf).astype(np.float32)).numpy()
    np.testing.assert_allclose(boolean, additive, rtol=1e-6, atol=1e-6)
    changed = x.numpy().copy()
    changed[:, 1] += 5.0  # key 1 is hidden from every query: only query 1's own output may change
    others = [0, 2, 3, 4]
    np.testing.assert_allclose(layer(Tensor(changed), attn_mask=allowed).numpy()[:, others], boolean[:, others],
                               rtol=1e-5, atol=1e-5)


def test_multi_head_attention_padding_never_leaks_into_real_tokens():
    manual_seed(2)
    layer = MultiHeadAttention(8, 4)
    valid = np.array([[True, True, True, False, False], [True, True, True, True, True]])
    x = normal(2, 5, 8)
    base = layer(Tensor(x), padding_mask=valid).numpy()
    x[0, 3:] = 1000.0
    np.testing.assert_allclose(layer(Tensor(x), padding_mask=valid).numpy()[0, :3], base[0, :3], rtol=1e-5, atol=1e-5)


def test_multi_head_attention_gradients_match_central_differences():
    manual_seed(3)
    layer = MultiHeadAttention(6, 2, causal=True).double()
    check_gradients(lambda x: layer(x), (2, 4, 6))


def test_multi_head_attention_dropout_only_in_training():
    manual_seed(4)
    layer = MultiHeadAttention(8, 2, dropout=0.5)
    x = Tensor(normal(2, 6, 8))
    assert not np.allclose(layer(x).numpy(), layer(x).numpy()), "training mode: dropout varies the weights"
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


def test_multi_head_attention_errors_and_repr():
    with pytest.raises(ValueError, match=r"embed_dim 10 is not divisible by num_heads 4.*\[1, 2, 5, 10\]"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="positive integer"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=-0.1)
    layer = MultiHeadAttention(8, 2, causal=True)
    with pytest.raises(ValueError, match=r"\(batch, seq_len, 8\).*\(2, 5, 6\)"):
        layer(Tensor(np.zeros((2, 5, 6), np.float32)))
    with pytest.raises(ValueError, match=r"padding_mask of shape \(2, 4\) does not fit .* 2 sequences of 5"):
        layer(Tensor(np.zeros((2, 5, 8), np.float32)), padding_mask=np.ones((2, 4), dtype=bool))
    assert repr(layer).startswith("MultiHeadAttention(\n  embed_dim=8, num_heads=2, dropout=0.0, bias=True, causal=True")


def test_multi_head_attention_round_trips_through_state_dict_and_float64():
    manual_seed(5)
    saved = MultiHeadAttention(8, 2)
    manual_seed(6)
    restored = MultiHeadAttention(8, 2)
    x = Tensor(normal(1, 3, 8))
    restored.load_state_dict(saved.state_dict())
    np.testing.assert_array_equal(restored(x).numpy(), saved(x).numpy())
    assert sorted(saved.state_dict()) == ["out_proj.bias", "out_proj.weight", "qkv_proj.bias", "qkv_proj.weight"]
    wide = MultiHeadAttention(8, 2, dtype=np.float64)
    assert wide(Tensor(normal(1, 3, 8), dtype=np.float64)).dtype == np.float64


# ---- the KV-cache seam (module 17 fills it) ------------------------------------------------------
class ConcatenatingCache:
    """The smallest object the seam accepts: `update(keys, values)` returns every key and value so far."""

    def __init__(self):
        self.keys = self.values = None
        self.calls = []

    def update(self, keys, values):
        self.calls.append(keys.shape)
        if self.keys is not None:
            keys = Tensor(np.concatenate([self.keys.numpy(), keys.numpy()], axis=-2))
            values = Tensor(np.concatenate([self.values.numpy(), values.numpy()], axis=-2))
        self.keys, self.values = keys, values
        return keys, values


@pytest.mark.parametrize("query_len,key_len", [(1, 1), (1, 6), (3, 7), (4, 4)])
def test_causal_mask_with_an_offset_is_aligned_bottom_right(query_len, key_len):
    offset = key_len - query_len
    mask = causal_mask(query_len, key_len, offset=offset)
    np.testing.assert_array_equal(mask, np.arange(key_len)[None, :] <= np.arange(query_len)[:, None] + offset)
    assert mask[-1].all(), "the last query is the last position: it sees every key"
    np.testing.assert_array_equal(causal_mask(query_len, key_len, offset=0), causal_mask(query_len, key_len))


def test_attention_over_a_cache_in_chunks_equals_the_full_causal_pass():
    manual_seed(7)
    layer = MultiHeadAttention(8, 2, causal=True)
    x = Tensor(normal(2, 9, 8, seed=7))
    full = layer(x).numpy()
    cache = ConcatenatingCache()
    chunks = [layer(x[:, a:b], kv_cache=cache).numpy() for a, b in ((0, 4), (4, 5), (5, 8), (8, 9))]
    assert cache.calls == [(2, 2, 4, 4), (2, 2, 1, 4), (2, 2, 3, 4), (2, 2, 1, 4)], "keys go in as (B, H, T, D)"
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), full, rtol=1e-5, atol=1e-6)


def test_a_layer_that_is_not_causal_attends_over_every_cached_key():
    manual_seed(8)
    layer = MultiHeadAttention(8, 2)
    x = Tensor(normal(1, 6, 8, seed=8))
    cache = ConcatenatingCache()
    layer(x[:, :4], kv_cache=cache)
    last = layer(x[:, 4:], kv_cache=cache).numpy()
    np.testing.assert_allclose(last, layer(x).numpy()[:, 4:], rtol=1e-5, atol=1e-6)


def test_the_cache_seam_refuses_masks_and_a_cache_that_drops_positions():
    layer = MultiHeadAttention(8, 2, causal=True)
    x = Tensor(normal(1, 3, 8))
    with pytest.raises(ValueError, match="only the causal mask applies"):
        layer(x, padding_mask=np.ones((1, 3), dtype=bool), kv_cache=ConcatenatingCache())

    class Forgetful:  # returns only the earlier keys: the bug of a cache that skips the current token
        def update(self, keys, values):
            return keys[:, :, :1], values[:, :, :1]

    with pytest.raises(ValueError, match="this call's 3 positions included"):
        layer(x, kv_cache=Forgetful())
