"""Reading a tractogram file in chunks of streamlines, so that 10 million streamlines can be
processed in bounded memory.

``.tck`` files are read directly (header, then float32 triplets with a NaN row after each
streamline and an Inf row at the end), a block of points at a time. ``.trx`` files are
memory-mapped by trx-python and sliced. ``.trk`` files are loaded whole (nibabel) and sliced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numba import njit

from .._typing import PathLike
from ..errors import InputError
from .tractogram import TRACTOGRAM_FORMATS, Tractogram, tck_grid

__all__ = ["iter_tractogram", "read_tck_header"]

_POINTS_PER_BLOCK = 4_000_000  # 48 MB of float32 triplets


def read_tck_header(path: PathLike) -> dict[str, str]:
    """The ``key: value`` lines of a .tck header (``file`` holds ``. <byte offset>``).

    Raises
    ------
    InputError
        Not a .tck file, no END line, or a data type other than Float32LE/BE.
    """
    path = Path(path)
    header: dict[str, str] = {}
    with open(path, "rb") as f:
        first = f.readline()
        if not first.startswith(b"mrtrix tracks"):
            raise InputError("not an MRtrix3 .tck file (its first line is not 'mrtrix tracks').", file=path)
        for raw in f:
            line = raw.decode("latin-1").strip()
            if line == "END":
                break
            if ":" in line:
                key, value = line.split(":", 1)
                header[key.strip()] = value.strip()
        else:
            raise InputError("the .tck header has no END line (truncated file?).", file=path)
    if header.get("datatype") not in ("Float32LE", "Float32BE"):
        raise InputError(f"unsupported .tck datatype {header.get('datatype')!r}.", file=path,
                         fix="convert with tckconvert to Float32LE.")
    return header


def iter_tractogram(path: PathLike, *, chunk_size: int = 500_000, reference: tuple | None = None
                    ) -> Iterator[Tractogram]:
    """Yield the streamlines of ``path`` as :class:`Tractogram` chunks of up to ``chunk_size``.

    Parameters
    ----------
    path : .tck, .trx or .trk file.
    chunk_size : streamlines per chunk.
    reference : (shape, affine) for .tck files written by other software (TCK stores no grid).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("tractogram file not found.", file=path)
    if chunk_size < 1:
        raise InputError(f"chunk_size must be positive, got {chunk_size}.")
    suffix = path.suffix.lower()
    if suffix not in TRACTOGRAM_FORMATS:
        raise InputError(f"unknown tractogram format {suffix!r}.", file=path, fix=f"use one of {TRACTOGRAM_FORMATS}.")
    if suffix == ".tck":
        yield from _iter_tck(path, chunk_size, reference)
        return
    whole = Tractogram.load(path)
    for start in range(0, len(whole), chunk_size):
        yield whole.select(slice(start, start + chunk_size))


def _iter_tck(path: Path, chunk_size: int, reference) -> Iterator[Tractogram]:
    header = read_tck_header(path)
    shape, affine = tck_grid(header, reference, path)
    try:
        offset = int(header["file"].split()[1])
    except (KeyError, IndexError, ValueError):
        raise InputError("the .tck header has no valid 'file: . <offset>' line.", file=path) from None
    dtype = np.dtype("<f4" if header["datatype"] == "Float32LE" else ">f4")
    pending_points: list[np.ndarray] = []  # blocks of points of streamlines not yet yielded
    pending_lengths: list[np.ndarray] = []
    n_pending = 0
    carry = np.zeros((0, 3), np.float32)  # points of a streamline cut by the block boundary
    with open(path, "rb") as f:
        f.seek(offset)
        done = False
        while not done:
            block = np.fromfile(f, dtype=dtype, count=3 * _POINTS_PER_BLOCK)
            if block.size % 3:
                raise InputError("the .tck data end in the middle of a point (truncated file?).", file=path)
            if block.size == 0:
                if carry.size:
                    raise InputError("the .tck data end without their terminator (truncated file?).", file=path)
                break
            pts = np.concatenate([carry, block.reshape(-1, 3).astype(np.float32, copy=False)])
            stop = np.flatnonzero(np.isinf(pts[:, 0]))
            if stop.size:
                pts = pts[: stop[0]]
                done = True
            complete, lengths, tail = _split(pts)
            if lengths.size:
                # hand out whole chunks of chunk_size streamlines
                start_pt = 0
                start_s = 0
                while start_s < lengths.size:
                    take = min(chunk_size - n_pending, lengths.size - start_s)
                    n_pts = int(lengths[start_s:start_s + take].sum())
                    pending_points.append(complete[start_pt:start_pt + n_pts])
                    pending_lengths.append(lengths[start_s:start_s + take])
                    n_pending += take
                    start_pt += n_pts
                    start_s += take
                    if n_pending >= chunk_size:
                        yield _chunk(pending_points, pending_lengths, affine, shape)
                        pending_points, pending_lengths, n_pending = [], [], 0
                carry = pts[tail:]
            else:
                carry = pts
            if done and carry.size:
                raise InputError("the last .tck streamline has no NaN delimiter (corrupt file?).", file=path)
    if n_pending:
        yield _chunk(pending_points, pending_lengths, affine, shape)


@njit(cache=True)
def _split(pts):
    """Points of the complete streamlines of ``pts`` (NaN rows dropped), their lengths, and the
    row where the unfinished last streamline starts — in one pass."""
    n = pts.shape[0]
    out = np.empty_like(pts)
    lengths = np.empty(n, dtype=np.int64)
    n_out = 0
    n_s = 0
    run = 0
    start = 0
    for k in range(n):
        if np.isnan(pts[k, 0]):
            lengths[n_s] = run
            n_s += 1
            run = 0
            start = k + 1
        else:
            out[n_out, 0] = pts[k, 0]
            out[n_out, 1] = pts[k, 1]
            out[n_out, 2] = pts[k, 2]
            n_out += 1
            run += 1
    committed = n_out - run
    return out[:committed], lengths[:n_s], start


def _chunk(points: list[np.ndarray], lengths: list[np.ndarray], affine, shape) -> Tractogram:
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    flat = np.concatenate(points) if points else np.zeros((0, 3), np.float32)
    return Tractogram(flat, offsets, affine, shape)
