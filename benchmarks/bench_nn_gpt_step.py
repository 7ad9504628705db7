"""Benchmark: one training step of a GPT that a user writes from `nn` layers, TinyTorch against PyTorch.

The model is what a PyTorch user would write by hand: `nn.Embedding`, `nn.LayerNorm`,
`nn.Linear`, attention spelled out with `@`, a causal mask and `F.softmax`, and an MLP with the
exact `F.gelu` (not module 13's fused GPT). The size is nanoGPT's CPU configuration for
character-level Shakespeare (4 layers, 4 heads, n_embd 128, a 64-token context, batches of 12,
vocabulary 65, no biases, no dropout), trained with AdamW. One step:

    logits = model(x); loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    optimizer.zero_grad(); loss.backward(); optimizer.step()

Candidates, each timed alone in processes of its own (benchmarks/_timing.py):
  tinytorch        no kernel backend: every op runs its own module's NumPy code
  tinytorch+numpy  module 18's fused NumPy kernels behind the seam (`use_backend("numpy")`)
  tinytorch+numba  module 18's compiled kernels (only with the `accel` extra installed)
  pytorch          the same model, loaded with TinyTorch's initial weights, same first loss

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_nn_gpt_step.py [--repeats 10]

The thread counts are the environment's and are printed with the figures: on a shared two-core
machine a second BLAS or OpenMP thread often waits for a busy core, so set both to 1 to compare
the frameworks rather than the scheduler. PyTorch is needed only here; TinyTorch never imports it.
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

from _timing import compare, machine_summary, print_table

import tinytorch.core.autograd  # noqa: F401  (turns on Tensor.backward())
import tinytorch.nn.functional as F
from tinytorch import nn
from tinytorch.core import acceleration  # (registers the kernel backends)
from tinytorch.core.autograd import no_grad
from tinytorch.core.optimizers import AdamW
from tinytorch.core.tensor import Tensor, manual_seed, use_backend

VOCAB_SIZE, BLOCK_SIZE, N_LAYER, N_HEAD, N_EMBD, BATCH_SIZE = 65, 64, 4, 4, 128, 12
LEARNING_RATE, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 0.1
GOAL = 1.5  # a GPT from nn layers at most 1.5x PyTorch's step


def causal_mask():
    """0 on and below the diagonal, -inf above: added to the attention scores."""
    return np.triu(np.full((BLOCK_SIZE, BLOCK_SIZE), -np.inf, dtype=np.float32), k=1)


# ---- TinyTorch: the model as a user writes it ----------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(N_EMBD, bias=False)
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.ln_2 = nn.LayerNorm(N_EMBD, bias=False)
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
        self.mlp_proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)
        self.mask = Tensor(causal_mask())

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.c_attn(self.ln_1(x)).reshape(B, T, 3, N_HEAD, C // N_HEAD).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(C // N_HEAD)) + self.mask[:T, :T]
        y = F.softmax(scores, dim=-1) @ v
        x = x + self.c_proj(y.permute(0, 2, 1, 3).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NNGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB_SIZE, N_EMBD)
        self.wpe = nn.Embedding(BLOCK_SIZE, N_EMBD)
        self.h = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = nn.LayerNorm(N_EMBD, bias=False)
        self.lm_head = nn.Linear(N_EMBD, VOCAB_SIZE, bias=False)
        self.positions = Tensor(np.arange(BLOCK_SIZE))

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(self.positions[: idx.shape[1]])
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def tinytorch_step(model, x, y, backend):
    optimizer = AdamW(model.parameters(), lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY)
    inputs, targets = Tensor(x), Tensor(y.reshape(-1))

    def train_step():
        with use_backend(backend):
            loss = F.cross_entropy(model(inputs).reshape(-1, VOCAB_SIZE), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return train_step


# ---- PyTorch: the same model ---------------------------------------------------------------------
def torch_model(torch):
    nn_, F_ = torch.nn, torch.nn.functional

    class TorchBlock(nn_.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn_.LayerNorm(N_EMBD, bias=False)
            self.c_attn = nn_.Linear(N_EMBD, 3 * N_EMBD, bias=False)
            self.c_proj = nn_.Linear(N_EMBD, N_EMBD, bias=False)
            self.ln_2 = nn_.LayerNorm(N_EMBD, bias=False)
            self.c_fc = nn_.Linear(N_EMBD, 4 * N_EMBD, bias=False)
            self.mlp_proj = nn_.Linear(4 * N_EMBD, N_EMBD, bias=False)
            self.register_buffer("mask", torch.from_numpy(causal_mask()), persistent=False)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).view(B, T, 3, N_HEAD, C // N_HEAD).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(C // N_HEAD)) + self.mask[:T, :T]
            y = F_.softmax(scores, dim=-1) @ v
            x = x + self.c_proj(y.permute(0, 2, 1, 3).reshape(B, T, C))
            return x + self.mlp_proj(F_.gelu(self.c_fc(self.ln_2(x))))

    class TorchNNGPT(nn_.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn_.Embedding(VOCAB_SIZE, N_EMBD)
            self.wpe = nn_.Embedding(BLOCK_SIZE, N_EMBD)
            self.h = nn_.ModuleList(TorchBlock() for _ in range(N_LAYER))
            self.ln_f = nn_.LayerNorm(N_EMBD, bias=False)
            self.lm_head = nn_.Linear(N_EMBD, VOCAB_SIZE, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return TorchNNGPT()


def torch_step(torch, model, x, y):
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y.reshape(-1))

    def train_step():
        loss = torch.nn.functional.cross_entropy(model(inputs).reshape(-1, VOCAB_SIZE), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train_step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per process (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per candidate (default 3)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_nn_gpt_step: PyTorch is the reference here and is not installed (pip install torch)")
        return 1

    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB_SIZE, size=(BATCH_SIZE, BLOCK_SIZE), dtype=np.int64)
    y = rng.integers(0, VOCAB_SIZE, size=(BATCH_SIZE, BLOCK_SIZE), dtype=np.int64)
    backends = [None] + acceleration.backends()
    models = {}
    for backend in backends:
        manual_seed(0)
        models[backend] = NNGPT()
    pt_model = torch_model(torch)
    pt_model.load_state_dict({name: torch.from_numpy(a) for name, a in models[None].state_dict().items()
                              if not name.endswith("mask")}, strict=False)
    with torch.no_grad():
        pt_loss = torch.nn.functional.cross_entropy(pt_model(torch.from_numpy(x)).reshape(-1, VOCAB_SIZE),
                                                    torch.from_numpy(y.reshape(-1))).item()
    losses = {}
    for backend, model in models.items():
        with no_grad(), use_backend(backend):
            losses[backend] = F.cross_entropy(model(Tensor(x)).reshape(-1, VOCAB_SIZE), Tensor(y.reshape(-1))).item()
        if abs(losses[backend] - pt_loss) > 1e-4:
            print(f"bench_nn_gpt_step: backend {backend} disagrees with PyTorch (loss {losses[backend]:.6f} vs "
                  f"{pt_loss:.6f}); not comparing speed")
            return 1

    candidates = {("tinytorch" if b is None else f"tinytorch+{b}"): tinytorch_step(models[b], x, y, b) for b in backends}
    candidates["pytorch"] = torch_step(torch, pt_model, x, y)
    print(f"GPT from nn layers (exact F.gelu, F.softmax attention): {N_LAYER} layers, {N_HEAD} heads, "
          f"n_embd {N_EMBD}, block {BLOCK_SIZE}, batch {BATCH_SIZE}, vocab {VOCAB_SIZE}; AdamW")
    print(f"same weights: first loss {losses[None]:.5f} (TinyTorch) and {pt_loss:.5f} (PyTorch)")
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"machine: {machine_summary()}; torch threads {torch.get_num_threads()}, {threads}; load {os.getloadavg()}")
    steps = compare(candidates, repeats=args.repeats, warmup=args.warmup, rounds=args.rounds)
    ratio = print_table(steps, baseline="pytorch", title="training step (forward, loss, backward, AdamW)")
    best = min((name for name in ratio if name != "pytorch"), key=ratio.get)
    verdict = "meets" if ratio[best] <= GOAL else "misses"
    print(f"  fastest TinyTorch ({best}) / PyTorch = {ratio[best]:.2f}x ({verdict} the goal of at most {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
