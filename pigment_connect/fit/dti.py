"""Conventional voxel-wise diffusion tensor fit.

``fit_method``:

* ``"WLS"`` (default): log-linear least squares, then re-solved with weights equal to the
  squared predicted signal (Salvador et al. 2005; DIPY's ``WLS``; MRtrix3 ``dwi2tensor`` iterates
  the same reweighting). Closed form, batched.
* ``"OLS"``: log-linear ordinary least squares.
* ``"NLLS"``: non-linear least squares on the signal (Gaussian noise), Levenberg–Marquardt on a
  Cholesky parameterisation (so the tensor stays positive semi-definite), started from WLS.
* ``noise="rician"`` (with ``"NLLS"``): the same under a Rician likelihood (Fisher scoring), σ
  given or estimated from repeated b=0 volumes (``noise="gaussian"``, the default, is least squares).

Tensors are in the image-axis frame of the gradient table (see :mod:`pigment_connect.io.gradients`).

References
----------
Basser, Mattiello, LeBihan (1994) Biophys J 66:259. Salvador et al. (2005) Hum Brain Mapp 24:144.
Koay et al. (2006) J Magn Reson 182:115.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from ..errors import InputError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps
from ..physics.dti import cholesky_to_tensor, dti_signal, tensor_maps, tensor_to_cholesky
from ..physics.protocol import TENSOR_ORDER
from .lm import levenberg_marquardt
from .loglinear import TENSOR_MAX_B, check_tensor_protocol, design_matrix, weighted_log_linear
from .noise import likelihood_terms
from .voxelwise import (check_chunk_size, check_dtype, check_noise, extract_voxels, gradient_tensors, need_affine, resolve_device, run_chunked,
                        signal_floor, sliced_grid)

__all__ = ["TensorModel", "TensorFit", "LogLinearModel", "tensor_map_dict", "TENSOR_ORDER", "TENSOR_MAX_B"]

FIT_METHODS = ("WLS", "OLS", "NLLS")
class LogLinearModel:
    """What the log-linear models (DTI, DKI) share: settings, protocol check, design matrix, and
    the preparation of a fit call. Subclasses set ``FIT_METHODS``, ``check_protocol`` and
    ``build_design`` (gtab → (N, P) design of log S)."""

    FIT_METHODS: tuple[str, ...] = ()
    DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    DTYPE_REASON = ""
    check_protocol = staticmethod(lambda gtab: None)
    build_design = staticmethod(lambda gtab: np.zeros((len(gtab), 0)))

    def __init__(self, gtab: GradientTable, *, fit_method: str = "WLS", noise: str | None = None,
                 sigma: float | None = None,
                 min_signal: float | None = None, device: torch.device | str | None = None,
                 chunk_size: int = 32768, dtype: torch.dtype = torch.float64) -> None:
        fit_method, noise = check_noise(fit_method, noise, self.FIT_METHODS)
        self.check_protocol(gtab)
        self.gtab = gtab
        self.fit_method, self.noise = fit_method, noise
        self.sigma = sigma
        self.min_signal = min_signal
        self.device = device
        self.chunk_size = check_chunk_size(chunk_size)
        self.dtype = check_dtype(dtype)
        if self.dtype not in self.DTYPES:
            raise InputError(f"{type(self).__name__} computes in float64 only: {self.DTYPE_REASON}",
                             fix="leave dtype at torch.float64.")
        self.design_matrix = self.build_design(gtab)

    def _prepare(self, dwi: DiffusionData | np.ndarray, mask: np.ndarray | None):
        """Masked voxels, log floor, device, design X, b-values, b-vectors and the data term."""
        vox = extract_voxels(dwi, self.gtab, mask)
        floor = signal_floor(vox.signal, self.min_signal)
        device = resolve_device(self.device)
        X = torch.as_tensor(self.design_matrix, dtype=self.dtype, device=device)
        bvals, bvecs = gradient_tensors(self.gtab, device, self.dtype)
        noise = likelihood_terms(self.noise == "rician", self.sigma, vox.signal, self.gtab)
        return vox, floor, device, X, bvals, bvecs, noise


class TensorModel(LogLinearModel):
    """Diffusion tensor model for one gradient table (reusable across subjects of that protocol).

    Parameters
    ----------
    gtab : GradientTable
    fit_method : {"WLS", "OLS", "NLLS"}, see the module docstring.
    noise : {"gaussian", "rician"}, the likelihood of ``"NLLS"`` (default gaussian).
    sigma : float, optional
        Noise σ (signal units) for ``noise="rician"``; default: estimated from repeated b=0 volumes.
    min_signal : float, optional
        Signal floor before the logarithm; default the smallest positive value in the data.
    device : torch device; default CUDA when available, else CPU.
    chunk_size : voxels per batch (bounds memory).
    dtype : torch.float64 (default) or torch.float32 (faster on a GPU; FA within 1e-4 of float64).

    Raises
    ------
    ProtocolError
        b=0-only tables, or fewer than 6 non-collinear directions (DIPY silently fits those).
    """

    FIT_METHODS = FIT_METHODS
    check_protocol = staticmethod(check_tensor_protocol)
    build_design = staticmethod(design_matrix)

    def fit(self, dwi: DiffusionData | np.ndarray, *, mask: np.ndarray | None = None,
            progress: bool = False) -> TensorFit:
        """Fit every voxel of ``mask`` (default: the DWI's mask, or all voxels of an array).

        Parameters
        ----------
        dwi : DiffusionData, or (..., N) array of signal.
        mask : (...) bool, optional
        progress : show a progress bar.

        Returns
        -------
        TensorFit
        """
        vox, floor, device, X, bvals, bvecs, noise = self._prepare(dwi, mask)

        def solve(signal: torch.Tensor) -> dict[str, torch.Tensor]:
            beta = weighted_log_linear(signal, X, weighted=self.fit_method != "OLS", floor=floor)
            if self.fit_method == "NLLS":
                beta = _nonlinear(signal, beta, bvals, bvecs, noise)
            return {"params": beta}

        out = run_chunked(solve, vox.signal, chunk_size=self.chunk_size, device=device, dtype=self.dtype,
                          progress=progress, desc="tensor fit")
        params = out.get("params", np.zeros((0, 7)))
        return TensorFit(self, vox.scatter(params), vox.mask, vox.affine)


def _nonlinear(signal, beta, bvals, bvecs, noise) -> torch.Tensor:
    """LM refinement of WLS parameters (V, 7) on the signal; returns (V, 7) in the same layout."""
    scale = signal.amax(-1).clamp_min(1e-12)  # fit in units of each voxel's max signal
    y = signal / scale[:, None]
    x0 = torch.cat([tensor_to_cholesky(beta[:, :6]), (beta[:, 6] - torch.log(scale))[:, None]], -1)

    def model(x):
        return dti_signal(torch.exp(x[:, 6]), cholesky_to_tensor(x[:, :6]), bvals, bvecs)

    x, _ = levenberg_marquardt(model, x0, noise.data(y, scale), residual=noise.residual(), cost=noise.cost())
    return torch.cat([cholesky_to_tensor(x[:, :6]), (x[:, 6] + torch.log(scale))[:, None]], -1)


class TensorFit:
    """Result of :meth:`TensorModel.fit`; maps are cached properties.

    Attributes
    ----------
    coefficients : (..., 7) float64
        Dxx, Dyy, Dzz, Dxy, Dxz, Dyz (mm²/s), log S0: what the log-linear fit solved for.
    model_params : (..., 12) DIPY's layout: eigenvalues (3) and eigenvectors (9, the 3×3 matrix
        of columns, row-major).
    mask : (...) bool
    """

    def __init__(self, model: TensorModel, coefficients: np.ndarray, mask: np.ndarray, affine: np.ndarray | None):
        self.model = model
        self.coefficients = coefficients
        self.mask = mask
        self.affine = affine

    def __getitem__(self, index) -> TensorFit:
        """The fit of the voxels ``index`` selects (as DIPY's ``fit[index]``)."""
        mask, affine = sliced_grid(index, self.mask, self.affine)
        return TensorFit(self.model, self.coefficients[np.index_exp[index]], mask, affine)

    @property
    def tensor(self) -> np.ndarray:
        """(..., 6) float64, mm²/s, in :data:`TENSOR_ORDER`."""
        return self.coefficients[..., :6]

    @property
    def s0(self) -> np.ndarray:
        """(...) float64: fitted b=0 signal (0 outside the mask)."""
        return np.where(self.mask, np.exp(self.coefficients[..., 6]), 0.0)

    @cached_property
    def _maps(self) -> dict[str, np.ndarray]:
        flat = torch.as_tensor(self.tensor[self.mask])
        out = {}
        for name, value in tensor_maps(flat).items():
            full = np.zeros(self.mask.shape + tuple(value.shape[1:]))
            full[self.mask] = value.numpy()
            out[name] = full
        return out

    @property
    def model_params(self) -> np.ndarray:
        """(..., 12) as DIPY's ``TensorFit.model_params``: evals, then evecs (row-major 3×3)."""
        return np.concatenate([self.evals, self.evecs.reshape(self.evecs.shape[:-2] + (9,))], -1)

    @property
    def evals(self) -> np.ndarray:
        """(..., 3) eigenvalues, descending, mm²/s (negative values clipped to 0)."""
        return self._maps["evals"]

    @property
    def evecs(self) -> np.ndarray:
        """(..., 3, 3) eigenvectors as columns, matching :attr:`evals`."""
        return self._maps["evecs"]

    @property
    def fa(self) -> np.ndarray:
        """Fractional anisotropy, 0 ≤ FA ≤ 1."""
        return self._maps["fa"]

    @property
    def md(self) -> np.ndarray:
        """Mean diffusivity, mm²/s."""
        return self._maps["md"]

    @property
    def ad(self) -> np.ndarray:
        """Axial diffusivity λ1, mm²/s."""
        return self._maps["ad"]

    @property
    def rd(self) -> np.ndarray:
        """Radial diffusivity (λ2 + λ3)/2, mm²/s."""
        return self._maps["rd"]

    @property
    def evec1(self) -> np.ndarray:
        """(..., 3) principal eigenvector (image-axis frame), zero outside the mask."""
        return self._maps["evec1"]

    def predict(self, gtab: GradientTable | None = None, S0: float | np.ndarray | None = None) -> np.ndarray:
        """(..., N) signal predicted for ``gtab`` (default: the model's table), with ``S0`` (a
        number or a map; default the fitted S0)."""
        X = design_matrix(gtab or self.model.gtab)
        params = self.coefficients
        if S0 is not None:
            params = params.copy()
            params[..., 6] = np.log(np.maximum(np.broadcast_to(np.asarray(S0, dtype=np.float64), self.mask.shape),
                                               1e-300))
        return np.where(self.mask[..., None], np.exp(params @ X.T), 0.0)

    @property
    def maps(self) -> MicrostructureMaps:
        """fa, md, ad, rd (mm²/s), evec1 (…, 3), tensor (…, 6, mm²/s), s0 as :class:`MicrostructureMaps`."""
        return MicrostructureMaps(tensor_map_dict(self), need_affine(self.affine), "tensor", mask=self.mask)


def tensor_map_dict(fit) -> dict[str, np.ndarray]:
    """The tensor maps every tensor-bearing fit (DTI, DKI) writes, as float32 (0 outside the mask)."""
    m = fit.mask
    return {
        "fa": np.where(m, fit.fa, 0.0).astype(np.float32),
        "md": np.where(m, fit.md, 0.0).astype(np.float32),
        "ad": np.where(m, fit.ad, 0.0).astype(np.float32),
        "rd": np.where(m, fit.rd, 0.0).astype(np.float32),
        "evec1": fit.evec1.astype(np.float32),
        "tensor": np.where(m[..., None], fit.tensor, 0.0).astype(np.float32),
        "s0": fit.s0.astype(np.float32),
    }
