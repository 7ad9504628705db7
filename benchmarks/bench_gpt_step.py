"""Benchmark: one training step of the tinygpt milestone's GPT, TinyTorch against PyTorch.

The work is the `tinygpt` milestone's configuration (nanoGPT's CPU recipe for character-level
Shakespeare): 4 layers, 4 heads, 128-wide embeddings, a 64-character context, batches of 12,
65 characters in the vocabulary, no dropout, no biases. One step is what the milestone repeats
4000 times:

    logits, loss = model(x, y)          # forward and cross-entropy
    optimizer.zero_grad(); loss.backward()
    clip_grad_norm_(parameters, 1.0)    # gradient clipping
    optimizer.step()                    # AdamW, weight decay on 2-D weights only

PyTorch runs a twin of module 13's GPT written here (nanoGPT's architecture, the same layer
names), loaded with TinyTorch's initial weights and checked to give the same loss, with the
same threads, on the same batch; each candidate is timed alone in its own process
(benchmarks/_timing.py) and the median ratio is reported (goal: TinyTorch at most 1.2x PyTorch). The script also
measures generation speed: tokens per second of `generate` from a one-character prompt (no KV
cache in either: each new token re-reads the cropped context, as nanoGPT does).

    python benchmarks/bench_gpt_step.py [--repeats 20] [--warmup 3] [--new-tokens 100]

Both frameworks use their default threads (PyTorch's intra-op pool, OpenBLAS's pool under
NumPy). On a machine busy with other work, threads that wait for each other spin and both
slow down several-fold; `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1` pins both to one thread.

PyTorch is needed only here, as the reference; TinyTorch never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run the checkout's own tinytorch

from _timing import compare, machine_summary, print_table  # noqa: E402

import tinytorch.core.autograd  # noqa: E402,F401  (turns on Tensor.backward())
from tinytorch.core.autograd import no_grad  # noqa: E402
from tinytorch.core.optimizers import AdamW, clip_grad_norm_  # noqa: E402
from tinytorch.core.tensor import Tensor, manual_seed  # noqa: E402
from tinytorch.core.transformer import GPT, GPTConfig  # noqa: E402

# The tinygpt milestone's model and batch (nanoGPT's CPU configuration for shakespeare_char).
VOCAB_SIZE, BLOCK_SIZE, N_LAYER, N_HEAD, N_EMBD, BATCH_SIZE = 65, 64, 4, 4, 128, 12
LEARNING_RATE, BETAS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0
GOAL = 1.2  # module 13's GPT step at most 1.2x PyTorch's


# ---- TinyTorch ----------------------------------------------------------------------------------
def tinytorch_model():
    manual_seed(0)
    config = GPTConfig(block_size=BLOCK_SIZE, vocab_size=VOCAB_SIZE, n_layer=N_LAYER, n_head=N_HEAD,
                       n_embd=N_EMBD, dropout=0.0, bias=False)
    return GPT(config)


def tinytorch_candidates(model, x, y, new_tokens):
    """(training step, generate) closures for TinyTorch's GPT."""
    parameters = list(model.parameters())
    optimizer = AdamW(model.parameter_groups(WEIGHT_DECAY), lr=LEARNING_RATE, betas=BETAS)
    inputs, targets = Tensor(x), Tensor(y)
    prompt = Tensor(np.zeros((1, 1), dtype=np.int64))

    def train_step():
        _, loss = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(parameters, GRAD_CLIP)
        optimizer.step()

    def generate():
        model.generate(prompt, max_new_tokens=new_tokens, temperature=1.0)

    return train_step, generate


# ---- PyTorch ------------------------------------------------------------------------------------
def torch_model(torch):
    """nanoGPT's architecture in PyTorch, with TinyTorch's layer names so state dicts map 1:1.

    Like module 13 (and GPT-2), the MLP uses the tanh approximation of GELU; the output layer
    shares its weight with the token embedding.
    """
    nn, F = torch.nn, torch.nn.functional

    class MultiHeadAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv_proj = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
            self.out_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv_proj(x).view(B, T, 3, N_HEAD, C // N_HEAD).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
            self.down_proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)

        def forward(self, x):
            return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))

    class TransformerBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm = nn.LayerNorm(N_EMBD, bias=False)
            self.attention = MultiHeadAttention()
            self.mlp_norm = nn.LayerNorm(N_EMBD, bias=False)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attention(self.attention_norm(x))
            return x + self.mlp(self.mlp_norm(x))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(VOCAB_SIZE, N_EMBD)
            self.position_embedding = nn.Embedding(BLOCK_SIZE, N_EMBD)
            self.blocks = nn.ModuleList(TransformerBlock() for _ in range(N_LAYER))
            self.final_norm = nn.LayerNorm(N_EMBD, bias=False)
            self.lm_head = nn.Linear(N_EMBD, VOCAB_SIZE, bias=False)
            self.lm_head.weight = self.token_embedding.weight  # weight tying

        def forward(self, idx, targets=None):
            x = self.token_embedding(idx) + self.position_embedding(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.final_norm(x))
            loss = None if targets is None else F.cross_entropy(logits.view(-1, VOCAB_SIZE), targets.view(-1))
            return logits, loss

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0):
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -BLOCK_SIZE:])
                probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
                idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
            return idx

    return TorchGPT()


def torch_candidates(torch, model, x, y, new_tokens):
    """The same closures for the PyTorch twin."""
    parameters = list(model.parameters())
    groups = [{"params": [p for p in parameters if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=BETAS)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    prompt = torch.zeros((1, 1), dtype=torch.long)

    def train_step():
        _, loss = model(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
        optimizer.step()

    def generate():
        model.generate(prompt, max_new_tokens=new_tokens)

    return train_step, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed training steps per framework (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--new-tokens", type=int, default=100, help="tokens per generate call (default 100)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_gpt_step: PyTorch is the reference here and is not installed (pip install torch)")
        return 1

    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB_SIZE, size=(BATCH_SIZE, BLOCK_SIZE), dtype=np.int64)
    y = rng.integers(0, VOCAB_SIZE, size=(BATCH_SIZE, BLOCK_SIZE), dtype=np.int64)
    tt_model, pt_model = tinytorch_model(), torch_model(torch)
    pt_model.load_state_dict({name: torch.from_numpy(array) for name, array in tt_model.state_dict().items()})
    # Same weights, same batch: the two models must agree before their speeds mean anything.
    with no_grad():
        tt_loss = tt_model(Tensor(x), Tensor(y))[1].item()
    with torch.no_grad():
        pt_loss = pt_model(torch.from_numpy(x), torch.from_numpy(y))[1].item()
    if abs(tt_loss - pt_loss) > 1e-4:
        print(f"bench_gpt_step: the models disagree (loss {tt_loss:.6f} vs {pt_loss:.6f}); not comparing speed")
        return 1
    tt_count = sum(p.numel() for p in tt_model.parameters())
    pt_count = sum(p.numel() for p in pt_model.parameters())
    tt_step, tt_generate = tinytorch_candidates(tt_model, x, y, args.new_tokens)
    pt_step, pt_generate = torch_candidates(torch, pt_model, x, y, args.new_tokens)

    print(f"GPT training step: {N_LAYER} layers, {N_HEAD} heads, n_embd {N_EMBD}, block {BLOCK_SIZE}, "
          f"batch {BATCH_SIZE}, vocab {VOCAB_SIZE}; AdamW + clip {GRAD_CLIP}")
    print(f"parameters: TinyTorch {tt_count:,}, PyTorch {pt_count:,}; same weights, loss on the batch "
          f"{tt_loss:.5f} (TinyTorch) and {pt_loss:.5f} (PyTorch)")
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}"
                        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"machine: {machine_summary()}; torch threads {torch.get_num_threads()}, {threads}")
    print()
    steps = compare({"tinytorch": tt_step, "pytorch": pt_step}, repeats=args.repeats, warmup=args.warmup)
    ratio = print_table(steps, baseline="pytorch", title="training step (forward, loss, backward, clip, AdamW)")
    tokens = BATCH_SIZE * BLOCK_SIZE
    for name, timing in steps.items():
        print(f"  {name}: {tokens / timing.median:,.0f} training tokens/s")
    verdict = "meets" if ratio["tinytorch"] <= GOAL else "misses"
    print(f"  TinyTorch / PyTorch = {ratio['tinytorch']:.2f}x ({verdict} the goal of at most {GOAL}x)")
    minutes = {name: 4000 * timing.median / 60 for name, timing in steps.items()}
    print(f"  the milestone's 4000 iterations at this speed: TinyTorch {minutes['tinytorch']:.1f} min, "
          f"PyTorch {minutes['pytorch']:.1f} min")
    print()

    generation = compare({"tinytorch": tt_generate, "pytorch": pt_generate}, repeats=3, warmup=1)
    print_table(generation, baseline="pytorch", title=f"generate {args.new_tokens} tokens from a 1-token prompt")
    for name, timing in generation.items():
        print(f"  {name}: {args.new_tokens / timing.median:,.0f} generated tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
