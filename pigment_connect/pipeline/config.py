"""Settings of a cohort run, hashed so outputs record exactly what produced them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from ..errors import InputError

MODELS = ("tensor", "pigment", "pigment-spatial", "pigment-zeroshot")
"""Microstructure models the pipeline runs (see :class:`PipelineConfig`)."""

__all__ = ["PipelineConfig"]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that changes a subject's outputs.

    Parameters
    ----------
    model : microstructure model: ``"tensor"`` (conventional WLS DTI) or ``"pigment"`` (amortised
        PIGMENT, :class:`~pigment_connect.fit.AmortisedPigment`: tensor, kurtosis and NODDI maps
        with uncertainty from any table, sparse ones included; trained once per gradient table
        into ``<out_dir>/models/``, ≈ 20 s on 2 cores, and reused by every subject of that table).
        Tracking then uses the PIGMENT tensor, and probabilistic draws its ODI. ``"pigment-spatial"``:
        the same with spatial context (``AmortisedPigment(spatial=True)``, 3-D neighbourhoods; better
        maps at low SNR, b=0 SNR ≈ 10, slightly worse at high SNR; ≈ 40 s more training).
        ``"pigment-zeroshot"``: PIGMENT fitted to each subject's own signal
        (:class:`~pigment_connect.fit.PigmentModel`, no network to train; the most accurate
        PIGMENT maps on real sparse scans — white-matter FA error on a real 1 b0 + 6 subset 0.043
        against the amortised network's 0.080 — at ≈ 85 s per 2 mm whole brain on 2 cores, 4 s
        on a GPU).
    tracking_algorithm : ``"tensorline"``, ``"eigenvector"`` or ``"probabilistic"`` (see
        :class:`~pigment_connect.track.Tracker`).
    gradient_check : before tracking, score the 24 axis permutations/flips of the b-vectors by
        fibre coherence (:func:`~pigment_connect.track.check_gradients`): ``"warn"`` (default) logs
        and records a warning when the given table is not the best, ``"fail"`` fails the subject
        with the fix, ``"off"`` skips the check.
    step_size, max_angle, fa_threshold, min_length, max_length, seeds_per_voxel :
        tracker settings (mm, degrees, FA, mm, mm, count).
    seed : random seed of the seed jitter (and of Louvain in the metrics).
    parcellation : path pattern, relative to the BIDS root, of each subject's parcellation in DWI
        space; ``{prefix}`` (``sub-X[_ses-Y]``), ``{subject}`` and ``{session}`` are filled in.
        Its node table is the same path with ``.tsv``.
    tissue : optional path pattern (as ``parcellation``) of each subject's five-tissue-type image
        (MRtrix3 ``5ttgen`` output, in the DWI's scanner space, any resolution): tracking is then
        anatomically constrained (see :mod:`pigment_connect.track.tissue`).
    atlases : MNI atlases (shipped names such as ``"schaefer200"``, or label-image paths on the
        template grid) registered to each subject's FA (affine + SyN) and used besides, or instead
        of, ``parcellation``; every atlas comes out of one pass over the streamlines.
    weightings : connectome weightings (see :mod:`pigment_connect.connectome.build`).
    assignment, radius : streamline end point assignment mode and search radius (mm).
    tractogram_format : ``.tck``, ``.trk`` or ``.trx``.
    """

    model: str = "tensor"
    tracking_algorithm: str = "tensorline"
    gradient_check: str = "warn"
    step_size: float = 0.5
    max_angle: float = 45.0
    fa_threshold: float = 0.15
    min_length: float = 10.0
    max_length: float = 250.0
    seeds_per_voxel: int = 2
    seed: int = 0
    parcellation: str | None = None
    tissue: str | None = None
    atlases: tuple[str, ...] = ()
    weightings: tuple[str, ...] = ("count", "invnodevol", "length", "mean_fa")
    assignment: str = "radial"
    radius: float = 2.0
    tractogram_format: str = ".tck"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"model must be one of {', '.join(map(repr, MODELS))}, got {self.model!r}.")
        if self.tracking_algorithm not in ("tensorline", "eigenvector", "probabilistic"):
            raise InputError(f"tracking_algorithm must be 'tensorline', 'eigenvector' or 'probabilistic', "
                             f"got {self.tracking_algorithm!r}.")
        if self.gradient_check not in ("warn", "fail", "off"):
            raise InputError(f"gradient_check must be 'warn', 'fail' or 'off', got {self.gradient_check!r}.")
        if self.tractogram_format not in (".tck", ".trk", ".trx"):
            raise InputError(f"tractogram_format must be .tck, .trk or .trx, got {self.tractogram_format!r}.")
        object.__setattr__(self, "weightings", tuple(self.weightings))
        object.__setattr__(self, "atlases", tuple(self.atlases))

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @property
    def hash(self) -> str:
        """12 hex digits of the SHA-256 of the sorted JSON settings."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict) -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown pipeline settings {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def replace(self, **changes) -> PipelineConfig:
        return PipelineConfig(**{**asdict(self), **changes})
