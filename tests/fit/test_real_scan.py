"""DKI and NODDI fits of a real 3-shell scan (../shared/data/dwi_mdt_b1k_b2k) against DIPY and AMICO.

The agreement figures are printed (run with -s) and bounded; they are reported in the notes.
"""

import warnings

import numpy as np
import pytest

from pigment_connect.errors import InputWarning
from pigment_connect.fit import DiffusionKurtosisModel, NoddiModel, TensorModel
from pigment_connect.io import load_dwi

pytestmark = pytest.mark.shared_data

STEM = "b1k_b2k_example_slices_24_38"


@pytest.fixture(scope="module")
def mdt_scan(shared_data):
    folder = shared_data / "dwi_mdt_b1k_b2k"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # small negatives from preprocessing are clipped
        dwi = load_dwi(folder / f"{STEM}.nii.gz", bvals=folder / "b1k_b2k.bval", bvecs=folder / "b1k_b2k.bvec",
                       mask=folder / f"{STEM}_mask.nii.gz")
    wm = TensorModel(dwi.gtab).fit(dwi).fa > 0.4
    return dwi, wm & dwi.mask


def test_dti_agrees_with_dipy_in_white_matter(mdt_scan):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel as DipyTensorModel

    dwi, wm = mdt_scan
    ours = TensorModel(dwi.gtab).fit(dwi)
    ref = DipyTensorModel(gradient_table(dwi.gtab.bvals, bvecs=dwi.gtab.bvecs, b0_threshold=50),
                          fit_method="WLS").fit(dwi.data, mask=dwi.mask)
    fa, md = np.median(np.abs(ours.fa[wm] - ref.fa[wm])), np.median(np.abs(ours.md[wm] - ref.md[wm]))
    print(f"\nDTI vs DIPY WLS in WM ({wm.sum()} voxels): median |ΔFA| {fa:.1e}, |ΔMD| {md:.1e} mm²/s")
    assert fa < 1e-5 and md < 1e-9


def test_dki_mk_agrees_with_dipy_in_white_matter(mdt_scan):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dki import DiffusionKurtosisModel as DipyDKI

    dwi, wm = mdt_scan
    ours = DiffusionKurtosisModel(dwi.gtab).fit(dwi, mask=wm)
    ref = DipyDKI(gradient_table(dwi.gtab.bvals, bvecs=dwi.gtab.bvecs, b0_threshold=50),
                  fit_method="WLS").fit(dwi.data, mask=wm)
    diff = np.abs(ours.mk()[wm] - ref.mk(max_kurtosis=10)[wm])
    print(f"\nDKI MK vs DIPY WLS in WM ({wm.sum()} voxels): median |ΔMK| {np.median(diff):.1e}, "
          f"95th percentile {np.percentile(diff, 95):.1e}")
    assert np.median(diff) < 1e-3 and np.percentile(diff, 95) < 0.02


def _amico_set_up(amico, ndirs: int = 500) -> None:
    """AMICO's one-off set-up (its rotation matrices in ~/.dipy), done here rather than left to a
    per-user cache: only the ``ndirs`` that generate_kernels uses (0.3 s, not amico.setup()'s
    100 s for every direction count)."""
    amico.lut.precompute_rotation_matrices(12, ndirs)


def test_noddi_agrees_with_amico_in_white_matter(mdt_scan, tmp_path):
    amico = pytest.importorskip("amico")
    import nibabel as nib

    _amico_set_up(amico)

    dwi, wm = mdt_scan
    ours = NoddiModel(dwi.gtab).fit(dwi, mask=wm)
    nib.save(nib.Nifti1Image(dwi.data, dwi.affine), tmp_path / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(wm.astype(np.uint8), dwi.affine), tmp_path / "wm.nii.gz")
    np.savetxt(tmp_path / "dwi.bval", dwi.gtab.bvals[None], fmt="%g")
    np.savetxt(tmp_path / "dwi.bvec", dwi.gtab.bvecs.T, fmt="%.8f")  # image-axis frame: no flip for AMICO
    amico.util.fsl2scheme(str(tmp_path / "dwi.bval"), str(tmp_path / "dwi.bvec"), str(tmp_path / "dwi.scheme"))
    ae = amico.Evaluation(study_path=str(tmp_path), output_path=str(tmp_path / "amico"))  # kernels under tmp_path
    ae.load_data(str(tmp_path / "dwi.nii.gz"), str(tmp_path / "dwi.scheme"), mask_filename=str(tmp_path / "wm.nii.gz"),
                 b0_thr=50)
    ae.set_model("NODDI")
    ae.generate_kernels(regenerate=True, ndirs=500)
    ae.load_kernels()
    ae.fit()
    ae.save_results()
    ref = {k: np.asarray(nib.load(tmp_path / "amico" / f"fit_{k.upper()}.nii.gz").dataobj)[wm] for k in ("ndi", "odi", "fwf")}
    diffs = {k: np.median(np.abs(getattr(ours, k)[wm] - ref[k])) for k in ref}
    print(f"\nNODDI vs AMICO in WM ({wm.sum()} voxels): " + ", ".join(f"median |Δ{k.upper()}| {v:.1e}" for k, v in diffs.items()))
    # AMICO fits a dictionary on a discrete (ICVF, OD) grid: agreement is bounded by its grid step
    assert diffs["ndi"] < 0.02 and diffs["odi"] < 0.02 and diffs["fwf"] < 0.02
