"""Module 17 Memoization (KV cache), graded through the exported package `tinytorch.core.memoization`."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear
from tinytorch.core.memoization import DecodePlan, KVCache, LayerKVCache, decode_step, generate, kv_cache_bytes, prefill
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.transformer import GPT, GPTConfig, sample_next_token


def random_gpt(seed=0, spread=0.2, **overrides):
    """A GPT with its weights moved off GPT-2's init, so that its logits are far from uniform."""
    manual_seed(seed)
    config = {"block_size": 32, "vocab_size": 13, "n_layer": 2, "n_head": 2, "n_embd": 16, **overrides}
    model = GPT(GPTConfig(**config))
    rng = np.random.default_rng(seed)
    for parameter in model.parameters():
        parameter.data += rng.standard_normal(parameter.shape).astype(parameter.dtype) * spread
    return model.eval()


def full_logits(model, ids):
    with no_grad():
        return model(ids)[0].numpy()


TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 30

TRAIN = """
import sys
import numpy as np
import tinytorch.core.autograd
from tinytorch.core.optimizers import AdamW
from tinytorch.core.tensor import manual_seed
from tinytorch.core.transformer import GPT, GPTConfig

text = sys.argv[2]
vocab = sorted(set(text))
data = np.array([vocab.index(c) for c in text])
manual_seed(0)
model = GPT(GPTConfig(block_size=64, vocab_size=len(vocab), n_layer=2, n_head=2, n_embd=32))
optimizer = AdamW(model.parameter_groups(0.01), lr=3e-3)
rng = np.random.default_rng(0)
for _ in range(200):
    starts = rng.integers(0, len(data) - 65, size=8)
    window = starts[:, None] + np.arange(64)
    _, loss = model(data[window], data[window + 1])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
np.savez(sys.argv[1], **model.state_dict())
print(f"loss {loss.item():.4f}")
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, vocabulary, data): a small GPT trained for 200 AdamW steps on a repetitive text.

    The training runs once, in a subprocess with one BLAS thread (these matrices are small: one
    thread is as fast on an idle machine and many times faster on a busy one, where waiting
    threads spin), and hands its weights back as an .npz checkpoint that this process loads.
    """
    checkpoint = tmp_path_factory.mktemp("kv_cache") / "trained_gpt.npz"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-c", TRAIN, str(checkpoint), TEXT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        pytest.fail(f"training the test model failed:\n{done.stdout}{done.stderr}")
    assert float(done.stdout.split()[-1]) < 0.8, f"the test model must learn its text: {done.stdout}"
    vocab = sorted(set(TEXT))
    model = GPT(GPTConfig(block_size=64, vocab_size=len(vocab), n_layer=2, n_head=2, n_embd=32))
    with np.load(checkpoint) as arrays:
        model.load_state_dict(dict(arrays))
    return model.eval(), vocab, np.array([vocab.index(c) for c in TEXT])


# ---- one layer's cache ---------------------------------------------------------------------------
def layer_cache(batch=2, heads=3, max_len=8, head_dim=4, dtype=np.float32):
    return LayerKVCache(np.zeros((batch, heads, max_len, head_dim), dtype), np.zeros((batch, heads, max_len, head_dim), dtype))


def tensors(*shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal(shape).astype(dtype), dtype=dtype), Tensor(rng.standard_normal(shape).astype(dtype), dtype=dtype)


def test_layer_cache_appends_and_returns_every_position_including_the_new_ones():
    cache = layer_cache()
    first, second = tensors(2, 3, 3, 4, seed=1), tensors(2, 3, 1, 4, seed=2)
    keys, values = cache.update(*first)
    assert cache.length == 3 and keys.shape == values.shape == (2, 3, 3, 4)
    keys, values = cache.update(*second)
    assert cache.length == 4 and keys.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(keys.numpy(), np.concatenate([first[0].numpy(), second[0].numpy()], axis=2))
    np.testing.assert_array_equal(values.numpy(), np.concatenate([first[1].numpy(), second[1].numpy()], axis=2))


def test_layer_cache_writes_in_place_and_returns_views_not_copies():
    cache = layer_cache()
    buffer = cache.keys
    keys, _ = cache.update(*tensors(2, 3, 2, 4))
    assert cache.keys is buffer, "preallocated: the buffer is never replaced"
    assert np.shares_memory(keys.numpy(), buffer) and np.shares_memory(cache.update(*tensors(2, 3, 1, 4))[1].numpy(), cache.values)


def test_layer_cache_keeps_float64():
    cache = layer_cache(dtype=np.float64)
    keys, values = cache.update(*tensors(2, 3, 2, 4, dtype=np.float64))
    assert keys.dtype == values.dtype == np.float64


def test_layer_cache_refuses_overflow_bad_shapes_dtypes_and_gradients():
    cache = layer_cache(max_len=4)
    cache.update(*tensors(2, 3, 3, 4))
    with pytest.raises(ValueError, match=r"3 cached positions \+ 2 new ones exceed max_len 4"):
        cache.update(*tensors(2, 3, 2, 4))
    with pytest.raises(ValueError, match=r"do not fit a cache"):
        cache.update(*tensors(2, 5, 1, 4))
    with pytest.raises(TypeError, match="float64.*float32"):
        cache.update(*tensors(2, 3, 1, 4, dtype=np.float64))
    keys, values = tensors(2, 3, 1, 4)
    with pytest.raises(RuntimeError, match="no_grad"):
        cache.update(Tensor(keys.numpy(), requires_grad=True), values)
    assert cache.length == 3, "a refused update changes nothing"
    cache.reset()
    assert cache.length == 0 and cache.update(keys, values)[0].shape == (2, 3, 1, 4)


# ---- the model's cache ---------------------------------------------------------------------------
def test_kv_cache_bytes_match_the_formula_and_the_buffers():
    cache = KVCache(n_layer=4, batch_size=1, n_head=4, max_len=64, head_dim=32)
    assert cache.nbytes == cache.keys.nbytes + cache.values.nbytes == kv_cache_bytes(4, 1, 4, 64, 32) == 262_144
    assert kv_cache_bytes(12, 1, 12, 1024, 64) == 2 * 12 * 12 * 1024 * 64 * 4 == 75_497_472
    assert kv_cache_bytes(2, 3, 4, 5, 6, itemsize=8) == 2 * 2 * 3 * 4 * 5 * 6 * 8
    wide = KVCache(n_layer=2, batch_size=3, n_head=2, max_len=10, head_dim=8, dtype=np.float64)
    assert wide.nbytes == kv_cache_bytes(2, 3, 2, 10, 8, itemsize=8)


def test_kv_cache_for_a_model_has_one_view_per_layer_and_a_shared_length():
    model = random_gpt(n_layer=3)
    cache = KVCache.for_model(model, batch_size=2)
    assert cache.keys.shape == (3, 2, 2, 32, 8) and cache.max_len == 32 and len(cache.layers) == 3
    assert all(np.shares_memory(layer.keys, cache.keys) for layer in cache.layers)
    assert KVCache.for_model(model, 1, max_len=10).max_len == 10
    assert KVCache.for_model(random_gpt(n_layer=1).double(), 1).keys.dtype == np.float64
    with no_grad():
        prefill(model, cache, np.zeros((2, 5), dtype=np.int64))
    assert cache.length == 5 and all(layer.length == 5 for layer in cache.layers)
    assert "length=5" in repr(cache) and f"nbytes={cache.nbytes:,}" in repr(cache)
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="n_head"):
        KVCache(n_layer=1, batch_size=1, n_head=0, max_len=4, head_dim=2)


# ---- prefill and decode: the same logits as one full pass ----------------------------------------
@pytest.mark.parametrize("prompt_len", [1, 4, 17])
def test_decoding_token_by_token_gives_the_full_pass_logits_at_every_position(prompt_len):
    model = random_gpt(seed=prompt_len)
    ids = np.random.default_rng(prompt_len).integers(0, 13, size=(3, 32))
    expected = full_logits(model, ids)
    cache = KVCache.for_model(model, batch_size=3)
    with no_grad():
        logits = [prefill(model, cache, ids[:, :prompt_len])]
        logits += [decode_step(model, cache, ids[:, t:t + 1]) for t in range(prompt_len, 32)]
    assert cache.length == 32
    np.testing.assert_allclose(np.stack(logits, axis=1), expected[:, prompt_len - 1:], rtol=1e-4, atol=1e-5)


def test_decoding_several_tokens_per_step_uses_a_bottom_right_causal_mask():
    model = random_gpt(seed=3)
    ids = np.random.default_rng(3).integers(0, 13, size=(2, 24))
    expected = full_logits(model, ids)
    cache = KVCache.for_model(model, batch_size=2)
    with no_grad():
        pieces = [model(ids[:, a:b], kv_cache=cache)[0].numpy() for a, b in ((0, 5), (5, 8), (8, 9), (9, 24))]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, rtol=1e-4, atol=1e-5)


def test_the_first_token_decoded_into_an_empty_cache_attends_to_itself():
    model = random_gpt(seed=4)
    ids = np.array([[3], [7]])
    cache = KVCache.for_model(model, batch_size=2)
    with no_grad():
        logits = decode_step(model, cache, ids)
    np.testing.assert_allclose(logits, full_logits(model, ids)[:, 0], rtol=1e-5, atol=1e-6)


def test_a_decoded_token_sits_at_its_own_position_not_position_zero():
    model = random_gpt(seed=5)
    ids = np.random.default_rng(5).integers(0, 13, size=(1, 10))
    cache = KVCache.for_model(model, batch_size=1)
    with no_grad():
        prefill(model, cache, ids[:, :9])
        at_nine = decode_step(model, cache, ids[:, 9:])
        at_zero = decode_step(model, KVCache.for_model(model, batch_size=1), ids[:, 9:])  # no earlier tokens
    np.testing.assert_allclose(at_nine, full_logits(model, ids)[:, 9], rtol=1e-4, atol=1e-5)
    assert not np.allclose(at_zero, at_nine, atol=1e-3)


def test_prefill_empties_the_cache_first():
    model = random_gpt(seed=6)
    ids = np.random.default_rng(6).integers(0, 13, size=(1, 12))
    cache = KVCache.for_model(model, batch_size=1)
    with no_grad():
        first = prefill(model, cache, ids[:, :6])
        decode_step(model, cache, ids[:, 6:7])
        again = prefill(model, cache, ids[:, :6])
    assert cache.length == 6
    np.testing.assert_array_equal(first, again)


# ---- generate: the same tokens as module 13 -----------------------------------------------------
def test_greedy_generation_gives_module_13s_tokens_over_250_steps():
    model = random_gpt(seed=7, block_size=256)
    prompt = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    cached = generate(model, prompt, 250, top_k=1).numpy()
    assert cached.shape == (2, 254) and cached.dtype == np.int64
    np.testing.assert_array_equal(cached, model.generate(prompt, 250, top_k=1).numpy())
    # Random weights soon repeat one token under greedy decoding, so check the logits along the way too.
    cache = KVCache.for_model(model, batch_size=2)
    with no_grad():
        logits = [prefill(model, cache, cached[:, :4])] + [decode_step(model, cache, cached[:, t:t + 1])
                                                          for t in range(4, 254)]
    np.testing.assert_allclose(np.stack(logits, axis=1), full_logits(model, cached)[:, 3:], rtol=1e-4, atol=1e-4)


def test_cached_logits_follow_the_generated_tokens(trained):
    model, _, data = trained
    tokens = generate(model, data[None, :6], 58, top_k=1).numpy()
    cache = KVCache.for_model(model, batch_size=1)
    with no_grad():
        logits = [prefill(model, cache, tokens[:, :6])] + [decode_step(model, cache, tokens[:, t:t + 1])
                                                          for t in range(6, 64)]
    np.testing.assert_allclose(np.concatenate(logits), full_logits(model, tokens)[0, 5:], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.concatenate(logits)[:-1].argmax(axis=-1), tokens[0, 6:])


def test_a_trained_model_writes_the_same_200_tokens_with_and_without_the_cache(trained):
    model, vocab, data = trained
    prompt = data[None, :8]
    with_cache = generate(model, prompt, 200, top_k=1).numpy()
    np.testing.assert_array_equal(with_cache, model.generate(prompt, 200, top_k=1).numpy())
    np.testing.assert_array_equal(with_cache, generate(model, prompt, 200, top_k=1, use_cache=False).numpy())
    np.testing.assert_array_equal(with_cache, generate(model, prompt, 200, top_k=1, use_plan=False).numpy())
    assert "sat on the" in "".join(vocab[i] for i in with_cache[0, 8:])


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (2.0, 2)])
def test_sampling_with_a_seed_gives_the_same_tokens_with_and_without_the_cache(trained, temperature, top_k):
    model, _, data = trained
    prompt = np.stack([data[:4], data[10:14], data[20:24]])
    manual_seed(11)
    cached = generate(model, prompt, 60, temperature=temperature, top_k=top_k).numpy()
    manual_seed(11)
    np.testing.assert_array_equal(cached, model.generate(prompt, 60, temperature=temperature, top_k=top_k).numpy())


def test_generate_accepts_tensors_crops_long_prompts_and_zero_tokens():
    model = random_gpt(seed=8, block_size=8)
    long_prompt = np.arange(20).reshape(1, 20) % 13
    out = generate(model, Tensor(long_prompt), 5, top_k=1)
    assert isinstance(out, Tensor) and out.shape == (1, 25)
    np.testing.assert_array_equal(out.numpy(), model.generate(long_prompt, 5, top_k=1).numpy())
    np.testing.assert_array_equal(generate(model, long_prompt, 0).numpy(), long_prompt)


def test_generate_works_while_gradients_are_on_and_records_no_graph():
    model = random_gpt(seed=9)
    out = generate(model, np.array([[1, 2]]), 5, top_k=1)
    assert not out.requires_grad and all(p.grad is None for p in model.parameters())


# ---- the block_size policy -------------------------------------------------------------------------
def sliding_reference(model, ids, new_tokens, keep):
    """The "slide" policy written independently: recompute the current window at every step."""
    block = model.config.block_size
    start = max(0, ids.shape[1] - block)
    with no_grad():
        for _ in range(new_tokens):
            if ids.shape[1] - start > block:
                start = ids.shape[1] - keep
            logits = model(ids[:, start:])[0].numpy()[:, -1]
            ids = np.concatenate([ids, sample_next_token(logits, 1.0, 1)[:, None]], axis=1)
    return ids


def test_recompute_policy_gives_module_13s_tokens_past_block_size(trained):
    model, _, data = trained  # block_size 64
    prompt = data[None, :10]
    np.testing.assert_array_equal(generate(model, prompt, 150, top_k=1, on_full="recompute").numpy(),
                                  model.generate(prompt, 150, top_k=1).numpy())


@pytest.mark.parametrize("block_size", [1, 2, 7, 16])
def test_slide_policy_recomputes_half_a_window_when_the_cache_is_full(block_size):
    model = random_gpt(seed=10, block_size=block_size)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    expected = sliding_reference(model, prompt, 45, max(1, block_size // 2))
    np.testing.assert_array_equal(generate(model, prompt, 45, top_k=1, on_full="slide").numpy(), expected)
    np.testing.assert_array_equal(generate(model, prompt, 45, top_k=1, on_full="slide", use_cache=False).numpy(),
                                  expected)


def test_the_policies_agree_until_the_context_is_full(trained):
    model, _, data = trained
    prompt = data[None, :10]
    slide = generate(model, prompt, 120, top_k=1, on_full="slide").numpy()
    recompute = generate(model, prompt, 120, top_k=1, on_full="recompute").numpy()
    np.testing.assert_array_equal(slide[:, :65], recompute[:, :65])
    np.testing.assert_array_equal(slide, sliding_reference(model, prompt, 120, 32))


# ---- errors ------------------------------------------------------------------------------------------
def test_generate_errors_speak_to_a_learner():
    model = random_gpt(seed=12)
    prompt = np.array([[1, 2]])
    with pytest.raises(ValueError, match="temperature.*top_k=1"):
        generate(model, prompt, 3, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, prompt, 3, top_k=0)
    with pytest.raises(ValueError, match="on_full must be one of .*'recompute', 'slide'"):
        generate(model, prompt, 3, on_full="wrap")
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        generate(model, prompt, -1)
    with pytest.raises(ValueError, match=r"\(batch, seq_len\).*ids\[None, :\]"):
        generate(model, np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="seq_len >= 1"):
        generate(model, np.zeros((1, 0), dtype=np.int64), 3)
    with pytest.raises(TypeError, match="integers"):
        generate(model, np.array([[1.0, 2.0]]), 3)


def test_a_cache_made_for_another_model_or_used_with_gradients_is_refused():
    model = random_gpt(seed=13)
    other = KVCache.for_model(random_gpt(seed=13, n_layer=3), batch_size=1)
    with no_grad(), pytest.raises(ValueError, match="3 layer caches for a model of 2 blocks"):
        model(np.array([[1, 2]]), kv_cache=other)
    with pytest.raises(RuntimeError, match="no_grad"):
        model(np.array([[1, 2]]), kv_cache=KVCache.for_model(model, batch_size=1))
    cache = KVCache.for_model(model, batch_size=1)
    with no_grad():
        prefill(model, cache, np.zeros((1, 30), dtype=np.int64))
        with pytest.raises(ValueError, match=r"30 cached positions \+ 3.*block_size 32"):
            decode_step(model, cache, np.zeros((1, 3), dtype=np.int64))


# ---- the decode plan ------------------------------------------------------------------------------
def planned_and_module_logits(model, ids, prompt_len):
    """Logits of every decoded position: (the plan's, decode_step's), each on a cache of its own."""
    planned, modules = (KVCache.for_model(model, batch_size=ids.shape[0]) for _ in range(2))
    plan = DecodePlan(model, planned)
    with no_grad():
        prefill(model, planned, ids[:, :prompt_len])
        prefill(model, modules, ids[:, :prompt_len])
        steps = [(plan.step(ids[:, t:t + 1]), decode_step(model, modules, ids[:, t:t + 1]))
                 for t in range(prompt_len, ids.shape[1])]
    np.testing.assert_allclose(planned.keys, modules.keys, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(planned.values, modules.values, rtol=1e-5, atol=1e-6)
    assert planned.length == modules.length == ids.shape[1]
    return np.stack([a for a, _ in steps], axis=1), np.stack([b for _, b in steps], axis=1)


@pytest.mark.parametrize(("bias", "dtype", "batch"), [(True, np.float32, 2), (False, np.float32, 1), (True, np.float64, 3)])
def test_the_decode_plan_gives_the_logits_of_the_modules_and_of_a_full_pass(bias, dtype, batch):
    model = random_gpt(seed=21, bias=bias).to(dtype)
    ids = np.random.default_rng(3).integers(0, 13, size=(batch, 32))
    planned, modules = planned_and_module_logits(model, ids, prompt_len=3)
    assert planned.dtype == dtype
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(planned, modules, **tolerance)
    np.testing.assert_allclose(planned, full_logits(model, ids)[:, 3:], **tolerance)


def test_the_decode_plan_reads_the_weights_as_they_are_at_each_step():
    model = random_gpt(seed=22)
    ids = np.random.default_rng(4).integers(0, 13, size=(1, 12))
    before, _ = planned_and_module_logits(model, ids, prompt_len=4)
    model.blocks[0].mlp.up_proj.weight.data *= 3.0  # in place, as an optimizer does
    model.load_state_dict({"final_norm.weight": model.final_norm.weight.data * 0.5}, strict=False)
    planned, modules = planned_and_module_logits(model, ids, prompt_len=4)
    np.testing.assert_allclose(planned, modules, rtol=1e-4, atol=1e-5)
    assert not np.allclose(planned, before, atol=1e-3), "the changed weights change the logits"


def test_a_trained_model_writes_the_same_tokens_with_and_without_the_plan(trained):
    model, _, data = trained
    prompt = data[None, 10:16]
    tokens = generate(model, prompt, 58, top_k=1).numpy()
    np.testing.assert_array_equal(tokens, generate(model, prompt, 58, top_k=1, use_plan=False).numpy())
    planned, modules = planned_and_module_logits(model, tokens, prompt_len=6)
    np.testing.assert_allclose(planned, modules, rtol=1e-4, atol=1e-5)


class DoubledLinear(Linear):
    """A layer the plan does not know: its forward is not Linear's."""

    def forward(self, x):
        return super().forward(x) * 2.0


def test_a_model_the_plan_does_not_know_decodes_through_its_modules():
    model = random_gpt(seed=23, block_size=64)
    assert DecodePlan.unsupported(model) is None
    prompt = np.array([[1, 2, 3]])
    plain = generate(model, prompt, 40, top_k=1).numpy()
    model.blocks[1].mlp.up_proj = DoubledLinear(16, 64)
    reason = DecodePlan.unsupported(model)
    assert "'blocks.1.mlp.up_proj' is a DoubledLinear" in reason
    with pytest.raises(ValueError, match="cannot plan this model: its layer 'blocks.1.mlp.up_proj'.*decode_step"):
        DecodePlan(model, KVCache.for_model(model, batch_size=1))
    changed = generate(model, prompt, 40, top_k=1).numpy()
    np.testing.assert_array_equal(changed, model.generate(prompt, 40, top_k=1).numpy())
    assert not np.array_equal(changed, plain), "the new layer is the one that ran"

    class KeepsForward(GPT):  # a subclass that keeps GPT's forward may be planned
        pass

    assert DecodePlan.unsupported(KeepsForward(model.config).eval()) is None

    class OwnForward(GPT):
        def forward(self, idx, targets=None, kv_cache=None):
            return super().forward(idx, targets, kv_cache)

    assert "OwnForward, not module 13's GPT" in DecodePlan.unsupported(OwnForward(model.config).eval())
    dropout = random_gpt(seed=23, dropout=0.1)
    assert "training mode with dropout" in DecodePlan.unsupported(dropout.train())
    assert DecodePlan.unsupported(dropout.eval()) is None
    attention_only = random_gpt(seed=23).train()
    assert DecodePlan.unsupported(attention_only) is None, "training mode without dropout computes the same"
    attention_only.blocks[0].attention.dropout = 0.2
    assert "training mode with dropout" in DecodePlan.unsupported(attention_only)


def test_under_a_profiler_generate_runs_the_modules_so_the_profile_sees_every_step():
    from tinytorch.core.profiling import Profiler

    model = random_gpt(seed=24, block_size=64)
    prompt = np.array([[1, 2, 3]])
    expected = generate(model, prompt, 6, top_k=1).numpy()
    with Profiler() as prof:
        assert "watches" in DecodePlan.unsupported(model)
        tokens = generate(model, prompt, 6, top_k=1).numpy()
    np.testing.assert_array_equal(tokens, expected)
    attention = [row for row in prof.key_averages() if row.name == "scaled_dot_product_attention"]
    assert attention and attention[0].calls == 6 * model.config.n_layer, "a prefill and five decode steps per layer"
    assert DecodePlan.unsupported(model) is None, "the profiler is gone"


def test_decode_plan_errors_speak_to_a_learner():
    model = random_gpt(seed=25)
    cache = KVCache.for_model(model, batch_size=2)
    plan = DecodePlan(model, cache)
    with pytest.raises(ValueError, match=r"expects \(2, 1\) integer token ids.*shape \(2,\)"):
        plan.step(np.array([1, 2]))
    with pytest.raises(ValueError, match="integer token ids.*float64"):
        plan.step(np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 13\), got \[-1, 2\]"):
        plan.step(np.array([[-1], [2]]))
    with no_grad():
        prefill(model, cache, np.zeros((2, 32), dtype=np.int64))
    with pytest.raises(ValueError, match="holds 32 positions.*block_size 32.*prefill a shorter context"):
        plan.step(np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="does not fit a model of 2 layers.*KVCache.for_model"):
        DecodePlan(model, KVCache.for_model(random_gpt(seed=25, n_layer=3), batch_size=1))
    with pytest.raises(ValueError, match="does not fit.*float32"):
        DecodePlan(model, KVCache(2, 1, 2, 32, 8, dtype=np.float64))
