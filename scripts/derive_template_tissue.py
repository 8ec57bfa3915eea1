"""Derive the shipped five-tissue-type template (atlases/templates/*_desc-5tt_probseg.nii.gz).

    python scripts/derive_template_tissue.py [../shared/data/template_mni152_icbm2009]

From the ICBM 2009a grey- and white-matter probability maps (1 mm, nilearn's copies; licence
notice in atlases/templates/template.json): Gaussian smoothing (σ 0.85 voxel) and trilinear
resampling onto the shipped 97×115×97 2 mm MNI152NLin2009cAsym grid (the two ICBM 2009 spaces
differ by 1–2 mm), CSF = what the brain mask leaves, and grey matter split into cortical (within
one voxel of a Schaefer-400 label: the atlas is cortex only) and sub-cortical (deep nuclei,
cerebellum, brainstem: where streamlines may end but no cortical node is). Volumes in 5TT order
(cortical GM, sub-cortical GM, WM, CSF, pathology = 0), uint8 with slope 1/255.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "atlases" / "templates"
OUT = TEMPLATES / "MNI152NLin2009cAsym_res-2_desc-5tt_probseg.nii.gz"


def _resampled(path: Path, grid: nib.Nifti1Image) -> np.ndarray:
    img = nib.load(path)
    data = ndimage.gaussian_filter(np.asarray(img.dataobj, np.float32) / 255.0, 0.85)
    to_source = np.linalg.inv(img.affine) @ grid.affine
    coords = np.indices(grid.shape[:3], dtype=np.float64).reshape(3, -1)
    coords = to_source[:3, :3] @ coords + to_source[:3, 3:4]
    return ndimage.map_coordinates(data, coords, order=1, mode="constant").reshape(grid.shape[:3])


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data" / "template_mni152_icbm2009"
    mask_img = nib.load(TEMPLATES / "MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz")
    mask = np.asarray(mask_img.dataobj) > 0
    gm = _resampled(source / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz", mask_img)
    wm = _resampled(source / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz", mask_img)
    total = gm + wm
    over = total > 1.0
    gm[over], wm[over] = gm[over] / total[over], wm[over] / total[over]
    gm, wm = gm * mask, wm * mask
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * mask
    schaefer = np.asarray(nib.load(TEMPLATES.parent / "schaefer400" / "labels.nii.gz").dataobj) > 0
    cortex = ndimage.binary_dilation(schaefer, ndimage.generate_binary_structure(3, 3))
    five = np.stack([gm * cortex, gm * ~cortex, wm, csf, np.zeros_like(gm)], axis=-1)
    img = nib.Nifti1Image(np.round(five * 255).astype(np.uint8), mask_img.affine)
    img.header.set_slope_inter(1.0 / 255.0, 0.0)
    img.header.set_xyzt_units("mm")
    nib.save(img, OUT)
    vox_ml = 8.0 / 1000.0
    print(f"wrote {OUT.name}: cGM {five[..., 0].sum() * vox_ml:.0f} mL, sGM {five[..., 1].sum() * vox_ml:.0f} mL, "
          f"WM {wm.sum() * vox_ml:.0f} mL, CSF {csf.sum() * vox_ml:.0f} mL")


if __name__ == "__main__":
    main()
