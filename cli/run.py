"""``pigment-connect run``: a BIDS cohort (or the embedded demo) through every stage."""

from __future__ import annotations

import argparse

from ._options import add_standard_options, add_subcommand, configure_logging

EXAMPLES = """examples:
  Run the embedded synthetic demo cohort (4 subjects, 2 groups, 2 sites) into demo_out/:
    pigment-connect run --demo demo_out

  Process a BIDS dataset whose subjects carry a parcellation in DWI space, 2 subjects at a time:
    pigment-connect run /data/bids /data/bids/derivatives/pigment_connect \\
        --parcellation 'derivatives/seg/{prefix}/dwi/{prefix}_space-dwi_seg-aparc_dseg.nii.gz' --n-jobs 2

  Register the shipped Schaefer atlases to every subject (affine + SyN on FA) and build both
  atlases' connectomes from one pass over each tractogram:
    pigment-connect run /data/bids /data/bids/derivatives/pigment_connect --atlas schaefer100 --atlas schaefer400
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "run",
        help="process a BIDS cohort (or the demo) end to end",
        description="Fit, track, build connectomes and graph metrics for every DWI series of a BIDS "
        "dataset. Finished subjects are skipped on re-runs (same settings); a failed subject is "
        "reported and never stops the others.",
        epilog=EXAMPLES,
    )
    parser.add_argument("bids_dir", nargs="?", help="BIDS dataset root")
    parser.add_argument("out_dir", nargs="?", help="derivatives folder to write (created or resumed)")
    parser.add_argument("--demo", metavar="OUTDIR",
                        help="build the synthetic demo cohort in OUTDIR/rawdata and run it into OUTDIR/derivatives")
    parser.add_argument("--demo-subjects", type=int, default=4, metavar="N", help="demo cohort size (default 4)")
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL",
                        help="subjects to process (without sub-); may stand before or after BIDS_DIR OUT_DIR")
    parser.add_argument("--parcellation", metavar="PATTERN",
                        help="per-subject parcellation in DWI space, relative to the BIDS root; "
                        "{prefix}, {subject}, {session} are filled in")
    parser.add_argument("--tissue", metavar="PATTERN",
                        help="per-subject five-tissue-type image (MRtrix3 5ttgen output) relative to the BIDS root, "
                        "for anatomically constrained tracking; {prefix}, {subject}, {session} are filled in")
    parser.add_argument("--model", choices=("tensor", "pigment", "pigment-spatial", "pigment-zeroshot"), default="tensor",
                        help="microstructure model: conventional DTI, or PIGMENT (tensor, kurtosis and NODDI maps from "
                        "any table, sparse ones included: pigment trains one network per table and maps each subject "
                        "in seconds; pigment-spatial adds each voxel's neighbours, for low-SNR scans; "
                        "pigment-zeroshot fits each subject's own signal, the most accurate, ≈ 85 s per whole brain "
                        "on 2 cores, seconds on a GPU; default tensor)")
    parser.add_argument("--tracking", choices=("tensorline", "eigenvector", "probabilistic"), default="tensorline",
                        help="tracking algorithm (default tensorline)")
    parser.add_argument("--gradient-check", choices=("warn", "fail", "off"), default="warn",
                        help="b-vector orientation check before tracking (default: warn when the table looks wrong)")
    parser.add_argument("--atlas", action="append", default=[], metavar="NAME",
                        help="MNI atlas registered to each subject (shipped name, see 'pigment-connect atlases list', "
                        "or a label image on the template grid); repeatable")
    parser.add_argument("--n-jobs", type=int, default=1, metavar="N", help="subjects in parallel (default 1); each gets its share of --nthreads (default: all cores)")
    parser.add_argument("--tractogram-format", choices=[".tck", ".trk", ".trx"], default=".tck")
    parser.add_argument("--force", action="store_true",
                        help="recompute subjects that already finished with the same settings")
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def _positionals_back(args: argparse.Namespace) -> None:
    """``--participant-label 01 02 BIDS_DIR OUT_DIR``: argparse gives every word to the labels.
    BIDS_DIR and OUT_DIR are required (outside --demo), so the missing ones are the last words."""
    labels = args.participant_label
    if args.demo or not labels:
        return
    missing = [name for name in ("bids_dir", "out_dir") if getattr(args, name) is None]
    if not missing or len(labels) <= len(missing):
        return
    for name, value in zip(missing, labels[-len(missing):]):
        setattr(args, name, value)
    args.participant_label = labels[: -len(missing)]


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    _positionals_back(args)
    from pigment_connect.errors import InputError
    from pigment_connect.pipeline import PipelineConfig, run_cohort, run_demo

    if args.demo:
        if args.bids_dir or args.out_dir:
            raise InputError("--demo takes its own output folder; do not also give BIDS_DIR/OUT_DIR.")
        result = run_demo(args.demo, n_subjects=args.demo_subjects, seed=args.seed, n_jobs=args.n_jobs,
                          n_threads=args.nthreads,
                          progress=not args.quiet, force=args.force)
    else:
        if not (args.bids_dir and args.out_dir):
            raise InputError("give BIDS_DIR and OUT_DIR, or --demo OUTDIR.", fix="see pigment-connect run --help.")
        config = PipelineConfig(parcellation=args.parcellation, atlases=tuple(args.atlas), seed=args.seed,
                                tractogram_format=args.tractogram_format, tissue=args.tissue,
                                tracking_algorithm=args.tracking, gradient_check=args.gradient_check,
                                model=args.model)
        result = run_cohort(args.bids_dir, args.out_dir, config, participant_labels=args.participant_label,
                            n_jobs=args.n_jobs, n_threads=args.nthreads, force=args.force,
                            progress=not args.quiet)
    counts = result.summary["status"].value_counts().to_dict()
    print(f"results: {result.out_dir}")
    print(f"  subjects: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}")
    print(f"  graph metrics: {result.out_dir / 'group_graphmetrics.tsv'}")
    print(f"  run summary:   {result.out_dir / 'run_summary.tsv'}")
    for prefix in result.failed:
        row = result.summary.set_index("prefix").loc[prefix]
        print(f"  FAILED {prefix}: {row['error']}")
    return 1 if result.failed else 0
