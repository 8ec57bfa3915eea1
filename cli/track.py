"""``pigment-connect track``: a tractogram from fitted maps (as ``tckgen``, ``dipy_track``)."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging, refuse_overwrite

EXAMPLES = """examples:
  Deterministic (tensorline) whole-brain tracking on the maps 'fit' wrote, one seed per voxel:
    pigment-connect track maps/ sub-01_tractography.tck

  Probabilistic, anatomically constrained (MRtrix3 5ttgen image), seeded at the WM/GM interface:
    pigment-connect track maps/ sub-01_prob.tck --algorithm probabilistic \\
        --tissue sub-01_5TT.nii.gz --seeds interface --seeds-per-voxel 4

  Probabilistic tracking of fibre ODFs (constrained spherical deconvolution):
    pigment-connect fit sub-01_dwi.nii.gz csd/ --model csd
    pigment-connect track csd/ sub-01_ifod.tck --algorithm probabilistic

  Check the gradient table first when tracks look short or wrong (flipped or swapped axes):
    pigment-connect check-gradients sub-01_dwi.nii.gz
"""

FORMATS = (".tck", ".trk", ".trx")


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "track",
        help="track streamlines through fitted maps and write a .tck/.trk/.trx tractogram",
        description="Track streamlines through the tensor (or PIGMENT/NODDI orientation, or CSD fibre-ODF) "
        "field of maps written by 'fit' (their JSON index, or the folder holding it). Algorithms: "
        "tensorline (deterministic, default), eigenvector (MRtrix3 Tensor_Det) and probabilistic (tensor "
        "or ODI dispersion); on FOD maps deterministic (SD_Stream) or probabilistic (iFOD1). A .tck is streamed to disk chunk by chunk (bounded memory) and keeps the voxel "
        "grid in its header, so that 'connectome' needs no reference image. Same --seed, same "
        "streamlines, whatever --nthreads.",
        epilog=EXAMPLES,
    )
    parser.add_argument("maps", help="map index (*_dwimap.json) or the folder holding it")
    parser.add_argument("out", help="tractogram to write: .tck, .trk or .trx")
    parser.add_argument("--algorithm", choices=("tensorline", "eigenvector", "deterministic", "probabilistic"),
                        default="tensorline",
                        help="tracking algorithm (default tensorline); on FOD maps ('fit --model csd') "
                        "deterministic (peak following, as SD_Stream) or probabilistic (iFOD1)")
    parser.add_argument("--fod-threshold", type=float, default=0.1, metavar="AMP",
                        help="FOD tracking stops where the FOD amplitude is below this (MRtrix3 -cutoff, default 0.1)")
    parser.add_argument("--seeds", default="wm", choices=("wm", "interface"),
                        help="seed region: wm, every tracking voxel above the FA threshold (default); "
                        "interface, the WM/GM boundary")
    parser.add_argument("--seeds-per-voxel", type=int, default=1, metavar="N", help="seeds per seed voxel (default 1)")
    parser.add_argument("--n-seeds", type=int, metavar="N", help="instead, this many seeds in total")
    parser.add_argument("--step-size", type=float, default=0.5, metavar="MM", help="step length, mm (default 0.5)")
    parser.add_argument("--max-angle", type=float, default=45.0, metavar="DEG",
                        help="largest angle between steps, degrees (default 45)")
    parser.add_argument("--fa-threshold", type=float, default=0.15, metavar="FA", help="stop below this FA (default 0.15)")
    parser.add_argument("--min-length", type=float, default=10.0, metavar="MM",
                        help="discard shorter streamlines, mm (default 10)")
    parser.add_argument("--max-length", type=float, default=250.0, metavar="MM",
                        help="stop longer streamlines, mm (default 250)")
    parser.add_argument("--tissue", metavar="5TT", help="five-tissue-type image for anatomically constrained tracking")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    from pigment_connect.errors import InputError
    from pigment_connect.io.maps import MicrostructureMaps
    from pigment_connect.track import Tracker

    out = Path(args.out)
    suffix = "".join(out.suffixes[-1:]).lower()
    if suffix not in FORMATS:
        raise InputError(f"unknown tractogram format {suffix or '(none)'!r}.", file=out,
                         fix=f"end the output name with one of {', '.join(FORMATS)}.")
    refuse_overwrite([out], args.force)
    maps = MicrostructureMaps.from_index(args.maps)
    tracker = Tracker(algorithm=args.algorithm, step_size=args.step_size, max_angle=args.max_angle,
                      fa_threshold=args.fa_threshold, min_length=args.min_length, max_length=args.max_length,
                      fod_threshold=args.fod_threshold)
    options = {"seeds": "interface" if args.seeds == "interface" else None,
               "seeds_per_voxel": args.seeds_per_voxel, "n_seeds": args.n_seeds,
               "tissue": args.tissue, "random_state": args.seed}
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".tck":
        count = tracker.track_to_file(maps, out, **options)["streamlines"]
    else:
        tractogram = tracker.track(maps, **options)
        tractogram.save(out)
        count = len(tractogram)
    if not args.quiet:
        print(f"{args.algorithm}: {count} streamlines in {out}")
    return 0
