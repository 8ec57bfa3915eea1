"""σ for scans with one b=0 volume: from the residuals of a tensor fit where directions are spare."""

import warnings

import numpy as np
import pytest

from pigment_connect.datasets import make_protocol, make_subject
from pigment_connect.errors import InputWarning
from pigment_connect.fit.noise import residual_sigma
from pigment_connect.fit.noise import DEFAULT_SNR, noise_sigma, white_matter_b0


@pytest.mark.parametrize(("snr", "tolerance"), [(30.0, 0.05), (10.0, 0.15)])
def test_residual_sigma_recovers_the_phantom_noise(snr, tolerance):
    subject = make_subject(protocol="clinical", snr=snr, seed=3)  # 1 b0 + 12 directions
    signal = subject.dwi.data[subject.dwi.mask]
    true = float(subject.truth["sigma"])
    estimate = residual_sigma(signal, subject.dwi.gtab)
    assert abs(estimate / true - 1) < tolerance, (estimate, true)  # measured 0.99 (SNR 30), 0.90 (SNR 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # estimated: no "assuming SNR" warning
        assert noise_sigma(subject.dwi.gtab, None, signal) == estimate


def test_one_b0_and_six_directions_assume_the_snr_in_white_matter():
    subject = make_subject(protocol="sparse6", snr=DEFAULT_SNR, seed=3)  # b=0 SNR 30 in white matter
    gtab, signal = subject.dwi.gtab, subject.dwi.data[subject.dwi.mask]
    true = float(subject.truth["sigma"])
    assert residual_sigma(signal, gtab) is None
    with pytest.warns(InputWarning, match="assuming SNR 30 on b=0 in white matter"):
        sigma = noise_sigma(gtab, None, signal)
    assert sigma == pytest.approx(white_matter_b0(signal, gtab) / DEFAULT_SNR)
    assert abs(sigma / true - 1) < 0.1, (sigma, true)
    brain_median = float(np.median(signal[:, gtab.b0s_mask])) / DEFAULT_SNR  # grey matter and CSF are brighter
    assert abs(brain_median / true - 1) > abs(sigma / true - 1)


def test_without_white_matter_the_snr_is_assumed_on_every_voxel():
    gtab = make_protocol("sparse6")
    b0 = np.random.default_rng(0).uniform(100, 1000, size=(500, 1))
    signal = np.where(gtab.b0s_mask, b0, b0 * np.exp(-1.0))  # isotropic: FA 0 everywhere
    assert residual_sigma(signal, gtab) is None and white_matter_b0(signal, gtab) is None
    with pytest.warns(InputWarning, match="assuming SNR 30 on b=0 in all voxels"):
        sigma = noise_sigma(gtab, None, signal)
    assert sigma == pytest.approx(np.median(b0) / DEFAULT_SNR)


def test_residual_sigma_on_a_real_scan_agrees_with_its_repeated_b0s(shared_data):
    import torch

    from pigment_connect.io import load_dwi
    from pigment_connect.physics.noise import estimate_sigma_b0

    folder = shared_data / "dwi_mdt_b1k_b2k"
    stem = "b1k_b2k_example_slices_24_38"
    dwi = load_dwi(folder / f"{stem}.nii.gz", bvals=folder / "b1k_b2k.bval", bvecs=folder / "b1k_b2k.bvec",
                   mask=folder / f"{stem}_mask.nii.gz")
    signal = np.clip(dwi.data[dwi.mask], 0, None)
    from_b0s = float(estimate_sigma_b0(torch.as_tensor(signal[:, dwi.gtab.b0s_mask])))  # 13 repeats
    first_b0 = int(np.flatnonzero(dwi.gtab.b0s_mask)[0])
    shell = np.flatnonzero(np.abs(dwi.gtab.bvals - 1000) < 50)[:12]
    vols = np.r_[first_b0, shell]
    estimate = residual_sigma(signal[:, vols], dwi.gtab.subset(vols))
    assert abs(estimate / from_b0s - 1) < 0.15, (estimate, from_b0s)  # measured 13.9 against 15.7
