"""General linear models for group studies of connectomes: design from a tidy table, edge-wise
and node-wise t/F tests, Benjamini–Hochberg FDR, standardised effect sizes.

The design is built from a pandas table with one row per scan (``subject``, optionally
``session``, ``site``, ``group`` and covariates). Numeric covariates are mean-centred,
categorical ones (strings, booleans, categories) dummy-coded against their first level in
sorted order; an intercept is always included. The contrast is named, e.g.
``contrast=("group", "patient", "control")`` for patient − control, or ``("age",)`` for the
slope of a numeric covariate; a matrix (rows = contrasts over ``Design.columns``) gives an
F test.

Statistics (identical to MRtrix3's ``connectomestats`` for the same design and contrast):
``stat`` = t (one contrast row) or F, ``effect`` = c'β, ``std_effect`` = c'β / σ̂ (the effect
in units of the residual standard deviation: Cohen's d for a two-group contrast, adjusted for
the covariates), ``p`` two-sided for t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

__all__ = ["Design", "make_design", "GLMResult", "fit_glm", "edgewise_glm", "nodewise_glm", "fdr_bh",
           "edge_index", "vector_to_matrix"]


@dataclass(frozen=True)
class Design:
    """A design matrix with its contrast.

    Attributes
    ----------
    matrix : (n_scans, p) float64
    columns : list of p column names
    contrast : (k, p) float64; k = 1 gives a t test, k > 1 an F test
    subjects : (n_scans,) scan identifiers (the table's ``subject`` column, with ``session``)
    blocks : (n_scans,) int exchangeability blocks (permutations stay within a block) or None
    """

    matrix: np.ndarray
    columns: list[str]
    contrast: np.ndarray
    subjects: np.ndarray
    blocks: np.ndarray | None = None
    levels: dict = field(default_factory=dict)

    @property
    def n_scans(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def is_t(self) -> bool:
        return self.contrast.shape[0] == 1


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def make_design(table: pd.DataFrame, contrast, *, covariates: Sequence[str] = (), group: str | None = "group",
                blocks: str | None = None, categorical: Sequence[str] = ()) -> Design:
    """Build a :class:`Design` from a table with one row per scan.

    Parameters
    ----------
    table : DataFrame with a ``subject`` column (and ``session`` if several scans per subject),
        the ``group`` column and the ``covariates``.
    contrast : tuple or array
        ``(column, level_a, level_b)``: level_a − level_b of a categorical column (``group`` or a
        covariate); ``(column,)``: the slope of a numeric column; an array (k, p) over
        ``Design.columns`` for anything else (k > 1 for an F test).
    covariates : columns to adjust for (e.g. ``("age", "sex", "site")``).
    group : the grouping column (always categorical), or None for a design of covariates only.
    blocks : column whose values define exchangeability blocks for permutations.
    categorical : numeric columns to treat as categorical (e.g. sites coded 1, 2, 3).
    """
    if "subject" not in table.columns:
        raise InputError("the design table needs a 'subject' column.")
    wanted = ([group] if group else []) + list(covariates) + ([blocks] if blocks else [])
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise InputError(f"the design table lacks the columns {missing}.", fix=f"it has {list(table.columns)}.")
    if table[wanted].isna().any().any():
        bad = [c for c in wanted if table[c].isna().any()]
        raise InputError(f"the design table has missing values in {bad}.", fix="drop or impute those scans first.")
    cols: list[np.ndarray] = [np.ones(len(table))]
    names = ["intercept"]
    levels: dict[str, list] = {}
    for col in ([group] if group else []) + list(covariates):
        series = table[col]
        if col == group or col in categorical or _is_categorical(series):
            lv = sorted(series.astype(str).unique())
            levels[col] = lv
            if len(lv) < 2:
                if col == group:
                    raise InputError(f"the column {col!r} has a single level {lv}: nothing to compare.")
                continue
            for level in lv[1:]:
                cols.append((series.astype(str) == level).to_numpy(dtype=float))
                names.append(f"{col}[{level}]")
        else:
            values = series.to_numpy(dtype=float)
            cols.append(values - values.mean())
            names.append(col)
    x = np.column_stack(cols)
    rank = np.linalg.matrix_rank(x)
    if rank < x.shape[1]:
        raise InputError(f"the design is rank-deficient (rank {rank} for {x.shape[1]} columns {names}).",
                         fix="drop a covariate that is confounded with another (e.g. site with group).")
    if x.shape[0] <= rank:
        raise InputError(f"{x.shape[0]} scans are too few for {rank} design columns.")
    c = _contrast_vector(contrast, names, levels)
    subjects = table["subject"].astype(str).to_numpy()
    if "session" in table.columns:
        subjects = np.array([f"{s}_{t}" for s, t in zip(subjects, table["session"].astype(str))])
    block_ids = None
    if blocks:
        _, block_ids = np.unique(table[blocks].astype(str).to_numpy(), return_inverse=True)
    return Design(x, names, c, subjects, block_ids, levels)


def _contrast_vector(contrast, names: list[str], levels: dict) -> np.ndarray:
    if isinstance(contrast, tuple) and contrast and isinstance(contrast[0], str):
        column = contrast[0]
        c = np.zeros(len(names))
        if len(contrast) == 1:
            if column not in names:
                raise InputError(f"contrast on {column!r}: no numeric design column of that name.",
                                 fix=f"design columns: {names}.")
            c[names.index(column)] = 1.0
            return c[None, :]
        if len(contrast) != 3 or column not in levels:
            raise InputError(f"contrast {contrast!r} must be (categorical column, level_a, level_b).",
                             fix=f"categorical columns: {list(levels)}.")
        for sign, level in ((1.0, contrast[1]), (-1.0, contrast[2])):
            level = str(level)
            if level not in levels[column]:
                raise InputError(f"level {level!r} is not in column {column!r} (levels {levels[column]}).")
            if level != levels[column][0]:
                c[names.index(f"{column}[{level}]")] += sign
        return c[None, :]
    c = np.atleast_2d(np.asarray(contrast, dtype=float))
    if c.shape[1] != len(names):
        raise InputError(f"the contrast has {c.shape[1]} columns but the design has {len(names)}: {names}.")
    if np.linalg.matrix_rank(c) < c.shape[0]:
        raise InputError("the rows of the contrast matrix are linearly dependent.")
    return c


@dataclass(frozen=True)
class GLMResult:
    """Per-test results of a GLM, each an array of shape (n_tests,).

    ``stat`` is t (t contrast) or F; ``p`` its parametric p-value (two-sided for t); ``effect``
    c'β and ``std_effect`` c'β/σ̂ (t contrasts; NaN for F); ``df`` the residual degrees of freedom.
    """

    stat: np.ndarray
    p: np.ndarray
    effect: np.ndarray
    std_effect: np.ndarray
    beta: np.ndarray
    df: int
    kind: str


class _Projector:
    """The algebra that turns data (n, m) into contrast statistics, shared by the plain GLM and
    the permutation tests (which apply it to permuted residuals)."""

    def __init__(self, design: Design) -> None:
        x, c = design.matrix, design.contrast
        self.pinv = np.linalg.pinv(x)
        self.q, _ = np.linalg.qr(x)
        self.df = x.shape[0] - np.linalg.matrix_rank(x)
        xtx_inv = self.pinv @ self.pinv.T
        middle = c @ xtx_inv @ c.T
        # whitening of the contrast: ||W y||² = (Cβ)' [C (X'X)⁻¹ C']⁻¹ (Cβ)
        chol = np.linalg.cholesky(np.linalg.inv(middle))
        self.white = chol.T @ c @ self.pinv  # (k, n)
        self.k = c.shape[0]
        self.c_pinv = c @ self.pinv  # (k, n)

    def stat_from(self, numer: np.ndarray, rss: np.ndarray, floor: np.ndarray | float = 0.0) -> np.ndarray:
        """t or F from whitened contrast estimates (k, ...) and residual sums of squares; 0 where
        ``rss <= floor`` (data without residual variance, up to rounding)."""
        sigma2 = np.maximum(rss, 0.0) / self.df
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.k == 1:
                out = numer[0] / np.sqrt(sigma2)
            else:
                out = np.sum(numer**2, axis=0) / self.k / sigma2
        return np.where(rss > floor, out, 0.0)


def _flat_floor(y: np.ndarray) -> np.ndarray:
    """Residual sums of squares at or below this are rounding error of data ``y`` (n, m)."""
    return 1e-20 * np.sum(y**2, axis=0)


def fit_glm(y: np.ndarray, design: Design) -> GLMResult:
    """Fit the GLM to every column of ``y`` (n_scans, n_tests).

    Tests whose data are constant (zero residual variance) get stat 0 and p 1.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != design.n_scans:
        raise InputError(f"data of shape {y.shape} do not match a design of {design.n_scans} scans.")
    if not np.all(np.isfinite(y)):
        raise InputError("the data contain NaN or Inf.", fix="remove those scans or tests first.")
    proj = _Projector(design)
    beta = proj.pinv @ y
    resid = y - design.matrix @ beta
    rss = np.sum(resid**2, axis=0)
    floor = _flat_floor(y)
    stat = proj.stat_from(proj.white @ y, rss, floor)
    sigma = np.sqrt(rss / proj.df)
    flat = rss <= floor
    if proj.k == 1:
        effect = (proj.c_pinv @ y)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            std_effect = np.where(flat, 0.0, effect / np.where(flat, 1.0, sigma))
        p = 2.0 * stats.t.sf(np.abs(stat), proj.df)
        kind = "t"
    else:
        effect = np.full(y.shape[1], np.nan)
        std_effect = effect.copy()
        p = stats.f.sf(stat, proj.k, proj.df)
        kind = "F"
    p = np.where(flat, 1.0, p)
    return GLMResult(stat, p, effect, std_effect, beta, int(proj.df), kind)


def fdr_bh(p: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg: adjusted p-values (q) and the rejections at ``alpha``.

    q_(i) = min_{j ≥ i} min(1, m p_(j) / j) over the sorted p-values (``scipy.stats.false_discovery_control``).
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy(), np.zeros(0, dtype=bool)
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise InputError("p-values must be finite and in [0, 1].")
    flat = p.ravel()
    order = np.argsort(flat, kind="stable")
    m = flat.size
    scaled = flat[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    q = np.empty(m)
    q[order] = q_sorted
    q = q.reshape(p.shape)
    return q, q <= alpha


def edge_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The upper-triangle edge order used by the edge-wise functions: (i, j) with i < j."""
    return np.triu_indices(n, 1)


def vector_to_matrix(values: np.ndarray, n: int, *, fill: float = 0.0) -> np.ndarray:
    """A symmetric (n, n) matrix from per-edge values in :func:`edge_index` order."""
    out = np.full((n, n), fill, dtype=np.asarray(values).dtype)
    i, j = edge_index(n)
    out[i, j] = values
    out[j, i] = values
    return out


def _stack_for(cohort, design: Design) -> np.ndarray:
    from .threshold import as_stack

    stack = as_stack(cohort, allow_negative=True)
    if stack.shape[0] != design.n_scans:
        raise InputError(f"{stack.shape[0]} connectomes but {design.n_scans} scans in the design.",
                         fix="give one connectome per row of the design table, in the same order.")
    return stack


def edgewise_glm(cohort, design: Design, *, labels: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """The GLM at every edge of a cohort of connectomes, with BH-FDR over edges.

    Parameters
    ----------
    cohort : (n_scans, n, n) stack or list of Connectome, in the design's row order.

    Returns
    -------
    DataFrame, one row per edge i < j: ``i``, ``j``, ``source``, ``target``, ``stat``, ``p``,
    ``q`` (BH-adjusted), ``significant`` (q ≤ alpha), ``effect``, ``std_effect``.
    """
    stack = _stack_for(cohort, design)
    n = stack.shape[1]
    i, j = edge_index(n)
    res = fit_glm(stack[:, i, j], design)
    q, significant = fdr_bh(res.p, alpha)
    names = np.asarray(labels if labels is not None else _labels(cohort, n))
    return pd.DataFrame({"i": i, "j": j, "source": names[i], "target": names[j], "stat": res.stat, "p": res.p,
                         "q": q, "significant": significant, "effect": res.effect, "std_effect": res.std_effect})


def _labels(cohort, n: int) -> list[str]:
    from ..io.connectome import Connectome

    first = cohort[0] if not isinstance(cohort, np.ndarray) else None
    return first.labels if isinstance(first, Connectome) else [f"node{k + 1}" for k in range(n)]


def nodewise_glm(metrics: pd.DataFrame, design: Design, metric: str, *, node: str = "node",
                 alpha: float = 0.05) -> pd.DataFrame:
    """The GLM at every node for one metric of a tidy table (one row per scan × node).

    ``metrics`` needs ``subject`` (and ``session`` if the design has it), the ``node`` column
    and the ``metric`` column. Returns one row per node: ``node``, ``stat``, ``p``, ``q``,
    ``significant``, ``effect``, ``std_effect``.
    """
    for col in ("subject", node, metric):
        if col not in metrics.columns:
            raise InputError(f"the metrics table lacks the column {col!r}.")
    keys = metrics["subject"].astype(str)
    if "session" in metrics.columns:
        keys = keys + "_" + metrics["session"].astype(str)
    wide = metrics.assign(_scan=keys).pivot_table(index="_scan", columns=node, values=metric, aggfunc="first")
    missing = sorted(set(design.subjects) - set(wide.index))
    if missing:
        raise InputError(f"no {metric!r} values for scans {missing[:5]}.")
    wide = wide.loc[list(design.subjects)]
    if wide.isna().any().any():
        raise InputError(f"some nodes lack {metric!r} values for some scans.", fix="every scan needs every node.")
    res = fit_glm(wide.to_numpy(dtype=float), design)
    q, significant = fdr_bh(res.p, alpha)
    return pd.DataFrame({"node": wide.columns.astype(str), "stat": res.stat, "p": res.p, "q": q,
                         "significant": significant, "effect": res.effect, "std_effect": res.std_effect})
