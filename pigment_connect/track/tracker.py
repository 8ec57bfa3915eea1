"""Streamline tracking on a tensor field (the Python side of the tracker).

Deterministic stepping rules: ``"eigenvector"`` follows the principal eigenvector (MRtrix3
``Tensor_Det``); ``"tensorline"`` (default) blends it with the incoming direction deflected by
the tensor, weighted by the tensor's linearity (Weinstein et al. 1999, Lazar et al. 2003), so
streamlines keep their course through crossings where a single tensor is planar.

``"probabilistic"`` draws each step's direction at random. With a dispersion map
(``dispersion="odi"``: the NODDI / PIGMENT orientation dispersion index) the draw is Watson
around the local principal direction with κ = 1/tan(π·ODI/2), the NODDI relation. From the
tensor alone (``"tensor"``) it is the tensor's angular central Gaussian, v = D·g/|D·g| with g
standard normal: narrow around the principal direction where the tensor is linear
(≈ atan(λ⊥/λ1)), a girdle in the fibre plane where it is planar (a crossing or fanning), so
streamlines keep to the plane of the fibres. Each seed draws from its own counter-based Philox
stream keyed by (``random_state``, seed index), so the same seed gives bit-identical
streamlines on any number of threads.

Validation, seeding, memory, threads and wrapping live here; the stepping is in
:mod:`._kernels`. Streamlines stop when they leave the mask (the outside point is dropped), turn
by more than ``max_angle`` in one step, reach ``max_length``, or enter tissue with FA below
``fa_threshold``; in that last case the first low-FA point is **kept**, so streamlines end inside
the grey matter they reach instead of one step short of it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numba
import numpy as np

from .._typing import RandomState
from ..errors import InputError, TrackError
from ..io.grid import voxel_sizes, world_to_voxel
from ..io.maps import MicrostructureMaps
from ..io.tractogram import Tractogram
from . import _kernels

__all__ = ["Tracker", "seeds_from_mask", "interface_mask"]

log = logging.getLogger(__name__)

_SEED_CHUNK = 20000  # seeds per kernel call: bounds the (chunk, 2·max_steps+1, 3) buffer


def seeds_from_mask(mask: np.ndarray, *, per_voxel: int = 1, n_total: int | None = None,
                    random_state: RandomState = 0) -> np.ndarray:
    """Seed positions (voxel coordinates) uniformly jittered inside the voxels of ``mask``.

    Parameters
    ----------
    per_voxel : seeds in every voxel (voxel order, then draw order).
    n_total : instead, this many seeds in voxels drawn uniformly (with replacement) from the mask.

    Returns
    -------
    (S, 3) float64 seed positions.
    """
    if per_voxel < 1:
        raise InputError(f"seeds per voxel must be at least 1, got {per_voxel}.")
    ijk = np.argwhere(np.asarray(mask, bool)).astype(np.float64)
    rng = np.random.default_rng(random_state)
    if n_total is not None:
        if n_total < 1:
            raise InputError(f"the total number of seeds must be at least 1, got {n_total}.")
        picked = ijk[rng.integers(len(ijk), size=n_total)]
        return picked + rng.uniform(-0.5, 0.5, size=(n_total, 3))
    jitter = rng.uniform(-0.5, 0.5, size=(len(ijk), per_voxel, 3))
    return (ijk[:, None, :] + jitter).reshape(-1, 3)


def interface_mask(wm: np.ndarray, gm: np.ndarray) -> np.ndarray:
    """White-matter voxels with a grey-matter face neighbour (6-connectivity): the WM/GM interface."""
    wm = np.asarray(wm, bool)
    gm = np.asarray(gm, bool)
    near = np.zeros_like(gm)
    for axis in range(3):
        for shift in (1, -1):
            rolled = np.roll(gm, shift, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            rolled[tuple(edge)] = False  # no wrap-around
            near |= rolled
    return wm & near


@contextlib.contextmanager
def _numba_threads(n_threads: int | None):
    if n_threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _compact(out: np.ndarray, spans: np.ndarray, start: int, affine: np.ndarray, shape) -> Tractogram | None:
    """The streamlines of one kernel call (rows of ``out`` within ``spans``, ≥ 2 points) as a
    compact Tractogram in RAS+ mm, with their global seed indices."""
    n_pts = spans[:, 1] - spans[:, 0]
    rows = np.flatnonzero(n_pts >= 2)
    if rows.size == 0:
        return None
    counts = n_pts[rows]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    row_of_point = np.repeat(rows, counts)
    col_of_point = np.repeat(spans[rows, 0], counts) + (np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts))
    vox = out[row_of_point, col_of_point]
    world = (vox @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)).astype(np.float32)
    return Tractogram(world, offsets, affine, shape, {"seed_index": (start + rows).astype(np.int64)})


def _concatenate(parts: list[Tractogram], affine: np.ndarray, shape) -> Tractogram:
    points = np.concatenate([p.points for p in parts])
    counts = np.concatenate([p.n_points for p in parts])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    seeds = np.concatenate([p.per_streamline["seed_index"] for p in parts])
    return Tractogram(points, offsets, affine, shape, {"seed_index": seeds})


@dataclass(frozen=True)
class Tracker:
    """Tensor tracker, deterministic or probabilistic.

    Parameters
    ----------
    algorithm : ``"tensorline"`` (default), ``"eigenvector"`` (MRtrix3 ``Tensor_Det``, DIPY
        deterministic tracking on DTI peaks) or ``"probabilistic"`` (random draws; see the module
        docstring).
    dispersion : source of the probabilistic spread: ``"auto"`` (the ``odi`` map when the maps
        have one, else the tensor), ``"odi"`` or ``"tensor"``.
    max_trials : probabilistic draws per step before a streamline stops on the angle limit.
    puncture : tensorline weight g of D·v_in against v_in in [0, 1] (ignored by ``"eigenvector"``).
    step_size : float, mm
    max_angle : float, degrees between consecutive steps
    fa_threshold : float, stop when the interpolated FA drops below this
    seed_fa_threshold : float, seeds only in voxels with FA above this (default ``fa_threshold``)
    min_length, max_length : float, mm; shorter streamlines are discarded, longer ones stopped
    ndi_threshold : float, optional; streamlines stop on entering a voxel whose ``ndi`` is below it
    fwf_max : float, optional; streamlines stop on entering a voxel whose free-water fraction
        ``fwf`` is above it (CSF)
    """

    algorithm: str = "tensorline"
    dispersion: str = "auto"
    max_trials: int = 10
    puncture: float = 0.2
    step_size: float = 0.5
    max_angle: float = 45.0
    fa_threshold: float = 0.15
    seed_fa_threshold: float | None = None
    min_length: float = 10.0
    max_length: float = 250.0
    ndi_threshold: float | None = None
    fwf_max: float | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ("tensorline", "eigenvector", "probabilistic"):
            raise InputError(f"unknown tracking algorithm {self.algorithm!r}; "
                             "choose 'tensorline', 'eigenvector' or 'probabilistic'.")
        if self.dispersion not in ("auto", "odi", "tensor"):
            raise InputError(f"unknown dispersion source {self.dispersion!r}; choose 'auto', 'odi' or 'tensor'.")
        if self.max_trials < 1:
            raise InputError(f"max_trials must be at least 1, got {self.max_trials}.")
        if not 0 <= self.puncture <= 1:
            raise InputError(f"puncture must be in [0, 1], got {self.puncture}.")
        if not self.step_size > 0:
            raise InputError(f"step_size must be positive (mm), got {self.step_size}.")
        if not 0 < self.max_angle <= 90:
            raise InputError(f"max_angle must be in (0, 90] degrees, got {self.max_angle}.")
        if not 0 <= self.fa_threshold < 1:
            raise InputError(f"fa_threshold must be in [0, 1), got {self.fa_threshold}.")
        for name, value in (("ndi_threshold", self.ndi_threshold), ("fwf_max", self.fwf_max)):
            if value is not None and not 0 <= value <= 1:
                raise InputError(f"{name} must be in [0, 1], got {value}.")
        if not 0 <= self.min_length < self.max_length:
            raise InputError(f"need 0 ≤ min_length < max_length, got {self.min_length}, {self.max_length}.")

    def track(
        self,
        maps: MicrostructureMaps,
        *,
        seeds: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        seeds_per_voxel: int = 1,
        n_seeds: int | None = None,
        random_state: RandomState = 0,
        n_threads: int | None = None,
    ) -> Tractogram:
        """Track streamlines through the tensor field of ``maps``.

        Parameters
        ----------
        maps : MicrostructureMaps with ``tensor`` (X, Y, Z, 6) and ``fa``.
        seeds : (X, Y, Z) bool seed mask (an ROI), (S, 3) seed points in RAS+ mm, or
            ``"interface"``: white-matter voxels (FA ≥ ``seed_fa_threshold``) touching brain voxels
            below ``fa_threshold`` (the WM/GM interface). Default: every voxel of the tracking mask
            with FA ≥ ``seed_fa_threshold``.
        mask : (X, Y, Z) bool tracking mask; default ``maps.mask``.
        seeds_per_voxel : seeds drawn uniformly in each seed voxel.
        n_seeds : instead, this many seeds in voxels drawn uniformly from the seed region.
        random_state : int, seed of the seed jitter and of the probabilistic draws (same value →
            bit-identical tractogram, whatever ``n_threads``).
        n_threads : numba threads (default: numba's setting). Results do not depend on it.

        Returns
        -------
        Tractogram
            With ``per_streamline["seed_index"]``.

        Raises
        ------
        TrackError
            No voxel above the FA threshold, no seed inside the mask, or no streamline kept.
        """
        for name in ("tensor", "fa"):
            if name not in maps:
                raise InputError(f"tracking needs a {name!r} map; got {maps.names}.", fix="fit a tensor model first.")
        field = np.ascontiguousarray(maps["tensor"], dtype=np.float32)
        fa = np.asarray(maps["fa"])
        shape = fa.shape
        if mask is None:
            mask = maps.mask if maps.mask is not None else np.ones(shape, bool)
        mask = np.asarray(mask, bool)
        if mask.shape != shape:
            raise InputError(f"tracking mask shape {mask.shape} differs from the maps' grid {shape}.")
        brain = mask.copy()
        for name, limit, keep in (("ndi", self.ndi_threshold, np.greater_equal), ("fwf", self.fwf_max, np.less_equal)):
            if limit is not None:
                if name not in maps:
                    raise InputError(f"a {name} stopping threshold needs an {name!r} map; got {maps.names}.",
                                     fix="fit NODDI or PIGMENT, or drop the threshold.")
                mask = mask & keep(np.asarray(maps[name]), limit)
        above = mask & (fa >= (self.seed_fa_threshold if self.seed_fa_threshold is not None else self.fa_threshold))
        if isinstance(seeds, str):
            if seeds != "interface":
                raise InputError(f"unknown seeding {seeds!r}; give a mask, points or 'interface'.")
            above = interface_mask(above, brain & (fa < self.fa_threshold))
            if not above.any():
                raise TrackError("no white-matter voxel touches grey matter (FA below fa_threshold): no interface "
                                 "to seed.")
            seeds = None
        if seeds is None:
            if not above.any():
                raise TrackError(
                    f"no voxel of the mask has FA ≥ {self.seed_fa_threshold or self.fa_threshold:g} "
                    f"(max FA {float(fa[mask].max()) if mask.any() else 0:.3f}); nothing to seed.",
                )
            seed_vox = seeds_from_mask(above, per_voxel=seeds_per_voxel, n_total=n_seeds, random_state=random_state)
        else:
            seeds = np.asarray(seeds)
            if seeds.shape == shape:
                seed_mask = seeds.astype(bool) & above
                if not seed_mask.any():
                    raise TrackError("the seed mask has no voxel inside the tracking mask above the FA threshold.")
                seed_vox = seeds_from_mask(seed_mask, per_voxel=seeds_per_voxel, n_total=n_seeds,
                                           random_state=random_state)
            elif seeds.ndim == 2 and seeds.shape[1] == 3:
                seed_vox = world_to_voxel(seeds, maps.affine)
                rounded = np.floor(seed_vox + 0.5).astype(int)
                inside = np.all((rounded >= 0) & (rounded < np.array(shape)), axis=1)
                inside[inside] = mask[tuple(rounded[inside].T)]
                if not inside.any():
                    raise TrackError(f"none of the {len(seeds)} seed points lies inside the tracking mask.")
                if not inside.all():
                    log.warning("%d of %d seed points lie outside the tracking mask", (~inside).sum(), len(seeds))
            else:
                raise InputError(f"seeds must be a mask of shape {shape} or (S, 3) points, got {seeds.shape}.")

        max_steps = int(np.ceil(self.max_length / self.step_size))
        inv_voxel = 1.0 / voxel_sizes(maps.affine)
        cos_max = float(np.cos(np.deg2rad(self.max_angle)))
        puncture = float(self.puncture) if self.algorithm == "tensorline" else -1.0
        mask_u8 = mask.astype(np.uint8)
        probabilistic = self.algorithm == "probabilistic"
        if probabilistic:
            if not isinstance(random_state, (int, np.integer)) or random_state < 0:
                raise InputError(f"probabilistic tracking needs a non-negative integer random_state, got {random_state!r}.")
            source = self.dispersion if self.dispersion != "auto" else ("odi" if "odi" in maps else "tensor")
            if source == "odi" and "odi" not in maps:
                raise InputError(f"dispersion='odi' needs an 'odi' map; got {maps.names}.",
                                 fix="fit NODDI or PIGMENT, or use dispersion='tensor'.")
            odi = (np.ascontiguousarray(maps["odi"], dtype=np.float32) if source == "odi"
                   else np.zeros((0, 0, 0), np.float32))
        parts: list[Tractogram] = []  # compact, length-filtered chunks (no view keeps a buffer alive)
        n_produced = 0
        stop_counts = np.zeros(5, dtype=np.int64)
        with _numba_threads(n_threads):
            for start in range(0, len(seed_vox), _SEED_CHUNK):
                chunk = np.ascontiguousarray(seed_vox[start : start + _SEED_CHUNK], dtype=np.float64)
                out = np.empty((len(chunk), 2 * max_steps + 1, 3), dtype=np.float32)  # rows filled within spans
                spans = np.zeros((len(chunk), 2), dtype=np.int64)
                stops = np.zeros((len(chunk), 2), dtype=np.int8)
                if probabilistic:
                    _kernels.track_probabilistic(
                        field, mask_u8, odi, chunk,
                        np.arange(start, start + len(chunk), dtype=np.int64), int(random_state), inv_voxel,
                        float(self.step_size), float(self.fa_threshold), cos_max, max_steps, int(self.max_trials),
                        out, spans, stops,
                    )
                else:
                    _kernels.track_deterministic(
                        field, mask_u8, chunk, inv_voxel, float(self.step_size), float(self.fa_threshold), cos_max,
                        puncture, max_steps, out, spans, stops,
                    )
                stop_counts += np.bincount(stops.ravel(), minlength=5)
                part = _compact(out, spans, start, maps.affine, shape)
                del out
                if part is None:
                    continue
                n_produced += len(part)
                keep = part.lengths >= self.min_length
                if keep.any():
                    parts.append(part.select(keep))
        if n_produced == 0:
            raise TrackError(f"no streamline was produced from {len(seed_vox)} seeds; lower fa_threshold or check the maps.")
        if not parts:
            raise TrackError(f"all {n_produced} streamlines are shorter than min_length={self.min_length} mm.")
        trk = _concatenate(parts, maps.affine, shape)
        log.info(
            "tracked %d seeds → %d streamlines (stops: fa %d, mask %d, angle %d, length %d)",
            len(seed_vox), len(trk), *stop_counts[1:],
        )
        return trk

