"""Multi-shell multi-tissue constrained spherical deconvolution (MSMT-CSD, Jeurissen et al. 2014).

:class:`MsmtCsdModel` splits each voxel's signal, over every shell, into a white-matter fibre ODF
(spherical harmonics of order ``sh_order_max``) and isotropic grey-matter and CSF compartments,
each convolved with its own per-shell response estimated from the subject (DIPY's
``mask_for_response_msmt`` / ``response_from_mask_msmt`` on FA/MD-selected voxels). The design
and the constraint matrices are DIPY's ``MultiShellDeconvModel``'s; the non-negativity of the FOD
and of the tissue fractions is enforced exactly by our solver (:mod:`._msmt_kernels`: Lawson &
Hanson's least-distance programme through NNLS, numba, parallel over voxels) instead of DIPY's
cvxpy program, so nothing more needs installing.

As in :class:`~.csd.CsdModel`, directions are turned into scanner axes first and the FOD is
stored in MRtrix3's basis: ``fod`` reads in ``sh2peaks``/``mrview`` as ``dwi2fod msmt_csd``'s
``wmfod`` does; ``gm`` and ``csf`` are the isotropic compartments' densities (their l = 0
coefficients, MRtrix3's ``gm.mif``/``csf.mif`` convention).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError, ProtocolError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps
from ._msmt_kernels import constrained_least_squares
from .csd import world_directions
from .dti import TensorModel
from .voxelwise import need_affine, sliced_grid

__all__ = ["MsmtCsdModel", "MsmtCsdFit"]

NNLS_ITERATIONS = 500


RESPONSE_VOXELS = (300, 0.05)
"""Each tissue's response comes from at most this many voxels, or this fraction of the mask."""


def response_masks(fa: np.ndarray, md: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """(WM, GM, CSF) voxels to estimate the responses from, by the tensor: white matter the most
    anisotropic voxels; among the isotropic ones (FA < 0.2), CSF the highest MD and grey matter
    those around the median MD of the rest (away from both white matter and CSF partial volumes)."""
    fa, md = np.nan_to_num(np.asarray(fa, float)), np.nan_to_num(np.asarray(md, float))
    n = max(10, min(RESPONSE_VOXELS[0], int(RESPONSE_VOXELS[1] * mask.sum())))
    order = np.argsort(np.where(mask, fa, -np.inf), axis=None)[::-1][:n]
    wm = np.zeros(mask.shape, bool)
    wm.flat[order] = True
    iso = mask & (fa < 0.2) & (md > 0)
    csf = np.zeros(mask.shape, bool)
    gm = np.zeros(mask.shape, bool)
    if iso.sum() >= 20:
        by_md = np.argsort(np.where(iso, md, -np.inf), axis=None)[::-1]
        csf.flat[by_md[:min(n, max(10, int(iso.sum()) // 10))]] = True
        rest = iso & ~csf
        lo, hi = np.percentile(md[rest], [30, 70])
        gm = rest & (md >= lo) & (md <= hi)
    return [wm & mask, gm, csf]


class MsmtCsdModel:
    """Multi-shell multi-tissue CSD for one gradient table.

    Parameters
    ----------
    gtab : a table with b=0 volumes and at least two non-zero shells.
    sh_order_max : the white-matter FOD's order (default 8, as ``dwi2fod``).
    """

    def __init__(self, gtab: GradientTable, *, sh_order_max: int = 8) -> None:
        shells = [b for b in gtab.shells if b > 0]
        if gtab.n_b0 == 0:
            raise ProtocolError("MSMT-CSD needs b=0 volumes.", file=gtab.source, fix="include a b=0 volume.")
        if len(shells) < 2:
            raise ProtocolError(f"MSMT-CSD needs at least two non-zero shells; the table has {len(shells)}.",
                                file=gtab.source, fix="use CsdModel (single-shell CSD) for this table.")
        if sh_order_max < 2 or sh_order_max % 2:
            raise InputError(f"sh_order_max must be an even number ≥ 2, got {sh_order_max}.")
        self.gtab = gtab
        self.sh_order_max = int(sh_order_max)

    def _dipy_model(self, dgtab, data: np.ndarray, mask: np.ndarray, fa: np.ndarray, md: np.ndarray):
        from dipy.core.gradients import unique_bvals_tolerance
        from dipy.reconst.mcsd import MultiShellDeconvModel, multi_shell_fiber_response, response_from_mask_msmt

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masks = response_masks(fa, md, mask)
            for name, m in zip(("white-matter", "grey-matter", "CSF"), masks):
                if m.sum() < 10:
                    raise ProtocolError(f"too few {name} voxels ({int(m.sum())}) to estimate its response.",
                                        fix="fit a larger field of view, or give a brain mask that holds all three "
                                            "tissues.")
            wm, gm, csf = response_from_mask_msmt(dgtab, data, *[m.astype(np.uint8) for m in masks])
            response = multi_shell_fiber_response(self.sh_order_max, bvals=unique_bvals_tolerance(dgtab.bvals),
                                                  wm_rf=wm, gm_rf=gm, csf_rf=csf)
            model = MultiShellDeconvModel(dgtab, response, sh_order_max=self.sh_order_max)
            self.deconvolution_ = model  # the fitted responses' DIPY model, for predict()
            return model, (wm, gm, csf)

    def fit(self, dwi: DiffusionData, *, mask: np.ndarray | None = None) -> MsmtCsdFit:
        """FODs and tissue densities of the voxels of ``mask`` (default the series' brain mask)."""
        from dipy.core.gradients import gradient_table
        from dipy.reconst.shm import convert_sh_descoteaux_tournier

        if not isinstance(dwi, DiffusionData):
            raise InputError("MsmtCsdModel.fit needs a DiffusionData (its affine turns the directions into scanner "
                             "axes).", fix="load it with pigment_connect.load_dwi.")
        mask = np.asarray(dwi.mask if mask is None else mask, bool)
        data = np.asarray(dwi.data, np.float64)
        dgtab = gradient_table(self.gtab.bvals, bvecs=world_directions(self.gtab.bvecs, dwi.affine), b0_threshold=50)
        tensor = TensorModel(self.gtab).fit(DiffusionData(data.astype(np.float32), dwi.affine, mask, self.gtab))
        model, responses = self._dipy_model(dgtab, data, mask, tensor.fa, tensor.md)
        design = np.asarray(model._X, np.float64)
        constraint = np.asarray(model.fitter._reg, np.float64)
        q, r = np.linalg.qr(design)
        r_inv = np.linalg.inv(r)
        signals = data[mask]
        unit = float(np.mean(signals[:, self.gtab.b0s_mask])) or 1.0  # signals near 1: a well-scaled NNLS
        coeffs = np.zeros((len(signals), design.shape[1]))
        constrained_least_squares(np.ascontiguousarray(q.T), np.ascontiguousarray(r_inv),
                                  np.ascontiguousarray(constraint @ r_inv), np.ascontiguousarray(signals / unit),
                                  NNLS_ITERATIONS, coeffs)
        coeffs *= unit
        iso = model.response.iso
        fod = np.zeros(mask.shape + (design.shape[1] - iso,))
        fod[mask] = convert_sh_descoteaux_tournier(coeffs[:, iso:])
        tissues = np.zeros(mask.shape + (iso,))
        tissues[mask] = coeffs[:, :iso]
        return MsmtCsdFit(self, fod, tissues[..., 0], tissues[..., 1], mask, dwi.affine, responses)


class MsmtCsdFit:
    """Result of :meth:`MsmtCsdModel.fit`.

    Attributes
    ----------
    fod : (X, Y, Z, K) white-matter FOD, MRtrix3's SH basis, scanner axes.
    gm, csf : (X, Y, Z) isotropic grey-matter and CSF densities (l = 0 coefficients).
    mask, affine, responses : the fitted voxels, their grid, the (WM, GM, CSF) per-shell responses.
    """

    def __init__(self, model, fod, gm, csf, mask, affine, responses):
        self.model, self.fod, self.gm, self.csf = model, fod, gm, csf
        self.mask, self.affine, self.responses = mask, affine, responses

    def __getitem__(self, index) -> MsmtCsdFit:
        mask, affine = sliced_grid(index, self.mask, self.affine)
        idx = np.index_exp[index]
        return MsmtCsdFit(self.model, self.fod[idx], self.gm[idx], self.csf[idx], mask, affine, self.responses)

    def predict(self, gtab: GradientTable | None = None, S0=None) -> np.ndarray:
        """(..., N) signal of the fitted tissues on ``gtab`` (default the fitted table), in the data's
        units: the densities already carry S0, so ``S0`` must be None."""
        from dipy.core.gradients import gradient_table
        from dipy.reconst.shm import convert_sh_descoteaux_tournier

        if S0 is not None:
            raise InputError("MSMT-CSD densities carry the signal's scale; predict() takes no S0.")
        gtab = gtab or self.model.gtab
        dgtab = gradient_table(gtab.bvals, bvecs=world_directions(gtab.bvecs, need_affine(self.affine)),
                               b0_threshold=50)
        params = np.concatenate([self.gm[self.mask][:, None], self.csf[self.mask][:, None],
                                 convert_sh_descoteaux_tournier(self.fod[self.mask])], axis=1)
        signal = np.zeros(self.mask.shape + (len(gtab),))
        signal[self.mask] = self.model.deconvolution_.predict(params, gtab=dgtab)
        return signal

    @property
    def wm(self) -> np.ndarray:
        """(X, Y, Z) white-matter density: the FOD's l = 0 coefficient."""
        return self.fod[..., 0]

    @property
    def maps(self) -> MicrostructureMaps:
        """``fod`` and the three tissue densities ``wm``, ``gm``, ``csf``."""
        return MicrostructureMaps({"fod": self.fod.astype(np.float32), "wm": self.wm.astype(np.float32),
                                   "gm": self.gm.astype(np.float32), "csf": self.csf.astype(np.float32)},
                                  need_affine(self.affine), "msmt", mask=self.mask)
