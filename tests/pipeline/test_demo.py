import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pigment_connect.datasets import BUNDLES, REGION_NAMES
from pigment_connect.io import Connectome, Tractogram
from pigment_connect.pipeline import PipelineConfig, run_cohort, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, n_subjects=4, progress=False)


def test_demo_writes_every_output_for_every_subject(demo):
    out, result = demo
    assert list(result.summary["status"]) == ["ok"] * 4
    for sub in ("01", "02", "03", "04"):
        d = result.out_dir / f"sub-{sub}" / "dwi"
        assert (d / f"sub-{sub}_model-tensor_param-fa_dwimap.nii.gz").is_file()
        assert (d / f"sub-{sub}_space-dwi_desc-brain_mask.nii.gz").is_file()
        trk = Tractogram.load(d / f"sub-{sub}_space-dwi_model-tensor_algo-tensorline_tractography.tck")
        assert len(trk) > 500
        for meas in ("count", "invnodevol", "length", "meanfa"):
            assert (d / f"sub-{sub}_model-tensor_algo-tensorline_seg-phantom_meas-{meas}_connectome.tsv").is_file()
    metrics = pd.read_csv(result.out_dir / "group_graphmetrics.tsv", sep="\t")
    assert set(metrics["group"]) == {"control", "patient"} and set(metrics["site"]) == {"A", "B"}
    # strengths only: mean streamline length (mm) is not a connection strength
    assert len(metrics) == 4 * 3 and metrics["global_efficiency"].notna().all()
    assert set(metrics["weighting"]) == {"count", "invnodevol", "mean_fa"}
    desc = json.loads((result.out_dir / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"


def test_demo_connectome_contains_the_true_edges(demo):
    """Ground truth check: every true edge (three of them through a 90° crossing, which the
    tensorline tracker follows) in every subject, and most streamlines on true edges (some still
    switch bundles inside the crossing: ≈ 78% land on true edges)."""
    out, result = demo
    true_pairs = {tuple(sorted(p)) for _, p, _ in BUNDLES}
    for sub in ("01", "02", "03", "04"):
        conn = Connectome.load(result.out_dir / f"sub-{sub}" / "dwi" / f"sub-{sub}_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.npz")
        assert conn.labels == list(REGION_NAMES)
        w = conn.weights
        for a, b in true_pairs:
            assert w[a, b] >= 20, f"sub-{sub}: true edge {REGION_NAMES[a]}–{REGION_NAMES[b]} not recovered"
        on_true = sum(w[a, b] for a, b in true_pairs)
        assert on_true / np.triu(w, 1).sum() > 0.7  # most streamlines join truly connected regions


def test_resume_skips_finished_subjects_and_failures_are_isolated(demo, tmp_path):
    out, _ = demo
    raw = tmp_path / "rawdata"
    shutil.copytree(out / "rawdata", raw)
    bad = raw / "sub-03" / "dwi" / "sub-03_dwi.nii.gz"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated
    config = PipelineConfig(parcellation="derivatives/phantom/{prefix}/dwi/{prefix}_space-dwi_seg-phantom_dseg.nii.gz")
    deriv = tmp_path / "derivatives"
    first = run_cohort(raw, deriv, config, participant_labels=["01", "03"], progress=False)
    assert first.summary.set_index("subject")["status"].to_dict() == {"01": "ok", "03": "failed"}
    assert "sub-03_dwi.nii.gz" in first.summary.set_index("subject").loc["03", "error"]
    assert (deriv / "sub-01" / "dwi" / "sub-01_model-tensor_param-fa_dwimap.nii.gz").is_file()
    second = run_cohort(raw, deriv, config, participant_labels=["01", "03"], progress=False)
    assert second.summary.set_index("subject")["status"].to_dict() == {"01": "skipped", "03": "failed"}
    assert len(second.metrics) == len(first.metrics)  # the skipped subject's metrics are kept


def test_results_do_not_depend_on_parallel_subjects(demo, tmp_path):
    out, result = demo
    config = PipelineConfig(parcellation="derivatives/phantom/{prefix}/dwi/{prefix}_space-dwi_seg-phantom_dseg.nii.gz")
    parallel = run_cohort(out / "rawdata", tmp_path / "par", config, participant_labels=["01", "02"], n_jobs=2,
                          n_threads=2, progress=False)
    assert parallel.summary["threads"].tolist() == [1, 1]  # two workers share a 2-thread budget
    for sub in ("01", "02"):
        name = f"sub-{sub}/dwi/sub-{sub}_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.npz"
        np.testing.assert_array_equal(Connectome.load(parallel.out_dir / name).weights,
                                      Connectome.load(result.out_dir / name).weights)


def test_a_spawned_worker_holds_dipy_at_the_callers_level():
    """A worker process starts with no logging set-up: the runner's initializer gives it the
    caller's level for DIPY, so --quiet stays quiet in parallel runs (registration logs INFO)."""
    import logging

    from pigment_connect.pipeline.runner import _start_worker

    _start_worker(1, logging.ERROR)
    assert logging.getLogger("dipy").level == logging.ERROR
    _start_worker(1, logging.WARNING)
    assert logging.getLogger("dipy").level == logging.WARNING
