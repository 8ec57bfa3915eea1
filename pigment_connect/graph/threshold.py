"""Thresholding of connectomes and group-representative (consensus) connectomes.

Single graphs: :func:`threshold_absolute`, :func:`threshold_proportional` (BCT semantics).
Cohorts (a stack of ``(n_subjects, n, n)`` matrices or a list of :class:`Connectome`):
:func:`consistency_threshold` (Roberts et al. 2017: keep the edges whose weight varies least
across subjects) and :func:`consensus_connectome` (edges present in a fraction of subjects).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..io.connectome import Connectome
from .metrics import GraphLike, as_weights

__all__ = ["as_stack", "threshold_absolute", "threshold_proportional", "consistency_threshold",
           "consensus_connectome"]


def as_stack(cohort: np.ndarray | Sequence[Connectome] | Sequence[np.ndarray], *,
             allow_negative: bool = False) -> np.ndarray:
    """(n_subjects, n, n) float64 weights with zero diagonals, each validated like one graph
    (negative values allowed with ``allow_negative``, e.g. for statistics of harmonised data).

    Raises
    ------
    InputError
        Subjects of different sizes, an empty cohort, or a matrix that is not a valid connectome.
    """
    mats = list(cohort) if not isinstance(cohort, np.ndarray) else list(cohort) if cohort.ndim == 3 else None
    if mats is None:
        raise InputError(f"a cohort stack must be (n_subjects, n, n), got shape {cohort.shape}.")
    if not mats:
        raise InputError("the cohort is empty.")
    sizes = {np.shape(m.weights if isinstance(m, Connectome) else m) for m in mats}
    if len(sizes) != 1:
        raise InputError(f"the cohort's connectomes differ in size: {sorted(sizes)}.",
                         fix="use the same atlas for every subject.")
    out = np.empty((len(mats), *sizes.pop()))
    for k, m in enumerate(mats):
        try:
            out[k] = as_weights(m, allow_negative=allow_negative)
        except InputError as err:
            raise InputError(f"subject {k}: {err.problem}", fix=err.fix) from None
    return out


def threshold_absolute(conn: GraphLike, threshold: float) -> np.ndarray:
    """Weights below ``threshold`` set to 0."""
    w = as_weights(conn)
    w[w < threshold] = 0.0
    return w


def threshold_proportional(conn: GraphLike, proportion: float) -> np.ndarray:
    """Keep the strongest ``round(proportion · n(n−1)/2)`` edges (halves up) (a fraction of all possible
    edges, as BCT's ``threshold_proportional``), zero the rest."""
    if not 0.0 <= proportion <= 1.0:
        raise InputError(f"proportion must be in [0, 1], got {proportion}.")
    w = as_weights(conn)
    n = w.shape[0]
    i, j = np.triu_indices(n, 1)
    values = w[i, j]
    keep = int(np.floor(n * (n - 1) / 2 * proportion + 0.5))  # halves round up, as MATLAB's round
    order = np.argsort(-values, kind="stable")
    drop = order[keep:]
    w[i[drop], j[drop]] = 0.0
    w[j[drop], i[drop]] = 0.0
    return w


def consistency_threshold(cohort, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Consistency-based thresholding (Roberts et al. 2017).

    The edges with the lowest coefficient of variation of weight across subjects (std/mean,
    among edges with a positive mean) are kept until the group mask reaches ``density``; every
    subject is then masked with that same set of edges.

    Returns
    -------
    stack : (n_subjects, n, n) the thresholded connectomes.
    mask : (n, n) bool, the kept edges.
    """
    if not 0.0 < density <= 1.0:
        raise InputError(f"density must be in (0, 1], got {density}.")
    stack = as_stack(cohort)
    n = stack.shape[1]
    i, j = np.triu_indices(n, 1)
    values = stack[:, i, j]
    mean = values.mean(axis=0)
    present = mean > 0
    cv = np.full(mean.shape, np.inf)
    cv[present] = values[:, present].std(axis=0) / mean[present]
    keep = min(int(round(density * i.size)), int(present.sum()))
    chosen = np.argsort(cv, kind="stable")[:keep]
    mask = np.zeros((n, n), dtype=bool)
    mask[i[chosen], j[chosen]] = True
    mask |= mask.T
    return stack * mask, mask


def consensus_connectome(cohort, *, min_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A group-representative connectome: the edges present (weight > 0) in at least
    ``min_fraction`` of subjects, each weighted by its mean over the subjects that have it.

    Returns
    -------
    weights : (n, n) float64.
    fraction : (n, n) fraction of subjects in which each edge is present.
    """
    if not 0.0 < min_fraction <= 1.0:
        raise InputError(f"min_fraction must be in (0, 1], got {min_fraction}.")
    stack = as_stack(cohort)
    present = stack > 0
    fraction = present.mean(axis=0)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_nonzero = np.where(count > 0, stack.sum(axis=0) / np.maximum(count, 1), 0.0)
    weights = np.where(fraction >= min_fraction - 1e-12, mean_nonzero, 0.0)
    return weights, fraction
