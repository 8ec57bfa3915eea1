import numpy as np
import pandas as pd
import pytest

from pigment_connect.connectome import assign_endpoints, build_connectomes
from pigment_connect.errors import ConnectomeError, InputError
from pigment_connect.io import MicrostructureMaps, Parcellation, Tractogram

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def toy_parcellation():
    labels = np.zeros((10, 6, 6), np.int32)
    labels[0:2] = 1
    labels[4:6, :3] = 2
    labels[8:10] = 3
    return Parcellation(labels, AFFINE, pd.DataFrame({"index": [1, 2, 3], "name": ["a", "b", "c"]}), "toy")


def line(x0, x1, y=2.0, n=5):
    xs = np.linspace(x0, x1, n)
    return np.stack([xs, np.full(n, y), np.full(n, 4.0)], 1) * 2.0  # voxel → mm (affine 2 mm)


def test_counts_lengths_and_self_connections():
    parc = toy_parcellation()
    trk = Tractogram.from_streamlines(
        [line(0.5, 9.0), line(1.0, 8.2), line(0.0, 4.6), line(0.2, 1.2), line(3.0, 6.8, y=4.0)],
        affine=AFFINE, shape=parc.labels.shape)
    conns = build_connectomes(trk, parc, weightings=("count", "length", "invnodevol"), assignment="end_voxel")
    count = conns["count"].weights
    expected = np.zeros((3, 3))
    expected[0, 2] = expected[2, 0] = 2
    expected[0, 1] = expected[1, 0] = 1
    np.testing.assert_array_equal(count, expected)
    assert conns["count"].provenance["n_self_connections"] == 1
    assert conns["count"].provenance["n_unassigned"] == 1  # the y=4 line starts and ends outside nodes
    assert conns["length"].weights[0, 2] == pytest.approx(np.mean([17.0, 14.4]))
    vols = parc.volumes_mm3() / 8.0  # in voxels of 2 mm, as MRtrix3
    assert conns["invnodevol"].weights[0, 2] == pytest.approx(2 * 2 / (vols[0] + vols[2]))
    with_self = build_connectomes(trk, parc, assignment="end_voxel", self_connections=True)["count"]
    assert with_self.weights[0, 0] == 1


def test_radial_search_finds_the_nearest_label_within_radius():
    parc = toy_parcellation()
    trk = Tractogram.from_streamlines([line(0.5, 3.0), line(0.5, 7.0, y=4.0)], affine=AFFINE, shape=parc.labels.shape)
    ends = assign_endpoints(trk, parc, mode="end_voxel")
    assert ends[0, 1] == 0
    ends = assign_endpoints(trk, parc, mode="radial", radius=2.5)  # voxel 3 → voxel 4 is 2 mm away
    assert ends[0, 1] == 2
    assert ends[1, 1] == 3
    # strictly closer than the radius (as MRtrix3): 2 mm away is not within 2 mm
    assert assign_endpoints(trk, parc, mode="radial", radius=2.0)[0, 1] == 0


def test_mean_map_weighting():
    parc = toy_parcellation()
    fa = np.zeros(parc.labels.shape, np.float32)
    fa[:, 2] = 0.5
    maps = MicrostructureMaps({"fa": fa}, AFFINE, "tensor")
    trk = Tractogram.from_streamlines([line(0.5, 9.0)], affine=AFFINE, shape=parc.labels.shape)
    conn = build_connectomes(trk, parc, weightings=("mean_fa",), maps=maps)["mean_fa"]
    assert conn.weights[0, 2] == pytest.approx(0.5)
    with pytest.raises(InputError, match="mean_md"):
        build_connectomes(trk, parc, weightings=("mean_md",), maps=maps)


def test_misaligned_parcellation_and_nothing_assigned_are_errors():
    parc = toy_parcellation()
    shifted = Parcellation(parc.labels, AFFINE + np.pad([[0, 0, 0, 4.0]], ((0, 3), (0, 0)))[[1, 2, 3, 0]],
                           parc.nodes, "toy")
    trk = Tractogram.from_streamlines([line(3.0, 3.5, y=4.0)], affine=AFFINE, shape=parc.labels.shape)
    with pytest.raises(InputError, match="not aligned"):
        build_connectomes(trk, shifted)
    with pytest.raises(ConnectomeError, match="none of the 1 streamlines"):
        build_connectomes(trk, parc, assignment="end_voxel")


def test_end_voxel_counts_equal_dipy_connectivity_matrix(phantom, phantom_tensor_maps):
    from dipy.tracking.utils import connectivity_matrix

    from pigment_connect.track import Tracker

    trk = Tracker().track(phantom_tensor_maps, random_state=0)
    ours = build_connectomes(trk, phantom.parcellation, assignment="end_voxel")["count"].weights
    ref = connectivity_matrix(list(trk), phantom.dwi.affine, phantom.parcellation.labels, symmetric=True)
    ref = np.asarray(ref, dtype=float)[1:, 1:]  # drop DIPY's background row/column
    np.fill_diagonal(ref, 0)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")  # half the toy ends miss every node
def test_one_pass_over_a_streamed_file_equals_separate_in_memory_builds(tmp_path, rng):
    from pigment_connect.io import MicrostructureMaps

    parc = toy_parcellation()
    coarse = Parcellation(np.where(parc.labels > 0, 1 + (parc.labels == 3), 0).astype(np.int32), AFFINE,
                          pd.DataFrame({"index": [1, 2], "name": ["ab", "c"]}), "coarse")
    lines = [line(rng.uniform(0, 3), rng.uniform(5, 9.5), y=rng.uniform(0, 3)) for _ in range(400)]
    trk = Tractogram.from_streamlines(lines, affine=AFFINE, shape=parc.labels.shape)
    path = trk.save(tmp_path / "t.tck")
    fa = rng.random(parc.labels.shape).astype(np.float32)
    maps = MicrostructureMaps({"fa": fa}, AFFINE, "tensor", uncertainty={"fa": 0.1 * fa})
    kinds = ("count", "length", "mean_fa", "uncertainty_fa")
    both = build_connectomes(path, [parc, coarse], weightings=kinds, maps=maps, chunk_size=37)
    for p in (parc, coarse):
        alone = build_connectomes(trk, p, weightings=kinds, maps=maps)
        for k in kinds:
            np.testing.assert_allclose(both[p.name][k].weights, alone[k].weights, rtol=1e-6)
    assert both["toy"]["count"].provenance["n_streamlines"] == 400
    with pytest.raises(InputError, match="streamline weights"):
        build_connectomes(trk, parc, streamline_weights=np.ones(3))
    with pytest.raises(InputError, match="uncertainty"):
        build_connectomes(trk, parc, weightings=("uncertainty_md",), maps=maps)
