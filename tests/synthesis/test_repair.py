"""Repair of outlier slices: injected dropouts (known truth) found and replaced, on phantoms and on
real scans."""

from __future__ import annotations

import numpy as np
import pytest

from pigment_connect.datasets import make_subject
from pigment_connect.errors import InputError
from pigment_connect.io import load_dwi
from pigment_connect.io.dwi import DiffusionData
from pigment_connect.synthesis import detect_outliers, repair


def _inject(dwi: DiffusionData, pairs, factor):
    data = dwi.data.copy()
    for v, k in pairs:
        data[:, :, k, v] *= factor
    return DiffusionData(data, dwi.affine, dwi.mask, dwi.gtab)


def _slice_error(a, b, mask, pairs):
    num = sum(float(np.sum((a[:, :, k, v][mask[:, :, k]] - b[:, :, k, v][mask[:, :, k]]) ** 2)) for v, k in pairs)
    den = sum(float(np.sum(b[:, :, k, v][mask[:, :, k]] ** 2)) for v, k in pairs)
    return np.sqrt(num / den)


@pytest.fixture(scope="module")
def phantom():
    return make_subject(shape=(30, 34, 12), protocol="dense", snr=30.0, seed=5).dwi


def test_phantom_dropouts_found_and_replaced(phantom):
    pairs = {(5, 4), (20, 6), (40, 7), (41, 7), (60, 3)}  # two in one slice, both shells
    bad = _inject(phantom, pairs, 0.3)
    result = repair(bad)
    found = set(result.report.pairs())
    assert found == pairs
    before = _slice_error(bad.data, phantom.data, phantom.mask, pairs)
    after = _slice_error(result.dwi.data, phantom.data, phantom.mask, pairs)
    assert after < 0.25 * before, (before, after)
    # nothing else touched
    untouched = np.ones(phantom.data.shape, bool)
    for v, k in pairs:
        untouched[:, :, k, v] = False
    assert np.array_equal(result.dwi.data[untouched], bad.data[untouched])


def test_a_clean_scan_has_no_outliers(phantom):
    assert repair(phantom).report.pairs() == []


def test_a_corrupted_volume_is_flagged_whole(phantom):
    rng = np.random.default_rng(0)
    data = phantom.data.copy()
    data[..., 30] *= rng.uniform(0.3, 0.7, size=phantom.shape[2])[None, None, :]  # every slice off
    report = repair(DiffusionData(data, phantom.affine, phantom.mask, phantom.gtab)).report
    assert report.volumes[30] and report.volumes.sum() == 1
    assert report.slices[30][np.isfinite(report.z[30])].all()


def test_spikes_are_outliers_too(phantom):
    bad = _inject(phantom, {(12, 5)}, 2.0)
    assert set(repair(bad).report.pairs()) == {(12, 5)}


def test_exactly_determined_tables_cannot_show_outliers():
    """1 b0 + 6 directions with DTI: the fit reproduces every measurement (the module says so)."""
    dwi = make_subject(shape=(24, 28, 8), protocol="sparse6", snr=30.0, seed=2).dwi
    bad = _inject(dwi, {(3, 4)}, 0.3)
    assert repair(bad).report.pairs() == []


def test_bad_arguments(phantom):
    with pytest.raises(InputError, match="slice axis"):
        detect_outliers(phantom, phantom.data, axis=3)


@pytest.mark.shared_data
@pytest.mark.parametrize("scan", ["adni", "msmt"])
def test_real_scan_injected_dropouts(shared_data, scan):
    """Ten dropouts (half the signal left) in a real scan: found with no false alarm beyond the real
    outliers the clean scan has, and replaced closer to the truth."""
    if scan == "adni":
        dwi = load_dwi(shared_data / "dwi_philips_elitionx_adni_wholebrain_b1000" / "dwi.nii.gz")
    else:
        folder = shared_data / "dwi_mrtrix3_msmt_crop"
        dwi = load_dwi(folder / "dwi.nii.gz", mask=folder / "mask.nii.gz")
    clean = set(repair(dwi).report.pairs())
    rng = np.random.default_rng(1)
    slices = np.flatnonzero(dwi.mask.sum((0, 1)) >= 20)
    dw = np.flatnonzero(~dwi.gtab.b0s_mask)
    pairs: set = set()
    while len(pairs) < 10:
        pairs.add((int(rng.choice(dw)), int(rng.choice(slices))))
    pairs -= clean
    result = repair(_inject(dwi, pairs, 0.5))
    found = set(result.report.pairs()) - clean
    recall, precision = len(found & pairs) / len(pairs), len(found & pairs) / max(len(found), 1)
    assert recall >= 0.8 and precision >= 0.9, (recall, precision)
    bad = _inject(dwi, pairs, 0.5)
    assert _slice_error(result.dwi.data, dwi.data, dwi.mask, pairs) < 0.6 * _slice_error(bad.data, dwi.data,
                                                                                          dwi.mask, pairs)
