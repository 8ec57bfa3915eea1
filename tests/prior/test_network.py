"""Training, saving and loading the tissue prior, and the shipped one."""

import numpy as np
import pytest
import torch

from pigment_connect.errors import InputError
from pigment_connect.prior import FEATURES, load_prior
from pigment_connect.prior.simulate import simulate_features
from pigment_connect.prior.tissue import tissue_maps
from pigment_connect.prior.train import train_prior


@pytest.fixture(scope="module")
def features():
    return simulate_features(800, seed=3)


def test_shipped_prior_loads_and_generates_plausible_tissue():
    prior = load_prior()
    assert prior.info["training_data"] == "simulated"
    z = torch.randn(2000, prior.latent_dim, generator=torch.Generator().manual_seed(0))
    maps = tissue_maps(prior.decode(z).double())
    md, fa, ndi = (maps[k].numpy() for k in ("md", "fa", "ndi"))
    assert np.isfinite(md).all() and np.isfinite(fa).all()
    assert 0.3e-3 < np.median(md) < 2.5e-3
    assert 0.05 < np.median(fa) < 0.8
    assert 0.05 < np.median(ndi) < 0.95


def test_training_is_reproducible_and_round_trips(features, tmp_path):
    a, hist = train_prior(features, steps=60, batch_size=128, seed=1, device="cpu")
    b, _ = train_prior(features, steps=60, batch_size=128, seed=1, device="cpu")
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=ka)
    assert hist["val_loss"] and np.isfinite(hist["val_loss"][-1][1])
    a.info = {"name": "test"}
    a.save(tmp_path / "p")
    c = load_prior(tmp_path / "p")
    z = torch.randn(5, a.latent_dim)
    torch.testing.assert_close(a.decode(z), c.decode(z))


def test_a_finished_checkpoint_is_reloaded_not_retrained(features, tmp_path):
    whole, _ = train_prior(features, steps=40, batch_size=64, seed=2, device="cpu")
    ckpt = tmp_path / "ckpt.pt"
    train_prior(features, steps=40, batch_size=64, seed=2, device="cpu", checkpoint=ckpt)
    resumed, _ = train_prior(features, steps=40, batch_size=64, seed=2, device="cpu", checkpoint=ckpt)
    z = torch.randn(5, whole.latent_dim)
    torch.testing.assert_close(whole.decode(z), resumed.decode(z))


def test_bad_training_input_and_corrupt_weights_are_clear_errors(features, tmp_path):
    with pytest.raises(InputError, match=r"\(n, 9\)"):
        train_prior(features[:, :5])
    bad = features.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train_prior(bad)
    prior, _ = train_prior(features, steps=5, batch_size=32, device="cpu")
    prior.save(tmp_path / "p")
    (tmp_path / "p.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="sha256"):
        load_prior(tmp_path / "p")
    assert len(FEATURES) == 9
