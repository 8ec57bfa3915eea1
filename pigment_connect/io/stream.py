"""Reading and writing tractogram files in chunks of streamlines, so that 10 million streamlines
can be tracked and processed in bounded memory.

:class:`TckStreamWriter` appends chunks to a ``.tck`` file as they are tracked (atomically: the
file appears under its name only once complete).

``.tck`` files are read directly (header, then float32 triplets with a NaN row after each
streamline and an Inf row at the end), a block of points at a time. ``.trx`` files are
memory-mapped by trx-python and sliced. ``.trk`` files are loaded whole (nibabel) and sliced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numba import njit

from .._typing import PathLike
from ..errors import InputError
from .tractogram import TRACTOGRAM_FORMATS, Tractogram, tck_grid, tck_grid_header
from .write import atomic_path

__all__ = ["iter_tractogram", "read_tck_header", "TckStreamWriter"]

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


_COUNT_WIDTH = 12  # digits of the zero-padded streamline count, rewritten in place on close


class TckStreamWriter(contextlib.AbstractContextManager):
    """Write a ``.tck`` file chunk by chunk, never holding more than one chunk.

    The header carries the voxel grid as :meth:`Tractogram.save` writes it (so the file loads
    back without a reference) and a fixed-width ``count`` filled in on close. Data go to a
    temporary file beside ``path``, renamed to ``path`` only when the writer closes without an
    error; an error leaves no partial file.

    Parameters
    ----------
    path : the .tck file to write.
    affine : (4, 4) voxel → RAS+ mm of the tracking grid.
    shape : (X, Y, Z) of the tracking grid.
    header : further ``key: value`` header entries (strings without newlines).

    Examples
    --------
    >>> with TckStreamWriter("out.tck", affine, shape) as writer:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         writer.write(chunk)
    """

    def __init__(self, path: PathLike, affine: np.ndarray, shape: tuple[int, int, int], *,
                 header: dict[str, str] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() != ".tck":
            raise InputError("streamed tractograms are written as .tck.", file=self.path,
                             fix="name the output .tck (convert afterwards with Tractogram.load(...).save('x.trx') "
                                 "or MRtrix3 tckconvert if another format is needed).")
        self.count = 0
        self.n_points = 0
        self._affine = np.asarray(affine, dtype=np.float64)
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._file = open(tmp, "wb")
        lines = ["mrtrix tracks", "datatype: Float32LE", f"count: {0:0{_COUNT_WIDTH}d}"]
        lines += [f"{k}: {v}" for k, v in {**tck_grid_header(self._affine, shape), **(header or {})}.items()]
        text = "\n".join(lines) + "\n"
        # "file: . <offset>" names the byte where data start; leave room for its digits, pad with NULs
        offset = -(-(len(text.encode()) + len("file: . \nEND\n") + 10) // 4) * 4
        blob = (text + f"file: . {offset}\nEND\n").encode()
        blob += b"\0" * (offset - len(blob))
        self._count_at = blob.index(b"count: ") + len(b"count: ")
        self._file.write(blob)

    def write(self, chunk: Tractogram) -> None:
        """Append the streamlines of ``chunk`` (RAS+ mm; its grid must be the writer's)."""
        if len(chunk) == 0:
            return
        if np.abs(np.asarray(chunk.affine) - self._affine).max() > 1e-6:
            raise InputError("a chunk on another voxel grid was written to a streamed tractogram.", file=self.path)
        counts = chunk.n_points
        out = np.full((len(chunk.points) + len(counts), 3), np.nan, dtype="<f4")
        rows = np.arange(len(chunk.points)) + np.repeat(np.arange(len(counts)), counts)
        out[rows] = chunk.points
        self._file.write(out.tobytes())
        self.count += len(chunk)
        self.n_points += len(chunk.points)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._file.write(np.full((1, 3), np.inf, dtype="<f4").tobytes())
                self._file.seek(self._count_at)
                self._file.write(f"{self.count:0{_COUNT_WIDTH}d}".encode())
        finally:
            self._file.close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False
