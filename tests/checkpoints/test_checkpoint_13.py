"""Checkpoint 13 (Language): Can I build a GPT that generates text?

Capability: build a small GPT, score a batch of token ids and generate new tokens.
"""

import numpy as np

from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.transformer import GPT, GPTConfig


def test_i_can_build_score_and_sample_a_gpt():
    manual_seed(0)
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    logits, loss = model(Tensor(ids), targets=Tensor(ids))
    assert logits.shape == (2, 8, 11)
    assert abs(loss.item() - np.log(11)) < 0.5, "an untrained model is close to uniform over the vocabulary"
    generated = model.generate(Tensor(ids[:, :3]), max_new_tokens=5).numpy()
    assert generated.shape == (2, 8)
    np.testing.assert_array_equal(generated[:, :3], ids[:, :3])
    assert generated.min() >= 0 and generated.max() < 11
