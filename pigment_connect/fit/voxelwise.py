"""What every conventional voxel-wise fitter shares: validated voxel extraction, chunking with a
progress bar, device/dtype choice, and scattering results back onto the grid."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import FitError, InputError
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..physics.protocol import default_device

__all__ = ["VoxelData", "extract_voxels", "run_chunked", "resolve_device", "signal_floor", "gradient_tensors",
           "check_fit_method"]


@dataclass(frozen=True)
class VoxelData:
    """Masked signal of one fit call.

    Attributes
    ----------
    signal : (V, N) float64, the masked voxels' measurements.
    mask : (...) bool, the voxels fitted.
    affine : (4, 4) or None (bare arrays carry none).
    source : where the data came from (for messages).
    """

    signal: np.ndarray
    mask: np.ndarray
    affine: np.ndarray | None
    source: str | None

    def scatter(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(V, ...) per-voxel values → (*mask.shape, ...) with ``fill`` outside the mask."""
        out = np.full(self.mask.shape + values.shape[1:], fill, dtype=values.dtype)
        out[self.mask] = values
        return out


def extract_voxels(dwi: DiffusionData | np.ndarray, gtab: GradientTable, mask: np.ndarray | None) -> VoxelData:
    """Validate ``dwi`` against the model's table and return its masked voxels.

    Raises
    ------
    InputError
        Another gradient table, a different number of volumes, a mask of another shape.
    FitError
        NaN/Inf inside the mask (load with :func:`~pigment_connect.io.load_dwi`, which masks them).
    """
    if isinstance(dwi, DiffusionData):
        data, affine, source = dwi.data, dwi.affine, dwi.source
        if mask is None:
            mask = dwi.mask
        if dwi.gtab is not gtab and (
            len(dwi.gtab) != len(gtab)
            or not np.allclose(dwi.gtab.bvals, gtab.bvals)
            or not np.allclose(dwi.gtab.bvecs, gtab.bvecs)
        ):
            raise InputError("the data's gradient table differs from the model's.", file=dwi.source,
                             fix="build the model from dwi.gtab.")
    else:
        data, affine, source = np.asarray(dwi), None, None
    if data.shape[-1] != len(gtab):
        raise InputError(f"data has {data.shape[-1]} volumes, the model's table {len(gtab)}.", file=source)
    spatial = data.shape[:-1]
    mask = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != spatial:
        raise InputError(f"mask shape {mask.shape} differs from the data's {spatial}.", file=source)
    signal = np.asarray(data[mask], dtype=np.float64)
    if signal.size and not np.all(np.isfinite(signal)):
        raise InputError("the signal holds NaN or Inf inside the mask.", file=source,
                         fix="load it with load_dwi(), which masks such voxels, or fix the image.")
    return VoxelData(signal, mask, affine, source)


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``None`` → CUDA when available, else CPU."""
    return torch.device(device) if device is not None else default_device()


def signal_floor(signal: np.ndarray, given: float | None) -> float:
    """Floor applied before logarithms: ``given``, else the smallest positive value (1e-4 if none)."""
    if given is not None:
        return float(given)
    positive = signal[signal > 0]
    return float(positive.min()) if positive.size else 1e-4


def gradient_tensors(gtab: GradientTable, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """b-values (N,) and b-vectors (N, 3) of ``gtab`` as tensors."""
    return (torch.tensor(gtab.bvals, dtype=dtype, device=device), torch.tensor(gtab.bvecs, dtype=dtype, device=device))


def check_fit_method(fit_method: str, allowed: tuple[str, ...]) -> None:
    if fit_method not in allowed:
        raise InputError(f"fit_method must be one of {allowed}, got {fit_method!r}.")


NOISE_MODELS = ("gaussian", "rician")
"""The likelihoods of the non-linear fits: least squares, or Rician (magnitude data)."""


def check_noise(fit_method: str, noise: str | None, allowed: tuple[str, ...], *,
                default: str = "gaussian") -> tuple[str, str]:
    """``(fit_method, noise)`` checked the same way for every model.

    ``noise`` is the likelihood of a non-linear fit: ``"gaussian"`` (least squares) or
    ``"rician"``; the log-linear ``"WLS"``/``"OLS"`` have none (``"rician"`` with them is an
    error). ``fit_method="RNLLS"``, this package's old spelling of a Rician fit, means
    ``fit_method="NLLS", noise="rician"`` for one more release, with a DeprecationWarning: DIPY's
    ``"RNLLS"`` is *robust* NLLS, another method.
    """
    if fit_method == "RNLLS":
        warnings.warn("fit_method='RNLLS' is deprecated (DIPY's RNLLS is robust NLLS): use fit_method='NLLS', "
                      "noise='rician'.", DeprecationWarning, stacklevel=3)
        if noise not in (None, "rician"):
            raise InputError(f"fit_method='RNLLS' is a Rician fit; it cannot take noise={noise!r}.")
        fit_method, noise = "NLLS", "rician"
    check_fit_method(fit_method, allowed)
    noise = default if noise is None else noise
    if noise not in NOISE_MODELS:
        raise InputError(f"noise must be one of {NOISE_MODELS}, got {noise!r}.")
    if noise == "rician" and fit_method in ("WLS", "OLS"):
        raise InputError(f"a Rician likelihood needs a non-linear fit: fit_method='NLLS', not the log-linear "
                         f"{fit_method!r}.")
    return fit_method, noise


def check_random_state(random_state: int, seed: int | None = None) -> int:
    """The integer seed of a model's random draws, ``random_state`` (scikit-learn's name, the
    package's everywhere); the old ``seed=`` keyword still works for one release, with a
    DeprecationWarning."""
    if seed is not None:
        warnings.warn("seed= is deprecated: use random_state=.", DeprecationWarning, stacklevel=3)
        random_state = seed
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise InputError(f"random_state must be a non-negative integer, got {random_state!r}.")
    return int(random_state)


DTYPES = (torch.float32, torch.float64)


def check_dtype(dtype: torch.dtype) -> torch.dtype:
    """A model's compute precision: torch.float32 or torch.float64, else :class:`InputError`."""
    if dtype not in DTYPES:
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}.")
    return dtype


def check_chunk_size(chunk_size: int | None) -> int | None:
    """``chunk_size`` as an int (None: the model's default), or :class:`InputError` if below 1."""
    if chunk_size is None:
        return None
    if chunk_size < 1:
        raise InputError(f"chunk_size must be ≥ 1 voxel, got {chunk_size}.")
    return int(chunk_size)


def default_chunk_size(device: torch.device, bytes_per_voxel: float, *, cpu: int, most: int = 65536) -> int:
    """Voxels per batch when the caller gives none.

    On a CPU, ``cpu`` (larger batches only add memory traffic there). On a GPU, where a batch is
    one set of kernel launches whatever its size and small batches leave the device idle, the
    largest power of two ≤ ``most`` whose working set (``bytes_per_voxel`` each) fits in a quarter
    of the device's free memory, and never fewer than ``cpu``.
    """
    if device.type != "cuda":
        return int(cpu)
    free, _total = torch.cuda.mem_get_info(device)
    fits = max(int(free / 4 / bytes_per_voxel), 1)
    return int(max(cpu, min(most, 1 << (fits.bit_length() - 1))))


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def run_chunked(fn: Callable[[torch.Tensor], dict[str, torch.Tensor]], signal: np.ndarray, *, chunk_size: int,
                device: torch.device, dtype: torch.dtype, progress: bool, desc: str) -> dict[str, np.ndarray]:
    """Apply ``fn`` to (chunk, N) tensors of ``signal`` and concatenate its outputs on the CPU.

    Memory is bounded by ``chunk_size``; ``progress`` shows a bar in voxels.
    """
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=len(signal), desc=desc, unit="vox", disable=not progress, leave=False) as bar, torch.no_grad():
        for sl in _chunks(len(signal), chunk_size):
            chunk = torch.as_tensor(signal[sl], dtype=dtype, device=device)
            for name, value in fn(chunk).items():
                parts.setdefault(name, []).append(value.detach().to("cpu", torch.float64).numpy())
            bar.update(sl.stop - sl.start)
    if not parts:
        return {}
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def need_affine(affine: np.ndarray | None) -> np.ndarray:
    """``affine`` (4×4), or :class:`FitError` when a fit of a bare array is asked for maps."""
    if affine is None:
        raise FitError("maps need an affine: fit a DiffusionData, not a bare array.")
    return affine


def sliced_grid(index, mask: np.ndarray, affine: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The mask and affine of ``fit[index]`` (DIPY-style slicing of a fit): the affine shifted to
    the first voxel kept where ``index`` is plain slices (step 1) of the three axes, None otherwise
    (a voxel or a strided selection has no grid of its own: its maps cannot be written)."""
    idx = np.index_exp[index]
    new_mask = mask[idx]
    new_affine = None
    plain = all(isinstance(i, slice) and i.step in (None, 1) for i in idx)
    if affine is not None and plain and len(idx) <= 3 and new_mask.ndim == 3:
        starts = [i.indices(n)[0] for i, n in zip(idx, mask.shape)] + [0] * (3 - len(idx))
        shift = np.eye(4)
        shift[:3, 3] = starts
        new_affine = np.asarray(affine) @ shift
    return new_mask, new_affine
