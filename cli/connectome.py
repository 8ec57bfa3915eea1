"""``pigment-connect connectome``: connectomes of one tractogram (as ``tck2connectome``)."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging, refuse_overwrite

EXAMPLES = """examples:
  Streamline counts between the regions of a parcellation already in DWI space (its .tsv node
  table beside it):
    pigment-connect connectome sub-01_tractography.tck conn/ --parcellation sub-01_seg-aparc_dseg.nii.gz

  Two shipped MNI atlases registered to the subject's FA, several weightings in one pass:
    pigment-connect connectome sub-01_tractography.tck conn/ --maps maps/ \\
        --atlas schaefer200 --atlas schaefer400 --weighting count,invnodevol,mean_fa

  SIFT2 weights from MRtrix3, end-voxel assignment as tck2connectome -assignment_end_voxels:
    pigment-connect connectome tracks.tck conn/ --parcellation nodes.nii.gz \\
        --streamline-weights sift2_weights.txt --assignment end_voxel

  Then graph metrics:
    pigment-connect metrics conn/sub-01_seg-aparc_meas-count_connectome.tsv sub-01_metrics.tsv
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "connectome",
        help="connectomes of one tractogram: every parcellation x weighting in one pass",
        description="Assign both ends of every streamline to a region and write one connectome per "
        "parcellation and weighting, <prefix>[_model-M_algo-A]_seg-<atlas>_meas-<weighting>_connectome.tsv (the model- and algo- entities of the tractogram kept; and .npz "
        "with the node table; .json with the count connectome's provenance: streamlines assigned, "
        "unassigned, self-connections), the names 'run' writes and 'stats' reads. Weightings: count, "
        "invnodevol, length, invlength, mean_<map> and uncertainty_<map> (e.g. mean_fa; need --maps). "
        "Shipped atlases (--atlas; 'pigment-connect atlases' lists them) are registered to the "
        "subject's FA from --maps; the transform, subject-space parcellations, coverage tables and "
        "QC images are written beside the connectomes.",
        epilog=EXAMPLES,
    )
    parser.add_argument("tractogram", help="streamlines: .tck, .trk or .trx")
    parser.add_argument("out_dir", help="folder for the connectomes (created)")
    parser.add_argument("--parcellation", action="append", default=[], metavar="DSEG",
                        help="label image on the tractogram's grid, its .tsv node table beside it; repeatable")
    parser.add_argument("--atlas", action="append", default=[], metavar="NAME",
                        help="shipped atlas ('pigment-connect atlases list') or an MNI label image, registered to "
                        "the subject (needs --maps); repeatable")
    parser.add_argument("--maps", metavar="MAPS", help="map index (*_dwimap.json) or its folder: FA for registration, "
                        "maps for mean_<map> weightings")
    parser.add_argument("--weighting", action="append", default=[], metavar="W",
                        help="weighting, or several separated by commas; repeatable (default count)")
    parser.add_argument("--assignment", choices=("radial", "end_voxel", "reverse"), default="radial",
                        help="end-point assignment, as tck2connectome (default radial)")
    parser.add_argument("--radius", type=float, default=2.0, metavar="MM",
                        help="radial search distance, or reverse search length, mm (default 2)")
    parser.add_argument("--streamline-weights", metavar="TXT", help="per-streamline weights (e.g. tcksift2 output)")
    parser.add_argument("--self-connections", action="store_true", help="keep streamlines with both ends in one region")
    parser.add_argument("--prefix", help="start of every output name (default: the series part of the tractogram's name)")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    import numpy as np

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.connectome.atlases import load_atlas
    from pigment_connect.errors import InputError
    from pigment_connect.io.bids import configuration_entities, source_prefix
    from pigment_connect.io.maps import MicrostructureMaps
    from pigment_connect.io.parcellation import Parcellation
    from pigment_connect.pipeline.stages import atlas_parcellations, connectome_stem, write_connectomes

    if not args.parcellation and not args.atlas:
        raise InputError("no parcellation given.",
                         fix="give --parcellation DSEG (in DWI space) or --atlas NAME with --maps MAPS.")
    if args.atlas and not args.maps:
        raise InputError("--atlas registers the atlas to the subject's FA, which needs the maps.",
                         fix="give --maps with the map index (or folder) that 'fit' wrote.")
    weightings = tuple(dict.fromkeys(w for value in args.weighting for w in value.split(",") if w)) or ("count",)
    prefix = args.prefix or source_prefix(args.tractogram)
    out_dir = Path(args.out_dir)
    entities = configuration_entities(args.tractogram)  # model-/algo- of the tractogram, kept in every name
    parcellations = [Parcellation.load(path) for path in args.parcellation]
    atlases = [load_atlas(atlas) for atlas in args.atlas]
    names = [p.name for p in parcellations + atlases]
    refuse_overwrite([out_dir / f"{connectome_stem(prefix, name, w, entities)}.tsv" for name in names
                      for w in weightings], args.force)
    maps = MicrostructureMaps.from_index(args.maps) if args.maps else None
    if atlases:
        mask = maps.mask if maps.mask is not None else np.asarray(maps["fa"]) > 0
        parcellations += atlas_parcellations(atlases, maps, mask, out_dir, prefix, reuse_transform=False)[0]
    grid = parcellations[0]
    by_atlas = build_connectomes(
        args.tractogram, parcellations, weightings=weightings, maps=maps,
        streamline_weights=args.streamline_weights, assignment=args.assignment, radius=args.radius,
        self_connections=args.self_connections, reference=(grid.labels.shape, grid.affine),
    )
    write_connectomes(by_atlas, out_dir, prefix, entities)
    if not args.quiet:
        for name, connectomes in by_atlas.items():
            first = next(iter(connectomes.values()))
            print(f"{name}: {first.weights.shape[0]} nodes, {first.provenance.get('n_assigned', 0)} of "
                  f"{first.provenance.get('n_streamlines', 0)} streamlines assigned; "
                  f"{', '.join(connectomes)} in {out_dir}")
    return 0
