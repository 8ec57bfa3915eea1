"""PIGMENT, the project's own method, in one place.

A physics-informed generative prior of tissue, adapted zero-shot to each subject's own signal
for its gradient table: tensor, kurtosis and NODDI maps with error bars from tables too sparse
for voxel-wise fitting.

Modules, from the description of tissue up to the fits:

- :mod:`.tissue` — the nine tissue features, their eigenframes, and the signal they give on any
  table (DKI and NODDI forward models) and the maps they imply;
- :mod:`.network` — the prior (a VAE with a latent mixture) and the shipped weights (``weights/``,
  with ``MODEL_CARD.md``); :mod:`.files` reads and writes weights with their checked header;
- :mod:`.simulate` — simulated tissue signal (Watson-dispersed sticks and zeppelins, Rician noise)
  and its training features; :mod:`.train` — training the prior from them (or from scans);
- :mod:`.forward` — the tissue signal model of the zero-shot fit and its Jacobians;
- :mod:`.zero_shot` — :class:`PigmentModel`, the prior adapted to one subject's signal;
- :mod:`.amortised` — :class:`AmortisedPigmentModel`, a network trained once per table that reuses it;
- :mod:`.spatial` — each voxel's neighbourhood, for the spatial amortised network.

It builds on :mod:`pigment_connect.physics` (signal equations), :mod:`pigment_connect.io` and the
conventional fits' helpers in :mod:`pigment_connect.fit`; nothing in those imports it.
"""

from .amortised import AmortisedPigment, AmortisedPigmentModel
from .network import SHIPPED_PRIOR, TissuePrior, load_prior
from .tissue import FEATURES, MAP_NAMES
from .zero_shot import PigmentFit, PigmentModel

__all__ = ["PigmentModel", "PigmentFit", "AmortisedPigmentModel", "TissuePrior", "load_prior", "SHIPPED_PRIOR",
           "FEATURES", "MAP_NAMES", "AmortisedPigment"]
