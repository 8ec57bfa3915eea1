"""Option groups shared by subcommands (MRtrix3's "standard options"), help formatting, logging."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap

__all__ = ["HelpFormatter", "add_subcommand", "add_standard_options", "add_force_option", "refuse_overwrite",
           "configure_logging", "configure_threads"]

LOGGER = "pigment_connect"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that in descriptions and epilogs an indented line (an example
    command) is printed as written; unindented paragraphs are wrapped to the terminal width."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent, subsequent_indent=indent))
                paragraph.clear()

        for line in textwrap.dedent(text).splitlines():
            if not line.strip():
                flush()
                out.append("")
            elif re.match(r"\s", line) or line.rstrip().endswith(":"):  # example lines and headings as written
                flush()
                out.append(indent + line)
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(out)


def add_subcommand(subparsers, name: str, *, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand's parser: description wrapped, examples (``epilog``) printed as written."""
    return subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                 formatter_class=HelpFormatter)


def add_standard_options(parser: argparse.ArgumentParser, *, seed_default: int | None = 0) -> None:
    """``--nthreads``, ``--seed``, ``-v``, ``--quiet``. ``seed_default=None``: an unset seed
    is None, so that a configuration file's seed is not overridden."""
    group = parser.add_argument_group("standard options")
    group.add_argument("--nthreads", type=int, default=None, metavar="N",
                       help="threads for the numba and torch kernels (default: all cores)")
    group.add_argument("--seed", type=int, default=seed_default, help="random seed (same seed, same output; default 0)")
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="errors only; no progress bars")
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="-v: progress messages (INFO); -vv: debug messages")


def add_force_option(parser: argparse.ArgumentParser) -> None:
    """``--force``: replace outputs that already exist (refused otherwise)."""
    parser.add_argument("--force", action="store_true", help="overwrite outputs that already exist")


def refuse_overwrite(paths, force: bool) -> None:
    """Raise :class:`~pigment_connect.errors.InputError` (exit 2) naming the first of ``paths``
    that exists, unless ``force``; so that no command silently replaces earlier results."""
    from pathlib import Path

    from pigment_connect.errors import InputError

    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise InputError("the output exists already.", file=existing[0],
                         fix="give --force to overwrite it, or choose another output.")


class _TqdmHandler(logging.Handler):
    """Log records printed through ``tqdm.write``, so that they never break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def configure_logging(args: argparse.Namespace) -> None:
    """Show the ``pigment_connect`` logger's messages at the level the flags ask for (default:
    warnings and errors; ``-v`` INFO, ``-vv`` DEBUG; ``--quiet`` errors only). Other libraries'
    loggers and the root logger are left alone. Also applies ``--nthreads``."""
    level = (logging.ERROR if args.quiet else logging.DEBUG if args.verbose >= 2
             else logging.INFO if args.verbose == 1 else logging.WARNING)
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _TqdmHandler)]:
        logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(min(level, logging.INFO))  # INFO still reaches each series' log file (run)
    logger.propagate = False  # a root handler configured elsewhere would print each line twice
    # DIPY's registration steps are INFO: held at ours unless -v asks for INFO
    from pigment_connect._logging import hold_dipy_logging

    hold_dipy_logging(level if args.verbose else max(level, logging.WARNING))
    _show_our_warnings_plainly(quiet=args.quiet)
    configure_threads(args.nthreads)


def _show_our_warnings_plainly(*, quiet: bool) -> None:
    """pigment_connect's warnings as one ``WARNING: message`` line through tqdm (no file name,
    line number and source line, which read like a traceback; none with ``--quiet``); other
    libraries' as Python prints them."""
    import warnings

    from pigment_connect.errors import PigmentWarning

    default = getattr(warnings.showwarning, "_python_default", warnings.showwarning)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PigmentWarning):
            if quiet:
                return
            from tqdm import tqdm

            tqdm.write(f"WARNING: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show._python_default = default
    warnings.showwarning = show


def configure_threads(n_threads: int | None) -> None:
    """numba's and torch's intra-op thread counts (``None``: leave the defaults, all cores)."""
    if n_threads is None:
        return
    from pigment_connect._threads import set_threads

    set_threads(n_threads)
