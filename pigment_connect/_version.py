"""The installed package's version (a foundation module: every part may read it without
importing the package root, which imports the parts)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pigment-connect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
