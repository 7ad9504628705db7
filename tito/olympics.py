"""`tito olympics`: the Torch Olympics (module 20): events, submit, validate, leaderboard.

    tito olympics events                                   # every event and its written rules
    tito olympics submit mnist --model runs/mnist/int8.safetensors --builder my_int8.py:build --submitter ada
    tito olympics submit tinygpt --builder tinytorch.olympics:build_cached_gpt --submitter kv   # KV-cache decoding
    tito olympics validate runs/olympics/mnist-ada         # trusts none of the submission's figures
    tito olympics leaderboard runs/olympics/*              # ranks the valid ones; writes leaderboard.html

The work is done by tinytorch.olympics; these handlers parse arguments and print.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tito.errors import TitoError
from tito.project import find_root

console = Console(highlight=False, soft_wrap=True)


class OlympicsCommandError(TitoError):
    """`tito olympics` cannot run as asked; the message says what to change."""


def _library():
    from tinytorch import olympics

    return olympics


def _settings(args):
    from tinytorch.core.benchmarking import BenchmarkSettings

    try:
        return BenchmarkSettings(min_duration_s=args.duration, min_query_count=args.queries, warmup_queries=args.warmup,
                                 seed=args.seed, max_duration_s=max(args.duration * 20, 60.0))
    except ValueError as error:
        raise OlympicsCommandError(str(error)) from None


def _generation(args):
    """The GenerationSettings the flags ask for (None: the event's own), for a generation event such as tinygpt."""
    from tinytorch.olympics import GenerationSettings

    given = {name: getattr(args, name) for name in ("new_tokens", "prompts", "prompt_length", "repeats")
             if getattr(args, name, None) is not None}
    if not given:
        return None
    try:
        return GenerationSettings(**given)
    except ValueError as error:
        raise OlympicsCommandError(str(error)) from None


def _data_errors():
    from tinytorch.core.dataloader import DatasetError

    return (DatasetError, FileNotFoundError)


def cmd_events(args) -> int:
    olympics = _library()
    for event in olympics.EVENTS.values():
        data = (f"prompts drawn by the validator, {event.generation.new_tokens} new tokens each"
                if event.kind == "generation" else f"{event.dataset} test split")
        console.print(f"[bold]{event.name}[/bold]: {escape(event.title)} ({event.division} division, "
                      f"{escape(data)}; baseline {event.baseline_checkpoint})")
        for rule in event.rules:
            console.print(f"  - {rule}", markup=False)
        console.print(f"  ranked by {event.ranked_by}", markup=False)
    return 0


def cmd_submit(args) -> int:
    olympics = _library()
    root = find_root()
    try:
        event = olympics.get_event(args.event)
        checkpoint = Path(args.model) if args.model else root / event.baseline_checkpoint
        out = Path(args.out) if args.out else root / "runs" / "olympics" / f"{event.name}-{args.submitter}"
        manifest = olympics.submit(event, checkpoint, out, builder=args.builder, baseline=args.baseline, data=args.data,
                                   root=root, submitter=args.submitter, description=args.description,
                                   settings=_settings(args), generation=_generation(args))
    except olympics.SubmissionError as error:
        raise OlympicsCommandError(str(error)) from None
    except _data_errors() as error:
        raise OlympicsCommandError(str(error)) from None
    console.print(f"submission for {event.name} written to {manifest.parent}", markup=False)
    console.print(f"check it with: tito olympics validate {manifest.parent}", markup=False)
    return 0


def _validate(olympics, root, folder, args):
    try:
        return olympics.validate(folder, data=args.data, root=root, baseline=args.baseline,
                                 rerun_samples=args.rerun_samples, latency_tolerance=args.latency_tolerance,
                                 attempts=args.attempts, seed=args.seed, generation=_generation(args))
    except olympics.SubmissionError as error:
        verdict = olympics.Validation(Path(folder))
        verdict.add("format", False, str(error))
        return verdict
    except _data_errors() as error:
        raise OlympicsCommandError(f"the validator needs the event's held-out labels: {error}") from None


def cmd_validate(args) -> int:
    olympics = _library()
    root = find_root()
    verdict = _validate(olympics, root, Path(args.folder), args)
    for check in verdict.checks:
        mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: {escape(check.message)}")
    if verdict.ok:
        console.print(f"[green]VALID[/green]: {escape(str(args.folder))}")
        return 0
    console.print(f"[red]INVALID[/red]: {escape(str(args.folder))} ({len(verdict.failures())} check(s) failed)")
    return 1


def cmd_leaderboard(args) -> int:
    olympics = _library()
    root = find_root()
    verdicts = [_validate(olympics, root, Path(folder), args) for folder in args.folders]
    out = Path(args.html) if args.html else root / "runs" / "olympics" / "leaderboard.html"
    rows, path = olympics.write_leaderboard(verdicts, out)
    table = Table(title="Torch Olympics leaderboard (validator's measurements)")
    valid = [row for row in rows if row["valid"]]
    figures = [(header, key, spec) for header, key, spec in
               (("accuracy", "accuracy", ".2%"), ("p90 ms", "p90_ms", ".4g"), ("tokens/s", "tokens_per_s", ".4g"),
                ("speedup", "speedup", ".2f"), ("state bytes", "state_bytes", ","), ("x fewer bytes", "size_ratio", ".2f"))
               if key in ("state_bytes", "size_ratio") or any(row[key] is not None for row in valid)]  # the events' own
    for column in ("event", "rank", "submitter", *(header for header, _, _ in figures)):
        table.add_column(column)
    for row in valid:
        table.add_row(row["event"], str(row["rank"]), escape(str(row["submitter"])),
                      *(olympics.format_figure(row[key], spec) for _, key, spec in figures))
    console.print(table)
    for row in rows:
        if not row["valid"]:
            console.print(f"[red]not ranked[/red] {escape(row['folder'])}: {escape(row['reason'])}")
    console.print(f"leaderboard page: {path}", markup=False)
    return 0 if any(row["valid"] for row in rows) else 1


def _benchmark_arguments(parser, duration=2.0, queries=100):
    parser.add_argument("--duration", type=float, default=duration, help=f"minimum seconds of the run (default {duration:g})")
    parser.add_argument("--queries", type=int, default=queries, help=f"minimum queries (default {queries})")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up queries (default 10)")


def _generation_arguments(parser):
    parser.add_argument("--new-tokens", type=int, default=None, help="generation events: new tokens per prompt "
                                                                     "(default the event's: 200 for tinygpt)")
    parser.add_argument("--prompts", type=int, default=None, help="generation events: prompts drawn (default 3)")
    parser.add_argument("--prompt-length", type=int, default=None, help="generation events: tokens per prompt (default 8)")
    parser.add_argument("--repeats", type=int, default=None, help="generation events: timed repeats (default 5)")


def _validation_arguments(parser):
    parser.add_argument("--data", default=None, help="the validator's data folder with the held-out labels "
                                                     "(default $TINYTORCH_DATA)")
    parser.add_argument("--baseline", default=None, help="the event's official float32 checkpoint (default the event's)")
    parser.add_argument("--rerun-samples", type=int, default=64, help="TEST01: samples re-run (default 64)")
    parser.add_argument("--latency-tolerance", type=float, default=0.10,
                        help="relative tolerance of the speed claim: TEST01 p90, or tokens/s (default 0.10)")
    parser.add_argument("--attempts", type=int, default=3, help="speed re-measurements before failing (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the re-run subset or the prompts "
                                                               "(default: unpredictable)")
    _generation_arguments(parser)


def register(commands) -> None:
    """Add `tito olympics` to tito's top-level subparsers object."""
    olympics = commands.add_parser("olympics", help="the Torch Olympics: events, submit, validate, leaderboard")
    sub = olympics.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    sub.add_parser("events", help="every event and its rules").set_defaults(handler=cmd_events)

    submit = sub.add_parser("submit", help="benchmark a model for an event and write its submission folder")
    submit.add_argument("event", help="the event, e.g. mnist (see `tito olympics events`)")
    submit.add_argument("--model", default=None, help="the model's checkpoint (default the event's float32 baseline)")
    submit.add_argument("--builder", default=None, help="file.py:function or module:function that builds the model "
                                                        "(default the milestone's)")
    submit.add_argument("--baseline", default=None, help="the float32 baseline checkpoint (default the event's)")
    submit.add_argument("--submitter", default="anonymous", help="your name or team")
    submit.add_argument("--description", default="", help="what you did to the model")
    submit.add_argument("--data", default=None, help="data folder (default $TINYTORCH_DATA)")
    submit.add_argument("--out", default=None, help="the submission folder (default runs/olympics/EVENT-SUBMITTER)")
    submit.add_argument("--seed", type=int, default=0, help="seed of the query order or the prompts (default 0)")
    _benchmark_arguments(submit)
    _generation_arguments(submit)
    submit.set_defaults(handler=cmd_submit)

    validate = sub.add_parser("validate", help="check a submission; trusts none of its figures")
    validate.add_argument("folder", help="the submission folder")
    _validation_arguments(validate)
    validate.set_defaults(handler=cmd_validate)

    leaderboard = sub.add_parser("leaderboard", help="validate submissions, rank the valid ones, write an HTML page")
    leaderboard.add_argument("folders", nargs="+", metavar="DIR", help="submission folders")
    leaderboard.add_argument("--html", default=None, help="the page to write (default runs/olympics/leaderboard.html)")
    _validation_arguments(leaderboard)
    leaderboard.set_defaults(handler=cmd_leaderboard)
