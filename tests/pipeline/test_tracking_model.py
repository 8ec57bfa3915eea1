"""``tracking_model``: FOD tracking in the cohort pipeline (a fit-csd stage with its BEP016
sidecar, FODs followed, the choice recorded and logged), ``auto`` falling back on sparse
tables, and the configurations kept apart by their ``algo-`` labels."""

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def _records(sub):
    return json.loads(next(sub.glob("*_stages.json")).read_text())["stages"]


def test_fod_tracking_in_the_pipeline_and_auto_on_a_sparse_table(tmp_path):
    from pigment_connect.datasets import make_subject
    from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
    from pigment_connect.io import Tractogram
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    cohort = [make_subject(subject="01", seed=1), make_subject(subject="02", seed=2, protocol="clinical")]
    bids = write_bids(cohort, tmp_path / "bids")
    out = tmp_path / "out"
    config = PipelineConfig(tracking_model="auto", tracking_algorithm="probabilistic",
                            parcellation=subject_parcellation_pattern(), gradient_check="off")
    result = run_cohort(bids, out, config, progress=False)
    assert list(result.summary["status"]) == ["ok", "ok"], result.summary["error"].tolist()
    dense, sparse = out / "sub-01" / "dwi", out / "sub-02" / "dwi"
    # 30 directions: fibre ODFs, written where MRtrix3 reads them, with their encoding
    fod = next(dense.glob("*_model-csd_param-fod_dwimap.nii.gz"))
    sidecar = json.loads(fod.with_name(fod.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["OrientationEncoding"]["SphericalHarmonicBasis"] == "MRtrix3"
    track = _records(dense)["track_model-tensor_algo-autoprobabilistic"]
    assert track["field"] == "fod" and "fibre ODFs" in track["choice"]
    assert len(Tractogram.load(next(dense.glob("*_algo-autoprobabilistic_tractography.tck")))) > 500
    # 12 directions: too few for CSD, the tensor is tracked, and the run says why
    assert not any(sparse.glob("*_model-csd_*"))
    track = _records(sparse)["track_model-tensor_algo-autoprobabilistic"]
    assert track["field"] == "tensor" and "12 directions" in track["choice"]
    assert "too sparse for CSD" in next(sparse.glob("*_log.txt")).read_text()
    assert "too sparse for CSD" in next(sparse.glob("*_report.html")).read_text()

    # an explicit FOD configuration beside it: its own files, the first untouched
    before = {p: p.read_bytes() for p in dense.glob("*_algo-autoprobabilistic_*")}
    fod_config = PipelineConfig(tracking_model="fod", tracking_algorithm="deterministic",
                                parcellation=subject_parcellation_pattern(), gradient_check="off")
    again = run_cohort(bids, out, fod_config, progress=False, participant_labels=["01"])
    assert list(again.summary["status"]) == ["ok"]
    assert "fit-csd" in _records(dense) and any(dense.glob("*_algo-foddeterministic_*_connectome.tsv"))
    assert all(p.read_bytes() == b for p, b in before.items())
    counts = pd.read_csv(next(dense.glob("*_algo-foddeterministic_*meas-count_connectome.tsv")), sep="\t", index_col=0)
    assert counts.to_numpy().sum() > 0


def test_tracking_model_settings_are_checked():
    from pigment_connect.errors import InputError
    from pigment_connect.pipeline import PipelineConfig

    with pytest.raises(InputError, match="PIGMENT's orientation"):
        PipelineConfig(tracking_model="pigment")
    with pytest.raises(InputError, match="FODs are tracked"):
        PipelineConfig(tracking_model="fod", tracking_algorithm="tensorline")
    with pytest.raises(InputError, match="FOD peak following"):
        PipelineConfig(tracking_algorithm="deterministic")
    assert PipelineConfig(tracking_model="fod", tracking_algorithm="probabilistic").entities["algo"] == \
        "fodprobabilistic"
    assert PipelineConfig().entities == {"model": "tensor", "algo": "tensorline"}  # names of existing runs kept


@pytest.mark.slow
def test_a_multi_shell_table_gets_multi_tissue_fods(tmp_path):
    from pigment_connect.datasets import make_subject
    from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
    from pigment_connect.io import MicrostructureMaps
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    bids = write_bids([make_subject(subject="01", seed=3, shape=(30, 36, 8), protocol="dense")], tmp_path / "bids")
    config = PipelineConfig(tracking_model="fod", tracking_algorithm="probabilistic",
                            parcellation=subject_parcellation_pattern(), gradient_check="off")
    result = run_cohort(bids, tmp_path / "out", config, progress=False)
    assert list(result.summary["status"]) == ["ok"], result.summary["error"].tolist()
    d = tmp_path / "out" / "sub-01" / "dwi"
    maps = MicrostructureMaps.load(d, prefix="sub-01", model="msmt")
    assert {"fod", "wm", "gm", "csf"} <= set(maps.names)
    sidecar = json.loads(next(d.glob("*_model-msmt_param-fod_dwimap.json")).read_text())
    assert sidecar["Model"].startswith("Multi-shell multi-tissue")
    track = _records(d)["track_model-tensor_algo-fodprobabilistic"]
    assert "multi-shell multi-tissue" in track["choice"] and track["streamlines"] > 100
