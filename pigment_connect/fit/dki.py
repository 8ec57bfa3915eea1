"""Conventional voxel-wise diffusion kurtosis fit.

``fit_method``:

* ``"WLS"`` (default): the log-linear DKI model ``log S = log S0 − b D(g) + b²/6 · X(g)`` with
  ``X = D̄² W`` solved by weighted least squares (weights: squared OLS-predicted signal), then
  ``W = X / D̄²`` (Jensen & Helpern 2010; DIPY's ``WLS``).
* ``"NLLS"``: Levenberg–Marquardt on the signal (``noise="gaussian"`` or ``"rician"``), from WLS, with
  the tensor kept positive semi-definite (Cholesky) and the usual constraint of non-negative
  directional kurtosis ``W(n) ≥ 0`` enforced as a penalty on 60 directions.

The protocol must hold at least two non-zero shells and 15 non-collinear directions.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ProtocolError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps
from ..physics.dki import dki_signal, hemisphere_quadrature, kurtosis_maps
from ..physics.dti import cholesky_to_tensor, tensor_maps, tensor_to_cholesky
from ..physics.protocol import kurtosis_design, tensor_design
from .lm import levenberg_marquardt
from .dti import LogLinearModel, tensor_map_dict
from .loglinear import weighted_log_linear
from .voxelwise import need_affine, run_chunked, sliced_grid

__all__ = ["DiffusionKurtosisModel", "DiffusionKurtosisFit", "check_kurtosis_protocol"]

FIT_METHODS = ("WLS", "NLLS")
_PENALTY = 10.0  # weight of the W(n) ≥ 0 penalty rows, in units of the normalised signal


def kurtosis_design_matrix(gtab: GradientTable) -> np.ndarray:
    """(N, 22) float64 design of log S: −b·(tensor g-products), b²/6·(kurtosis g-products), 1."""
    g = torch.tensor(gtab.bvecs, dtype=torch.float64)
    b = np.asarray(gtab.bvals, dtype=np.float64)[:, None]
    return np.concatenate([-b * tensor_design(g).numpy(), b**2 / 6.0 * kurtosis_design(g).numpy(),
                           np.ones((len(gtab), 1))], axis=1)


def check_kurtosis_protocol(gtab: GradientTable) -> None:
    """Raise :class:`ProtocolError` unless the table determines the 22 DKI parameters."""
    shells = [float(s) for s in gtab.shells if s > 0]
    if len(shells) < 2:
        raise ProtocolError(
            f"DKI needs at least two non-zero b-value shells (e.g. b=1000 and b=2000 s/mm²); this table "
            f"has {'only b=' + format(shells[0], 'g') if shells else 'no diffusion-weighted shell'}.",
            file=gtab.source,
            fix="use a multi-shell acquisition, or fit the tensor model (one shell is enough for DTI).",
        )
    X = kurtosis_design_matrix(gtab)
    rank = np.linalg.matrix_rank(X / np.abs(X).max(axis=0), tol=1e-8)
    if rank < X.shape[1]:
        raise ProtocolError(
            f"the gradient table cannot determine the 21 DKI parameters plus S0 (design rank {rank} of 22): "
            f"DKI needs ≥ 15 non-collinear directions over ≥ 2 shells; this table has "
            f"{gtab.n_noncollinear()} direction(s) on shells {shells}.",
            file=gtab.source,
            fix="use more gradient directions, or fit the tensor model.",
        )


class DiffusionKurtosisModel(LogLinearModel):
    """Diffusion kurtosis model for one gradient table.

    Parameters
    ----------
    gtab : GradientTable (≥ 2 non-zero shells).
    fit_method : {"WLS", "NLLS"}, see the module docstring. noise : {"gaussian", "rician"}, the
        likelihood of ``"NLLS"`` (default gaussian).
    sigma : noise σ for ``noise="rician"`` (default: from repeated b=0 volumes).
    min_signal : floor before the logarithm (default: smallest positive value).
    device, chunk_size : as :class:`~pigment_connect.fit.TensorModel`. dtype : torch.float64 only
        (the log-linear system's b² columns are too ill-conditioned for float32: measured on a
        phantom, median MK error 0.58 and FA error 0.066 against float64).
    """

    DTYPES = (torch.float64,)
    DTYPE_REASON = ("its log-linear system (b² kurtosis columns) is too ill-conditioned for float32 "
                    "(measured: median MK error 0.58 against float64).")

    FIT_METHODS = FIT_METHODS
    check_protocol = staticmethod(check_kurtosis_protocol)
    build_design = staticmethod(kurtosis_design_matrix)

    def fit(self, dwi: DiffusionData | np.ndarray, *, mask: np.ndarray | None = None,
            progress: bool = False) -> DiffusionKurtosisFit:
        """Fit the voxels of ``mask``; returns a :class:`DiffusionKurtosisFit`."""
        vox, floor, device, X, bvals, bvecs, noise = self._prepare(dwi, mask)

        def solve(signal: torch.Tensor) -> dict[str, torch.Tensor]:
            beta = weighted_log_linear(signal, X, floor=floor)
            tensor, x_kt, log_s0 = beta[:, :6], beta[:, 6:21], beta[:, 21]
            md = tensor[:, :3].mean(-1, keepdim=True)
            kt = torch.where(md > 0, x_kt / torch.where(md > 0, md, torch.ones_like(md)) ** 2, torch.zeros_like(x_kt))
            if self.fit_method != "WLS":
                tensor, kt, log_s0 = _nonlinear(signal, tensor, kt, log_s0, bvals, bvecs, noise)
            return {"params": torch.cat([tensor, kt, log_s0[:, None]], -1)}

        out = run_chunked(solve, vox.signal, chunk_size=self.chunk_size, device=device, dtype=self.dtype,
                          progress=progress, desc="kurtosis fit")
        params = out.get("params", np.zeros((0, 22)))
        return DiffusionKurtosisFit(self, vox.scatter(params), vox.mask, vox.affine)


def _nonlinear(signal, tensor, kt, log_s0, bvals, bvecs, noise):
    scale = signal.amax(-1).clamp_min(1e-12)
    y = signal / scale[:, None]
    dirs, _ = hemisphere_quadrature(5, 12, dtype=signal.dtype, device=signal.device)
    kd = kurtosis_design(dirs)  # (60, 15)
    x0 = torch.cat([tensor_to_cholesky(tensor), kt, (log_s0 - torch.log(scale))[:, None]], -1)

    def model(x):
        return dki_signal(torch.exp(x[:, 21]), cholesky_to_tensor(x[:, :6]), x[:, 6:21], bvals, bvecs)

    def constrained(x):  # signal, then penalty rows W(n) ≥ 0 (target 0)
        return torch.cat([model(x), _PENALTY * torch.relu(-(x[:, 6:21] @ kd.T))], -1)

    n = len(bvals)
    x, _ = levenberg_marquardt(constrained, x0, noise.data(y, scale), residual=noise.residual(n),
                               cost=noise.cost(n))
    return cholesky_to_tensor(x[:, :6]), x[:, 6:21], x[:, 21] + torch.log(scale)


class DiffusionKurtosisFit:
    """Result of :meth:`DiffusionKurtosisModel.fit`.

    Attributes
    ----------
    coefficients : (..., 22) float64: tensor (6, mm²/s, TENSOR_ORDER), kurtosis tensor (15,
        KURTOSIS_ORDER), log S0: what the fit solved for.
    model_params : (..., 27) DIPY's layout: eigenvalues (3), eigenvectors (9, the 3×3 matrix of
        columns, row-major) and the kurtosis tensor (15).
    mask : (...) bool
    """

    def __init__(self, model, coefficients: np.ndarray, mask: np.ndarray, affine: np.ndarray | None):
        self.model = model
        self.coefficients = coefficients
        self.mask = mask
        self.affine = affine
        self._cache: dict[str, np.ndarray] | None = None

    def __getitem__(self, index) -> DiffusionKurtosisFit:
        """The fit of the voxels ``index`` selects (as DIPY's ``fit[index]``)."""
        mask, affine = sliced_grid(index, self.mask, self.affine)
        return DiffusionKurtosisFit(self.model, self.coefficients[np.index_exp[index]], mask, affine)

    @property
    def tensor(self) -> np.ndarray:
        return self.coefficients[..., :6]

    @property
    def model_params(self) -> np.ndarray:
        """(..., 27) as DIPY's DKI ``model_params``: evals, evecs (row-major 3×3), kurtosis tensor."""
        evals, evecs = _eigen(self.tensor, self.mask)
        return np.concatenate([evals, evecs.reshape(evecs.shape[:-2] + (9,)), self.kurtosis_tensor], -1)

    @property
    def kurtosis_tensor(self) -> np.ndarray:
        """(..., 15) W in KURTOSIS_ORDER (dimensionless)."""
        return self.coefficients[..., 6:21]

    @property
    def s0(self) -> np.ndarray:
        return np.where(self.mask, np.exp(self.coefficients[..., 21]), 0.0)

    def _map(self, name: str) -> np.ndarray:
        if self._cache is None:
            flat = kurtosis_maps(torch.as_tensor(self.tensor[self.mask]), torch.as_tensor(self.kurtosis_tensor[self.mask]))
            self._cache = {}
            for key, value in flat.items():
                full = np.zeros(self.mask.shape + tuple(value.shape[1:]))
                full[self.mask] = value.numpy()
                self._cache[key] = full
        return self._cache[name]

    evals = property(lambda self: self._map("evals"),
                     doc="(..., 3) eigenvalues of the DKI tensor, descending, mm²/s (non-positive ones set to 0).")
    fa = property(lambda self: self._map("fa"), doc="FA of the DKI tensor.")
    md = property(lambda self: self._map("md"), doc="MD of the DKI tensor, mm²/s.")
    ad = property(lambda self: self._map("ad"), doc="AD, mm²/s.")
    rd = property(lambda self: self._map("rd"), doc="RD, mm²/s.")
    evec1 = property(lambda self: self._map("evec1"), doc="(..., 3) principal eigenvector.")
    kfa = property(lambda self: self._map("kfa"), doc="Kurtosis fractional anisotropy.")

    def _clipped(self, name: str, min_kurtosis: float | None, max_kurtosis: float | None) -> np.ndarray:
        value = self._map(name)
        if min_kurtosis is None and max_kurtosis is None:
            return value
        return np.where(self.mask, np.clip(value, min_kurtosis, max_kurtosis), 0.0)

    def mk(self, *, min_kurtosis: float | None = -3.0 / 7, max_kurtosis: float | None = 10.0) -> np.ndarray:
        """Mean kurtosis (sphere mean of K(n)), clipped to [min_kurtosis, max_kurtosis] as DIPY's
        ``mk()`` (None, None: unclipped, as written in :attr:`maps`)."""
        return self._clipped("mk", min_kurtosis, max_kurtosis)

    def ak(self, *, min_kurtosis: float | None = -3.0 / 7, max_kurtosis: float | None = 10.0) -> np.ndarray:
        """Axial kurtosis, clipped as :meth:`mk`."""
        return self._clipped("ak", min_kurtosis, max_kurtosis)

    def rk(self, *, min_kurtosis: float | None = -3.0 / 7, max_kurtosis: float | None = 10.0) -> np.ndarray:
        """Radial kurtosis, clipped as :meth:`mk`."""
        return self._clipped("rk", min_kurtosis, max_kurtosis)

    def mkt(self, *, min_kurtosis: float | None = -3.0 / 7, max_kurtosis: float | None = 10.0) -> np.ndarray:
        """Mean of the kurtosis tensor, clipped as :meth:`mk`."""
        return self._clipped("mkt", min_kurtosis, max_kurtosis)

    def predict(self, gtab: GradientTable | None = None, S0: float | np.ndarray | None = None) -> np.ndarray:
        """(..., N) predicted signal for ``gtab`` (default: the model's), with ``S0`` (a number or
        a map; default the fitted S0)."""
        gtab = gtab or self.model.gtab
        flat = self.coefficients[self.mask]
        s0 = np.exp(flat[:, 21]) if S0 is None else np.broadcast_to(np.asarray(S0, float), self.mask.shape)[self.mask]
        sig = dki_signal(torch.as_tensor(s0), torch.as_tensor(flat[:, :6]),
                         torch.as_tensor(flat[:, 6:21]), torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs))
        out = np.zeros(self.mask.shape + (len(gtab),))
        out[self.mask] = sig.numpy()
        return out

    @property
    def maps(self) -> MicrostructureMaps:
        """Tensor maps (fa, md, ad, rd, evec1, tensor, s0) plus mk, ak, rk, kfa, mkt and the 15-element ``kurtosis``."""

        m = self.mask
        maps = tensor_map_dict(self)
        for name in ("mk", "ak", "rk", "kfa", "mkt"):
            maps[name] = np.where(m, self._map(name), 0.0).astype(np.float32)
        maps["kurtosis"] = np.where(m[..., None], self.kurtosis_tensor, 0.0).astype(np.float32)
        return MicrostructureMaps(maps, need_affine(self.affine), "dki", mask=m)


def _eigen(tensor: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (..., 3) descending and eigenvectors (..., 3, 3) as columns of tensors in
    TENSOR_ORDER, 0 outside ``mask``."""
    flat = tensor_maps(torch.as_tensor(tensor[mask]))
    evals = np.zeros(mask.shape + (3,))
    evecs = np.zeros(mask.shape + (3, 3))
    evals[mask], evecs[mask] = flat["evals"].numpy(), flat["evecs"].numpy()
    return evals, evecs
