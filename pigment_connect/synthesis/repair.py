"""Outlier slices and volumes (signal dropouts, spikes, motion-corrupted volumes) found from the
residuals against a fit, and replaced by its prediction — FSL eddy's ``--repol`` idea on any model.

Per volume v and slice k (along the slice axis) the statistic is the log of the median, over the
slice's brain voxels, of the measured to the predicted signal, log median(y/ŷ): 0 for a slice the
model explains, strongly negative for a dropout, positive for a spike. Volumes are compared within their
shell (b=0 with b=0; adjacent shells too small to judge pooled into b-bands, :func:`_groups`):
each slice's log ratio is centred on the median over the group's volumes at that slice (what the
model misses systematically at one b-value is no outlier) and scaled by 1.4826 × the median
absolute deviation — per slice, floored at half the group's median over slices; a group of fewer
than :data:`MIN_GROUP` volumes borrows the scale of the nearest larger one (a single b=0 volume,
its own median, cannot be judged). A slice is an outlier where
|z| > ``threshold`` (4, eddy's default) and its signal departs by :data:`MIN_CHANGE` (10%) or more; a volume with at least ``volume_fraction`` of its slices
flagged (and at least two) is flagged whole (motion corrupts every slice of it).

:func:`repair` iterates: fit, detect against the original measurements, replace the flagged slices
by the prediction, refit on the repaired data — so that the fit that finally predicts them did not
see the outliers (the fixed point of replace-and-refit is the fit to the remaining data).
Detection needs redundancy: on an exactly determined table (1 b0 + 6 directions with DTI) the fit
reproduces every measurement and nothing can be found.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError
from ..io.dwi import DiffusionData
from .virtual import fit_for_prediction

__all__ = ["OutlierReport", "RepairResult", "detect_outliers", "repair", "slice_log_ratio"]

MIN_GROUP = 4
"""Fewest volumes a shell needs to be its own comparison group."""
MIN_CHANGE = 0.1
"""Smallest departure (log ratio, ≈ a 10% change of the slice's signal) flagged, whatever its z: a
median over a thousand voxels is so precise that a 3% shift of a real volume (slight motion) would
otherwise score |z| > 4, and is no outlier worth replacing."""
MIN_VOLUME_SLICES = 2
"""Flagged slices a volume needs, besides ``volume_fraction`` of its slices, to be flagged whole."""
MIN_SLICE_VOXELS = 20
"""Brain voxels a slice needs for its statistic (fewer: never flagged)."""


@dataclass
class OutlierReport:
    """Outliers of one scan.

    Attributes
    ----------
    z : (N, K) robust z-score of each volume's slices (NaN where a slice has too few brain voxels).
    log_ratio : (N, K) log median(measured / predicted) over each slice's brain voxels.
    slices : (N, K) bool, flagged slices (every slice of a flagged volume included).
    volumes : (N,) bool, volumes flagged whole. axis : the slice axis (0, 1 or 2).
    """

    z: np.ndarray
    log_ratio: np.ndarray
    slices: np.ndarray
    volumes: np.ndarray
    axis: int

    def pairs(self) -> list[tuple[int, int]]:
        """The flagged (volume, slice) pairs, by volume then slice."""
        return [(int(v), int(k)) for v, k in np.argwhere(self.slices)]


@dataclass
class RepairResult:
    """:func:`repair`'s output: the repaired scan, what was replaced, and the final fit."""

    dwi: DiffusionData
    report: OutlierReport
    fit: object
    iterations: int


def _slice(axis: int, k: int) -> tuple:
    """The index of slice ``k`` along ``axis`` of an (X, Y, Z[, N]) array."""
    index = [slice(None)] * 3
    index[axis] = k
    return tuple(index)


def slice_log_ratio(data: np.ndarray, predicted: np.ndarray, mask: np.ndarray, axis: int = 2) -> np.ndarray:
    """(N, K) the log of the median over each slice's brain voxels of measured / predicted signal
    (slice k along ``axis``, every volume; NaN for slices of fewer than :data:`MIN_SLICE_VOXELS`
    brain voxels). The median keeps a few voxels whose fit degenerates (a prediction that
    overflows) from moving a slice. ``data``/``predicted`` (X, Y, Z, N), ``mask`` (X, Y, Z)."""
    counts = mask.sum(tuple(a for a in range(3) if a != axis))
    out = np.full((data.shape[-1], mask.shape[axis]), np.nan)
    for k in np.flatnonzero(counts >= MIN_SLICE_VOXELS):
        index = _slice(axis, k)
        m = mask[index]
        y = data[index][m].astype(np.float64)  # (voxels, N)
        p = np.nan_to_num(predicted[index][m].astype(np.float64), nan=np.inf, posinf=np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(p > 0, y / p, np.nan)
        out[:, k] = np.log(np.clip(np.nanmedian(ratio, axis=0), 1e-6, None))
    return out


def _groups(gtab) -> list[tuple[np.ndarray, int]]:
    """Each comparison group with the index of the group whose scale it borrows. The b=0 volumes
    are one group; the shells, in b order, are groups of their own when they hold
    :data:`MIN_GROUP` volumes or more, while runs of adjacent smaller shells are pooled until they
    do (a table without shells, q-space sampled at many b-values, is compared in b-bands). A group
    still smaller (b=0 volumes, a last small band) keeps its own centre and borrows the scale of
    the nearest (in b) large group."""
    members: list[tuple[float, list[int]]] = []
    if gtab.b0s_mask.any():
        members.append((0.0, list(np.flatnonzero(gtab.b0s_mask))))
    pending: list[int] = []
    for k, b in enumerate(gtab.shells):
        shell = list(np.flatnonzero(gtab.shell_index == k))
        if len(shell) >= MIN_GROUP and not pending:
            members.append((float(b), shell))
            continue
        pending += shell
        if len(pending) >= MIN_GROUP:
            members.append((float(np.mean(gtab.bvals[pending])), pending))
            pending = []
    if pending:  # a last small band joins the band before it, if there is one
        if members and members[-1][0] > 0:
            members[-1] = (members[-1][0], members[-1][1] + pending)
        else:
            members.append((float(np.mean(gtab.bvals[pending])), pending))
    large = [i for i, (_, v) in enumerate(members) if len(v) >= MIN_GROUP]
    if not large:
        return [(np.arange(len(gtab)), 0)]
    return [(np.sort(np.array(v)), i if i in large else min(large, key=lambda j: abs(members[j][0] - c)))
            for i, (c, v) in enumerate(members)]


def detect_outliers(dwi: DiffusionData, predicted: np.ndarray, *, axis: int = 2, threshold: float = 4.0,
                    volume_fraction: float = 0.3) -> OutlierReport:
    """Outlier slices and volumes of ``dwi`` against ``predicted`` (X, Y, Z, N), the prediction of a
    fit of it (see the module docstring)."""
    if axis not in (0, 1, 2):
        raise InputError(f"the slice axis must be 0, 1 or 2, got {axis}.")
    if not threshold > 0 or not 0 < volume_fraction <= 1:
        raise InputError(f"threshold must be > 0 and volume_fraction in (0, 1], got {threshold}, {volume_fraction}.")
    log_ratio = slice_log_ratio(dwi.data, predicted, dwi.mask, axis)
    z = np.full_like(log_ratio, np.nan)
    deviation = np.full_like(log_ratio, np.nan)
    groups = _groups(dwi.gtab)
    scales = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # slices with too few brain voxels are all NaN
        for group, _ in groups:
            dev = log_ratio[group] - np.nanmedian(log_ratio[group], axis=0)
            deviation[group] = dev
            slice_scale = 1.4826 * np.nanmedian(np.abs(dev), axis=0)
            floor = 0.5 * np.nanmedian(slice_scale) if np.isfinite(slice_scale).any() else np.nan
            scales.append(np.fmax(slice_scale, floor))
    with np.errstate(divide="ignore", invalid="ignore"):
        for group, own in groups:
            z[group] = deviation[group] / scales[own]
    flagged = (np.abs(np.nan_to_num(z)) > threshold) & (np.abs(np.nan_to_num(deviation)) >= MIN_CHANGE)
    valid = np.isfinite(z)
    volumes = flagged.sum(1) >= np.maximum(volume_fraction * valid.sum(1), MIN_VOLUME_SLICES)
    flagged |= volumes[:, None] & valid
    return OutlierReport(z, log_ratio, flagged, volumes, axis)


def _replace(data: np.ndarray, predicted: np.ndarray, mask: np.ndarray, flagged: np.ndarray, axis: int) -> np.ndarray:
    """``data`` with the brain voxels of the flagged (volume, slice) pairs set to ``predicted``,
    bounded to [0, twice the voxel's largest measurement] (a degenerate fit — a negative
    eigenvalue at the mask's edge — can predict an overflowing signal)."""
    out = data.copy()
    ceiling = 2.0 * data.max(-1)
    for v, k in np.argwhere(flagged):
        index = _slice(axis, k)
        m = mask[index]
        value = np.nan_to_num(predicted[index + (v,)][m], nan=0.0, posinf=0.0, neginf=0.0)
        out[index + (v,)][m] = np.clip(value, 0.0, ceiling[index][m])
    return out


def _with_data(dwi: DiffusionData, data: np.ndarray) -> DiffusionData:
    return DiffusionData(data, dwi.affine, dwi.mask, dwi.gtab, source=dwi.source, mask_source=dwi.mask_source)


def repair(dwi: DiffusionData, *, model: str = "tensor", fit: Callable[[DiffusionData], object] | None = None,
           axis: int = 2, threshold: float = 4.0, volume_fraction: float = 0.3, max_iter: int = 5,
           random_state: int = 0) -> RepairResult:
    """Find the outlier slices of ``dwi`` and replace them by the prediction of a fit that did not
    see them.

    Parameters
    ----------
    dwi : the scan. model : fitted by :func:`~.virtual.fit_for_prediction` (``"tensor"``: fast and
        enough for detection where the table has redundancy; ``"pigment"``: also on sparse tables).
    fit : instead of ``model``, a callable DiffusionData → fit with ``predict(gtab)``.
    axis : the slice axis (2 for axial slices). threshold, volume_fraction : :func:`detect_outliers`.
    max_iter : detection rounds (each refits on the repaired data); stops when the flags stop
        changing.
    """
    fit_fn = fit or (lambda d: fit_for_prediction(d, model, random_state=random_state))
    flagged = np.zeros((len(dwi.gtab), dwi.shape[axis]), bool)
    work, current = dwi, fit_fn(dwi)
    iterations, predicted_by = 0, None
    for iterations in range(1, max_iter + 1):
        predicted, predicted_by = current.predict(dwi.gtab), current
        report = detect_outliers(dwi, predicted, axis=axis, threshold=threshold, volume_fraction=volume_fraction)
        # An outlier pulls the fit, so the other volumes of its slice stray the other way: take, per
        # slice, only the worst ones now (|z| at least half the slice's largest) and keep a flag only
        # while the fit that did not see it still finds it; the rest are judged again after the refit.
        worst = np.nanmax(np.where(np.isfinite(report.z), np.abs(report.z), 0.0), axis=0)
        now = report.slices & (np.abs(np.nan_to_num(report.z)) >= 0.5 * worst)
        now |= report.volumes[:, None] & report.slices
        now |= flagged & report.slices
        if np.array_equal(now, flagged):
            break
        flagged = now
        work = _with_data(dwi, _replace(dwi.data, predicted, dwi.mask, flagged, axis)) if flagged.any() else dwi
        current = fit_fn(work)
    if flagged.any():  # the final fit's prediction in every flagged slice (already made if the flags settled)
        final = predicted if predicted_by is current else current.predict(dwi.gtab)
        work = _with_data(dwi, _replace(dwi.data, final, dwi.mask, flagged, axis))
    report.slices = flagged
    report.volumes = report.volumes & flagged.any(1)
    return RepairResult(work, report, current, iterations)
