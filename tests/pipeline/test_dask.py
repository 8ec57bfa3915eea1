"""The Dask backend: one task per series on a LocalCluster gives the local run's outputs, and a
series with bad input is that series' recorded failure, not a retried task."""

import hashlib

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from pigment_connect.datasets import make_subject  # noqa: E402
from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids  # noqa: E402
from pigment_connect.io import Connectome  # noqa: E402
from pigment_connect.pipeline import PipelineConfig, run_cohort  # noqa: E402


def test_dask_local_cluster_equals_the_local_run(tmp_path):
    bids = tmp_path / "bids"
    write_bids([make_subject(subject=f"0{k}", shape=(32, 36, 8), seed=k) for k in (1, 2, 3)], bids)
    bad = bids / "sub-03" / "dwi" / "sub-03_dwi.nii.gz"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated: bad input
    config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count", "mean_fa"))
    local = run_cohort(bids, tmp_path / "local", config, progress=False)
    dask = run_cohort(bids, tmp_path / "dask", config, progress=False, scheduler="local:2", n_threads=2)
    for result in (local, dask):
        assert result.summary.set_index("subject")["status"].to_dict() == {"01": "ok", "02": "ok", "03": "failed"}
    assert "sub-03_dwi.nii.gz" in dask.summary.set_index("subject").loc["03", "error"]
    assert dask.summary.set_index("subject").loc["01", "threads"] == 1  # its share of the 2-thread budget
    for sub in ("01", "02"):
        folder = f"sub-{sub}/dwi/sub-{sub}_model-tensor_algo-tensorline"
        tck = f"sub-{sub}/dwi/sub-{sub}_space-dwi_model-tensor_algo-tensorline_tractography.tck"
        assert (hashlib.sha256((local.out_dir / tck).read_bytes()).digest()
                == hashlib.sha256((dask.out_dir / tck).read_bytes()).digest())
        for meas in ("count", "meanfa"):
            name = f"{folder}_seg-phantom_meas-{meas}_connectome.npz"
            np.testing.assert_array_equal(Connectome.load(local.out_dir / name).weights,
                                          Connectome.load(dask.out_dir / name).weights)
    pd.testing.assert_frame_equal(local.metrics, dask.metrics)
