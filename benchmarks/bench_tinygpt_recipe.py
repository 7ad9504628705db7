"""Benchmark: the tinygpt milestone's whole training recipe, TinyTorch against PyTorch, wall time and loss.

Issue goal: the same validation loss, with TinyTorch's wall time at most 1.2x PyTorch's for the same
recipe. The recipe is milestones/tinygpt.py's full setting (nanoGPT's CPU configuration): module
13's GPT (4 layers, 4 heads, n_embd 128, block 64, no bias, no dropout) on Tiny Shakespeare,
batches of 12 random windows, AdamW (betas 0.9/0.99, weight decay 0.1 on 2-D weights), gradient
clipping at 1.0, 100 warmup steps then a cosine from 1e-3 to 1e-4 over 4000 iterations. PyTorch
trains the twin of benchmarks/bench_gpt_step.py from TinyTorch's initial weights, on the same
batches (the milestone's get_batch with the same seed) and the same learning-rate schedule;
TinyTorch runs the milestone's own `train` loop (its interim evaluations off, as PyTorch has none).
Then both report the validation loss over the same 200 windows, and the seconds of the training loop.

Each framework trains in a process of its own (one after the other, never at the same time), so
neither's thread pool spins while the other works; the thread counts come from the environment.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_tinygpt_recipe.py [--iters 4000]
        [--backend numba] [--eval-batches 200]

It needs PyTorch (the reference) and Tiny Shakespeare in $TINYTORCH_DATA. A full run takes about
ten minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "milestones", ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

GOAL = 1.2
SEED = 0


def recipe_data():
    """(train ids, validation ids, vocabulary size), tokenised as the milestone does."""
    from tinygpt import load_text

    from tinytorch.core.tokenization import CharTokenizer

    train_text, val_text, _ = load_text(None, False)
    tokenizer = CharTokenizer.from_text(train_text + val_text)
    return (np.array(tokenizer.encode(train_text), dtype=np.int64), np.array(tokenizer.encode(val_text), dtype=np.int64),
            tokenizer.vocab_size)


def schedule(settings):
    """The milestone's CosineWarmupLR as a function of the step, for PyTorch's LambdaLR (a factor of the base rate)."""
    warmup, total, lr, min_lr = settings["warmup"], settings["iters"], settings["lr"], settings["min_lr"]

    def factor(t):
        if t < warmup:
            return (t + 1) / warmup
        progress = min(1.0, (t - warmup) / (total - warmup))
        return (min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2) / lr

    return factor


def run_tinytorch(settings, backend):
    """The milestone's own training loop (milestones/tinygpt.py's train), without its interim evaluations."""
    import bench_gpt_step
    from tinygpt import BETAS, WEIGHT_DECAY, evaluate, train

    import tinytorch.core.acceleration  # noqa: F401  (registers the backends)
    from tinytorch.core.optimizers import AdamW, CosineWarmupLR
    from tinytorch.core.tensor import use_backend

    train_ids, val_ids, vocab = recipe_data()
    model = bench_gpt_step.tinytorch_model()
    optimizer = AdamW(model.parameter_groups(WEIGHT_DECAY), lr=settings["lr"], betas=BETAS)
    scheduler = CosineWarmupLR(optimizer, warmup_steps=settings["warmup"], total_steps=settings["iters"],
                               min_lr=settings["min_lr"])
    with use_backend(backend):
        start = time.perf_counter()
        history = train(model, optimizer, scheduler, train_ids, val_ids, {**settings, "eval_every": 0}, SEED,
                        log=lambda line: None)
        seconds = time.perf_counter() - start
        val = evaluate(model, val_ids, settings["block_size"], settings["batch_size"], settings["eval_batches"], SEED + 1)
    return {"seconds": seconds, "val_loss": val, "last_train_loss": history[-1]["train_loss"], "vocab": vocab}


def run_pytorch(settings):
    import bench_gpt_step
    import torch
    from tinygpt import BETAS, GRAD_CLIP, WEIGHT_DECAY, get_batch

    train_ids, val_ids, vocab = recipe_data()
    ours = bench_gpt_step.tinytorch_model()  # the same initial weights
    model = bench_gpt_step.torch_model(torch)
    model.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in ours.state_dict().items()})
    parameters = list(model.parameters())
    groups = [{"params": [p for p in parameters if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=settings["lr"], betas=BETAS)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(settings))
    rng, losses = np.random.default_rng(SEED), []
    start = time.perf_counter()
    for _ in range(settings["iters"]):  # milestones/tinygpt.py's train, in PyTorch
        x, y = get_batch(train_ids, settings["block_size"], settings["batch_size"], rng)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())  # the milestone's loop reads every loss for its log
    seconds = time.perf_counter() - start
    eval_rng, total = np.random.default_rng(SEED + 1), 0.0
    model.eval()
    with torch.no_grad():
        for _ in range(settings["eval_batches"]):
            x, y = get_batch(val_ids, settings["block_size"], settings["batch_size"], eval_rng)
            total += model(torch.from_numpy(x), torch.from_numpy(y))[1].item()
    return {"seconds": seconds, "val_loss": total / settings["eval_batches"], "last_train_loss": losses[-1],
            "vocab": vocab, "torch": torch.__version__}


def main(argv=None) -> int:
    from tinygpt import FULL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=FULL["iters"], help=f"training iterations (default {FULL['iters']})")
    parser.add_argument("--eval-batches", type=int, default=FULL["eval_batches"],
                        help=f"validation windows of the final loss (default {FULL['eval_batches']})")
    parser.add_argument("--backend", default=None, help="a module 18 kernel backend for TinyTorch (numpy, numba)")
    parser.add_argument("--worker", choices=("tinytorch", "pytorch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters <= FULL["warmup"]:
        parser.error(f"--iters must be more than the {FULL['warmup']} warmup steps")
    settings = {**FULL, "iters": args.iters, "eval_batches": args.eval_batches}
    if args.worker:
        result = run_tinytorch(settings, args.backend) if args.worker == "tinytorch" else run_pytorch(settings)
        print(json.dumps(result))
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_tinygpt_recipe: PyTorch is the reference here and is not installed (pip install torch==2.13.0)")
        return 1
    threads = ", ".join(f"{n}={os.environ.get(n, 'unset')}" for n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"tinygpt recipe, {args.iters} iterations, each framework in its own process; {threads}; "
          f"load {os.getloadavg()[0]:.1f}")
    results = {}
    for worker in ("tinytorch", "pytorch"):
        command = [sys.executable, __file__, "--worker", worker, "--iters", str(args.iters),
                   "--eval-batches", str(args.eval_batches)] + (["--backend", args.backend] if args.backend else [])
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            return done.returncode
        results[worker] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[worker]
        label = worker + (f"+{args.backend}" if worker == "tinytorch" and args.backend else "")
        print(f"  {label:<16} {r['seconds']:8.1f} s  {1e3 * r['seconds'] / args.iters:6.1f} ms/iter  "
              f"validation loss {r['val_loss']:.4f} nats/char ({args.eval_batches} windows)")
    ratio = results["tinytorch"]["seconds"] / results["pytorch"]["seconds"]
    gap = results["tinytorch"]["val_loss"] - results["pytorch"]["val_loss"]
    print(f"wall time TinyTorch / PyTorch: {ratio:.2f}x ({'meets' if ratio <= GOAL else 'misses'} the goal of at most "
          f"{GOAL}x); validation loss difference {gap:+.4f} nats/char")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
