"""The tissue simulator's axial disorder against numerical integration (scipy)."""

import numpy as np
import torch
from scipy import integrate, stats

from pigment_connect.physics.noddi import D_ISO
from pigment_connect.pigment.simulate import _DA_STEP, _da_weights, _fascicle_signal, simulate_tissue, canonical_protocol

T = lambda a: torch.as_tensor(np.atleast_1d(np.asarray(a, dtype=np.float64)))  # noqa: E731
AXIS = T([[0.0, 0.0, 1.0]])


def test_stick_diffusivities_follow_the_truncated_gamma():
    """The binned D_a distribution has the mean and spread of a gamma truncated at free water's D."""
    d_a, cv = np.array([1.5e-3, 2.4e-3, 2.0e-3]), np.array([0.3, 0.4, 0.0])
    grid, w = _da_weights(d_a, cv)
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert grid.max() < D_ISO
    for i in range(2):
        k = 1.0 / cv[i] ** 2
        law = stats.gamma(k, scale=d_a[i] / k)
        mean = law.expect(lambda x: x, lb=0, ub=D_ISO, conditional=True)
        var = law.expect(lambda x: (x - mean) ** 2, lb=0, ub=D_ISO, conditional=True)
        ours = w[i] @ grid
        np.testing.assert_allclose(ours, mean, rtol=5e-3)
        np.testing.assert_allclose(np.sqrt(w[i] @ (grid - ours) ** 2), np.sqrt(var), rtol=0.03)
    # cv = 0: one diffusivity (the Gaussian standard model), as far as the grid resolves it
    assert abs(w[2] @ grid - d_a[2]) <= 0.5 * _DA_STEP and np.sqrt(w[2] @ (grid - w[2] @ grid) ** 2) <= _DA_STEP


def test_disordered_zeppelin_is_the_gamma_average_of_gaussian_ones():
    """Attenuation of the zeppelin with a gamma-distributed anisotropic part equals the numerical
    average of Gaussian zeppelins over that gamma law (scipy quad), for several directions and b."""
    bvals = T([500.0, 1000.0, 2000.0, 3000.0] * 3)
    cos = np.repeat([1.0, 0.6, 0.2], 4)
    bvecs = T(np.stack([np.sqrt(1 - cos**2), np.zeros_like(cos), cos], -1))
    odi, de_par, de_perp, cv = 0.1, 1.8e-3, 0.5e-3, 0.7
    grid, w = _da_weights(np.array([2.0e-3]), np.array([0.0]))
    sig = _fascicle_signal(T(0.0), T(odi), (grid, w), T(de_par), T(de_perp), T(cv), AXIS, bvals, bvecs)[0].numpy()
    gauss = _fascicle_signal(T(0.0), T(odi), (grid, w), T(de_par), T(de_perp), T(0.0), AXIS, bvals, bvecs)[0].numpy()
    k = 1.0 / cv**2
    law = stats.gamma(k, scale=1.0 / k)  # relative size of the anisotropic part, mean 1
    perp = T([[1.0, 0.0, 0.0]])
    for i, (b, c) in enumerate(zip(bvals.numpy(), cos)):
        # the Gaussian zeppelin's exponent split into its radial part (measured perpendicular to the
        # axis) and its anisotropic part, which the disorder scales by a gamma variable of mean 1
        radial = -np.log(_fascicle_signal(T(0.0), T(odi), (grid, w), T(de_par), T(de_perp), T(0.0), AXIS, T(b),
                                          perp)[0, 0].item())
        aniso = -np.log(gauss[i]) - radial
        expected, _ = integrate.quad(lambda x: np.exp(-radial - aniso * x) * law.pdf(x), 0, np.inf)
        np.testing.assert_allclose(sig[i], expected, rtol=1e-5, err_msg=f"b={b}, cos={c}")
    assert np.all(sig >= gauss - 1e-12)  # disorder at the same mean raises the attenuation's tail


def _axial_kurtosis(signal_of_b):
    """K from the small-b cumulant expansion ln S = −bD + b²D²K/6 (cubic fit on b ≤ 300 s/mm²)."""
    b = np.linspace(0.0, 300.0, 13)
    c3, c2, c1, _ = np.polyfit(b, np.log(signal_of_b(b)), 3)
    return 6.0 * c2 / c1**2


def test_axial_disorder_gives_the_sticks_kurtosis_three_cv_squared():
    """Aligned sticks (ODI 0.005) whose D_a is spread with coefficient of variation cv show axial
    kurtosis 3·cv² (the variance of D_a over its mean squared, ×3); with cv = 0 almost none."""
    for cv in (0.0, 0.2, 0.35):
        grid, w = _da_weights(np.array([1.2e-3]), np.array([cv]))

        def along_axis(b):
            return _fascicle_signal(T(1.0), T(0.005), (grid, w), T(1.5e-3), T(0.5e-3), T(0.0), AXIS, T(b),
                                    AXIS.expand(len(b), 3))[0].numpy()

        mean = w[0] @ grid
        expected = 3.0 * (w[0] @ (grid - mean) ** 2) / mean**2
        assert abs(_axial_kurtosis(along_axis) - expected) < 0.02 + 0.03 * expected, cv


def test_simulated_voxels_are_reproducible_and_record_their_disorder():
    gtab = canonical_protocol()
    a, pa = simulate_tissue(50, gtab, seed=4, snr=(20.0, 40.0))
    b, _ = simulate_tissue(50, gtab, seed=4, snr=(20.0, 40.0))
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and a.shape == (50, len(gtab))
    assert (pa["cv_a"] >= 0).all() and (pa["cv_e"] >= 0).all() and (pa["d_a"] < D_ISO).all()
