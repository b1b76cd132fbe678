"""``rtsource localize --plot``: a glass brain at the peak time and the top regions' time
courses, as one matplotlib figure (no pyplot, so it works headless)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .glass import Projector, plot_glass_brain, template_outline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..online.localize import LocalizeResult

__all__ = ["peak_time_index", "plot_result"]


def _magnitude(res: LocalizeResult) -> np.ndarray:
    """(n_times, n_sources) |J|, averaged over epochs for epoched results."""
    mag = np.linalg.norm(np.asarray(res.sources, np.float32), axis=-1)
    return mag.mean(axis=0) if mag.ndim == 3 else mag


def peak_time_index(res: LocalizeResult) -> int:
    """Index of the time whose strongest source is the strongest overall."""
    return int(np.argmax(_magnitude(res).max(axis=1)))


def plot_result(res: LocalizeResult, path: str | Path | None = None, *, n_top: int = 5,
                threshold: float = 0.5, atlas: str | tuple[str, ...] = ("bn246", "aal3"),
                dpi: int = 110) -> Figure:
    """A glass brain of |J| at the peak time and the time courses of the top regions.

    Parameters
    ----------
    res : from :func:`rtsource.localize` (epochs are averaged, magnitudes and regions).
    path : where to save the figure (PNG, PDF, SVG... by extension); None: not saved.
    n_top : regions drawn (the most active on average, as ``rtsource localize`` lists them).
    threshold : fraction of the peak below which voxels are transparent.
    atlas : atlas(es) whose brain mask is the outline.
    dpi : resolution of the saved file.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When the result carries no source grid, or ``threshold`` is outside [0, 1).
    """
    from matplotlib.figure import Figure

    if res.grid is None:
        raise ValueError("This LocalizeResult carries no source grid; localize the data with "
                         "rtsource.localize to plot it.")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold = {threshold!r} must be a fraction in [0, 1).")
    grid = res.grid
    mag = _magnitude(res)
    t_peak = peak_time_index(res)
    vol = grid.to_volume(mag[t_peak])
    proj = Projector(grid.shape, grid.affine_mri)
    outline = template_outline(proj, atlas=atlas, grid_mask=grid.to_volume(
        np.ones(grid.n_sources, bool)))
    regions = np.asarray(res.regions)
    regions = regions.mean(axis=0) if regions.ndim == 3 else regions
    top = np.argsort(regions.mean(axis=0))[::-1][:n_top]
    peak_src = int(np.argmax(mag[t_peak]))
    x, y, z = res.positions_mni[peak_src]
    unit = "dimensionless" if res.method in ("dspm", "sloreta") else "A·m"

    fig = Figure(figsize=(12, 7.2), layout="constrained")
    gs = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 0.05], height_ratios=[1.15, 1])
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)]
    cax = fig.add_subplot(gs[0, 3])
    plot_glass_brain(vol, proj, outline, threshold=threshold, unit=f"|J| ({unit})",
                     axes=axes, cax=cax)
    ax = fig.add_subplot(gs[1, :])
    t = np.asarray(res.times)
    for j in top:
        ax.plot(t, regions[:, j], lw=1.2, label=res.region_names[j])
    ax.axvline(t[t_peak], color="0.3", ls="--", lw=1, label=f"peak {t[t_peak]:.3f} s")
    ax.set(xlabel="time (s)", ylabel=f"region activation ({unit})",
           title=f"top {len(top)} regions ({res.provenance.get('atlas', '')}, mean activation)")
    ax.legend(loc="upper right", fontsize="small", ncols=2)
    ax.margins(x=0)
    fig.suptitle(f"{res.method}: |J| at the peak, t = {t[t_peak]:.3f} s; strongest source at "
                 f"MNI152 ({x:.0f}, {y:.0f}, {z:.0f}) mm · projections in MNI305 (fsaverage)")
    if path is not None:
        fig.savefig(str(path), dpi=dpi)
    return fig
