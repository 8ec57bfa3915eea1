"""One series' QC page and QC numbers, from its derivatives (:mod:`.collect`).

Sections: summary (per configuration: status, error, warnings), input (protocol, q-space,
brain mask on S0, gradient check), maps (FA, colour-FA and each model's main maps with their
uncertainty; ranges in white matter), registration (atlas borders and the warped template brain
on FA in three planes; mask Dice; coverage with lost labels marked), tracking (tract density on
FA, lengths, stop reasons, streamlines assigned), connectomes (heatmaps ordered by network,
degree and strength, graph metrics), and the run itself (stage times, peak memory, log,
settings, package versions). A section whose files are missing says so: a failed series shows
what it reached.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from ..connectome.atlases import load_template
from ..connectome.build import is_strength
from ..connectome.register import Registration
from ..io.connectome import Connectome
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..io.bids import derivative_name
from ..io.stream import iter_tractogram
from ..io.write import read_json_object
from ..track.density import density_map
from . import figures
from .collect import SeriesRecord, read_table, white_matter
from .html import Block, Section, figure, note, preformatted, table

__all__ = ["series_sections", "series_qc", "QC_COLUMNS"]

QC_COLUMNS = ("mask_ml", "median_wm_fa", "snr_b0", "registration_dice", "labels_lost", "streamlines",
              "fraction_assigned", "edge_density")
"""The QC numbers of each series (and configuration), in the cohort table and ``group_qc.tsv``."""

MAIN_MAPS = ("fa", "md", "mk", "ndi", "odi", "fwf")


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


# ---- QC numbers -------------------------------------------------------------------------------

def _coverage(series: SeriesRecord, atlas: str) -> pd.DataFrame | None:
    return read_table(series.file(f"warp-{atlas}", "coverage"))


def _dice(series: SeriesRecord) -> float | None:
    path = series.file("register", "xfm")
    if path is None:
        return None
    with np.load(path) as z:
        return float(z["mask_dice"]) if "mask_dice" in z else None


def _connectome_sidecar(path) -> dict:
    """The JSON beside a connectome (streamlines assigned, unassigned ...), ``{}`` without one."""
    return {} if path is None else read_json_object(path.with_suffix(".json"))


def series_qc(series: SeriesRecord) -> list[dict]:
    """The QC numbers (:data:`QC_COLUMNS`) of each configuration run on ``series``: brain-mask
    volume (mL), median white-matter FA, b=0 SNR, brain-mask Dice of the registration, labels
    lost (vanished or below half their template volume, every atlas), streamlines, the fraction
    assigned to a node pair and the count connectome's edge density (first parcellation)."""
    tensor = series.maps("fit-tensor")
    load = series.stage("load") or {}
    noise = (series.stage("fit-tensor") or {}).get("noise") or {}
    base = {"series": series.prefix, "subject": series.subject, "session": series.session,
            "mask_ml": (load.get("protocol") or {}).get("mask_ml"), "snr_b0": noise.get("snr_b0"),
            "registration_dice": _dice(series)}
    if tensor is not None:
        fa = np.asarray(tensor["fa"], float)
        wm = white_matter(fa, tensor.mask)
        base["median_wm_fa"] = float(np.median(fa[wm])) if wm.any() else None
    lost = [(cov["status"] != "ok").sum() for atlas in series.parcellations()
            if (cov := _coverage(series, atlas)) is not None]
    base["labels_lost"] = int(sum(lost)) if lost else None
    rows = []
    for config in series.runs.values():
        row = {**base, "configuration": config.hash, "model": config.model, "algo": config.algo,
               "status": config.status, "warnings": config.record.get("warnings", ""),
               "error": config.record.get("error", ""), "seconds": config.record.get("seconds"),
               "peak_mb": config.record.get("peak_mb")}
        track = series.stage(config.stage_name("track")) or {}
        row["streamlines"] = track.get("streamlines")
        conn = series.stage(config.stage_name("connectome")) or {}
        counts = sorted(k for k in (conn.get("files") or {}) if k.endswith(":count"))
        row["fraction_assigned"] = row["edge_density"] = None
        if counts:
            path = series.file(config.stage_name("connectome"), counts[0])
            side = _connectome_sidecar(path)
            if side.get("n_streamlines"):
                row["fraction_assigned"] = side["n_assigned"] / side["n_streamlines"]
            if path is not None:
                w = Connectome.load(path).weights
                n = len(w)
                row["edge_density"] = float((np.triu(w, 1) > 0).sum() / max(1, n * (n - 1) / 2))
        rows.append(row)
    if not rows:
        rows.append({**base, "configuration": "", "status": "unknown"})
    return rows


# ---- sections ---------------------------------------------------------------------------------

def _summary(series: SeriesRecord) -> Section:
    blocks: list[Block] = []
    rows, classes = [], []
    for config in series.runs.values():
        r = config.record
        rows.append([config.hash, config.model, config.algo, config.status, _fmt(r.get("seconds")),
                     _fmt(r.get("peak_mb"), 4), r.get("error") or "", r.get("warnings") or ""])
        classes.append("bad" if config.status == "failed" else ("warn" if r.get("warnings") else ""))
    blocks.append(table(["configuration", "model", "tracking", "status", "seconds", "peak MiB", "error",
                         "warnings"], rows, row_classes=classes))
    return Section("summary", "Summary", blocks)


def _input(series: SeriesRecord, tensor: MicrostructureMaps | None) -> Section:
    load = series.stage("load")
    if load is None:
        return Section("input", "Input", [note("the series' data were not loaded (see the error above).", "bad")])
    protocol = load.get("protocol") or {}
    blocks: list[Block] = []
    if protocol:
        rows = [["b=0", protocol["n_b0"]]] + [[f"b={b:.0f} s/mm²", n] for b, n in protocol["shells"]]
        noise = (series.stage("fit-tensor") or {}).get("noise") or {}
        blocks.append(table(["shell", "volumes"], rows))
        blocks.append(table(["grid", "voxel (mm)", "brain mask (mL)", "noise σ", "b=0 SNR"],
                            [["×".join(map(str, protocol["shape"])), "×".join(_fmt(v) for v in protocol["voxel_mm"]),
                              _fmt(protocol["mask_ml"], 4), _fmt(noise.get("sigma")), _fmt(noise.get("snr_b0"))]]))
        blocks.append(figure(figures.qspace(GradientTable(np.array(protocol["bvals"]), np.array(protocol["bvecs"]))),
                             "q-space sampling: each measured direction (and its opposite) on its shell"))
    if tensor is not None and "s0" in tensor.maps:
        blocks.append(figure(figures.planes(np.asarray(tensor["s0"]), tensor.affine, contour=tensor.mask,
                                            title="brain mask (red) on the b=0 signal (tensor S0)"),
                             "brain mask contour on the b=0 image, three planes, oriented from the affine"))
    for name in ("repair", "repair-pigment"):
        blocks += _repair(series, name)
    check = series.stage("gradcheck")
    if check is not None:
        blocks.append(note(check.get("verdict") or check.get("message") or "", "" if check.get("given_is_best") else "bad"))
        scores = read_table(series.file("gradcheck", "table"))
        if scores is not None:
            blocks.append(table(list(scores.columns), scores.head(6).map(_fmt).values.tolist(),
                                caption="gradient check: the best 6 of the candidate tables"))
    return Section("input", "Input", blocks)


def _repair(series: SeriesRecord, stage: str) -> list[Block]:
    """What a repair stage replaced, and every slice's outlier score."""
    record = series.stage(stage)
    if record is None:
        return []
    pairs, whole = record.get("repaired_slices") or [], record.get("repaired_volumes") or []
    model = record["settings"].get("model", "tensor")
    text = (f"Repair ({model} fit): {len(pairs)} of {_fmt(record.get('slices_checked'))} slices replaced by the "
            "prediction" + (f"; volumes {', '.join(map(str, whole))} whole" if whole else "")
            + (": " + ", ".join(f"volume {v} slice {k}" for v, k in pairs[:12]) + (" …" if len(pairs) > 12 else "")
               if pairs else "") + ".")
    blocks: list[Block] = [note(text, "bad" if len(pairs) > 0.05 * (record.get("slices_checked") or 1) else "")]
    scores = read_table(series.file(stage, "outliers"))
    if scores is not None and len(scores):
        blocks.append(figure(figures.outlier_map(scores["volume"].to_numpy(), scores["slice"].to_numpy(),
                                                 scores["z"].to_numpy(), scores["replaced"].to_numpy(bool),
                                                 title="outlier scores per volume and slice"),
                             "each slice of each volume: how far its signal departs from the fit (z), replaced ones "
                             "circled; a column of colour is a corrupted volume, a lone dot a dropout"))
    return blocks


def _ranges(maps: MicrostructureMaps, wm: np.ndarray, names) -> Block:
    rows = []
    for name in names:
        values = np.asarray(maps[name], float)[wm]
        values = values[np.isfinite(values)]
        if len(values):
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            rows.append([name, _fmt(p50), f"{_fmt(p5)} – {_fmt(p95)}"])
    return table(["map", "white-matter median", "5th – 95th percentile"], rows,
                 caption="white matter: brain voxels with tensor FA ≥ 0.2")


def _maps_section(series: SeriesRecord, tensor: MicrostructureMaps | None) -> Section:
    if tensor is None:
        return Section("maps", "Maps", [note("no tensor maps (the fit did not run).", "bad")])
    fa = np.asarray(tensor["fa"], float)
    wm = white_matter(fa, tensor.mask)
    blocks: list[Block] = [figure(figures.mosaic(fa, tensor.affine, vmin=0, vmax=1, reference=tensor.mask,
                                                 title="tensor FA", colorbar_label="FA"), "FA mosaic")]
    if "evec1" in tensor.maps:
        rgb = np.abs(np.asarray(tensor["evec1"], float)) * np.clip(fa, 0, 1)[..., None]
        rgb = _world_colours(rgb, tensor.affine)
        blocks.append(figure(figures.mosaic(fa, tensor.affine, rgb=rgb, reference=tensor.mask,
                                            title="colour FA (red L–R, green A–P, blue S–I)"), "colour-FA mosaic"))
    blocks.append(_ranges(tensor, wm, [n for n in ("fa", "md", "ad", "rd") if n in tensor.maps]))
    fits = {c.stage_name("fit"): c for c in series.runs.values()}
    for stage, config in fits.items():
        if stage == "fit-tensor":
            continue
        maps = series.maps(stage)
        if maps is None:
            blocks.append(note(f"{config.model}: no maps recorded.", "bad"))
            continue
        shown = [n for n in MAIN_MAPS if n in maps.maps]
        for name in shown:
            value = np.asarray(maps[name], float)
            top = 1.0 if name in ("fa", "ndi", "odi", "fwf") else float(np.nanpercentile(value[maps.mask], 99)
                                                                      if maps.mask is not None else np.nanmax(value))
            blocks.append(figure(figures.mosaic(value, maps.affine, vmin=0, vmax=top, reference=maps.mask,
                                                n_slices=6, title=f"{config.model} {name}", colorbar_label=name),
                                 f"{config.model} {name}"))
            if name in maps.uncertainty:
                unc = np.asarray(maps.uncertainty[name], float)
                blocks.append(figure(figures.mosaic(unc, maps.affine, vmin=0, reference=maps.mask, n_slices=6,
                                                    cmap="magma", title=f"{config.model} {name}: posterior sd",
                                                    colorbar_label=f"sd({name})"), f"{config.model} {name} error bar"))
        blocks.append(_ranges(maps, wm, shown))
    return Section("maps", "Maps", blocks)


def _world_colours(rgb_voxel: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Colour-FA in world axes: the eigenvector components (image-axis frame) permuted to
    x, y, z world axes as the affine's nearest axis mapping says (red = L–R, green = A–P, blue = S–I)."""
    from nibabel.orientations import io_orientation

    ornt = io_orientation(np.asarray(affine, float))
    out = np.zeros_like(rgb_voxel)
    for voxel_axis, (world_axis, _) in enumerate(ornt):
        out[..., int(world_axis)] = rgb_voxel[..., voxel_axis]
    return out


def _registration(series: SeriesRecord, tensor: MicrostructureMaps | None) -> Section:
    atlases = series.parcellations()
    if not atlases:
        return Section("registration", "Registration",
                       [note("no atlas was registered (a subject-space parcellation was given).")])
    blocks: list[Block] = []
    dice = _dice(series)
    outline = None
    xfm = series.file("register", "xfm")
    if xfm is not None:
        template = load_template()
        outline = Registration.load(xfm).warp(template.mask.astype(np.float32)) > 0.5
    blocks.append(note(f"brain-mask Dice of the warped template with the subject's mask: {_fmt(dice)}",
                       "bad" if dice is not None and dice < 0.8 else ""))
    for atlas in atlases:
        dseg = series.file(f"warp-{atlas}", "dseg")
        if dseg is not None and tensor is not None:
            parc = Parcellation.load(dseg)
            blocks.append(figure(figures.planes(np.asarray(tensor["fa"]), tensor.affine, labels=parc.labels,
                                                outline=outline, centre_on=tensor.mask,
                                                title=f"{atlas} borders on FA; warped template brain (yellow)"),
                                 f"{atlas} label borders on the subject's FA, three planes"))
        cov = _coverage(series, atlas)
        if cov is not None:
            bad = cov["status"] != "ok"
            blocks.append(note(f"{atlas}: {int(bad.sum())} of {len(cov)} labels vanished or kept under half their "
                               "template volume", "bad" if bad.any() else ""))
            shown = pd.concat([cov[bad], cov[~bad].sort_values("fraction").head(5)])
            blocks.append(table(["index", "name", "template mm³", "subject mm³", "fraction", "status"],
                                shown[["index", "name", "template_mm3", "subject_mm3", "fraction", "status"]]
                                .map(_fmt).values.tolist(),
                                row_classes=["bad" if s != "ok" else "" for s in shown["status"]],
                                caption="lost labels, then the 5 smallest kept fractions"))
    return Section("registration", "Registration", blocks)


def _tract_density(path, shape, affine) -> tuple[np.ndarray, np.ndarray]:
    """Track density (streamlines visiting each voxel, as MRtrix3 ``tckmap``) and streamline
    lengths (mm) from a tractogram file, in one pass over its chunks."""
    density = np.zeros(shape, np.int64)
    lengths = []
    for chunk in iter_tractogram(path, chunk_size=200_000, reference=(shape, affine)):
        lengths.append(chunk.lengths)
        density += density_map(chunk, shape=shape, affine=affine)
    return density, (np.concatenate(lengths) if lengths else np.zeros(0))


def _tracking(series: SeriesRecord, config, tensor: MicrostructureMaps | None) -> list[Block]:
    stage = config.stage_name("track")
    record = series.stage(stage)
    path = series.file(stage, "tractogram")
    if record is None or path is None:
        return [note("no tractogram (tracking did not run).", "bad")]
    where = {"interface": "white-matter voxel touching the cortex", "wm": "white-matter voxel"}.get(
        record.get("seeding", "wm"), "seed voxel")
    blocks: list[Block] = [note(f"{_fmt(record.get('streamlines'))} streamlines from {_fmt(record.get('seeds'))} seeds "
                                f"({record['settings'].get('seeds_per_voxel', '?')} per {where})")]
    if record.get("choice"):
        blocks.append(note(f"Tracked on {record['choice']}."))
    if record.get("constraints"):
        blocks.append(note(f"Anatomical constraints: {record['constraints']}."))
    tissue_path = series.file("tissue-template", "tissue")
    if tensor is not None and tissue_path is not None and record.get("constraints", "").startswith("the template"):
        fractions = np.asarray(nib.load(tissue_path).dataobj, np.float32)
        classes = np.where(fractions[..., :4].sum(-1) >= 0.5, fractions[..., :4].argmax(-1) + 1, 0)
        blocks.append(figure(figures.planes(np.asarray(tensor["fa"]), tensor.affine, labels=classes,
                                            centre_on=tensor.mask,
                                            title="template tissue on FA (cortical GM, sub-cortical GM, WM, CSF)"),
                             "borders of the template-derived tissue classes on FA, three planes"))
    if tensor is not None:
        density, lengths = _tract_density(path, tensor.shape, tensor.affine)
        blocks.append(figure(figures.planes(np.asarray(tensor["fa"]), tensor.affine, heat=density,
                                            heat_label="streamlines per voxel", centre_on=tensor.mask,
                                            title=f"tract density on FA ({config.algo})"),
                             "tract-density map over FA, three planes"))
        blocks.append(figure(figures.histogram(lengths, xlabel="length (mm)", title="streamline lengths"),
                             "streamline length histogram"))
    stops = record.get("stops")
    if stops:
        blocks.append(figure(figures.bars({k: v for k, v in stops.items() if k != "none"},
                                          title="why streamline ends stopped (two ends each)", ylabel="ends"),
                             "stop reasons"))
    return blocks


def _connectomes(series: SeriesRecord, config) -> list[Block]:
    stage = config.stage_name("connectome")
    record = series.stage(stage)
    if record is None:
        return [note("no connectomes (the connectome stage did not run).", "bad")]
    blocks: list[Block] = []
    products = sorted(record.get("files") or {})
    for atlas in dict.fromkeys(p.split(":")[0] for p in products):
        count_path = series.file(stage, f"{atlas}:count")
        side = _connectome_sidecar(count_path)
        if side.get("n_streamlines"):
            frac = side["n_assigned"] / side["n_streamlines"]
            blocks.append(note(f"{atlas}: {side['n_assigned']:,} of {side['n_streamlines']:,} streamlines "
                               f"({frac:.0%}) assigned to a node pair; {side.get('n_unassigned', 0):,} with an "
                               f"end outside every node; {side.get('n_self_connections', 0):,} self-connections "
                               "left out", "bad" if frac < 0.3 else ""))
        for product in [p for p in products if p.startswith(atlas + ":")]:
            weighting = product.split(":", 1)[1]
            path = series.file(stage, product)
            if path is None:
                continue
            conn = Connectome.load(path)
            nodes = conn.nodes
            groups = None
            if "network" in nodes:
                hemi = nodes["hemisphere"].astype(str) + " " if "hemisphere" in nodes else ""
                groups = (hemi + nodes["network"].astype(str)).tolist()
            blocks.append(figure(figures.heatmap(conn.weights, groups, title=f"{atlas} · {weighting}",
                                                 log=weighting in ("count", "invnodevol"), label=weighting),
                                 f"{atlas} {weighting} connectome, nodes ordered by network"))
            if weighting == "count":
                w = conn.weights
                blocks.append(figure(figures.distributions({"degree": (w > 0).sum(1), "strength": w.sum(1)},
                                                           title=f"{atlas} · count: node degree and strength"),
                                     "degree and strength distributions"))
        metrics = read_table(series.folder / derivative_name(series.prefix, "graphmetrics", ".tsv", **config.labels,
                                                             seg=atlas))
        if metrics is not None:
            metrics = metrics[[is_strength(w) for w in metrics["weighting"]]]
            blocks.append(table(list(metrics.columns), metrics.map(_fmt).values.tolist(),
                                caption=f"{atlas}: graph metrics (strength-like weightings)"))
    return blocks


def _run_section(series: SeriesRecord) -> Section:
    rows = []
    for name, record in series.stages.items():
        rows.append([name, _fmt(record.get("seconds")), _fmt(record.get("peak_mb"), 4), record.get("version", ""),
                     record.get("key", "")])
    blocks: list[Block] = [table(["stage", "seconds (when it ran)", "peak MiB", "package version", "record key"], rows,
                                 caption="stage records: a rerun skips a stage while its key holds")]
    for config in series.runs.values():
        settings = [[k, _fmt(v) if not isinstance(v, (list, dict)) else str(v)] for k, v in sorted(config.settings.items())]
        blocks.append(table(["setting", "value"], settings, caption=f"configuration {config.hash}"))
        versions = config.record.get("versions") or {}
        if versions:
            blocks.append(table(["package", "version"], [[k, v] for k, v in versions.items()],
                                caption=f"packages of the run of configuration {config.hash}"))
        skipped = config.record.get("skipped") or []
        if skipped:
            blocks.append(note(f"configuration {config.hash}: last run skipped {', '.join(skipped)} (records held)"))
        if config.record.get("traceback"):
            blocks.append(preformatted(config.record["traceback"], "traceback"))
    log = series.log_tail()
    blocks.append(preformatted(log or "(no log)", "log (last 200 lines)"))
    return Section("run", "Run", blocks)


def series_sections(series: SeriesRecord) -> list[Section]:
    """The sections of the series page, in order."""
    tensor = series.maps("fit-tensor")
    sections = [_summary(series), _input(series, tensor), _maps_section(series, tensor),
                _registration(series, tensor)]
    for config in series.runs.values():
        sections.append(Section(f"tracking-{config.hash}", f"Tracking · {config.model} · {config.algo}",
                                _tracking(series, config, tensor)))
        sections.append(Section(f"connectome-{config.hash}", f"Connectomes · {config.model} · {config.algo}",
                                _connectomes(series, config)))
    sections.append(_run_section(series))
    return sections
