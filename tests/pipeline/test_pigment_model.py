"""The cohort pipeline with PIGMENT microstructure: one amortised network per gradient table,
shared by the subjects of that table; tensor, kurtosis and NODDI maps with uncertainty; tracking
on the PIGMENT tensor with ODI-driven probabilistic draws."""

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def test_pigment_pipeline_trains_once_per_table_and_tracks_its_maps(tmp_path):
    from pigment_connect.datasets import make_subject
    from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
    from pigment_connect.io import MicrostructureMaps, Tractogram
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    cohort = [make_subject(subject=f"0{k}", seed=k) for k in (1, 2)]
    bids = write_bids(cohort, tmp_path / "bids")
    config = PipelineConfig(model="pigment", tracking_algorithm="probabilistic",
                            parcellation=subject_parcellation_pattern(), weightings=("count", "mean_ndi"))
    result = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(result.summary["status"]) == ["ok", "ok"], result.summary["error"].tolist()
    assert len(list((tmp_path / "out" / "models").glob("amortised-*.pt"))) == 1  # trained once
    sub = tmp_path / "out" / "sub-01" / "dwi"
    maps = MicrostructureMaps.load(sub, prefix="sub-01", model="pigment")
    for name in ("fa", "md", "mk", "ndi", "odi", "fwf", "tensor"):
        assert name in maps
    assert "ndi" in maps.uncertainty
    truth = cohort[0].truth
    wm = truth["wm"] & ~truth["crossing"]
    assert np.median(np.abs(maps["ndi"][wm] - truth["ndi"][wm])) < 0.1
    trk = Tractogram.load(next(sub.glob("*_model-pigment_algo-probabilistic_tractography.tck")))
    assert len(trk) > 100
    assert any(sub.glob("*_meas-meanndi_connectome.tsv"))
    again = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(again.summary["status"]) == ["skipped", "skipped"]


def test_spatial_pigment_model_is_trained_saved_and_reused_as_spatial(tmp_path, monkeypatch):
    from pigment_connect.datasets import make_subject
    from pigment_connect.errors import InputError
    from pigment_connect.pigment import AmortisedPigmentModel
    from pigment_connect.pipeline import PipelineConfig
    from pigment_connect.pipeline.series import _pigment_model

    monkeypatch.setitem(AmortisedPigmentModel.__init__.__kwdefaults__, "n_train", 3000)  # a quick network
    monkeypatch.setitem(AmortisedPigmentModel.__init__.__kwdefaults__, "steps", 20)
    dwi = make_subject(seed=1).dwi
    config = PipelineConfig(model="pigment-spatial")
    model = _pigment_model(config, dwi.gtab, tmp_path)
    assert model.spatial
    assert len(list((tmp_path / "models").glob("amortised-spatial-*.pt"))) == 1
    again = _pigment_model(config, dwi.gtab, tmp_path)  # loaded, not retrained
    assert again.spatial and again.history_ == {}
    np.testing.assert_array_equal(again.fit(dwi).fa, model.fit(dwi).fa)
    assert not _pigment_model(PipelineConfig(model="pigment"), dwi.gtab, tmp_path).spatial
    with pytest.raises(InputError, match="pigment-spatial"):
        PipelineConfig(model="pigment-3d")


def test_zero_shot_evidence_is_a_model_of_its_own_name(tmp_path):
    """``pigment-zeroshot-evidence``: PigmentModel(evidence=True), under a model label of its own, so
    its files and stage records never replace the plain zero-shot fit's."""
    from pigment_connect.datasets import make_protocol
    from pigment_connect.pipeline import PipelineConfig
    from pigment_connect.pipeline.series import _pigment_model, stage_plan

    plans = {}
    for name, evidence in (("pigment-zeroshot", False), ("pigment-zeroshot-evidence", True)):
        config = PipelineConfig(model=name)
        assert _pigment_model(config, make_protocol("sparse6"), tmp_path).evidence is evidence
        assert config.entities["model"] == name.replace("-", "")
        plans[name] = {stage for stage in stage_plan(config) if "pigmentzeroshot" in stage}
    assert "fit-pigmentzeroshotevidence" in plans["pigment-zeroshot-evidence"]
    assert len(plans["pigment-zeroshot"]) == 4 and not plans["pigment-zeroshot"] & plans["pigment-zeroshot-evidence"]


def test_zero_shot_pipeline_fits_each_subject_without_a_network(tmp_path):
    """``pigment-zeroshot``: PigmentModel on each subject's own signal, nothing trained or saved;
    its maps are the zero-shot fit's, and the subject's NDI is close to the phantom's truth."""
    from pigment_connect.datasets import make_subject
    from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
    from pigment_connect.pigment import PigmentModel
    from pigment_connect.io import MicrostructureMaps, load_dwi
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    subject = make_subject(subject="01", shape=(24, 28, 8), seed=3)
    bids = write_bids([subject], tmp_path / "bids")
    config = PipelineConfig(model="pigment-zeroshot", parcellation=subject_parcellation_pattern(),
                            weightings=("count",), seed=5)
    result = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(result.summary["status"]) == ["ok"], result.summary["error"].tolist()
    assert not (tmp_path / "out" / "models").exists() or not any((tmp_path / "out" / "models").iterdir())
    sub = tmp_path / "out" / "sub-01" / "dwi"
    maps = MicrostructureMaps.load(sub, prefix="sub-01", model="pigmentzeroshot")
    dwi = load_dwi(next((bids / "sub-01" / "dwi").glob("*_dwi.nii.gz")))  # what the pipeline read
    direct = PigmentModel(dwi.gtab, random_state=5).fit(dwi)
    mask = dwi.mask
    np.testing.assert_allclose(maps["fa"][mask], direct.fa[mask], atol=1e-6)
    assert "fa" in maps.uncertainty
    truth = subject.truth
    wm = truth["wm"] & ~truth["crossing"] & mask
    assert np.median(np.abs(maps["ndi"][wm] - truth["ndi"][wm])) < 0.1
    # BIDS entity labels are alphanumeric: the model's hyphen is dropped from the file name
    assert any(sub.glob("*_space-dwi_model-pigmentzeroshot_algo-tensorline_tractography.tck"))
    # its QC page shows each main map beside its error bar
    page = (sub / "sub-01_report.html").read_text()
    for name in ("fa", "md", "ndi", "odi"):
        assert f'alt="pigmentzeroshot {name}"' in page and f'alt="pigmentzeroshot {name} error bar"' in page


@pytest.mark.slow
def test_features_of_a_pigment_run_load_as_phenotypes(tmp_path):
    """`pigment-connect features` on a run's derivatives: tidy tables, and PLINK/REGENIE files with
    FID/IID, one row per subject, the latent code among the columns and participants' covariates."""
    import pandas as pd

    from pigment_connect.cli.main import main
    from pigment_connect.datasets import make_cohort, write_bids
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    cohort = make_cohort(2, shape=(28, 30, 8), seed=4)
    bids = write_bids(cohort, tmp_path / "bids")
    config = PipelineConfig(model="pigment-zeroshot", atlases=(), parcellation="derivatives/phantom/{folder}/dwi/"
                            "{prefix}_space-dwi_seg-phantom_dseg.nii.gz", weightings=("count",))
    result = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(result.summary["status"]) == ["ok"] * 2, result.summary["error"].tolist()
    assert main(["features", str(tmp_path / "out"), "--atlas", "phantom", "--stats", "median,iqr",
                 "--parcellations", str(bids / "derivatives" / "phantom"),
                 "--participants", str(bids / "participants.tsv"), "--quiet"]) == 0
    folder = tmp_path / "out" / "features"
    pheno = pd.read_csv(folder / "features_seg-phantom_model-pigmentzeroshot_pheno.txt", sep=r"\s+")
    assert list(pheno.columns[:2]) == ["FID", "IID"] and list(pheno["IID"].astype(str).str.zfill(2)) == ["01", "02"]
    assert all(" " not in c for c in pheno.columns)
    assert {"latent1_median_brain", "ndi_median_R_lateral_anterior", "logit_odi_iqr_L_medial_posterior"} <= set(pheno)
    covar = pd.read_csv(folder / "features_seg-phantom_model-pigmentzeroshot_covar.txt", sep=r"\s+")
    assert list(covar.columns[:2]) == ["FID", "IID"] and {"age", "sex"} <= set(covar.columns)
    long = pd.read_csv(folder / "features_seg-phantom_model-pigmentzeroshot_long.tsv", sep="\t")
    assert set(long["parcel"]) >= {"brain", "R_lateral_anterior"} and len(set(long["series"])) == 2
    # a second call refuses to overwrite
    assert main(["features", str(tmp_path / "out"), "--atlas", "phantom", "--quiet",
                 "--parcellations", str(bids / "derivatives" / "phantom")]) == 2
