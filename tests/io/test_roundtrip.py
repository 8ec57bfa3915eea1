import numpy as np
import pandas as pd
import pytest

from pigment_connect.errors import InputError
from pigment_connect.io import Connectome, MicrostructureMaps, Parcellation, Tractogram
from pigment_connect.io.write import atomic_path


def test_maps_save_load_round_trip(tmp_path, rng):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    maps = MicrostructureMaps(
        {"fa": rng.random((4, 5, 6)).astype(np.float32), "evec1": rng.random((4, 5, 6, 3)).astype(np.float32)},
        affine, "tensor", mask=rng.random((4, 5, 6)) > 0.5, uncertainty={"fa": rng.random((4, 5, 6)).astype(np.float32)},
    )
    paths = maps.save(tmp_path, prefix="sub-01")
    assert paths["fa"].name == "sub-01_model-tensor_param-fa_dwimap.nii.gz"
    back = MicrostructureMaps.load(tmp_path, prefix="sub-01", model="tensor")
    for key in ("fa", "evec1"):
        np.testing.assert_array_equal(back[key], maps[key])
    np.testing.assert_array_equal(back.uncertainty["fa"], maps.uncertainty["fa"])
    np.testing.assert_array_equal(back.mask, maps.mask)
    np.testing.assert_allclose(back.affine, affine)


def _tractogram(rng):
    affine = np.array([[-2.0, 0, 0, 40], [0, 2, 0, -30], [0, 0, 2.5, -10], [0, 0, 0, 1]])
    lines = [rng.uniform(-20, 20, size=(n, 3)).astype(np.float32) for n in (2, 5, 9)]
    return Tractogram.from_streamlines(lines, affine=affine, shape=(30, 31, 12),
                                       per_streamline={"seed_index": np.array([3, 1, 2])})


@pytest.mark.parametrize("suffix", [".tck", ".trk", ".trx"])
def test_tractogram_round_trip(tmp_path, rng, suffix):
    trk = _tractogram(rng)
    back = Tractogram.load(trk.save(tmp_path / f"t{suffix}"))
    np.testing.assert_allclose(back.points, trk.points, atol=1e-3)  # trk stores float32 voxmm
    np.testing.assert_array_equal(back.offsets, trk.offsets)
    np.testing.assert_allclose(back.affine, trk.affine, atol=1e-5)
    assert back.shape == trk.shape
    if suffix != ".tck":
        np.testing.assert_array_equal(back.per_streamline["seed_index"], [3, 1, 2])


@pytest.mark.parametrize("suffix", [".trk", ".trx", ".tck"])
def test_dipy_reads_our_tractograms_in_the_same_place(tmp_path, rng, suffix):
    from dipy.io.streamline import load_tractogram

    trk = _tractogram(rng)
    path = trk.save(tmp_path / f"t{suffix}")
    reference = "same" if suffix != ".tck" else trk.reference_image
    sft = load_tractogram(str(path), reference, bbox_valid_check=False)
    sft.to_rasmm()
    np.testing.assert_allclose(np.concatenate(list(sft.streamlines)), trk.points, atol=1e-3)


def test_tractogram_lengths_select_and_bad_offsets(rng):
    trk = Tractogram.from_streamlines([[[0, 0, 0], [3, 4, 0]], [[0, 0, 0], [1, 0, 0], [1, 1, 0]]],
                                      affine=np.eye(4), shape=(5, 5, 5))
    np.testing.assert_allclose(trk.lengths, [5.0, 2.0])
    sub = trk.select(np.array([False, True]))
    assert len(sub) == 1 and sub.lengths[0] == pytest.approx(2.0)
    with pytest.raises(InputError):
        Tractogram(np.zeros((3, 3)), np.array([0, 2]), np.eye(4), (2, 2, 2))


def _parcellation():
    labels = np.zeros((6, 6, 6), np.int32)
    labels[:2] = 1
    labels[4:] = 2
    nodes = pd.DataFrame({"index": [1, 2], "name": ["left", "right"], "hemisphere": ["L", "R"]})
    return Parcellation(labels, np.diag([2.0, 2.0, 2.0, 1.0]), nodes, "toy")


def test_parcellation_round_trip_and_centroids(tmp_path):
    parc = _parcellation()
    np.testing.assert_allclose(parc.nodes[["x", "y", "z"]].to_numpy(), [[1.0, 5.0, 5.0], [9.0, 5.0, 5.0]])
    back = Parcellation.load(parc.save(tmp_path / "sub-01_space-dwi_seg-toy_dseg.nii.gz"))
    assert back.name == "toy"
    np.testing.assert_array_equal(back.labels, parc.labels)
    pd.testing.assert_frame_equal(back.nodes[["index", "name"]], parc.nodes[["index", "name"]])


def test_parcellation_labels_missing_from_table_are_an_error():
    parc = _parcellation()
    labels = parc.labels.copy()
    labels[3, 3, 3] = 7
    with pytest.raises(InputError, match=r"labels \[7\].*missing from its node table"):
        Parcellation(labels, parc.affine, parc.nodes, "toy")


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".tsv", ".graphml", ".gexf", ".mat"])
def test_connectome_round_trip(tmp_path, rng, suffix):
    w = rng.random((5, 5))
    w = np.triu(w, 1)
    w[0, 3] = 0.0
    w = w + w.T
    nodes = pd.DataFrame({"index": np.arange(1, 6), "name": list("abcde"), "x": rng.random(5),
                          "y": rng.random(5), "z": rng.random(5)})
    conn = Connectome(w, nodes, "count", "toy", {"n": 3})
    back = Connectome.load(conn.save(tmp_path / f"c{suffix}"), weighting="count", atlas="toy")
    np.testing.assert_allclose(back.weights, w, rtol=1e-9)
    assert back.labels == list("abcde")
    assert back.weighting == "count" and back.atlas == "toy"
    if suffix in (".npz", ".graphml", ".gexf", ".mat"):
        np.testing.assert_allclose(back.nodes[["x", "y", "z"]].to_numpy(dtype=float),
                                   nodes[["x", "y", "z"]].to_numpy(), rtol=1e-6)


def test_connectome_validation():
    nodes = pd.DataFrame({"index": [1, 2], "name": ["a", "b"]})
    with pytest.raises(InputError, match="symmetric"):
        Connectome(np.array([[0, 1.0], [2.0, 0]]), nodes, "count", "toy")
    with pytest.raises(InputError, match="NaN"):
        Connectome(np.array([[0, np.nan], [np.nan, 0]]), nodes, "count", "toy")


def test_atomic_write_leaves_target_untouched_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_gives_the_mode_a_plain_write_would(tmp_path):
    import os

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777  # not mkstemp's private 0600
