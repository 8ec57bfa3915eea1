"""``pigment-connect config``: the effective pipeline settings, as a TOML file ``run`` reads."""

from __future__ import annotations

import argparse

from ._options import add_subcommand
from ._pipeline_options import add_pipeline_options, pipeline_config

EXAMPLES = """examples:
  Every setting with its default, as a file to edit:
    pigment-connect config --show > pipeline.toml

  What a run would use with this file and a flag on top:
    pigment-connect config --show --config pipeline.toml --step-size 1.0

  Then:
    pigment-connect run /data/bids /data/derivatives/pigment_connect --config pipeline.toml
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "config",
        help="print the effective pipeline settings (defaults, --config file, flags) as TOML",
        description="Print the settings 'pigment-connect run' would use with the same --config and flags, one "
        "per line under its help, as a TOML file 'run --config' reads back. Unknown settings and invalid "
        "values stop with exit 2, as they stop a run before its first series.",
        epilog=EXAMPLES,
    )
    parser.add_argument("--show", action="store_true", help="print the settings (the default action)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    add_pipeline_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    from pigment_connect.pipeline.config import config_to_toml

    print(config_to_toml(pipeline_config(args)), end="")
    return 0
