"""``pigment-connect metrics``: graph metrics of one connectome (as bctpy / QSIRecon's tables)."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging, refuse_overwrite

EXAMPLES = """examples:
  Global metrics (one row) and node metrics (one row per region) of a count connectome:
    pigment-connect metrics conn/sub-01_seg-aparc_meas-count_connectome.tsv sub-01_graph.tsv \\
        --nodes sub-01_nodes.tsv

  Path lengths as -log(w / max w) instead of 1 / w:
    pigment-connect metrics conn/sub-01_seg-aparc_meas-invnodevol_connectome.npz graph.tsv --length neglog
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "metrics",
        help="graph metrics of one connectome: global (one row) and per node",
        description="Weighted graph metrics that match the Brain Connectivity Toolbox: density, mean "
        "strength, global efficiency, characteristic path length, transitivity, clustering, Louvain "
        "modularity (seeded) and strength assortativity, one row in OUT; with --nodes, degree, strength, "
        "clustering, local efficiency, betweenness, module, participation and within-module z per "
        "region. Weights are connection strengths: path lengths are 1/w (or -log of the normalised "
        "weight). A connectome of streamline lengths (meas-length) is not a strength and is refused.",
        epilog=EXAMPLES,
    )
    parser.add_argument("connectome", help="connectome written by 'connectome' or 'run' (.tsv, .npz, .csv, .mat, ...)")
    parser.add_argument("out", help="TSV of the global metrics")
    parser.add_argument("--nodes", metavar="TSV", help="also write the node metrics here")
    parser.add_argument("--length", choices=("inverse", "neglog"), default="inverse",
                        help="weight-to-length transform for paths (default inverse, 1/w)")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def _weighting(conn, path) -> str:
    """The connectome's weighting, from its metadata or the ``meas-`` entity of its file name."""
    if conn.weighting != "unknown":
        return conn.weighting
    for part in path.name.split("_"):
        if part.startswith("meas-"):
            return part[len("meas-"):]
    return "unknown"


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    import pandas as pd

    from pigment_connect.errors import InputError
    from pigment_connect.graph import global_metrics, node_metrics
    from pigment_connect.io.connectome import Connectome
    from pigment_connect.io.write import atomic_path

    path = Path(args.connectome)
    outputs = [Path(args.out)] + ([Path(args.nodes)] if args.nodes else [])
    refuse_overwrite(outputs, args.force)
    conn = Connectome.load(path)
    weighting = _weighting(conn, path)
    from pigment_connect.connectome import is_strength

    if not is_strength(weighting):
        raise InputError(f"this connectome ({weighting}) holds mean streamline lengths (mm) or standard errors, "
                         "not connection strengths: strength, clustering and path metrics would read them as "
                         "connectivity.",
                         file=path, fix="give the count, invnodevol or invlength connectome of the same tractogram.")
    row = pd.DataFrame([{"connectome": path.name, "weighting": weighting,
                         **global_metrics(conn, seed=args.seed, length=args.length).to_dict()}])
    with atomic_path(args.out) as tmp:
        row.to_csv(tmp, sep="\t", index=False)
    if args.nodes:
        nodes = node_metrics(conn, seed=args.seed, length=args.length)
        with atomic_path(args.nodes) as tmp:
            nodes.to_csv(tmp, sep="\t", index=False)
    if not args.quiet:
        print(row.drop(columns=["connectome"]).T.to_string(header=False))
    return 0
