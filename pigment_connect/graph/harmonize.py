"""ComBat harmonisation of site effects (Johnson et al. 2007; Fortin et al. 2017/2018) for
connectome edges or any per-scan features, with biological covariates preserved.

Model, per feature v: ``y_jv = α_v + x_j β_v + γ_sv + δ_sv ε_jv`` for scan j at site s. The site
shifts γ and scales δ are estimated per site with empirical-Bayes shrinkage across features
(parametric priors: γ ~ N(γ̄, τ²), δ ~ InvGamma(a, b)), and removed:
``y*_jv = (y_jv − α̂_v − x_j β̂_v − γ*_sv) / δ*_sv^(1/2) · σ̂_v + α̂_v + x_j β̂_v``.

The algebra and its stopping rule follow the reference implementation neuroCombat (Fortin),
which the tests compare against. Where neuroCombat fails we do the following:

* features whose pooled residual variance is 0 (constant or all-zero edges) are passed through
  unchanged and left out of the priors;
* a site with a single scan has no within-site variance: its scale prior is pooled from the
  other sites' variance estimates and its δ* is that prior's posterior given its one residual;
* :meth:`ComBat.transform` applies a fitted model to new scans from the fitted sites.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["ComBat"]


class ComBat:
    """Empirical-Bayes ComBat.

    Parameters
    ----------
    site : column of the scan table holding the site (scanner/batch).
    covariates : columns whose effects are preserved (numeric, or categorical: dummy-coded
        against the first level in sorted order, as neuroCombat).
    empirical_bayes : shrink the site parameters across features (True), or use the per-site
        estimates as they are.
    tol : relative change at which the empirical-Bayes iterations stop (neuroCombat's 1e-4).

    Attributes (after :meth:`fit`)
    ------------------------------
    sites_ : list of site names; gamma_ (n_sites, n_features), delta_ (n_sites, n_features):
    the shrunken shifts and scales; var_pooled_ (n_features,); keep_ (n_features,) bool, the
    features that were harmonised.
    """

    def __init__(self, *, site: str = "site", covariates: Sequence[str] = (), empirical_bayes: bool = True,
                 tol: float = 1e-4, max_iter: int = 1000) -> None:
        self.site = site
        self.covariates = tuple(covariates)
        self.empirical_bayes = empirical_bayes
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------ design
    def _covariate_block(self, table: pd.DataFrame, fitting: bool) -> np.ndarray:
        blocks = []
        if fitting:
            self.levels_ = {}
        for col in self.covariates:
            series = table[col]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                blocks.append(series.to_numpy(dtype=float)[:, None])
                continue
            values = series.astype(str).to_numpy()
            if fitting:
                self.levels_[col] = sorted(set(values))
            levels = self.levels_[col]
            unknown = sorted(set(values) - set(levels))
            if unknown:
                raise InputError(f"covariate {col!r} has levels {unknown} not seen when the model was fitted.")
            blocks.append(np.column_stack([values == lv for lv in levels[1:]]).astype(float)
                          if len(levels) > 1 else np.zeros((len(values), 0)))
        return np.hstack(blocks) if blocks else np.zeros((len(table), 0))

    def _check(self, y, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise InputError(f"ComBat needs (n_scans, n_features) data, got shape {y.shape}.",
                             fix="flatten connectomes to their upper-triangle edges first.")
        if len(table) != y.shape[0]:
            raise InputError(f"{y.shape[0]} scans of data but {len(table)} rows in the table.")
        missing = [c for c in (self.site, *self.covariates) if c not in table.columns]
        if missing:
            raise InputError(f"the scan table lacks the columns {missing}.")
        if not np.all(np.isfinite(y)):
            raise InputError("the data contain NaN or Inf.")
        if table[[self.site, *self.covariates]].isna().any().any():
            raise InputError("the scan table has missing site or covariate values.")
        return y, table[self.site].astype(str).to_numpy()

    # ------------------------------------------------------------ fit
    def fit(self, y: np.ndarray, table: pd.DataFrame) -> ComBat:
        """Estimate the model from ``y`` (n_scans, n_features) and the scan ``table``."""
        y, site = self._check(y, table)
        self.sites_ = sorted(set(site))
        if len(self.sites_) < 2:
            raise InputError(f"ComBat needs at least two sites; the table has {self.sites_}.")
        onehot = np.column_stack([site == s for s in self.sites_]).astype(float)
        counts = onehot.sum(axis=0)
        if np.all(counts < 2):
            raise InputError("every site has a single scan: site scales cannot be estimated.")
        cov = self._covariate_block(table, fitting=True)
        design = np.hstack([onehot, cov])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise InputError("site and covariates are confounded (rank-deficient design).",
                             fix="drop covariates that are constant within every site or that identify the site.")
        n_scans, n_sites = onehot.shape
        b_hat = np.linalg.solve(design.T @ design, design.T @ y)
        self.grand_mean_ = (counts / n_scans) @ b_hat[:n_sites]
        self.beta_cov_ = b_hat[n_sites:]
        var_pooled = np.mean((y - design @ b_hat) ** 2, axis=0)
        self.keep_ = var_pooled > 1e-12 * np.maximum(1.0, np.mean(y**2, axis=0))
        self.var_pooled_ = np.where(self.keep_, var_pooled, 1.0)
        if not self.keep_.any():
            raise InputError("no feature varies across scans: there is nothing to harmonise.")
        stand_mean = self.grand_mean_ + cov @ self.beta_cov_
        s = ((y - stand_mean) / np.sqrt(self.var_pooled_))[:, self.keep_]
        gamma_hat = np.linalg.solve(onehot.T @ onehot, onehot.T @ s)
        delta_hat = np.full_like(gamma_hat, np.nan)
        for k in range(n_sites):
            rows = s[onehot[:, k] > 0]
            if rows.shape[0] > 1:
                delta_hat[k] = rows.var(axis=0, ddof=1)
        gamma = np.zeros((n_sites, y.shape[1]))
        delta = np.ones((n_sites, y.shape[1]))
        gamma[:, self.keep_], delta[:, self.keep_] = self._shrink(s, onehot, gamma_hat, delta_hat)
        self.gamma_, self.delta_ = gamma, delta
        return self

    def _shrink(self, s, onehot, gamma_hat, delta_hat):
        if not self.empirical_bayes:
            return gamma_hat, np.where(np.isnan(delta_hat), 1.0, delta_hat)
        gamma_bar = gamma_hat.mean(axis=1)
        tau2 = gamma_hat.var(axis=1, ddof=1)
        pooled = delta_hat[np.isfinite(delta_hat)]
        gamma_star = np.empty_like(gamma_hat)
        delta_star = np.empty_like(gamma_hat)
        for k in range(onehot.shape[1]):
            d = delta_hat[k] if np.all(np.isfinite(delta_hat[k])) else pooled
            m, v = d.mean(), d.var(ddof=1)
            a = (2 * v + m**2) / v
            b = (m * v + m**3) / v
            rows = s[onehot[:, k] > 0]
            start = delta_hat[k] if np.all(np.isfinite(delta_hat[k])) else np.full(s.shape[1], b / (a - 1))
            gamma_star[k], delta_star[k] = self._iterate(rows, gamma_hat[k], start, gamma_bar[k], tau2[k], a, b)
        return gamma_star, delta_star

    def _iterate(self, rows, g_hat, d_hat, g_bar, t2, a, b):
        n = rows.shape[0]
        g_old, d_old = g_hat.copy(), d_hat.copy()
        for _ in range(self.max_iter):
            g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
            sum2 = np.sum((rows - g_new) ** 2, axis=0)
            d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
            # neuroCombat's stopping rule, signed denominator included (kept for agreement)
            with np.errstate(divide="ignore", invalid="ignore"):
                change = max(np.nanmax(np.abs(g_new - g_old) / g_old), np.nanmax(np.abs(d_new - d_old) / d_old))
            g_old, d_old = g_new, d_new
            if change <= self.tol:
                break
        return g_old, d_old

    # ------------------------------------------------------------ apply
    def transform(self, y: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        """Harmonise ``y`` (n_scans, n_features) from sites the model was fitted on."""
        if not hasattr(self, "gamma_"):
            raise InputError("this ComBat model is not fitted yet.", fix="call fit() first.")
        y, site = self._check(y, table)
        if y.shape[1] != self.gamma_.shape[1]:
            raise InputError(f"{y.shape[1]} features but the model was fitted on {self.gamma_.shape[1]}.")
        unknown = sorted(set(site) - set(self.sites_))
        if unknown:
            raise InputError(f"sites {unknown} were not in the data the model was fitted on.",
                             fix="refit ComBat including scans from those sites.")
        idx = np.array([self.sites_.index(s) for s in site])
        stand_mean = self.grand_mean_ + self._covariate_block(table, fitting=False) @ self.beta_cov_
        sd = np.sqrt(self.var_pooled_)
        s = (y - stand_mean) / sd
        adjusted = (s - self.gamma_[idx]) / np.sqrt(self.delta_[idx]) * sd + stand_mean
        return np.where(self.keep_, adjusted, y)

    def fit_transform(self, y: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same scans."""
        return self.fit(y, table).transform(y, table)
