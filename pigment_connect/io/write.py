"""Atomic file output: write to a temporary file in the target folder, then rename.

A reader (or a resumed cohort run) therefore sees either the previous file or the complete new
one, never a half-written file, even if the process is killed mid-write.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import nibabel as nib
import numpy as np

from .._typing import Affine, PathLike

__all__ = ["atomic_path", "save_nifti", "save_json", "save_text", "read_json_object"]


def _suffixes(path: Path) -> str:
    name = path.name
    for double in (".nii.gz", ".tar.gz", ".dense.tsv"):
        if name.endswith(double):
            return double
    return path.suffix


_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
"""The mode of a new file under this process's umask (what ``open(path, "w")`` gives)."""


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary file keeps the target's suffix (``.nii.gz`` included) so that writers which
    choose a format by suffix behave as for the final name. On error the temporary file is removed
    and the target is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_suffixes(path) or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes it private (0600): give it the mode open() would
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_nifti(path: PathLike, data: np.ndarray, affine: Affine) -> Path:
    """Write ``data`` with ``affine`` as NIfTI-1 atomically. Booleans are stored as uint8."""
    arr = np.asarray(data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)


def save_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def read_json_object(path: PathLike) -> dict:
    """The JSON object at ``path``, or ``{}`` when the file is missing, unreadable or holds no
    object (files written by :func:`save_json` are replaced atomically, never half-written)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save_text(path: PathLike, text: str) -> Path:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
