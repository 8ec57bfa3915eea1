"""Which field a series is tracked on (``tracking_model``) and with which rule, said in words.

``"tensor"`` tracks the microstructure model's tensor (DTI, or PIGMENT's); ``"pigment"`` the
PIGMENT/NODDI mean neurite orientation, its probabilistic draws spread by the ODI map;
``"fod"`` fibre ODFs from constrained spherical deconvolution (a ``fit-csd`` stage: multi-shell
multi-tissue on tables with two shells or more, :func:`fod_method`);
``"auto"`` FODs where the table supports CSD at order :data:`FOD_ORDER`, else PIGMENT's
orientation when the model is PIGMENT, else the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..io.gradients import GradientTable

__all__ = ["TRACKING_MODELS", "FOD_ORDER", "TrackingChoice", "choose_tracking", "csd_supported", "fod_method"]

TRACKING_MODELS = ("tensor", "pigment", "fod", "auto")
FOD_ORDER = 8
"""Spherical-harmonic order of the pipeline's FODs (MRtrix3's ``dwi2fod`` default)."""
_FOD_MIN_DIRECTIONS = (FOD_ORDER - 1) * FOD_ORDER // 2  # 28: order 6 determined, 8 super-resolved by one order


@dataclass(frozen=True)
class TrackingChoice:
    """What a series is tracked on: the tracker's ``field`` and ``algorithm``, and why."""

    field: str
    algorithm: str
    reason: str

    @property
    def needs_csd(self) -> bool:
        return self.field == "fod"


def csd_supported(gtab: GradientTable) -> tuple[bool, str]:
    """(whether, why): the highest shell has at least 28 directions (order 6 determined, order 8
    super-resolved by one order, as ``dwi2fod`` does on 30-direction scans)."""
    shells = [b for b in gtab.shells if b > 0]
    if gtab.n_b0 == 0 or not shells:
        return False, "no b=0 or no diffusion-weighted volume"
    top = max(shells)
    n = int(((abs(gtab.bvals - top) <= 100.0) & ~gtab.b0s_mask).sum())
    if n < _FOD_MIN_DIRECTIONS:
        return False, f"{n} directions on b={top:g} (CSD of order {FOD_ORDER} needs ≥ {_FOD_MIN_DIRECTIONS})"
    return True, f"{n} directions on b={top:g}"


def fod_method(gtab: GradientTable) -> str:
    """``"msmt"`` (multi-shell multi-tissue CSD) where the table has two non-zero shells or more,
    else ``"csd"`` (single-shell CSD on its highest shell)."""
    return "msmt" if len([b for b in gtab.shells if b > 0]) >= 2 else "csd"


def _fod_words(gtab: GradientTable) -> str:
    kind = "multi-shell multi-tissue CSD" if fod_method(gtab) == "msmt" else "single-shell CSD"
    return f"fibre ODFs ({kind}, order {FOD_ORDER})"


def choose_tracking(tracking_model: str, algorithm: str, gtab: GradientTable, model: str) -> TrackingChoice:
    """The field and rule for one series. A FOD field is followed ``"deterministic"``ally for
    ``tensorline``/``eigenvector`` and drawn from for ``probabilistic``; a tensor or orientation
    field takes ``deterministic`` as ``tensorline``."""
    on_pigment = model.startswith("pigment")
    if tracking_model == "auto":
        ok, why = csd_supported(gtab)
        if ok:
            field, reason = "fod", f"auto: {_fod_words(gtab)}: {why}"
        elif on_pigment:
            field, reason = "orientation", f"auto: PIGMENT orientation and ODI, the table is too sparse for CSD: {why}"
        else:
            field, reason = "tensor", f"auto: the tensor, the table is too sparse for CSD: {why}"
    else:
        field = {"tensor": "tensor", "pigment": "orientation", "fod": "fod"}[tracking_model]
        reason = {"tensor": "the model's tensor", "pigment": "PIGMENT orientation and ODI",
                  "fod": _fod_words(gtab)}[tracking_model]
    if field == "fod":
        algorithm = "probabilistic" if algorithm == "probabilistic" else "deterministic"
    elif algorithm == "deterministic":
        algorithm = "tensorline"
    return TrackingChoice(field, algorithm, f"{reason}; {algorithm} tracking")
