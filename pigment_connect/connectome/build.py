"""Weighted connectomes from a tractogram and one or several parcellations, in one pass.

Weightings (each streamline contributes with its weight w, 1 unless ``streamline_weights``)
----------------------------------------------------------------------------------------------
``count``              Σ w: number of streamlines (or sum of SIFT2-style weights) joining the nodes
                       (MRtrix3 ``tck2connectome``, ``-tck_weights_in``).
``invnodevol``         Σ w · 2 / (V_i + V_j), node volumes in voxels (``-scale_invnodevol``;
                       divide by the voxel volume for mm³).
``length``             Σ w·L / Σ w: mean streamline length of the edge, mm (``-scale_length
                       -stat_edge mean``); 0 where there is no streamline.
``invlength``          Σ w / L (``-scale_invlength``).
``mean_<map>``         Σ w·m / Σ w, m being each streamline's arc-length-weighted mean map value
                       over its points (nearest voxel, 0 outside the map; ``tcksample -stat_tck
                       mean -nointerp`` then ``-scale_file -stat_edge mean``), e.g. ``mean_fa``,
                       ``mean_ndi``; needs ``maps``.
``uncertainty_<map>``  the same mean of the map's per-voxel uncertainty (``maps.uncertainty``):
                       an edge-wise confidence of the ``mean_<map>`` connectome.

All matrices are symmetric. Self-connections (both ends in one node) are dropped unless
``self_connections=True``, in which case they sit on the diagonal (counted once). Streamlines
with an unassigned end are counted in the provenance (``n_unassigned``), never silently lost.

The tractogram is read once, in chunks when it is a file (``.tck`` streamed in bounded memory),
and every requested parcellation × weighting comes out of that pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from .._typing import PathLike
from ..errors import ConnectomeError, InputError, PigmentWarning
from ..io.connectome import Connectome
from ..io.grid import check_same_grid
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..io.stream import iter_tractogram
from ..io.tractogram import Tractogram
from ._kernels import mean_along, streamline_lengths
from .assign import assign_endpoints

__all__ = ["build_connectomes", "BASE_WEIGHTINGS", "read_streamline_weights", "is_strength"]

BASE_WEIGHTINGS = ("count", "invnodevol", "length", "invlength")


def is_strength(weighting: str) -> bool:
    """Whether a weighting is a connection strength that graph metrics may read (larger = more
    connected): not ``length`` (mm) nor ``uncertainty_<map>`` (a standard error). Takes the name or
    its BIDS label (``uncertaintyfa``)."""
    return weighting != "length" and not weighting.replace("_", "").startswith("uncertainty")


def read_streamline_weights(path: PathLike) -> np.ndarray:
    """Per-streamline weights from a text file (MRtrix3 ``tcksift2`` output: numbers separated by
    white space or commas; lines starting with ``#`` are comments)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("streamline weights file not found.", file=path)
    values = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        values.extend(line.replace(",", " ").split())
    try:
        weights = np.array(values, dtype=np.float64)
    except ValueError:
        raise InputError("the streamline weights file holds non-numeric values.", file=path) from None
    if not np.all(np.isfinite(weights)):
        raise InputError("the streamline weights file holds NaN or Inf.", file=path)
    return weights


@dataclass
class _Accumulator:
    """Edge sums of one parcellation over the chunks."""

    parcellation: Parcellation
    row_of: np.ndarray
    sums: dict = field(default_factory=dict)
    n_streamlines: int = 0
    n_assigned: int = 0
    n_unassigned: int = 0
    n_self: int = 0

    @property
    def n(self) -> int:
        return len(self.parcellation.nodes)

    def add(self, name: str, flat: np.ndarray, values: np.ndarray) -> None:
        upper = np.bincount(flat, weights=values, minlength=self.n * self.n)
        self.sums[name] = self.sums.get(name, 0.0) + upper

    def matrix(self, name: str) -> np.ndarray:
        upper = np.asarray(self.sums.get(name, np.zeros(self.n * self.n))).reshape(self.n, self.n)
        return upper + np.triu(upper, 1).T


def _check_weightings(weightings, maps: MicrostructureMaps | None) -> None:
    for w in weightings:
        if w in BASE_WEIGHTINGS:
            continue
        if w.startswith("mean_"):
            if maps is None or w[5:] not in maps:
                raise InputError(f"weighting {w!r} needs maps holding {w[5:]!r}.",
                                 fix="pass maps=... from the microstructure fit.")
        elif w.startswith("uncertainty_"):
            if maps is None or w[12:] not in maps.uncertainty:
                raise InputError(f"weighting {w!r} needs maps with an uncertainty map of {w[12:]!r}.",
                                 fix="use a fit that reports uncertainty (PigmentModel) or drop the weighting.")
        else:
            raise InputError(f"unknown weighting {w!r}; use {BASE_WEIGHTINGS}, mean_<map> or uncertainty_<map>.")


def build_connectomes(
    tractogram: Tractogram | PathLike,
    parcellation: Parcellation | Sequence[Parcellation],
    *,
    weightings: tuple[str, ...] = ("count",),
    maps: MicrostructureMaps | None = None,
    streamline_weights: np.ndarray | PathLike | None = None,
    assignment: str = "radial",
    radius: float = 2.0,
    self_connections: bool = False,
    chunk_size: int = 200_000,
    reference: tuple | None = None,
):
    """Build every requested connectome from a single pass over the streamlines.

    Parameters
    ----------
    tractogram : a Tractogram, or a .tck/.trx/.trk file read in chunks of ``chunk_size``.
    parcellation : one Parcellation, or several (each its own atlas) on the tractogram's grid.
    weightings : names from the module docstring.
    maps : MicrostructureMaps for ``mean_<map>`` / ``uncertainty_<map>`` weightings.
    streamline_weights : (S,) weights (e.g. SIFT2), or a text file of them.
    assignment, radius : see :func:`pigment_connect.connectome.assign.assign_endpoints`.
    self_connections : keep streamlines with both ends in one node, on the diagonal.
    reference : (shape, affine) for .tck files written by other software.

    Returns
    -------
    dict weighting → Connectome for one parcellation; dict atlas name → (dict weighting →
    Connectome) for a sequence of parcellations.

    Raises
    ------
    InputError
        Grid mismatch, unknown weighting, missing map, weights that do not match the streamlines.
    ConnectomeError
        No streamline joins two nodes of a parcellation.
    """
    single = isinstance(parcellation, Parcellation)
    parcellations = [parcellation] if single else list(parcellation)
    if not parcellations:
        raise InputError("no parcellation given.")
    names = [p.name for p in parcellations]
    if len(set(names)) != len(names):
        raise InputError(f"parcellation names must differ, got {names}.")
    _check_weightings(weightings, maps)
    weights_all = None
    if streamline_weights is not None:
        weights_all = (read_streamline_weights(streamline_weights) if isinstance(streamline_weights, (str, Path))
                       else np.asarray(streamline_weights, dtype=np.float64).ravel())
    chunks = [tractogram] if isinstance(tractogram, Tractogram) else iter_tractogram(
        tractogram, chunk_size=chunk_size, reference=reference)
    accs = []
    for p in parcellations:
        index = p.nodes["index"].to_numpy()
        row_of = np.full(int(max(index.max(), p.labels.max())) + 1, -1, dtype=np.int64)
        row_of[index] = np.arange(len(index))
        accs.append(_Accumulator(p, row_of))
    seen = 0
    for chunk in chunks:
        if seen == 0:
            for p in parcellations:
                check_same_grid(chunk.shape, chunk.affine, p.labels.shape, p.affine,
                                what=f"parcellation {p.name!r}", ref_name="the tractogram's grid")
        n_chunk = len(chunk)
        if weights_all is not None:
            if seen + n_chunk > weights_all.size:
                raise InputError(f"{weights_all.size} streamline weights for more streamlines than that.",
                                 fix="give one weight per streamline, in the tractogram's order.")
            w = weights_all[seen:seen + n_chunk]
        else:
            w = np.ones(n_chunk)
        seen += n_chunk
        if n_chunk == 0:
            continue
        lengths = streamline_lengths(chunk.points, chunk.offsets) if _needs_lengths(weightings) else None
        per_map = {}
        for name in weightings:
            if name.startswith("mean_"):
                per_map[name] = _mean_along(chunk, maps[name[5:]], maps.affine)
            elif name.startswith("uncertainty_"):
                per_map[name] = _mean_along(chunk, maps.uncertainty[name[12:]], maps.affine)
        for acc in accs:
            _accumulate(acc, chunk, w, lengths, per_map, weightings, assignment, radius, self_connections)
    if seen == 0:
        raise ConnectomeError("the tractogram is empty: no connectome can be built.")
    if weights_all is not None and seen != weights_all.size:
        raise InputError(f"{weights_all.size} streamline weights for {seen} streamlines.",
                         fix="give one weight per streamline, in the tractogram's order.")
    out = {acc.parcellation.name: _finish(acc, weightings, assignment, radius, self_connections,
                                          weights_all is not None) for acc in accs}
    return out[names[0]] if single else out


def _needs_lengths(weightings) -> bool:
    return "length" in weightings or "invlength" in weightings


def _accumulate(acc: _Accumulator, chunk: Tractogram, w, lengths, per_map, weightings, assignment, radius,
                self_connections) -> None:
    ends = assign_endpoints(chunk, acc.parcellation, mode=assignment, radius=radius)
    rows = np.where(ends > 0, acc.row_of[np.minimum(ends, acc.row_of.size - 1)], -1)
    assigned = np.all(rows >= 0, axis=1)
    self_loop = assigned & (rows[:, 0] == rows[:, 1])
    use = assigned & (self_connections | ~self_loop)
    acc.n_streamlines += len(chunk)
    acc.n_assigned += int(use.sum())
    acc.n_unassigned += int((~assigned).sum())
    acc.n_self += int(self_loop.sum())
    i, j = rows[use, 0], rows[use, 1]
    flat = np.minimum(i, j) * acc.n + np.maximum(i, j)
    wu = w[use]
    acc.add("count", flat, wu)
    if "length" in weightings:
        acc.add("length", flat, wu * lengths[use])
    if "invlength" in weightings:
        with np.errstate(divide="ignore"):
            acc.add("invlength", flat, np.where(lengths[use] > 0, wu / lengths[use], 0.0))
    for name, values in per_map.items():
        acc.add(name, flat, wu * values[use])


def _finish(acc: _Accumulator, weightings, assignment, radius, self_connections, weighted) -> dict[str, Connectome]:
    p = acc.parcellation
    if acc.n_assigned == 0:
        raise ConnectomeError(
            f"none of the {acc.n_streamlines} streamlines joins two nodes of {p.name!r} "
            f"({acc.n_unassigned} have an end outside every node).",
        )
    if acc.n_unassigned > 0.5 * acc.n_streamlines:
        warnings.warn(
            f"{acc.n_unassigned} of {acc.n_streamlines} streamlines ({100 * acc.n_unassigned / acc.n_streamlines:.0f}%) "
            f"have an end outside every node of {p.name!r}.",
            PigmentWarning,
            stacklevel=3,
        )
    provenance = {
        "software": f"pigment_connect {__version__}",
        "atlas": p.name,
        "assignment": assignment,
        "radius_mm": radius if assignment in ("radial", "reverse") else None,
        "self_connections": self_connections,
        "streamline_weights": weighted,
        "n_streamlines": acc.n_streamlines,
        "n_assigned": acc.n_assigned,
        "n_unassigned": acc.n_unassigned,
        "n_self_connections": acc.n_self,
    }
    count = acc.matrix("count")
    out: dict[str, Connectome] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in weightings:
            if w == "count":
                weights = count
            elif w == "invnodevol":
                vol = p.volumes_mm3() / abs(np.linalg.det(p.affine[:3, :3]))  # voxels, as MRtrix3
                pair = vol[:, None] + vol[None, :]
                weights = np.where(pair > 0, count * 2.0 / pair, 0.0)
            elif w == "invlength":
                weights = acc.matrix("invlength")
            else:  # means over the edge's streamlines: length, mean_<map>, uncertainty_<map>
                weights = np.where(count > 0, acc.matrix(w) / count, 0.0)
            out[w] = Connectome(weights, p.nodes, w, p.name, dict(provenance))
    return out


def _mean_along(tractogram: Tractogram, volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(S,) arc-length-weighted mean of ``volume`` (nearest voxel) along each streamline."""
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise InputError(f"a scalar map is needed for mean_<map> weightings, got shape {volume.shape}.")
    return mean_along(tractogram.points, tractogram.offsets, np.linalg.inv(affine), np.ascontiguousarray(volume))
