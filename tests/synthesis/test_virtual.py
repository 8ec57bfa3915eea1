"""Virtual scans: q-space prediction for any table, the measured volumes kept, bad tables refused."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pigment_connect.datasets import make_subject
from pigment_connect.errors import InputError
from pigment_connect.fit import TensorModel
from pigment_connect.io import load_dwi
from pigment_connect.io.dwi import DiffusionData
from pigment_connect.io.gradients import GradientTable
from pigment_connect.synthesis import (STANDARD_TABLES, ExtrapolationWarning, VirtualScan, standard_table,
                                       synthesize)
from pigment_connect.synthesis.virtual import residual_correction, same_volume


@pytest.fixture(scope="module")
def dense():
    """A small phantom on 3 b0 + 32 × b=1000 + 32 × b=2000 at high SNR (the measurements ≈ the truth)."""
    return make_subject(shape=(24, 24, 6), protocol="dense", snr=200.0, seed=3)


def _sparse(dwi: DiffusionData, index) -> DiffusionData:
    return DiffusionData(dwi.data[..., index], dwi.affine, dwi.mask, dwi.gtab.subset(index))


def _nrmse(a, b, mask):
    return float(np.sqrt(np.mean((a[mask] - b[mask]) ** 2)) / np.percentile(b[mask], 99.9))


def test_pigment_predicts_an_unmeasured_shell_that_the_tensor_cannot(dense):
    """From 1 b0 + 12 directions at b=1000, the b=2000 shell: the tensor's mono-exponential misses the
    kurtosis; PIGMENT's tissue carries it."""
    dwi = dense.dwi
    gtab = dwi.gtab
    sparse = np.r_[0, np.flatnonzero(np.abs(gtab.bvals - 1000) < 50)[::3][:12]]
    shell2 = np.flatnonzero(np.abs(gtab.bvals - 2000) < 50)
    measured = _sparse(dwi, sparse)
    with pytest.warns(ExtrapolationWarning):  # b=2000 from b=1000 alone: the prior's extrapolation
        scan = synthesize(measured, gtab.subset(shell2))
    tensor = TensorModel(measured.gtab).fit(measured).predict(gtab.subset(shell2))
    truth = dwi.data[..., shell2]
    ours, theirs = _nrmse(scan.data, truth, dwi.mask), _nrmse(tensor, truth, dwi.mask)
    assert ours < 0.6 * theirs, (ours, theirs)
    assert not scan.measured.any() and (scan.source_volume == -1).all()


def test_residual_interpolation_reproduces_the_measured_shell(dense):
    """On a shell the subset measured, the correction makes the prediction interpolate the
    measurements: at the measured directions it moves the prediction towards them."""
    dwi = dense.dwi
    sparse = np.r_[0, np.flatnonzero(np.abs(dwi.gtab.bvals - 1000) < 50)[:16]]
    measured = _sparse(dwi, sparse)
    fit = TensorModel(measured.gtab).fit(measured)
    own = fit.predict(measured.gtab)
    corrected = own + residual_correction(measured, fit, measured.gtab)
    m = dwi.mask
    assert np.abs(corrected[m] - measured.data[m]).mean() < np.abs(own[m] - measured.data[m]).mean()
    # an unmeasured shell gets no correction
    far = GradientTable([3000.0], [[0.0, 0.0, 1.0]])
    assert not residual_correction(measured, fit, far).any()


def test_keep_measured_merges_and_matches_repeated_volumes(dense):
    dwi = dense.dwi
    sparse = np.r_[0, np.flatnonzero(np.abs(dwi.gtab.bvals - 1000) < 50)[:10]]
    measured = _sparse(dwi, sparse)
    fit = TensorModel(measured.gtab).fit(measured)
    with pytest.warns(ExtrapolationWarning):
        scan = synthesize(measured, dwi.gtab, fit=fit, keep_measured=True)
    n = len(sparse)
    # every measured volume kept as it is, first; the target's copies of them not predicted again
    assert np.array_equal(scan.data[..., :n], measured.data)
    assert scan.measured[:n].all() and not scan.measured[n:].any()
    assert len(scan.gtab) == len(dwi.gtab)
    assert list(scan.source_volume[:n]) == list(range(n))
    assert (same_volume(dwi.gtab, measured.gtab) >= 0).sum() == n
    assert scan.model == "tensor"


def test_save_writes_a_scan_other_tools_read(dense, tmp_path):
    dwi = dense.dwi
    sparse = np.r_[0, np.flatnonzero(np.abs(dwi.gtab.bvals - 1000) < 50)[:8]]
    measured = _sparse(dwi, sparse)
    scan = synthesize(measured, standard_table("dti-64"), fit=TensorModel(measured.gtab).fit(measured),
                      keep_measured=True)
    files = scan.save(tmp_path / "sub-01_dwi.nii.gz")
    assert sorted(p.name for p in files.values()) == ["sub-01_dwi.bval", "sub-01_dwi.bvec", "sub-01_dwi.json",
                                                      "sub-01_dwi.nii.gz"]
    back = load_dwi(files["dwi"], mask=dwi.mask)
    assert np.allclose(back.gtab.bvals, scan.gtab.bvals) and np.allclose(back.gtab.bvecs, scan.gtab.bvecs, atol=1e-7)
    side = json.loads(files["json"].read_text())
    assert side["VolumeType"].count("measured") == len(sparse)
    assert side["NumberPredicted"] == len(scan.gtab) - len(sparse) == side["VolumeType"].count("predicted")
    assert side["SourceVolume"][:len(sparse)] == list(range(len(sparse)))


@pytest.mark.parametrize("name", STANDARD_TABLES)
def test_standard_tables_are_physical(name):
    gtab = standard_table(name)
    assert gtab.n_b0 >= 4 and len(gtab.shells) >= 1
    for k in range(len(gtab.shells)):  # every shell's directions distinct (spread by repulsion)
        assert gtab.n_noncollinear(k) == gtab.shell_sizes[k]


def test_tables_outside_the_physics_are_refused(dense):
    dwi = dense.dwi
    with pytest.raises(InputError, match="above 10000"):
        synthesize(dwi, GradientTable([0.0, 20000.0], [[0, 0, 0], [1.0, 0, 0]]), fit=object())
    with pytest.raises(InputError, match="not unit length"):
        GradientTable([0.0, 1000.0], [[0, 0, 0], [0.5, 0, 0]])
    with pytest.raises(InputError, match="NaN"):
        GradientTable([0.0, np.nan], [[0, 0, 0], [1.0, 0, 0]])
    with pytest.raises(InputError, match="no standard table"):
        standard_table("hcp")


def test_predicting_far_beyond_the_measured_b_warns(dense):
    dwi = dense.dwi
    sparse = np.r_[0, np.flatnonzero(np.abs(dwi.gtab.bvals - 1000) < 50)[:8]]
    measured = _sparse(dwi, sparse)
    fit = TensorModel(measured.gtab).fit(measured)
    with pytest.warns(ExtrapolationWarning, match="extrapolated"):
        synthesize(measured, GradientTable([0.0, 3000.0], [[0, 0, 0], [0, 0, 1.0]]), fit=fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        synthesize(measured, GradientTable([0.0, 1200.0], [[0, 0, 0], [0, 0, 1.0]]), fit=fit)


def test_virtual_scan_sidecar_lists_repairs():
    scan = VirtualScan(np.zeros((2, 2, 2, 2), np.float32), GradientTable([0.0, 1000.0], [[0, 0, 0], [1.0, 0, 0]]),
                       np.eye(4), np.ones((2, 2, 2), bool), np.array([True, False]), np.array([0, -1]), "pigment",
                       repaired=[(1, 0)])
    side = scan.sidecar()
    assert side["RepairedSlices"] == [{"volume": 1, "slice": 0}] and side["SourceVolume"] == [0, None]
