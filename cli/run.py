"""``pigment-connect run``: a BIDS cohort (or the embedded demo) through every stage."""

from __future__ import annotations

import argparse

from ._options import add_standard_options, add_subcommand, configure_logging
from ._pipeline_options import add_pipeline_options, pipeline_config

EXAMPLES = """examples:
  Run the embedded synthetic demo cohort (4 subjects, 2 groups, 2 sites) into demo_out/:
    pigment-connect run --demo demo_out

  Process a BIDS dataset whose subjects carry a parcellation in DWI space, 2 subjects at a time:
    pigment-connect run /data/bids /data/bids/derivatives/pigment_connect \\
        --parcellation 'derivatives/seg/{prefix}/dwi/{prefix}_space-dwi_seg-aparc_dseg.nii.gz' --n-jobs 2

  With no option: tensor maps, tensorline tracking, the shipped Schaefer-200 atlas registered to
  every subject (affine + SyN on FA):
    pigment-connect run /data/bids /data/bids/derivatives/pigment_connect

  Two atlases from one pass over each tractogram, settings from a file (pigment-connect config --show
  writes one), a larger step on top:
    pigment-connect run /data/bids /data/derivs --config pipeline.toml --atlas schaefer100 --atlas schaefer400 \\
        --step-size 1.0
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "run",
        help="process a BIDS cohort (or the demo) end to end",
        description="Fit, track, build connectomes and graph metrics for every DWI series of a BIDS "
        "dataset. On a rerun each stage of a series is skipped while its inputs and settings are unchanged "
        "(a killed run resumes at the stage it was in); a failed series is reported and never stops the "
        "others. Each configuration writes its own files (model- and algo- entities); settings that would "
        "replace another configuration's files stop the run before it starts.",
        epilog=EXAMPLES,
    )
    parser.add_argument("bids_dir", nargs="?", help="BIDS dataset root")
    parser.add_argument("out_dir", nargs="?", help="derivatives folder to write (created or resumed)")
    parser.add_argument("--demo", metavar="OUTDIR",
                        help="build the synthetic demo cohort in OUTDIR/rawdata and run it into OUTDIR/derivatives")
    parser.add_argument("--demo-subjects", type=int, default=4, metavar="N", help="demo cohort size (default 4)")
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL",
                        help="subjects to process (without sub-); may stand before or after BIDS_DIR OUT_DIR")
    parser.add_argument("--input-type", choices=("auto", "raw", "qsiprep"), default="auto",
                        help="raw BIDS, or QSIPrep preprocessed derivatives (sub-X/[ses-Y/]dwi/"
                        "*_space-T1w_desc-preproc_dwi.nii.gz with .bval/.bvec and desc-brain_mask); default: "
                        "told apart from the dataset description and the file names")
    parser.add_argument("--n-jobs", type=int, default=1, metavar="N", help="series in parallel (default 1), each with its share of --nthreads (default: all cores); fewer "
                        "when that many would not fit the memory")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run each series as a Dask task: local:N (N worker processes here) or a scheduler "
                        "address such as tcp://host:8786 (a dask-jobqueue SLURM cluster); needs "
                        "pip install 'pigment_connect[dask]'")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage, and replace files that other settings made in OUT_DIR (refused "
                        "otherwise)")
    add_pipeline_options(parser)
    add_standard_options(parser, seed_default=None)
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
    from pigment_connect.pipeline import run_cohort, run_demo

    if args.demo:
        if args.bids_dir or args.out_dir:
            raise InputError("--demo takes its own output folder; do not also give BIDS_DIR/OUT_DIR.")
        result = run_demo(args.demo, n_subjects=args.demo_subjects, seed=args.seed or 0, n_jobs=args.n_jobs,
                          n_threads=args.nthreads,
                          progress=not args.quiet, force=args.force)
    else:
        if not (args.bids_dir and args.out_dir):
            raise InputError("give BIDS_DIR and OUT_DIR, or --demo OUTDIR.", fix="see pigment-connect run --help.")
        config = pipeline_config(args)
        result = run_cohort(args.bids_dir, args.out_dir, config, participant_labels=args.participant_label,
                            n_jobs=args.n_jobs, n_threads=args.nthreads, force=args.force,
                            progress=not args.quiet, input_type=args.input_type,
                            scheduler=args.scheduler)
    counts = result.summary["status"].value_counts().to_dict()
    print(f"results: {result.out_dir}")
    n_subjects = result.summary["subject"].nunique()
    print(f"  series: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))} "
          f"({n_subjects} subject{'s' if n_subjects != 1 else ''})")
    print(f"  graph metrics: {result.out_dir / 'group_graphmetrics.tsv'}")
    print(f"  run summary:   {result.out_dir / 'run_summary.tsv'}")
    if (result.out_dir / "report.html").is_file():
        print(f"  QC report:     {result.out_dir / 'report.html'}")
    for prefix in result.failed:
        row = result.summary.set_index("prefix").loc[prefix]
        print(f"  FAILED {prefix}: {row['error']}")
    return 1 if result.failed else 0
