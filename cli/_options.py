"""Option groups shared by subcommands (MRtrix3's "standard options")."""

from __future__ import annotations

import argparse
import logging

__all__ = ["add_subcommand", "add_standard_options", "configure_logging"]


def add_subcommand(subparsers, name: str, *, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand's parser, its examples (``epilog``) printed as written."""
    return subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def add_standard_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("standard options")
    group.add_argument("--nthreads", type=int, default=None, metavar="N",
                       help="threads for numba/torch kernels (default: all cores)")
    group.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output; default 0)")
    group.add_argument("--force", action="store_true", help="recompute outputs that already exist")
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="only errors; no progress bars")
    verbosity.add_argument("--verbose", action="store_true", help="debug messages")


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if args.nthreads is not None:
        import numba

        numba.set_num_threads(max(1, min(args.nthreads, numba.config.NUMBA_NUM_THREADS)))
