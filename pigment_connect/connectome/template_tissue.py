"""A five-tissue-type image in DWI space without an anatomical scan.

The shipped template's partial volumes (:func:`~.atlases.load_template_tissue`: ICBM 2009 GM/WM,
CSF, cortical and sub-cortical GM) are carried to the subject by the template → subject
registration the atlases use, then corrected where the subject's own diffusion maps disagree
(a registration is never exact, and atrophy, ventricles and lesions are the subject's):

* **CSF** where the mean diffusivity is free-water-like: fraction ≥ (MD − 1.5·10⁻³)/1.5·10⁻³
  (MD 3·10⁻³ mm²/s, free water at body temperature, is all CSF);
* **white matter** where the tensor is anisotropic: fraction ≥ (FA − 0.25)/0.25 (FA ≥ 0.5 is
  white matter whatever the template says: cortex at 2 mm has FA ≈ 0.1–0.2);
* **grey matter** keeps what is left, split cortical/sub-cortical as the template splits it;
* nothing outside the subject's brain mask (ACT's "left the brain" stop).

The result is MRtrix3's 5TT layout on the DWI grid (:mod:`pigment_connect.track.tissue`). A user's
real 5TT (``5ttgen`` on a T1w) is always preferred by the pipeline.
"""

from __future__ import annotations

import numpy as np

from .atlases import load_template_tissue
from .register import Registration

__all__ = ["template_tissue", "CSF_MD", "WM_FA"]

CSF_MD = (1.5e-3, 3.0e-3)
"""MD (mm²/s) from which a voxel starts to count as CSF, and at which it is all CSF."""
WM_FA = (0.25, 0.5)
"""FA from which a voxel starts to count as white matter, and at which it is all white matter."""


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0.0, 1.0)


def template_tissue(registration: Registration, mask: np.ndarray, *, fa: np.ndarray | None = None,
                    md: np.ndarray | None = None) -> np.ndarray:
    """The subject's five-tissue-type partial volumes from the template's.

    Parameters
    ----------
    registration : template → subject (:func:`~.register.register_to_subject`).
    mask : (X, Y, Z) bool subject brain mask.
    fa, md : (X, Y, Z) subject FA and MD (mm²/s) for the corrections; either may be omitted.

    Returns
    -------
    (X, Y, Z, 5) float32 fractions in 5TT order (cortical GM, sub-cortical GM, WM, CSF,
    pathology), each in [0, 1], summing to ≤ 1; zero outside ``mask``.
    """
    fractions, _ = load_template_tissue()
    mask = np.asarray(mask, bool)
    warped = np.stack([registration.warp(np.ascontiguousarray(fractions[..., c])) for c in range(4)], axis=-1)
    warped = np.clip(np.nan_to_num(warped.astype(np.float32)), 0.0, 1.0)
    cgm, sgm, wm, csf = (warped[..., c] for c in range(4))
    csf_seen = _ramp(np.nan_to_num(md), *CSF_MD) if md is not None else np.zeros_like(csf)
    wm_seen = _ramp(np.nan_to_num(fa), *WM_FA) if fa is not None else np.zeros_like(wm)
    # what the subject's maps show wins over the template; free water first, then anisotropy
    csf = np.maximum(csf_seen, np.minimum(csf, 1.0 - wm_seen))
    wm = np.minimum(np.maximum(wm, wm_seen), 1.0 - csf)
    total = cgm + sgm + wm + csf
    room = np.clip(1.0 - wm - csf, 0.0, None)
    grey = cgm + sgm
    over = (total > 1.0) & (grey > 0)
    scale = np.where(over, room / np.where(grey > 0, grey, 1.0), 1.0)
    out = np.stack([cgm * scale, sgm * scale, wm, csf, np.zeros_like(wm)], axis=-1)
    out *= mask[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
