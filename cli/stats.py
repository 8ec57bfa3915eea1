"""``pigment-connect stats``: group statistics of a cohort's connectomes (GLM + FDR, NBS/TFNBS)."""

from __future__ import annotations

import argparse

from ._options import add_standard_options, add_subcommand, configure_logging

EXAMPLES = """examples:
  Patients vs controls, adjusted for age, sex and site, NBS at t > 3 with 5000 permutations:
    pigment-connect stats out/derivatives/pigment_connect stats_out --seg aparc \\
        --contrast group patient control --covariates age sex site

  Harmonise the sites with ComBat first, then TFNBS on mean-FA connectomes:
    pigment-connect stats derivs stats_out --seg schaefer200 --meas mean_fa \\
        --contrast group patient control --covariates age sex --harmonize site --method tfnbs

  Correlation with age (a numeric column), two-sided:
    pigment-connect stats derivs stats_out --seg aparc --contrast age --covariates age sex --tail both

The participants.tsv of the cohort (in the derivatives folder or the BIDS root above it) holds
the group and covariate columns.
"""


def _csv_list(values):
    out = []
    for v in values or []:
        out.extend(x for x in v.split(",") if x)
    return out


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "stats",
        help="group statistics of connectomes: edge/node GLM with FDR, NBS or TFNBS",
        description="Read every subject's connectome of one atlas and weighting from a derivatives folder, "
        "join participants.tsv, optionally harmonise sites (ComBat), fit the GLM at every edge and node "
        "(t/F, effect sizes, Benjamini-Hochberg FDR) and run the Network-Based Statistic (or TFNBS) with "
        "Freedman-Lane permutations. Writes TSV tables and a JSON summary to OUT.",
        epilog=EXAMPLES,
    )
    parser.add_argument("derivatives", help="derivatives folder (e.g. out/derivatives/pigment_connect)")
    parser.add_argument("out", help="output folder for the tables")
    parser.add_argument("--seg", required=True, help="atlas entity of the connectome files (seg-<label>)")
    parser.add_argument("--meas", default="count", help="weighting entity (meas-<label>; default count)")
    parser.add_argument("--contrast", nargs="+", required=True, metavar="ARG",
                        help="COLUMN LEVEL_A LEVEL_B (A minus B) or a numeric COLUMN (its slope)")
    parser.add_argument("--covariates", nargs="*", default=[], metavar="COL", help="columns to adjust for")
    parser.add_argument("--categorical", nargs="*", default=[], metavar="COL",
                        help="numeric-looking columns to treat as categories (e.g. site codes)")
    parser.add_argument("--harmonize", default=None, metavar="SITE_COL", help="ComBat on this site column first")
    parser.add_argument("--blocks", default=None, metavar="COL", help="exchangeability blocks for permutations")
    parser.add_argument("--participants", default=None, help="participants.tsv (default: found beside the data)")
    parser.add_argument("--multi-series", choices=("refuse", "first", "mean"), default="refuse",
                        help="subjects with several series (e.g. dir-AP and dir-PA): refuse (default), keep the "
                        "first in name order, or average their connectomes")
    parser.add_argument("--model", metavar="LABEL",
                        help="model entity of the connectomes (model-<label>: tensor, pigment, pigmentspatial, "
                        "pigmentzeroshot, pigmentzeroshotevidence), when the folder holds several")
    parser.add_argument("--algo", metavar="LABEL",
                        help="tracking entity (algo-<label>: tensorline, eigenvector, probabilistic), when the folder "
                        "holds several")
    parser.add_argument("--method", choices=("nbs", "tfnbs", "none"), default="nbs")
    parser.add_argument("--threshold", type=float, default=3.0, help="NBS primary threshold on t (default 3.0)")
    parser.add_argument("--statistic", choices=("extent", "intensity"), default="extent")
    parser.add_argument("--perm", type=int, default=5000, help="permutations incl. the identity (default 5000)")
    parser.add_argument("--tail", choices=("right", "left", "both"), default="right")
    parser.add_argument("--alpha", type=float, default=0.05)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pigment_connect.errors import InputError
    from pigment_connect.graph.study import run_group_study

    if len(args.contrast) not in (1, 3):
        raise InputError(f"--contrast takes a column and two levels, or one numeric column; got {args.contrast}.")
    written = run_group_study(
        args.derivatives, args.out, seg=args.seg, meas=args.meas, contrast=tuple(args.contrast),
        covariates=_csv_list(args.covariates), categorical=_csv_list(args.categorical), harmonize=args.harmonize,
        blocks=args.blocks, method=args.method, threshold=args.threshold, n_perm=args.perm, tail=args.tail,
        statistic=args.statistic, alpha=args.alpha, seed=args.seed, participants=args.participants,
        multi_series=args.multi_series,
        configuration={k: v for k, v in (("model", args.model), ("algo", args.algo)) if v},
    )
    if not args.quiet:
        for name, path in written.items():
            print(f"{name}: {path}")
    return 0
