"""Milestone `olympics`: a Torch Olympics entry that the validator accepts, MLPerf's way (2018).

MLPerf (Mattson, Reddi, Cheng, Kanter et al.; Training 2018, Inference 2019) made ML benchmark
results comparable by fixing the models, the data, the quality target (99% of the reference's
accuracy for the closed division) and the rules of measurement, and by auditing every submission.
This script is a competitor who enters two events of module 20, and the referee who checks them:

1. **CIFAR-10, closed division**: the cifar10 milestone's trained CNN, made small and fast with
   the Optimization tier (milestones/olympics_cnn.py): BatchNorm folded, weight-only integer
   codes (int8, and 4 bits for the layers that tolerate them), a graph-free inference path with
   memoized im2col buffers and, with numba installed (the `accel` extra), module 18's way of
   compiled kernels: each im2col pass takes the previous layer's ReLU and pooling along, and
   weight tiles are filled in one pass. Which layers get 4 bits is decided on held-out validation images,
   never the test split: the set of layers with the fewest 4-bit codes (each costs a table lookup
   per call) that makes the entry 4x smaller and loses at most 0.5 points there.
   The entry is submitted (`submit`), then validated (`validate`) with none of its figures
   trusted. The float32 model and the entry then take turns in SingleStream runs (module 19's
   load generator, one sample per query) for the p90 latency ratio.
2. **TinyGPT**: the tinygpt milestone's GPT with module 17's KV cache, submitted and validated
   (every greedy token identical to the float32 baseline's on prompts the validator draws).

    python milestones/olympics.py [--quick] [--seed N] [--data DIR] [--cifar-checkpoint FILE]
        [--gpt-checkpoint FILE] [--out DIR] [--rounds N]

Bars (full run): both submissions validated; the CIFAR entry >= 4x fewer bytes of state than the
float32 model (as the validator measures them), >= 2x lower p90 batch-1 latency (median of the
rounds), and >= 99% of its accuracy over the whole test split (recomputed by the validator).
`--quick` (the tests: fixture data, the cifar10 milestone's quick checkpoint, a small random GPT)
keeps the validation and size bars and asks only >= 1.2x for latency, stated as such.

Checkpoints: runs/cifar10/cifar10_best.safetensors (trained first by milestones/cifar10.py when
absent) and runs/tinygpt/tinygpt.safetensors (when absent, a GPT of its shape with random
weights, saved in --out: the cache's speed and the identical-tokens rule do not depend on what
the weights learned; the script says which). Outputs in --out (default runs/olympics): the
entry's checkpoint, the two submission folders and results.json.

Run it with one BLAS thread, as the latency figures assume, and with the `accel` extra installed
(`pip install -e ".[accel]"`): in four runs the compiled plan measured 2.07x-2.26x, the NumPy plan alone less (see README).
OPENBLAS_NUM_THREADS=1 python milestones/olympics.py
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from _common import ROOT, Milestone, run

from tinytorch.core.autograd import no_grad
from tinytorch.core.benchmarking import (
    BenchmarkSettings,
    benchmark,
    load_system,
    state_bytes,
)
from tinytorch.core.dataloader import DATA_ENV, DataLoader
from tinytorch.core.profiling import blas_threads
from tinytorch.core.tensor import manual_seed
from tinytorch.core.training import save_checkpoint
from tinytorch_base.files import write_atomic

STORY = """
MLPerf fixed what a benchmark result means: the same models and data, a quality target, rules of
measurement, and an audit. Here a CIFAR-10 CNN made 4x smaller and 2x faster, and a GPT decoding
with a KV cache, are submitted to the Torch Olympics and validated without trusting their figures.
"""
ENTRY_BUILDER = "milestones/olympics_cnn.py:build_entry"
CACHED_GPT_BUILDER = "tinytorch.olympics:build_cached_gpt"
BARS = {"full": {"bytes": 4.0, "latency": 2.0}, "quick": {"bytes": 4.0, "latency": 1.2}}
VALIDATION_BUDGET_POINTS = {"full": 0.5, "quick": 5.0}  # how much validation accuracy the 4-bit layers may cost
SETTINGS = {
    "full": {"benchmark": BenchmarkSettings(), "rounds": 3, "test_images": None, "cifar": "default",
             "generation": None},
    # quick: 0.5 s of queries after 50 warm-up ones. With 0.2 s after 5, a submission's claimed p90 was
    # once measured cold (0.56 ms) and the validator's three re-measurements all warm (0.39 ms): "not within 10%".
    "quick": {"benchmark": BenchmarkSettings(min_duration_s=0.5, min_query_count=30, warmup_queries=50), "rounds": 2,
              "test_images": None, "cifar": "quick",
              "generation": {"new_tokens": 24, "prompts": 2, "prompt_length": 6, "repeats": 3}},
}
QUICK_GPT = {"block_size": 32, "vocab_size": 11, "n_layer": 1, "n_head": 2, "n_embd": 32, "dropout": 0.0, "bias": False}


def main(argv=None) -> int:
    milestone = Milestone(
        "olympics",
        people="Peter Mattson, Vijay Janapa Reddi, Christine Cheng, David Kanter and the MLPerf consortium "
               "(MLPerf Training 2018, Inference 2019)",
        story=STORY,
    )
    parser = milestone.parser()
    parser.add_argument("--data", metavar="DIR", default=None,
                        help=f"data folder holding cifar-10-batches-py/ (default ${DATA_ENV})")
    parser.add_argument("--cifar-checkpoint", metavar="FILE",
                        default=str(ROOT / "runs" / "cifar10" / "cifar10_best.safetensors"),
                        help="the trained CIFAR-10 CNN (default runs/cifar10/cifar10_best.safetensors; trained first "
                             "if absent)")
    parser.add_argument("--gpt-checkpoint", metavar="FILE", default=str(ROOT / "runs" / "tinygpt" / "tinygpt.safetensors"),
                        help="the tinygpt milestone's checkpoint (default runs/tinygpt/tinygpt.safetensors)")
    parser.add_argument("--out", metavar="DIR", default=str(ROOT / "runs" / "olympics"),
                        help="folder for the entry, the submissions and results.json (default runs/olympics)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating latency rounds (default 3; quick 2)")
    args = milestone.parse_args(parser, argv)
    return compete(milestone, args)


def compete(milestone, args):
    import cifar10
    from optimized import BadCheckpoint, trained_checkpoint

    mode = "quick" if args.quick else "full"
    settings, bars = SETTINGS[mode], BARS[mode]
    rounds = args.rounds or settings["rounds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads, source = blas_threads()
    milestone.step(f"BLAS threads: {threads} ({source}; OPENBLAS_NUM_THREADS=1 is what the bars assume)")
    if args.quick:
        milestone.step(f"bars for --quick: both submissions validated, >= {bars['bytes']}x fewer bytes, >= "
                       f"{bars['latency']}x lower p90 latency (the full run asks 2x), >= 99% of the accuracy")
    try:
        checkpoint, how = trained_checkpoint(milestone, args.cifar_checkpoint, "cifar10", cifar10.main, args.quick,
                                             args.data)
    except BadCheckpoint as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    milestone.step(f"float32 CIFAR-10 CNN: {checkpoint} ({how})")
    results = {"quick": args.quick, "blas_threads": threads}
    results["cifar10"] = cifar_entry(milestone, args, checkpoint, out, settings, bars, rounds, mode)
    results["tinygpt"] = tinygpt_entry(milestone, args, out, settings)
    write_atomic(out / "results.json", json.dumps(results, indent=2, default=float) + "\n")
    milestone.step(f"wrote {out / 'results.json'}")
    return milestone.finish()


# ---- CIFAR-10, closed division -------------------------------------------------------------------
def validation_accuracy(model, dataset):
    """Top-1 accuracy of `model` on a dataset of (image, label) pairs, batches of 500."""
    correct = total = 0
    with no_grad():
        for images, labels in DataLoader(dataset, batch_size=500):
            correct += int((model(images).numpy().argmax(axis=1) == labels.numpy()).sum())
            total += len(labels)
    return correct / total


def choose_four_bit_layers(milestone, float_model, validation, budget_points, target_ratio):
    """Layers to store at 4 bits so that the entry holds target_ratio times fewer bytes than float32.

    Among the sets of layers that reach the ratio, the one with the fewest 4-bit codes wins (a
    packed code costs a table lookup on every call), provided the entry loses at most
    `budget_points` of validation accuracy against the all-int8 entry; the sets are tried in that
    order and the first that holds is kept. Every layer's sensitivity alone is measured and
    printed too. Returns (bits, record): bits maps layer names to 4 ({} if no set qualifies).
    """
    from olympics_cnn import WeightCodes, make_entry

    float_bytes = state_bytes(float_model)
    int8 = make_entry(float_model)
    int8_accuracy = validation_accuracy(int8, validation)
    weights = {name: int(np.prod(layer.weight_shape_)) for name, layer in int8.named_children()
               if isinstance(layer, WeightCodes)}
    table = []
    for name, count in weights.items():
        entry = make_entry(float_model, {name: 4})
        table.append({"layer": name, "weights": count, "accuracy": validation_accuracy(entry, validation),
                      "bytes_saved": state_bytes(int8) - state_bytes(entry)})
    milestone.step(f"validation accuracy ({len(validation)} held-out training images): float32 "
                   f"{validation_accuracy(float_model, validation):.2%}, int8 entry {int8_accuracy:.2%} "
                   f"({float_bytes / state_bytes(int8):.3f}x fewer bytes)")
    for row in table:
        milestone.step(f"  layer {row['layer']:>2} ({row['weights']:,} weights) at 4 bits alone: "
                       f"{row['accuracy']:.2%}, {row['bytes_saved']:,} bytes saved")
    record = {"int8_validation_accuracy": int8_accuracy, "budget_points": budget_points, "layers": table, "tried": []}
    subsets = sorted((c for size in range(1, len(weights) + 1) for c in itertools.combinations(weights, size)),
                     key=lambda c: sum(weights[name] for name in c))
    for subset in subsets:
        entry = make_entry(float_model, dict.fromkeys(subset, 4))
        if float_bytes / state_bytes(entry) < target_ratio:
            continue
        accuracy = validation_accuracy(entry, validation)
        record["tried"].append({"layers": list(subset), "accuracy": accuracy})
        if 100 * (int8_accuracy - accuracy) <= budget_points + 1e-9:  # 1e-9: float rounding of the difference
            return dict.fromkeys(subset, 4), record
    return {}, record


def latency_rounds(systems, inputs, settings, rounds):
    """SingleStream p90 (ms) of each system, taking turns for `rounds` rounds: {name: [p90 per round]}."""
    p90 = {name: [] for name in systems}
    for round_number in range(rounds):
        for name, system in systems.items():
            result = benchmark(system, inputs, settings=BenchmarkSettings(**{**asdict(settings),
                                                                             "seed": settings.seed + round_number}))
            p90[name].append(result.performance["SingleStream"].p90_ms)
    return p90


def cifar_entry(milestone, args, checkpoint, out, settings, bars, rounds, mode):
    import cifar10
    from cifar10_model import build_cifar_cnn
    from olympics_cnn import make_entry
    from optimized import load_model

    from tinytorch.core.benchmarking import milestone_test_split
    from tinytorch.olympics import submit, validate

    float_model, _ = load_model(build_cifar_cnn, checkpoint, "cifar10 milestone's CNN")
    _, validation, _ = cifar10.cifar_splits(args.data, False, args.seed, cifar10.SETTINGS[settings["cifar"]])
    bits, sensitivity = choose_four_bit_layers(milestone, float_model, validation, VALIDATION_BUDGET_POINTS[mode],
                                               bars["bytes"])
    entry = make_entry(float_model, bits)
    milestone.step(f"entry: 4 bits for layers {sorted(bits) or 'none'}, int8 for the others; "
                   f"{state_bytes(float_model) / state_bytes(entry):.3f}x fewer bytes of state")
    plan = "the compiled plan" if entry.compiled else "the NumPy plan"
    milestone.step(f"inference: {plan} " + (
        "(numba: im2col with ReLU and pooling in one pass, one-pass weight tiles)" if entry.compiled else
        '(numba is not installed; the compiled plan needs the accel extra: pip install -e ".[accel]")'))
    entry_path = save_checkpoint(out / "cifar10_entry.safetensors", entry)
    folder = out / "cifar10-closed"
    if folder.exists():
        shutil.rmtree(folder)  # a submission folder is written once; this run replaces the last one
    benchmark_settings = settings["benchmark"]
    manual_seed(args.seed)
    submit("cifar10-closed", entry_path, folder, builder=ENTRY_BUILDER, baseline=checkpoint, data=args.data,
           root=ROOT, submitter="olympics milestone", settings=benchmark_settings, test_images=settings["test_images"],
           description="the cifar10 milestone's CNN: BatchNorm folded, weight-only int8 codes with 4-bit layers "
                       f"{sorted(bits)}, graph-free inference, {plan} (milestones/olympics_cnn.py)")
    milestone.step(f"submitted to {folder}; validating it")
    verdict = validate(folder, data=args.data, root=ROOT, baseline=checkpoint, test_images=settings["test_images"])
    for check in verdict.checks:
        milestone.step(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.message}")
    measured = verdict.measured
    inputs, _ = milestone_test_split("cifar10", args.data, settings["test_images"])
    systems = {"float32": load_system("milestones/cifar10_model.py:build_cifar_cnn", checkpoint, "float32", root=ROOT),
               "entry": load_system(ENTRY_BUILDER, folder / "model.safetensors", "entry", root=ROOT)}
    p90 = latency_rounds(systems, inputs, benchmark_settings, rounds)
    medians = {name: float(np.median(values)) for name, values in p90.items()}
    speedup = medians["float32"] / medians["entry"]
    print(f"\nCIFAR-10 closed division, SingleStream p90 batch-1 latency ({rounds} alternating rounds, "
          f"{blas_threads()[0]} BLAS thread(s)):")
    for name, values in p90.items():
        print(f"  {name:<8} " + "  ".join(f"{v:.3f}" for v in values) + f"  ms  (median {medians[name]:.3f} ms)")
    byte_ratio = measured.get("baseline_state_bytes", 0) / max(measured.get("state_bytes", 0) or 1, 1)
    accuracy, baseline_accuracy = measured.get("accuracy", 0.0), measured.get("baseline_accuracy", 1.0)
    print()
    milestone.check("CIFAR-10 closed-division submission validated", "yes" if verdict.ok else
                    "no: " + "; ".join(c.name for c in verdict.failures()), "all checks pass", verdict.ok)
    milestone.check("bytes of state, float32 / entry (validator-measured)",
                    f"{byte_ratio:.3f}x ({measured.get('baseline_state_bytes', 0):,} / {measured.get('state_bytes', 0):,})",
                    f">= {bars['bytes']}x", byte_ratio >= bars["bytes"])
    milestone.check("p90 batch-1 latency, float32 / entry", f"{speedup:.2f}x ({medians['float32']:.3f} / "
                    f"{medians['entry']:.3f} ms)", f">= {bars['latency']}x", speedup >= bars["latency"])
    ratio = accuracy / baseline_accuracy if baseline_accuracy else 0.0
    milestone.check("test accuracy, entry / float32 (validator-recomputed)",
                    f"{ratio:.2%} ({accuracy:.2%} / {baseline_accuracy:.2%})", ">= 99%", ratio >= 0.99)
    return {"bits": bits, "sensitivity": sensitivity, "validated": verdict.ok, "measured": measured,
            "p90_ms": p90, "speedup_p90": speedup, "bytes_ratio": byte_ratio, "submission": str(folder)}


# ---- TinyGPT -------------------------------------------------------------------------------------
def gpt_checkpoint(milestone, path, out, quick, seed):
    """(checkpoint, what it is): the tinygpt milestone's file, or a GPT of its shape with random weights saved in out."""
    from tinytorch.core.optimizers import AdamW
    from tinytorch.core.transformer import GPT, GPTConfig

    path = Path(path)
    if path.exists() and not quick:
        return path, f"the tinygpt checkpoint {path} (trained weights)"
    config = GPTConfig(**QUICK_GPT) if quick else GPTConfig(bias=False)
    manual_seed(seed)
    model = GPT(config)
    rng = np.random.default_rng(seed)  # weights of scale 0.5 make greedy decoding decisive, like trained ones
    model.load_state_dict({k: (v + 0.5 * rng.standard_normal(v.shape)).astype(v.dtype)
                           for k, v in model.state_dict().items()})
    vocabulary = "".join(chr(ord("a") + i % 26) for i in range(config.vocab_size))
    written = save_checkpoint(out / "tinygpt_random.safetensors", model, AdamW(model.parameter_groups(0.1)),
                              epoch=0, history=[], extra={"milestone": "tinygpt", "vocabulary": vocabulary,
                                                          "config": asdict(config)})
    why = "--quick" if quick else f"{path} is absent"
    return written, (f"a module 13 GPT with random weights ({why}): {config.n_layer} layer(s), {config.n_head} heads, "
                     f"n_embd {config.n_embd}, block_size {config.block_size}")


def tinygpt_entry(milestone, args, out, settings):
    from tinytorch.olympics import GenerationSettings, submit, validate

    checkpoint, what = gpt_checkpoint(milestone, args.gpt_checkpoint, out, args.quick, args.seed)
    milestone.step(f"TinyGPT event: {what}; the entry is the same weights decoding with module 17's KV cache")
    generation = GenerationSettings(**settings["generation"]) if settings["generation"] else None
    folder = out / "tinygpt"
    if folder.exists():
        shutil.rmtree(folder)
    submit("tinygpt", checkpoint, folder, builder=CACHED_GPT_BUILDER, baseline=checkpoint, root=ROOT,
           submitter="olympics milestone", description="module 13's GPT with module 17's KV cache",
           generation=generation)
    verdict = validate(folder, root=ROOT, baseline=checkpoint, generation=generation)
    for check in verdict.checks:
        milestone.step(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.message}")
    measured = verdict.measured
    speedup = measured.get("tokens_per_s", 0.0) / max(measured.get("baseline_tokens_per_s", 0.0), 1e-12)
    milestone.check("TinyGPT submission with the KV cache validated (identical greedy tokens)",
                    ("yes" if verdict.ok else "no: " + "; ".join(c.name for c in verdict.failures()))
                    + f"; {measured.get('tokens_per_s', 0):,.0f} tokens/s against the baseline's "
                      f"{measured.get('baseline_tokens_per_s', 0):,.0f} ({speedup:.2f}x)",
                    "all checks pass", verdict.ok)
    return {"model": what, "validated": verdict.ok, "measured": measured, "speedup": speedup,
            "submission": str(folder)}


if __name__ == "__main__":
    run(main, "olympics")
