"""Glass-brain projections: a source volume's maximum-intensity projections (MIPs) over the
template brain's outline, in fsaverage MRI (MNI305) millimetres.

Shared by the live brain viewer (:mod:`.brain`, pyqtgraph) and ``rtsource localize --plot``
(:func:`plot_glass_brain`, matplotlib). The volume is the source grid's box
(:class:`~rtsource.headmodel.grid.SourceGrid`; the ``SourceVolume`` stream's layout), whose
voxel -> MRI affine is axis-aligned, so each projection is a maximum along one array axis:

* ``sagittal``: along x (left-right); horizontal y (posterior -> anterior), vertical z;
* ``coronal``: along y; horizontal x (left -> right), vertical z;
* ``axial``: along z; horizontal x, vertical y.

The outline is the template's brain mask (the BN246 and AAL3 label volumes, MNI152 1 mm,
moved into the MNI305 frame with FreeSurfer's affine), resampled at ``step_mm`` on the box and
projected: its silhouette edge and a faint fill proportional to the brain's thickness along
the ray. Without the atlas files the source grid's own mask is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util import logger

#: (name, projected axis, horizontal axis, vertical axis)
VIEWS: tuple[tuple[str, int, int, int], ...] = (
    ("sagittal", 0, 1, 2), ("coronal", 1, 0, 2), ("axial", 2, 0, 1))
AXIS_NAMES = ("x (left → right)", "y (posterior → anterior)", "z (inferior → superior)")


@dataclass(frozen=True)
class Projector:
    """MIPs of volumes on one box.

    Parameters
    ----------
    shape : (nx, ny, nz) of the volumes.
    affine_mri : (4, 4) voxel -> MRI millimetres; must be diagonal plus a translation
        (the source grid's is).

    Raises
    ------
    ValueError
        For an affine with rotations or a non-positive scale.
    """

    shape: tuple[int, int, int]
    affine_mri: np.ndarray

    def __post_init__(self) -> None:
        a = np.asarray(self.affine_mri, float)
        off = a[:3, :3] - np.diag(np.diag(a[:3, :3]))
        if np.abs(off).max() > 1e-6 or (np.diag(a)[:3] <= 0).any():
            raise ValueError("The volume's voxel -> MRI affine must be axis-aligned with "
                             f"positive steps (a source-grid box); got {a[:3, :3].tolist()}.")

    @property
    def step(self) -> np.ndarray:
        """(3,) voxel size in mm."""
        return np.diag(self.affine_mri)[:3].astype(float)

    @property
    def origin(self) -> np.ndarray:
        """(3,) MRI mm of voxel (0, 0, 0)'s centre."""
        return np.asarray(self.affine_mri, float)[:3, 3]

    def rect(self, view: str) -> tuple[float, float, float, float]:
        """``(x0, y0, width, height)`` in mm that the ``view``'s image covers (voxel edges)."""
        _, _, h, v = _view(view)
        lo = self.origin - self.step / 2
        size = self.step * np.array(self.shape)
        return float(lo[h]), float(lo[v]), float(size[h]), float(size[v])

    def mips(self, vol: np.ndarray) -> dict[str, np.ndarray]:
        """The three MIPs of ``vol`` (nx, ny, nz): ``{view: image}``, each image indexed
        ``[horizontal, vertical]`` (sagittal (ny, nz), coronal (nx, nz), axial (nx, ny)).

        Raises
        ------
        ValueError
            When ``vol`` does not have the projector's shape.
        """
        vol = np.asarray(vol)
        if vol.shape != tuple(self.shape):
            raise ValueError(f"volume has shape {vol.shape}, expected {tuple(self.shape)}.")
        return {name: vol.max(axis=axis) for name, axis, _, _ in VIEWS}

    def to_mm(self, view: str, ij: tuple[float, float]) -> tuple[float, float]:
        """MRI mm (horizontal, vertical) of a MIP pixel ``(i, j)`` of ``view``."""
        _, _, h, v = _view(view)
        return (float(self.origin[h] + ij[0] * self.step[h]),
                float(self.origin[v] + ij[1] * self.step[v]))

    def peak_mm(self, vol: np.ndarray) -> dict[str, tuple[float, float]]:
        """Per view, the MRI mm (horizontal, vertical) of the brightest MIP pixel."""
        out = {}
        for name, img in self.mips(vol).items():
            ij = np.unravel_index(int(np.argmax(img)), img.shape)
            out[name] = self.to_mm(name, ij)
        return out


def _view(name: str) -> tuple[str, int, int, int]:
    for v in VIEWS:
        if v[0] == name:
            return v
    raise ValueError(f"view = {name!r} is not one of {[v[0] for v in VIEWS]}.")


@dataclass(frozen=True)
class Outline:
    """The template brain projected for each view, on a fine grid covering the box.

    images : ``{view: (n_h, n_v) float}`` brain thickness along the ray, 0..1.
    edges : ``{view: (n_h, n_v) bool}`` the silhouette's edge.
    rects : ``{view: (x0, y0, width, height)}`` mm, the same area as the projector's.
    source : what the outline was made from.
    """

    images: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    rects: dict[str, tuple[float, float, float, float]]
    source: str

    def rgba(self, view: str, fill=(150, 150, 150), edge=(225, 225, 225),
             fill_alpha: float = 0.45) -> np.ndarray:
        """(n_h, n_v, 4) uint8 image: faint fill by thickness, opaque edge."""
        img = self.images[view]
        out = np.zeros((*img.shape, 4), np.uint8)
        out[..., :3] = fill
        out[..., 3] = np.round(255 * fill_alpha * img).astype(np.uint8)
        e = self.edges[view]
        out[e, :3] = edge
        out[e, 3] = 255
        return out


def template_outline(proj: Projector, step_mm: float = 1.5,
                     atlas: str | tuple[str, ...] = ("bn246", "aal3"),
                     grid_mask: np.ndarray | None = None) -> Outline:
    """The template brain's outline on ``proj``'s box (see the module docstring).

    Parameters
    ----------
    proj : the volumes' projector.
    step_mm : sampling step of the outline.
    atlas : atlas(es) whose labelled voxels form the brain mask (installed files only;
        BN246 has no cerebellum, AAL3 adds it).
    grid_mask : (nx, ny, nz) bool, the source points; used when the atlas is missing.
    """
    from scipy import ndimage

    lo = proj.origin - proj.step / 2
    hi = lo + proj.step * np.array(proj.shape)
    axes = [np.arange(a + step_mm / 2, b, step_mm) for a, b in zip(lo, hi, strict=True)]
    from ..headmodel.coords import MNI305_TO_MNI152
    from ..regions import load_atlas

    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([gx, gy, gz], -1).reshape(-1, 3)
    mask = np.zeros(len(pts), bool)
    used, errors = [], []
    for name in (atlas,) if isinstance(atlas, str) else atlas:
        try:
            at = load_atlas(name)
        except (ImportError, ValueError, OSError) as err:
            errors.append(str(err))
            continue
        vox_from_mri = np.linalg.inv(at.affine) @ MNI305_TO_MNI152
        ijk = np.round(pts @ vox_from_mri[:3, :3].T + vox_from_mri[:3, 3]).astype(int)
        inside = ((ijk >= 0) & (ijk < np.array(at.labels.shape))).all(1)
        ii = ijk[inside]
        mask[inside] |= at.labels[ii[:, 0], ii[:, 1], ii[:, 2]] > 0
        used.append(at.name)
    mask = mask.reshape(gx.shape)
    source = f"{' + '.join(used)} brain mask (MNI152 -> MNI305)"
    if not used:
        if grid_mask is None:
            raise ValueError(f"No atlas for the template outline: {'; '.join(errors)}")
        logger.info("No atlas for the outline (%s); drawing the source grid's outline.",
                    "; ".join(errors))
        # nearest source voxel for every fine point
        idx = [np.clip(np.floor((a - lo[d]) / proj.step[d]).astype(int), 0, proj.shape[d] - 1)
               for d, a in enumerate(axes)]
        mask = np.asarray(grid_mask, bool)[np.ix_(*idx)]
        source = "source grid"
    images, edges, rects = {}, {}, {}
    for name, axis, _, _ in VIEWS:
        thick = mask.sum(axis=axis).astype(float)
        images[name] = thick / max(thick.max(), 1.0)
        sil = thick > 0
        edges[name] = sil & ~ndimage.binary_erosion(sil)
        rects[name] = proj.rect(name)
    return Outline(images, edges, rects, source)


def heat_lut(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colour table dark red -> red -> orange -> yellow (no white: R + G - 2B
    rises with the value, which tests use to find the hottest pixel)."""
    t = np.linspace(0.0, 1.0, n)
    r = np.clip(0.35 + 1.3 * t, 0, 1)
    g = np.clip(2.0 * t - 0.7, 0, 1) * 0.95 + 0.05 * t
    b = np.clip(0.15 * (1 - 2 * t), 0, 1)
    return np.round(255 * np.stack([r, g, b], -1)).astype(np.uint8)


def heat_rgba(img: np.ndarray, vmax: float, threshold: float,
              lut: np.ndarray | None = None) -> np.ndarray:
    """A MIP as an (…, 4) uint8 RGBA image: values below ``threshold`` transparent, the rest
    coloured from ``threshold`` (dark red) to ``vmax`` (yellow)."""
    lut = heat_lut() if lut is None else lut
    img = np.asarray(img, float)
    span = max(vmax - threshold, 1e-30)
    idx = np.clip((img - threshold) / span * (len(lut) - 1), 0, len(lut) - 1).astype(int)
    out = np.zeros((*img.shape, 4), np.uint8)
    out[..., :3] = lut[idx]
    out[..., 3] = np.where(img >= threshold, 235, 0)
    return out


def plot_glass_brain(vol: np.ndarray, proj: Projector, outline: Outline, *, title: str = "",
                     threshold: float = 0.5, unit: str = "", axes=None, cax=None):
    """Draw the three MIPs of ``vol`` over ``outline`` with matplotlib.

    Parameters
    ----------
    vol : (nx, ny, nz) values (e.g. |J| at one time).
    threshold : fraction of the maximum below which voxels are transparent.
    axes : three matplotlib Axes (created in a new figure when None).
    cax : Axes for the colour bar (none when None).

    Returns
    -------
    The matplotlib Figure.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    if axes is None:  # no pyplot: works headless, whatever the backend
        axes = Figure(figsize=(11, 3.8), layout="constrained").subplots(1, 3)
    fig = axes[0].figure
    vmax = float(np.max(vol)) or 1.0
    thr = threshold * vmax
    for ax, (name, img) in zip(axes, proj.mips(vol).items(), strict=True):
        x0, y0, w, h = outline.rects[name]
        ax.set_facecolor("black")
        ax.imshow(np.swapaxes(outline.rgba(name), 0, 1), origin="lower",
                  extent=(x0, x0 + w, y0, y0 + h), interpolation="nearest")
        ax.imshow(np.swapaxes(heat_rgba(img, vmax, thr), 0, 1), origin="lower",
                  extent=(x0, x0 + w, y0, y0 + h), interpolation="nearest")
        _, _, hx, vx = _view(name)
        ax.set(title=name, xlabel=AXIS_NAMES[hx].split(" ")[0] + " (mm)",
               ylabel=AXIS_NAMES[vx].split(" ")[0] + " (mm)", aspect="equal")
    if cax is not None:
        lut = heat_lut()
        sm = ScalarMappable(norm=Normalize(thr, vmax), cmap=ListedColormap(lut / 255.0))
        fig.colorbar(sm, cax=cax, label=unit)
    if title:
        fig.suptitle(title)
    return fig
