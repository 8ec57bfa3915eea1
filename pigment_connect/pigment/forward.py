"""The zero-shot PIGMENT model as the least-squares solver sees it, with its structured Jacobian.

Kernel code only (tensors in, tensors out); :mod:`pigment_connect.pigment.zero_shot` orchestrates.

Per voxel the variables are x = (δ (9), z (d), ω (3), log S0[, W∆]) and the features are
f = (G(z) + spread·δ)·std + mean (:mod:`pigment_connect.pigment.tissue`). The prediction is
[kurtosis-model signal, NODDI signal, δ, L_k⁻¹(z − m_k)[, (W∆ − a·(log λ2 − log λ3))/ASYM_SIGMA]]
(the last ones are the prior's pseudo-observations). W∆, the kurtosis's departure from axial
symmetry, is a variable where the model is built with ``asymmetric=True`` (the zero-shot fit does so
on every table); the prior does not generate it, so it has its own prior centred on the planarity of
the tissue's tensor, N(a·(log λ2 − log λ3), ASYM_SIGMA²), with a per-voxel slope a (at most
ASYM_SLOPE; the zero-shot fit scales it by how anisotropic the voxel's tensor is beyond noise).
The Jacobian is assembled by the chain rule instead of perturbing all of x through the whole model:

* the kurtosis signal depends on the features 0–5 and R only, the NODDI signal on the features
  6–8 and e1 only, so each is differenced in its own features and ω (9 and 6 evaluations instead
  of 19 of both);
* ∂f/∂δ is diagonal and ∂f/∂z is the decoder's Jacobian (d decoder evaluations, once per point);
* ∂S/∂log S0 = S exactly; the pseudo-observations are linear in δ, z, W∆ and the features; the
  kurtosis signal is differenced in W∆ (one more evaluation).

Forward differences use MINPACK's step √ε·max(1, |·|) in each differenced variable, as
:func:`~pigment_connect.fit.lm.jacobian_fd` does for a whole model.
"""

from __future__ import annotations

import torch

from .network import TissuePrior
from .tissue import FEATURES, cayley_rotation, dki_tissue_signal, noddi_tissue_signal

__all__ = ["TissueSignalModel"]

N_FEATURES = len(FEATURES)
N_KURTOSIS_FEATURES = 6
"""Features 0–5 (log-eigenvalues, W∥, W⊥, W̄) drive the kurtosis signal, 6–8 NODDI's."""
_DKI_FEATURES = slice(0, N_KURTOSIS_FEATURES)
_NODDI_FEATURES = slice(N_KURTOSIS_FEATURES, N_FEATURES)
ASYM_SLOPE = 0.5
"""Prior mean of W∆ per unit of planarity: W∆ ~ N(ASYM_SLOPE·(log λ2 − log λ3), ASYM_SIGMA²). The
slope of W∆ on log λ2 − log λ3 in the dense DKI fits of DIPY's real small_101D crop (b 300–4050,
fitted at b ≤ 3000; not a scan the benchmarks score) is 0.45–0.48, in the simulator's tissue
0.52–0.54: the kurtosis is larger along the tensor's middle axis in proportion to its planarity."""
ASYM_SIGMA = 0.12
"""Prior standard deviation of W∆ about its planarity-given mean (small_101D: residual s.d. 0.11–0.12,
fit noise included)."""


def _slope(asym_slope: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """(V,) slope of W∆'s prior mean on the planarity: ``asym_slope``, or :data:`ASYM_SLOPE` in every voxel."""
    return torch.full((len(x),), ASYM_SLOPE, dtype=x.dtype, device=x.device) if asym_slope is None else asym_slope


def _steps(v: torch.Tensor) -> torch.Tensor:
    return torch.finfo(v.dtype).eps ** 0.5 * v.abs().clamp_min(1.0)


def _perturbed(v: torch.Tensor, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """(V·K, n) copies of ``v`` (V, n), copy k of each voxel with column ``cols.start + k`` stepped,
    and the steps (V, K)."""
    V, n = v.shape
    K = cols.stop - cols.start
    h = _steps(v[:, cols])
    vp = v[:, None, :].repeat(1, K, 1)
    vp[:, :, cols].diagonal(dim1=1, dim2=2).add_(h)
    return vp.reshape(V * K, n), h


class TissueSignalModel:
    """Prediction and Jacobian of the zero-shot fit for one gradient table.

    Parameters
    ----------
    prior : the tissue prior (on the fit's device and dtype).
    bvals, bvecs : (N,) s/mm² and (N, 3), the table. dki_rows : (n,) indices of the measurements the
        kurtosis model explains. stick : the NODDI stick coefficients of ``bvals``. asymmetric : W∆ is
        a variable (the last of x); otherwise W is axially symmetric about e1.
    """

    def __init__(self, prior: TissuePrior, bvals: torch.Tensor, bvecs: torch.Tensor, dki_rows: torch.Tensor,
                 stick: torch.Tensor, *, asymmetric: bool = False) -> None:
        self.prior, self.bvals, self.bvecs, self.stick = prior, bvals, bvecs, stick
        self.dki_bvals, self.dki_bvecs = bvals[dki_rows], bvecs[dki_rows]
        self.n_dki, self.n_sig = len(dki_rows), len(dki_rows) + len(bvals)
        self.d = prior.latent_dim
        self.asymmetric = bool(asymmetric)
        self.i_s0 = N_FEATURES + self.d + 3
        self.n_var = self.i_s0 + 1 + int(self.asymmetric)

    # ------------------------------------------------------------------------------ pieces of x
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, N_FEATURES:N_FEATURES + self.d]

    def rotation(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return cayley_rotation(x[:, N_FEATURES + self.d:N_FEATURES + self.d + 3], base)

    def log_s0(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.i_s0]

    def w_asym(self, x: torch.Tensor) -> torch.Tensor | None:
        """W∆ (V,), or None where W is axially symmetric."""
        return x[:, self.i_s0 + 1] if self.asymmetric else None

    def features(self, x: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """Tissue features (V, 9), de-standardised: (G(z) + spread·δ)·std + mean."""
        p = self.prior
        return (p.decoder(self.latent(x)) + spread * x[:, :N_FEATURES]) * p.std + p.mean

    def _dki(self, s0, feats, rot, w_asym=None):
        return dki_tissue_signal(s0, feats, rot, self.dki_bvals, self.dki_bvecs, w_asym)

    def _noddi(self, s0, feats, rot, w_asym=None):  # W∆ unused: NODDI-Watson is axially symmetric
        return noddi_tissue_signal(s0, feats, rot, self.bvals, self.bvecs, stick=self.stick)

    # ------------------------------------------------------------------------------ the model
    def predict(self, x: torch.Tensor, base: torch.Tensor, component: torch.Tensor,
                spread: torch.Tensor, asym_slope: torch.Tensor | None = None) -> torch.Tensor:
        """(V, n_sig + 9 + d [+ 1]): signals (kurtosis rows, then NODDI rows), δ, whitened latent
        residual[, W∆'s whitened residual]. ``base`` (V, 3, 3) frames ω rotates, ``component`` (V,) each
        voxel's latent mixture component, ``spread`` (V, 1) or (V, 9) the features' tie to the manifold,
        ``asym_slope`` (V,) the slope of W∆'s prior mean on the planarity (None: :data:`ASYM_SLOPE`)."""
        feats, rot, s0 = self.features(x, spread), self.rotation(x, base), torch.exp(self.log_s0(x))
        w_asym = self.w_asym(x)
        parts = [self._dki(s0, feats, rot, w_asym), self._noddi(s0, feats, rot), x[:, :N_FEATURES],
                 self.prior.latent_residual(self.latent(x), component)]
        if w_asym is not None:
            parts.append(((w_asym - _slope(asym_slope, x) * (feats[:, 1] - feats[:, 2])) / ASYM_SIGMA)[:, None])
        return torch.cat(parts, -1)

    def feature_jacobian(self, x: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """∂f/∂x (V, P, 9): diagonal spread·std in δ, std·∂G/∂z in z (decoder by forward
        differences), zero in ω and log S0."""
        p, d, V = self.prior, self.d, len(x)
        z = self.latent(x)
        zp, h = _perturbed(z, slice(0, d))
        g0 = p.decoder(z)
        dg = (p.decoder(zp).reshape(V, d, N_FEATURES) - g0[:, None, :]) / h[:, :, None]
        J = torch.zeros(V, self.n_var, N_FEATURES, dtype=x.dtype, device=x.device)
        J[:, :N_FEATURES, :].diagonal(dim1=1, dim2=2).copy_(spread * p.std)
        J[:, N_FEATURES:N_FEATURES + d, :] = dg * p.std
        return J

    def jacobian(self, x: torch.Tensor, pred: torch.Tensor, base: torch.Tensor, component: torch.Tensor,
                 spread: torch.Tensor, asym_slope: torch.Tensor | None = None) -> torch.Tensor:
        """(V, P, M) Jacobian of :meth:`predict` at x, whose prediction is ``pred`` (V, M)."""
        V, nf, d = len(x), N_FEATURES, self.d
        feats = self.features(x, spread)
        rot = self.rotation(x, base)
        s0 = torch.exp(self.log_s0(x))
        w_asym = self.w_asym(x)
        dki0, noddi0 = pred[:, :self.n_dki], pred[:, self.n_dki:self.n_sig]
        # Signal derivatives in the features and ω, each model only in what it depends on.
        dS_df = torch.zeros(V, nf, self.n_sig, dtype=x.dtype, device=x.device)
        dS_dw = torch.empty(V, 3, self.n_sig, dtype=x.dtype, device=x.device)
        w_cols = slice(nf + d, nf + d + 3)
        xw, hw = _perturbed(x, w_cols)
        rot_w = cayley_rotation(xw[:, w_cols], base.repeat_interleave(3, 0))
        s0_w = s0.repeat_interleave(3, 0)
        for cols, out_cols, model, f0 in ((_DKI_FEATURES, slice(0, self.n_dki), self._dki, dki0),
                                          (_NODDI_FEATURES, slice(self.n_dki, self.n_sig), self._noddi, noddi0)):
            k = cols.stop - cols.start
            w_k = None if w_asym is None else w_asym.repeat_interleave(k, 0)
            fp, hf = _perturbed(feats, cols)
            sf = model(s0.repeat_interleave(k, 0), fp, rot.repeat_interleave(k, 0), w_k)
            dS_df[:, cols, out_cols] = (sf.reshape(V, k, -1) - f0[:, None, :]) / hf[:, :, None]
            w_3 = None if w_asym is None else w_asym.repeat_interleave(3, 0)
            sw = model(s0_w, feats.repeat_interleave(3, 0), rot_w, w_3)
            dS_dw[:, :, out_cols] = (sw.reshape(V, 3, -1) - f0[:, None, :]) / hw[:, :, None]
        J = torch.zeros(V, self.n_var, pred.shape[1], dtype=x.dtype, device=x.device)
        Jf = self.feature_jacobian(x, spread)
        J[:, :, :self.n_sig] = Jf @ dS_df
        J[:, w_cols, :self.n_sig] = dS_dw
        J[:, self.i_s0, :self.n_sig] = pred[:, :self.n_sig]  # ∂S/∂log S0 = S
        sig_end = self.n_sig
        J[:, :nf, sig_end:sig_end + nf].diagonal(dim1=1, dim2=2).fill_(1.0)
        J[:, nf:nf + d, sig_end + nf:sig_end + nf + d] = self.prior.latent_whiten[component].transpose(1, 2)
        if w_asym is not None:  # the kurtosis signal differenced in W∆; its pseudo-observation is linear
            h = _steps(w_asym)
            sa = self._dki(s0, feats, rot, w_asym + h)
            J[:, self.i_s0 + 1, :self.n_dki] = (sa - dki0) / h[:, None]
            J[:, :, -1] = -_slope(asym_slope, x)[:, None] / ASYM_SIGMA * (Jf[:, :, 1] - Jf[:, :, 2])
            J[:, self.i_s0 + 1, -1] = 1.0 / ASYM_SIGMA
        return J
