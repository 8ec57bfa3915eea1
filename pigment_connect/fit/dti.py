"""Conventional voxel-wise diffusion tensor fit (weighted linear least squares).

The log-linear model ``log S = log S0 - b gᵀ D g`` is solved by ordinary least squares, then
re-solved with weights equal to the OLS-predicted signal (the standard WLS of Salvador et al.
2005, as in DIPY's ``fit_method="WLS"``), batched over voxels in chunks of bounded memory.
Tensors are in the image-axis frame of the gradient table (see :mod:`pigment_connect.io.gradients`).

References
----------
Basser, Mattiello, LeBihan (1994) Biophys J 66:259. Salvador et al. (2005) Hum Brain Mapp 24:144.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..errors import FitError, InputError, ProtocolError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps

__all__ = ["TensorModel", "TensorFit", "design_matrix", "fractional_anisotropy", "tensor_from_six"]

TENSOR_ORDER = ("xx", "yy", "zz", "xy", "xz", "yz")
"""Order of the six unique tensor elements in ``tensor`` maps (mm²/s)."""

_CHUNK = 65536  # voxels per batched solve: 65536 × 7 × 7 float64 ≈ 25 MB


def design_matrix(gtab: GradientTable) -> np.ndarray:
    """(N, 7) design matrix: columns Dxx, Dyy, Dzz, Dxy, Dxz, Dyz (times -b g g), then log S0."""
    g = gtab.bvecs
    b = gtab.bvals[:, None]
    cols = np.stack(
        [g[:, 0] ** 2, g[:, 1] ** 2, g[:, 2] ** 2, 2 * g[:, 0] * g[:, 1], 2 * g[:, 0] * g[:, 2], 2 * g[:, 1] * g[:, 2]],
        axis=1,
    )
    return np.concatenate([-b * cols, np.ones((len(gtab), 1))], axis=1)


def tensor_from_six(six: np.ndarray) -> np.ndarray:
    """(..., 6) elements in :data:`TENSOR_ORDER` → (..., 3, 3) symmetric matrices."""
    xx, yy, zz, xy, xz, yz = np.moveaxis(np.asarray(six), -1, 0)
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], -2)


def fractional_anisotropy(evals: np.ndarray) -> np.ndarray:
    """FA from eigenvalues (..., 3); 0 where all eigenvalues are 0. Range 0 ≤ FA ≤ 1."""
    ev = np.asarray(evals, dtype=np.float64)
    md = ev.mean(axis=-1, keepdims=True)
    num = np.sqrt(((ev - md) ** 2).sum(axis=-1))
    den = np.sqrt((ev**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sqrt(1.5) * num / den, 0.0)


def check_tensor_protocol(gtab: GradientTable) -> None:
    """Raise :class:`ProtocolError` unless the table determines a tensor (≥1 b=0, ≥6 non-collinear directions)."""
    dw = ~gtab.b0s_mask
    if not dw.any():
        raise ProtocolError(
            "the gradient table holds only b=0 volumes: no diffusion tensor can be fitted.",
            file=gtab.source,
            fix="load the diffusion-weighted volumes too (b > 0 with directions).",
        )
    tensor_cols = design_matrix(gtab)[dw, :6]
    rank = np.linalg.matrix_rank(tensor_cols / np.abs(tensor_cols).max(), tol=1e-6)
    if rank < 6:
        raise ProtocolError(
            f"a diffusion tensor needs at least 6 non-collinear gradient directions; this table has "
            f"{gtab.n_noncollinear()} distinct direction(s) (design rank {rank}).",
            file=gtab.source,
            fix="use an acquisition with ≥ 6 non-collinear directions (or a model with fewer parameters).",
        )
    if gtab.n_b0 == 0 and len(gtab.shells) < 2:
        raise ProtocolError(
            "without a b=0 volume, one shell cannot separate S0 from the mean diffusivity.",
            file=gtab.source,
            fix="include a b=0 volume.",
        )


class TensorModel:
    """Diffusion tensor model for one gradient table (reusable across subjects of that protocol).

    Parameters
    ----------
    gtab : GradientTable
    fit_method : {"WLS", "OLS"}
        Weighted (default) or ordinary linear least squares on log signal.
    min_signal : float, optional
        Signal floor before the logarithm; default the smallest positive value in the data.

    Raises
    ------
    ProtocolError
        b=0-only tables, or fewer than 6 non-collinear directions (DIPY silently fits those).
    """

    def __init__(self, gtab: GradientTable, *, fit_method: str = "WLS", min_signal: float | None = None) -> None:
        if fit_method not in ("WLS", "OLS"):
            raise InputError(f"fit_method must be 'WLS' or 'OLS', got {fit_method!r}.")
        check_tensor_protocol(gtab)
        self.gtab = gtab
        self.fit_method = fit_method
        self.min_signal = min_signal
        self.design_matrix = design_matrix(gtab)
        self._ols_pinv = np.linalg.pinv(self.design_matrix)

    def fit(self, dwi: DiffusionData | np.ndarray, *, mask: np.ndarray | None = None) -> TensorFit:
        """Fit every voxel of ``mask`` (default: the DWI's mask, or all voxels of an array).

        Parameters
        ----------
        dwi : DiffusionData, or (..., N) array of signal.
        mask : (...) bool, optional

        Returns
        -------
        TensorFit
        """
        if isinstance(dwi, DiffusionData):
            data, affine = dwi.data, dwi.affine
            if mask is None:
                mask = dwi.mask
            if dwi.gtab is not self.gtab and (
                len(dwi.gtab) != len(self.gtab)
                or not np.allclose(dwi.gtab.bvals, self.gtab.bvals)
                or not np.allclose(dwi.gtab.bvecs, self.gtab.bvecs)
            ):
                raise InputError("the data's gradient table differs from the model's.", file=dwi.source,
                                 fix="build the model from dwi.gtab.")
        else:
            data, affine = np.asarray(dwi), None
        if data.shape[-1] != len(self.gtab):
            raise InputError(f"data has {data.shape[-1]} volumes, the model's table {len(self.gtab)}.")
        spatial = data.shape[:-1]
        mask = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != spatial:
            raise InputError(f"mask shape {mask.shape} differs from the data's {spatial}.")
        signal = np.asarray(data[mask], dtype=np.float64)
        if signal.size and not np.all(np.isfinite(signal)):
            raise FitError("the signal holds NaN or Inf inside the mask; load it with load_dwi() to mask them.")
        floor = self.min_signal
        if floor is None:
            positive = signal[signal > 0]
            floor = float(positive.min()) if positive.size else 1e-4
        params = np.zeros((signal.shape[0], 7))
        for start in range(0, signal.shape[0], _CHUNK):
            params[start : start + _CHUNK] = self._solve(np.maximum(signal[start : start + _CHUNK], floor))
        full = np.zeros(spatial + (7,))
        full[mask] = params
        return TensorFit(self, full, mask, affine)

    def _solve(self, signal: np.ndarray) -> np.ndarray:
        y = np.log(signal)
        beta = y @ self._ols_pinv.T
        if self.fit_method == "OLS":
            return beta
        X = self.design_matrix
        w2 = np.exp(2.0 * (beta @ X.T))  # squared predicted signal, (V, N)
        lhs = np.einsum("vn,ni,nj->vij", w2, X, X)
        rhs = np.einsum("vn,ni,vn->vi", w2, X, y)
        try:
            return np.linalg.solve(lhs, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular voxel: solve one by one, falling back to OLS
            out = beta.copy()
            for v in range(len(y)):
                try:
                    out[v] = np.linalg.solve(lhs[v], rhs[v])
                except np.linalg.LinAlgError:
                    pass
            return out


class TensorFit:
    """Result of :meth:`TensorModel.fit`; maps are cached properties.

    Attributes
    ----------
    model_params : (..., 7) float64
        Dxx, Dyy, Dzz, Dxy, Dxz, Dyz (mm²/s), log S0.
    mask : (...) bool
    """

    def __init__(self, model: TensorModel, model_params: np.ndarray, mask: np.ndarray, affine: np.ndarray | None):
        self.model = model
        self.model_params = model_params
        self.mask = mask
        self.affine = affine

    @property
    def tensor(self) -> np.ndarray:
        """(..., 6) float64, mm²/s, in :data:`TENSOR_ORDER`."""
        return self.model_params[..., :6]

    @property
    def s0(self) -> np.ndarray:
        """(...) float64: fitted b=0 signal (0 outside the mask)."""
        return np.where(self.mask, np.exp(self.model_params[..., 6]), 0.0)

    @cached_property
    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        evals, evecs = np.linalg.eigh(tensor_from_six(self.tensor))
        evals = np.clip(evals[..., ::-1], 0.0, None)  # descending, negative clipped as DIPY does
        evecs = evecs[..., ::-1]
        return evals, evecs

    @property
    def evals(self) -> np.ndarray:
        """(..., 3) eigenvalues, descending, mm²/s (negative values clipped to 0)."""
        return self._eig[0]

    @property
    def evecs(self) -> np.ndarray:
        """(..., 3, 3) eigenvectors as columns, matching :attr:`evals`."""
        return self._eig[1]

    @cached_property
    def fa(self) -> np.ndarray:
        """Fractional anisotropy, 0 ≤ FA ≤ 1."""
        return fractional_anisotropy(self.evals)

    @property
    def md(self) -> np.ndarray:
        """Mean diffusivity, mm²/s."""
        return self.evals.mean(axis=-1)

    @property
    def ad(self) -> np.ndarray:
        """Axial diffusivity λ1, mm²/s."""
        return self.evals[..., 0]

    @property
    def rd(self) -> np.ndarray:
        """Radial diffusivity (λ2 + λ3)/2, mm²/s."""
        return self.evals[..., 1:].mean(axis=-1)

    @property
    def evec1(self) -> np.ndarray:
        """(..., 3) principal eigenvector (image-axis frame), zero outside the mask."""
        return np.where(self.mask[..., None], self.evecs[..., :, 0], 0.0)

    def predict(self, gtab: GradientTable | None = None) -> np.ndarray:
        """(..., N) signal predicted for ``gtab`` (default: the model's table)."""
        X = design_matrix(gtab or self.model.gtab)
        return np.where(self.mask[..., None], np.exp(self.model_params @ X.T), 0.0)

    @property
    def maps(self) -> MicrostructureMaps:
        """fa, md, ad, rd (mm²/s), evec1 (…, 3), tensor (…, 6, mm²/s), s0 as :class:`MicrostructureMaps`."""
        if self.affine is None:
            raise FitError("maps need an affine: fit a DiffusionData, not a bare array.")
        m = self.mask
        maps = {
            "fa": np.where(m, self.fa, 0.0).astype(np.float32),
            "md": np.where(m, self.md, 0.0).astype(np.float32),
            "ad": np.where(m, self.ad, 0.0).astype(np.float32),
            "rd": np.where(m, self.rd, 0.0).astype(np.float32),
            "evec1": self.evec1.astype(np.float32),
            "tensor": np.where(m[..., None], self.tensor, 0.0).astype(np.float32),
            "s0": self.s0.astype(np.float32),
        }
        return MicrostructureMaps(maps, self.affine, "tensor", mask=m)
