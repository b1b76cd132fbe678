"""A bank of forward models and eLORETA kernels the simulator draws from.

Every montage of :class:`~rtsource.simulate.config.SimConfig` comes in ``1 + jitter_variants``
electrode layouts (the standard positions and copies jittered tangentially along the scalp);
every layout is combined with every conductor model. Each combination is an ordinary cached
:func:`rtsource.headmodel.build_headmodel` + :func:`rtsource.inverse.make_inverse` (jittered
layouts are passed as ``(labels, positions)`` montages, so they are cached like any other).
All models share one source grid, which is what lets one network serve them all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .._util import logger, stable_hash
from ..config import HeadModelConfig, InverseConfig
from ..headmodel import HeadModel, build_headmodel, get_montage, montage_info
from ..inverse import make_inverse
from .config import SimConfig
from .noise import correlated_noise_factor

__all__ = ["ForwardBank", "ForwardEntry", "jittered_montage", "load_entry"]


def fit_sphere(pos: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points (n, 3)."""
    A = np.c_[2 * pos, np.ones(len(pos))]
    sol = np.linalg.lstsq(A, (pos**2).sum(1), rcond=None)[0]
    return sol[:3]


def jittered_montage(name: str, jitter_mm: float, seed: int) -> tuple[list[str], np.ndarray]:
    """Electrode positions of a standard montage with tangential Gaussian jitter.

    Parameters
    ----------
    name : str
        MNE standard montage.
    jitter_mm : float
        Standard deviation (mm) of the displacement along the scalp (the component along
        the radius from the electrodes' best-fit sphere centre is removed, and the radius
        is kept, so electrodes stay on the head surface).
    seed : int
        Seed of the displacement (same seed, same layout).

    Returns
    -------
    (labels, positions) with positions (n_channels, 3) in metres, head frame.
    """
    info = montage_info(get_montage(name))
    pos = np.array([ch["loc"][:3] for ch in info["chs"]], float)
    c = fit_sphere(pos)
    rel = pos - c
    r = np.linalg.norm(rel, axis=1, keepdims=True)
    n = rel / r
    rng = np.random.default_rng(seed)
    step = rng.normal(scale=jitter_mm / 1000.0, size=pos.shape)
    step -= (step * n).sum(1, keepdims=True) * n
    moved = rel + step
    moved = moved / np.linalg.norm(moved, axis=1, keepdims=True) * r
    return list(info.ch_names), moved + c


@dataclass(eq=False)
class ForwardEntry:
    """One montage layout under one conductor model.

    Attributes
    ----------
    name : str
        ``montage/variant/conductor(conductivities)``.
    montage : str
        Standard montage name.
    variant : int
        0 = standard positions, >= 1 = jittered copy.
    headmodel_index : int
        Index into the bank's conductor models.
    ch_names : list of str
    ch_pos : (n_channels, 3) ndarray, metres.
    gain : (n_channels, 3 n_sources) float32 tensor, lead field (V/(A·m)), columns ordered
        source-major (source 0 x, y, z, source 1 x, ...).
    kernel : (3 n_sources, n_channels) float32 tensor, eLORETA (A·m/V, average reference
        folded in), same row order.
    chol : (n_channels, n_channels) float32 tensor, correlated-noise Cholesky factor.
    headmodel_hash, kernel_hash : str, cache keys (provenance).
    """

    name: str
    montage: str
    variant: int
    headmodel_index: int
    ch_names: list[str]
    ch_pos: np.ndarray
    gain: torch.Tensor
    kernel: torch.Tensor
    chol: torch.Tensor
    headmodel_hash: str
    kernel_hash: str

    @property
    def n_channels(self) -> int:
        return len(self.ch_names)

    def to(self, device: torch.device | str) -> ForwardEntry:
        return dataclasses.replace(self, gain=self.gain.to(device),
                                   kernel=self.kernel.to(device), chol=self.chol.to(device))


def _describe(cfg: HeadModelConfig) -> str:
    cond = ",".join(f"{c:g}" for c in cfg.conductivity)
    ico = f",ico{cfg.bem_ico}" if cfg.conductor == "bem" else ""
    return f"{cfg.conductor}({cond}{ico})"


def load_entry(hm_cfg: HeadModelConfig, montage, inverse: InverseConfig, *,
               noise_length_mm: float = 40.0, name: str | None = None,
               montage_name: str | None = None, variant: int = 0,
               headmodel_index: int = 0, progress: bool = False
               ) -> tuple[ForwardEntry, HeadModel]:
    """Build (or load from the cache) one head model + kernel as a :class:`ForwardEntry`.

    Parameters
    ----------
    hm_cfg : HeadModelConfig
        Conductor settings (its ``montage`` is used when ``montage`` is None).
    montage : str, (labels, positions) or None
        Electrode layout.
    inverse : InverseConfig
        Which kernel to store (eLORETA for training; any method for evaluation).
    noise_length_mm : float
        Correlation length of the correlated sensor noise.
    """
    spec = montage if montage is not None else hm_cfg.montage
    hm = build_headmodel(hm_cfg, montage=spec, progress=progress)
    op = make_inverse(hm, inverse)
    n_ch = hm.n_channels
    gain = torch.from_numpy(hm.gain.reshape(n_ch, -1).astype(np.float32))
    kernel = torch.from_numpy(op.kernel.reshape(-1, n_ch).astype(np.float32))
    chol = torch.from_numpy(correlated_noise_factor(hm.ch_pos, noise_length_mm))
    label = montage_name or (spec if isinstance(spec, str) else f"custom{n_ch}")
    entry = ForwardEntry(
        name=name or f"{label}/{variant}/{_describe(hm_cfg)}", montage=str(label),
        variant=variant, headmodel_index=headmodel_index, ch_names=list(hm.ch_names),
        ch_pos=hm.ch_pos, gain=gain, kernel=kernel, chol=chol, headmodel_hash=hm.hash,
        kernel_hash=op.hash)
    return entry, hm


class ForwardBank:
    """Forward models and eLORETA kernels for every (montage layout, conductor) pair.

    Parameters
    ----------
    cfg : SimConfig
        Montages, jitter, conductor models, inverse settings.
    device : str or torch.device
        Where the matrices live (the simulator runs there).
    progress : bool
        Show a progress bar while building (the first build of a BEM takes a minute or two).

    Attributes
    ----------
    entries : list of ForwardEntry
    layouts : list of list of int
        For each montage layout, the entry index under each conductor model (in the order of
        ``cfg.headmodels``).
    src_pos_mm : (n_sources, 3) float32 tensor, head-frame source positions in millimetres.
    vox : (n_sources, 3) int64 ndarray, voxel index of each source in the 32³ volume.
    hash : str, identity of the whole bank (all head-model and kernel hashes).
    """

    def __init__(self, cfg: SimConfig, device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        layouts_spec = []
        for montage in cfg.montages:
            layouts_spec.append((montage, 0, montage))
            for v in range(1, cfg.jitter_variants + 1):
                seed = int(stable_hash("jitter", montage, v, cfg.jitter_mm, length=8), 16)
                layouts_spec.append((montage, v, jittered_montage(montage, cfg.jitter_mm, seed)))
        self.entries: list[ForwardEntry] = []
        self.layouts: list[list[int]] = []
        ref: HeadModel | None = None
        bar = tqdm(total=len(layouts_spec) * len(cfg.headmodels), desc="Forward bank",
                   unit="model", disable=not progress)
        for montage, variant, spec in layouts_spec:
            row = []
            for h, hm_cfg in enumerate(cfg.headmodels):
                bar.set_postfix_str(f"{montage}/{variant}/{_describe(hm_cfg)}")
                entry, hm = load_entry(hm_cfg, spec, cfg.inverse,
                                       noise_length_mm=cfg.noise_corr_length_mm,
                                       montage_name=montage, variant=variant,
                                       headmodel_index=h)
                if ref is None:
                    ref = hm
                elif hm.n_sources != ref.n_sources or not np.allclose(hm.src_pos, ref.src_pos):
                    raise RuntimeError(
                        f"Head model {entry.name} has another source grid than {self.entries[0].name}; "
                        "every model in a bank must share one grid (same spacing_mm, mindist_mm)."
                    )
                row.append(len(self.entries))
                self.entries.append(entry.to(self.device))
                bar.update()
            self.layouts.append(row)
        bar.close()
        assert ref is not None
        self.headmodel = ref
        self.spacing_mm = ref.spacing_mm
        self.src_pos_mm = torch.from_numpy((ref.src_pos * 1000.0).astype(np.float32)).to(self.device)
        self.vox = ref.vox.copy()
        self.hash = stable_hash("bank", [(e.headmodel_hash, e.kernel_hash) for e in self.entries])
        logger.info("Forward bank: %d layouts x %d conductor models = %d entries (%d sources)",
                    len(self.layouts), len(cfg.headmodels), len(self.entries), ref.n_sources)

    @property
    def n_sources(self) -> int:
        return int(self.src_pos_mm.shape[0])

    def draw(self, generator: torch.Generator) -> tuple[ForwardEntry, ForwardEntry]:
        """Pick a (forward, inverse) pair for one batch.

        A layout is drawn uniformly, then a conductor model for the forward; with probability
        ``mismatch_prob`` the kernel comes from another conductor model of the same layout.
        """
        row = self.layouts[int(torch.randint(len(self.layouts), (1,), generator=generator))]
        f = int(torch.randint(len(row), (1,), generator=generator))
        i = f
        if len(row) > 1 and float(torch.rand(1, generator=generator)) < self.cfg.mismatch_prob:
            i = (f + 1 + int(torch.randint(len(row) - 1, (1,), generator=generator))) % len(row)
        return self.entries[row[f]], self.entries[row[i]]
