"""``pigment-connect synthesize``: a virtual scan with its table and sidecar; repair; never over its input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from pigment_connect.cli.main import main
from pigment_connect.datasets import make_subject
from pigment_connect.io import load_dwi
from pigment_connect.io.write import save_nifti


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A clinical-style phantom scan (1 b0 + 12 × b=1000) with one dropout slice, as files."""
    root = tmp_path_factory.mktemp("synth")
    subject = make_subject(shape=(24, 26, 8), protocol="clinical", snr=40.0, seed=4)
    dwi = subject.dwi
    data = dwi.data.copy()
    data[:, :, 4, 7] *= 0.3
    path = root / "sub-01_dwi.nii.gz"
    save_nifti(path, data, dwi.affine)
    dwi.gtab.to_fsl(root / "sub-01_dwi.bval", root / "sub-01_dwi.bvec", affine=dwi.affine)
    save_nifti(root / "mask.nii.gz", dwi.mask, dwi.affine)
    return root, path


def test_scheme_to_a_virtual_scan(scan, tmp_path):
    root, dwi = scan
    out = tmp_path / "virtual" / "sub-01_dwi.nii.gz"
    assert main(["synthesize", str(dwi), str(out), "--scheme", "dti-64", "--mask", str(root / "mask.nii.gz"),
                 "--quiet"]) == 0
    virtual = load_dwi(out, mask=root / "mask.nii.gz")
    assert len(virtual.gtab) == 68 and virtual.gtab.n_b0 == 4
    side = json.loads((out.parent / "sub-01_dwi.json").read_text())
    assert side["NumberPredicted"] == 68 and side["PredictionModel"] == "pigment"
    assert np.isfinite(virtual.data).all() and virtual.data[virtual.mask].mean() > 0


def test_repair_alone_keeps_the_table_and_lists_the_slice(scan, tmp_path):
    root, dwi = scan
    out = tmp_path / "sub-01_dwi.nii.gz"
    assert main(["synthesize", str(dwi), str(out), "--repair", "--model", "tensor", "--mask",
                 str(root / "mask.nii.gz"), "--quiet"]) == 0
    side = json.loads((tmp_path / "sub-01_dwi.json").read_text())
    assert side["RepairedSlices"] == [{"volume": 7, "slice": 4}]
    assert side["NumberMeasured"] == 13 and side["NumberPredicted"] == 0
    repaired = np.asarray(nib.load(out).dataobj)
    original = np.asarray(nib.load(dwi).dataobj)
    assert np.array_equal(np.delete(repaired, 7, axis=3), np.delete(original, 7, axis=3))
    mask = np.asarray(nib.load(root / "mask.nii.gz").dataobj).astype(bool)
    assert repaired[:, :, 4, 7][mask[:, :, 4]].mean() > 2 * original[:, :, 4, 7][mask[:, :, 4]].mean()


def test_it_never_overwrites_its_input_or_an_output(scan, tmp_path, capsys):
    root, dwi = scan
    assert main(["synthesize", str(dwi), str(dwi), "--repair"]) == 2
    assert "overwrite an input" in capsys.readouterr().err
    out = tmp_path / "x_dwi.nii.gz"
    (tmp_path / "x_dwi.bval").write_text("0\n")
    assert main(["synthesize", str(dwi), str(out), "--scheme", "dti-64"]) == 2
    err = capsys.readouterr().err
    assert "exists already" in err and "x_dwi.bval" in err and "--force" in err


@pytest.mark.parametrize("bvals, bvecs, message", [
    ("0 20000", "0 1\n0 0\n0 0\n", "above 10000"),
    ("0 1000", "0 0.5\n0 0\n0 0\n", "not unit length"),
    ("0 nan", "0 1\n0 0\n0 0\n", "NaN"),
])
def test_a_table_outside_the_physics_is_refused(scan, tmp_path, capsys, bvals, bvecs, message):
    root, dwi = scan
    (tmp_path / "t.bval").write_text(bvals + "\n")
    (tmp_path / "t.bvec").write_text(bvecs)
    code = main(["synthesize", str(dwi), str(tmp_path / "o_dwi.nii.gz"), "--table", str(tmp_path / "t.bval"),
                 str(tmp_path / "t.bvec"), "--model", "tensor"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "t.b" in err, err


def test_nothing_asked_is_an_error(scan, tmp_path, capsys):
    _, dwi = scan
    assert main(["synthesize", str(dwi), str(tmp_path / "o_dwi.nii.gz")]) == 2
    assert "--scheme" in capsys.readouterr().err
