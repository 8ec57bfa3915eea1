"""One command per stage (fit → track → connectome → metrics): each gives what its API gives,
refuses to overwrite, and names the file and the fix on bad input (exit 2)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pigment_connect.cli.main import main
from pigment_connect.io.maps import MicrostructureMaps

PHANTOM = "derivatives/phantom/sub-01/dwi/sub-01_space-dwi_{}"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A simulated subject taken through the four stage commands."""
    root = tmp_path_factory.mktemp("stages")
    bids = root / "bids"
    assert main(["simulate", str(bids), "--n-subjects", "1", "--shape", "32", "36", "8", "--quiet"]) == 0
    paths = {
        "dwi": bids / "sub-01" / "dwi" / "sub-01_dwi.nii.gz",
        "dseg": bids / PHANTOM.format("seg-phantom_dseg.nii.gz"),
        "tissue": bids / PHANTOM.format("desc-5tt_probseg.nii.gz"),
        "maps": root / "maps",
        "tck": root / "tracks" / "sub-01_tractography.tck",
        "conn": root / "conn",
        "graph": root / "sub-01_graph.tsv",
        "nodes": root / "sub-01_nodes.tsv",
    }
    assert main(["fit", str(paths["dwi"]), str(paths["maps"]), "--quiet"]) == 0
    assert main(["track", str(paths["maps"]), str(paths["tck"]), "--tissue", str(paths["tissue"]),
                 "--seed", "3", "--quiet"]) == 0
    assert main(["connectome", str(paths["tck"]), str(paths["conn"]), "--parcellation", str(paths["dseg"]),
                 "--maps", str(paths["maps"]), "--weighting", "count,length", "--weighting", "mean_fa", "--quiet"]) == 0
    count = paths["conn"] / "sub-01_seg-phantom_meas-count_connectome.tsv"
    assert main(["metrics", str(count), str(paths["graph"]), "--nodes", str(paths["nodes"]), "--quiet"]) == 0
    return paths


def test_each_stage_command_gives_what_its_api_gives(chain):
    from pigment_connect.connectome import build_connectomes
    from pigment_connect.fit import TensorModel
    from pigment_connect.graph import global_metrics
    from pigment_connect.io.dwi import load_dwi
    from pigment_connect.io.maps import MicrostructureMaps
    from pigment_connect.io.parcellation import Parcellation
    from pigment_connect.io.tractogram import Tractogram
    from pigment_connect.track import Tracker

    maps = MicrostructureMaps.from_index(chain["maps"])
    api_maps = TensorModel(load_dwi(chain["dwi"]).gtab).fit(load_dwi(chain["dwi"])).maps
    np.testing.assert_allclose(maps["fa"], api_maps["fa"], atol=1e-6)

    tracks = Tractogram.load(chain["tck"])
    api_tracks = Tracker().track(maps, tissue=chain["tissue"], random_state=3)
    assert len(tracks) == len(api_tracks) > 50
    np.testing.assert_allclose(tracks.points, api_tracks.points, atol=1e-4)  # .tck stores float32

    parc = Parcellation.load(chain["dseg"])
    api_conn = build_connectomes(api_tracks, parc, weightings=("count", "length", "mean_fa"), maps=maps)
    for weighting, meas in (("count", "count"), ("length", "length"), ("mean_fa", "meanfa")):
        written = pd.read_csv(chain["conn"] / f"sub-01_seg-phantom_meas-{meas}_connectome.tsv", sep="\t", index_col=0)
        np.testing.assert_allclose(written.to_numpy(), api_conn[weighting].weights, rtol=1e-5, atol=1e-6)
    assert api_conn["count"].weights.sum() > 0

    row = pd.read_csv(chain["graph"], sep="\t").iloc[0]
    expected = global_metrics(api_conn["count"])
    assert row["weighting"] == "count"
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    nodes = pd.read_csv(chain["nodes"], sep="\t")
    assert len(nodes) == parc.n_nodes


def test_stage_commands_refuse_to_overwrite_unless_forced(chain, capsys):
    capsys.readouterr()
    assert main(["fit", str(chain["dwi"]), str(chain["maps"]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sub-01_model-tensor_dwimap.json" in err and "--force" in err
    assert main(["track", str(chain["maps"]), str(chain["tck"]), "--quiet"]) == 2
    assert "sub-01_tractography.tck" in capsys.readouterr().err
    assert main(["connectome", str(chain["tck"]), str(chain["conn"]), "--parcellation", str(chain["dseg"]),
                 "--quiet"]) == 2
    assert "meas-count_connectome.tsv" in capsys.readouterr().err
    count = chain["conn"] / "sub-01_seg-phantom_meas-count_connectome.tsv"
    before = chain["graph"].read_text()
    assert main(["metrics", str(count), str(chain["graph"]), "--quiet", "--force"]) == 0
    assert chain["graph"].read_text() == before  # same input + same seed = same output


def test_stage_commands_name_the_file_and_the_fix_on_bad_input(chain, tmp_path, capsys):
    capsys.readouterr()
    cases = [
        (["fit", str(tmp_path / "missing_dwi.nii.gz"), str(tmp_path / "m")], "missing_dwi.nii.gz"),
        (["track", str(tmp_path), str(tmp_path / "t.tck")], str(tmp_path)),
        (["track", str(chain["maps"]), str(tmp_path / "t.vtk")], "t.vtk"),
        (["connectome", str(chain["tck"]), str(tmp_path / "c"), "--atlas", "schaefer200"], "--maps"),
        (["connectome", str(chain["tck"]), str(tmp_path / "c")], "--parcellation"),
        (["metrics", str(chain["conn"] / "sub-01_seg-phantom_meas-length_connectome.tsv"),
          str(tmp_path / "g.tsv")], "meas-length_connectome.tsv"),
        (["fit", str(chain["dwi"]), str(tmp_path / "m"), "--model", "tensor", "--sigma", "5"], "--sigma"),
        (["fit", str(chain["dwi"]), str(tmp_path / "m"), "--model", "pigment-zeroshot", "--sigma", "-1"], "--sigma"),
    ]
    for argv, named in cases:
        assert main(argv + ["--quiet"]) == 2, argv
        err = capsys.readouterr().err
        assert named in err and "Fix:" in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "g.tsv").exists()


def test_fit_with_evidence_names_its_maps_apart(chain, tmp_path):
    out = tmp_path / "m"
    for model in ("pigment-zeroshot", "pigment-zeroshot-evidence"):
        assert main(["fit", str(chain["dwi"]), str(out), "--model", model, "--quiet"]) == 0
    plain = MicrostructureMaps.load(out, prefix="sub-01", model="pigmentzeroshot")
    evidence = MicrostructureMaps.load(out, prefix="sub-01", model="pigmentzeroshotevidence")
    assert set(evidence.names) == set(plain.names) | {"isotropic_probability"}
    assert set(plain.uncertainty) == set(evidence.uncertainty)
    assert np.isfinite(evidence["fa"]).all()
    p_iso = evidence["isotropic_probability"][evidence.mask]
    assert ((p_iso >= 0) & (p_iso <= 1)).all()


def test_fit_gives_sigma_to_the_pigment_models(monkeypatch):
    from pigment_connect.cli.fit import PIGMENT_MODELS, _model
    from pigment_connect.datasets import make_protocol
    from pigment_connect.pigment import AmortisedPigmentModel

    monkeypatch.setattr(AmortisedPigmentModel, "train", lambda self, **kw: {})  # the value, not the training
    gtab = make_protocol("sparse6")
    for name in PIGMENT_MODELS:
        assert _model(name, gtab, 0, 12.5).sigma == 12.5, name
        assert _model(name, gtab, 0).sigma is None, name
    assert _model("pigment-zeroshot-evidence", gtab, 0).evidence
    assert not _model("pigment-zeroshot", gtab, 0).evidence
