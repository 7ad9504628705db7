"""Module 11 Embeddings, graded through the exported package `tinytorch.core.embeddings`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support import assert_matches_torch, check_gradients
from tinytorch.core.embeddings import (
    Embedding,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    embedding,
    sinusoidal_encoding,
)
from tinytorch.core.tensor import Tensor, manual_seed

FAST = settings(max_examples=30, deadline=None)


def id_arrays(vocabulary):
    return hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                      elements=st.integers(0, vocabulary - 1))


# ---- the lookup ----------------------------------------------------------------------------------
@FAST
@given(ids=id_arrays(7), dim=st.integers(1, 5))
def test_lookup_matches_numpy_row_gather(ids, dim):
    table = np.random.default_rng(0).standard_normal((7, dim)).astype(np.float32)
    rows = embedding(ids, Tensor(table))
    assert rows.shape == ids.shape + (dim,) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows.numpy(), table[ids])


def test_lookup_accepts_tensors_lists_and_scalars():
    table = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    assert embedding(Tensor([2, 0]), table).numpy().tolist() == [[4, 5], [0, 1]]
    assert embedding([[1]], table).shape == (1, 1, 2)
    assert embedding(np.array(1), table).numpy().tolist() == [2, 3]
    assert embedding(np.array([1], dtype=np.int32), table).numpy().tolist() == [[2, 3]]


@pytest.mark.parametrize("bad,position", [(5, "(1, 2)"), (-1, "(1, 2)"), (100, "(1, 2)")])
def test_out_of_range_ids_name_the_id_its_position_and_the_vocabulary(bad, position):
    ids = np.array([[0, 1, 2], [3, 4, bad]])
    with pytest.raises(IndexError) as error:
        embedding(ids, Tensor(np.zeros((5, 2), dtype=np.float32)))
    message = str(error.value)
    assert f"token id {bad}" in message and position in message
    assert "vocabulary of 5" in message and "0..4" in message


def test_float_ids_and_a_wrong_table_are_explained():
    table = Tensor(np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="integers.*long"):
        embedding(np.array([1.0, 2.0]), table)
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        embedding(np.array([1]), Tensor(np.zeros(5, dtype=np.float32)))


# ---- the gradient --------------------------------------------------------------------------------
@FAST
@given(ids=id_arrays(6), dim=st.integers(1, 4))
def test_gradient_is_the_scatter_add_of_np_add_at(ids, dim):
    table = Tensor(np.zeros((6, dim), dtype=np.float32), requires_grad=True)
    upstream = np.random.default_rng(1).standard_normal(ids.shape + (dim,)).astype(np.float32)
    embedding(ids, table).backward(upstream)
    expected = np.zeros((6, dim), dtype=np.float32)
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, dim))
    np.testing.assert_allclose(table.grad, expected, rtol=1e-6, atol=1e-6)


def test_gradient_matches_central_differences_in_float64():
    ids = np.array([[3, 1, 3, 0], [1, 1, 4, 3]])
    check_gradients(lambda table: embedding(ids, table), (5, 3))


def test_gradient_of_a_transposed_table_view():
    ids = np.array([2, 0, 2])
    table = np.random.default_rng(2).standard_normal((3, 4)).T  # (4, 3), not contiguous
    check_gradients(lambda t: embedding(ids, t) * 2.0, table)


def test_lookup_and_gradient_match_pytorch(torch):
    ids = np.random.default_rng(3).integers(0, 11, size=(4, 9))
    table = np.random.default_rng(4).standard_normal((11, 6)).astype(np.float32)
    assert_matches_torch(lambda i, w: embedding(i, w), lambda i, w: torch.nn.functional.embedding(i, w), ids, table)


def test_the_gradient_accumulates_across_two_lookups():
    table = Tensor(np.zeros((4, 2), dtype=np.float32), requires_grad=True)
    (embedding([0, 1], table).sum() + embedding([[1, 1]], table).sum()).backward()
    assert table.grad.tolist() == [[1, 1], [3, 3], [0, 0], [0, 0]]


# ---- the layer -----------------------------------------------------------------------------------
def test_embedding_layer_owns_a_standard_normal_table():
    manual_seed(0)
    layer = Embedding(1000, 64)
    weight = layer.weight.numpy()
    assert weight.shape == (1000, 64) and weight.dtype == np.float32 and layer.weight.requires_grad
    assert abs(weight.mean()) < 0.01 and abs(weight.std() - 1.0) < 0.01, "nn.Embedding draws from N(0, 1)"
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Embedding(1000, 64)"
    manual_seed(0)
    assert np.array_equal(Embedding(1000, 64).weight.numpy(), weight), "manual_seed makes it reproducible"


def test_embedding_layer_loads_a_pytorch_checkpoint(torch):
    theirs = torch.nn.Embedding(13, 5)
    ours = Embedding(13, 5)
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    ids = np.array([[12, 0, 5], [5, 5, 1]])
    np.testing.assert_array_equal(ours(ids).numpy(), theirs(torch.from_numpy(ids)).detach().numpy())


@pytest.mark.parametrize("arguments", [(0, 4), (4, 0), (2.5, 3), (True, 3)])
def test_embedding_layer_refuses_bad_sizes(arguments):
    with pytest.raises(ValueError, match="positive integer"):
        Embedding(*arguments)


def test_embedding_layer_error_speaks_of_tokens():
    with pytest.raises(IndexError, match=r"token id 65 .*vocabulary of 65"):
        Embedding(65, 4)(np.array([[64, 65]]))


def test_float64_table_gives_float64_vectors_and_gradients():
    layer = Embedding(4, 3, dtype=np.float64)
    out = layer(np.array([1, 1]))
    out.sum().backward()
    assert out.dtype == np.float64 and layer.weight.grad.dtype == np.float64
    assert layer.weight.grad[1].tolist() == [2.0, 2.0, 2.0]


# ---- positions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_len,d_model", [(1, 1), (10, 4), (33, 7), (128, 64)])
def test_sinusoidal_table_follows_the_formula(max_len, d_model):
    table = sinusoidal_encoding(max_len, d_model, dtype=np.float64)
    expected = np.empty((max_len, d_model))
    for t in range(max_len):
        for column in range(d_model):
            angle = t / 10000 ** ((column - column % 2) / d_model)
            expected[t, column] = math.sin(angle) if column % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(table, expected, atol=1e-9)
    assert sinusoidal_encoding(max_len, d_model).dtype == np.float32


def test_sinusoidal_shift_is_a_rotation_of_each_pair():
    """p(t + k) is a fixed rotation of p(t): attention can learn relative offsets."""
    d_model, shift = 8, 3
    table = sinusoidal_encoding(40, d_model, dtype=np.float64)
    for i in range(d_model // 2):
        omega = 10000 ** (-2 * i / d_model)
        c, s = math.cos(shift * omega), math.sin(shift * omega)
        sin_t, cos_t = table[:-shift, 2 * i], table[:-shift, 2 * i + 1]
        np.testing.assert_allclose(table[shift:, 2 * i], sin_t * c + cos_t * s, atol=1e-9)
        np.testing.assert_allclose(table[shift:, 2 * i + 1], cos_t * c - sin_t * s, atol=1e-9)


def test_sinusoidal_layer_adds_positions_and_passes_gradients():
    layer = SinusoidalPositionalEncoding(20, 6)
    x = np.random.default_rng(5).standard_normal((3, 11, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), x + sinusoidal_encoding(20, 6)[:11], rtol=1e-6)
    assert list(layer.parameters()) == [] and layer.state_dict() == {}
    check_gradients(lambda inputs: layer(inputs), (2, 5, 6))
    assert layer(Tensor(x[0])).shape == (11, 6), "an unbatched (T, d) input works"


@pytest.mark.parametrize("layer_class", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_positional_layers_explain_a_too_long_or_too_wide_input(layer_class):
    layer = layer_class(8, 4)
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds max_len 8.*Crop"):
        layer(Tensor(np.zeros((2, 9, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        layer(Tensor(np.zeros((2, 3, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        layer(Tensor(np.zeros(4, dtype=np.float32)))


def test_learned_positions_match_pytorch_forward_and_backward(torch):
    manual_seed(6)
    ours = LearnedPositionalEmbedding(10, 4)
    theirs = torch.nn.Embedding(10, 4)
    theirs.load_state_dict({"weight": torch.from_numpy(ours.weight.numpy().copy())})
    x = np.random.default_rng(7).standard_normal((3, 7, 4)).astype(np.float32)
    cotangent = np.random.default_rng(8).standard_normal((3, 7, 4)).astype(np.float32)
    x_ours, x_theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ours, out_theirs = ours(x_ours), x_theirs + theirs(torch.arange(7))
    np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-6)
    out_ours.backward(cotangent)
    out_theirs.backward(torch.from_numpy(cotangent))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x_ours.grad, x_theirs.grad.numpy(), rtol=1e-6)


def test_learned_positions_round_trip_through_state_dict():
    manual_seed(9)
    saved = LearnedPositionalEmbedding(6, 3)
    manual_seed(10)
    restored = LearnedPositionalEmbedding(6, 3)
    x = Tensor(np.ones((1, 6, 3), dtype=np.float32))
    assert not np.allclose(restored(x).numpy(), saved(x).numpy())
    restored.load_state_dict(saved.state_dict())
    np.testing.assert_array_equal(restored(x).numpy(), saved(x).numpy())
    assert repr(restored) == "LearnedPositionalEmbedding(max_len=6, embedding_dim=3)"
