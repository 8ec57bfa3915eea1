"""Chunked .tck reading: same streamlines as a whole load, whatever the block and chunk sizes."""

import numpy as np
import pytest

import pigment_connect.io.stream as stream
from pigment_connect.errors import InputError
from pigment_connect.io import Tractogram


@pytest.fixture()
def tck(tmp_path, rng):
    lines = [rng.normal(size=(int(rng.integers(1, 30)), 3)).astype(np.float32) * 10 for _ in range(3000)]
    trk = Tractogram.from_streamlines(lines, affine=np.diag([2.0, 2, 2, 1]), shape=(10, 10, 10))
    return trk, trk.save(tmp_path / "a.tck")


@pytest.mark.parametrize("block,chunk", [(7, 5), (1000, 333), (10**6, 10**6)])
def test_chunks_reassemble_the_tractogram(tck, monkeypatch, block, chunk):
    trk, path = tck
    monkeypatch.setattr(stream, "_POINTS_PER_BLOCK", block)
    chunks = list(stream.iter_tractogram(path, chunk_size=chunk))
    assert all(len(c) <= chunk for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c.points for c in chunks]), trk.points)
    np.testing.assert_array_equal(np.concatenate([c.n_points for c in chunks]), trk.n_points)
    assert np.allclose(chunks[0].affine, trk.affine) and chunks[0].shape == trk.shape


def test_truncated_and_foreign_files_are_clear_errors(tck, tmp_path):
    _, path = tck
    data = path.read_bytes()
    (tmp_path / "cut.tck").write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="truncated|terminator|middle of a point"):
        list(stream.iter_tractogram(tmp_path / "cut.tck"))
    (tmp_path / "x.tck").write_bytes(b"not a tck\n")
    with pytest.raises(InputError, match="mrtrix tracks"):
        list(stream.iter_tractogram(tmp_path / "x.tck"))
    with pytest.raises(InputError, match="stores no voxel grid"):
        header = data.split(b"END\n")[0].decode("latin-1")
        stripped = "\n".join(line for line in header.splitlines() if not line.startswith("pigment_"))
        body = data[data.index(b"END\n") + 4:]
        offset = len(stripped) + len("\nEND\n")
        stripped = stripped.replace(stripped.split("file: ")[1].split("\n")[0], f". {offset}")
        (tmp_path / "foreign.tck").write_bytes((stripped + "\nEND\n").encode() + body)
        list(stream.iter_tractogram(tmp_path / "foreign.tck"))
