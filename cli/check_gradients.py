"""``pigment-connect check-gradients``: is the b-vector table oriented right? (flips, swapped axes)"""

from __future__ import annotations

import argparse

from ._options import add_standard_options, add_subcommand, configure_logging

EXAMPLES = """examples:
  Check a scan (sub-01_dwi.bval/.bvec beside the image are found automatically):
    pigment-connect check-gradients sub-01_dwi.nii.gz

  Fail (exit 2) when the table looks wrong, and write the corrected FSL files:
    pigment-connect check-gradients sub-01_dwi.nii.gz --fail --export-fsl fixed.bvec fixed.bval
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "check-gradients",
        help="check the b-vector orientation (axis flips and swaps) by fibre coherence",
        description="Fit tensors once, then track a quick whole-brain sample under each of the 24 axis "
        "permutations and sign flips of the b-vectors, scoring fibre coherence by the mean streamline "
        "length (as MRtrix3's dwigradcheck). Reports the best table and how to fix the given one. "
        "'pigment-connect run' does the same check before tracking.",
        epilog=EXAMPLES,
    )
    parser.add_argument("dwi", help="4-D diffusion image (.nii/.nii.gz)")
    parser.add_argument("--bval", help="FSL .bval file (default: beside the image)")
    parser.add_argument("--bvec", help="FSL .bvec file (default: beside the image)")
    parser.add_argument("--mask", help="brain mask (default: computed from the b=0 volumes)")
    parser.add_argument("--n-seeds", type=int, default=4000, metavar="N",
                        help="seeds of the quick tracking per candidate table (default 4000)")
    parser.add_argument("--fail", action="store_true", help="exit with status 2 when the given table is not the best")
    parser.add_argument("--export-fsl", nargs=2, metavar=("BVEC", "BVAL"),
                        help="write the best table as FSL files (the given one when it is already the best)")
    parser.add_argument("--table", metavar="TSV", help="write the score of every candidate table")
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pigment_connect.errors import InputError
    from pigment_connect.fit import TensorModel
    from pigment_connect.io.dwi import load_dwi
    from pigment_connect.io.gradients import GradientTable
    from pigment_connect.io.write import atomic_path
    from pigment_connect.track import check_gradients

    dwi = load_dwi(args.dwi, bvals=args.bval, bvecs=args.bvec, mask=args.mask)
    check = check_gradients(TensorModel(dwi.gtab).fit(dwi).maps, n_seeds=args.n_seeds, random_state=args.seed)
    print(check.table.head(6)[["transform", "mean_length_mm", "streamlines"]].to_string(index=False))
    print(check.message)
    if args.table:
        with atomic_path(args.table) as tmp:
            check.table.to_csv(tmp, sep="\t", index=False)
    if args.export_fsl:
        bvecs = dwi.gtab.bvecs if check.given_is_best else check.corrected_bvecs(dwi.gtab.bvecs)
        GradientTable(dwi.gtab.bvals, bvecs, b0_threshold=dwi.gtab.b0_threshold).to_fsl(
            args.export_fsl[1], args.export_fsl[0], affine=dwi.affine)
        print(f"wrote {args.export_fsl[0]} and {args.export_fsl[1]}")
    if args.fail and not check.given_is_best:
        from pigment_connect.io.bids import nifti_stem

        stem = nifti_stem(args.dwi)
        raise InputError(check.verdict, file=args.bvec or stem.with_name(stem.name + ".bvec"), fix=check.fix)
    return 0
