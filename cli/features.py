"""``pigment-connect features``: parcel summaries of a run's maps and PIGMENT latent code, as tidy
tables and PLINK 2 / REGENIE phenotype and covariate files."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging

EXAMPLES = """examples:
  Every feature's median per Schaefer-200 parcel, for a genetics study (FID IID + one column each):
    pigment-connect features out/derivatives/pigment_connect --atlas schaefer200

  Medians and inter-quartile ranges of the latent code and NDI only, one row per subject averaging its series:
    pigment-connect features derivs --atlas schaefer200 --stats median,iqr \\
        --include latent1,latent2,latent3,latent4,latent5,latent6,ndi --multi-series mean

  Then with PLINK 2 or REGENIE:
    plink2 --pfile geno --pheno features/features_seg-schaefer200_model-pigment_pheno.txt \\
        --covar features/features_seg-schaefer200_model-pigment_covar.txt --glm
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "features",
        help="per-parcel latent microstructure features: tidy tables and PLINK/REGENIE files",
        description="Read each series' maps (PIGMENT's: its maps, the adapted latent code latent1..6 and "
        "the nine tissue features) and the atlas warped onto it from a run's derivatives, summarise every "
        "feature per parcel and for the whole brain (parcel 'brain') by its median and inter-quartile range, "
        "and write features_seg-<atlas>_model-<model>_{long,wide}.tsv and _{pheno,covar}.txt (FID IID, "
        "NA for missing, names without spaces; covariates from participants.tsv).",
        epilog=EXAMPLES,
    )
    parser.add_argument("derivatives", help="output folder of pigment-connect run")
    parser.add_argument("--atlas", required=True, help="atlas whose parcels summarise (seg-<atlas> of the run)")
    parser.add_argument("--model", metavar="LABEL", help="model entity of the maps (default: the one PIGMENT model)")
    parser.add_argument("--include", metavar="NAMES", help="comma-separated features (default: all)")
    parser.add_argument("--stats", default="median", help="statistics in the wide and phenotype files: median, "
                        "iqr or median,iqr (default median)")
    parser.add_argument("--parcellations", metavar="DIR", help="folder of subject-space parcellations "
                        "(<series>_..._seg-<atlas>_dseg.nii.gz) for a run given --parcellation instead of --atlas")
    parser.add_argument("--participants", help="participants.tsv (default: found beside the data)")
    parser.add_argument("--multi-series", choices=("refuse", "first", "mean"), default="refuse",
                        help="subjects with several series or sessions: refuse (default), the first, or their mean")
    parser.add_argument("--out-dir", help="where to write (default: DERIVATIVES/features)")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    from pigment_connect.features import write_feature_files

    out = Path(args.out_dir) if args.out_dir else Path(args.derivatives) / "features"
    targets = write_feature_files(
        args.derivatives, out, atlas=args.atlas, model=args.model, stats=tuple(s for s in args.stats.split(",") if s),
        include=tuple(s for s in args.include.split(",") if s) if args.include else None,
        participants=args.participants, multi_series=args.multi_series, parcellations=args.parcellations,
        overwrite=args.force)
    if not args.quiet:
        for kind, path in targets.items():
            print(f"{kind}: {path}")
    return 0
