"""The report's figures, drawn with matplotlib (object API, Agg canvas: no global state, no
display) and returned as PNG bytes.

Every brain picture is drawn from the image's affine: the array is reoriented to RAS+ (nearest
axis permutation and flips, as nibabel's ``as_closest_canonical``), shown in the neurological
convention (the subject's left on the left of the picture, anterior up in axial planes) with
millimetre aspect and the L/R, A/P, S/I sides written on the panel.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from nibabel.affines import voxel_sizes
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from ..io.gradients import GradientTable

__all__ = ["to_ras", "planes", "mosaic", "qspace", "histogram", "bars", "heatmap", "distributions",
           "group_strips", "png_bytes"]

DPI = 100


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    return buffer.getvalue()


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``array`` (its first three axes on the grid of ``affine``) reoriented to RAS+ voxel axes,
    and the voxel sizes (mm) along the new axes."""
    affine = np.asarray(affine, float)
    transform = ornt_transform(io_orientation(affine), axcodes2ornt("RAS"))
    zooms = voxel_sizes(affine)
    return apply_orientation(np.asarray(array), transform), zooms[transform[:, 0].astype(int)]


def _centre(reference: np.ndarray) -> tuple[int, int, int]:
    """The centre of the bounding box of ``reference > 0`` (the grid centre when empty)."""
    idx = np.argwhere(reference > 0)
    if not len(idx):
        return tuple(s // 2 for s in reference.shape[:3])
    return tuple(int(v) for v in (idx.min(0) + idx.max(0)) // 2)


def _bounding_box(reference: np.ndarray, margin: int = 3) -> tuple[slice, slice, slice]:
    """The slices of the non-zero bounding box of ``reference`` widened by ``margin`` voxels
    (the whole grid when it is empty): pictures show the brain, not the field of view."""
    idx = np.argwhere(np.asarray(reference)[..., 0] if reference.ndim == 4 else np.asarray(reference))
    if not len(idx):
        return (slice(None),) * 3
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, reference.shape[:3])
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _slice(volume: np.ndarray, plane: str, k: int) -> np.ndarray:
    """A 2-D slice of a RAS volume, indexed [row=vertical, col=horizontal] for ``origin='lower'``."""
    if plane == "axial":
        return np.swapaxes(volume[:, :, k], 0, 1)
    if plane == "coronal":
        return np.swapaxes(volume[:, k, :], 0, 1)
    return np.swapaxes(volume[k, :, :], 0, 1)


_SIDES = {"axial": ("L", "R", "P", "A"), "coronal": ("L", "R", "I", "S"), "sagittal": ("P", "A", "I", "S")}
_AXES = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}  # horizontal, vertical, slice


def _extent(plane: str, shape, zooms) -> tuple[float, float, float, float]:
    h, v, _ = _AXES[plane]
    return (0.0, shape[h] * zooms[h], 0.0, shape[v] * zooms[v])


def _window(image: np.ndarray) -> tuple[float, float]:
    positive = image[np.isfinite(image) & (image > 0)]
    if not len(positive):
        return 0.0, 1.0
    return 0.0, float(np.percentile(positive, 99.5))


def _label_edges(labels2d: np.ndarray) -> np.ndarray:
    """RGBA image of the boundaries between labels (each label its own colour)."""
    edge = np.zeros(labels2d.shape, bool)
    edge[1:, :] |= labels2d[1:, :] != labels2d[:-1, :]
    edge[:-1, :] |= labels2d[:-1, :] != labels2d[1:, :]
    edge[:, 1:] |= labels2d[:, 1:] != labels2d[:, :-1]
    edge[:, :-1] |= labels2d[:, :-1] != labels2d[:, 1:]
    edge &= labels2d > 0
    rgba = colormaps["tab20"]((labels2d.astype(np.int64) * 7) % 20 / 19.0)
    rgba[..., 3] = edge.astype(float)
    return rgba


def _dark_finish(fig: Figure, image, axes, label: str, title: str, *, fraction: float) -> bytes:
    """A black figure's colour bar (for ``image``, when given) and title, then its PNG bytes."""
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), fraction=fraction, pad=0.01)
        bar.set_label(label, color="white")
        bar.ax.tick_params(colors="white")
    if title:
        fig.suptitle(title, color="white", fontsize=11)
    return png_bytes(fig)


def planes(base: np.ndarray, affine: np.ndarray, *, labels: np.ndarray | None = None,
           contour: np.ndarray | None = None, outline: np.ndarray | None = None,
           heat: np.ndarray | None = None, heat_label: str = "", title: str = "",
           centre_on: np.ndarray | None = None) -> bytes:
    """Axial, coronal and sagittal planes of ``base`` (grey) through the centre of the brain.

    Parameters
    ----------
    base : (X, Y, Z) image on the grid of ``affine`` (4×4, voxel → mm).
    labels : (X, Y, Z) integer labels drawn as coloured boundaries (an atlas in subject space).
    contour : (X, Y, Z) mask drawn as a red line (a brain mask).
    outline : (X, Y, Z) mask drawn as a yellow line (the warped template brain).
    heat : (X, Y, Z) non-negative map drawn in colour on a log scale where > 0 (tract density).
    centre_on : (X, Y, Z) image whose non-zero bounding box gives the planes (default ``base``).
    """
    volumes = {"base": base, "labels": labels, "contour": contour, "outline": outline, "heat": heat,
               "centre": base if centre_on is None else centre_on}
    ras, zooms = {}, None
    for name, vol in volumes.items():
        if vol is not None:
            ras[name], zooms = to_ras(np.asarray(vol), affine)
    box = _bounding_box(ras["centre"])
    ras = {name: vol[box] for name, vol in ras.items()}
    centre = _centre(ras["centre"])
    vmin, vmax = _window(ras["base"])
    heat_norm = None
    if "heat" in ras and np.any(ras["heat"] > 0):
        positive = ras["heat"][ras["heat"] > 0]
        heat_norm = LogNorm(vmin=max(float(positive.min()), 1e-6), vmax=float(np.percentile(positive, 99.5)) + 1e-6)
    fig = Figure(figsize=(11.5, 4.2), facecolor="black")
    axes = fig.subplots(1, 3)
    image = None
    for ax, plane in zip(axes, ("axial", "coronal", "sagittal")):
        k = centre[_AXES[plane][2]]
        extent = _extent(plane, ras["base"].shape, zooms)
        ax.imshow(_slice(ras["base"], plane, k), cmap="gray", vmin=vmin, vmax=vmax, origin="lower",
                  extent=extent, interpolation="nearest")
        if heat_norm is not None:
            layer = _slice(ras["heat"], plane, k).astype(float)
            image = ax.imshow(np.ma.masked_less_equal(layer, 0), cmap="hot", norm=heat_norm, origin="lower",
                              extent=extent, interpolation="nearest", alpha=0.85)
        if "labels" in ras:
            ax.imshow(_label_edges(_slice(ras["labels"], plane, k)), origin="lower", extent=extent,
                      interpolation="nearest")
        for name, colour in (("contour", "red"), ("outline", "yellow")):
            if name in ras:
                layer = _slice(ras[name], plane, k).astype(float)
                if layer.min() < 0.5 < layer.max():
                    ax.contour(layer, levels=[0.5], colors=colour, linewidths=0.9, origin="lower", extent=extent)
        left, right, bottom, top = _SIDES[plane]
        style = dict(color="white", fontsize=12, fontweight="bold", transform=ax.transAxes)
        ax.text(0.01, 0.5, left, ha="left", va="center", **style)
        ax.text(0.99, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
        ax.text(0.5, 0.99, top, ha="center", va="top", **style)
        ax.set_title(f"{plane} (RAS voxel {k + (box[_AXES[plane][2]].start or 0)})", color="white", fontsize=10)
        ax.set_axis_off()
    return _dark_finish(fig, image, axes, heat_label, title, fraction=0.02)


def mosaic(image: np.ndarray, affine: np.ndarray, *, rgb: np.ndarray | None = None, n_slices: int = 12,
           vmin: float | None = None, vmax: float | None = None, cmap: str = "gray", title: str = "",
           reference: np.ndarray | None = None, colorbar_label: str = "") -> bytes:
    """Axial slices of ``image`` (or of the (X, Y, Z, 3) colour image ``rgb``), evenly spaced
    over the slices where ``reference`` (default ``image``) is non-zero, inferior to superior."""
    ras, zooms = to_ras(np.asarray(image, float), affine)
    colour = None if rgb is None else to_ras(np.clip(np.asarray(rgb, float), 0, 1), affine)[0]
    ref = ras if reference is None else to_ras(np.asarray(reference, float), affine)[0]
    box = _bounding_box(np.nan_to_num(ref))
    ras, ref = ras[box], ref[box]
    colour = None if colour is None else colour[box]
    filled = np.flatnonzero(np.any(ref > 0, axis=(0, 1)))
    lo, hi = (int(filled.min()), int(filled.max())) if len(filled) else (0, ras.shape[2] - 1)
    ks = np.unique(np.linspace(lo, hi, n_slices + 2)[1:-1].round().astype(int))
    if vmin is None or vmax is None:
        window = _window(ras)
        vmin = window[0] if vmin is None else vmin
        vmax = window[1] if vmax is None else vmax
    cols = 6
    rows = int(np.ceil(len(ks) / cols))
    fig = Figure(figsize=(11.5, 2.1 * rows + 0.4), facecolor="black")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    extent = _extent("axial", ras.shape, zooms)
    shown = None
    for ax in axes:
        ax.set_axis_off()
    for ax, k in zip(axes, ks):
        if colour is not None:
            ax.imshow(np.swapaxes(colour[:, :, k], 0, 1), origin="lower", extent=extent, interpolation="nearest")
        else:
            shown = ax.imshow(_slice(ras, "axial", k), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                              extent=extent, interpolation="nearest")
        ax.text(0.02, 0.02, f"z={k + (box[2].start or 0)}", color="white", fontsize=8, transform=ax.transAxes)
    axes[0].text(0.02, 0.5, "L", color="white", fontsize=10, fontweight="bold", transform=axes[0].transAxes)
    axes[0].text(0.98, 0.5, "R", color="white", fontsize=10, fontweight="bold", ha="right",
                 transform=axes[0].transAxes)
    return _dark_finish(fig, shown if colorbar_label else None, axes, colorbar_label, title, fraction=0.015)


def qspace(gtab: GradientTable, *, title: str = "q-space sampling") -> bytes:
    """The measured directions on the sphere of each shell of ``gtab`` (both poles of each
    direction, radius b/1000), coloured by shell, seen from three sides."""
    fig = Figure(figsize=(11.5, 3.8))
    axes = fig.subplots(1, 3)
    cmap = colormaps["viridis"]
    levels = len(gtab.shells)
    for ax, (i, j, name) in zip(axes, ((0, 1, "x-y"), (0, 2, "x-z"), (1, 2, "y-z"))):
        for k, (b, size) in enumerate(zip(gtab.shells, gtab.shell_sizes)):
            pts = gtab.bvecs[gtab.shell_index == k] * gtab.bvals[gtab.shell_index == k, None] / 1000.0
            pts = np.vstack([pts, -pts])
            ax.scatter(pts[:, i], pts[:, j], s=14, color=cmap(k / max(1, levels - 1)), label=f"b={b:.0f} ({size})")
        ax.scatter([0], [0], marker="x", color="black", s=30, label=f"b=0 ({gtab.n_b0})")
        ax.set_aspect("equal")
        ax.set_title(f"{name} plane (b / 1000)")
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.08), ncol=2)
    fig.suptitle(title)
    return png_bytes(fig)


def histogram(values: np.ndarray, *, bins: int = 60, xlabel: str = "", title: str = "",
              log: bool = False) -> bytes:
    """A histogram of ``values``, with its median marked."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    fig = Figure(figsize=(5.6, 3.4))
    ax = fig.subplots()
    if len(values):
        ax.hist(values, bins=bins, color="#3b6ea8", log=log)
        ax.axvline(float(np.median(values)), color="#c0392b", lw=1.2, label=f"median {np.median(values):.3g}")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    return png_bytes(fig)


def bars(counts: dict[str, float], *, title: str = "", ylabel: str = "") -> bytes:
    """A bar chart of named counts."""
    fig = Figure(figsize=(5.6, 3.4))
    ax = fig.subplots()
    names = list(counts)
    ax.bar(names, [counts[k] for k in names], color="#3b6ea8")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return png_bytes(fig)


def outlier_map(volume: np.ndarray, slice_: np.ndarray, z: np.ndarray, replaced: np.ndarray, *,
                title: str = "") -> bytes:
    """Each (volume, slice) of a scan coloured by its outlier z-score (signal below the model's in
    blue, above in red, ±8 at full colour), the replaced ones circled."""
    n_vol, n_slice = int(volume.max()) + 1, int(slice_.max()) + 1
    image = np.full((n_slice, n_vol), np.nan)
    image[slice_, volume] = z
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    shown = ax.imshow(image, cmap="RdBu_r", vmin=-8, vmax=8, aspect="auto", origin="lower", interpolation="nearest")
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("z (measured vs predicted slice signal)")
    ax.scatter(volume[replaced], slice_[replaced], s=40, facecolors="none", edgecolors="black", linewidths=1.2,
               label=f"replaced ({int(replaced.sum())})")
    if replaced.any():
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("volume")
    ax.set_ylabel("slice")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def heatmap(matrix: np.ndarray, groups: list[str] | None = None, *, title: str = "", log: bool = True,
            label: str = "") -> bytes:
    """A connectome heatmap with its nodes ordered by ``groups`` (one name per node, e.g. the
    hemisphere and network of each region): block lines between groups, the group names as tick
    labels at the block centres. ``log``: colours on log(1 + w)."""
    w = np.asarray(matrix, float)
    n = len(w)
    groups = list(groups) if groups is not None else [""] * n
    order = sorted(range(n), key=lambda k: (groups[k], k))
    w = w[np.ix_(order, order)]
    ordered = [groups[k] for k in order]
    shown = np.log1p(np.clip(w, 0, None)) if log else w
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="viridis", interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(f"log(1 + {label})" if log else label)
    bounds = [k for k in range(1, n) if ordered[k] != ordered[k - 1]]
    for b in bounds:
        ax.axhline(b - 0.5, color="white", lw=0.5)
        ax.axvline(b - 0.5, color="white", lw=0.5)
    edges = [0, *bounds, n]
    centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    names = [ordered[a] for a in edges[:-1]]
    if any(names):
        ax.set_xticks(centres, names, rotation=90, fontsize=7)
        ax.set_yticks(centres, names, fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def distributions(series: dict[str, np.ndarray], *, title: str = "") -> bytes:
    """Histograms side by side (e.g. node degree and strength)."""
    fig = Figure(figsize=(11.0, 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(series)))
    for ax, (name, values) in zip(axes, series.items()):
        values = np.asarray(values, float)
        ax.hist(values[np.isfinite(values)], bins=30, color="#3b6ea8")
        ax.set_xlabel(name)
        ax.set_ylabel("nodes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return png_bytes(fig)


def group_strips(table, metrics: list[str], *, by: str = "weighting", title: str = "") -> bytes:
    """One panel per metric: each series' value as a point, one column per value of ``by``
    (e.g. the weighting), with the median as a bar."""
    cols = min(4, max(1, len(metrics)))
    rows = int(np.ceil(len(metrics) / cols))
    fig = Figure(figsize=(11.5, 2.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    levels = list(dict.fromkeys(table[by])) if by in table else [""]
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes, metrics):
        for x, level in enumerate(levels):
            values = table.loc[table[by] == level, metric].to_numpy(float) if by in table else table[metric].to_numpy(float)
            values = values[np.isfinite(values)]
            ax.scatter(x + rng.uniform(-0.15, 0.15, len(values)), values, s=12, color="#3b6ea8", alpha=0.8)
            if len(values):
                ax.hlines(np.median(values), x - 0.3, x + 0.3, color="#c0392b", lw=1.5)
        ax.set_xticks(range(len(levels)), levels, rotation=30, fontsize=8)
        ax.set_title(metric, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return png_bytes(fig)
