"""Connectomes on the real whole-brain scan through ``pigment-connect run``: how much of the
tracking reaches the cortex, per configuration.

    python benchmarks/bench_real_connectome.py [--seeds-per-voxel 2]

The shared ADNI scan (Philips b=1000 ×16, 2 mm; ../shared/data) as a one-series BIDS dataset, run
with the default atlas (Schaefer-200, cortex only) under each configuration below into its own
folder. Reported per configuration, from the files the run wrote:

* streamlines kept;
* **assigned**: fraction of them whose two ends are assigned (radial search, 2 mm, as
  ``tck2connectome``) to two *distinct* Schaefer-200 nodes;
* **GM ends**: fraction with both ends in grey matter (cortical + sub-cortical ≥ 0.5) of the
  series' template-derived five-tissue-type image (made for every configuration alike, from
  the run's own registration, so that runs without ACT are scored on the same tissue);
* **labels lost**: Schaefer-200 labels that vanished or kept < 50% of their template volume
  after warping (the run's coverage table), and the brain-mask Dice of the registration;
* wall time of the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCAN = HERE.parent.parent / "shared" / "data" / "dwi_philips_elitionx_adni_wholebrain_b1000"
CONFIGS = {
    "tensorline, no ACT, WM seeds (before)": ["--anatomical-constraints", "none", "--seeding", "wm"],
    "tensorline, template ACT, WM seeds": ["--anatomical-constraints", "auto", "--seeding", "wm"],
    "tensorline, template ACT, interface seeds": ["--anatomical-constraints", "auto", "--seeding", "interface"],
    "probabilistic, template ACT, interface seeds": ["--anatomical-constraints", "auto", "--seeding", "interface",
                                                     "--tracking", "probabilistic"],
}


def _bids(root: Path) -> Path:
    dwi = root / "bids" / "sub-adni" / "dwi"
    dwi.mkdir(parents=True)
    for ext in ("nii.gz", "bval", "bvec"):
        (dwi / f"sub-adni_dwi.{ext}").symlink_to(SCAN / f"dwi.{ext}")
    (root / "bids" / "dataset_description.json").write_text(json.dumps({"Name": "adni", "BIDSVersion": "1.8.0"}))
    return root / "bids"


def score(out: Path) -> dict:
    """The measures of one run folder (see the module docstring)."""
    import pandas as pd

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.connectome.register import Registration
    from pigment_connect.connectome.template_tissue import template_tissue
    from pigment_connect.io import MicrostructureMaps, Parcellation, Tractogram
    from pigment_connect.track.tissue import as_tissue_image

    d = out / "sub-adni" / "dwi"
    tck = next(d.glob("*_tractography.tck"))
    trk = Tractogram.load(tck)
    parc = Parcellation.load(next(d.glob("*_seg-schaefer200_dseg.nii.gz")), name="schaefer200")
    conn = build_connectomes(trk, parc, weightings=("count",), assignment="radial", radius=2.0)["count"].weights
    distinct = (conn.sum() - np.trace(conn)) / 2.0
    maps = MicrostructureMaps.from_index(next(d.glob("*_model-tensor_dwimap.json")))
    registration = Registration.load(next(d.glob("*_xfm.npz")))
    tissue = as_tissue_image(template_tissue(registration, maps.mask, fa=maps["fa"], md=maps["md"]), maps.affine)
    pv = tissue.sample(trk.to_voxel(trk.endpoints().reshape(-1, 3)), trk.affine)
    gm_ends = float(((pv[:, 0] + pv[:, 1]) >= 0.5).reshape(-1, 2).all(1).mean())
    coverage = pd.read_csv(next(d.glob("*_seg-schaefer200_coverage.tsv")), sep="\t")
    return {"streamlines": len(trk), "assigned": float(distinct / len(trk)), "gm_ends": gm_ends,
            "labels_lost": int((coverage["status"] != "ok").sum()), "dice": registration.mask_dice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds-per-voxel", type=int, default=2)
    args = parser.parse_args()
    if not SCAN.is_dir():
        sys.exit(f"the shared scan is not here: {SCAN}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bids = _bids(Path(tmp))
        for name, flags in CONFIGS.items():
            out = Path(tmp) / f"out{len(rows)}"
            start = time.perf_counter()
            subprocess.run(["pigment-connect", "run", str(bids), str(out), "--quiet", "--seeds-per-voxel",
                            str(args.seeds_per_voxel), *flags], check=True)
            wall = time.perf_counter() - start
            rows.append({"configuration": name, **score(out), "wall_s": wall})
    lines = ["| configuration | streamlines | assigned to distinct Schaefer-200 nodes | both ends in GM | "
             "labels lost (of 200) | brain-mask Dice | wall (s) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['configuration']} | {r['streamlines']:,} | {r['assigned']:.1%} | {r['gm_ends']:.1%} | "
              f"{r['labels_lost']} | {r['dice']:.3f} | {r['wall_s']:.0f} |" for r in rows]
    print("Real whole-brain scan (ADNI, Philips b=1000 ×16, 2 mm) through `pigment-connect run`, "
          f"{args.seeds_per_voxel} seeds per voxel, default atlas Schaefer-200.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
