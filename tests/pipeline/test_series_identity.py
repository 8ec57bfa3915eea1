"""Every DWI series of a subject gets its own outputs: prefixes carry every raw BIDS entity,
masks are the series' own, and two files that would share outputs are refused."""

import shutil

import pytest

from pigment_connect.cli.main import main
from pigment_connect.errors import InputError
from pigment_connect.io.bids import find_dwi_scans

PARC = "derivatives/phantom/sub-01/dwi/sub-01_space-dwi_seg-phantom_dseg.nii.gz"


def _series(folder, stem, source):
    for ext in (".nii.gz", ".bval", ".bvec"):
        shutil.copy(source.with_name("sub-01_dwi" + ext), folder / f"{stem}{ext}")


@pytest.fixture(scope="module")
def two_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("series") / "bids"
    assert main(["simulate", str(root), "--n-subjects", "1", "--shape", "32", "36", "8", "--quiet"]) == 0
    dwi_dir = root / "sub-01" / "dwi"
    source = dwi_dir / "sub-01_dwi.nii.gz"
    for stem in ("sub-01_dir-AP_dwi", "sub-01_dir-PA_dwi"):
        _series(dwi_dir, stem.removesuffix("_dwi") + "_dwi", source)
    for ext in (".nii.gz", ".bval", ".bvec"):
        (dwi_dir / f"sub-01_dwi{ext}").unlink()
    return root


def test_prefixes_carry_every_entity_and_masks_are_the_series_own(tmp_path):
    dwi_dir = tmp_path / "sub-01" / "ses-2" / "dwi"
    dwi_dir.mkdir(parents=True)
    for stem in ("sub-01_ses-2_acq-hi_run-1", "sub-01_ses-2_acq-hi_run-10"):
        for ext in ("_dwi.nii.gz", "_dwi.bval", "_dwi.bvec"):
            (dwi_dir / f"{stem}{ext}").write_bytes(b"")
    (dwi_dir / "sub-01_ses-2_acq-hi_run-10_desc-brain_mask.nii.gz").write_bytes(b"")
    scans = {s.prefix: s for s in find_dwi_scans(tmp_path)}
    assert sorted(scans) == ["sub-01_ses-2_acq-hi_run-1", "sub-01_ses-2_acq-hi_run-10"]
    assert scans["sub-01_ses-2_acq-hi_run-1"].mask is None  # run-1 must not take run-10's mask
    assert scans["sub-01_ses-2_acq-hi_run-10"].mask.name == "sub-01_ses-2_acq-hi_run-10_desc-brain_mask.nii.gz"
    (dwi_dir / "sub-01_ses-2_acq-hi_run-1_space-dwi_desc-brain_mask.nii").write_bytes(b"")
    scans = {s.prefix: s for s in find_dwi_scans(tmp_path)}
    assert scans["sub-01_ses-2_acq-hi_run-1"].mask.name == "sub-01_ses-2_acq-hi_run-1_space-dwi_desc-brain_mask.nii"
    (dwi_dir / "sub-01_ses-2_acq-hi_run-1_dwi.nii").write_bytes(b"")
    with pytest.raises(InputError, match="would share their outputs"):
        find_dwi_scans(tmp_path)


def test_two_series_of_a_subject_keep_their_own_outputs(two_series, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(two_series), str(out), "--quiet", "--parcellation", PARC])
    assert code == 0, capsys.readouterr()
    dwi = out / "sub-01" / "dwi"
    for series in ("sub-01_dir-AP", "sub-01_dir-PA"):
        assert (dwi / f"{series}_status.json").is_file() and (dwi / f"{series}_stages.json").is_file()
        assert (dwi / f"{series}_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.tsv").is_file()
        assert (dwi / f"{series}_model-tensor_param-fa_dwimap.nii.gz").is_file()
    import pandas as pd

    summary = pd.read_csv(out / "run_summary.tsv", sep="\t")
    assert sorted(summary["prefix"]) == ["sub-01_dir-AP", "sub-01_dir-PA"] and set(summary["status"]) == {"ok"}
    metrics = pd.read_csv(out / "group_graphmetrics.tsv", sep="\t")
    assert sorted(set(metrics["series"])) == ["sub-01_dir-AP", "sub-01_dir-PA"]  # rows told apart
    again = main(["run", str(two_series), str(out), "--quiet", "--parcellation", PARC])
    assert again == 0
    assert set(pd.read_csv(out / "run_summary.tsv", sep="\t")["status"]) == {"skipped"}


def test_qsiprep_derivatives_are_found_with_their_space_and_mask(two_series, tmp_path, capsys):
    """QSIPrep output (space-T1w desc-preproc series, desc-brain masks, a GeneratedBy naming
    qsiprep) is read as preprocessed input; a derivatives/ folder inside a raw root never is."""
    import json

    source = two_series / "sub-01" / "dwi" / "sub-01_dir-AP_dwi.nii.gz"
    qsiprep = tmp_path / "qsiprep"
    dwi_dir = qsiprep / "sub-01" / "ses-1" / "dwi"
    dwi_dir.mkdir(parents=True)
    stem = "sub-01_ses-1_space-T1w_desc-preproc_dwi"
    for ext in (".nii.gz", ".bval", ".bvec"):
        shutil.copy(source.with_name("sub-01_dir-AP_dwi" + ext), dwi_dir / f"{stem}{ext}")
    (qsiprep / "dataset_description.json").write_text(json.dumps(
        {"Name": "qsiprep output", "DatasetType": "derivative", "GeneratedBy": [{"Name": "qsiprep"}]}))
    scans = find_dwi_scans(qsiprep)
    assert [s.prefix for s in scans] == ["sub-01_ses-1_space-T1w"] and scans[0].mask is None
    import nibabel as nib
    import numpy as np

    img = nib.load(str(dwi_dir / f"{stem}.nii.gz"))
    mask = np.asarray(img.dataobj)[..., 0] > 0
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), str(dwi_dir / "sub-01_ses-1_space-T1w_desc-brain_mask.nii.gz"))
    assert find_dwi_scans(qsiprep)[0].mask.name == "sub-01_ses-1_space-T1w_desc-brain_mask.nii.gz"
    # auto-detection needs no dataset description: only desc-preproc series are found
    (qsiprep / "dataset_description.json").unlink()
    assert [s.prefix for s in find_dwi_scans(qsiprep)] == ["sub-01_ses-1_space-T1w"]
    # inside a raw root: derivatives/ is never read, and raw discovery skips desc-/space- files
    raw = tmp_path / "raw"
    shutil.copytree(two_series, raw)
    shutil.copytree(qsiprep, raw / "derivatives" / "qsiprep")
    assert sorted(s.prefix for s in find_dwi_scans(raw)) == ["sub-01_dir-AP", "sub-01_dir-PA"]
    parc = two_series / PARC
    code = main(["run", str(qsiprep), str(tmp_path / "out"), "--quiet", "--input-type", "qsiprep",
                 "--parcellation", str(parc), "--weighting", "count"])
    assert code == 0, capsys.readouterr()
    out = tmp_path / "out" / "sub-01" / "ses-1" / "dwi"
    assert (out / "sub-01_ses-1_space-T1w_model-tensor_algo-tensorline_tractography.tck").is_file()
    assert (out / "sub-01_ses-1_space-T1w_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.tsv").is_file()
    assert (out / "sub-01_ses-1_space-T1w_log.txt").is_file()
