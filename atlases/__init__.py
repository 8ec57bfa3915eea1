"""Packaged atlases (data only), read through ``importlib.resources.files("pigment_connect.atlases")``.

One folder per atlas: ``labels.nii.gz`` (MNI space), ``labels.tsv`` (index, name, hemisphere,
network, x, y, z) and ``atlas.json`` (space, resolution, licence, citation). See README.md.
"""
