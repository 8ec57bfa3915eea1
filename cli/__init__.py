"""The ``pigment-connect`` command (installed as ``pigment_connect.cli``): a thin layer over the API."""
