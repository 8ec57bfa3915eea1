"""``pigment-connect report``: rebuild the QC pages of a run's derivatives folder, computing nothing."""

from __future__ import annotations

import argparse

from ._options import add_subcommand

EXAMPLES = """examples:
  Rebuild every series page, group_qc.tsv and report.html of a run:
    pigment-connect report /data/derivatives/pigment_connect

  Then open /data/derivatives/pigment_connect/report.html in a browser (it needs no network).
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "report",
        help="rebuild the HTML QC reports of a run's derivatives folder",
        description="Write one self-contained HTML page per series (<series>_report.html beside its files), "
        "group_qc.tsv and the cohort page report.html, from the files 'pigment-connect run' wrote: nothing is "
        "fitted, tracked or registered again. 'run' writes them itself as its last step.",
        epilog=EXAMPLES,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the derivatives folder 'pigment-connect run' wrote")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    from pigment_connect.report import write_reports

    page = write_reports(args.out_dir)
    print(f"report: {page}")
    return 0
