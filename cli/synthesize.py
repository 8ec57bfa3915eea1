"""``pigment-connect synthesize``: a virtual scan on any gradient table, predicted from a fit of the
measured volumes, and the repair of outlier slices."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging, refuse_overwrite

EXAMPLES = """examples:
  A virtual 3-shell HARDI scan (6 b=0 + 3 x 90 directions) from a clinical 12-direction scan, for MRtrix3's CSD:
    pigment-connect synthesize sub-01_dwi.nii.gz virtual/sub-01_dwi.nii.gz --scheme hardi-3shell

  Your own table, the measured volumes kept and only the missing ones predicted:
    pigment-connect synthesize sub-01_dwi.nii.gz virtual/sub-01_dwi.nii.gz --table dense.bval dense.bvec --keep-measured

  Replace dropout slices and corrupted volumes, on the measured table:
    pigment-connect synthesize sub-01_dwi.nii.gz repaired/sub-01_dwi.nii.gz --repair

Beside OUT_DWI go its .bval, .bvec and a .json sidecar listing, for every volume, whether it is
measured or predicted (and from which input volume), and the repaired (volume, slice) pairs.
"""


def register(subparsers) -> None:
    from pigment_connect.synthesis import PREDICTION_MODELS, STANDARD_TABLES

    parser = add_subcommand(
        subparsers, "synthesize",
        help="predict a virtual scan on any gradient table; repair outlier slices",
        description="Fit a model to the measured volumes (PIGMENT by default: its adapted tissue predicts "
        "shells and directions a sparse table cannot determine) and write the signal it predicts on "
        "another table, as NIfTI + .bval + .bvec + a JSON sidecar. With --repair, slices and volumes whose "
        "signal departs from the fit (dropouts, spikes, motion) are found and replaced by the prediction "
        "of a fit that did not see them. The input is never overwritten.",
        epilog=EXAMPLES,
    )
    parser.add_argument("dwi", help="4-D diffusion image (.nii/.nii.gz)")
    parser.add_argument("out_dwi", help="the virtual scan to write (.nii.gz); .bval/.bvec/.json beside it")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--table", nargs=2, metavar=("BVAL", "BVEC"), help="FSL files of the table to predict")
    target.add_argument("--scheme", choices=STANDARD_TABLES, help="a shipped standard table to predict")
    parser.add_argument("--keep-measured", action="store_true",
                        help="keep the measured volumes and add only the table's volumes not measured")
    parser.add_argument("--repair", action="store_true", help="replace outlier slices and volumes first")
    parser.add_argument("--slice-axis", type=int, choices=(0, 1, 2), default=2,
                        help="image axis of the acquired slices, for --repair (default 2)")
    parser.add_argument("--model", choices=PREDICTION_MODELS, default="pigment",
                        help="model that predicts (default pigment)")
    parser.add_argument("--bval", help="FSL .bval of DWI (default: beside the image)")
    parser.add_argument("--bvec", help="FSL .bvec of DWI (default: beside the image)")
    parser.add_argument("--mask", help="brain mask (default: computed from the b=0 volumes)")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    from pigment_connect.errors import InputError
    from pigment_connect.io.dwi import load_dwi
    from pigment_connect.synthesis import read_table, repair, standard_table, synthesize
    from pigment_connect.synthesis.virtual import sidecar_paths

    if not (args.table or args.scheme or args.repair):
        raise InputError("nothing to synthesize: no table was asked for.",
                         fix="give --scheme NAME or --table BVAL BVEC (or --repair to repair the measured table).")
    out = Path(args.out_dwi)
    if not (out.name.endswith(".nii.gz") or out.name.endswith(".nii")):
        raise InputError("the output must be a NIfTI file (.nii.gz or .nii).", file=out,
                         fix="name it e.g. sub-01_dwi.nii.gz.")
    outputs = sidecar_paths(out)
    inputs = {Path(p).resolve() for p in (args.dwi, args.bval, args.bvec, args.mask) if p}
    inputs |= {Path(p).resolve() for p in sidecar_paths(Path(args.dwi)).values()}
    clash = [p for p in outputs.values() if p.resolve() in inputs]
    if clash:
        raise InputError("the output would overwrite an input.", file=clash[0], fix="write the virtual scan elsewhere.")
    refuse_overwrite(outputs.values(), args.force)
    dwi = load_dwi(args.dwi, bvals=args.bval, bvecs=args.bvec, mask=args.mask)

    fit, repaired = None, []
    if args.repair:
        result = repair(dwi, model=args.model, axis=args.slice_axis, random_state=args.seed)
        dwi, fit, repaired = result.dwi, result.fit, result.report.pairs()
        if not args.quiet:
            print(f"repair: {len(repaired)} outlier slices replaced"
                  + (f" (volumes {', '.join(str(int(v)) for v in result.report.volumes.nonzero()[0])} whole)"
                     if result.report.volumes.any() else ""))
    if args.table:
        target = read_table(*args.table, affine=dwi.affine)
    elif args.scheme:
        target = standard_table(args.scheme)
    else:  # --repair alone: the measured table, measured (repaired) volumes kept
        target = dwi.gtab
    scan = synthesize(dwi, target, fit=fit, model=args.model, keep_measured=args.keep_measured or target is dwi.gtab,
                      random_state=args.seed, progress=not args.quiet)
    scan.repaired = repaired
    written = scan.save(out)
    if not args.quiet:
        print(f"{args.model}: {int(scan.measured.sum())} measured + {int((~scan.measured).sum())} predicted volumes "
              f"in {written['dwi']} (sidecar {written['json'].name})")
    return 0
