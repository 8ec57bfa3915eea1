"""PIGMENT zero-shot fit on tissue with known parameters, on sparse protocols."""

import warnings

import numpy as np
import pytest
import torch

from pigment_connect.datasets import make_protocol
from pigment_connect.errors import InputError, InputWarning, ProtocolError
from pigment_connect.fit import TensorModel
from pigment_connect.fit.voxelwise import default_chunk_size
from pigment_connect.pigment.zero_shot import GROUP_COUPLING, PigmentModel
from pigment_connect.pigment.forward import ASYM_SLOPE
from pigment_connect.io.dwi import DiffusionData
from pigment_connect.io.gradients import GradientTable
from pigment_connect.pigment import load_prior
from pigment_connect.pigment.tissue import cayley_rotation, dki_tissue_signal, noddi_tissue_signal, tissue_maps

SIGMA = 0.03  # SNR 33 on b=0


@pytest.fixture(scope="module")
def truth():
    """400 voxels of tissue drawn from the shipped prior, random orientations."""
    prior = load_prior()
    gen = torch.Generator().manual_seed(7)
    z = prior.sample_latent(400, gen)
    feats = prior.decode(z).double()
    rot = cayley_rotation(2 * torch.randn(400, 3, generator=gen, dtype=torch.float64),
                          torch.eye(3, dtype=torch.float64).expand(400, 3, 3))
    return feats, rot


def _signal(truth, gtab, seed=0, sigma=SIGMA):
    """Noisy magnitude signal: the kurtosis and NODDI descriptions averaged (b ≤ 3000 here)."""
    feats, rot = truth
    b, g = torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs)
    one = torch.ones(len(feats), dtype=torch.float64)
    clean = 0.5 * (dki_tissue_signal(one, feats, rot, b, g) + noddi_tissue_signal(one, feats, rot, b, g))
    rng = np.random.default_rng(seed)
    noisy = np.abs(clean.numpy() + sigma * (rng.normal(size=clean.shape) + 1j * rng.normal(size=clean.shape)))
    return noisy[:, None, None, :]


# FA bound (error ratio to the tensor fit's). Issue #5's target is 0.7 on every sparse protocol; on
# single-shell tables the zero-shot fit's FA is not yet better than the tensor fit's (kurtosis and
# tensor share one shell there; the posterior mode lands away from the truth even where a start at
# the truth ends at a higher objective: a limit of the MAP estimate, which AmortisedPigmentModel's
# posterior mean does not share — see test_amortised.py). An open gap, guarded here so that it
# cannot grow unnoticed.
FA_BOUND = {"sparse6": 1.2, "clinical": 1.35, "two_shell_sparse": 1.0}


@pytest.mark.parametrize("protocol", ["sparse6", "clinical", "two_shell_sparse"])
def test_sparse_protocols_beat_the_conventional_tensor_fit(truth, protocol):
    gtab = make_protocol(protocol)
    data = _signal(truth, gtab)
    fit = PigmentModel(gtab, sigma=SIGMA, device="cpu").fit(data)
    conv = TensorModel(gtab).fit(data)
    true = {k: v.numpy() for k, v in tissue_maps(truth[0]).items()}
    err = lambda a, k: np.median(np.abs(a.ravel() - true[k]))  # noqa: E731
    assert err(fit.md, "md") < 0.7 * err(conv.md, "md")
    assert err(fit.fa, "fa") < FA_BOUND[protocol] * err(conv.fa, "fa")
    # NODDI is not determined by one shell: the prior must still beat guessing the population median.
    assert err(fit.ndi, "ndi") < 0.8 * np.median(np.abs(true["ndi"] - np.median(true["ndi"])))
    # Laplace error bars are calibrated on tissue from the prior's family: the share of voxels whose
    # error is inside ±1 std (nominal 0.68) measured 0.52–0.70 over the six maps and three tables
    # (MK and FWF lowest: their posteriors are skewed near bounds), 0.67–0.94 inside ±2 std.
    for name in ("fa", "md", "mk", "ndi", "odi", "fwf"):
        std = fit.params[f"{name}_std"].ravel()
        assert np.isfinite(std).all() and (std >= 0).all()
        inside = np.mean(np.abs(getattr(fit, name).ravel() - true[name]) < std)
        assert 0.45 < inside < 0.85, (name, inside)


def test_same_input_same_seed_same_output(truth):
    gtab = make_protocol("clinical")
    data = _signal(truth, gtab)[:50]
    a = PigmentModel(gtab, sigma=SIGMA, device="cpu", uncertainty=False).fit(data)
    b = PigmentModel(gtab, sigma=SIGMA, device="cpu", uncertainty=False).fit(data)
    for name in ("fa", "md", "mk", "ndi", "odi", "fwf"):
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_batches_do_not_change_the_fit(truth):
    """Voxels are fitted independently: the batch size bounds memory, never the answer."""
    gtab = make_protocol("clinical")
    data = _signal(truth, gtab)[:40]
    kw = dict(sigma=SIGMA, device="cpu", uncertainty=False, dtype=torch.float64)
    whole = PigmentModel(gtab, **kw).fit(data)
    small = PigmentModel(gtab, chunk_size=7, **kw).fit(data)
    for name in ("fa", "md", "mk", "ndi", "odi", "fwf"):
        np.testing.assert_allclose(small.params[name], whole.params[name], rtol=1e-6, atol=1e-8)
    with pytest.raises(InputError, match="chunk_size"):
        PigmentModel(gtab, chunk_size=0)


def test_default_batch_grows_with_free_gpu_memory(monkeypatch):
    """CPU: 4096 voxels. GPU: the largest power of two ≤ 65536 within a quarter of free memory."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_chunk_size(cpu, 34_000, cpu=4096) == 4096
    for free, expected in ((80 * 2**30, 65536), (4 * 2**30, 16384), (2**28, 4096)):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, free=free: (free, 80 * 2**30))
        assert default_chunk_size(cuda, 34 * 2**10, cpu=4096) == expected


def test_low_snr_grey_matter_is_fitted_under_the_group_its_evidence_favours(truth):
    # At b=0 SNR 10 six directions read isotropic tissue's FA ≈ 0.3 high; the mode then lands under an
    # anisotropic component. Weighing the prior's isotropic and anisotropic components by each fit's
    # Laplace evidence (evidence=True) must recover it, and the error bars must cover as they should.
    # Measured (400 voxels of the prior's tissue, FA error isotropic / anisotropic, FA and ODI coverage):
    # by density 0.281 / 0.123, 0.46 / 0.42; by evidence 0.101 / 0.128, 0.63 / 0.60.
    gtab, sigma = make_protocol("sparse6"), 0.1
    data = _signal(truth, gtab, sigma=sigma)
    true = {k: v.numpy() for k, v in tissue_maps(truth[0]).items()}
    iso = true["fa"] < 0.2
    # (the voxels are unrelated tissue: no coupling of neighbours' groups)
    fits = {ev: PigmentModel(gtab, sigma=sigma, device="cpu", evidence=ev, group_coupling=0.0).fit(data)
            for ev in (False, True)}
    err = {ev: np.abs(f.fa.ravel() - true["fa"]) for ev, f in fits.items()}
    assert np.median(err[True][iso]) < 0.5 * np.median(err[False][iso])
    assert np.median(err[True][~iso]) < 1.1 * np.median(err[False][~iso])
    for name in ("fa", "odi"):
        inside = {ev: np.mean(np.abs(getattr(f, name).ravel() - true[name]) < f.params[f"{name}_std"].ravel())
                  for ev, f in fits.items()}
        assert inside[False] < 0.5 and 0.55 < inside[True] < 0.85, (name, inside)


def test_neighbours_groups_are_coupled_where_tissue_is_contiguous(truth):
    # Two regions side by side, one of the prior's anisotropic tissue and one of its isotropic tissue,
    # at b=0 SNR 10 and 1 b0 + 6: a voxel's own evidence often cannot tell the groups apart, its
    # neighbours' can. Coupling them (group_coupling) must bring each region's voxels closer to their
    # own group, and so their FA closer to the truth, than voxel-by-voxel evidence. Measured (8 × 8 × 4
    # voxels, half of each): the share of voxels taken for the wrong group 0.23 / 0.11 (anisotropic /
    # isotropic region) uncoupled, 0.11 / 0.04 coupled; FA error 0.132 / 0.099 → 0.103 / 0.094.
    feats, rot = truth
    fa = tissue_maps(feats)["fa"].numpy()
    aniso, iso = np.flatnonzero(fa > 0.4), np.flatnonzero(fa < 0.2)
    shape = (8, 8, 4)
    left = np.zeros(shape, bool)
    left[:4] = True
    pick = np.empty(shape, int)
    pick[left], pick[~left] = aniso[: left.sum()], iso[: (~left).sum()]
    index = pick.ravel()
    gtab, sigma = make_protocol("sparse6"), 0.1
    data = _signal((feats[index], rot[index]), gtab, sigma=sigma).reshape(*shape, -1)
    true_fa = fa[index].reshape(shape)
    fits = {c: PigmentModel(gtab, sigma=sigma, device="cpu", evidence=True, group_coupling=c).fit(data)
            for c in (0.0, GROUP_COUPLING)}
    wrong, err = {}, {}
    for c, f in fits.items():
        iso_taken = f.isotropic_probability > 0.5
        wrong[c] = (iso_taken[left].mean(), (~iso_taken[~left]).mean())
        err[c] = tuple(np.median(np.abs(f.fa - true_fa)[r]) for r in (left, ~left))
    assert wrong[GROUP_COUPLING][0] < 0.8 * wrong[0.0][0] and wrong[GROUP_COUPLING][1] < 0.8 * wrong[0.0][1], wrong
    assert err[GROUP_COUPLING][0] < err[0.0][0] and err[GROUP_COUPLING][1] < 1.05 * err[0.0][1], err
    # the choice is made once the whole mask is fitted: batches do not change it (a short fit suffices)
    quick = dict(sigma=sigma, device="cpu", evidence=True, n_iter=4, dtype=torch.float64)
    whole, small = (PigmentModel(gtab, chunk_size=c, **quick).fit(data[2:6]) for c in (None, 30))
    np.testing.assert_allclose(small.isotropic_probability, whole.isotropic_probability, atol=1e-8)
    assert 0 < np.mean((whole.isotropic_probability > 0) & (whole.isotropic_probability < 1))
    with pytest.raises(InputError, match="group_coupling"):
        PigmentModel(gtab, group_coupling=-1.0)
    with pytest.raises(InputError, match="neighbourhood"):
        PigmentModel(gtab).fit(data, neighbourhood="2d")


def test_maps_carry_uncertainty_and_save(truth, tmp_path):
    gtab = make_protocol("clinical")
    data = _signal(truth, gtab)[:20].astype(np.float32)
    dwi = DiffusionData(data, np.diag([2.0, 2.0, 2.0, 1.0]), np.ones(data.shape[:3], bool), gtab)
    maps = PigmentModel(gtab, sigma=SIGMA, device="cpu").fit(dwi).maps
    assert maps.model == "pigment" and {"fa", "mk", "ndi", "odi", "fwf"} <= set(maps.names)
    assert set(maps.uncertainty) == {"fa", "md", "mk", "ndi", "odi", "fwf"}
    assert maps.save(tmp_path, prefix="sub-01")


def test_one_b0_without_sigma_warns_and_bad_tables_are_refused(truth):
    gtab = make_protocol("sparse6")
    with pytest.warns(InputWarning, match="sigma="):
        PigmentModel(gtab, device="cpu", uncertainty=False, n_iter=2).fit(_signal(truth, gtab)[:4])
    b0_only = GradientTable(np.zeros(3), np.zeros((3, 3)))
    with pytest.raises(ProtocolError):
        PigmentModel(b0_only)
    with pytest.raises(InputError, match="σ must be positive"):
        PigmentModel(gtab, sigma=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PigmentModel(gtab, sigma=SIGMA, device="cpu", uncertainty=False, n_iter=1).fit(_signal(truth, gtab)[:4])


@pytest.mark.parametrize("protocol,asymmetric", [("sparse6", False), ("sparse6", True), ("two_shell_sparse", False), ("dense", True)])
def test_structured_jacobian_matches_differencing_the_whole_model(protocol, asymmetric):
    """The chain-rule Jacobian of the zero-shot model (each signal model differenced only in what it
    depends on, the decoder's Jacobian, ∂S/∂log S0 = S, linear prior rows; W∆ where the model has
    it, with a per-voxel slope of its prior mean) equals forward differences of the whole prediction,
    in float64."""
    from pigment_connect.fit.lm import jacobian_fd
    from pigment_connect.pigment.forward import TissueSignalModel
    from pigment_connect.physics.noddi import D_PAR, legendre_order, stick_coefficients

    dt = torch.float64
    prior = load_prior().to(dtype=dt)
    gtab = make_protocol(protocol)
    b, g = torch.tensor(gtab.bvals, dtype=dt), torch.tensor(gtab.bvecs, dtype=dt)
    stick = stick_coefficients(b * D_PAR, legendre_order(float(b.max()) * D_PAR, tol=1e-9))
    model = TissueSignalModel(prior, b, g, torch.nonzero(b <= 3000)[:, 0], stick, asymmetric=asymmetric)
    gen = torch.Generator().manual_seed(3)
    V = 64
    x = 0.3 * torch.randn(V, model.n_var, generator=gen, dtype=dt)
    base = cayley_rotation(torch.randn(V, 3, generator=gen, dtype=dt), torch.eye(3, dtype=dt).expand(V, 3, 3))
    constants = (base, torch.randint(0, prior.n_components, (V,), generator=gen), torch.full((V, 1), 0.3, dtype=dt),
                 0.5 * torch.rand(V, generator=gen, dtype=dt))  # W∆'s per-voxel prior slope
    pred = model.predict(x, *constants)
    ours = model.jacobian(x, pred, *constants)
    whole = jacobian_fd(model.predict, x, pred, constants)
    assert ours.shape == whole.shape == (V, model.n_var, pred.shape[1])
    assert float((ours - whole).abs().max()) < 1e-6 * float(whole.abs().max())


@pytest.mark.parametrize("rician,asymmetric", [(False, False), (True, False), (True, True)])
def test_solver_step_uses_the_gradient_of_the_cost_it_minimises(rician, asymmetric):
    """The Gauss–Newton gradient Jᵀr the solver builds from the scaled Jacobian equals the gradient
    of the cost it accepts steps on (Gaussian and Rician likelihoods, likelihood weights ≠ 1,
    prior pseudo-observations scaled by σ): the step points downhill on the true objective."""
    from pigment_connect.pigment.forward import TissueSignalModel
    from pigment_connect.pigment.zero_shot import _fit_cost, _fit_residual, _residual_scaled
    from pigment_connect.physics.noddi import D_PAR, legendre_order, stick_coefficients

    dt = torch.float64
    prior = load_prior().to(dtype=dt)
    gtab = make_protocol("two_shell_sparse")
    b, g = torch.tensor(gtab.bvals, dtype=dt), torch.tensor(gtab.bvecs, dtype=dt)
    stick = stick_coefficients(b * D_PAR, legendre_order(float(b.max()) * D_PAR, tol=1e-9))
    dki_rows = torch.nonzero(b <= 3000)[:, 0]
    model = TissueSignalModel(prior, b, g, dki_rows, stick, asymmetric=asymmetric)
    weights = torch.cat([torch.full((len(dki_rows),), 0.5, dtype=dt), torch.where(b <= 3000, 0.5, 1.0).to(dt)])
    n_sig = len(weights)
    gen = torch.Generator().manual_seed(5)
    V = 8
    x = 0.3 * torch.randn(V, model.n_var, generator=gen, dtype=dt)
    base = cayley_rotation(torch.randn(V, 3, generator=gen, dtype=dt), torch.eye(3, dtype=dt).expand(V, 3, 3))
    constants = (base, torch.randint(0, prior.n_components, (V,), generator=gen), torch.full((V, 1), 0.3, dtype=dt),
                 0.5 * torch.rand(V, generator=gen, dtype=dt))
    sig = torch.full((V, 1), 0.05, dtype=dt)
    pred = model.predict(x, *constants)
    y = (pred[:, :n_sig] + 0.05 * torch.randn(V, n_sig, generator=gen, dtype=dt)).abs()
    kw = dict(n_sig=n_sig, rician=rician)

    def total(xx):
        p = model.predict(xx, *constants)
        return _fit_cost(p, _fit_residual(p, y, sig, sqrt_w=weights.sqrt(), **kw), y, sig, weights=weights, **kw)

    r = _fit_residual(pred, y, sig, sqrt_w=weights.sqrt(), **kw)
    grad = (_residual_scaled(model.jacobian(x, pred, *constants), n_sig, weights.sqrt(), sig) @ r[..., None])[..., 0]
    h = 1e-6
    numeric = torch.stack([(total(x + h * e) - total(x - h * e)) / (2 * h)
                           for e in torch.eye(model.n_var, dtype=dt)], -1)
    torch.testing.assert_close(grad, numeric, rtol=1e-4, atol=1e-6 * float(numeric.abs().max()))


def test_kurtosis_asymmetry_from_the_data_where_the_table_determines_it_else_from_planarity(truth):
    """Tissue whose kurtosis is 0.3 higher along e2 than its circle mean and 0.3 lower along e3 (as
    in real white matter, where dense fits read W(e2) ≈ 0.9 and W(e3) ≈ 0.3): on a dense two-shell
    table the fit recovers W∆ (measured: median 0.26; where λ2/λ3 > 1.6, 10–90% 0.18–0.31; the NODDI half of the
    likelihood, axially symmetric, pulls it down a little). On one shell, where the table cannot
    tell W∆ from λ2 − λ3, it is its prior's mean: ASYM_SLOPE times the fitted tensor's planarity
    where the tensor is anisotropic beyond noise (FA > 0.5 here), 0 where it is isotropic (FA < 0.1:
    there the planarity is noise, and a slope on it would feed noise into the tensor's shape).
    The signal is the kurtosis description alone."""
    feats, rot = truth
    feats, rot = feats[:200], rot[:200]
    w_asym = torch.full((len(feats),), 0.3, dtype=torch.float64)
    one = torch.ones(len(feats), dtype=torch.float64)
    rng = np.random.default_rng(2)
    sigma = 0.01
    fits = {}
    for name in ("dense", "single_shell"):
        gtab = make_protocol(name)
        clean = dki_tissue_signal(one, feats, rot, torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs), w_asym).numpy()
        data = np.abs(clean + sigma * (rng.normal(size=clean.shape) + 1j * rng.normal(size=clean.shape)))[:, None, None]
        dwi = DiffusionData(data.astype(np.float32), np.eye(4), np.ones(data.shape[:3], bool), gtab)
        fits[name] = PigmentModel(gtab, sigma=sigma, device="cpu", uncertainty=False).fit(dwi)
    recovered = fits["dense"].w_asym.ravel()
    planar = (feats[:, 1] - feats[:, 2]).numpy() > 0.5  # λ2/λ3 > 1.6: e2 and e3 well defined
    assert 0.2 < np.median(recovered) < 0.35 and np.percentile(recovered[planar], 10) > 0.1
    single = fits["single_shell"]
    planarity = np.abs(single.features[..., 1] - single.features[..., 2]).ravel()
    fa = single.fa.ravel()
    anisotropic, isotropic = fa > 0.5, fa < 0.1
    assert anisotropic.sum() > 20 and isotropic.sum() > 20
    off_prior = np.abs(single.w_asym.ravel() - ASYM_SLOPE * planarity)[anisotropic]
    assert np.median(off_prior) < 0.01 and np.percentile(off_prior, 90) < 0.03
    assert np.percentile(np.abs(single.w_asym.ravel()[isotropic]), 90) < 0.01
    assert "w_asym" in fits["dense"].maps.maps and "w_asym" in single.maps.maps


def test_start_tensor_fa_noise_matches_monte_carlo_and_grey_matter_keeps_the_prior_tie():
    """The delta-method s.d. of the log-linear tensor's FA, which decides where the tensor shape's
    tie is widened, matches the spread of FA over noise draws for anisotropic tensors (1 b0 + 6,
    b=0 SNR 33 and 10; measured within 10%) and overstates it near FA 0, where FA is bounded
    (a conservative margin). An isotropic voxel keeps the prior's tie at both SNRs; white matter
    (FA 0.8) is freed at both, FA 0.6 at SNR 33 only. W∆'s prior mean takes the full planarity slope
    (ASYM_RAMP) in white matter at both SNRs and FA 0.6 at SNR 33, part of it at SNR 10, none in the
    isotropic voxel."""
    from pigment_connect.fit.loglinear import design_matrix, weighted_log_linear
    from pigment_connect.pigment.zero_shot import ASYM_RAMP, SHAPE_RAMP, _fa_and_noise, _fa_beyond_noise, _ramp

    gtab = make_protocol("sparse6")
    X = torch.as_tensor(design_matrix(gtab))
    b, g = np.asarray(gtab.bvals), np.asarray(gtab.bvecs)
    rng = np.random.default_rng(3)
    expected_weight = {(0, 33): 1.0, (0, 10): 1.0, (1, 33): 1.0, (1, 10): 0.0, (2, 33): 0.0, (2, 10): 0.0}
    expected_slope = {(0, 33): 1.0, (0, 10): 1.0, (1, 33): 1.0, (2, 33): 0.0, (2, 10): 0.0}
    for k, evals in enumerate(((1.7e-3, 0.3e-3, 0.3e-3), (1.4e-3, 0.5e-3, 0.4e-3), (0.8e-3, 0.75e-3, 0.7e-3))):
        clean = np.exp(-b * (g**2 @ np.array(evals)))  # tensor along the axes, S0 = 1
        for snr in (33, 10):
            sigma = 1.0 / snr
            noisy = np.abs(clean + sigma * (rng.normal(size=(4000, len(b))) + 1j * rng.normal(size=(4000, len(b)))))
            fa, sd = _fa_and_noise(weighted_log_linear(torch.as_tensor(noisy), X, floor=1e-6), X, sigma)
            if k < 2:
                assert float(sd.median()) == pytest.approx(float(fa.std()), rel=0.15)
            else:
                assert float(sd.median()) > float(fa.std())
            clean_beta = weighted_log_linear(torch.as_tensor(clean[None]), X, floor=1e-6)
            beyond = _fa_beyond_noise(clean_beta, X, sigma)
            assert float(_ramp(beyond, SHAPE_RAMP)[0]) == expected_weight[(k, snr)]
            slope = float(_ramp(beyond, ASYM_RAMP)[0])
            if (k, snr) in expected_slope:
                assert slope == expected_slope[(k, snr)]
            else:  # FA 0.6 at SNR 10: part of the slope
                assert 0.0 < slope < 1.0
