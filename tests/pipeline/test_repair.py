"""`run --repair`: a dropout slice is found and replaced before the fits, the repaired scan and the
list of slices are written, the report shows them, and the unrepaired configuration is untouched."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from pigment_connect.datasets import make_cohort, write_bids
from pigment_connect.datasets.phantom import subject_parcellation_pattern
from pigment_connect.io import MicrostructureMaps
from pigment_connect.pipeline import PipelineConfig, run_cohort

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "model-tensor" in p.name}


def test_run_repair_replaces_a_dropout_and_keeps_the_other_configuration(tmp_path):
    bids = write_bids(make_cohort(1, shape=(32, 36, 10), seed=2), tmp_path / "bids")
    image = bids / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"
    img = nib.load(image)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[:, :, 5, 9] *= 0.25  # a dropout: volume 9, slice 5
    nib.save(nib.Nifti1Image(data, img.affine, img.header), image)
    out = tmp_path / "out"
    base = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count", "mean_fa"))
    assert list(run_cohort(bids, out, base, progress=False).summary["status"]) == ["ok"]
    before = _digests(out)

    repaired = base.replace(repair="tensor")
    result = run_cohort(bids, out, repaired, progress=False)
    assert list(result.summary["status"]) == ["ok"], result.summary["error"].tolist()
    sub = out / "sub-01" / "dwi"
    side = json.loads((sub / "sub-01_space-dwi_desc-repaired_dwi.json").read_text())
    assert side["RepairedSlices"] == [{"volume": 9, "slice": 5}]
    fixed = np.asarray(nib.load(sub / "sub-01_space-dwi_desc-repaired_dwi.nii.gz").dataobj)
    mask = MicrostructureMaps.load(sub, prefix="sub-01", model="tensor").mask
    assert fixed[:, :, 5, 9][mask[:, :, 5]].mean() > 2.5 * data[:, :, 5, 9][mask[:, :, 5]].mean()
    assert (sub / "sub-01_model-tensorrepaired_dwimap.json").is_file()
    assert any(sub.glob("sub-01_model-tensorrepaired_algo-tensorline_seg-phantom_meas-count_connectome.npz"))
    assert (sub / "sub-01_space-dwi_desc-repaired_outliers.tsv").is_file()
    # the first configuration's files are byte-identical
    after = _digests(out)
    assert {k: after[k] for k in before} == before
    # the report says what was replaced
    html = next(out.rglob("sub-01_report.html")).read_text()
    assert "Repair (tensor fit): 1 of" in html and "volume 9 slice 5" in html
    # a rerun skips the repair and keeps its warning
    again = run_cohort(bids, out, repaired, progress=False)
    assert list(again.summary["status"]) == ["skipped"]


@pytest.mark.slow
def test_repair_with_fod_tracking_and_another_model(tmp_path):
    """FODs of the repaired scan (model-msmtrepaired on two shells), its tensor for the FA seeds and
    stops, and the PIGMENT maps of the repaired scan: every product named as repaired."""
    from pigment_connect.datasets import make_subject

    bids = write_bids([make_subject(shape=(28, 30, 8), protocol="dense", seed=3)], tmp_path / "bids")
    config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count",), model="pigment-zeroshot",
                            tracking_model="fod", tracking_algorithm="probabilistic", repair="tensor")
    result = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(result.summary["status"]) == ["ok"], result.summary["error"].tolist()
    sub = tmp_path / "out" / "sub-01" / "dwi"
    for name in ("sub-01_model-msmtrepaired_param-fod_dwimap.nii.gz", "sub-01_model-tensorrepaired_dwimap.json",
                 "sub-01_model-pigmentzeroshotrepaired_dwimap.json",
                 "sub-01_space-dwi_model-pigmentzeroshotrepaired_algo-fodprobabilistic_tractography.tck"):
        assert (sub / name).is_file(), name
    assert not any(sub.glob("*model-msmt_*")) and not any(sub.glob("*model-pigmentzeroshot_*"))
