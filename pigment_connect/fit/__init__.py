"""Conventional microstructure models in the ``Model(gtab).fit(dwi) -> Fit`` pattern.

:class:`TensorModel` (DTI), :class:`DiffusionKurtosisModel` (DKI) and :class:`NoddiModel`
(NODDI-Watson) run batched in torch, on CUDA when available; :class:`CsdModel` gives fibre
ODFs (constrained spherical deconvolution, DIPY's, in MRtrix3's basis over scanner axes) and
:class:`MsmtCsdModel` their multi-shell multi-tissue form (WM FOD, GM and CSF densities). PIGMENT, the project's own
method, lives in :mod:`pigment_connect.pigment` (:class:`~pigment_connect.pigment.PigmentModel`,
:class:`~pigment_connect.pigment.AmortisedPigmentModel`) and builds on the helpers here.

One protocol for every fit (these and PIGMENT's): ``maps`` (a
:class:`~pigment_connect.io.MicrostructureMaps` on the fit's grid), ``mask``, ``affine``,
``predict(gtab, S0=None)`` (the signal for any table), the maps as explicit attributes. The
voxel-wise models (DTI, DKI, NODDI, PIGMENT zero-shot) take ``fit_method``, ``noise``, ``sigma``,
``chunk_size``, ``device`` and ``dtype`` the same way and check them the same way
(:class:`~pigment_connect.errors.InputError`; DKI refuses float32, whose log-linear system is too
ill-conditioned there); PIGMENT's draws take ``random_state``.

Names shared with DIPY, and what they mean here:

==========================  ==========================================  ===============================
name                        DIPY                                        here
==========================  ==========================================  ===============================
``fit_method="WLS"/"OLS"``  (weighted) log-linear least squares         the same
``fit_method="NLLS"``       non-linear least squares                    the same; ``noise="rician"``
                                                                        makes it a Rician likelihood
``fit_method="RNLLS"``      *robust* NLLS (outlier rejection)           deprecated: it meant Rician
                                                                        NLLS here (warns; use
                                                                        ``noise="rician"``)
``TensorFit.model_params``  (…, 12) evals + evecs                       the same layout; what the fit
                                                                        solved for is ``coefficients``
                                                                        (…, 7: tensor, log S0)
``DKI model_params``        (…, 27) evals + evecs + kurtosis tensor     the same layout;
                                                                        ``coefficients`` (…, 22)
``mk() ak() rk() mkt()``    methods, clipped to [−3/7, 10]              the same methods and clipping;
                                                                        ``maps`` holds them unclipped
``kfa``, ``fa``, ``md``…    properties                                  the same
``predict(gtab, S0=None)``  the signal for a table                      the same, for every model
==========================  ==========================================  ===============================
"""

from .csd import CsdFit, CsdModel
from .msmt import MsmtCsdFit, MsmtCsdModel
from .dki import DiffusionKurtosisFit, DiffusionKurtosisModel
from .dti import TensorFit, TensorModel
from .noddi import NoddiFit, NoddiModel

__all__ = ["TensorModel", "TensorFit", "DiffusionKurtosisModel", "DiffusionKurtosisFit", "NoddiModel", "NoddiFit",
           "CsdModel", "CsdFit", "MsmtCsdModel", "MsmtCsdFit"]
