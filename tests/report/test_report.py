"""QC reports from the derivatives alone: robust z-scores, orientation from the affine, a failed
series' page, and `pigment-connect report` rebuilding the pages without recomputing anything."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from pigment_connect.cli.main import main
from pigment_connect.datasets import make_subject
from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
from pigment_connect.pipeline import PipelineConfig, run_cohort
from pigment_connect.report import robust_z
from pigment_connect.report.figures import to_ras
from pigment_connect.report.series import _world_colours


def test_robust_z_flags_the_outlier_and_needs_enough_series():
    z = robust_z(pd.Series([1.0, 1.1, 0.9, 1.0, 1.05, 5.0]))
    assert abs(z.iloc[-1]) > 3 and (z.iloc[:-1].abs() < 3).all()
    # MAD of 0 (most series equal): the mean absolute deviation stands in, the odd one still stands out
    z = robust_z(pd.Series([2.0, 2.0, 2.0, 2.0, 9.0]))
    assert np.isfinite(z).all() and z.iloc[-1] > 3
    assert robust_z(pd.Series([1.0, 2.0, 3.0])).isna().all()  # too few to tell
    # series that all but agree: 9% from the median is not an outlier, however tight the rest are
    assert (robust_z(pd.Series([100.0, 100.0, 100.0, 100.0, 109.0])).abs() <= 3).all()


def test_pictures_are_oriented_from_the_affine():
    # voxel axis 0 runs right → left (x = -2 i), axis 1 is superior (world z), axis 2 anterior (world y)
    affine = np.array([[-2.0, 0, 0, 90], [0, 0, 2, -120], [0, 2, 0, -70], [0, 0, 0, 1]])
    volume = np.zeros((10, 12, 14))
    volume[0, 0, 0] = 1.0  # the voxel furthest right, inferior, posterior
    ras, zooms = to_ras(volume, affine)
    assert ras.shape == (10, 14, 12) and np.allclose(zooms, 2.0)
    assert ras[-1, 0, 0] == 1.0  # right is the last index along x, posterior and inferior the first
    # colour FA: an eigenvector along voxel axis 1 (world S-I) is blue, along voxel axis 2 (A-P) green
    rgb = np.zeros((1, 1, 2, 3))
    rgb[0, 0, 0] = [0, 1, 0]
    rgb[0, 0, 1] = [0, 0, 1]
    world = _world_colours(rgb, affine)
    assert np.allclose(world[0, 0, 0], [0, 0, 1]) and np.allclose(world[0, 0, 1], [0, 1, 0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "bids"
    write_bids([make_subject(subject=s, shape=(32, 36, 8), seed=k) for k, s in enumerate(("01", "02"), 1)], root)
    bad = root / "sub-02" / "dwi" / "sub-02_dwi.bval"
    bad.write_text(" ".join(bad.read_text().split()[:-2]) + "\n")  # two b-values short of the volumes
    out = root.parent / "out"
    run_cohort(root, out, PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count",)),
               progress=False)
    return out


def test_a_failed_series_gets_a_page_saying_what_failed(cohort):
    page = cohort / "sub-02" / "dwi" / "sub-02_report.html"
    html = page.read_text()
    assert "failed" in html and "sub-02_dwi.bval" in html
    qc = pd.read_csv(cohort / "group_qc.tsv", sep="\t").set_index("series")
    assert qc.loc["sub-02", "status"] == "failed" and qc.loc["sub-01", "status"] == "ok"
    assert qc.loc["sub-01", "streamlines"] > 100 and 0 < qc.loc["sub-01", "fraction_assigned"] <= 1
    assert qc.loc["sub-01", "snr_b0"] > 5 and qc.loc["sub-01", "mask_ml"] > 0
    report = (cohort / "report.html").read_text()
    assert 'href="sub-01/dwi/sub-01_report.html"' in report


def test_report_rebuilds_the_pages_without_recomputing(cohort, capsys):
    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cohort.rglob("*")
                if p.is_file() and not p.name.endswith(("_report.html", "report.html", "group_qc.tsv"))}

    before = digests()
    page = cohort / "sub-01" / "dwi" / "sub-01_report.html"
    page.unlink()
    assert main(["report", str(cohort)]) == 0
    assert page.is_file() and "report.html" in capsys.readouterr().out
    assert digests() == before  # no stage ran: every derivative is byte-identical
    assert main(["report", str(cohort / "nothing-here")]) == 2
