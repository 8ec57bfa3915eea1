"""Streamlines in RAS+ mm with the voxel grid they were tracked on.

Layout (nibabel's ``ArraySequence`` idea, flat so numba kernels can read it directly):
``points`` (P, 3) float32 holds every point of every streamline back to back; streamline *s* is
``points[offsets[s]:offsets[s + 1]]``. Points are in RAS+ mm; the reference grid (``affine``,
``shape``) maps them to voxels, with voxel centres at integer indices (nibabel convention).

Formats by suffix: ``.tck`` (MRtrix3), ``.trk`` (TrackVis), ``.trx`` (TRX), all through their
reference libraries (nibabel, trx-python), so MRtrix3 and DIPY read what we write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .._typing import Affine, PathLike
from ..errors import InputError
from .grid import voxel_sizes, world_to_voxel
from .write import atomic_path

__all__ = ["Tractogram", "TRACTOGRAM_FORMATS"]

TRACTOGRAM_FORMATS = (".tck", ".trk", ".trx")


@dataclass(frozen=True, eq=False)
class Tractogram:
    """A set of streamlines.

    Attributes
    ----------
    points : (P, 3) float32, RAS+ mm
        All points, streamline after streamline; P = total number of points.
    offsets : (S + 1,) int64
        Streamline *s* is ``points[offsets[s]:offsets[s+1]]``; ``offsets[0] == 0``, ``offsets[-1] == P``.
    affine : (4, 4) float64
        Voxel index → RAS+ mm of the reference grid.
    shape : (3,) int
        Spatial shape of the reference grid.
    per_streamline : dict of str → (S,) or (S, k) array
        Data attached to each streamline (e.g. ``seed_index``, ``weight``).
    """

    points: np.ndarray
    offsets: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    per_streamline: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        points = np.ascontiguousarray(self.points, dtype=np.float32).reshape(-1, 3)
        offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or offsets[-1] != len(points):
            raise InputError("offsets must start at 0 and end at the number of points.")
        if np.any(np.diff(offsets) < 0):
            raise InputError("offsets must be non-decreasing.")
        n = offsets.size - 1
        for key, value in self.per_streamline.items():
            if len(value) != n:
                raise InputError(f"per_streamline[{key!r}] has {len(value)} rows for {n} streamlines.")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "affine", np.asarray(self.affine, dtype=np.float64))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_streamlines(
        cls, streamlines, *, affine: Affine, shape, per_streamline: dict | None = None
    ) -> Tractogram:
        """Build from a sequence of (n_i, 3) arrays in RAS+ mm."""
        streamlines = [np.asarray(s, dtype=np.float32).reshape(-1, 3) for s in streamlines]
        lengths = np.array([len(s) for s in streamlines], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        points = np.concatenate(streamlines) if streamlines else np.zeros((0, 3), np.float32)
        return cls(points, offsets, affine, shape, dict(per_streamline or {}))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, s: int) -> np.ndarray:
        if not -len(self) <= s < len(self):
            raise IndexError(f"streamline {s} out of range for {len(self)} streamlines")
        s = s % len(self)
        return self.points[self.offsets[s] : self.offsets[s + 1]]

    def __iter__(self):
        for s in range(len(self)):
            yield self.points[self.offsets[s] : self.offsets[s + 1]]

    def select(self, index) -> Tractogram:
        """The streamlines picked by ``index`` (boolean mask of length S, or integer indices)."""
        idx = np.arange(len(self))[index]
        counts = self.n_points[idx]
        gather = (np.repeat(self.offsets[idx] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
                  + np.arange(counts.sum()))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        dps = {k: np.asarray(v)[idx] for k, v in self.per_streamline.items()}
        return Tractogram(self.points[gather], offsets, self.affine, self.shape, dps)

    @property
    def n_points(self) -> np.ndarray:
        """(S,) int64: points per streamline."""
        return np.diff(self.offsets)

    @property
    def lengths(self) -> np.ndarray:
        """(S,) float64, mm: arc length of each streamline."""
        if len(self) == 0:
            return np.zeros(0)
        seg = np.linalg.norm(np.diff(self.points.astype(np.float64), axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])  # cum[i] = length from point 0 to point i
        first = self.offsets[:-1]
        last = np.maximum(self.offsets[1:] - 1, first)  # segments first..last-1 lie inside the streamline
        return cum[np.minimum(last, len(cum) - 1)] - cum[np.minimum(first, len(cum) - 1)]

    def endpoints(self) -> np.ndarray:
        """(S, 2, 3) float32, RAS+ mm: first and last point of each streamline."""
        if len(self) == 0:
            return np.zeros((0, 2, 3), np.float32)
        if np.any(self.n_points == 0):
            raise InputError("the tractogram holds empty streamlines.")
        return np.stack([self.points[self.offsets[:-1]], self.points[self.offsets[1:] - 1]], axis=1)

    def to_voxel(self, points: np.ndarray | None = None) -> np.ndarray:
        """Points (default: all) in voxel index coordinates of the reference grid."""
        return world_to_voxel(self.points if points is None else points, self.affine)

    @property
    def reference_image(self) -> nib.Nifti1Image:
        """An empty image carrying the reference grid (for writers that need one)."""
        img = nib.Nifti1Image(np.zeros(self.shape, dtype=np.uint8), self.affine)
        img.header.set_zooms(voxel_sizes(self.affine))
        return img

    # ------------------------------------------------------------------ files
    def save(self, path: PathLike) -> Path:
        """Write by suffix (.tck, .trk, .trx), atomically. Returns the path.

        ``per_streamline`` data is kept in .trk and .trx; .tck stores points only (plus the
        reference grid in its header, which MRtrix3 ignores).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in TRACTOGRAM_FORMATS:
            raise InputError(f"unknown tractogram format {suffix!r}.", file=path, fix=f"use one of {TRACTOGRAM_FORMATS}.")
        if suffix == ".trx":
            with atomic_path(path) as tmp:
                _save_trx(self, tmp)
            return path
        # TCK cannot store per-streamline data (MRtrix3 keeps it in separate files): it is not written.
        dps = _dps_2d(self.per_streamline) if suffix == ".trk" else {}
        nib_tract = nib.streamlines.Tractogram(list(self), affine_to_rasmm=np.eye(4), data_per_streamline=dps)
        if suffix == ".tck":
            header = tck_grid_header(self.affine, self.shape)
            tract_file = nib.streamlines.TckFile(nib_tract, header=header)
        else:
            header = {
                nib.streamlines.Field.VOXEL_TO_RASMM: self.affine,
                nib.streamlines.Field.VOXEL_SIZES: voxel_sizes(self.affine),
                nib.streamlines.Field.DIMENSIONS: np.array(self.shape, dtype=np.int16),
                nib.streamlines.Field.VOXEL_ORDER: "".join(nib.aff2axcodes(self.affine)),
            }
            tract_file = nib.streamlines.TrkFile(nib_tract, header=header)
        with atomic_path(path) as tmp:
            tract_file.save(str(tmp))
        return path

    @classmethod
    def load(cls, path: PathLike, *, reference: tuple | None = None) -> Tractogram:
        """Read a .tck, .trk or .trx file.

        Parameters
        ----------
        path : file to read.
        reference : (shape, affine), optional
            The grid for .tck files not written by pigment_connect (TCK stores no grid).
        """
        path = Path(path)
        if not path.is_file():
            raise InputError("tractogram file not found.", file=path)
        suffix = path.suffix.lower()
        if suffix not in TRACTOGRAM_FORMATS:
            raise InputError(f"unknown tractogram format {suffix!r}.", file=path, fix=f"use one of {TRACTOGRAM_FORMATS}.")
        try:
            if suffix == ".trx":
                return _load_trx(path)
            tfile = nib.streamlines.load(str(path))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read the tractogram ({type(exc).__name__}: {exc}).", file=path) from None
        streamlines = tfile.streamlines
        header = tfile.header
        if suffix == ".trk":
            affine = np.asarray(header[nib.streamlines.Field.VOXEL_TO_RASMM], dtype=np.float64)
            shape = tuple(int(v) for v in header[nib.streamlines.Field.DIMENSIONS])
        else:
            shape, affine = tck_grid(header, reference, path)
        dps = {k: np.asarray(v).squeeze(-1) if np.ndim(v) == 2 and np.shape(v)[1] == 1 else np.asarray(v)
               for k, v in tfile.tractogram.data_per_streamline.items()}
        points = np.asarray(streamlines.get_data(), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(streamlines._lengths)]).astype(np.int64)
        if points.shape[0] != offsets[-1]:  # nibabel may keep a buffer larger than the data
            points = np.concatenate([np.asarray(s) for s in streamlines]) if len(streamlines) else np.zeros((0, 3))
        return cls(points, offsets, affine, shape, dps)


def tck_grid_header(affine: np.ndarray, shape) -> dict[str, str]:
    """The header entries in which pigment_connect stores a .tck file's voxel grid (read back by
    :func:`tck_grid`)."""
    return {"pigment_affine": " ".join(f"{v:.8g}" for v in np.asarray(affine, dtype=np.float64).ravel()),
            "pigment_shape": " ".join(str(int(v)) for v in shape)}


def tck_grid(header, reference: tuple | None, path: Path) -> tuple[tuple, np.ndarray]:
    """(shape, affine) of a .tck file: from the grid pigment_connect writes into its header, else
    ``reference``; a clear error when neither is there (TCK itself stores no grid)."""
    if "pigment_affine" in header:
        affine = np.array(header["pigment_affine"].split(), dtype=np.float64).reshape(4, 4)
        return tuple(int(v) for v in header["pigment_shape"].split()), affine
    if reference is not None:
        shape, affine = reference
        return tuple(shape), np.asarray(affine, dtype=np.float64)
    raise InputError("a .tck file stores no voxel grid.", file=path,
                     fix="pass reference=(shape, affine) of the DWI it was tracked on.")


def _dps_2d(per_streamline: dict) -> dict:
    return {k: np.asarray(v).reshape(len(v), -1) for k, v in per_streamline.items()}


def _save_trx(trk: Tractogram, path: Path) -> None:
    import trx.trx_file_memmap as tmm
    from dipy.io.stateful_tractogram import Space, StatefulTractogram

    sft = StatefulTractogram(
        list(trk), trk.reference_image, Space.RASMM, data_per_streamline=_dps_2d(trk.per_streamline)
    )
    trx_file = tmm.TrxFile.from_sft(sft)
    try:
        tmm.save(trx_file, str(path))
    finally:
        trx_file.close()


def _load_trx(path: Path) -> Tractogram:
    import trx.trx_file_memmap as tmm

    trx_file = tmm.load(str(path))
    try:
        header = trx_file.header
        affine = np.asarray(header["VOXEL_TO_RASMM"], dtype=np.float64)
        shape = tuple(int(v) for v in header["DIMENSIONS"])
        seq = trx_file.streamlines
        lengths = np.asarray(seq._lengths, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        points = np.array(seq._data[: offsets[-1]], dtype=np.float32)
        dps = {k: np.array(v).squeeze(-1) if np.ndim(v) == 2 and np.shape(v)[1] == 1 else np.array(v)
               for k, v in trx_file.data_per_streamline.items()}
    finally:
        trx_file.close()
    return Tractogram(points, offsets, affine, shape, dps)
