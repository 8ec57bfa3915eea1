"""Settings of a cohort run: one definition per setting (type, choices, default, help), from
which the dataclass, its validation, the TOML file and the command-line flags all come.

A configuration file is TOML with the setting names as top-level keys (``pigment-connect config
--show`` prints the effective one, every setting with its default)::

    model = "tensor"
    atlases = ["schaefer200", "schaefer400"]
    step_size = 0.5
    weightings = ["count", "mean_fa"]
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .._typing import PathLike
from ..connectome.assign import ASSIGNMENT_MODES
from ..connectome.build import BASE_WEIGHTINGS
from ..errors import InputError
from ..io.bids import configuration_labels
from .tracking import TRACKING_MODELS

MODELS = ("tensor", "pigment", "pigment-spatial", "pigment-zeroshot", "pigment-zeroshot-evidence")
"""Microstructure models the pipeline runs (see :class:`PipelineConfig`)."""
TRACKING_ALGORITHMS = ("tensorline", "eigenvector", "deterministic", "probabilistic")
GRADIENT_CHECKS = ("warn", "fail", "off")
ANATOMICAL_CONSTRAINTS = ("none", "auto")
SEEDINGS = ("auto", "wm", "interface")
REPAIRS = ("off", "tensor", "pigment")
"""Who finds and replaces outlier slices before the fits (:func:`~pigment_connect.synthesis.repair`)."""
TRACTOGRAM_FORMATS = (".tck", ".trk", ".trx")
DEFAULT_ATLAS = "schaefer200"
#: the fields a per-series path pattern (``parcellation``, ``tissue``) may name
PATTERN_FIELDS = ("prefix", "subject", "session", "folder")
PATTERN_FIELDS_TEXT = ", ".join("{" + f + "}" for f in PATTERN_FIELDS)
"""Registered to every subject when neither ``atlases`` nor ``parcellation`` is given."""

__all__ = ["PipelineConfig", "load_config", "config_to_toml", "setting_default", "MODELS", "TRACKING_ALGORITHMS", "DEFAULT_ATLAS"]


def _setting(default, help: str, *, choices: tuple | None = None, flag: str | None = None,
             low: float | None = None, high: float | None = None, kind: type | None = None, cli: bool = True,
             const=None):
    """A dataclass field carrying what the flags, the file reader and the validation need
    (``const``: the value of the flag given without one)."""
    meta = {"help": help, "choices": choices, "flag": flag, "low": low, "high": high, "kind": kind, "cli": cli,
            "const": const}
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that changes a series' outputs (see each field's help, also ``pigment-connect
    run --help``).

    Parameters
    ----------
    model : ``"tensor"`` (conventional WLS DTI), ``"pigment"`` (amortised PIGMENT,
        :class:`~pigment_connect.pigment.AmortisedPigmentModel`: tensor, kurtosis and NODDI maps with
        uncertainty from any table; trained once per gradient table into ``<out_dir>/models/``,
        ≈ 20 s on 2 cores), ``"pigment-spatial"`` (the same with 3-D neighbourhoods, better at
        b=0 SNR ≈ 10) or ``"pigment-zeroshot"`` (:class:`~pigment_connect.pigment.PigmentModel`
        fitted to each subject's own signal; the most accurate on real sparse scans, ≈ 140 s per
        2 mm whole brain on 2 cores) or ``"pigment-zeroshot-evidence"`` (the same with
        ``evidence=True``: the prior's isotropic or anisotropic tissue chosen by each voxel's evidence,
        neighbours coupled; better grey matter and error bars at low SNR, white matter's FA worse
        there; up to 1.6× the time at low SNR). Tracking uses the model's tensor; probabilistic draws its ODI.
    tracking_algorithm : ``"tensorline"``, ``"eigenvector"``, ``"deterministic"`` or
        ``"probabilistic"`` (:class:`~pigment_connect.track.Tracker`; on FODs the deterministic ones
        follow the FOD peak, probabilistic draws from the FOD).
    tracking_model : the field tracked: ``"tensor"`` (the model's tensor), ``"pigment"`` (PIGMENT's
        orientation, probabilistic draws spread by its ODI), ``"fod"`` (CSD fibre ODFs, fitted in a
        ``fit-csd`` stage) or ``"auto"`` (FODs where the table has ≥ 28 directions on its highest
        shell, else PIGMENT's orientation with a PIGMENT model, else the tensor; the choice is in
        the log, the track stage's record and the report). See :mod:`.tracking`.
    repair : ``"off"`` (default), ``"tensor"`` or ``"pigment"``: a ``repair`` stage finds outlier
        slices and volumes from the residuals against that model's fit and replaces them by its
        prediction (:func:`~pigment_connect.synthesis.repair`), writing
        ``<prefix>_desc-repaired_dwi.nii.gz`` (+ ``.bval``/``.bvec``/``.json`` listing the slices)
        and ``<prefix>_desc-repaired_outliers.tsv``; the microstructure fits, tracking and
        connectomes then use the repaired scan and say so in their model label
        (``model-tensorrepaired``); registration and the gradient check keep the raw scan.
    gradient_check : b-vector orientation check before tracking
        (:func:`~pigment_connect.track.check_gradients`): ``"warn"``, ``"fail"`` or ``"off"``.
    step_size, max_angle, fa_threshold, min_length, max_length, seeds_per_voxel :
        tracker settings (mm, degrees, FA, mm, mm, count).
    seed : random seed of the seed jitter, the probabilistic draws, PIGMENT and Louvain.
    parcellation : path pattern, relative to the BIDS root, of each series' parcellation in DWI
        space; ``{prefix}`` (every raw entity, ``sub-X[_ses-Y][_dir-AP]...``), ``{subject}``,
        ``{session}`` and ``{folder}`` (the series' BIDS folder, ``sub-X[/ses-Y]``) are filled in.
        Its node table is the same path with ``.tsv``.
    tissue : optional path pattern (as ``parcellation``) of each series' five-tissue-type image
        (MRtrix3 ``5ttgen``, in the DWI's scanner space): anatomically constrained tracking.
    anatomical_constraints : ``"auto"`` (default): ACT on the ``tissue`` image when given, else,
        when atlases are registered to the series, on a five-tissue-type image made from the
        registered template and the subject's FA/MD (a ``tissue-template`` stage,
        :func:`~pigment_connect.connectome.template_tissue.template_tissue`); ``"none"``: no
        constraints (a ``tissue`` image is then refused as contradictory).
    seeding : ``"wm"`` (every white-matter voxel above the FA threshold), ``"interface"`` (the
        white matter touching cortical grey matter: streamlines start where the cortex is) or
        ``"auto"`` (default: interface when the tracking is anatomically constrained, else wm).
        On the shared whole-brain scan (``benchmarks/bench_real_connectome.py``) template ACT with
        interface seeds assigns 78% of the streamlines to two distinct Schaefer-200 nodes (46%
        without ACT, from white-matter seeds).
    atlases : MNI atlases (shipped names, or label images on the template grid) registered to
        each subject's tensor FA (affine + SyN); every atlas comes out of one pass over the
        streamlines. Default: ``("schaefer200",)`` unless ``parcellation`` is given.
    weightings : connectome weightings (:mod:`pigment_connect.connectome.build`).
    assignment, radius : streamline end-point assignment mode and search radius (mm).
    tractogram_format : ``.tck`` (streamed to disk), ``.trk`` or ``.trx``.
    """

    model: str = _setting("tensor", "microstructure model: conventional DTI, or PIGMENT (tensor, kurtosis and NODDI "
                          "maps from any table, sparse ones included: pigment trains one network per table; "
                          "pigment-spatial adds each voxel's neighbours, for low-SNR scans; pigment-zeroshot fits "
                          "each subject's own signal, the most accurate, ≈ 140 s per whole brain on 2 cores; "
                          "pigment-zeroshot-evidence the same, isotropic or anisotropic tissue chosen by each "
                          "voxel's evidence: better grey matter and error bars at low SNR, white matter's FA worse)",
                          choices=MODELS)
    tracking_algorithm: str = _setting("tensorline", "tracking algorithm", choices=TRACKING_ALGORITHMS,
                                       flag="--tracking")
    tracking_model: str = _setting("tensor", "field tracked: the model's tensor, PIGMENT's orientation and ODI, CSD "
                                   "fibre ODFs, or auto (FODs where the table allows CSD, else PIGMENT/tensor)",
                                   choices=TRACKING_MODELS)
    repair: str = _setting("off", "find outlier slices and volumes (dropouts, spikes, motion) from the residuals "
                           "against a fit and replace them by its prediction before the microstructure fits: "
                           "--repair (the tensor's fit) or --repair pigment (PIGMENT zero-shot, closer "
                           "replacements, slower); the repaired scan and the list of slices are written, the "
                           "fits' files are named model-<model>repaired", choices=REPAIRS, const="tensor")
    gradient_check: str = _setting("warn", "b-vector orientation check before tracking: warn when the table looks "
                                   "wrong, fail the series, or off", choices=GRADIENT_CHECKS)
    step_size: float = _setting(0.5, "tracking step, mm", low=0.01, high=10.0)
    max_angle: float = _setting(45.0, "largest turn per step, degrees", low=1.0, high=90.0)
    fa_threshold: float = _setting(0.15, "tracking stops below this FA", low=0.0, high=0.99)
    min_length: float = _setting(10.0, "shorter streamlines are discarded, mm", low=0.0, high=1000.0)
    max_length: float = _setting(250.0, "tracking stops at this length, mm", low=1.0, high=2000.0)
    seeds_per_voxel: int = _setting(2, "seeds per white-matter voxel", low=1, high=1000, kind=int)
    seed: int = _setting(0, "random seed (same seed, same output)", low=0, kind=int, cli=False)
    parcellation: str | None = _setting(None, "per-series parcellation in DWI space, relative to the BIDS root; "
                                        f"{PATTERN_FIELDS_TEXT} are filled in", kind=str)
    anatomical_constraints: str = _setting("auto", "anatomically constrained tracking: auto uses the --tissue image "
                                           "when given, else (when atlases are registered) a five-tissue-type image "
                                           "made from the template and the subject's FA/MD; none tracks without "
                                           "either", choices=ANATOMICAL_CONSTRAINTS)
    seeding: str = _setting("auto", "seed region: wm (white matter above the FA threshold), interface (white matter "
                            "touching cortical grey matter), or auto (interface with tissue constraints, else wm)",
                            choices=SEEDINGS)
    tissue: str | None = _setting(None, "per-series five-tissue-type image (MRtrix3 5ttgen) relative to the BIDS "
                                  f"root, for anatomically constrained tracking; {PATTERN_FIELDS_TEXT} are filled in",
                                  kind=str)
    atlases: tuple[str, ...] | None = _setting(None, "MNI atlas registered to each subject (shipped name, see "
                                               "'pigment-connect atlases list', or a label image on the template "
                                               f"grid); repeatable; default {DEFAULT_ATLAS} unless --parcellation "
                                               "is given", flag="--atlas", kind=str)
    weightings: tuple[str, ...] = _setting(("count", "invnodevol", "length", "mean_fa"),
                                           f"connectome weightings, comma-separated or repeated: {', '.join(BASE_WEIGHTINGS)}, "
                                           "mean_<map>, uncertainty_<map>", flag="--weighting", kind=str)
    assignment: str = _setting("radial", "streamline end-point assignment, as tck2connectome", choices=ASSIGNMENT_MODES)
    radius: float = _setting(2.0, "radial search distance, or reverse search length, mm", low=0.0, high=20.0)
    tractogram_format: str = _setting(".tck", "tractogram file format", choices=TRACTOGRAM_FORMATS)
    extra: dict = _setting({}, "free-form notes kept with the settings (not used by any stage)", cli=False)

    def __post_init__(self) -> None:
        atlases = self.atlases
        if atlases is None:
            atlases = (DEFAULT_ATLAS,) if self.parcellation is None else ()
        elif isinstance(atlases, str):
            atlases = (atlases,)
        object.__setattr__(self, "atlases", tuple(atlases))
        weightings = (self.weightings,) if isinstance(self.weightings, str) else self.weightings
        object.__setattr__(self, "weightings", tuple(weightings))
        for f in fields(self):
            _validate(f, getattr(self, f.name))
            if isinstance(setting_default(f), float):
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        if self.anatomical_constraints == "none" and self.tissue is not None:
            raise InputError("anatomical_constraints='none' contradicts the tissue image given.",
                             fix="drop --tissue, or use --anatomical-constraints auto.")
        if self.tracking_model == "pigment" and not self.model.startswith("pigment"):
            raise InputError(f"tracking_model='pigment' tracks PIGMENT's orientation, but model={self.model!r}.",
                             fix="choose a PIGMENT model (--model pigment), or --tracking-model tensor/fod/auto.")
        if self.tracking_model == "fod" and self.tracking_algorithm in ("tensorline", "eigenvector"):
            raise InputError(f"tracking_algorithm={self.tracking_algorithm!r} follows a tensor; FODs are tracked "
                             "'deterministic' (peak following) or 'probabilistic'.",
                             fix="give --tracking deterministic or --tracking probabilistic.")
        if self.tracking_model in ("tensor", "pigment") and self.tracking_algorithm == "deterministic":
            raise InputError("tracking_algorithm='deterministic' is FOD peak following; on a tensor use "
                             "'tensorline' or 'eigenvector'.", fix="give --tracking tensorline, or --tracking-model fod.")
        if self.max_length <= self.min_length:
            raise InputError(f"max_length ({self.max_length} mm) must exceed min_length ({self.min_length} mm).")
        for w in self.weightings:
            if w not in BASE_WEIGHTINGS and not (w.startswith(("mean_", "uncertainty_")) and w.split("_", 1)[1]):
                raise InputError(f"unknown weighting {w!r}; use {', '.join(BASE_WEIGHTINGS)}, mean_<map> or "
                                 "uncertainty_<map>.")
        if not self.weightings:
            raise InputError("weightings is empty: give at least one (e.g. count).")
        for name in ("parcellation", "tissue"):
            _check_pattern(name, getattr(self, name))

    @property
    def entities(self) -> dict[str, str]:
        """The file-name entities of the settings every tractogram and connectome depends on:
        ``model-`` (``tensor``, ``pigment``, ``pigmentspatial``, ``pigmentzeroshot``,
        ``pigmentzeroshotevidence``) and ``algo-``
        (``tensorline``, ``eigenvector``, ``probabilistic``), so two configurations never share a path."""
        return configuration_labels(self.model, self.tracking_algorithm, self.tracking_model, self.repair)

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @property
    def hash(self) -> str:
        """12 hex digits of the SHA-256 of the sorted JSON settings."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict, *, source: PathLike | None = None) -> PipelineConfig:
        """A configuration from ``values`` (setting name → value; unset ones take their defaults).
        Unknown names and invalid values raise :class:`InputError` naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown pipeline settings {unknown}.", file=source,
                             fix=f"use only {', '.join(sorted(known))} (pigment-connect config --show lists them).")
        try:
            return cls(**values)
        except InputError as exc:
            if source is None:
                raise
            raise InputError(str(exc.args[0]) if exc.args else str(exc), file=source,
                             fix="correct the value (pigment-connect config --show prints valid settings).") from None

    def replace(self, **changes) -> PipelineConfig:
        return PipelineConfig(**{**asdict(self), **changes})


def _check_pattern(name: str, pattern: str | None) -> None:
    """A per-series path pattern may name only :data:`PATTERN_FIELDS`."""
    if pattern is None:
        return
    try:
        named = {field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None}
    except ValueError as exc:
        raise InputError(f"{name} pattern {pattern!r} is malformed ({exc}).",
                         fix="write literal braces as {{ }}; fill in only " + PATTERN_FIELDS_TEXT + ".") from None
    unknown = sorted(named - set(PATTERN_FIELDS))
    if unknown:
        raise InputError(f"{name} pattern {pattern!r} names {unknown}, which no series has.",
                         fix=f"use only {PATTERN_FIELDS_TEXT}.")


def setting_default(f):
    """The default of a :class:`PipelineConfig` field (``None`` for ``atlases``: resolved from
    ``parcellation``)."""
    from dataclasses import MISSING

    return f.default_factory() if f.default is MISSING else f.default


def _validate(f, value) -> None:
    meta = f.metadata
    name = f.name
    default = setting_default(f)
    if value is None:
        if default is None:
            return
        raise InputError(f"{name} must be set.")
    if meta["choices"] is not None:
        if value not in meta["choices"]:
            raise InputError(f"{name} must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}.")
        return
    if isinstance(default, (bool, dict)):
        if not isinstance(value, type(default)):
            raise InputError(f"{name} must be a {type(default).__name__}, got {value!r}.")
        return
    expected = meta["kind"] or type(default)
    if isinstance(value, tuple):
        bad = [v for v in value if not isinstance(v, str) or not v]
        if bad:
            raise InputError(f"{name} must be a list of names, got {list(value)!r}.")
        return
    if expected in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if expected is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise InputError(f"{name} must be a{'n integer' if expected is int else ' number'}, got {value!r}.")
        if (meta["low"] is not None and value < meta["low"]) or (meta["high"] is not None and value > meta["high"]):
            raise InputError(f"{name} must lie in [{meta['low']}, {meta['high']}], got {value!r}.")
    elif expected is str and not isinstance(value, str):
        raise InputError(f"{name} must be text, got {value!r}.")


def load_config(path: PathLike) -> dict:
    """The settings of a TOML configuration file, as a dict for :meth:`PipelineConfig.from_dict`
    (top-level keys, or those of a ``[pipeline]`` table). Lists become tuples."""
    path = Path(path)
    if not path.is_file():
        raise InputError("configuration file not found.", file=path, fix="give the path of a TOML file.")
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}.", file=path,
                         fix="see pigment-connect config --show for the format.") from None
    if set(values) == {"pipeline"} and isinstance(values["pipeline"], dict):
        values = values["pipeline"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def config_to_toml(config: PipelineConfig) -> str:
    """``config`` as a TOML file :func:`load_config` reads back, each setting under its help."""
    lines = [f"# pigment_connect pipeline settings (configuration hash {config.hash})"]
    for f in fields(config):
        value = getattr(config, f.name)
        lines.append(f"# {f.metadata['help']}")
        if value is None:
            lines.append(f"# {f.name} =  (not set)")
        else:
            lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
