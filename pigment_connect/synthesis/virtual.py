"""Virtual scans: the signal of volumes that were not measured, predicted for any gradient table
from a fit of the measured ones (q-space prediction), written as a scan other tools read.

Any fit with ``predict(gtab, S0=None)`` serves (:class:`~pigment_connect.pigment.PigmentFit`,
:class:`~pigment_connect.fit.TensorFit`, :class:`~pigment_connect.fit.DiffusionKurtosisFit` ...);
PIGMENT is the default because its adapted tissue predicts shells and directions that a sparse
table cannot determine for a conventional model (``benchmarks/bench_synthesis.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dipy.core.geometry import cart2sphere
from dipy.reconst.shm import real_sh_descoteaux

from .._typing import PathLike
from ..errors import InputError
from ..fit import DiffusionKurtosisModel, TensorModel
from ..io.dwi import DiffusionData, companion
from ..io.gradients import SHELL_TOLERANCE, GradientTable
from ..io.write import save_json, save_nifti
from ..pigment import PigmentModel
from .tables import check_target_table

__all__ = ["VirtualScan", "synthesize", "residual_correction", "residual_interpolator", "bounded_prediction",
           "bound_to_s0", "fitted_s0", "fit_for_prediction", "PREDICTION_MODELS", "same_volume", "sidecar_paths"]

PREDICTION_MODELS = ("pigment", "dki", "tensor")
"""Models :func:`fit_for_prediction` fits: PIGMENT zero-shot, DKI (two shells or more), DTI."""
RESIDUAL_SMOOTHING = 0.006
"""Laplace–Beltrami weight of the residuals' spherical-harmonic fit (DIPY's ``sf_to_sh`` default)."""
RESIDUAL_MAX_ORDER = 4
"""Highest SH order the residuals of a measured shell are interpolated with (lower where the shell
has too few directions: order 2 needs 6, order 4 needs 15)."""
VOLUMES_PER_CHUNK = 32
"""Target volumes predicted at a time (a whole brain × 32 volumes in float64 ≈ 0.3 GiB)."""
SAME_DIRECTION_DEG = 2.0
"""A requested volume within this angle (and 50 s/mm²) of a measured one is that measurement."""


@dataclass
class VirtualScan:
    """A scan whose volumes are measured or predicted.

    Attributes
    ----------
    data : (X, Y, Z, N) float32, the signal (0 outside ``mask`` in predicted volumes).
    gtab : the N volumes' table. affine : (4, 4). mask : (X, Y, Z) bool, the voxels predicted.
    measured : (N,) bool, which volumes are measurements (True) and which predictions.
    source_volume : (N,) int, the input volume each measured one is (−1 for predicted ones).
    model : the model that predicted. repaired : the (volume, slice) pairs of the input that were
        replaced by the prediction (:mod:`.repair`), empty if none.
    source : the input file.
    """

    data: np.ndarray
    gtab: GradientTable
    affine: np.ndarray
    mask: np.ndarray
    measured: np.ndarray
    source_volume: np.ndarray
    model: str
    repaired: list[tuple[int, int]] = field(default_factory=list)
    source: str | None = None

    def sidecar(self) -> dict:
        """The JSON sidecar: which volumes are measured and which predicted, by what, from what."""
        return {
            "Description": "virtual diffusion scan by pigment_connect: each volume measured or predicted (VolumeType)",
            "PredictionModel": self.model,
            "Source": self.source,
            "VolumeType": ["measured" if m else "predicted" for m in self.measured],
            "SourceVolume": [int(i) if i >= 0 else None for i in self.source_volume],
            "NumberMeasured": int(self.measured.sum()),
            "NumberPredicted": int((~self.measured).sum()),
            "RepairedSlices": [{"volume": int(v), "slice": int(k)} for v, k in self.repaired],
            "PredictedVoxels": "inside the brain mask only; predicted volumes are 0 outside it",
        }

    def save(self, path: PathLike) -> dict[str, Path]:
        """Write ``path`` (.nii/.nii.gz) with its ``.bval``, ``.bvec`` (FSL, for this affine) and
        ``.json`` sidecar beside it, each atomically. Returns the four paths."""
        files = sidecar_paths(path)
        save_nifti(files["dwi"], self.data.astype(np.float32), self.affine)
        self.gtab.to_fsl(files["bval"], files["bvec"], affine=self.affine)
        save_json(files["json"], self.sidecar())
        return files


def sidecar_paths(path: PathLike) -> dict[str, Path]:
    """The image ``path`` and the ``.bval``, ``.bvec``, ``.json`` files beside it (same stem)."""
    return {"dwi": Path(path), **{k: companion(path, f".{k}") for k in ("bval", "bvec", "json")}}


def fit_for_prediction(dwi: DiffusionData, model: str = "pigment", *, random_state: int = 0,
                       progress: bool = False):
    """Fit ``model`` (:data:`PREDICTION_MODELS`) to ``dwi`` in its mask; the fit predicts any table."""
    if model == "pigment":
        # the fit of least misfit predicts the measurements best: no second fit for the evidence
        return PigmentModel(dwi.gtab, uncertainty=False, evidence=False, random_state=random_state).fit(
            dwi, progress=progress)
    if model == "dki":
        return DiffusionKurtosisModel(dwi.gtab).fit(dwi)
    if model == "tensor":
        return TensorModel(dwi.gtab).fit(dwi)
    raise InputError(f"unknown prediction model {model!r}.", fix=f"use one of {', '.join(PREDICTION_MODELS)}.")


def same_volume(target: GradientTable, measured: GradientTable) -> np.ndarray:
    """(len(target),) int: for each requested volume the measured volume it repeats (b=0 for b=0;
    same shell within 50 s/mm² and direction within :data:`SAME_DIRECTION_DEG`, either sign), −1
    where none does. Each measured volume is matched at most once."""
    out = np.full(len(target), -1)
    free = np.ones(len(measured), bool)
    cos_max = np.cos(np.deg2rad(SAME_DIRECTION_DEG))
    for i, (b, g) in enumerate(zip(target.bvals, target.bvecs)):
        if target.b0s_mask[i]:
            ok = measured.b0s_mask & free
        else:
            ok = free & ~measured.b0s_mask & (np.abs(measured.bvals - b) <= 50) & (np.abs(measured.bvecs @ g) >= cos_max)
        hit = np.flatnonzero(ok)
        if len(hit):
            out[i] = hit[0]
            free[hit[0]] = False
    return out


def _even_sh(order: int, bvecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real, even, antipodally symmetric SH basis (DIPY's ``descoteaux07``) of ``order`` at the unit
    ``bvecs`` (n, 3): (n, K) matrix and (K,) degrees l."""
    _, theta, phi = cart2sphere(*bvecs.T)
    basis, _, degree = real_sh_descoteaux(order, theta, phi, legacy=False)
    return basis, degree


def bound_to_s0(signal: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """``signal`` (X, Y, Z, N) bounded to [0, ``s0``] ((X, Y, Z, 1) or broadcastable; NaN → 0): the
    noise-free signal of any diffusion process decays with b, and a kurtosis description beyond its
    range, or the fit of a degenerate voxel at the mask's edge, would predict more (up to overflow)."""
    return np.clip(np.nan_to_num(signal, nan=0.0, posinf=np.inf), 0.0, s0)


def fitted_s0(fit) -> np.ndarray:
    """(X, Y, Z, 1) the fit's own b=0 prediction (non-finite values → 0)."""
    return np.nan_to_num(fit.predict(GradientTable([0.0], [[0.0, 0.0, 0.0]])), nan=0.0, posinf=0.0)


def bounded_prediction(fit, table: GradientTable, s0: np.ndarray | None = None) -> np.ndarray:
    """``fit.predict(table)`` bounded to [0, S0] (:func:`bound_to_s0`; ``s0``: the fit's
    :func:`fitted_s0`, computed when not given)."""
    return bound_to_s0(fit.predict(table), fitted_s0(fit) if s0 is None else s0)


def residual_correction(dwi: DiffusionData, fit, target: GradientTable) -> np.ndarray:
    """(X, Y, Z, len(target)) what the fit misses on each measured shell, carried to the target's
    volumes of that shell: the residuals (measured − predicted) of a shell's directions fitted by
    even spherical harmonics (order ≤ :data:`RESIDUAL_MAX_ORDER`, as many as its directions
    determine, Laplace–Beltrami weight :data:`RESIDUAL_SMOOTHING`) and evaluated at the target's
    directions within :data:`~pigment_connect.io.gradients.SHELL_TOLERANCE` of the shell's b; b=0
    target volumes get the b=0 volumes' mean residual; target volumes of unmeasured shells get 0.
    On a shell it measured, a model-based prediction then interpolates the measurements as
    spherical-harmonic interpolation does, with the model's angular detail beyond what the
    directions resolve (``benchmarks/bench_synthesis.py``)."""
    return residual_interpolator(dwi, fit)(target)


def residual_interpolator(dwi: DiffusionData, fit, s0: np.ndarray | None = None):
    """:func:`residual_correction` for any number of target tables, the residuals computed once:
    a function GradientTable → (X, Y, Z, len(table)) float32. ``s0``: the fit's :func:`fitted_s0`,
    when already computed."""
    measured = dwi.gtab
    residual = np.where(dwi.mask[..., None], dwi.data - bounded_prediction(fit, measured, s0), 0.0).astype(np.float32)
    b0 = measured.b0s_mask
    b0_residual = residual[..., b0].mean(-1, keepdims=True) if b0.any() else None
    shells = []
    for k, b in enumerate(measured.shells):
        src = np.flatnonzero(measured.shell_index == k)
        order = next((o for o in range(RESIDUAL_MAX_ORDER, 0, -2) if (o + 1) * (o + 2) // 2 <= len(src)), 0)
        if order == 0:
            continue
        basis, degree = _even_sh(order, measured.bvecs[src])
        smooth = RESIDUAL_SMOOTHING * np.diag((degree * (degree + 1.0)) ** 2)
        coefficients = residual[..., src] @ np.linalg.solve(basis.T @ basis + smooth, basis.T).T  # (X, Y, Z, K)
        shells.append((b, order, coefficients.astype(np.float32)))

    def correction(target: GradientTable) -> np.ndarray:
        out = np.zeros(dwi.shape + (len(target),), np.float32)
        if b0_residual is not None and target.b0s_mask.any():
            out[..., target.b0s_mask] = b0_residual
        for b, order, coefficients in shells:
            dst = np.flatnonzero(~target.b0s_mask & (np.abs(target.bvals - b) <= SHELL_TOLERANCE))
            if len(dst):
                out[..., dst] = coefficients @ _even_sh(order, target.bvecs[dst])[0].T.astype(np.float32)
        return out

    return correction


def synthesize(dwi: DiffusionData, target: GradientTable, *, fit=None, model: str = "pigment",
               keep_measured: bool = False, interpolate_residuals: bool = True, random_state: int = 0,
               progress: bool = False) -> VirtualScan:
    """The virtual scan of ``dwi`` on ``target``.

    Parameters
    ----------
    dwi : the measured scan (its mask bounds the voxels predicted).
    target : the table to predict (any b ≤ :data:`~.tables.MAX_B`; far extrapolation is warned).
    fit : a fit of ``dwi`` with ``predict(gtab)``; default: :func:`fit_for_prediction` with ``model``.
    keep_measured : False: every volume of ``target`` predicted. True: the measured volumes as they
        are, followed by the predictions of the ``target`` volumes not already measured
        (:func:`same_volume`).
    interpolate_residuals : add :func:`residual_correction` (on the shells that were measured, the
        prediction interpolates the measurements); False: the model's own prediction alone.

    The model's prediction is bounded to [0, S0] (its own b=0 prediction) before the correction: the
    noise-free signal of a diffusion process never rises above S0.
    """
    check_target_table(target, dwi.gtab)
    if fit is None:
        fit = fit_for_prediction(dwi, model, random_state=random_state, progress=progress)
    else:
        model = fit.maps.model

    s0 = fitted_s0(fit)
    correction = residual_interpolator(dwi, fit, s0) if interpolate_residuals else None

    def predict(table: GradientTable) -> np.ndarray:
        out = np.zeros(dwi.shape + (len(table),), np.float32)
        for start in range(0, len(table), VOLUMES_PER_CHUNK):  # bounded memory for dense tables
            part = table.subset(np.arange(start, min(start + VOLUMES_PER_CHUNK, len(table))))
            signal = bounded_prediction(fit, part, s0)
            if correction is not None:
                signal = signal + correction(part)
            out[..., start:start + len(part)] = np.where(dwi.mask[..., None], np.clip(signal, 0.0, None), 0.0)
        return out

    if keep_measured:
        new = np.flatnonzero(same_volume(target, dwi.gtab) < 0)
        predicted = predict(target.subset(new)) if len(new) else np.zeros(dwi.shape + (0,), np.float32)
        data = np.concatenate([dwi.data, predicted], -1)
        gtab = GradientTable(np.concatenate([dwi.gtab.bvals, target.bvals[new]]),
                             np.concatenate([dwi.gtab.bvecs, target.bvecs[new]]), source=target.source)
        measured = np.r_[np.ones(len(dwi.gtab), bool), np.zeros(len(new), bool)]
        source_volume = np.r_[np.arange(len(dwi.gtab)), np.full(len(new), -1)]
    else:
        data = predict(target)
        gtab, measured, source_volume = target, np.zeros(len(target), bool), np.full(len(target), -1)
    return VirtualScan(data, gtab, dwi.affine, dwi.mask, measured, source_volume, model, source=dwi.source)
