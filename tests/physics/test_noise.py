import numpy as np
import pytest
import torch
from scipy import stats

from pigment_connect.physics import gaussian_nll, rician_nll
from pigment_connect.physics.noise import estimate_sigma_b0, rician_expected_residual


def test_rician_nll_matches_scipy():
    nu = torch.tensor([[0.0, 5.0, 50.0, 800.0]], dtype=torch.float64)
    m = torch.tensor([[3.0, 4.0, 60.0, 790.0]], dtype=torch.float64)
    sigma = 20.0
    ref = -stats.rice.logpdf(m.numpy(), nu.numpy() / sigma, scale=sigma).sum()
    assert abs(rician_nll(nu, m, sigma).item() - ref) < 1e-9


def test_gaussian_nll_matches_scipy():
    nu = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    m = torch.tensor([[1.5, 1.0]], dtype=torch.float64)
    ref = -stats.norm.logpdf(m.numpy(), nu.numpy(), 0.7).sum()
    assert abs(gaussian_nll(nu, m, 0.7).item() - ref) < 1e-12


def test_expected_residual_is_the_scaled_gradient():
    nu = torch.tensor([[2.0, 30.0, 300.0]], dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[10.0, 25.0, 310.0]], dtype=torch.float64)
    rician_nll(nu, m, 10.0).sum().backward()
    np.testing.assert_allclose(rician_expected_residual(nu.detach(), m, 10.0).numpy(), -100.0 * nu.grad.numpy(),
                               rtol=1e-9)


@pytest.mark.parametrize("k", [2, 6, 13])
def test_sigma_from_repeated_b0(rng, k):
    b0 = 1000.0 + 25.0 * rng.standard_normal((20000, k))
    assert abs(estimate_sigma_b0(torch.as_tensor(b0)).item() - 25.0) < 0.03 * 25.0


def test_sigma_from_b0_ignores_voxels_that_fluctuate_for_other_reasons(rng):
    """A fifth of the voxels (CSF-like pulsation) with b=0 scatter 5× the noise: a pooled mean of
    the variances would read σ ≈ 55; the estimate stays within 15% of the noise (the median of the
    mixture sits at the clean voxels' 62nd percentile)."""
    b0 = 1000.0 + 25.0 * rng.standard_normal((5000, 6))
    b0[:1000] += 125.0 * rng.standard_normal((1000, 6))
    pooled = float(np.sqrt(b0.var(axis=1, ddof=1).mean()))
    assert pooled > 50.0
    assert abs(estimate_sigma_b0(torch.as_tensor(b0)).item() - 25.0) < 0.15 * 25.0
