"""Per-stage resume: each stage is skipped while its record holds and redone (with everything
downstream) when it does not; another configuration never replaces the first one's files; a
series killed with SIGKILL resumes at the stage it was in."""

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pigment_connect.datasets import make_subject
from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
from pigment_connect.errors import InputError
from pigment_connect.io import Connectome
from pigment_connect.pipeline import PipelineConfig, run_cohort

_run = functools.partial(run_cohort, report=False)  # the QC pages are tested in tests/report


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume") / "bids"
    write_bids([make_subject(subject="01", shape=(32, 36, 8), seed=1)], root)
    return root


def _config(**changes):
    return PipelineConfig(**{"parcellation": subject_parcellation_pattern(), "weightings": ("count", "mean_fa"),
                             **changes})


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _stages(out: Path) -> dict:
    return json.loads((out / "sub-01" / "dwi" / "sub-01_stages.json").read_text())["stages"]


def test_changing_the_weightings_redoes_connectome_and_metrics_only(bids, tmp_path):
    out = tmp_path / "out"
    first = _run(bids, out, _config(), progress=False)
    assert first.summary.loc[0, "status"] == "ok"
    assert first.summary.loc[0, "peak_mb"] > 100 and first.summary.loc[0, "seconds_track"] > 0
    before = _stages(out)
    second = _run(bids, out, _config(weightings=("count", "mean_fa", "invlength")), progress=False)
    row = second.summary.iloc[0]
    assert row["status"] == "ok"
    ran = set(_stages(out)) - set(row["skipped_stages"].split(","))
    assert ran == {"connectome_model-tensor_algo-tensorline", "metrics_model-tensor_algo-tensorline"}
    assert row["seconds_fit"] == 0 and row["seconds_track"] == 0
    after = _stages(out)
    for stage in ("load", "fit-tensor", "gradcheck", "track_model-tensor_algo-tensorline"):
        assert after[stage] == before[stage]  # untouched records: those stages did not run
    assert set(second.metrics["weighting"]) == {"count", "mean_fa", "invlength"}
    third = _run(bids, out, _config(weightings=("count",)), progress=False)  # fewer: nothing to do
    assert third.summary.loc[0, "status"] == "skipped"
    assert set(third.metrics["weighting"]) == {"count"}


def test_a_new_input_redoes_everything_downstream(bids, tmp_path):
    import shutil

    raw = tmp_path / "bids"
    shutil.copytree(bids, raw)
    out = tmp_path / "out"
    _run(raw, out, _config(), progress=False)
    bvec = raw / "sub-01" / "dwi" / "sub-01_dwi.bvec"
    bvec.write_text(bvec.read_text())  # same content, new modification time: a changed input
    os.utime(bvec, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = _run(raw, out, _config(), progress=False)
    assert again.summary.loc[0, "status"] == "ok" and not again.summary.loc[0, "skipped_stages"]


def test_another_model_and_tracking_leave_the_first_configuration_byte_identical(bids, tmp_path):
    out = tmp_path / "out"
    _run(bids, out, _config(), progress=False)
    first = {k: v for k, v in _digests(out).items()
             if "model-tensor_algo-tensorline" in k or "model-tensor_param" in k or k.endswith("_dseg.nii.gz")}
    assert any("tractography" in k for k in first) and any("connectome" in k for k in first)
    second = _run(bids, out, _config(model="pigment-zeroshot", tracking_algorithm="eigenvector"), progress=False)
    assert second.summary.loc[0, "status"] == "ok", second.summary.loc[0, "error"]
    after = _digests(out)
    assert {k: after[k] for k in first} == first
    assert any("model-pigmentzeroshot_algo-eigenvector" in k and "connectome" in k for k in after)
    # the tensor fit and gradient check were shared, not redone
    assert {"fit-tensor", "gradcheck", "load"} <= set(second.summary.loc[0, "skipped_stages"].split(","))


def test_other_settings_under_the_same_names_are_refused_before_anything_runs(bids, tmp_path):
    out = tmp_path / "out"
    _run(bids, out, _config(), progress=False)
    before = _digests(out)
    with pytest.raises(InputError, match=r"step_size=0\.5 → 1\.0") as info:
        _run(bids, out, _config(step_size=1.0), progress=False)
    assert "--force" in str(info.value)
    assert {k: v for k, v in _digests(out).items() if k in before and "dataset_description" not in k
            and not k.startswith("config-")} == {k: v for k, v in before.items() if "dataset_description" not in k
                                                 and not k.startswith("config-")}
    forced = _run(bids, out, _config(step_size=1.0), force=True, progress=False)
    assert forced.summary.loc[0, "status"] == "ok"
    assert _stages(out)["track_model-tensor_algo-tensorline"]["settings"]["step_size"] == 1.0


SCRIPT = """
import sys
from pigment_connect.pipeline import PipelineConfig, run_cohort
from pigment_connect.datasets.phantom import subject_parcellation_pattern
config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count",), seeds_per_voxel=60)
run_cohort(sys.argv[1], sys.argv[2], config, progress=False, report=False)
"""


def test_a_series_killed_mid_way_resumes_at_the_stage_it_was_in(bids, tmp_path):
    """SIGKILL once the gradient check is recorded (tracking 60 seeds per voxel then runs for
    seconds); the rerun reads the records, skips what was done and finishes the rest, with
    the same connectome as an uninterrupted run."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(bids), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "sub-01" / "dwi" / "sub-01_stages.json"
    deadline = time.time() + 240
    done: set = set()
    while time.time() < deadline and proc.poll() is None:
        if records.is_file():
            try:
                done = set(json.loads(records.read_text())["stages"])
            except ValueError:
                done = set()
            if "gradcheck" in done:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = set(json.loads(records.read_text())["stages"])
    assert {"load", "fit-tensor", "gradcheck"} <= done and "connectome_model-tensor_algo-tensorline" not in done
    assert not list(out.rglob("*_tractography.tck"))  # a killed stage leaves no half file under its name
    config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count",), seeds_per_voxel=60)
    resumed = _run(bids, out, config, progress=False)
    row = resumed.summary.iloc[0]
    assert row["status"] == "ok"
    assert set(row["skipped_stages"].split(",")) == done
    fresh = _run(bids, tmp_path / "fresh", config, progress=False)
    name = "sub-01/dwi/sub-01_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.npz"
    np.testing.assert_array_equal(Connectome.load(out / name).weights, Connectome.load(fresh.out_dir / name).weights)


def test_a_skipped_stage_repeats_the_warnings_it_recorded(bids, tmp_path, monkeypatch):
    import warnings

    from pigment_connect.errors import PigmentWarning
    from pigment_connect.pipeline import series

    real = series.build_connectomes

    def warning_build(*args, **kwargs):
        warnings.warn("only 3% of streamlines reached a node pair", PigmentWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(series, "build_connectomes", warning_build)
    out = tmp_path / "out"
    first = _run(bids, out, _config(), progress=False)
    assert "only 3% of streamlines" in first.summary.loc[0, "warnings"]
    monkeypatch.setattr(series, "build_connectomes", real)
    again = _run(bids, out, _config(), progress=False)  # every stage skipped: the finding stays
    assert again.summary.loc[0, "status"] == "skipped"
    assert "only 3% of streamlines" in again.summary.loc[0, "warnings"]
    assert _stages(out)["connectome_model-tensor_algo-tensorline"]["warnings"] == [
        "only 3% of streamlines reached a node pair"]
