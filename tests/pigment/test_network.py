"""Training, saving and loading the tissue prior, and the shipped one."""

import numpy as np
import pytest
import torch

from pigment_connect.errors import InputError
from pigment_connect.pigment import FEATURES, load_prior
from pigment_connect.pigment.simulate import simulate_features
from pigment_connect.pigment.tissue import tissue_maps
from pigment_connect.pigment.train import train_prior


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


def test_latent_mixture_matches_scikit_learn_and_scipy():
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    from scipy.stats import multivariate_normal

    from pigment_connect.pigment.network import TissuePrior
    from pigment_connect.pigment.train import fit_latent_mixture

    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal([-3, 0, 1], [0.5, 1.0, 0.3], (3000, 3)), rng.normal([2, 1, -1], 0.7, (2000, 3))])
    means, covs, weights = fit_latent_mixture(torch.as_tensor(z), 2, seed=0, reg=1e-6)
    ref = sklearn_mixture.GaussianMixture(2, covariance_type="full", reg_covar=1e-6, tol=1e-8, random_state=0).fit(z)
    order = np.argsort(means[:, 0].numpy()), np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(means.numpy()[order[0]], ref.means_[order[1]], atol=1e-3)
    np.testing.assert_allclose(weights.numpy()[order[0]], ref.weights_[order[1]], atol=1e-3)
    prior = TissuePrior(latent_dim=3)
    prior.set_latent_mixture(means, covs, weights)
    pts = torch.as_tensor(z[:5], dtype=torch.float32)
    ours = prior.latent_log_density(pts).numpy()
    for k in range(2):
        expected = np.log(weights[k].item()) + multivariate_normal(means[k].numpy(), covs[k].numpy()).logpdf(z[:5]) \
            + 1.5 * np.log(2 * np.pi)  # latent_log_density omits the shared −d/2·log 2π
        np.testing.assert_allclose(ours[:, k], expected, rtol=1e-4)
    residual = prior.latent_residual(pts, torch.zeros(5, dtype=torch.long))
    np.testing.assert_allclose(0.5 * (residual**2).sum(-1).numpy(),
                               -multivariate_normal(means[0].numpy(), covs[0].numpy()).logpdf(z[:5])
                               - 1.5 * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(covs[0].numpy())[1], rtol=1e-4)
    a, b = (prior.sample_latent(100, torch.Generator().manual_seed(3)) for _ in range(2))
    torch.testing.assert_close(a, b)


def test_shipped_prior_has_its_latent_mixture():
    prior = load_prior()
    assert prior.n_components > 1
    z = prior.sample_latent(500, torch.Generator().manual_seed(0))
    assert torch.isfinite(prior.latent_log_density(z)).all()


def test_a_prior_from_before_the_latent_mixture_still_loads(features, tmp_path):
    import hashlib
    import json

    prior, _ = train_prior(features, steps=5, batch_size=32, device="cpu", latent_components=2)
    prior.info = {"name": "old"}
    weights = prior.save(tmp_path / "old")
    state = {k: v for k, v in torch.load(weights, weights_only=True).items() if not k.startswith("latent_")}
    torch.save(state, weights)
    header = json.loads(weights.with_suffix(".json").read_text())
    del header["latent_components"]
    header["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.with_suffix(".json").write_text(json.dumps(header))
    old = load_prior(tmp_path / "old")
    assert old.n_components == 1  # the standard normal
    state["unexpected"] = torch.zeros(1)
    torch.save(state, weights)
    header["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.with_suffix(".json").write_text(json.dumps(header))
    with pytest.raises(InputError, match="architecture"):
        load_prior(tmp_path / "old")


def test_saved_weights_are_the_same_bytes_for_the_same_state(tmp_path):
    import torch

    from pigment_connect.pigment.files import save_weights

    state = {"w": torch.arange(6, dtype=torch.float32)}
    a = save_weights(tmp_path / "a" / "net", state, {"name": "x"}).read_bytes()
    b = save_weights(tmp_path / "b" / "net", state, {"name": "x"}).read_bytes()
    assert a == b  # nothing of the temporary file's random name inside
