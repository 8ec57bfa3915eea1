"""The defaults on the real whole-brain scan: template-derived anatomical constraints and interface
seeding make streamlines that join two distinct cortical nodes, end in grey matter, and keep the
atlas whole (the issue's targets: ≥ 70% assigned, ≥ 90% grey-matter ends, ≤ 2% labels lost)."""

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")]


def test_default_run_on_the_real_scan_reaches_the_cortex(shared_data, tmp_path):
    from pigment_connect.connectome import build_connectomes
    from pigment_connect.io import Parcellation, Tractogram
    from pigment_connect.pipeline import PipelineConfig, run_cohort
    from pigment_connect.track.tissue import as_tissue_image

    scan = shared_data / "dwi_philips_elitionx_adni_wholebrain_b1000"
    dwi = tmp_path / "bids" / "sub-adni" / "dwi"
    dwi.mkdir(parents=True)
    for ext in ("nii.gz", "bval", "bvec"):
        (dwi / f"sub-adni_dwi.{ext}").symlink_to(scan / f"dwi.{ext}")
    (tmp_path / "bids" / "dataset_description.json").write_text('{"Name": "adni", "BIDSVersion": "1.8.0"}')
    out = tmp_path / "out"
    result = run_cohort(tmp_path / "bids", out, PipelineConfig(weightings=("count",)), progress=False)
    assert list(result.summary["status"]) == ["ok"], result.summary["error"].tolist()
    d = out / "sub-adni" / "dwi"
    trk = Tractogram.load(next(d.glob("*_tractography.tck")))
    parc = Parcellation.load(next(d.glob("*_seg-schaefer200_dseg.nii.gz")), name="schaefer200")
    conn = build_connectomes(trk, parc, weightings=("count",), assignment="radial", radius=2.0)["count"].weights
    assigned = (conn.sum() - np.trace(conn)) / 2 / len(trk)
    assert assigned >= 0.70, assigned  # measured 0.777 (0.480 without constraints, from white-matter seeds)
    tissue = as_tissue_image(next(d.glob("*_desc-template5tt_probseg.nii.gz")))
    pv = tissue.sample(trk.to_voxel(trk.endpoints().reshape(-1, 3)), trk.affine)
    assert ((pv[:, 0] + pv[:, 1]) >= 0.5).reshape(-1, 2).all(1).mean() >= 0.9
    coverage = pd.read_csv(next(d.glob("*_seg-schaefer200_coverage.tsv")), sep="\t")
    assert (coverage["status"] != "ok").sum() <= 4  # measured 2
    track = next(v for k, v in json.loads(next(d.glob("*_stages.json")).read_text())["stages"].items()
                 if k.startswith("track_"))
    assert track["seeding"] == "interface" and track["constraints"].startswith("the template")
    page = next(d.glob("*_report.html")).read_text()
    assert "Anatomical constraints: the template" in page and "template-derived tissue classes" in page
