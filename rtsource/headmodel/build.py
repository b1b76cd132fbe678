"""Build (or load from the cache) the template head model and its forward solution."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import mne
import numpy as np
from tqdm.auto import tqdm

from .._util import cached_file, load_or_build, logger, stable_hash
from .._version import __version__
from ..config import HeadModelConfig
from .coords import mri_to_mni152
from .model import GRID_SHAPE, HeadModel
from .montage import MontageSpec, get_montage, montage_info, montage_label
from .surfaces import FSAVERAGE_DIR, TRANS_FILE, full_inner_skull, template_surfaces

CACHE_VERSION = 1
_SURF_FILES = {"inner_skull": "inner_skull.surf", "outer_skull": "outer_skull.surf",
               "outer_skin": "outer_skin.surf"}


def bem_solution(cfg: HeadModelConfig, force: bool = False) -> mne.bem.ConductorModel:
    """Three-layer BEM solution on the template surfaces (cached; the slow step)."""
    key = stable_hash("bem", CACHE_VERSION, cfg.bem_ico, cfg.conductivity, mne.__version__)

    def build_to(path: Path) -> None:
        with tempfile.TemporaryDirectory() as subjects_dir:
            bem_dir = Path(subjects_dir) / "fsaverage" / "bem"
            bem_dir.mkdir(parents=True)
            for name, (rr, tris) in template_surfaces(cfg.bem_ico).items():
                mne.write_surface(bem_dir / _SURF_FILES[name], rr * 1000.0, tris,
                                  overwrite=True)
            model = mne.make_bem_model("fsaverage", ico=None, conductivity=cfg.conductivity,
                                       subjects_dir=subjects_dir, verbose=False)
            solution = mne.make_bem_solution(model, verbose=False)
        mne.write_bem_solution(path, solution, overwrite=True, verbose=False)

    def load(path: Path):
        return mne.read_bem_solution(path, verbose=False)

    return cached_file("bem", key, "-sol.fif", build_to, force=force, load=load)[1]


def sphere_model(cfg: HeadModelConfig, trans: mne.transforms.Transform,
                 src_mri: np.ndarray) -> mne.bem.ConductorModel:
    """Three-shell sphere fitted to the template head.

    The centre and outer radius are a least-squares fit to the upper half of the scalp;
    the inner-skull and outer-skull radii are the mean distances of those surfaces over
    the same directions. A sphere cannot follow the inferior temporal lobes, so where a
    grid source lies outside the inner shell the inner shell grows to enclose every source
    (1 mm margin) and the outer shells move out by the same skull/scalp thicknesses: the
    sphere and BEM models then share one source grid (needed to train on one and evaluate
    on the other).
    """
    surfs = template_surfaces(3)
    head_t = mne.transforms.invert_transform(trans)  # MRI -> head
    skin = mne.transforms.apply_trans(head_t, surfs["outer_skin"][0])
    upper = skin[:, 2] > 0.0
    # |p - c|² = r²  ->  2 p·c + (r² - |c|²) = |p|²  (linear in c and k)
    A = np.c_[2 * skin[upper], np.ones(upper.sum())]
    sol = np.linalg.lstsq(A, (skin[upper] ** 2).sum(1), rcond=None)[0]
    r0 = sol[:3]
    r_skin = float(np.sqrt(sol[3] + r0 @ r0))
    r_in, r_out = (
        float(np.mean(np.linalg.norm(
            mne.transforms.apply_trans(head_t, surfs[name][0])[upper] - r0, axis=1)))
        for name in ("inner_skull", "outer_skull"))
    src_head = mne.transforms.apply_trans(head_t, src_mri)
    # make_forward_solution (MNE 1.13) tests sphere containment with the sources in MRI
    # coordinates against the head-frame centre, so enclose the sources in both frames.
    need = max(float(np.linalg.norm(pts - r0, axis=1).max()) for pts in (src_head, src_mri))
    need += 0.001
    if need > r_in:
        grow = need - r_in
        r_in, r_out = need, r_out + grow
        r_skin = max(r_skin, r_out + 0.002)
        logger.debug("Sphere inner shell grown by %.1f mm to enclose every source", grow * 1e3)
    return mne.make_sphere_model(r0=r0, head_radius=r_skin,
                                 relative_radii=[r_in / r_skin, r_out / r_skin, 1.0],
                                 sigmas=cfg.conductivity, verbose=False)


def _lattice(rr_mri: np.ndarray, spacing_m: float) -> np.ndarray:
    """Integer lattice indices of the grid points, centred in the 32³ volume."""
    ijk = np.round((rr_mri - rr_mri.min(0)) / spacing_m).astype(int)
    lo, hi = ijk.min(0), ijk.max(0)
    extent = hi - lo + 1
    if np.any(extent > np.array(GRID_SHAPE)):
        raise ValueError(
            f"Source grid spans {tuple(extent)} points, which does not fit the network's "
            f"{GRID_SHAPE} volume: increase spacing_mm (7 mm fits the template head)."
        )
    offset = lo - (np.array(GRID_SHAPE) - extent) // 2
    vox = ijk - offset
    if len(np.unique(vox, axis=0)) != len(vox):
        raise RuntimeError("Two sources map onto the same voxel; the grid is not a lattice.")
    return vox


def make_forward(cfg: HeadModelConfig, info: mne.Info, progress: bool = False,
                 force: bool = False) -> tuple[mne.Forward, np.ndarray]:
    """MNE forward solution for ``info`` on the template (the uncached heavy lifting).

    Returns the free-orientation forward (head frame) and the source positions in the
    MRI (MNI305) frame, in metres.
    """
    steps = tqdm(total=3, desc=f"Head model ({cfg.conductor})", disable=not progress,
                 unit="step")
    trans = mne.read_trans(TRANS_FILE, verbose=False)
    rr, tris = full_inner_skull()
    # setup_volume_source_space wants a surface dict in millimetres
    surface = {"rr": rr * 1000.0, "tris": tris,
               "coord_frame": mne.io.constants.FIFF.FIFFV_COORD_MRI}
    src = mne.setup_volume_source_space(
        subject=None, pos=float(cfg.spacing_mm), surface=surface,
        mindist=float(cfg.mindist_mm), exclude=0.0, verbose=False)
    rr_mri = src[0]["rr"][src[0]["vertno"]].copy()  # forward moves src to the head frame
    steps.update()
    if cfg.conductor == "bem":
        steps.set_postfix_str("BEM solution (a minute or two the first time)")
        conductor = bem_solution(cfg, force=force)
    else:
        conductor = sphere_model(cfg, trans, rr_mri)
    steps.update()
    steps.set_postfix_str("forward solution")
    fwd = mne.make_forward_solution(info, trans, src, conductor, meg=False, eeg=True,
                                    mindist=0.0, n_jobs=1, verbose=False)
    fwd = mne.convert_forward_solution(fwd, surf_ori=False, force_fixed=False, verbose=False)
    steps.update()
    steps.close()
    if len(rr_mri) != fwd["nsource"]:
        raise RuntimeError("The forward solution dropped sources; the grid is inconsistent.")
    return fwd, rr_mri


def build_headmodel(
    cfg: HeadModelConfig | None = None,
    montage: MontageSpec | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> HeadModel:
    """Build the template head model for a montage, or load it from the cache.

    Parameters
    ----------
    cfg : head-model settings (defaults: biosemi128, BEM, 7 mm).
    montage : overrides ``cfg.montage``: a standard name, a file, a DigMontage or
        (labels, positions in metres).
    force : rebuild even when a valid cache entry exists.
    progress : show a progress bar while building.
    """
    cfg = cfg or HeadModelConfig()
    spec = montage if montage is not None else cfg.montage
    mont = get_montage(spec)
    info = montage_info(mont)
    ch_pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    cfg_items = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "montage"}
    if cfg.conductor == "sphere":
        cfg_items.pop("bem_ico")
    key = stable_hash("headmodel", CACHE_VERSION, cfg_items, info.ch_names, ch_pos,
                      mne.__version__)

    def build() -> dict[str, np.ndarray]:
        fwd, rr_mri = make_forward(cfg, info, progress=progress, force=force)
        vox = _lattice(rr_mri, cfg.spacing_mm / 1000.0)
        gain = fwd["sol"]["data"].reshape(len(info.ch_names), -1, 3)
        desc = {
            "template": "fsaverage (MNE bundled surfaces)",
            "montage": montage_label(spec),
            "conductor": cfg.conductor,
            "conductivity_S_per_m": ",".join(f"{c:g}" for c in cfg.conductivity),
            "bem_ico": str(cfg.bem_ico) if cfg.conductor == "bem" else "",
            "spacing_mm": f"{cfg.spacing_mm:g}",
            "n_sources": str(len(rr_mri)),
            "rtsource_version": __version__,
            "mne_version": mne.__version__,
        }
        return {
            "ch_names": np.array(info.ch_names),
            "ch_pos": ch_pos,
            "src_pos": fwd["source_rr"],
            "src_pos_mri": rr_mri,
            "vox": vox,
            "gain": gain,
            "description": np.array(json.dumps(desc)),
        }

    arrays = load_or_build("headmodel", key, build, force=force)
    logger.debug("Head model %s from %s", key, FSAVERAGE_DIR)
    return HeadModel(
        ch_names=[str(c) for c in arrays["ch_names"]],
        ch_pos=arrays["ch_pos"],
        src_pos=arrays["src_pos"],
        src_pos_mri=arrays["src_pos_mri"],
        src_pos_mni=mri_to_mni152(arrays["src_pos_mri"]),
        vox=arrays["vox"].astype(np.int64),
        gain=arrays["gain"],
        spacing_mm=float(cfg.spacing_mm),
        description=json.loads(str(arrays["description"])),
        hash=key,
    )
