import numpy as np
import torch
from dipy.core.gradients import gradient_table
from dipy.core.geometry import perpendicular_directions
from dipy.core.sphere import Sphere
from dipy.reconst.dki import (
    apparent_kurtosis_coef,
    axial_kurtosis,
    dki_prediction,
    kurtosis_fractional_anisotropy,
    mean_kurtosis,
    radial_kurtosis,
)
from dipy.sims.voxel import multi_tensor_dki

from pigment_connect.datasets import make_protocol
from pigment_connect.physics import dki_signal, kurtosis_maps
from pigment_connect.physics.dti import six_from_tensor

T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731


def dipy_params(rng, n):
    """Realistic DKI parameters (DIPY layout: evals, evecs, 15 kt) from two-compartment tissue."""
    gtab = make_protocol("dense")
    dgtab = gradient_table(gtab.bvals, bvecs=gtab.bvecs)
    out = []
    for _ in range(n):
        angles = [tuple(rng.uniform(0, 180, 2)), tuple(rng.uniform(0, 180, 2))]
        f = rng.uniform(20, 80)
        mevals = np.array([[rng.uniform(1.4e-3, 2e-3), rng.uniform(0.2e-3, 0.5e-3), rng.uniform(0.2e-3, 0.5e-3)],
                           [rng.uniform(0.8e-3, 1.5e-3), rng.uniform(0.6e-3, 1.0e-3), rng.uniform(0.6e-3, 1.0e-3)]])
        _, dt, kt = multi_tensor_dki(dgtab, mevals, S0=100, angles=angles, fractions=[f, 100 - f], snr=None)
        evals, evecs = np.linalg.eigh(np.array([[dt[0], dt[1], dt[3]], [dt[1], dt[2], dt[4]], [dt[3], dt[4], dt[5]]]))
        out.append(np.concatenate([evals[::-1], evecs[:, ::-1].ravel(), kt]))
    return gtab, dgtab, np.array(out)


def ours_from_dipy(params):
    evals, evecs, kt = params[:, :3], params[:, 3:12].reshape(-1, 3, 3), params[:, 12:]
    mats = np.einsum("vij,vj,vkj->vik", evecs, evals, evecs)
    return six_from_tensor(T(mats)), T(kt)


def test_signal_matches_dipy_dki_prediction_to_1e_minus_6(rng):
    gtab, dgtab, params = dipy_params(rng, 15)
    tensor, kt = ours_from_dipy(params)
    ours = dki_signal(T(np.full(15, 100.0)), tensor, kt, T(gtab.bvals), T(gtab.bvecs)).numpy()
    ref = dki_prediction(params, dgtab, S0=100.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def sphere_mean_of_dipy_apparent_kurtosis(params):
    """MK as the sphere integral of DIPY's own K(n): Gauss–Legendre in cos θ × trapezoid in φ."""
    u, w = np.polynomial.legendre.leggauss(200)
    phi = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    uu, pp = np.meshgrid(u, phi, indexing="ij")
    s = np.sqrt(1 - uu**2)
    xyz = np.stack([s * np.cos(pp), s * np.sin(pp), uu], -1).reshape(-1, 3)
    weights = np.repeat(w, len(phi)) / (2 * len(phi))
    k = apparent_kurtosis_coef(params, Sphere(xyz=xyz), min_kurtosis=-np.inf)
    return k @ weights


def test_kurtosis_maps_match_dipy(rng):
    _, _, params = dipy_params(rng, 25)
    tensor, kt = ours_from_dipy(params)
    maps = kurtosis_maps(tensor, kt)
    mk = maps["mk"].numpy()
    np.testing.assert_allclose(mk, sphere_mean_of_dipy_apparent_kurtosis(params), atol=5e-6)
    # DIPY's closed form (Tabesh 2011) agrees in most voxels but is off by up to ~1% in some
    # (voxel 6 here: 0.16603 against 0.16783 from adaptive quadrature of DIPY's own K(n))
    diff = np.abs(mk - mean_kurtosis(params, max_kurtosis=10))
    assert np.median(diff) < 1e-5 and diff.max() < 0.01
    np.testing.assert_allclose(maps["ak"].numpy(), axial_kurtosis(params), atol=1e-8)
    rk = maps["rk"].numpy()
    ref_rk = [apparent_kurtosis_coef(p, Sphere(xyz=perpendicular_directions(p[3:12].reshape(3, 3)[:, 0], num=720)),
                                     min_kurtosis=-np.inf).mean() for p in params]
    np.testing.assert_allclose(rk, ref_rk, atol=1e-8)
    diff = np.abs(rk - radial_kurtosis(params))  # DIPY's closed form: same story as MK
    assert np.median(diff) < 1e-8 and diff.max() < 0.01
    np.testing.assert_allclose(maps["kfa"].numpy(), kurtosis_fractional_anisotropy(params), atol=1e-10)


def test_gaussian_tissue_has_zero_kurtosis(rng):
    tensor = T([[1.7e-3, 0.3e-3, 0.3e-3, 0, 0, 0]])
    maps = kurtosis_maps(tensor, torch.zeros(1, 15, dtype=torch.float64))
    for name in ("mk", "ak", "rk", "kfa"):
        assert maps[name].abs().max() < 1e-12
