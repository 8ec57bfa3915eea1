"""Streamline tractography (numba kernels in ``_kernels``, random streams in ``_rng``, Python API in
``tracker``; tissue images for anatomical constraints in ``tissue``; the b-vector check in ``gradcheck``; track-density images in ``density``)."""

from .density import density_map
from .gradcheck import GradientCheck, check_gradients
from .tissue import TissueImage, as_tissue_image
from .tracker import Tracker, interface_mask, seeds_from_mask

__all__ = ["Tracker", "seeds_from_mask", "interface_mask", "TissueImage", "as_tissue_image", "check_gradients",
           "GradientCheck", "density_map"]
