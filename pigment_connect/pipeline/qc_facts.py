"""Facts about a series that its QC report shows and that only the raw data holds: the protocol
(shells, b=0 count, the table itself) and the noise level. Recorded with the stage that read the
data, so that ``pigment-connect report`` rebuilds every page from the derivatives alone."""

from __future__ import annotations

import numpy as np
from nibabel.affines import voxel_sizes

from ..fit.noise import residual_sigma
from ..io.dwi import DiffusionData

__all__ = ["protocol_facts", "noise_facts", "NOISE_VOXELS"]

NOISE_VOXELS = 50_000
"""Brain voxels (every k-th, in array order) the noise estimate uses: enough for a stable median."""


def protocol_facts(dwi: DiffusionData) -> dict:
    """The acquisition as the report shows it: shells (mean b in s/mm², :attr:`GradientTable.shells`,
    with their volume counts), the number of b=0 volumes, voxel size (mm), grid shape, brain-mask
    volume (mL), and the table itself (``bvals``, ``bvecs`` as lists: a few kB)."""
    gtab = dwi.gtab
    bvals = np.asarray(gtab.bvals, float)
    zooms = voxel_sizes(np.asarray(dwi.affine, float))
    mask = np.asarray(dwi.mask, bool)
    return {"n_volumes": int(len(bvals)), "n_b0": int(gtab.n_b0),
            "shells": [[round(float(b), 1), int(n)] for b, n in zip(gtab.shells, gtab.shell_sizes)],
            "voxel_mm": [round(float(z), 3) for z in zooms], "shape": [int(v) for v in dwi.data.shape[:3]],
            "mask_ml": round(float(mask.sum() * np.prod(zooms) / 1000.0), 2),
            "bvals": [round(float(b), 1) for b in bvals],
            "bvecs": np.round(np.asarray(gtab.bvecs, float), 5).tolist()}


def noise_facts(dwi: DiffusionData) -> dict:
    """Noise σ (signal units) from the tensor-fit residuals (:func:`~pigment_connect.fit.noise.residual_sigma`,
    one estimator for every table, so that series compare) and the b=0 SNR: median b=0 signal in
    the brain over σ. Both None when the table leaves too few degrees of freedom (1 b0 + 6)."""
    mask = np.asarray(dwi.mask, bool)
    signal = np.asarray(dwi.data)[mask]
    step = max(1, len(signal) // NOISE_VOXELS)
    signal = signal[::step].astype(np.float64)
    sigma = residual_sigma(signal, dwi.gtab)
    b0 = signal[:, np.asarray(dwi.gtab.b0s_mask)].mean(1) if dwi.gtab.n_b0 else None
    snr = None if sigma is None or b0 is None else float(np.median(b0) / sigma)
    return {"sigma": sigma, "snr_b0": None if snr is None else round(snr, 2), "voxels": int(len(signal))}
