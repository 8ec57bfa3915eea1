"""Tracking validity on the ground-truth phantom next to DIPY's LocalTracking with equivalent
settings (same seeds, 0.5 mm steps, FA 0.15 stop, 45°): the fraction of streamlines whose two
ends join a truly connected region pair, and the fraction of true bundles recovered."""

import warnings

import numpy as np
import pytest

from pigment_connect.connectome import build_connectomes
from pigment_connect.fit import TensorModel
from pigment_connect.io import Tractogram
from pigment_connect.track import Tracker
from pigment_connect.track.tracker import seeds_from_mask

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def _score(trk, phantom):
    truth = phantom.true_connectome.weights > 0
    conn = build_connectomes(trk, phantom.parcellation, assignment="radial", radius=2.0)["count"].weights
    return conn[truth].sum() / conn.sum(), np.mean(conn[np.triu(truth, 1)] > 0)


@pytest.fixture(scope="module")
def dipy_scores(phantom):
    from dipy.core.gradients import gradient_table
    from dipy.data import default_sphere
    from dipy.direction import ProbabilisticDirectionGetter, peaks_from_model
    from dipy.reconst.dti import TensorModel as DipyTensorModel
    from dipy.tracking.local_tracking import LocalTracking
    from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion

    maps = TensorModel(phantom.dwi.gtab).fit(phantom.dwi).maps
    fa = np.asarray(maps["fa"])
    mask = maps.mask if maps.mask is not None else fa > 0
    seeds = seeds_from_mask(mask & (fa >= 0.15), per_voxel=2, random_state=0)
    affine = phantom.dwi.affine
    seeds_mm = seeds @ affine[:3, :3].T + affine[:3, 3]
    step_vox = 0.5 / float(np.linalg.norm(affine[:3, 0]))  # LocalTracking steps in voxels
    model = DipyTensorModel(gradient_table(phantom.dwi.gtab.bvals, bvecs=phantom.dwi.gtab.bvecs))
    stop = ThresholdStoppingCriterion(fa, 0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peaks = peaks_from_model(model, phantom.dwi.data, default_sphere, relative_peak_threshold=0.8,
                                 min_separation_angle=45, mask=mask)
        det = list(LocalTracking(peaks, stop, seeds_mm, affine, step_size=step_vox, max_cross=1))
        pmf = model.fit(phantom.dwi.data, mask=mask).odf(default_sphere).clip(min=0)
        getter = ProbabilisticDirectionGetter.from_pmf(pmf, max_angle=45.0, sphere=default_sphere)
        prob = list(LocalTracking(getter, stop, seeds_mm, affine, step_size=step_vox, random_seed=1))
    out = {}
    for name, lines in (("det", det), ("prob", prob)):
        trk = Tractogram.from_streamlines([s for s in lines if len(s) > 1], affine=affine, shape=fa.shape)
        out[name] = _score(trk.select(trk.lengths >= 10.0), phantom)
    return maps, out


@pytest.mark.slow
def test_deterministic_validity_at_least_dipy_s(phantom, dipy_scores):
    maps, dipy = dipy_scores
    for algorithm in ("tensorline", "eigenvector"):
        valid, recovered = _score(Tracker(algorithm=algorithm).track(maps, seeds_per_voxel=2, random_state=0), phantom)
        assert valid >= dipy["det"][0] - 0.01 and recovered >= dipy["det"][1], (algorithm, valid, dipy["det"])


@pytest.mark.slow
def test_probabilistic_validity_at_least_dipy_s(phantom, dipy_scores):
    """Measured (random_state 0–3): ours valid 0.80–0.84, 7/7 bundles; DIPY (tensor-ODF PMF) 0.77,
    6/7. Steering each draw by the tensorline rule (the default) is what lifts ours above DIPY:
    drawing the step direction itself (``draws="direct"``) scores 0.71–0.76."""
    maps, dipy = dipy_scores
    valid, recovered = _score(Tracker(algorithm="probabilistic").track(maps, seeds_per_voxel=2, random_state=0),
                              phantom)
    assert valid >= dipy["prob"][0] and recovered >= dipy["prob"][1], (valid, recovered, dipy["prob"])
