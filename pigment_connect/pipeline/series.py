"""One series through the stages: load → fit → gradient check → register → track → connectome →
metrics, each skipped when its record still holds (:mod:`.records`), each one API call.

Stage names (their records' keys in ``<prefix>_stages.json``) and what their files are called:

==========================  ==================================================================
``load``                    the brain mask, when computed (``space-dwi_desc-brain_mask``)
``fit-tensor``              tensor maps (``model-tensor``), always: the gradient check and the
                            registration use them, whatever the model
``gradcheck``               the b-vector check table (``gradcheck.tsv``)
``fit-<model>``             the PIGMENT maps (``model-pigment``, ``model-pigmentspatial``,
                            ``model-pigmentzeroshot``)
``register``                the template → subject transform (on the tensor FA)
``warp-<atlas>``            the atlas in DWI space, its coverage table and QC image
``track_<entities>``        the tractogram, ``<prefix>_space-dwi_model-M_algo-A_tractography``
``connectome_<entities>``   every atlas × weighting, ``<prefix>_model-M_algo-A_seg-S_meas-W``
``metrics_<entities>``      node and graph metrics of the strength-like connectomes
==========================  ==================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..connectome import build_connectomes, is_strength
from ..connectome.atlases import list_atlases
from ..connectome.register import Registration, register_to_subject
from ..connectome.template_tissue import template_tissue
from ..errors import InputError, PigmentWarning
from ..fit import TensorModel
from ..fit.csd import CsdModel, save_fod_sidecar
from ..fit.msmt import MsmtCsdModel
from ..io.gradients import GradientTable
from ..io.grid import voxel_sizes
from ..io.bids import SubjectScan, derivative_name, repair_label, stage_name
from ..io.connectome import Connectome
from ..io.dwi import load_dwi
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..io.write import atomic_path, save_nifti
from ..pigment import AmortisedPigmentModel, PigmentModel
from ..synthesis import VirtualScan, repair
from ..track import Tracker, check_gradients
from ..track.tissue import FIVE_TISSUE
from .config import PipelineConfig
from .memory import PeakMemory
from .qc_facts import noise_facts, protocol_facts
from .tracking import FOD_ORDER, choose_tracking, fod_method
from .records import StageRecords, file_identity
from .stages import (
    connectome_stem,
    require_parcellation,
    transform_path,
    warp_to_subject,
    write_connectomes,
    write_graph_metrics,
)

__all__ = ["SubjectOutputs", "process_subject", "stage_plan", "series_dir", "records_path"]

log = logging.getLogger(__name__)

GRADIENT_CHECK_SEEDS = 2000  # seeds of the quick tracking behind each of the 24 b-vector candidates


@dataclass
class SubjectOutputs:
    """What one series' run wrote and measured.

    Attributes
    ----------
    files : written (or, for skipped stages, earlier written) paths by kind.
    metrics : graph-level metrics, one row per strength-like connectome.
    timings : seconds per stage that ran (skipped stages are absent).
    skipped : stages whose records held.
    peak_mb : the largest resident size of the process while a stage ran, MiB.
    """

    files: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    peak_mb: float = 0.0


def series_dir(out_dir: Path, scan: SubjectScan) -> Path:
    """``out_dir/sub-X[/ses-Y]/dwi``: where a series' derivatives go."""
    return Path(out_dir) / f"sub-{scan.subject}" / (f"ses-{scan.session}" if scan.session else "") / "dwi"


def records_path(out_dir: Path, scan: SubjectScan) -> Path:
    """The series' stage records, ``<series dir>/<prefix>_stages.json``."""
    return series_dir(out_dir, scan) / f"{scan.prefix}_stages.json"


def stage_plan(config: PipelineConfig) -> dict[str, dict]:
    """Every stage a series runs under ``config`` and the settings that change its files'
    content (the model and tracking algorithm are in the stage names and file names instead)."""
    labels = config.entities
    plan: dict[str, dict] = {"load": {}, "fit-tensor": {}}
    if config.repair != "off":
        plan[repair_stage_name(config)] = {"model": config.repair, "seed": config.seed}
    if config.gradient_check != "off":
        plan["gradcheck"] = {"seed": config.seed, "n_seeds": GRADIENT_CHECK_SEEDS}
    if config.model != "tensor" or config.repair != "off":
        plan[stage_name("fit", labels)] = {"seed": config.seed}
    if config.tracking_model in ("fod", "auto"):
        plan[_on_data("fit-csd", config)] = {"sh_order_max": FOD_ORDER}
        if config.repair != "off" and config.model != "tensor":
            plan[_on_data("fit-tensor", config)] = {}
    if config.atlases:
        plan["register"] = {}
    if template_tissue_wanted(config):
        plan["tissue-template"] = {}
        plan.update({f"warp-{atlas}": {} for atlas in config.atlases})
    plan[stage_name("track", labels)] = {k: getattr(config, k) for k in (
        "step_size", "max_angle", "fa_threshold", "min_length", "max_length", "seeds_per_voxel", "seed",
        "tractogram_format", "anatomical_constraints", "seeding")}
    plan[stage_name("connectome", labels)] = {"assignment": config.assignment, "radius": config.radius}
    plan[stage_name("metrics", labels)] = {"seed": config.seed}
    return plan


def _pigment_model(config: PipelineConfig, gtab, out_dir: Path):
    """The PIGMENT model of this gradient table. ``pigment-zeroshot`` (``-evidence``): a seeded
    :class:`~pigment_connect.pigment.PigmentModel` (with ``evidence=True``), nothing to train. Otherwise the amortised network:
    loaded from ``out_dir/models/`` when a subject with the same table already trained it, else
    trained (seeded) and saved there, so a cohort of one protocol trains once."""
    if config.model in ("pigment-zeroshot", "pigment-zeroshot-evidence"):
        return PigmentModel(gtab, random_state=config.seed, evidence=config.model.endswith("-evidence"))

    table = np.concatenate([np.round(gtab.bvals, 0), np.round(np.abs(gtab.bvecs), 4).ravel()])
    spatial = config.model == "pigment-spatial"
    key = hashlib.sha256(table.tobytes() + str(config.seed).encode()).hexdigest()[:12]
    path = out_dir / "models" / f"amortised-{'spatial-' if spatial else ''}{key}"
    if Path(f"{path}.pt").is_file():
        try:
            return AmortisedPigmentModel.load(path, gtab)
        except InputError as exc:  # trained on another prior or table: train again
            log.warning("not reusing %s: %s", path, exc)
    model = AmortisedPigmentModel(gtab, random_state=config.seed, spatial=spatial)
    model.train()
    model.save(path)
    return model


def _subject_path(pattern: str, bids_dir: Path, scan: SubjectScan) -> Path:
    """``pattern`` (relative to the BIDS root) with ``{prefix}``, ``{subject}``, ``{session}`` and
    ``{folder}`` (``sub-X[/ses-Y]``) filled in."""
    folder = f"sub-{scan.subject}" + (f"/ses-{scan.session}" if scan.session else "")
    return bids_dir / pattern.format(prefix=scan.prefix, subject=scan.subject, session=scan.session or "",
                                     folder=folder)


class _Series:
    """The state of one series while its stages run: lazily loaded data, the records, the result."""

    def __init__(self, scan: SubjectScan, bids_dir: Path, out_dir: Path, config: PipelineConfig, force: bool):
        self.scan, self.bids_dir, self.out_dir, self.config, self.force = scan, Path(bids_dir), Path(out_dir), config, force
        self.dir = series_dir(out_dir, scan)
        self.prefix = scan.prefix
        self.records = StageRecords.load(records_path(out_dir, scan))
        self.plan = stage_plan(config)
        self.result = SubjectOutputs()
        self.mask_file: Path | None = scan.mask
        self.loaded: dict[str, object] = {}  # objects a stage made this run, so the next one need not read them
        self.fit_source: Path | None = None  # the repaired scan, when a repair stage ran

    def stage(self, name: str, inputs: dict, run: Callable[[], tuple[dict, dict]], products=()) -> dict:
        """Skip ``name`` if its record holds, else ``run()`` → (files, extras) and record it."""
        settings = self.plan.get(name, {})
        record = None if self.force else self.records.current(name, inputs=inputs, settings=settings,
                                                              products=products)
        if record is not None:
            self.result.skipped.append(name)
            log.info("%s: %s skipped (its record holds)", self.prefix, name)
            for message in record.get("warnings", []):  # a skipped stage still says what it found
                warnings.warn(message, PigmentWarning, stacklevel=2)
            return record
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, PeakMemory() as memory:
            warnings.simplefilter("always", PigmentWarning)
            files, extras = run()
        seconds = round(time.perf_counter() - start, 3)
        for w in caught:  # on to the caller (the run summary), and kept in the record
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        extras = {**extras, "warnings": list(dict.fromkeys(str(w.message) for w in caught
                                                           if issubclass(w.category, PigmentWarning)))}
        self.result.timings[name] = seconds
        self.result.peak_mb = max(self.result.peak_mb, memory.peak_mb)
        log.info("%s: %s done in %.1f s (peak %.0f MiB)", self.prefix, name, seconds, memory.peak_mb)
        return self.records.save(name, inputs=inputs, settings=settings, products=products, files=files,
                                 seconds=seconds, peak_mb=memory.peak_mb, **extras)

    @cached_property
    def dwi(self):
        return load_dwi(self.scan.dwi, bvals=self.scan.bval, bvecs=self.scan.bvec, mask=self.mask_file)

    @property
    def fit_dwi(self):
        """What the microstructure fits read: the repaired scan when there is one, else the series."""
        if self.fit_source is None:
            return self.dwi
        if "repaired" not in self.loaded:
            self.loaded["repaired"] = load_dwi(self.fit_source, mask=self.mask_file if self.mask_file else self.dwi.mask)
        return self.loaded["repaired"]

    def maps_from(self, record: dict, name: str) -> MicrostructureMaps:
        if name not in self.loaded:
            self.loaded[name] = MicrostructureMaps.from_index(record["files"]["index"])
        return self.loaded[name]  # type: ignore[return-value]


def _save_maps(series: _Series, maps: MicrostructureMaps, name: str) -> tuple[dict, dict]:
    written = maps.save(series.dir, prefix=series.prefix)
    series.loaded[name] = maps
    index = series.dir / derivative_name(series.prefix, "dwimap", ".json", model=maps.model)
    return {"index": str(index), **{k: str(v) for k, v in written.items()}}, {}


def _on_data(stage: str, config: PipelineConfig) -> str:
    """The name of a fit stage of the data the configuration fits: ``fit-csd``, or
    ``fit-csdrepaired`` on the repaired scan (its files' model label takes the same suffix)."""
    return stage + repair_label(config.repair)


def _csd_stage(s: _Series, load_record: dict) -> dict:
    """FODs of order :data:`FOD_ORDER` (of the repaired scan, ``fit-csd<label>``, with a repair;
    ``load_record`` is then the repair stage's) and their BEP016 sidecar, read by MRtrix3 as its own:
    multi-shell multi-tissue CSD (:class:`~pigment_connect.fit.msmt.MsmtCsdModel`,
    ``<prefix>_model-msmt_param-{fod,wm,gm,csf}_dwimap.nii.gz``) on tables with two shells or more,
    else single-shell CSD (:class:`~pigment_connect.fit.csd.CsdModel`, ``_model-csd_param-fod``)."""
    suffix, name = repair_label(s.config.repair), _on_data("fit-csd", s.config)

    def run():
        dwi = s.fit_dwi
        if fod_method(dwi.gtab) == "msmt":
            fit = MsmtCsdModel(dwi.gtab, sh_order_max=FOD_ORDER).fit(dwi)
            maps, facts = fit.maps, {"responses": [np.asarray(r, float).tolist() for r in fit.responses]}
        else:
            fit = CsdModel(dwi.gtab, sh_order_max=FOD_ORDER).fit(dwi)
            maps = MicrostructureMaps({"fod": fit.fod.astype(np.float32)}, fit.affine, "csd", mask=fit.mask)
            facts = {"response": [float(v) for v in fit.response[0]] + [float(fit.response[1])]}
        files, _ = _save_maps(s, dataclasses.replace(maps, model=maps.model + suffix), name)
        save_fod_sidecar(fit, files["fod"])
        return files, facts

    return s.stage(name, {"load": load_record["key"]}, run)


def _with_fod(tensor: MicrostructureMaps, csd: MicrostructureMaps) -> MicrostructureMaps:
    """The tensor maps (FA seeds and stops, as for tensor tracking) with the FODs to follow."""
    return MicrostructureMaps({**tensor.maps, "fod": csd["fod"]}, tensor.affine, tensor.model, mask=tensor.mask)


def _load_stage(s: _Series) -> dict:
    scan = s.scan

    def run():
        dwi = s.dwi
        facts = {"protocol": protocol_facts(dwi)}
        if dwi.mask_source != "computed":
            return {}, facts
        path = s.dir / derivative_name(s.prefix, "mask", ".nii.gz", space=scan.space_entity, desc="brain")
        return {"mask": str(save_nifti(path, dwi.mask, dwi.affine))}, facts

    inputs = {k: file_identity(getattr(scan, k)) for k in ("dwi", "bval", "bvec", "mask")}
    record = s.stage("load", inputs, run)
    if "mask" in record["files"]:
        s.mask_file = Path(record["files"]["mask"])  # a later stage that reads the DWI reuses it
        s.result.files["mask"] = record["files"]["mask"]
    return record


def _gradient_check(s: _Series, tensor_record: dict) -> None:
    """Before tracking, the b-vector orientation check (on the log-linear tensor fit, whose
    tensors permute with the table): a wrong table is a :class:`PigmentWarning`, or with
    ``gradient_check="fail"`` an error naming the .bvec file and the fix. A skipped check
    repeats its recorded verdict."""
    def run():
        check = check_gradients(s.maps_from(tensor_record, "fit-tensor"), n_seeds=GRADIENT_CHECK_SEEDS,
                                random_state=s.config.seed)
        path = s.dir / derivative_name(s.prefix, "gradcheck", ".tsv")
        with atomic_path(path) as tmp:
            check.table.to_csv(tmp, sep="\t", index=False)
        return {"table": str(path)}, {"given_is_best": bool(check.given_is_best), "verdict": check.verdict,
                                      "message": check.message, "fix": check.fix}

    record = s.stage("gradcheck", {"fit-tensor": tensor_record["key"]}, run)
    s.result.files["gradient_check"] = record["files"]["table"]
    if record["given_is_best"]:
        return
    if s.config.gradient_check == "fail":
        raise InputError(record["verdict"], file=s.scan.bvec,
                         fix=f"{record['fix']} Or run with gradient_check='warn' to go on with the given table.")
    warnings.warn(f"{s.scan.bvec}: {record['message']}", PigmentWarning, stacklevel=2)


def template_tissue_wanted(config: PipelineConfig) -> bool:
    """Whether a series is tracked with the template's five tissues: ``anatomical_constraints="auto"``,
    no ``tissue`` image of its own, and atlases registered to it (a run on subject-space
    parcellations only registers nothing)."""
    return config.anatomical_constraints == "auto" and config.tissue is None and bool(config.atlases)


def _tensor_mask(tensor: MicrostructureMaps) -> np.ndarray:
    return tensor.mask if tensor.mask is not None else np.asarray(tensor["fa"]) > 0


def _register_stage(s: _Series, tensor_record: dict) -> dict:
    """Template → subject registration on the tensor FA (affine + SyN), once per series: the atlases
    and the template tissue image share it."""
    if "register_record" in s.loaded:
        return s.loaded["register_record"]  # type: ignore[return-value]
    tensor = lambda: s.maps_from(tensor_record, "fit-tensor")  # noqa: E731

    def register():
        registration = register_to_subject(np.asarray(tensor()["fa"]), tensor().affine, _tensor_mask(tensor()),
                                           source=f"{s.prefix} FA")
        s.loaded["registration"] = registration
        return {"xfm": str(registration.save(transform_path(s.dir, s.prefix)))}, {"mask_dice": registration.mask_dice}

    record = s.stage("register", {"fit-tensor": tensor_record["key"]}, register)
    s.result.files["xfm"] = record["files"]["xfm"]
    s.loaded["register_record"] = record
    return record


def _template_tissue_stage(s: _Series, tensor_record: dict) -> dict:
    """The five-tissue-type image made from the registered template and the subject's FA and MD
    (:func:`~pigment_connect.connectome.template_tissue.template_tissue`), for ACT without a T1."""
    reg_record = _register_stage(s, tensor_record)

    def run():
        registration = s.loaded.get("registration") or Registration.load(reg_record["files"]["xfm"])
        s.loaded["registration"] = registration
        tensor = s.maps_from(tensor_record, "fit-tensor")
        fractions = template_tissue(registration, _tensor_mask(tensor), fa=tensor["fa"], md=tensor["md"])
        path = s.dir / derivative_name(s.prefix, "probseg", ".nii.gz", space=s.scan.space_entity, desc="template5tt")
        save_nifti(path, fractions, tensor.affine)
        ml = fractions.sum(axis=(0, 1, 2)) * float(np.prod(voxel_sizes(tensor.affine))) / 1000.0
        return {"tissue": str(path)}, {"tissue_ml": {k: round(float(v), 1) for k, v in zip(FIVE_TISSUE, ml)}}

    record = s.stage("tissue-template", {"register": reg_record["key"]}, run)
    s.result.files["tissue"] = record["files"]["tissue"]
    return record


def _parcellations(s: _Series, tensor_record: dict) -> list[tuple[Parcellation | Callable, str, dict]]:
    """(parcellation or loader, name, identity) per parcellation: the configured DWI-space one
    and every atlas, registered once (on the tensor FA: the same transform for every model)."""
    config = s.config
    out: list = []
    if config.parcellation is not None:
        path = _subject_path(config.parcellation, s.bids_dir, s.scan)
        parc = Parcellation.load(path)
        out.append((parc, parc.name, file_identity(path)))
    if not config.atlases:
        return out
    tensor = lambda: s.maps_from(tensor_record, "fit-tensor")  # noqa: E731
    mask = lambda: _tensor_mask(tensor())  # noqa: E731
    reg_record = _register_stage(s, tensor_record)
    shipped = set(list_atlases()["name"])
    for atlas in config.atlases:
        def warp(atlas=atlas):
            registration = s.loaded.get("registration") or Registration.load(reg_record["files"]["xfm"])
            s.loaded["registration"] = registration
            parc, files = warp_to_subject(atlas, registration, tensor()["fa"], mask(), s.dir, s.prefix,
                                           space=s.scan.space_entity)
            s.loaded[f"warp-{atlas}"] = parc
            return files, {"name": parc.name}

        identity = atlas if atlas in shipped else file_identity(atlas)
        record = s.stage(f"warp-{atlas}", {"register": reg_record["key"], "atlas": identity}, warp)
        s.result.files[f"parcellation_{record['name']}"] = record["files"]["dseg"]

        def loader(record=record, atlas=atlas):
            return s.loaded.get(f"warp-{atlas}") or Parcellation.load(record["files"]["dseg"], name=record["name"])

        out.append((loader, record["name"], record["key"]))
    return out


def repair_stage_name(config: PipelineConfig) -> str:
    """``repair`` (by the tensor) or ``repair-<model>``: the stage that writes the repaired scan."""
    return "repair" if config.repair == "tensor" else f"repair-{config.repair}"


def _repair_stage(s: _Series, load_record: dict) -> dict:
    """Outlier slices and volumes of the series found and replaced (:func:`~pigment_connect.synthesis.repair`
    with ``config.repair``'s model): ``<prefix>_desc-<label>_dwi.nii.gz`` with its table and sidecar
    (the replaced slices), and ``<prefix>_desc-<label>_outliers.tsv`` (every slice's z-score)."""
    config, label = s.config, repair_label(s.config.repair)

    def run():
        dwi = s.dwi
        result = repair(dwi, model=config.repair, random_state=config.seed)
        n = len(dwi.gtab)
        pairs = result.report.pairs()
        scan = VirtualScan(result.dwi.data, dwi.gtab, dwi.affine, dwi.mask, np.ones(n, bool), np.arange(n),
                           config.repair, repaired=pairs, source=str(s.scan.dwi))
        files = {k: str(v) for k, v in scan.save(s.dir / derivative_name(
            s.prefix, "dwi", ".nii.gz", space=s.scan.space_entity, desc=label)).items()}
        z = result.report.z
        volume, slice_ = np.nonzero(np.isfinite(z))
        table = pd.DataFrame({"volume": volume, "slice": slice_, "bval": dwi.gtab.bvals[volume],
                              "z": z[volume, slice_].round(3),
                              "signal_ratio": np.exp(result.report.log_ratio[volume, slice_]).round(4),
                              "replaced": result.report.slices[volume, slice_]})
        outliers = s.dir / derivative_name(s.prefix, "outliers", ".tsv", space=s.scan.space_entity, desc=label)
        with atomic_path(outliers) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
        files["outliers"] = str(outliers)
        s.loaded["repaired"] = result.dwi
        whole = [int(v) for v in np.flatnonzero(result.report.volumes)]
        if pairs:
            warnings.warn(f"{s.prefix}: {len(pairs)} outlier slices replaced by the {config.repair} prediction"
                          + (f" (volumes {', '.join(map(str, whole))} whole)" if whole else ""), PigmentWarning,
                          stacklevel=2)
        return files, {"repaired_slices": [list(p) for p in pairs], "repaired_volumes": whole,
                       "slices_checked": int(np.isfinite(z).sum())}

    return s.stage(repair_stage_name(config), {"load": load_record["key"]}, run)


def _repaired_tensor_stage(s: _Series, repair_record: dict) -> dict:
    """The tensor of the repaired scan (``fit-tensor<label>``), for FOD tracking's FA when the
    configuration's model is not the tensor."""
    name = _on_data("fit-tensor", s.config)

    def run():
        maps = TensorModel(s.fit_dwi.gtab).fit(s.fit_dwi).maps
        return _save_maps(s, dataclasses.replace(maps, model=maps.model + repair_label(s.config.repair)), name)

    return s.stage(name, {"load": repair_record["key"]}, run)


def process_subject(scan: SubjectScan, bids_dir: Path, out_dir: Path, config: PipelineConfig, *,
                    force: bool = False) -> SubjectOutputs:
    """Run every stage for one DWI series and write its outputs under ``out_dir/<sub>[/<ses>]/dwi``.

    A stage whose record (inputs, settings, package version) still holds is skipped and its
    files reused; ``force`` redoes every stage.
    """
    require_parcellation(config)
    s = _Series(scan, Path(bids_dir), Path(out_dir), config, force)
    entities = config.entities

    load_record = _load_stage(s)
    def fit_tensor():
        files, _ = _save_maps(s, TensorModel(s.dwi.gtab).fit(s.dwi).maps, "fit-tensor")
        return files, {"noise": noise_facts(s.dwi)}

    tensor_record = s.stage("fit-tensor", {"load": load_record["key"]}, fit_tensor)
    if config.gradient_check != "off":  # first: a wrong table fails early
        _gradient_check(s, tensor_record)
    data_record = load_record  # what the microstructure fits read: the series, or its repaired scan
    if config.repair != "off":
        data_record = _repair_stage(s, load_record)
        s.fit_source = Path(data_record["files"]["dwi"])
        s.result.files["dwi_repaired"] = data_record["files"]["dwi"]
    maps_stage, maps_record = "fit-tensor", tensor_record
    if config.model != "tensor" or config.repair != "off":
        maps_stage = stage_name("fit", entities)

        def fit_model():
            dwi = s.fit_dwi
            model = TensorModel(dwi.gtab) if config.model == "tensor" else _pigment_model(config, dwi.gtab, s.out_dir)
            maps = model.fit(dwi).maps
            return _save_maps(s, dataclasses.replace(maps, model=entities["model"]), maps_stage)

        maps_record = s.stage(maps_stage, {"load": data_record["key"]}, fit_model)
    s.result.files.update({f"map_{k}": v for k, v in maps_record["files"].items() if k != "index"})
    maps = lambda: s.maps_from(maps_record, maps_stage)  # noqa: E731

    parcellations = _parcellations(s, tensor_record)
    tissue = None
    if config.tissue is not None:  # the user's own 5TT always wins
        tissue = _subject_path(config.tissue, s.bids_dir, scan)
    elif template_tissue_wanted(config):
        tissue = Path(_template_tissue_stage(s, tensor_record)["files"]["tissue"])
    constraints = ("none" if tissue is None else f"the given tissue image {tissue.name}" if config.tissue
                   else "the template's five tissues, corrected by the subject's FA and MD")
    seeding = "interface" if config.seeding == "interface" or (config.seeding == "auto" and tissue) else "wm"
    log.info("%s: anatomical constraints: %s; seeds in %s", s.prefix, constraints, seeding)

    choice = choose_tracking(config.tracking_model, config.tracking_algorithm,
                             GradientTable(load_record["protocol"]["bvals"], load_record["protocol"]["bvecs"]),
                             config.model)
    log.info("%s: tracking on %s", s.prefix, choice.reason)
    track_maps, track_inputs = maps, {"maps": maps_record["key"]}
    if choice.needs_csd:
        csd_record = _csd_stage(s, data_record)
        fod_tensor = (tensor_record, "fit-tensor")  # FA for the seeds and stops: the tensor of the data tracked
        if config.repair != "off":
            fod_tensor = (maps_record, maps_stage) if config.model == "tensor" else (
                _repaired_tensor_stage(s, data_record), _on_data("fit-tensor", config))
        csd_stage = _on_data("fit-csd", config)
        track_maps = lambda: _with_fod(s.maps_from(fod_tensor[0], fod_tensor[1]),  # noqa: E731
                                       s.maps_from(csd_record, csd_stage))
        track_inputs = {"maps": fod_tensor[0]["key"], "fod": csd_record["key"]}
        s.result.files["map_fod"] = csd_record["files"]["fod"]

    def track():
        tracker = Tracker(algorithm=choice.algorithm, field=choice.field, step_size=config.step_size,
                          max_angle=config.max_angle, fa_threshold=config.fa_threshold,
                          min_length=config.min_length, max_length=config.max_length)
        path = s.dir / derivative_name(s.prefix, "tractography", config.tractogram_format,
                                            space=scan.space_entity, **entities)
        options = dict(seeds_per_voxel=config.seeds_per_voxel, tissue=tissue, random_state=config.seed,
                       seeds="interface" if seeding == "interface" else None)
        if config.tractogram_format == ".tck":  # streamed to disk: memory bounded by one chunk of seeds
            stats = tracker.track_to_file(track_maps(), path, **options)
            n = stats["streamlines"]
        else:
            tractogram = tracker.track(track_maps(), **options)
            tractogram.save(path)
            n, stats = len(tractogram), {}
        return {"tractogram": str(path)}, {"streamlines": int(n), "seeds": stats.get("seeds"),
                                           "stops": stats.get("stops"), "field": choice.field,
                                           "algorithm": choice.algorithm, "choice": choice.reason,
                                           "constraints": constraints, "seeding": seeding}

    track_record = s.stage(stage_name("track", entities), {**track_inputs, "tissue": file_identity(tissue)}, track)
    s.result.files["tractogram"] = track_record["files"]["tractogram"]

    wanted = [f"{name}:{w}" for _, name, _ in parcellations for w in config.weightings]

    def connectomes():
        parcs = [p if isinstance(p, Parcellation) else p() for p, _, _ in parcellations]
        by_atlas = build_connectomes(track_record["files"]["tractogram"], parcs, weightings=config.weightings,
                                     maps=maps(), assignment=config.assignment, radius=config.radius,
                                     reference=(parcs[0].labels.shape, parcs[0].affine))
        s.loaded["connectomes"] = by_atlas
        write_connectomes(by_atlas, s.dir, s.prefix, entities)
        return {f"{a}:{w}": str(s.dir / f"{connectome_stem(s.prefix, a, w, entities)}.npz")
                for a, conns in by_atlas.items() for w in conns}, {}

    conn_inputs = {"track": track_record["key"], "maps": maps_record["key"],
                   "parcellations": {name: identity for _, name, identity in parcellations}}
    conn_record = s.stage(stage_name("connectome", entities), conn_inputs, connectomes, products=wanted)
    for product in wanted:
        name, w = product.split(":", 1)
        key = f"connectome_{w}" if len(parcellations) == 1 else f"connectome_{name}_{w}"
        s.result.files[key] = str(Path(conn_record["files"][product]).with_suffix(".tsv"))

    strengths = [f"{name}:{w}" for _, name, _ in parcellations for w in config.weightings if is_strength(w)]

    def metrics():
        by_atlas = s.loaded.get("connectomes") or {
            name: {w: Connectome.load(conn_record["files"][f"{name}:{w}"], weighting=w, atlas=name)
                   for w in config.weightings}
            for _, name, _ in parcellations}
        table = write_graph_metrics(by_atlas, s.dir, s.prefix, seed=config.seed, entities=entities)
        return {}, {"rows": table.to_dict("records")}

    metrics_record = s.stage(stage_name("metrics", entities), {"connectome": conn_record["key"]}, metrics, products=strengths)
    rows = pd.DataFrame(metrics_record["rows"])
    if len(rows):
        keep = [f"{a}:{w}" in strengths for a, w in zip(rows["atlas"], rows["weighting"])]
        rows = rows[keep].reset_index(drop=True)
    s.result.metrics = rows
    return s.result

