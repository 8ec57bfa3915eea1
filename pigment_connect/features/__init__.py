"""Latent microstructure features for phenotype and genetics studies.

PIGMENT's adapted latent code and tissue features (saved with its maps: ``param-latent``,
``param-features``) and the usual maps, summarised per parcel of any atlas and for the whole brain
(:mod:`.parcels`), then written as tidy tables and PLINK 2 / REGENIE phenotype and covariate files
(:mod:`.study`). Everything is read from a run's derivatives; nothing is fitted here.
"""

from .parcels import DEFAULT_MAPS, STATISTICS, WHOLE_BRAIN, feature_images, parcel_features
from .study import collect_features, phenotype_name, subject_rows, wide_table, write_feature_files

__all__ = ["feature_images", "parcel_features", "collect_features", "wide_table", "subject_rows",
           "write_feature_files", "phenotype_name", "STATISTICS", "WHOLE_BRAIN", "DEFAULT_MAPS"]
