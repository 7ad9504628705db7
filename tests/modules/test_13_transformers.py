"""Module 13 Transformers, graded through the exported package `tinytorch.core.transformer`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import assert_matches_torch, check_gradients, numerical_gradient
from tinytorch.core.activations import gelu
from tinytorch.core.autograd import no_grad
from tinytorch.core.optimizers import AdamW
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.transformer import (
    GPT,
    MLP,
    GPTConfig,
    LayerNorm,
    TransformerBlock,
    gelu_tanh,
    layer_norm,
    layer_norm_composed,
)

FAST = settings(max_examples=15, deadline=None)
TINY = dict(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16)


def normal(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tiny_gpt(seed=0, **overrides):
    manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))


# ---- layer norm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_pytorch_forward_and_backward(torch, affine):
    x, weight, bias = normal(3, 5, 8), normal(8, seed=1), normal(8, seed=2)
    if affine == "both":
        assert_matches_torch(lambda x, w, b: layer_norm(x, (8,), w, b),
                             lambda x, w, b: torch.nn.functional.layer_norm(x, (8,), w, b), x, weight, bias)
    elif affine == "weight":
        assert_matches_torch(lambda x, w: layer_norm(x, (8,), w),
                             lambda x, w: torch.nn.functional.layer_norm(x, (8,), w), x, weight)
    else:
        assert_matches_torch(lambda x: layer_norm(x, (8,)), lambda x: torch.nn.functional.layer_norm(x, (8,)), x)


def test_layer_norm_over_two_trailing_dims_matches_pytorch(torch):
    assert_matches_torch(lambda x, w, b: layer_norm(x, (4, 5), w, b, eps=1e-3),
                         lambda x, w, b: torch.nn.functional.layer_norm(x, (4, 5), w, b, eps=1e-3),
                         normal(2, 4, 5), normal(4, 5, seed=1), normal(4, 5, seed=2))


def test_layer_norm_gradients_match_central_differences():
    check_gradients(lambda x, w, b: layer_norm(x, (6,), w, b), (2, 3, 6), (6,), (6,))
    check_gradients(lambda x: layer_norm(x, (3, 2)), (4, 3, 2))


def test_layer_norm_gradient_of_a_strided_input():
    x = np.random.default_rng(3).standard_normal((6, 4)).T  # (4, 6), not contiguous
    check_gradients(lambda x, w: layer_norm(x, (6,), w), x, (6,))


@FAST
@given(rows=st.integers(1, 4), width=st.integers(2, 9), scale=st.floats(0.01, 100), seed=st.integers(0, 99))
def test_fused_layer_norm_equals_the_composition(rows, width, scale, seed):
    x = normal(rows, width, seed=seed, dtype=np.float64) * scale
    weight, bias, cotangent = normal(width, seed=seed + 1), normal(width, seed=seed + 2), normal(rows, width, seed=seed + 3)
    results = []
    for norm in (layer_norm_composed, layer_norm):
        inputs = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, weight, bias)]
        out = norm(inputs[0], (width,), inputs[1], inputs[2])
        out.backward(cotangent.astype(np.float64))
        results.append([out.numpy()] + [t.grad for t in inputs])
    for composed, fused in zip(*results):
        np.testing.assert_allclose(fused, composed, rtol=1e-7, atol=1e-9)


def test_layer_norm_layer_matches_nn_layer_norm_and_explains_bad_shapes(torch):
    for bias in (True, False):
        theirs = torch.nn.LayerNorm(8, bias=bias)
        ours = LayerNorm(8, bias=bias)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        x = normal(2, 3, 8)
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)
    assert repr(LayerNorm(8, bias=False)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=False)"
    with pytest.raises(ValueError, match=r"\(2, 3, 7\) does not end in normalized_shape \(8,\)"):
        LayerNorm(8)(Tensor(normal(2, 3, 7)))
    with pytest.raises(ValueError, match="positive int"):
        LayerNorm(0)


def test_layer_norm_keeps_float64_and_handles_constant_rows():
    layer = LayerNorm(4, dtype=np.float64)
    out = layer(Tensor(np.full((2, 4), 3.0), dtype=np.float64))
    assert out.dtype == np.float64 and np.all(out.numpy() == 0.0)


# ---- GELU and MLP --------------------------------------------------------------------------------
def test_fused_gelu_matches_pytorch_tanh_gelu(torch):
    x = np.concatenate([normal(50) * 4, np.array([-30.0, -10.0, 0.0, 10.0, 30.0], np.float32)])
    assert_matches_torch(gelu_tanh, lambda x: torch.nn.functional.gelu(x, approximate="tanh"), x)


def test_fused_gelu_matches_module_02_and_central_differences():
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(gelu_tanh(Tensor(x, dtype=np.float64)).numpy(),
                               gelu(Tensor(x, dtype=np.float64), approximate="tanh").numpy(), atol=1e-12)
    check_gradients(gelu_tanh, (3, 7))


def test_fused_gelu_is_finite_for_huge_inputs():
    x = Tensor(np.array([-1e4, -100.0, 100.0, 1e4], np.float32), requires_grad=True)
    y = gelu_tanh(x)
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [0.0, 0.0, 100.0, 1e4])
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 1.0, 1.0])


def test_mlp_matches_pytorch_with_copied_weights(torch):
    manual_seed(1)
    ours = MLP(6, hidden=10)
    up, down = torch.nn.Linear(6, 10), torch.nn.Linear(10, 6)
    with torch.no_grad():
        for layer, mine in ((up, ours.up_proj), (down, ours.down_proj)):
            layer.weight.copy_(torch.from_numpy(mine.weight.numpy()))
            layer.bias.copy_(torch.from_numpy(mine.bias.numpy()))
    assert_matches_torch(lambda x: ours(x), lambda x: down(torch.nn.functional.gelu(up(x), approximate="tanh")),
                         normal(2, 3, 6))
    assert MLP(8).up_proj.weight.shape == (32, 8)


# ---- the PyTorch twin of our GPT -----------------------------------------------------------------
def torch_gpt(torch, config):
    """nanoGPT's architecture in torch.nn, with our layer names, so that state dicts map 1:1."""
    nn, F = torch.nn, torch.nn.functional
    C, H = config.n_embd, config.n_head

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv_proj = nn.Linear(C, 3 * C, bias=config.bias)
            self.out_proj = nn.Linear(C, C, bias=config.bias)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv_proj(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(y.transpose(1, 2).reshape(B, T, C))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj = nn.Linear(C, 4 * C, bias=config.bias)
            self.down_proj = nn.Linear(4 * C, C, bias=config.bias)

        def forward(self, x):
            return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm = nn.LayerNorm(C, bias=config.bias)
            self.attention = Attention()
            self.mlp_norm = nn.LayerNorm(C, bias=config.bias)
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attention(self.attention_norm(x))
            return x + self.mlp(self.mlp_norm(x))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(config.vocab_size, C)
            self.position_embedding = nn.Embedding(config.block_size, C)
            self.blocks = nn.ModuleList(Block() for _ in range(config.n_layer))
            self.final_norm = nn.LayerNorm(C, bias=config.bias)
            self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
            self.lm_head.weight = self.token_embedding.weight

        def forward(self, idx, targets):
            x = self.token_embedding(idx) + self.position_embedding(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.final_norm(x))
            return logits, F.cross_entropy(logits.reshape(-1, config.vocab_size), targets.reshape(-1))

    return Twin()


@pytest.mark.parametrize("bias", [True, False])
def test_gpt_forward_and_backward_match_a_pytorch_twin(torch, bias):
    ours = tiny_gpt(seed=2, bias=bias)
    for parameter in ours.parameters():  # move off GPT-2's init so every parameter matters
        parameter.data += normal(*parameter.shape, seed=parameter.numel()) * 0.05
    theirs = torch_gpt(torch, ours.config)
    theirs.load_state_dict({name: torch.from_numpy(array) for name, array in ours.state_dict().items()})
    idx = np.random.default_rng(3).integers(0, 13, size=(3, 8))
    targets = np.random.default_rng(4).integers(0, 13, size=(3, 8))
    logits, loss = ours(idx, targets)
    their_logits, their_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    np.testing.assert_allclose(logits.numpy(), their_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert abs(loss.item() - their_loss.item()) < 1e-5
    loss.backward()
    their_loss.backward()
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad, their_parameters[name].grad.numpy(), rtol=1e-3, atol=1e-6,
                                   err_msg=f"gradient of {name} differs from PyTorch's")


def test_gpt_gradients_match_central_differences_in_float64():
    manual_seed(5)
    model = GPT(GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=2, n_embd=4)).double()
    idx = np.array([[1, 4, 0, 2], [3, 3, 1, 0]])
    targets = np.array([[4, 0, 2, 1], [3, 1, 0, 0]])
    parameters = list(model.parameters())
    _, loss = model(idx, targets)
    loss.backward()
    analytic = [p.grad.numpy().copy() for p in parameters]
    originals = [p.data for p in parameters]

    def loss_value(*arrays):
        for parameter, array in zip(parameters, arrays):
            parameter.data = array
        with no_grad():
            return model(idx, targets)[1].item()

    numerical = numerical_gradient(loss_value, originals)
    for (name, _), mine, expected in zip(model.named_parameters(), analytic, numerical):
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-7, err_msg=f"gradient of {name}")


def test_no_leak_through_the_causal_mask():
    """Changing the token at position p never changes the logits at positions < p."""
    model = tiny_gpt(seed=6, n_layer=3)
    idx = np.random.default_rng(7).integers(0, 13, size=(2, 8))
    with no_grad():
        base = model(idx)[0].numpy()
        for position in range(8):
            changed = idx.copy()
            changed[:, position] = (changed[:, position] + 1 + np.arange(2)) % 13
            logits = model(changed)[0].numpy()
            np.testing.assert_allclose(logits[:, :position], base[:, :position], rtol=1e-5, atol=1e-6,
                                       err_msg=f"changing token {position} changed an earlier logit")
            assert not np.allclose(logits[:, position], base[:, position]), "the changed position itself must change"


# ---- weight tying --------------------------------------------------------------------------------
def test_weight_tying_shares_one_parameter_whose_gradient_sums_both_uses():
    model = tiny_gpt(seed=8)
    table = model.token_embedding.weight
    assert model.lm_head.weight is table
    assert sum(p is table for p in model.parameters()) == 1
    assert model.num_parameters(non_embedding=False) == sum(p.numel() for p in model.parameters())
    idx = np.array([[1, 2, 3]])
    _, loss = model(idx, np.array([[2, 3, 4]]))
    loss.backward()
    total = table.grad.numpy().copy()
    # The output layer alone gives every row a gradient; the embedding adds to rows 1, 2 and 3 only.
    model.zero_grad()
    with no_grad():
        features = model.final_norm(_hidden(model, idx))
    logits = features.reshape(-1, 16) @ table.T
    from tinytorch.core.losses import cross_entropy

    cross_entropy(logits, np.array([2, 3, 4])).backward()
    output_part = table.grad
    unused = [0, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    np.testing.assert_allclose(total[unused], output_part[unused], rtol=1e-5, atol=1e-8)
    assert not np.allclose(total[[1, 2, 3]], output_part[[1, 2, 3]]), "rows used as inputs get both gradients"


def _hidden(model, idx):
    x = model.position_embedding(model.token_embedding(idx))
    for block in model.blocks:
        x = block(x)
    return x


def test_state_dict_lists_both_names_and_loading_keeps_the_tie():
    saved = tiny_gpt(seed=9)
    state = saved.state_dict()
    assert "lm_head.weight" in state and "token_embedding.weight" in state
    assert "blocks.1.attention.qkv_proj.weight" in state and "blocks.0.mlp.down_proj.bias" in state
    restored = tiny_gpt(seed=10)
    restored.load_state_dict(state)
    assert restored.lm_head.weight is restored.token_embedding.weight
    idx = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(restored(idx)[0].numpy(), saved(idx)[0].numpy())


# ---- initialisation, counts, FLOPs ---------------------------------------------------------------
def test_gpt2_initialisation_and_scaled_residual_projections():
    model = tiny_gpt(seed=11, n_layer=8, n_embd=64, n_head=4)
    assert abs(model.blocks[0].attention.qkv_proj.weight.numpy().std() - 0.02) < 0.002
    assert abs(model.position_embedding.weight.numpy().std() - 0.02) < 0.003
    residual = np.concatenate([b.attention.out_proj.weight.numpy().ravel() for b in model.blocks])
    assert abs(residual.std() - 0.02 / math.sqrt(16)) < 0.0005
    assert not model.blocks[0].mlp.up_proj.bias.numpy().any()
    assert np.all(model.final_norm.weight.numpy() == 1.0)


def test_parameter_count_and_flops_of_the_milestone_model():
    model = GPT(GPTConfig())
    assert model.num_parameters(non_embedding=False) == 809_856
    assert model.num_parameters() == 809_856 - 64 * 128
    assert model.flops_per_token() == 6 * 801_664 + 12 * 4 * 128 * 64


def test_parameter_groups_decay_matrices_only_and_cover_every_parameter_once():
    model = tiny_gpt(seed=12)
    decay, no_decay = model.parameter_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    AdamW(model.parameter_groups(0.1), lr=1e-3)  # accepted by the optimizer


# ---- generation ----------------------------------------------------------------------------------
def test_generate_shapes_dtype_and_determinism_with_a_seed():
    model = tiny_gpt(seed=13).eval()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    manual_seed(14)
    first = model.generate(prompt, 10).numpy()
    assert first.shape == (2, 13) and first.dtype == np.int64
    np.testing.assert_array_equal(first[:, :3], prompt)
    assert first.min() >= 0 and first.max() < 13
    manual_seed(14)
    np.testing.assert_array_equal(model.generate(Tensor(prompt), 10).numpy(), first)


def test_generate_crops_a_long_context_to_the_block_size():
    model = tiny_gpt(seed=15).eval()
    long_prompt = np.arange(20).reshape(1, 20) % 13
    out = model.generate(long_prompt, 3, top_k=1).numpy()
    assert out.shape == (1, 23)
    with no_grad():
        expected_first = model(long_prompt[:, -8:])[0].numpy()[0, -1].argmax()
    assert out[0, 20] == expected_first


def test_top_k_samples_only_among_the_k_most_likely_tokens():
    model = tiny_gpt(seed=16).eval()
    prompt = np.tile(np.array([[3, 1, 4]]), (400, 1))
    with no_grad():
        logits = model(prompt[:1])[0].numpy()[0, -1]
    top3 = set(np.argsort(logits)[-3:].tolist())
    manual_seed(17)
    sampled = model.generate(prompt, 1, temperature=50.0, top_k=3).numpy()[:, -1]
    assert set(sampled.tolist()) == top3, "with a flat temperature all k, and only k, tokens appear"
    greedy = model.generate(prompt[:2], 1, top_k=1).numpy()[:, -1]
    assert greedy.tolist() == [int(logits.argmax())] * 2


def test_low_temperature_approaches_greedy_and_high_temperature_spreads():
    model = tiny_gpt(seed=18).eval()
    prompt = np.tile(np.array([[2, 7]]), (300, 1))
    manual_seed(19)
    cold = model.generate(prompt, 1, temperature=1e-3).numpy()[:, -1]
    hot = model.generate(prompt, 1, temperature=100.0).numpy()[:, -1]
    assert len(set(cold.tolist())) == 1
    assert len(set(hot.tolist())) >= 10


# ---- errors --------------------------------------------------------------------------------------
def test_gpt_errors_speak_to_a_learner():
    model = tiny_gpt(seed=20)
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds block_size 8.*crop"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(batch, seq_len\).*ids\[None, :\]"):
        model(np.zeros(5, dtype=np.int64))
    with pytest.raises(TypeError, match="integers"):
        model(np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"targets of shape \(1, 4\) must match idx of shape \(1, 5\)"):
        model(np.zeros((1, 5), dtype=np.int64), np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(IndexError, match="token id 13 .*vocabulary of 13"):
        model(np.array([[1, 13]]))
    with pytest.raises(ValueError, match="temperature.*top_k=1"):
        model.generate(np.zeros((1, 1), dtype=np.int64), 1, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.zeros((1, 1), dtype=np.int64), 1, top_k=0)
    with pytest.raises(ValueError, match="n_embd 10 must be divisible by n_head 4"):
        GPT(GPTConfig(n_embd=10, n_head=4))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT({"n_layer": 2})


# ---- blocks and training -------------------------------------------------------------------------
def test_transformer_block_matches_the_twin_block_and_is_causal(torch):
    ours = tiny_gpt(seed=21, bias=True)
    theirs = torch_gpt(torch, ours.config)
    theirs.load_state_dict({name: torch.from_numpy(array) for name, array in ours.state_dict().items()})
    assert_matches_torch(lambda x: ours.blocks[0](x), lambda x: theirs.blocks[0](x), normal(2, 5, 16))
    block = TransformerBlock(16, 4)
    x = normal(1, 6, 16)
    base = block(Tensor(x)).numpy()
    x[0, 4:] += 3.0
    np.testing.assert_allclose(block(Tensor(x)).numpy()[0, :4], base[0, :4], rtol=1e-5, atol=1e-6)


def test_a_few_adamw_steps_reduce_the_loss():
    model = tiny_gpt(seed=22)
    optimizer = AdamW(model.parameter_groups(0.01), lr=1e-2)
    idx = np.array([[0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0]])
    targets = np.roll(idx, -1, axis=1)
    first = model(idx, targets)[1].item()
    for _ in range(25):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_dropout_config_is_active_in_training_and_off_in_eval():
    model = tiny_gpt(seed=23, dropout=0.3)
    idx = np.array([[1, 2, 3, 4]])
    assert not np.allclose(model(idx)[0].numpy(), model(idx)[0].numpy())
    model.eval()
    np.testing.assert_array_equal(model(idx)[0].numpy(), model(idx)[0].numpy())


# ---- the KV-cache seam (module 17 fills it) ------------------------------------------------------
class ConcatenatingLayerCache:
    def __init__(self):
        self.keys = self.values = None

    def update(self, keys, values):
        if self.keys is not None:
            keys = Tensor(np.concatenate([self.keys.numpy(), keys.numpy()], axis=-2))
            values = Tensor(np.concatenate([self.values.numpy(), values.numpy()], axis=-2))
        self.keys, self.values = keys, values
        return keys, values


class ModelCache:
    """What GPT.forward asks of a cache: `layers` (one per block) and `length` (positions held)."""

    def __init__(self, n_layer):
        self.layers = [ConcatenatingLayerCache() for _ in range(n_layer)]

    @property
    def length(self):
        keys = self.layers[0].keys
        return 0 if keys is None else keys.shape[-2]


def test_gpt_forward_with_a_cache_places_new_tokens_after_the_cached_ones():
    model = tiny_gpt(seed=24).eval()
    idx = np.random.default_rng(24).integers(0, 13, size=(2, 8))
    with no_grad():
        full = model(idx)[0].numpy()
        cache = ModelCache(2)
        pieces = [model(idx[:, a:b], kv_cache=cache)[0].numpy() for a, b in ((0, 3), (3, 4), (4, 8))]
        assert cache.length == 8
        alone = model(idx[:, 3:4])[0].numpy()  # the same token at position 0, with no context
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-4, atol=1e-5)
    assert not np.allclose(pieces[1], alone, atol=1e-3), "a cached step is not a fresh sequence"


def test_transformer_block_passes_the_cache_to_its_attention():
    block = TransformerBlock(16, 4)
    x = Tensor(normal(1, 6, 16, seed=25))
    cache = ConcatenatingLayerCache()
    steps = [block(x[:, t:t + 1], kv_cache=cache).numpy() for t in range(6)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), block(x).numpy(), rtol=1e-5, atol=1e-5)


def test_gpt_forward_with_a_cache_explains_too_many_positions_and_a_wrong_cache():
    model = tiny_gpt(seed=26).eval()
    with no_grad():
        cache = ModelCache(2)
        model(np.zeros((1, 6), dtype=np.int64), kv_cache=cache)
        with pytest.raises(ValueError, match=r"sequence length 6 cached positions \+ 3 exceeds block_size 8"):
            model(np.zeros((1, 3), dtype=np.int64), kv_cache=cache)
        with pytest.raises(ValueError, match="3 layer caches for a model of 2 blocks"):
            model(np.zeros((1, 1), dtype=np.int64), kv_cache=ModelCache(3))


def test_sample_next_token_is_the_sampler_of_generate():
    from tinytorch.core.transformer import check_sampling_arguments, sample_next_token

    logits = normal(4, 13, seed=27)
    assert sample_next_token(logits, top_k=1).tolist() == logits.argmax(axis=-1).tolist()
    manual_seed(28)
    first = sample_next_token(logits, temperature=0.5, top_k=4)
    manual_seed(28)
    np.testing.assert_array_equal(sample_next_token(logits, temperature=0.5, top_k=4), first)
    top4 = np.argsort(logits, axis=-1)[:, -4:]
    assert all(token in row for token, row in zip(first, top4))
    model = tiny_gpt(seed=29).eval()
    prompt = np.array([[1, 2, 3]])
    manual_seed(30)
    generated = model.generate(prompt, 1, temperature=0.9)
    manual_seed(30)
    with no_grad():
        expected = sample_next_token(model(prompt)[0].numpy()[:, -1], temperature=0.9)
    assert generated.numpy()[0, -1] == expected[0]
    with pytest.raises(ValueError, match="mine: temperature must be > 0"):
        check_sampling_arguments("mine", -1.0, None)
    with pytest.raises(ValueError, match="top_k"):
        check_sampling_arguments("mine", 1.0, 2.5)
