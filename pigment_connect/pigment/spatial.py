"""Spatial context for PIGMENT: neighbourhood indexing, the amortised fit's spatial network, and
the two-group mean field with which the zero-shot fit's ``evidence`` couples neighbouring voxels.

A voxel's neighbours are often the same tissue: where they are, their measurements say what the
voxel's own noisy ones cannot. Rather than a hand-set smoothness prior (which blurs tissue
boundaries when single-voxel posteriors are wide), a network learns from simulated patches how
far to trust each neighbour: it sees the voxel's signal summary and, for each neighbour, that
neighbour's summary, their difference and the alignment of their principal axes, pooled over the
neighbours (a permutation-invariant "deep set", so any number of neighbours, mask edges included).
Training patches mix neighbours of the same tissue (features jittered by a patch-wise amount,
orientation turned by up to a patch-wise angle), partial-volume neighbours (the same tissue's
signal mixed with an unrelated tissue's) and unrelated tissue, in patch-wise proportions, so the
network meets boundaries, homogeneous regions and everything between.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from ..errors import InputError

__all__ = ["NEIGHBOURHOODS", "SpatialNetwork", "face_neighbour_index", "neighbour_index", "neighbour_tissue",
           "rotation_about", "two_group_mean_field"]

NEIGHBOURHOODS: dict[str, list[tuple[int, int, int]]] = {
    "3d": [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
           if 0 < abs(i) + abs(j) + abs(k) <= 2],
    "in-plane": [(i, j, 0) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)],
}
"""Voxel offsets of each neighbourhood: ``"3d"`` the 18 voxels within √2 voxel (faces and edges),
``"in-plane"`` the 8 within √2 voxel in the first two axes (slabs whose slices are not contiguous)."""

MAX_NEIGHBOURS = max(len(v) for v in NEIGHBOURHOODS.values())
JITTER_RANGE = (0.02, 1.5)
"""Patch-wise spread (standardised feature units, log-uniform) of same-tissue neighbours."""
MAX_TURN_DEG = 30.0
"""Largest patch-wise angle by which a same-tissue neighbour's orientation is turned."""


def check_neighbourhood(neighbourhood: str) -> str:
    """``neighbourhood`` if it names one of :data:`NEIGHBOURHOODS`, else :class:`InputError`."""
    if neighbourhood not in NEIGHBOURHOODS:
        raise InputError(f"neighbourhood must be one of {sorted(NEIGHBOURHOODS)}, got {neighbourhood!r}.")
    return neighbourhood


def neighbour_index(mask: np.ndarray, neighbourhood: str, *, faces_only: bool = False) -> np.ndarray:
    """(V, K) index, into the voxels of ``mask`` in C order, of each voxel's K neighbours (−1 where
    the neighbour lies outside the mask or the image). ``faces_only``: only the neighbours that
    share a face (6 for ``"3d"``, 4 for ``"in-plane"``)."""
    offsets = [o for o in NEIGHBOURHOODS[check_neighbourhood(neighbourhood)]
               if not faces_only or sum(map(abs, o)) == 1]
    if mask.ndim != 3:
        raise InputError(f"spatial context needs a 3-D image and mask, got a mask of shape {mask.shape}.",
                         fix="fit the 4-D image (or pass a 3-D mask), or use spatial=False.")
    index = np.full(tuple(s + 2 for s in mask.shape), -1, dtype=np.int64)
    ijk = np.argwhere(mask)
    index[tuple((ijk + 1).T)] = np.arange(len(ijk))
    return np.stack([index[tuple((ijk + 1 + np.array(o)).T)] for o in offsets], 1)


def face_neighbour_index(mask: np.ndarray, neighbourhood: str) -> np.ndarray:
    """:func:`neighbour_index` of the neighbours that share a face with each voxel (V, 6 or 4)."""
    return neighbour_index(mask, neighbourhood, faces_only=True)


def two_group_mean_field(log_odds: np.ndarray, known: np.ndarray, neighbours: np.ndarray | None,
                         coupling: float, *, tol: float = 1e-8, max_iter: int = 1000) -> np.ndarray:
    """Each voxel's probability (V,) of group 1 of two, its neighbours' groups coupled (Ising/Potts).

    ``log_odds`` (V,) each voxel's own log odds of group 1 over group 0 (from its data; ±inf allowed),
    NaN where its group is not in question; ``known`` (V,) bool, the group of those voxels;
    ``neighbours`` (V, K) as from :func:`neighbour_index` (−1: none), or None for independent voxels;
    ``coupling`` the log-prior bonus (≥ 0) for each neighbour in the same group. The prior is
    exp(coupling · Σ over neighbour pairs of [same group]); its mean-field posterior solves
    q_i = σ(log_odds_i + coupling · Σ_j (2 q_j − 1)) over the voxels in question, the others fixed at
    their ``known`` group. Solved by damped (½) synchronous updates until no q moves by ``tol``: the
    result does not depend on voxel order or on how a fit was chunked.
    """
    free = ~np.isnan(log_odds)
    own = np.clip(log_odds[free], -50.0, 50.0)
    q = np.where(known, 1.0, 0.0)
    q[free] = expit(own)
    if neighbours is None or coupling == 0 or not free.any():
        return q
    nb = neighbours[free]
    present = nb >= 0
    for _ in range(max_iter):
        spin = 2.0 * q - 1.0
        field = np.where(present, spin[np.where(present, nb, 0)], 0.0).sum(1)
        new = 0.5 * (q[free] + expit(own + coupling * field))
        moved = float(np.abs(new - q[free]).max())
        q[free] = new
        if moved < tol:
            break
    return q


def rotation_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations by ``angle`` (...) radians about unit ``axis`` (..., 3) (Rodrigues)."""
    cross = torch.zeros(axis.shape + (3,), dtype=axis.dtype, device=axis.device)
    cross[..., 0, 1], cross[..., 0, 2], cross[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    cross = cross - cross.transpose(-1, -2)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=axis.dtype, device=axis.device) + s * cross + (1 - c) * cross @ cross


def neighbour_tissue(centre: torch.Tensor, rotation: torch.Tensor, n_slots: int, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The neighbour slots of ``n`` patch centres (standardised features ``centre`` (n, 9), frames
    ``rotation`` (n, 3, 3)): same-tissue features (n, K, 9) and frames (n, K, 3, 3), the share
    (n, K) of each slot's signal that comes from unrelated tissue instead, and a validity mask (n, K).

    Per patch: the spread of same-tissue features (log-uniform in :data:`JITTER_RANGE`) and the
    largest turn of their orientation (uniform up to :data:`MAX_TURN_DEG`); a share of slots that
    are the same tissue (uniform in [0, 1]); of the others, a share that are partial-volume mixes
    (unrelated share uniform in [0, 1]), the rest wholly unrelated. A patch-wise share of the K
    slots is present (uniform; one patch in eight has no neighbour at all).
    """
    n, k = len(centre), n_slots
    dt, device = centre.dtype, centre.device  # draws on the CPU generator, then moved: the same on any device
    rand = lambda *shape: torch.rand(*shape, generator=gen, dtype=dt).to(device)  # noqa: E731
    randn = lambda *shape: torch.randn(*shape, generator=gen, dtype=dt).to(device)  # noqa: E731
    same = rand(n, k) < rand(n, 1)
    mixed = rand(n, k) < rand(n, 1)
    other_share = torch.where(same, 0.0, torch.where(mixed, rand(n, k), 1.0))
    lo, hi = (math.log(v) for v in JITTER_RANGE)
    spread = torch.exp(lo + (hi - lo) * rand(n, 1, 1))
    jittered = centre[:, None] + spread * randn(n, k, centre.shape[-1])
    axis = randn(n, k, 3)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    angle = rand(n, k) * rand(n, 1) * math.radians(MAX_TURN_DEG)
    turned = rotation[:, None] @ rotation_about(axis, angle)
    valid = (rand(n, k) < rand(n, 1)) & (rand(n, 1) >= 0.125)
    return jittered, turned, other_share, valid


class SpatialNetwork(nn.Module):
    """Posterior mean and log-variance (n, 2F) of a voxel's F standardised features from its
    summary ``centre`` (n, d) and its neighbours' ``neighbours`` (n, K, d), the |cosines| between
    its and their principal axes ``alignment`` (n, K), and ``valid`` (n, K) (absent neighbours are
    ignored: the pooled term is a mean over the present ones, their share an input)."""

    def __init__(self, n_in: int, hidden: int, n_out: int, pooled: int = 128) -> None:
        super().__init__()
        self.each = nn.Sequential(nn.Linear(3 * n_in + 1, pooled), nn.SiLU(), nn.Linear(pooled, pooled), nn.SiLU(),
                                  nn.Linear(pooled, pooled))
        self.head = nn.Sequential(nn.Linear(n_in + pooled + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                  nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))

    def forward(self, centre: torch.Tensor, neighbours: torch.Tensor, alignment: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        c = centre[:, None].expand_as(neighbours)
        h = self.each(torch.cat([c, neighbours, neighbours - c, alignment[..., None]], -1))
        w = valid.to(h.dtype)[..., None]
        count = w.sum(1)
        pooled = (h * w).sum(1) / count.clamp_min(1.0)
        return self.head(torch.cat([centre, pooled, count / MAX_NEIGHBOURS], -1))
