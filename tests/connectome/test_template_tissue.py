"""Five-tissue-type images without a T1: the shipped template's partial volumes carried by a known
template → subject transform, corrected by the subject's FA and MD, and used for ACT."""

import numpy as np

from pigment_connect.connectome.atlases import load_template, load_template_tissue
from pigment_connect.connectome.register import Registration
from pigment_connect.connectome.template_tissue import template_tissue
from pigment_connect.track.tissue import FIVE_TISSUE, as_tissue_image


def _registration():
    """A known affine template → subject transform onto a 3 mm grid (no optimisation)."""
    template = load_template()
    world = np.eye(4)
    world[:3, 3] = [3.0, -5.0, 2.0]
    shape = (64, 76, 62)
    grid = np.diag([3.0, 3.0, 3.0, 1.0])
    grid[:3, 3] = -np.array(shape) * 1.5 + np.array([0.0, -18.0, 12.0])
    return Registration(world, None, shape, grid, template.t1w.shape, template.affine), template


def test_shipped_template_tissue_is_a_five_tissue_image():
    fractions, affine = load_template_tissue()
    template = load_template()
    assert fractions.shape == template.t1w.shape + (5,) and np.allclose(affine, template.affine)
    assert fractions.min() >= 0 and fractions.sum(-1).max() <= 1.0 + 2 / 255
    ml = fractions.sum(axis=(0, 1, 2)) * 8 / 1000  # 2 mm voxels
    assert 600 < ml[0] + ml[1] < 1100 and 500 < ml[2] < 800 and ml[4] == 0  # adult GM, WM volumes (mL)
    assert ml[0] > 2 * ml[1]  # cortex is most of the grey matter
    as_tissue_image(fractions, affine)  # passes the tracker's own checks


def test_template_tissue_follows_the_transform_and_the_subjects_maps():
    registration, template = _registration()
    mask = registration.warp(template.mask.astype(np.float32)) > 0.5
    plain = template_tissue(registration, mask)
    fractions, _ = load_template_tissue()
    expected = np.stack([registration.warp(np.ascontiguousarray(fractions[..., c])) for c in range(5)], -1)
    np.testing.assert_allclose(plain[mask], np.clip(expected[mask], 0, 1), atol=5e-3)  # 8-bit rounding: sums ≤ 1 + 2/255
    assert not plain[~mask].any()
    # the subject's maps override the template where they disagree
    fa = np.zeros(mask.shape, np.float32)
    md = np.full(mask.shape, 0.8e-3, np.float32)
    grey = mask & (plain[..., 0] > 0.8)
    ij = np.argwhere(grey)
    anisotropic, watery = tuple(ij[: len(ij) // 2].T), tuple(ij[len(ij) // 2:].T)
    fa[anisotropic] = 0.7  # white matter the template calls cortex (a misregistration, or a thin gyrus)
    md[watery] = 3.0e-3  # free water where the template has cortex (atrophy, a widened sulcus)
    fixed = template_tissue(registration, mask, fa=fa, md=md)
    wm, csf = FIVE_TISSUE.index("wm"), FIVE_TISSUE.index("csf")
    assert np.all(fixed[anisotropic][:, wm] == 1.0) and np.all(fixed[watery][:, csf] == 1.0)
    assert fixed.sum(-1).max() <= 1.0 + 1e-5 and fixed.min() >= 0
    untouched = mask & ~grey & (plain[..., wm] < 0.01) & (plain[..., csf] < 0.01)
    np.testing.assert_allclose(fixed[untouched], plain[untouched], atol=1e-6)
