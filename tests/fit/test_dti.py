import numpy as np
import pytest
import torch

from pigment_connect.errors import InputWarning, ProtocolError
from pigment_connect.fit import TensorModel
from pigment_connect.io import GradientTable, load_dwi
from pigment_connect.physics.dti import tensor_from_six


def test_wls_matches_dipy_on_the_phantom(phantom):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel as DipyTensorModel

    ours = TensorModel(phantom.dwi.gtab).fit(phantom.dwi)
    gt = gradient_table(phantom.dwi.gtab.bvals, bvecs=phantom.dwi.gtab.bvecs)
    ref = DipyTensorModel(gt, fit_method="WLS").fit(phantom.dwi.data, mask=phantom.dwi.mask)
    m = phantom.dwi.mask
    # same estimator (OLS-weighted WLS, min positive signal floor): float64 agreement
    np.testing.assert_allclose(ours.fa[m], ref.fa[m], atol=1e-5)
    np.testing.assert_allclose(ours.md[m], ref.md[m], rtol=1e-5)
    cos = np.abs(np.sum(ours.evec1[m] * ref.evecs[m][..., :, 0], axis=-1))
    assert np.percentile(cos, 1) > 0.9999


def test_fit_recovers_phantom_orientation_and_anisotropy(phantom, phantom_tensor_maps):
    wm = phantom.truth["wm"] & ~phantom.truth["crossing"]
    cos = np.abs(np.sum(phantom_tensor_maps["evec1"][wm] * phantom.truth["orientation"][wm], axis=-1))
    assert np.median(cos) > 0.99
    # DTI at b=1000 reads non-Gaussian tissue a little anisotropic-high, MD low (DESIGN.md traps)
    fa_err = phantom_tensor_maps["fa"][wm] - phantom.truth["fa"][wm]
    assert 0.0 < np.median(fa_err) < 0.08
    md_ratio = np.median(phantom_tensor_maps["md"][wm] / phantom.truth["md"][wm])
    assert 0.8 < md_ratio < 1.0


def test_noise_free_single_tensor_is_recovered_exactly():
    from dipy.sims.voxel import single_tensor

    gtab = GradientTable(*_protocol())
    from dipy.core.gradients import gradient_table

    evals = np.array([1.7e-3, 0.3e-3, 0.2e-3])
    angle = np.deg2rad(30)
    evecs = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    signal = single_tensor(gradient_table(gtab.bvals, bvecs=gtab.bvecs), S0=100, evals=evals, evecs=evecs)
    fit = TensorModel(gtab).fit(signal[None])
    np.testing.assert_allclose(fit.evals[0], evals, rtol=1e-8)
    assert abs(fit.evec1[0] @ evecs[:, 0]) == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(fit.predict()[0], signal, rtol=1e-8)


def _protocol(n_dirs=12):
    i = np.arange(n_dirs) + 0.5
    z = 1 - i / n_dirs
    phi = np.pi * (3 - np.sqrt(5)) * i
    dirs = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    return np.r_[0.0, np.full(n_dirs, 1000.0)], np.r_[[[0, 0, 0]], dirs]


def test_b0_only_protocol_is_refused_not_fitted():
    with pytest.raises(ProtocolError, match="only b=0"):
        TensorModel(GradientTable(np.zeros(4), np.zeros((4, 3))))


def test_fewer_than_six_directions_is_refused():
    bvals, bvecs = _protocol(5)
    with pytest.raises(ProtocolError, match="at least 6 non-collinear"):
        TensorModel(GradientTable(bvals, bvecs))
    # six volumes on only three distinct axes (repeats) are refused as well
    bvals = np.r_[0.0, np.full(6, 1000.0)]
    bvecs = np.r_[[[0, 0, 0]], np.eye(3), -np.eye(3)]
    with pytest.raises(ProtocolError, match="3 distinct"):
        TensorModel(GradientTable(bvals, bvecs))


@pytest.mark.shared_data
def test_matches_dipy_on_a_real_scan(shared_data):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel as DipyTensorModel

    folder = shared_data / "dwi_dipy_small"
    with pytest.warns(InputWarning, match="rows of"):  # DIPY's file stores N rows of (x, y, z)
        dwi = load_dwi(folder / "small_64D.nii.gz", bvals=folder / "small_64D.bval", bvecs=folder / "small_64D.bvec")
    assert np.linalg.det(dwi.affine[:3, :3]) < 0  # stored LAS-like: DIPY's convention equals ours here
    # the same signal floor on both sides (the defaults differ: DIPY floors at 1e-4 or the data's minimum)
    ours = TensorModel(dwi.gtab, min_signal=1.0).fit(dwi)
    ref = DipyTensorModel(gradient_table(dwi.gtab.bvals, bvecs=dwi.gtab.bvecs), fit_method="WLS",
                          min_signal=1.0).fit(dwi.data, mask=dwi.mask)
    m = dwi.mask
    np.testing.assert_allclose(ours.fa[m], ref.fa[m], atol=1e-4)


@pytest.mark.shared_data
def test_real_scan_stored_both_ways_gives_the_same_world_orientation(shared_data, tmp_path):
    """Flip the array along x (det changes sign) keeping the FSL files: world fibres must agree."""
    import nibabel as nib

    from pigment_connect.io.write import save_nifti

    folder = shared_data / "dwi_philips_elitionx_b1000_slab"
    stem = "701_DTI_Biobank_2mm_MB3S2_EPI"
    img = nib.load(folder / f"{stem}.nii.gz")
    data = np.asarray(img.dataobj)[:, :, 12:20].astype(np.float32)
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, 2] * 12
    flipped_affine = affine @ np.array([[-1, 0, 0, data.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert np.linalg.det(affine[:3, :3]) < 0 < np.linalg.det(flipped_affine[:3, :3])
    fits = []
    for name, arr, aff in (("las", data, affine), ("ras", data[::-1], flipped_affine)):
        save_nifti(tmp_path / f"{name}.nii.gz", arr, aff)
        dwi = load_dwi(tmp_path / f"{name}.nii.gz", bvals=folder / f"{stem}.bval", bvecs=folder / f"{stem}.bvec")
        fit = TensorModel(dwi.gtab).fit(dwi, mask=np.ones(arr.shape[:3], bool))
        world = fit.evec1 @ (aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)).T
        fits.append((fit.fa, world))
    fa_las, w_las = fits[0]
    fa_ras, w_ras = fits[1][0][::-1], fits[1][1][::-1]
    np.testing.assert_allclose(fa_ras, fa_las, atol=1e-4)
    aniso = fa_las > 0.4
    assert aniso.sum() > 100
    assert np.median(np.abs(np.sum(w_las[aniso] * w_ras[aniso], axis=-1))) > 0.9999


@pytest.mark.parametrize("noise", ["gaussian", "rician"])
def test_nonlinear_fits_recover_a_noisy_tensor_better_than_or_as_well_as_wls(noise, rng):
    """1000 noisy copies of one tensor (SNR 10 at b=0, where Rician bias matters)."""
    from dipy.core.gradients import gradient_table
    from dipy.sims.voxel import single_tensor

    from pigment_connect.datasets import make_protocol

    gtab = make_protocol("dense")
    evals = np.array([1.7e-3, 0.3e-3, 0.3e-3])
    clean = single_tensor(gradient_table(gtab.bvals, bvecs=gtab.bvecs), S0=100, evals=evals, evecs=np.eye(3))
    sigma = 10.0
    noisy = np.sqrt((clean + sigma * rng.standard_normal((1000, len(gtab)))) ** 2
                    + (sigma * rng.standard_normal((1000, len(gtab)))) ** 2)
    wls = TensorModel(gtab).fit(noisy)
    fit = TensorModel(gtab, fit_method="NLLS", noise=noise, sigma=sigma).fit(noisy)
    matrices = tensor_from_six(torch.as_tensor(fit.tensor)).numpy()
    assert np.all(np.linalg.eigvalsh(matrices) >= -1e-12)  # positive semi-definite by construction
    md_err = abs(np.median(fit.md) - evals.mean())
    assert md_err <= abs(np.median(wls.md) - evals.mean()) + 2e-5
    if noise == "rician":  # the Rician likelihood removes the noise-floor bias that flattens MD
        assert md_err / evals.mean() < 0.03
    assert np.median(np.abs(fit.evec1[:, 0])) > 0.99


def test_rician_fit_without_sigma_needs_two_b0(rng):
    from pigment_connect.errors import InputError

    gtab = GradientTable(*_protocol())
    with pytest.raises(InputError, match="sigma="):
        TensorModel(gtab, fit_method="NLLS", noise="rician").fit(rng.uniform(10, 100, (3, len(gtab))))


def test_the_old_rician_spelling_still_works_and_says_what_dipy_means_by_it(rng):
    from pigment_connect.errors import InputError

    gtab = GradientTable(*_protocol())
    with pytest.warns(DeprecationWarning, match="robust"):
        model = TensorModel(gtab, fit_method="RNLLS", sigma=5.0)
    assert (model.fit_method, model.noise) == ("NLLS", "rician")
    with pytest.raises(InputError, match="non-linear"):
        TensorModel(gtab, noise="rician")  # WLS has no likelihood to choose
    with pytest.raises(InputError, match="noise must be"):
        TensorModel(gtab, fit_method="NLLS", noise="poisson")
