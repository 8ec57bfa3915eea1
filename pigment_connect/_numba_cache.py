"""Where numba keeps the compiled kernels of ``@njit(cache=True)``: outside the installed package.

numba's default is a ``__pycache__`` folder beside each source file. Inside ``site-packages``
that leaves files pip never recorded (a later ``pip install -e`` removes the package but not
them, and the left-over folder then shadows the editable install as a namespace package), and in
a read-only install (container, HPC module) numba cannot cache at all and the import fails.

So, unless the user chose a folder with ``NUMBA_CACHE_DIR``, the cache goes to the first
writable one of ``$XDG_CACHE_HOME/pigment_connect/numba`` (``~/.cache/...`` when unset) and
``<tempdir>/pigment_connect-numba-<uid>``. numba keys each cached kernel by its source file's
full path and modification time, so several installs can share the folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

__all__ = ["numba_cache_dir", "configure_numba_cache"]


def _candidates() -> list[Path]:
    out = []
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        base = Path(xdg) if xdg else Path.home() / ".cache"
        out.append(base / "pigment_connect" / "numba")
    except RuntimeError:  # no home directory can be determined
        pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"pigment_connect-numba-{uid}")
    return out


def _writable(folder: Path) -> bool:
    """True when ``folder`` exists (or can be made) and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def numba_cache_dir() -> Path | None:
    """The folder numba caches our kernels in: ``NUMBA_CACHE_DIR`` if set, else the first
    writable candidate (see the module docstring); None when no candidate is writable."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return Path(chosen)
    return next((c for c in _candidates() if _writable(c)), None)


def configure_numba_cache() -> Path | None:
    """Point numba's cache at :func:`numba_cache_dir` (environment and, when numba is already
    imported, its live config); called once when :mod:`pigment_connect` is imported, before any
    kernel is compiled. Returns the folder (None: nothing writable, numba keeps its own rules)."""
    folder = numba_cache_dir()
    if folder is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)  # inherited by spawned worker processes
    if "numba" in sys.modules:  # imported before us: its config has read the environment already
        from numba.core import config

        config.CACHE_DIR = str(folder)
    return folder
