"""Checkpoint 17 (Memoization): Can I make generation fast by caching keys and values?

Capability: generate with a KV cache that a prompt's prefill fills and each new token extends by
one position, and get exactly the tokens and the logits of generation without it, with a cache
whose bytes are 2 * layers * batch * heads * positions * head_dim * itemsize.
"""

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.memoization import KVCache, decode_step, generate, kv_cache_bytes, prefill
from tinytorch.core.tensor import manual_seed
from tinytorch.core.transformer import GPT, GPTConfig


def test_i_can_cache_keys_and_values_and_get_the_same_text():
    manual_seed(0)
    model = GPT(GPTConfig(block_size=128, vocab_size=11, n_layer=2, n_head=2, n_embd=16)).eval()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    tokens = generate(model, prompt, 120, top_k=1).numpy()
    np.testing.assert_array_equal(tokens, model.generate(prompt, 120, top_k=1).numpy())

    cache = KVCache.for_model(model, batch_size=2)
    assert cache.nbytes == kv_cache_bytes(2, 2, 2, 128, 8) == 2 * 2 * 2 * 2 * 128 * 8 * 4
    with no_grad():
        logits = [prefill(model, cache, tokens[:, :3])]
        for position in range(3, 123):
            logits.append(decode_step(model, cache, tokens[:, position:position + 1]))
            assert cache.length == position + 1, "each decode step adds exactly one position"
        full = model(tokens)[0].numpy()
    np.testing.assert_allclose(np.stack(logits, axis=1), full[:, 2:], rtol=1e-4, atol=1e-5)
