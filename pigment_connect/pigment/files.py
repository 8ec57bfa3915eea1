"""Weights files of trained networks: a torch state (``<prefix>.pt``, written atomically) beside a
JSON header (``<prefix>.json``) that records the state's sha256, so that a corrupt or replaced file
is refused on loading."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from .._typing import PathLike
from ..errors import InputError
from ..io.write import atomic_path, save_json

__all__ = ["save_weights", "load_weights"]


def save_weights(prefix: PathLike, state: dict, header: dict) -> Path:
    """Write ``state`` to ``<prefix>.pt`` and ``header`` plus the weights' ``sha256`` to
    ``<prefix>.json``, both atomically; the same state gives the same bytes. Returns the weights' path."""
    prefix = Path(prefix)
    weights = prefix.with_suffix(".pt")
    buffer = io.BytesIO()  # saved from memory: the archive inside does not carry the temporary file's random name
    torch.save(state, buffer)
    with atomic_path(weights) as tmp:
        tmp.write_bytes(buffer.getvalue())
    save_json(prefix.with_suffix(".json"), {**header, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()})
    return weights


def load_weights(prefix: PathLike, *, what: str, missing_fix: str, corrupt_fix: str,
                 sha_required: bool = True) -> tuple[dict, dict, Path]:
    """State dict (on CPU), header and weights path of ``<prefix>.pt`` / ``<prefix>.json``.

    Raises :class:`InputError` naming the file when either is missing, or when the weights' sha256
    differs from the header's (a header without one passes only if not ``sha_required``).
    ``what`` names the kind of file in messages.
    """
    prefix = Path(prefix)
    weights, header_path = prefix.with_suffix(".pt"), prefix.with_suffix(".json")
    for p in (weights, header_path):
        if not p.is_file():
            raise InputError(f"{what} file not found.", file=p, fix=missing_fix)
    header = json.loads(header_path.read_text())
    expected = header.get("sha256")
    if (expected is not None or sha_required) and hashlib.sha256(weights.read_bytes()).hexdigest() != expected:
        raise InputError(f"{what} weights do not match their header's sha256 (corrupt or replaced file).",
                         file=weights, fix=corrupt_fix)
    return torch.load(weights, map_location="cpu", weights_only=True), header, weights
