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
streamlines keep to the plane of the fibres. By default (``draws="tensorline"``) each draw then
takes the place of the principal eigenvector in the tensorline rule, weighted by the tensor's
linearity: draws steer where the tensor is linear, and the incoming course is kept through
planar (crossing) tensors instead of turning into the crossing bundle at random;
``draws="direct"`` steps along the draw itself. Each seed draws from its own counter-based Philox
stream keyed by (``random_state``, seed index), so the same seed gives bit-identical
streamlines on any number of threads.

Validation, seeding, memory, threads and wrapping live here; the stepping is in
:mod:`._kernels`. Streamlines stop when they leave the mask (the outside point is dropped), turn
by more than ``max_angle`` in one step, reach ``max_length``, or enter tissue with FA below
``fa_threshold``; in that last case the first low-FA point is **kept**, so streamlines end inside
the grey matter they reach instead of one step short of it.

On a fibre-ODF field (``field="fod"``: the maps' ``fod``, real even-order spherical-harmonic
coefficients in MRtrix3's basis over the scanner axes, as :class:`~pigment_connect.fit.csd.CsdModel`
and ``dwi2fod`` write them) ``"deterministic"`` follows the FOD peak nearest the incoming
direction (MRtrix3 ``SD_Stream``) and ``"probabilistic"`` draws each direction from the
trilinearly interpolated FOD inside the curvature cone by rejection (MRtrix3 ``iFOD1``), kept by
default on the fibre population it follows (``lobe_angle``: the draws stay within 30° of the FOD
peak nearest the incoming direction, as FSL probtrackx follows the population closest to it;
without that, iFOD1 turns into the crossing bundle at unresolved crossings: valid fraction 0.53
vs 0.85 on the single-shell phantom). Both stop where the FOD amplitude falls below
``fod_threshold`` (MRtrix3 ``-cutoff``) or, when the maps have ``fa``, on entering tissue below
``fa_threshold``, keeping that point; both draw each seed's first direction from its FOD over the
whole sphere (kernels in :mod:`._fod_kernels`).

With a tissue image (``track(..., tissue=)``, five-tissue-type partial volumes, see
:mod:`.tissue`) tracking is anatomically constrained: streamlines stop on entering cortical
grey matter and are kept, and are rejected when they enter CSF, leave the brain, or end in white
matter (Smith et al. 2012).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numba
import numpy as np

from .._typing import RandomState
from ..errors import InputError, TrackError
from ..io.grid import axes_rotation, voxel_sizes, world_to_voxel
from ..io.maps import MicrostructureMaps
from ..io.tractogram import Tractogram
from . import _fod_kernels, _kernels
from .tissue import FIVE_TISSUE, TissueImage, as_tissue_image

__all__ = ["Tracker", "seeds_from_mask", "interface_mask"]

log = logging.getLogger(__name__)

_SEED_CHUNK = 4096  # seeds per kernel call: bounds the (chunk, 2·max_steps+1, 3) buffer (≈ 49 MB at 250 mm /
# 0.5 mm), allocated once per run and reused, so its pages are faulted in once instead of per chunk


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


def _compact(out: np.ndarray, spans: np.ndarray, start: int, affine: np.ndarray, shape, min_points: int,
             accepted: np.ndarray | None = None) -> Tractogram | None:
    """The streamlines of one kernel call with at least ``min_points`` (≥ 2) points (and
    ``accepted`` when given), copied out of ``out`` into a compact Tractogram in RAS+ mm, with
    their global seed indices."""
    n_pts = spans[:, 1] - spans[:, 0]
    rows = np.flatnonzero((n_pts >= max(min_points, 2)) & (True if accepted is None else accepted))
    if rows.size == 0:
        return None
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(n_pts[rows], out=offsets[1:])
    world = np.empty((offsets[-1], 3), dtype=np.float32)
    _kernels.gather_world(out, spans, rows.astype(np.int64), offsets, np.asarray(affine, dtype=np.float64), world)
    return Tractogram(world, offsets, affine, shape, {"seed_index": (start + rows).astype(np.int64)})


def _act_accepted(out: np.ndarray, spans: np.ndarray, stops: np.ndarray, tissue: TissueImage,
                  affine: np.ndarray) -> np.ndarray:
    """(S,) bool: streamlines whose two ends satisfy the ACT rules (see :mod:`.tissue`): each half
    stopped on entering cortical GM, or stopped otherwise (FA, angle, length) with its end in
    grey matter; never on leaving the brain or entering CSF."""
    rows = np.flatnonzero(spans[:, 1] - spans[:, 0] >= 2)  # rows of shorter ones hold no points
    ends = np.concatenate([out[rows, spans[rows, 0]], out[rows, spans[rows, 1] - 1]])
    pv = tissue.sample(ends.astype(np.float64), affine)
    in_gm = (pv[:, FIVE_TISSUE.index("cgm")] + pv[:, FIVE_TISSUE.index("sgm")] >= 0.5).reshape(2, -1).T
    half_ok = (stops[rows] == _kernels.STOP_GM) | (in_gm & ~np.isin(stops[rows], (_kernels.STOP_MASK,
                                                                                    _kernels.STOP_CSF)))
    accepted = np.zeros(len(spans), bool)
    accepted[rows] = half_ok.all(axis=1)
    return accepted


def _track_defaults() -> dict:
    """The keyword-only arguments of :meth:`Tracker.track` and their defaults."""
    import inspect

    return {name: p.default for name, p in inspect.signature(Tracker.track).parameters.items()
            if p.kind is p.KEYWORD_ONLY}


def _grid_shape(maps: MicrostructureMaps) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(maps[maps.names[0]]).shape[:3])


def _fod_field(maps: MicrostructureMaps, peaks) -> tuple[np.ndarray, int]:
    """The maps' ``fod`` as the FOD kernels take it: (X, Y, Z, C) float32 and its SH order."""
    if peaks is not None:
        raise InputError("peaks were given but field='fod'; use field='peaks' (or 'auto').")
    if "fod" not in maps:
        raise InputError(f"FOD tracking needs a 'fod' map (SH coefficients); got {maps.names}.",
                         fix="fit CsdModel (pigment-connect fit --model csd), or track the tensor.")
    fod = np.asarray(maps["fod"], dtype=np.float32)
    n_coeffs = fod.shape[-1] if fod.ndim == 4 else 0
    lmax = int(round((np.sqrt(8 * n_coeffs + 1) - 3) / 2)) if n_coeffs else -1
    if fod.ndim != 4 or lmax < 2 or (lmax + 1) * (lmax + 2) // 2 != n_coeffs or lmax % 2:
        raise InputError(f"the 'fod' map must be (X, Y, Z, C) with C = (l+1)(l+2)/2 even-order SH coefficients "
                         f"(6, 15, 28, 45, ...), got shape {fod.shape}.",
                         fix="give a FOD in MRtrix3's SH basis (dwi2fod or CsdModel).")
    return np.ascontiguousarray(np.nan_to_num(fod, nan=0.0)), lmax


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
        docstring); on a FOD field ``"deterministic"`` (peak following, ``SD_Stream``) or
        ``"probabilistic"`` (``iFOD1``).
    field : direction field: ``"tensor"`` (the maps' ``tensor``, interpolated trilinearly, its
        principal eigenvector), ``"orientation"`` (the maps' ``evec1``, e.g. the NODDI / PIGMENT
        mean neurite orientation, as one peak per voxel) or ``"peaks"`` (an (X, Y, Z, K, 3) array
        given to :meth:`track`, e.g. DIPY ``peak_dirs`` or MRtrix3 ``sh2peaks``: the peak closest
        to the incoming direction, EuDX interpolation) or ``"fod"`` (the maps' ``fod``, SH
        coefficients in MRtrix3's basis). ``"auto"``: peaks when given, else the FOD for
        ``algorithm="deterministic"`` or when the maps have a ``fod`` and no ``tensor``, else the
        tensor when the maps have one, else the orientation. With peaks or an orientation the
        ``fa_threshold`` stop applies to the maps' ``fa`` when they have one (else only the mask,
        NDI and free-water stops apply), and probabilistic draws need an ``odi`` map.
    dispersion : source of the probabilistic spread: ``"auto"`` (the ``odi`` map when the maps
        have one, else the tensor), ``"odi"`` or ``"tensor"``.
    max_trials : probabilistic draws per step before a streamline stops on the angle limit.
    draws : probabilistic steering: ``"tensorline"`` (default; a draw replaces the principal
        eigenvector in the tensorline rule) or ``"direct"`` (step along the draw).
    puncture : tensorline weight g of D·v_in against v_in in [0, 1] (``"tensorline"`` and
        probabilistic ``draws="tensorline"``; ignored by ``"eigenvector"``).
    step_size : float, mm
    max_angle : float, degrees between consecutive steps
    fa_threshold : float, stop when the interpolated FA drops below this
    seed_fa_threshold : float, seeds only in voxels with FA above this (default ``fa_threshold``)
    min_length, max_length : float, mm; shorter streamlines are discarded, longer ones stopped
    ndi_threshold : float, optional; streamlines stop on entering a voxel whose ``ndi`` is below it
    fwf_max : float, optional; streamlines stop on entering a voxel whose free-water fraction
        ``fwf`` is above it (CSF)
    fod_threshold : FOD amplitude below which a FOD field has no fibre (MRtrix3 ``-cutoff``, 0.1)
    fod_power : probabilistic FOD draws follow FOD^power (MRtrix3 ``-power``; > 1 sharpens them)
    lobe_angle : degrees; probabilistic FOD draws stay on the fibre population the streamline is
        on: the FOD peak nearest the incoming direction must lie within this angle of it, and draws
        are taken within this angle of that peak (and within ``max_angle`` of the incoming
        direction). ``None``: MRtrix3's iFOD1, draws over the whole curvature cone.
    rejection_trials : FOD draws per step before a streamline stops (MRtrix3 ``-trials``, 1000)
    """

    algorithm: str = "tensorline"
    field: str = "auto"
    dispersion: str = "auto"
    max_trials: int = 10
    draws: str = "tensorline"
    puncture: float = 0.2
    step_size: float = 0.5
    max_angle: float = 45.0
    fa_threshold: float = 0.15
    seed_fa_threshold: float | None = None
    min_length: float = 10.0
    max_length: float = 250.0
    ndi_threshold: float | None = None
    fwf_max: float | None = None
    fod_threshold: float = 0.1
    fod_power: float = 1.0
    lobe_angle: float | None = 30.0
    rejection_trials: int = 1000

    def __post_init__(self) -> None:
        if self.algorithm not in ("tensorline", "eigenvector", "deterministic", "probabilistic"):
            raise InputError(f"unknown tracking algorithm {self.algorithm!r}; "
                             "choose 'tensorline', 'eigenvector', 'deterministic' (FOD) or 'probabilistic'.")
        if self.field not in ("auto", "tensor", "orientation", "peaks", "fod"):
            raise InputError(f"unknown direction field {self.field!r}; "
                             "choose 'auto', 'tensor', 'orientation', 'peaks' or 'fod'.")
        if self.field == "fod" and self.algorithm in ("tensorline", "eigenvector"):
            raise InputError(f"algorithm {self.algorithm!r} follows a tensor; a FOD field is tracked "
                             "'deterministic' (peak following) or 'probabilistic' (iFOD1).")
        if self.algorithm == "deterministic" and self.field not in ("auto", "fod"):
            raise InputError(f"algorithm 'deterministic' is FOD peak following; on a {self.field} field use "
                             "'tensorline' or 'eigenvector'.")
        if not self.fod_threshold > 0:
            raise InputError(f"fod_threshold must be positive, got {self.fod_threshold}.")
        if self.lobe_angle is not None and not 0 < self.lobe_angle <= 90:
            raise InputError(f"lobe_angle must be in (0, 90] degrees or None, got {self.lobe_angle}.")
        if not self.fod_power > 0:
            raise InputError(f"fod_power must be positive, got {self.fod_power}.")
        if self.rejection_trials < 1:
            raise InputError(f"rejection_trials must be at least 1, got {self.rejection_trials}.")
        if self.dispersion not in ("auto", "odi", "tensor"):
            raise InputError(f"unknown dispersion source {self.dispersion!r}; choose 'auto', 'odi' or 'tensor'.")
        if self.draws not in ("tensorline", "direct"):
            raise InputError(f"unknown probabilistic steering draws={self.draws!r}; choose 'tensorline' or 'direct'.")
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
        seeds: np.ndarray | str | None = None,
        mask: np.ndarray | None = None,
        seeds_per_voxel: int = 1,
        n_seeds: int | None = None,
        tissue=None,
        peaks: np.ndarray | None = None,
        random_state: RandomState = 0,
        n_threads: int | None = None,
    ) -> Tractogram:
        """Track streamlines through the tensor field of ``maps``.

        Parameters
        ----------
        maps : MicrostructureMaps with ``tensor`` (X, Y, Z, 6) and ``fa``.
        seeds : (X, Y, Z) bool seed mask (an ROI), (S, 3) seed points in RAS+ mm, or
            ``"interface"``: the WM/GM interface (white-matter voxels touching cortical grey matter
            of ``tissue``; without it, voxels with FA ≥ ``seed_fa_threshold`` touching brain
            voxels below ``fa_threshold``). Default: every voxel of the tracking mask with
            FA ≥ ``seed_fa_threshold`` (and white matter ≥ 0.5 with ``tissue``).
        mask : (X, Y, Z) bool tracking mask; default ``maps.mask``, or with ``tissue`` the whole
            grid (the tissue image's brain bounds the tracking, as MRtrix3's ACT).
        seeds_per_voxel : seeds drawn uniformly in each seed voxel.
        n_seeds : instead, this many seeds in voxels drawn uniformly from the seed region.
        tissue : optional five-tissue-type partial volumes for anatomically constrained tracking:
            a 5TT NIfTI path, a :class:`~pigment_connect.track.tissue.TissueImage`, or an
            (X, Y, Z, 5) array / {"wm", "gm", "csf"} mapping on the maps' grid (see :mod:`.tissue`).
        peaks : (X, Y, Z, K, 3) peak directions (image-axis frame; zero rows for absent peaks) or
            (X, Y, Z, 3K) as MRtrix3 ``sh2peaks`` writes them; tracked with ``field="peaks"``.
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
        stats: dict = {}
        parts = list(self._tracked_chunks(maps, seeds=seeds, mask=mask, seeds_per_voxel=seeds_per_voxel,
                                          n_seeds=n_seeds, tissue=tissue, peaks=peaks, random_state=random_state,
                                          n_threads=n_threads, stats=stats))
        self._check_kept(stats, sum(len(p) for p in parts))
        return _concatenate(parts, maps.affine, _grid_shape(maps))

    def track_to_file(self, maps: MicrostructureMaps, path, **options) -> dict:
        """Track as :meth:`track` (``options``: its keyword arguments), streaming the streamlines
        to a ``.tck`` file chunk by chunk (memory bounded by one chunk of seeds, whatever the
        number of streamlines).

        The file is written atomically: it appears under ``path`` only when complete. The same
        ``random_state`` writes the same streamlines, in the same order, as :meth:`track` returns.

        Returns
        -------
        dict
            ``path``, ``streamlines`` (count written), ``seeds`` and the stop-reason counts.

        Raises
        ------
        TrackError
            As :meth:`track` (nothing is left at ``path`` then).
        """
        from ..io.stream import TckStreamWriter

        stats: dict = {}
        shape = _grid_shape(maps)
        with TckStreamWriter(path, maps.affine, shape, header={"pigment_tracker": self._describe()}) as writer:
            for part in self._tracked_chunks(maps, stats=stats, **{**_track_defaults(), **options}):
                writer.write(part)
            self._check_kept(stats, writer.count)
        return {"path": str(path), "streamlines": writer.count, **stats}

    def _describe(self) -> str:
        return " ".join(f"{f}={getattr(self, f)}" for f in self.__dataclass_fields__)

    def _check_kept(self, stats: dict, n_kept: int) -> None:
        """TrackError when nothing was produced or kept; else log the run's stop reasons."""
        if stats["produced"] == 0:
            why = (f" ({stats['rejected']} streamlines ended outside grey matter and were rejected by the tissue "
                   f"constraints)" if stats["rejected"] else "")
            raise TrackError(f"no streamline was produced from {stats['seeds']} seeds{why}; lower fa_threshold or "
                             f"check the maps{' and the tissue image' if stats['act'] else ''}.")
        if n_kept == 0:
            raise TrackError(f"all {stats['produced']} streamlines are shorter than min_length={self.min_length} mm.")
        log.debug(
            "tracked %d seeds → %d streamlines (stops: fa %d, mask %d, angle %d, length %d, gm %d, csf %d; "
            "%d rejected by tissue constraints)",
            stats["seeds"], n_kept, *[stats["stops"][k] for k in ("fa", "mask", "angle", "length", "gm", "csf")],
            stats["rejected"],
        )

    def _tracked_chunks(self, maps: MicrostructureMaps, *, seeds, mask, seeds_per_voxel, n_seeds, tissue, peaks,
                        random_state, n_threads, stats: dict):
        """Yield the kept streamlines chunk by chunk (compact Tractograms, ≥ ``min_length``);
        fill ``stats`` (seeds, produced, rejected, stop counts) as it goes. The keywords are
        :meth:`track`'s (``track_to_file`` passes them with its defaults)."""
        field, mode = self._direction_field(maps, peaks)
        shape = _grid_shape(maps)
        if mask is None and tissue is not None:
            mask = np.ones(shape, bool)  # as MRtrix3's ACT: the tissue image says where the brain ends
        elif mask is None:
            mask = maps.mask if maps.mask is not None else np.ones(shape, bool)
        mask = np.asarray(mask, bool)
        if mask.shape != shape:
            raise InputError(f"tracking mask shape {mask.shape} differs from the maps' grid {shape}.")
        tissue = None if tissue is None else as_tissue_image(tissue, maps.affine)
        stop_mask = self._stop_mask(maps, mask)
        seed_vox = self._seed_points(maps, mask, stop_mask, tissue, seeds, seeds_per_voxel, n_seeds, random_state)
        mask = stop_mask
        probabilistic = self.algorithm == "probabilistic"
        if mode == "fod":
            field = field + (axes_rotation(maps.affine),)
        if (probabilistic or mode == "fod") and (not isinstance(random_state, (int, np.integer)) or random_state < 0):
            raise InputError(f"probabilistic and FOD tracking need a non-negative integer random_state (it keys "
                             f"each seed's random stream), got {random_state!r}.")
        odi = self._dispersion(maps, mode) if probabilistic and mode != "fod" else None
        if tissue is None:
            tissue_arr, tvox = np.zeros((0, 0, 0, len(FIVE_TISSUE)), np.float32), np.zeros((3, 4))
        else:
            tissue_arr, tvox = tissue.fractions, tissue.voxel_map(maps.affine)
        if self.algorithm == "eigenvector" or (probabilistic and self.draws == "direct"):
            puncture = -1.0
        else:
            puncture = float(self.puncture)
        max_steps = int(np.ceil(self.max_length / self.step_size))
        inv_voxel = 1.0 / voxel_sizes(maps.affine)
        cos_max = float(np.cos(np.deg2rad(self.max_angle)))
        mask_u8 = mask.astype(np.uint8)
        min_points = int(np.ceil(self.min_length / self.step_size - 1e-9)) + 1
        stop_counts = np.zeros(_kernels.N_STOPS, dtype=np.int64)
        stats.update(seeds=len(seed_vox), produced=0, rejected=0, act=tissue is not None)
        buffer = np.empty((min(_SEED_CHUNK, len(seed_vox)), 2 * max_steps + 1, 3), dtype=np.float32)
        with _numba_threads(n_threads):
            for start in range(0, len(seed_vox), _SEED_CHUNK):
                chunk = np.ascontiguousarray(seed_vox[start : start + _SEED_CHUNK], dtype=np.float64)
                out = buffer[: len(chunk)]  # rows are filled within spans only
                spans = np.zeros((len(chunk), 2), dtype=np.int64)
                stops = np.zeros((len(chunk), 2), dtype=np.int8)
                if mode == "fod":
                    fod, lmax, stop, rotation = field
                    _fod_kernels.track_fod(
                        fod, lmax, rotation, stop, float(self.fa_threshold), mask_u8, tissue_arr, tvox, chunk,
                        np.arange(start, start + len(chunk), dtype=np.int64), int(random_state), inv_voxel,
                        float(self.step_size), float(self.fod_threshold), float(self.fod_power), cos_max,
                        -2.0 if self.lobe_angle is None else float(np.cos(np.deg2rad(self.lobe_angle))), max_steps,
                        int(self.rejection_trials), probabilistic, out, spans, stops,
                    )
                elif probabilistic:
                    _kernels.track_probabilistic(
                        field, mask_u8, tissue_arr, tvox, odi, chunk,
                        np.arange(start, start + len(chunk), dtype=np.int64), int(random_state), inv_voxel,
                        float(self.step_size), float(self.fa_threshold), cos_max, puncture, max_steps,
                        int(self.max_trials), out, spans, stops,
                    )
                else:
                    _kernels.track_deterministic(
                        field, mask_u8, tissue_arr, tvox, chunk, inv_voxel, float(self.step_size),
                        float(self.fa_threshold), cos_max, puncture, max_steps, out, spans, stops,
                    )
                stop_counts += np.bincount(stops.ravel(), minlength=_kernels.N_STOPS)
                stats["stops"] = dict(zip(("none", "fa", "mask", "angle", "length", "gm", "csf"),
                                          stop_counts.tolist()))
                accepted = None
                n_pts = spans[:, 1] - spans[:, 0]
                if tissue is not None:
                    accepted = _act_accepted(out, spans, stops, tissue, maps.affine)
                    stats["rejected"] += int(np.sum(~accepted & (n_pts >= 2)))
                stats["produced"] += int(np.sum((n_pts >= 2) if accepted is None else accepted))  # accepted: ≥ 2 points
                # every step is step_size mm long: the length filter is a point-count filter
                part = _compact(out, spans, start, maps.affine, shape, min_points, accepted)  # a copy: buffer reused
                if part is not None:
                    yield part

    def _stop_mask(self, maps: MicrostructureMaps, mask: np.ndarray) -> np.ndarray:
        """The tracking mask less the voxels failing the NDI / free-water stops."""
        for name, limit, keep in (("ndi", self.ndi_threshold, np.greater_equal), ("fwf", self.fwf_max, np.less_equal)):
            if limit is not None:
                if name not in maps:
                    raise InputError(f"a {name} stopping threshold needs an {name!r} map; got {maps.names}.",
                                     fix="fit NODDI or PIGMENT, or drop the threshold.")
                mask = mask & keep(np.asarray(maps[name]), limit)
        return mask

    def _direction_field(self, maps: MicrostructureMaps, peaks) -> tuple[tuple, str]:
        """The kernels' (tensor, peaks, stop map) field and its mode (see :func:`_kernels._field_at`)."""
        mode = self.field
        if mode == "auto":
            if peaks is not None:
                mode = "peaks"
            elif self.algorithm == "deterministic" or ("fod" in maps and "tensor" not in maps):
                mode = "fod"
            else:
                mode = "tensor" if "tensor" in maps else "orientation"
        shape = _grid_shape(maps)
        stop = np.asarray(maps["fa"], dtype=np.float32) if "fa" in maps else np.ones(shape, np.float32)
        stop = np.ascontiguousarray(stop[..., None])
        if mode == "fod":
            return _fod_field(maps, peaks) + (stop,), mode
        no_tensor = np.zeros((0, 0, 0, 6), np.float32)
        if mode == "tensor":
            for name in ("tensor", "fa"):
                if name not in maps:
                    raise InputError(f"tracking the tensor field needs a {name!r} map; got {maps.names}.",
                                     fix="fit a tensor model first, or track field='orientation' / 'peaks'.")
            if peaks is not None:
                raise InputError("peaks were given but field='tensor'; use field='peaks' (or 'auto').")
            return (np.ascontiguousarray(maps["tensor"], dtype=np.float32), np.zeros((0, 0, 0, 0, 3), np.float32),
                    np.zeros((0, 0, 0, 1), np.float32)), mode
        if mode == "orientation":
            if "evec1" not in maps:
                raise InputError(f"field='orientation' needs an 'evec1' map; got {maps.names}.",
                                 fix="fit NODDI, PIGMENT or a tensor model.")
            peaks = np.asarray(maps["evec1"])[..., None, :]
        elif peaks is None:
            raise InputError("field='peaks' needs a peaks array: track(maps, peaks=...).")
        peaks = np.asarray(peaks, dtype=np.float32)
        if peaks.ndim == 4 and peaks.shape[3] % 3 == 0 and peaks.shape[:3] == shape:
            peaks = peaks.reshape(*shape, -1, 3)  # MRtrix3 sh2peaks layout (X, Y, Z, 3K)
        if peaks.ndim != 5 or peaks.shape[:3] != shape or peaks.shape[4] != 3:
            raise InputError(f"peaks must be (X, Y, Z, K, 3) or (X, Y, Z, 3K) on the maps' grid {shape}, "
                             f"got {peaks.shape}.")
        peaks = np.nan_to_num(np.ascontiguousarray(peaks), nan=0.0)  # sh2peaks writes NaN for absent peaks
        return (no_tensor, peaks, stop), mode

    def _dispersion(self, maps: MicrostructureMaps, mode: str) -> np.ndarray:
        """(X, Y, Z, 1) ODI map for Watson draws, or a (0, 0, 0, 1) array to draw from the tensor."""
        source = self.dispersion if self.dispersion != "auto" else ("odi" if "odi" in maps else "tensor")
        if source == "odi" and "odi" not in maps:
            raise InputError(f"dispersion='odi' needs an 'odi' map; got {maps.names}.",
                             fix="fit NODDI or PIGMENT, or use dispersion='tensor'.")
        if source == "tensor" and mode != "tensor":
            raise InputError(f"probabilistic tracking on a {mode} field draws around it with the ODI map; "
                             f"got {maps.names}.", fix="fit NODDI or PIGMENT (they give 'odi'), or track the tensor.")
        if source == "tensor":
            return np.zeros((0, 0, 0, 1), np.float32)
        return np.ascontiguousarray(np.asarray(maps["odi"], dtype=np.float32)[..., None])

    def _seed_points(self, maps: MicrostructureMaps, mask: np.ndarray, stop_mask: np.ndarray,
                     tissue: TissueImage | None, seeds, seeds_per_voxel: int, n_seeds: int | None,
                     random_state: RandomState) -> np.ndarray:
        """(S, 3) seed positions in voxel coordinates (see :meth:`track`); ``mask`` is the tracking
        mask, ``stop_mask`` the same less the NDI / free-water stops."""
        shape = _grid_shape(maps)
        fa = np.asarray(maps["fa"]) if "fa" in maps else np.ones(shape, np.float32)
        seed_fa = self.seed_fa_threshold if self.seed_fa_threshold is not None else self.fa_threshold
        above = stop_mask & (fa >= seed_fa)
        grid_tissue = None if tissue is None else tissue.on_grid(shape, maps.affine)
        if grid_tissue is not None:
            above &= grid_tissue[..., FIVE_TISSUE.index("wm")] >= 0.5
        if isinstance(seeds, str):
            if seeds != "interface":
                raise InputError(f"unknown seeding {seeds!r}; give a mask, points or 'interface'.")
            if grid_tissue is not None:
                grey = grid_tissue[..., FIVE_TISSUE.index("cgm")] >= 0.5
                what = "cortical grey matter of the tissue image"
            else:
                grey = mask & (fa < self.fa_threshold)
                what = "grey matter (FA below fa_threshold)"
            above = interface_mask(above, grey)
            if not above.any():
                raise TrackError(f"no white-matter voxel touches {what}: no interface to seed.")
            seeds = None
        if seeds is None:
            if not above.any():
                raise TrackError(
                    f"no voxel of the mask has FA ≥ {seed_fa:g} (max FA {float(fa[mask].max()) if mask.any() else 0:.3f})"
                    f"{' in white matter of the tissue image' if tissue is not None else ''}; nothing to seed.",
                )
            return seeds_from_mask(above, per_voxel=seeds_per_voxel, n_total=n_seeds, random_state=random_state)
        seeds = np.asarray(seeds)
        if seeds.shape == shape:
            seed_mask = seeds.astype(bool) & above
            if not seed_mask.any():
                raise TrackError("the seed mask has no voxel inside the tracking mask above the FA threshold.")
            return seeds_from_mask(seed_mask, per_voxel=seeds_per_voxel, n_total=n_seeds, random_state=random_state)
        if seeds.ndim == 2 and seeds.shape[1] == 3:
            seed_vox = world_to_voxel(seeds, maps.affine)
            rounded = np.floor(seed_vox + 0.5).astype(int)
            inside = np.all((rounded >= 0) & (rounded < np.array(shape)), axis=1)
            inside[inside] = mask[tuple(rounded[inside].T)]
            if not inside.any():
                raise TrackError(f"none of the {len(seeds)} seed points lies inside the tracking mask.")
            if not inside.all():
                log.warning("%d of %d seed points lie outside the tracking mask", (~inside).sum(), len(seeds))
            return seed_vox
        raise InputError(f"seeds must be a mask of shape {shape} or (S, 3) points, got {seeds.shape}.")
