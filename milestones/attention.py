"""Milestone `attention`: a transformer learns to reverse sequences (Vaswani et al., 2017).

"Attention is all you need": a transformer has no recurrence and no convolution; every output
position reads every input position through attention, in one step. Reversing a sequence is
the smallest task that proves it. Output position i must copy input position T-1-i, so each
position has to find another position by *where* it is, and fetch *what* is there. A
recurrent network must carry the whole sequence through its state to do that; one attention
layer does it directly: a query made from position i's embedding matches the key of position
T-1-i.

This script builds a transformer encoder (the half of Vaswani's model that reads the input)
from TinyTorch's parts: token and position embeddings (module 11), bidirectional multi-head
attention (module 12), pre-norm blocks with LayerNorm and a GELU MLP (module 13). Each output
position predicts one token, trained with cross-entropy and Adam. It is then tested on
held-out sequences: drawn with a different seed, and every training batch is filtered so that
none of them is ever seen in training.

    python milestones/attention.py [--quick] [--seed N] [--steps N]

Bar: 100% exact-sequence accuracy on the held-out sequences (every token of every sequence
right). `--quick` reverses shorter sequences with a smaller model, against the same bar.
"""

from __future__ import annotations

import math
import time

import numpy as np
from _common import Milestone, run

import tinytorch.core.autograd  # noqa: F401  (importing it turns on Tensor.backward())
from tinytorch.core.autograd import no_grad
from tinytorch.core.embeddings import Embedding, LearnedPositionalEmbedding
from tinytorch.core.layers import Linear, Module
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import Adam, CosineWarmupLR
from tinytorch.core.tensor import Tensor, manual_seed
from tinytorch.core.transformer import LayerNorm, TransformerBlock

STORY = """
Vaswani et al. (2017) replaced recurrence with attention: every position reads every other
position directly. Reversing a sequence needs exactly that: output i must fetch input T-1-i.
A transformer encoder learns the task and reverses sequences it has never seen.
"""

FULL = {"length": 16, "vocab": 16, "d_model": 64, "n_head": 4, "n_layer": 2, "batch": 64,
        "steps": 600, "warmup": 60, "lr": 3e-3, "held_out": 2000, "log_every": 100}
QUICK = {"length": 8, "vocab": 10, "d_model": 32, "n_head": 2, "n_layer": 2, "batch": 64,
         "steps": 200, "warmup": 20, "lr": 5e-3, "held_out": 1000, "log_every": 50}


class ReversalTransformer(Module):
    """Tokens (B, T) -> logits (B, T, vocab): embeddings, bidirectional blocks, a final norm, a linear head.

    A GPT without its causal mask: the same blocks, but position i sees the whole input, which
    reversal needs (output 0 is the last input token).
    """

    def __init__(self, vocab, length, d_model, n_head, n_layer):
        super().__init__()
        self.tokens = Embedding(vocab, d_model)
        self.positions = LearnedPositionalEmbedding(length, d_model)  # adds position i's own vector
        # Module 13's pre-norm block with causal=False: every position may attend to every other.
        self.blocks = [TransformerBlock(d_model, n_head, causal=False) for _ in range(n_layer)]
        self.norm = LayerNorm(d_model)
        self.head = Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.positions(self.tokens(tokens))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def sequence_keys(sequences):
    """One opaque key per sequence (its tokens' bytes), so that whole sequences compare in one call.

    Tokens fit in a byte (vocabularies up to 256); each row of bytes is viewed as one value.
    """
    rows = np.ascontiguousarray(sequences, dtype=np.uint8)
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


def training_batch(rng, batch, length, vocab, held_out_keys):
    """A batch of random sequences with every held-out sequence removed; returns (batch, removed)."""
    sequences = rng.integers(0, vocab, size=(batch, length))
    seen = np.isin(sequence_keys(sequences), held_out_keys)
    return sequences[~seen], int(seen.sum())


def predict(model, sequences):
    """The model's reversal of each sequence: the most likely token at every position."""
    model.eval()
    with no_grad():
        logits = model(Tensor(sequences))
    model.train()
    return np.asarray(logits.data).argmax(axis=-1)


def main(argv=None) -> int:
    milestone = Milestone("attention", people="Ashish Vaswani, Noam Shazeer, Niki Parmar, Jakob Uszkoreit, "
                          "Llion Jones, Aidan Gomez, Lukasz Kaiser and Illia Polosukhin (2017)", story=STORY)
    parser = milestone.parser()
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default 600, quick 200; 0 tests the untrained model)")
    args = milestone.parse_args(parser, argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.steps is not None:
        if args.steps < 0:
            parser.error(f"--steps must be 0 (test the untrained model) or more, got {args.steps}")
        settings["steps"] = args.steps
    length, vocab, steps = settings["length"], settings["vocab"], settings["steps"]

    held_out = np.random.default_rng(args.seed + 10_000).integers(0, vocab, size=(settings["held_out"], length))
    held_out_keys, first = np.unique(sequence_keys(held_out), return_index=True)
    held_out = held_out[np.sort(first)]  # a sequence drawn twice is tested once
    milestone.step(f"task: reverse sequences of {length} random tokens from a vocabulary of {vocab} "
                   f"({vocab}^{length} = {float(vocab) ** length:.0e} possible sequences)")
    milestone.step(f"held out: {len(held_out)} sequences drawn with seed {args.seed + 10_000}; any training "
                   "sequence equal to one of them is discarded")

    manual_seed(args.seed)
    model = ReversalTransformer(vocab, length, settings["d_model"], settings["n_head"], settings["n_layer"])
    optimizer = Adam(model.parameters(), lr=settings["lr"])
    scheduler = CosineWarmupLR(optimizer, warmup_steps=settings["warmup"],
                               total_steps=max(steps, settings["warmup"] + 1), min_lr=settings["lr"] / 20)
    count = sum(p.numel() for p in model.parameters())
    milestone.step(f"model: transformer encoder, {settings['n_layer']} blocks, {settings['n_head']} heads, "
                   f"d_model {settings['d_model']}, learned positions, {count:,} parameters")
    milestone.step(f"training: {steps} steps of {settings['batch']} fresh random sequences, cross-entropy, "
                   f"Adam lr {settings['lr']:g} (warmup {settings['warmup']}, cosine decay)")

    rng = np.random.default_rng(args.seed)
    discarded, losses = 0, []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        sequences, removed = training_batch(rng, settings["batch"], length, vocab, held_out_keys)
        discarded += removed
        logits = model(Tensor(sequences))
        targets = sequences[:, ::-1].copy()  # the answer: the input read backwards
        loss = cross_entropy(logits.reshape(-1, vocab), Tensor(targets.reshape(-1)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % settings["log_every"] == 0 or step == steps:
            milestone.step(f"step {step:5d}/{steps}  loss {np.mean(losses):.4f}  "
                           f"elapsed {time.perf_counter() - start:6.1f} s")
            losses = []
    milestone.step(f"training took {time.perf_counter() - start:.1f} s; {discarded} training draws matched a "
                   "held-out sequence and were discarded")

    predictions = predict(model, held_out)
    expected = held_out[:, ::-1]
    token_accuracy = float((predictions == expected).mean())
    exact = float((predictions == expected).all(axis=1).mean())
    for row in range(3):
        mark = "ok" if (predictions[row] == expected[row]).all() else "WRONG"
        milestone.step(f"held-out {' '.join(map(str, held_out[row]))}  ->  "
                       f"{' '.join(map(str, predictions[row]))}  ({mark})")
    milestone.step(f"held-out token accuracy {token_accuracy:.2%}; chance is {1 / vocab:.1%} per token, "
                   f"{math.pow(vocab, -length):.0e} per sequence")
    print()
    milestone.check("held-out exact-sequence accuracy", f"{exact:.2%} of {len(held_out)}", "100%", exact == 1.0)
    return milestone.finish()


if __name__ == "__main__":
    run(main, "attention")
