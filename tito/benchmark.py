"""`tito benchmark`: module 19's suite over the milestone models, with PyTorch's equivalent when installed.

    tito benchmark mnist                       # the MNIST MLP: accuracy mode, then SingleStream
    tito benchmark mnist cifar10 --scenarios SingleStream MultiStream Server Offline
    tito benchmark mnist --system int8 my_models.py:build_int8 runs/mnist/int8.safetensors

Each model is benchmarked on its milestone's test split (from --data or $TINYTORCH_DATA),
next to any --system the learner adds (same dataset, same settings) and PyTorch's equivalent
of the float32 model, built from the same weights; the float32 TinyTorch model is the
reference of every ratio and its accuracy the baseline of the 99% rule. Everything is written
under --out/<model>/: each system's MLPerf-style logs, result.json, report.md, latency.png, and
the suite's suite.json, suite.md and pareto.png. The work is done by tinytorch.core.benchmarking.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tito.errors import TitoError
from tito.project import find_root

console = Console(highlight=False, soft_wrap=True)

# name -> (builder, checkpoint relative to the project root, dataset)
MILESTONE_SYSTEMS = {
    "mnist": ("milestones/mnist.py:build_mlp", "runs/mnist/mnist_best.safetensors", "mnist"),
    "cifar10": ("milestones/cifar10_model.py:build_cifar_cnn", "runs/cifar10/cifar10_best.safetensors", "cifar10"),
}


class BenchmarkCommandError(TitoError):
    """`tito benchmark` cannot run as asked; the message says what to change."""


def _settings(args):
    from tinytorch.core.benchmarking import BenchmarkSettings

    try:
        return BenchmarkSettings(min_duration_s=args.duration, min_query_count=args.queries,
                                 warmup_queries=args.warmup, seed=args.seed, latency_bound_ms=args.latency_bound,
                                 max_duration_s=max(args.duration * 20, 60.0))
    except ValueError as error:
        raise BenchmarkCommandError(str(error)) from None


def _torch_available():
    return importlib.util.find_spec("torch") is not None


def build_systems(root, model_name, checkpoint=None, extra=(), with_torch=True, threads=None):
    """The suite's systems for one milestone model: the float32 reference, the extras, PyTorch's."""
    from tinytorch.core.benchmarking import import_builder, load_system

    builder, default_checkpoint, _ = MILESTONE_SYSTEMS[model_name]
    checkpoint = Path(checkpoint) if checkpoint else root / default_checkpoint
    if not checkpoint.is_file():
        raise BenchmarkCommandError(
            f"no checkpoint at {checkpoint}: train it with `tito milestone run {model_name}`, "
            "or name one with --checkpoint")
    reference = load_system(builder, checkpoint, f"tinytorch {model_name}", root=root)
    systems = [reference]
    for name, spec, path in extra:
        if not Path(path).is_file():
            raise BenchmarkCommandError(f"--system {name}: no checkpoint at {path}")
        systems.append(load_system(spec, path, name, root=root))
    if with_torch and _torch_available():
        # by path: benchmarks/ is a folder of scripts in the project, not an installed package
        torch_system = import_builder("benchmarks/torch_equivalent.py:torch_system", root)
        systems.append(torch_system(reference.model, "pytorch", threads=threads))
    return systems


def run_benchmark(root, model_name, out, settings, scenarios, data=None, test_images=None, checkpoint=None,
                  extra=(), with_torch=True, threads=None):
    """Benchmark one milestone model's suite and write its files under `out`; returns (suite, paths)."""
    from tinytorch.core.benchmarking import milestone_test_split, run_suite, write_suite
    from tinytorch.core.dataloader import DatasetError

    systems = build_systems(root, model_name, checkpoint, extra, with_torch, threads)
    try:
        inputs, labels = milestone_test_split(MILESTONE_SYSTEMS[model_name][2], data, test_images)
    except (DatasetError, FileNotFoundError) as error:
        raise BenchmarkCommandError(str(error)) from None
    suite = run_suite(systems, inputs, labels, scenarios, settings)
    return suite, write_suite(suite, out)


def _show(suite, paths):
    table = Table(title=f"benchmark suite (ratios against {suite.reference}; all figures in {paths['report'].name})")
    for column in ("system", "valid", "accuracy", "p90 ms", "p99 ms", "bytes", "p90 ratio", "size ratio"):
        table.add_column(column, no_wrap=column == "system")
    ratios = suite.ratios()
    for result in suite.results:
        run = result.performance.get("SingleStream")
        ratio = ratios[result.name]
        table.add_row(result.name, "yes" if result.valid else "[red]NO[/red]",
                      "-" if result.accuracy is None else f"{result.accuracy.accuracy:.2%}",
                      *(("-",) * 2 if run is None else (f"{run.p90_ms:.4g}", f"{run.p99_ms:.4g}")),
                      "-" if result.size_bytes is None else f"{result.size_bytes:,}",
                      "-" if ratio["p90_latency"] is None else f"{ratio['p90_latency']:.2f}x",
                      "-" if ratio["size"] is None else f"{ratio['size']:.2f}x")
    console.print(table)
    for result in suite.results:
        for reason in result.invalid_reasons():
            console.print(f"  [red]{result.name} is invalid[/red]: {reason}", markup=True)
    console.print(f"Pareto front: {', '.join(suite.pareto())}", markup=False)
    console.print(f"report: {paths['report']}", markup=False)


def cmd_benchmark(args) -> int:
    root = find_root()
    models = args.models or ["mnist"]
    unknown = [m for m in models if m not in MILESTONE_SYSTEMS]
    if unknown:
        raise BenchmarkCommandError(f"unknown model {', '.join(unknown)}; choose from {', '.join(MILESTONE_SYSTEMS)}")
    if (args.checkpoint or args.system) and len(models) != 1:
        raise BenchmarkCommandError("--checkpoint and --system belong to one model: name exactly one")
    settings = _settings(args)
    out = Path(args.out) if args.out else root / "runs" / "benchmark"
    all_valid = True
    for model_name in models:
        console.print(f"[bold]benchmark {model_name}[/bold]: accuracy mode over the test split, then "
                      f"{', '.join(args.scenarios)} (at least {settings.min_duration_s:g} s and "
                      f"{settings.min_query_count} queries each)")
        suite, paths = run_benchmark(root, model_name, out / model_name, settings, tuple(args.scenarios), args.data,
                                     args.test_images, args.checkpoint, args.system or (), not args.no_torch,
                                     args.threads)
        _show(suite, paths)
        all_valid = all_valid and all(result.valid for result in suite.results)
    return 0 if all_valid else 1


def register(commands) -> None:
    """Add `tito benchmark` to tito's top-level subparsers object."""
    parser = commands.add_parser(
        "benchmark", help="MLPerf-style benchmark of the milestone models (accuracy, latency, size)",
        description="Accuracy mode over the test split, then each scenario in performance mode, for a "
                    "milestone model, any --system you add, and PyTorch's equivalent when it is installed.")
    parser.add_argument("models", nargs="*", metavar="MODEL", help=f"one of {', '.join(MILESTONE_SYSTEMS)} (default mnist)")
    parser.add_argument("--scenarios", nargs="+", default=["SingleStream"],
                        choices=["SingleStream", "MultiStream", "Server", "Offline"], help="default SingleStream")
    parser.add_argument("--duration", type=float, default=2.0, help="minimum seconds per scenario run (default 2)")
    parser.add_argument("--queries", type=int, default=100, help="minimum queries per run (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up queries (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query order (default 0)")
    parser.add_argument("--latency-bound", type=float, default=10.0, help="Server: p99 bound in ms (default 10)")
    parser.add_argument("--test-images", type=int, default=None, help="use the first N test images (default all)")
    parser.add_argument("--checkpoint", default=None, help="the float32 model's checkpoint (default the milestone's)")
    parser.add_argument("--system", nargs=3, action="append", metavar=("NAME", "BUILDER", "CHECKPOINT"),
                        help="add a system: a name, its builder (file.py:function or module:function), its checkpoint")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch's equivalent out")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's thread count (default its own)")
    parser.add_argument("--data", default=None, help="data folder (default $TINYTORCH_DATA)")
    parser.add_argument("--out", default=None, help="output folder (default runs/benchmark)")
    parser.set_defaults(handler=cmd_benchmark)
