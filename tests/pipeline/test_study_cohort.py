"""A study as labs have them: sessions, dir-AP/dir-PA pairs, run-1/run-10, acq- series, one
series with a bval/bvec mismatch and one corrupt file. Every good series gets its own complete
outputs, the broken ones are reported by name, a second configuration into the same folder
leaves the first one's files byte-identical, and the group table keys rows by series."""

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pigment_connect.datasets import make_subject
from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
from pigment_connect.errors import InputError
from pigment_connect.graph.cohort import read_cohort
from pigment_connect.io import Connectome
from pigment_connect.pipeline import PipelineConfig, run_cohort

_run = functools.partial(run_cohort, report=False)  # the QC pages are tested in tests/report

GOOD = ["sub-01_ses-1_dir-AP", "sub-01_ses-1_dir-PA", "sub-01_ses-2_dir-AP", "sub-02_run-1", "sub-02_run-10",
        "sub-03_acq-hi"]
MISMATCHED, CORRUPT = "sub-04_acq-hi", "sub-05"


def _folder(prefix: str) -> str:
    parts = dict(p.split("-", 1) for p in prefix.split("_"))
    return f"sub-{parts['sub']}" + (f"/ses-{parts['ses']}" if "ses" in parts else "")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "bids"
    series = GOOD + [MISMATCHED, CORRUPT]
    members = [make_subject(subject=prefix.split("_")[0][4:], shape=(32, 36, 8), seed=k + 1)
               for k, prefix in enumerate(series)]
    write_bids(members, root, series=series)
    bval = root / _folder(MISMATCHED) / "dwi" / f"{MISMATCHED}_dwi.bval"
    bval.write_text(" ".join(bval.read_text().split()[:-1]) + "\n")  # one b-value short of the volumes
    corrupt = root / _folder(CORRUPT) / "dwi" / f"{CORRUPT}_dwi.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:2000])
    return root


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_study_with_many_series_per_subject(study, tmp_path):
    out = tmp_path / "derivatives"
    config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count", "mean_fa"))
    first = _run(study, out, config, n_jobs=2, n_threads=2, progress=False)
    status = first.summary.set_index("prefix")["status"].to_dict()
    assert status == {**{p: "ok" for p in GOOD}, MISMATCHED: "failed", CORRUPT: "failed"}
    errors = first.summary.set_index("prefix")["error"]
    assert f"{MISMATCHED}_dwi.bval" in errors[MISMATCHED] and f"{CORRUPT}_dwi.nii.gz" in errors[CORRUPT]

    for prefix in GOOD:  # every good series: its own maps, tractogram, connectomes, records and log
        folder = out / _folder(prefix) / "dwi"
        own = {p.name for p in folder.iterdir() if p.name.startswith(prefix + "_")}
        for name in (f"{prefix}_model-tensor_param-fa_dwimap.nii.gz",
                     f"{prefix}_space-dwi_model-tensor_algo-tensorline_tractography.tck",
                     f"{prefix}_model-tensor_algo-tensorline_seg-phantom_meas-count_connectome.npz",
                     f"{prefix}_model-tensor_algo-tensorline_seg-phantom_meas-meanfa_connectome.npz",
                     f"{prefix}_stages.json", f"{prefix}_status.json", f"{prefix}_log.txt"):
            assert name in own, (prefix, sorted(own))
    # run-1 and run-10 are different series with different data, not one series twice
    run1, run10 = (Connectome.load(out / "sub-02" / "dwi" / f"{p}_model-tensor_algo-tensorline_seg-phantom_meas-count"
                                   "_connectome.npz").weights for p in ("sub-02_run-1", "sub-02_run-10"))
    assert not np.array_equal(run1, run10)
    kept = {k: v for k, v in _digests(out).items() if "model-tensor" in k}

    # another model and tracking into the same folder: the first configuration is untouched
    second = _run(study, out, config.replace(model="pigment", tracking_algorithm="probabilistic"),
                        n_jobs=2, n_threads=2, progress=False)
    assert set(second.summary.loc[second.summary["status"] == "ok", "prefix"]) == set(GOOD)
    after = _digests(out)
    assert {k: after[k] for k in kept} == kept
    assert all(any(k.endswith(f"{p}_model-pigment_algo-probabilistic_seg-phantom_meas-count_connectome.npz")
                   for k in after) for p in GOOD)

    # a group table counts subjects, not series: several series per subject are refused unless a rule is named
    with pytest.raises(InputError, match="sub-01"):
        read_cohort(out, seg="phantom", configuration={"model": "tensor", "algo": "tensorline"})
    conns, table = read_cohort(out, seg="phantom", configuration={"model": "tensor", "algo": "tensorline"},
                               multi_series="first")
    assert list(zip(table["subject"], table["session"].fillna(""), table["series"])) == [
        ("01", "1", "sub-01_ses-1_dir-AP"), ("01", "2", "sub-01_ses-2_dir-AP"), ("02", "", "sub-02_run-1"),
        ("03", "", "sub-03_acq-hi")]
    assert set(table["model"]) == {"tensor"} and len(conns) == 4
