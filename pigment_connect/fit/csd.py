"""Fibre orientation distributions by constrained spherical deconvolution (single-shell CSD).

:class:`CsdModel` runs DIPY's constrained spherical deconvolution (Tournier et al. 2007) with a
single-fibre response estimated from the subject's own most anisotropic voxels, on the b=0
volumes and the highest shell (as MRtrix3's ``dwi2fod csd`` on a single shell). The gradient
directions are first turned into scanner (world) axes, so the FOD is expressed as MRtrix3
expresses it: the map ``fod`` holds its spherical-harmonic coefficients in MRtrix3's basis
(``tournier07``, non-legacy; 45 coefficients at order 8) over the scanner axes, which
``sh2peaks`` and ``mrview`` read directly; :func:`fod_sidecar` gives BEP016's description.

Multi-shell multi-tissue CSD is not done here yet: with several shells the highest is used.

References
----------
Tournier, Calamante, Connelly (2007) NeuroImage 35:1459. Tournier et al. (2019) NeuroImage 202:116137.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, ProtocolError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.grid import axes_rotation
from ..io.maps import MicrostructureMaps
from .dti import TensorModel
from .voxelwise import need_affine, sliced_grid

__all__ = ["CsdModel", "CsdFit", "fod_sidecar", "save_fod_sidecar", "world_directions"]

MIN_RESPONSE_VOXELS = 30
"""Fewest single-fibre voxels the response is estimated from (the most anisotropic ones)."""


def world_directions(bvecs: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(N, 3) unit gradient directions in scanner axes from directions in the image-axis frame
    (the frame of :class:`~pigment_connect.io.GradientTable`), through the affine's rotation."""
    world = np.asarray(bvecs, float) @ axes_rotation(affine).T
    norms = np.linalg.norm(world, axis=1, keepdims=True)
    return np.where(norms > 0, world / np.where(norms > 0, norms, 1.0), 0.0)


class CsdModel:
    """Single-shell constrained spherical deconvolution for one gradient table.

    Parameters
    ----------
    gtab : a table with b=0 volumes and at least 15 directions on its highest shell.
    sh_order_max : the FOD's spherical-harmonic order (default 8, as MRtrix3's ``dwi2fod``; with
        fewer directions than coefficients the non-negativity constraint super-resolves it).
    response : (eigenvalues (3,) mm²/s, S0) of the single-fibre response; default estimated at
        :meth:`fit` from the voxels with FA ≥ ``fa_threshold`` (or the most anisotropic
        :data:`MIN_RESPONSE_VOXELS`).
    fa_threshold : FA of the voxels the response is estimated from.
    """

    def __init__(self, gtab: GradientTable, *, sh_order_max: int = 8, response: tuple | None = None,
                 fa_threshold: float = 0.7) -> None:
        if gtab.n_b0 == 0:
            raise ProtocolError("CSD needs b=0 volumes.", file=gtab.source, fix="include a b=0 volume.")
        shells = [b for b in gtab.shells if b > 0]
        if not shells:
            raise ProtocolError("CSD needs diffusion-weighted volumes.", file=gtab.source)
        self.shell = float(max(shells))
        keep = gtab.b0s_mask | (np.abs(gtab.bvals - self.shell) <= 100.0)
        self.rows = np.flatnonzero(keep)
        n_dirs = int((~gtab.b0s_mask[self.rows]).sum())
        if n_dirs < 15:
            raise ProtocolError(f"CSD needs at least 15 directions on its shell; b={self.shell:g} has {n_dirs}.",
                                file=gtab.source, fix="use a tensor or PIGMENT model for this table.")
        if sh_order_max < 2 or sh_order_max % 2:
            raise InputError(f"sh_order_max must be an even number ≥ 2, got {sh_order_max}.")
        self.gtab = gtab
        self.sh_order_max = int(sh_order_max)  # super-resolved where the shell has fewer directions, as MRtrix3
        self.response = response
        self.fa_threshold = float(fa_threshold)

    def _response(self, dgtab, data: np.ndarray, mask: np.ndarray, fa: np.ndarray):
        from dipy.reconst.csdeconv import response_from_mask_ssst

        single = mask & (fa >= self.fa_threshold)
        if single.sum() < MIN_RESPONSE_VOXELS:
            order = np.argsort(np.where(mask, fa, -1.0), axis=None)[::-1][:MIN_RESPONSE_VOXELS]
            single = np.zeros(mask.shape, bool)
            single.flat[order] = True
            single &= mask
        response, _ = response_from_mask_ssst(dgtab, data, single.astype(np.uint8))
        return response

    def fit(self, dwi: DiffusionData, *, mask: np.ndarray | None = None) -> CsdFit:
        """FODs of the voxels of ``mask`` (default the series' brain mask)."""
        from dipy.core.gradients import gradient_table
        from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel
        from dipy.reconst.shm import convert_sh_descoteaux_tournier

        if not isinstance(dwi, DiffusionData):
            raise InputError("CsdModel.fit needs a DiffusionData (its affine turns the directions into scanner axes).",
                             fix="load it with pigment_connect.load_dwi.")
        mask = np.asarray(dwi.mask if mask is None else mask, bool)
        data = np.asarray(dwi.data, np.float64)[..., self.rows]
        sub = self.gtab.subset(self.rows)
        dgtab = gradient_table(sub.bvals, bvecs=world_directions(sub.bvecs, dwi.affine), b0_threshold=50)
        fa = TensorModel(sub).fit(DiffusionData(data.astype(np.float32), dwi.affine, mask, sub)).fa
        response = self.response if self.response is not None else self._response(dgtab, data, mask, fa)
        with warnings.catch_warnings():  # fewer directions than coefficients: super-resolved on purpose
            warnings.filterwarnings("ignore", message="Number of parameters required for the fit")
            model = ConstrainedSphericalDeconvModel(dgtab, response, sh_order_max=self.sh_order_max)
        coeffs = np.asarray(model.fit(data, mask=mask).shm_coeff, np.float64)
        coeffs = np.where(mask[..., None], convert_sh_descoteaux_tournier(coeffs), 0.0)
        return CsdFit(self, coeffs, mask, dwi.affine, response)


class CsdFit:
    """Result of :meth:`CsdModel.fit`.

    Attributes
    ----------
    fod : (X, Y, Z, K) spherical-harmonic coefficients, MRtrix3's basis, scanner axes.
    mask, affine : the fitted voxels and their grid. response : the single-fibre response used.
    """

    def __init__(self, model: CsdModel, fod: np.ndarray, mask: np.ndarray, affine: np.ndarray | None, response):
        self.model, self.fod, self.mask, self.affine, self.response = model, fod, mask, affine, response

    def __getitem__(self, index) -> CsdFit:
        mask, affine = sliced_grid(index, self.mask, self.affine)
        return CsdFit(self.model, self.fod[np.index_exp[index]], mask, affine, self.response)

    def odf(self, directions: np.ndarray) -> np.ndarray:
        """(..., M) FOD amplitudes along ``directions`` (M, 3) in scanner axes."""
        from dipy.core.geometry import cart2sphere
        from dipy.reconst.shm import real_sh_tournier

        directions = np.asarray(directions, float)
        _, theta, phi = cart2sphere(*directions.T)
        basis, _, _ = real_sh_tournier(self.model.sh_order_max, theta, phi, legacy=False)
        return self.fod @ basis.T

    def peaks(self, n_peaks: int = 3, *, relative_threshold: float = 0.1,
              min_separation_angle: float = 25.0) -> np.ndarray:
        """(..., n_peaks, 3) FOD peak directions in scanner axes, scaled by their amplitude, the
        largest first (zeros where fewer), as MRtrix3's ``sh2peaks`` reports them."""
        from dipy.data import get_sphere
        from dipy.direction import peak_directions

        sphere = get_sphere(name="repulsion724").subdivide(n=1)
        amplitudes = self.odf(sphere.vertices)
        out = np.zeros(self.mask.shape + (n_peaks, 3))
        for idx in np.argwhere(self.mask):
            dirs, values, _ = peak_directions(amplitudes[tuple(idx)], sphere, relative_peak_threshold=relative_threshold,
                                              min_separation_angle=min_separation_angle)
            k = min(n_peaks, len(dirs))
            out[tuple(idx)][:k] = dirs[:k] * values[:k, None]
        return out

    def predict(self, gtab: GradientTable | None = None, S0: float | np.ndarray | None = None) -> np.ndarray:
        """(..., N) signal of the FOD convolved with the response on ``gtab`` (default: the fitted
        shell's table), times ``S0`` (a number or a map; default the response's S0)."""
        from dipy.core.gradients import gradient_table
        from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel
        from dipy.reconst.shm import convert_sh_descoteaux_tournier

        gtab = gtab or self.model.gtab.subset(self.model.rows)
        affine = need_affine(self.affine)  # the FOD is in scanner axes
        dgtab = gradient_table(gtab.bvals, bvecs=world_directions(gtab.bvecs, affine), b0_threshold=50)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Number of parameters required for the fit")
            model = ConstrainedSphericalDeconvModel(dgtab, self.response, sh_order_max=self.model.sh_order_max)
        unit = model.predict(convert_sh_descoteaux_tournier(self.fod[self.mask]), gtab=dgtab, S0=1.0)
        s0 = np.broadcast_to(np.asarray(float(self.response[1]) if S0 is None else S0, float), self.mask.shape)
        signal = np.zeros(self.mask.shape + (len(gtab),))
        signal[self.mask] = unit * s0[self.mask][:, None]
        return signal

    @property
    def maps(self) -> MicrostructureMaps:
        """``fod`` (the SH coefficients, MRtrix3's basis) and the peak ``evec1`` (unit, scanner axes)."""
        peaks = self.peaks(1)[..., 0, :]
        norm = np.linalg.norm(peaks, axis=-1, keepdims=True)
        evec1 = np.where(norm > 0, peaks / np.where(norm > 0, norm, 1.0), 0.0)
        return MicrostructureMaps({"fod": self.fod.astype(np.float32), "evec1": evec1.astype(np.float32)},
                                  need_affine(self.affine), "csd", mask=self.mask)


def fod_sidecar(fit) -> dict:
    """The BEP016 (diffusion derivatives) description of a FOD map (single-shell or MSMT fit)."""
    if hasattr(fit, "responses"):  # MsmtCsdFit
        model = {"Model": "Multi-shell multi-tissue constrained spherical deconvolution",
                 "ModelURL": "https://doi.org/10.1016/j.neuroimage.2014.07.061",
                 "Parameters": {"SphericalHarmonicDegree": fit.model.sh_order_max,
                                "Responses": {name: np.asarray(r, float).tolist()
                                              for name, r in zip(("wm", "gm", "csf"), fit.responses)}}}
    else:
        model = {"Model": "Constrained spherical deconvolution (single shell)",
                 "ModelURL": "https://doi.org/10.1016/j.neuroimage.2007.02.016",
                 "Parameters": {"SphericalHarmonicDegree": fit.model.sh_order_max, "Shell_bvalue": fit.model.shell,
                                "ResponseEigenvalues_mm2_per_s": [float(v) for v in fit.response[0]],
                                "ResponseS0": float(fit.response[1])}}
    return {**model,
            "OrientationEncoding": {"Type": "sh", "SphericalHarmonicBasis": "MRtrix3",
                                    "SphericalHarmonicDegree": fit.model.sh_order_max, "EncodingAxis": 3,
                                    "Reference": "xyz"}}


def save_fod_sidecar(fit: CsdFit, fod_path) -> Path:
    """Write :func:`fod_sidecar` beside the FOD NIfTI ``fod_path`` (same name, ``.json``); its path."""
    from ..io.write import save_json

    fod_path = Path(fod_path)
    return save_json(fod_path.with_name(fod_path.name.replace(".nii.gz", ".json").replace(".nii", ".json")),
                     fod_sidecar(fit))
