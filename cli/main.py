"""Entry point of the ``pigment-connect`` command.

Exit codes: 0 success, 1 some subjects failed, 2 bad usage or bad input (the message names the
file and the fix).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (atlases, check_gradients, config, connectome, features, fit, metrics, report, run, simulate, stats,
               synthesize, track, train_prior)

# the cohort runner first, then one command per stage in pipeline order, then the tools
SUBCOMMANDS = (run, report, config, fit, track, connectome, metrics, stats, features, synthesize, check_gradients,
               simulate, train_prior, atlases)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pigment-connect",
        description="Diffusion MRI to connectomes and network statistics, for cohorts.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from pigment_connect import __version__

        print(f"pigment-connect {__version__}")
        return 0
    if not hasattr(args, "execute"):
        parser.print_help()
        return 2
    from pigment_connect.errors import InputError, PigmentError

    try:
        return int(args.execute(args))
    except InputError as exc:
        print(f"pigment-connect: error: {exc}", file=sys.stderr)
        return 2
    except PigmentError as exc:
        print(f"pigment-connect: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
