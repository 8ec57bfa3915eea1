"""Group statistics: GLM/FDR against scipy, NBS/TFNBS against MRtrix3 connectomestats (same
relabellings) and ground truth, FWER under the null, ComBat against neuroCombat."""

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pigment_connect.datasets import make_connectome_cohort
from pigment_connect.errors import InputError
from pigment_connect.graph import group, nbs
from pigment_connect.graph.harmonize import ComBat


@pytest.fixture(scope="module")
def cohort():
    return make_connectome_cohort(n_per_group=15, n_nodes=30, seed=3)


def test_design_coding_and_errors(cohort):
    d = group.make_design(cohort.table, ("group", "patient", "control"), covariates=("age", "sex", "site"))
    assert d.columns == ["intercept", "group[patient]", "age", "sex[M]", "site[B]"]
    np.testing.assert_array_equal(d.contrast, [[0, 1, 0, 0, 0]])
    assert abs(d.matrix[:, 2].mean()) < 1e-12  # numeric covariates are centred
    flipped = group.make_design(cohort.table, ("group", "control", "patient"))
    np.testing.assert_array_equal(flipped.contrast, [[0, -1]])
    slope = group.make_design(cohort.table, ("age",), covariates=("age",))
    np.testing.assert_array_equal(slope.contrast, [[0, 0, 1]])
    with pytest.raises(InputError, match="lacks the columns"):
        group.make_design(cohort.table, ("group", "patient", "control"), covariates=("iq",))
    with pytest.raises(InputError, match="level 'case'"):
        group.make_design(cohort.table, ("group", "case", "control"))
    confounded = cohort.table.assign(scanner=cohort.table["group"])
    with pytest.raises(InputError, match="rank-deficient"):
        group.make_design(confounded, ("group", "patient", "control"), covariates=("scanner",))
    coded = cohort.table.assign(group=(cohort.table["group"] == "patient").astype(int),
                                site=(cohort.table["site"] == "B").astype(int) + 1)
    d_coded = group.make_design(coded, ("group", 1, 0), covariates=("age", "site"), categorical=("site",))
    assert d_coded.columns == ["intercept", "group[1]", "age", "site[2]"]
    with pytest.raises(InputError, match="missing values"):
        group.make_design(cohort.table.assign(age=np.nan), ("group", "patient", "control"), covariates=("age",))


def test_glm_matches_scipy_t_and_anova(rng):
    table = pd.DataFrame({"subject": [f"s{k}" for k in range(30)], "group": np.repeat(["a", "b", "c"], 10)})
    y = rng.normal(size=(30, 50))
    y[10:20] += 0.8
    two = table.iloc[:20]
    res = group.fit_glm(y[:20], group.make_design(two, ("group", "b", "a")))
    ref = stats.ttest_ind(y[10:20], y[:10])
    np.testing.assert_allclose(res.stat, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(res.p, ref.pvalue, rtol=1e-8)
    pooled = np.sqrt((y[:10].var(0, ddof=1) + y[10:20].var(0, ddof=1)) / 2)
    np.testing.assert_allclose(res.std_effect, (y[10:20].mean(0) - y[:10].mean(0)) / pooled, rtol=1e-10)
    anova = group.fit_glm(y, group.make_design(table, np.array([[0, 1, 0], [0, 0, 1]])))
    ref_f = stats.f_oneway(y[:10], y[10:20], y[20:])
    np.testing.assert_allclose(anova.stat, ref_f.statistic, rtol=1e-10)
    np.testing.assert_allclose(anova.p, ref_f.pvalue, rtol=1e-8)
    constant = group.fit_glm(np.ones((20, 2)), group.make_design(two, ("group", "b", "a")))
    assert np.all(constant.stat == 0) and np.all(constant.p == 1)


def test_fdr_matches_scipy(rng):
    p = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)])
    q, reject = group.fdr_bh(p, 0.05)
    np.testing.assert_allclose(q, stats.false_discovery_control(p), rtol=1e-12)
    np.testing.assert_array_equal(reject, q <= 0.05)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        group.fdr_bh(np.array([0.5, 1.5]))


def test_permutations_are_freedman_lane_refits(cohort):
    d = group.make_design(cohort.table, ("group", "patient", "control"), covariates=("age", "site"))
    i, j = group.edge_index(30)
    y = cohort.stack[:, i, j]
    perms = nbs.permutations(d, 6, seed=1)
    fast = nbs.permuted_statistics(y, d, perms)
    x, c = d.matrix, d.contrast
    z = x @ (np.eye(x.shape[1]) - np.linalg.pinv(c) @ c)
    resid = y - z @ np.linalg.pinv(z) @ y
    for k in range(6):
        np.testing.assert_allclose(fast[k], group.fit_glm(resid[perms[k]], d).stat, atol=1e-10)
    np.testing.assert_allclose(fast[0], group.fit_glm(y, d).stat, atol=1e-10)


def test_exchangeability_blocks_keep_relabellings_within_blocks(cohort):
    d = group.make_design(cohort.table, ("group", "patient", "control"), blocks="site")
    perms = nbs.permutations(d, 50, seed=0)
    site = cohort.table["site"].to_numpy()
    assert np.all(site[perms] == site[None, :])
    assert np.array_equal(perms, nbs.permutations(d, 50, seed=0))


def test_nbs_finds_the_planted_subnetwork():
    c = make_connectome_cohort(n_per_group=20, n_nodes=40, seed=1)
    d = group.make_design(c.table, ("group", "patient", "control"), covariates=("age", "sex", "site"))
    res = nbs.nbs(c.connectomes, d, threshold=3.0, n_perm=500, seed=0)
    found = res.matrix(40, alpha=0.05)
    assert res.components.loc[0, "p_fwe"] <= 0.01
    assert found.any() and not np.any(found & ~c.effect)  # only true edges
    assert (found & c.effect).sum() >= 0.4 * c.effect.sum()
    intensity = nbs.nbs(c.connectomes, d, threshold=3.0, n_perm=500, seed=0, statistic="intensity")
    assert intensity.components.loc[0, "p_fwe"] <= 0.01
    tf = nbs.tfnbs(c.connectomes, d, n_perm=500, seed=0)
    hits = tf.edges[tf.edges["p_fwe"] <= 0.05]
    true_hits = sum(bool(c.effect[r.i, r.j]) for r in hits.itertuples())
    assert true_hits >= 2 and len(hits) - true_hits <= 1  # FWER 5%: a stray edge can happen


@pytest.mark.slow
def test_nbs_familywise_error_rate_under_the_null_is_nominal():
    """200 null cohorts (no group effect; covariates, sites): the NBS should reject at about 5%.
    With 200 repetitions the 99.9% binomial interval around 0.05 is [0.015, 0.105]."""
    rejections = 0
    reps = 200
    for rep in range(reps):
        c = make_connectome_cohort(n_per_group=8, n_nodes=16, effect_size=0.0, seed=1000 + rep)
        d = group.make_design(c.table, ("group", "patient", "control"), covariates=("age", "site"))
        res = nbs.nbs(c.stack, d, threshold=2.5, n_perm=200, seed=rep)
        rejections += bool(len(res.components)) and res.components["p_fwe"].min() <= 0.05
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, 0.05) / reps
    assert lo <= rejections / reps <= hi, rejections / reps


def test_nbs_input_errors(cohort):
    d = group.make_design(cohort.table, ("group", "patient", "control"))
    with pytest.raises(InputError, match="connectomes but"):
        nbs.nbs(cohort.stack[:5], d)
    with pytest.raises(InputError, match="tail"):
        nbs.nbs(cohort.stack, d, tail="up", n_perm=10)
    with pytest.raises(InputError, match="identity"):
        nbs.nbs(cohort.stack, d, relabellings=np.array([np.arange(30)[::-1]]))


@pytest.fixture(scope="module")
def mrtrix3_cohort(mrtrix3_golden):
    """The cohort, design, contrast and relabellings connectomestats read (committed with its outputs)."""
    with np.load(mrtrix3_golden.path("stats_inputs.npz")) as z:
        stack, matrix, contrast, perms = z["stack"], z["design"], z["contrast"], z["relabellings"]
    design = group.Design(matrix, [f"x{k}" for k in range(matrix.shape[1])], contrast,
                          np.array([f"s{k}" for k in range(len(stack))]))
    return stack, design, perms


@pytest.mark.parametrize("algo", ["nbs", "tfnbs"])
def test_nbs_and_tfnbs_match_mrtrix3_connectomestats(mrtrix3_golden, mrtrix3_cohort, algo):
    """Same data, design, contrast and relabellings as MRtrix3 3.0.3 (its outputs committed):
    MRtrix3 thresholds the Z statistic (scale='z'), and its TFNBS omits the dh factor."""
    stack, d, perms = mrtrix3_cohort
    n = stack.shape[1]
    i, j = group.edge_index(n)

    def read(name):
        return mrtrix3_golden.csv(f"stats_{algo}_{name}")[i, j]

    glm = group.fit_glm(stack[:, i, j], d)
    np.testing.assert_allclose(read("tvalue.csv"), glm.stat, atol=1e-9)
    mr_null = np.loadtxt(mrtrix3_golden.path(f"stats_{algo}_null_dist.txt"))
    if algo == "nbs":
        res = nbs.nbs(stack, d, threshold=mrtrix3_golden.maker.STATS_THRESHOLD, scale="z", relabellings=perms)
        np.testing.assert_array_equal(res.null, mr_null)
        in_comp = res.edges["component"].to_numpy() > 0
        sizes = res.components.set_index("component")["n_edges"]
        ours_enhanced = np.zeros(i.size)
        ours_enhanced[in_comp] = sizes.loc[res.edges["component"][in_comp]].to_numpy()
        null = res.null
        assert in_comp.any()  # the test exercises a supra-threshold component
    else:
        res = nbs.tfnbs(stack, d, scale="z", relabellings=perms)
        ours_enhanced = res.edges["tfnbs"].to_numpy() / res.dh
        null = res.null / res.dh
        np.testing.assert_allclose(null, mr_null, rtol=1e-6)
        in_comp = ours_enhanced > 0
    np.testing.assert_allclose(ours_enhanced, read("enhanced.csv"), rtol=1e-6, atol=1e-6)
    # p-values: MRtrix3 counts null > observed; we count null >= observed (the observed data are
    # the first relabelling, so p is never 0)
    mr_p = 1.0 - read("fwe_1mpvalue.csv")
    np.testing.assert_allclose(mr_p, [np.mean(mr_null > e * (1 + 1e-9)) if e > 0 else 1.0
                                      for e in read("enhanced.csv")], atol=1e-12)
    ours_p = res.edges["p_fwe"].to_numpy()
    np.testing.assert_allclose(ours_p[in_comp], [np.mean(null >= e * (1 - 1e-9)) for e in ours_enhanced[in_comp]])
    assert np.all(ours_p[~in_comp] == 1.0)


@pytest.mark.skipif(shutil.which("connectomestats") is None,
                    reason="MRtrix3 not installed: the committed outputs are compared instead")
@pytest.mark.parametrize("algo", ["nbs", "tfnbs"])
def test_mrtrix3_here_reproduces_the_committed_connectomestats_outputs(tmp_path, mrtrix3_golden, algo):
    mrtrix3_golden.rerun(f"stats_{algo}_tvalue.csv", tmp_path)  # one run writes all four
    for name in ("tvalue.csv", "enhanced.csv", "fwe_1mpvalue.csv", "null_dist.txt"):
        delimiter = "," if name.endswith(".csv") else None
        np.testing.assert_allclose(np.loadtxt(tmp_path / f"stats_{algo}_{name}", delimiter=delimiter),
                                   np.loadtxt(mrtrix3_golden.path(f"stats_{algo}_{name}"), delimiter=delimiter),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------ ComBat
def _site_data(rng, n=60, f=150):
    table = pd.DataFrame({"site": rng.choice(["A", "B", "C"], n),
                          # neuroCombat casts continuous covariates to float32: use values it keeps exactly
                          "age": rng.normal(45, 12, n).astype(np.float32).astype(float),
                          "sex": rng.choice(["F", "M"], n)})
    shift = table["site"].map({"A": 0.0, "B": 1.0, "C": -0.5}).to_numpy()[:, None]
    scale = table["site"].map({"A": 1.0, "B": 2.0, "C": 0.5}).to_numpy()[:, None]
    y = rng.normal(size=(n, f)) * scale + shift + 0.05 * table["age"].to_numpy()[:, None] + rng.normal(size=f)
    return y, table


def test_combat_matches_neurocombat(rng):
    neuro = pytest.importorskip("neuroCombat")
    y, table = _site_data(rng)
    ref = neuro.neuroCombat(dat=y.T, covars=table, batch_col="site", categorical_cols=["sex"],
                            continuous_cols=["age"])["data"].T
    ours = ComBat(covariates=("age", "sex")).fit_transform(y, table)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_combat_removes_sites_keeps_covariates_and_edge_cases(rng):
    y, table = _site_data(rng)
    y[:, 0] = 0.0  # an all-zero edge
    y[:, 1] = 3.0  # a constant edge
    model = ComBat(covariates=("age", "sex"))
    out = model.fit_transform(y, table)
    np.testing.assert_array_equal(out[:, :2], y[:, :2])
    age = table["age"].to_numpy()
    resid_site = [out[(table["site"] == s).to_numpy(), 2:] for s in "ABC"]
    sds = [r.std(axis=0).mean() for r in resid_site]
    assert max(sds) / min(sds) < 1.3  # scales were 0.5 to 2 before
    slope_after = np.polyfit(age, out[:, 2:].mean(1), 1)[0]
    assert slope_after == pytest.approx(0.05, rel=0.15)  # the simulated age effect survives
    # new scans from fitted sites: the same transform as for the training scans
    np.testing.assert_allclose(model.transform(y[:5], table.iloc[:5]), out[:5], atol=1e-12)
    with pytest.raises(InputError, match=r"sites \['D'\]"):
        model.transform(y[:1], table.iloc[:1].assign(site="D"))
    # a site with a single scan
    single = table.copy()
    single.loc[0, "site"] = "solo"
    res = ComBat(covariates=("age",)).fit_transform(y, single)
    assert np.all(np.isfinite(res))
    with pytest.raises(InputError, match="nothing to harmonise"):
        ComBat().fit(np.zeros_like(y), table)
    with pytest.raises(InputError, match="two sites"):
        ComBat().fit(y, table.assign(site="A"))
