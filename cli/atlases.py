"""``pigment-connect atlases``: list the shipped atlases, or show one."""

from __future__ import annotations

import argparse

from ._options import add_subcommand

EXAMPLES = """examples:
  pigment-connect atlases list
  pigment-connect atlases show schaefer200
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "atlases",
        help="list the shipped MNI atlases or show one (licence, citation, nodes)",
        description="The parcellations shipped with pigment_connect, in MNI152NLin2009cAsym space, with their "
        "licence and citation. Any of them can be registered to each subject with 'pigment-connect run --atlas'.",
        epilog=EXAMPLES,
    )
    parser.add_argument("action", choices=("list", "show"))
    parser.add_argument("name", nargs="?", help="atlas to show")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    from pigment_connect.connectome.atlases import atlas_info, list_atlases, load_atlas
    from pigment_connect.errors import InputError

    if args.action == "list":
        table = list_atlases()
        print(table[["name", "n_nodes", "space", "resolution_mm", "title"]].to_string(index=False))
        return 0
    if not args.name:
        raise InputError("'atlases show' needs an atlas name.", fix="see 'pigment-connect atlases list'.")
    info = atlas_info(args.name)
    for key in ("name", "title", "space", "resolution_mm", "n_nodes", "licence", "citation", "source"):
        print(f"{key}: {info.get(key)}")
    nodes = load_atlas(args.name).nodes
    print(f"networks: {', '.join(f'{k} ({v})' for k, v in nodes['network'].value_counts().sort_index().items())}")
    print(nodes.head(5).to_string(index=False))
    print(f"... {len(nodes)} nodes")
    return 0
