"""Amortised PIGMENT: trained per table on prior simulations, scored on tissue with known truth."""

import numpy as np
import pytest
import torch

from pigment_connect.datasets import make_protocol
from pigment_connect.errors import InputError
from pigment_connect.fit import AmortisedPigment, TensorModel
from pigment_connect.prior import load_prior
from pigment_connect.prior.tissue import cayley_rotation, dki_tissue_signal, noddi_tissue_signal, tissue_maps

SIGMA = 0.03


@pytest.fixture(scope="module")
def scenario():
    """A trained model for the two-shell sparse protocol and 400 voxels of known tissue."""
    gtab = make_protocol("two_shell_sparse")
    prior = load_prior()
    gen = torch.Generator().manual_seed(11)
    feats = prior.decode(prior.sample_latent(400, gen)).double()
    rot = cayley_rotation(2 * torch.randn(400, 3, generator=gen, dtype=torch.float64),
                          torch.eye(3, dtype=torch.float64).expand(400, 3, 3))
    b, g = torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs)
    one = torch.ones(400, dtype=torch.float64)
    clean = 0.5 * (dki_tissue_signal(one, feats, rot, b, g) + noddi_tissue_signal(one, feats, rot, b, g))
    rng = np.random.default_rng(0)
    data = np.abs(clean.numpy() + SIGMA * (rng.normal(size=clean.shape) + 1j * rng.normal(size=clean.shape)))
    model = AmortisedPigment(gtab, n_train=20000, steps=600, seed=0, device="cpu")
    model.train()
    true = {k: v.numpy() for k, v in tissue_maps(feats).items()}
    return gtab, model, data[:, None, None, :], true


def test_amortised_maps_beat_the_tensor_fit_with_calibrated_uncertainty(scenario):
    gtab, model, data, true = scenario
    fit = model.fit(data, sigma=SIGMA)
    conv = TensorModel(gtab).fit(data)
    err = lambda a, k: np.median(np.abs(a.ravel() - true[k]))  # noqa: E731
    assert err(fit.md, "md") < 0.5 * err(conv.md, "md")
    assert err(fit.fa, "fa") < 0.9 * err(conv.fa, "fa")
    for name in ("ndi", "odi", "mk"):  # not determined voxel-wise by 1 b0 + 8 + 8: better than the population median
        assert err(getattr(fit, name), name) < 0.8 * np.median(np.abs(true[name] - np.median(true[name]))), name
    for name in ("fa", "md", "ndi"):  # posterior std: about 68% of errors within one std
        inside = np.mean(np.abs(getattr(fit, name).ravel() - true[name]) < fit.params[f"{name}_std"].ravel())
        assert 0.5 < inside < 0.9, (name, inside)


def test_save_load_round_trip_same_output_and_protocol_checked(scenario, tmp_path):
    gtab, model, data, _ = scenario
    model.save(tmp_path / "amortised")
    again = AmortisedPigment.load(tmp_path / "amortised", gtab, device="cpu")
    a, b = model.fit(data, sigma=SIGMA), again.fit(data, sigma=SIGMA)
    np.testing.assert_array_equal(a.fa, b.fa)
    np.testing.assert_array_equal(a.ndi, b.ndi)
    with pytest.raises(InputError, match="another gradient table"):
        AmortisedPigment.load(tmp_path / "amortised", make_protocol("clinical"))
    with pytest.raises(InputError, match="not trained"):
        AmortisedPigment(gtab).fit(data)


def test_training_is_deterministic_per_seed():
    gtab = make_protocol("sparse6")
    a, b = (AmortisedPigment(gtab, n_train=2000, steps=20, seed=4, device="cpu") for _ in range(2))
    a.train()
    b.train()
    x = torch.randn(7, a.in_mean.shape[0])
    torch.testing.assert_close(a.network(x), b.network(x), rtol=0, atol=0)
