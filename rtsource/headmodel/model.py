"""The :class:`HeadModel` container: channels, source grid, forward solution."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GRID_SHAPE = (32, 32, 32)


@dataclass(frozen=True, eq=False)
class HeadModel:
    """A forward model on a volume source grid.

    Attributes
    ----------
    ch_names : list of str, EEG channel labels in the order of ``gain``'s rows.
    ch_pos : (n_channels, 3) float, electrode positions in metres, MNE head frame.
    src_pos : (n_sources, 3) float, source positions in metres, MNE head frame.
    src_pos_mri : (n_sources, 3) float, source positions in metres, fsaverage MRI
        frame (= MNI305).
    src_pos_mni : (n_sources, 3) float, source positions in MNI152 millimetres.
    vox : (n_sources, 3) int, index of each source in the 32³ volume the network sees.
    gain : (n_channels, n_sources, 3) float, lead field in V/(A·m) for unit dipoles along
        head-frame x, y, z; no reference applied (average reference is applied by the
        inverse and preprocessing stages).
    spacing_mm : grid spacing in millimetres.
    description : dict of str, provenance (conductor, conductivities, montage, ...).
    hash : str, hash of every input that produced this model (cache key).
    """

    ch_names: list[str]
    ch_pos: np.ndarray
    src_pos: np.ndarray
    src_pos_mri: np.ndarray
    src_pos_mni: np.ndarray
    vox: np.ndarray
    gain: np.ndarray
    spacing_mm: float
    description: dict[str, str] = field(default_factory=dict)
    hash: str = ""

    @property
    def n_channels(self) -> int:
        return len(self.ch_names)

    @property
    def n_sources(self) -> int:
        return self.src_pos.shape[0]

    def pick_channels(self, names: list[str]) -> HeadModel:
        """Return a model restricted to ``names`` (in that order; case-insensitive)."""
        lookup = {n.lower(): i for i, n in enumerate(self.ch_names)}
        missing = [n for n in names if n.lower() not in lookup]
        if missing:
            raise ValueError(
                f"Channels {missing} are not in the head model's montage "
                f"({self.description.get('montage', '?')})."
            )
        idx = np.array([lookup[n.lower()] for n in names], dtype=int)
        from .. import _util

        return HeadModel(
            ch_names=[self.ch_names[i] for i in idx],
            ch_pos=self.ch_pos[idx],
            src_pos=self.src_pos,
            src_pos_mri=self.src_pos_mri,
            src_pos_mni=self.src_pos_mni,
            vox=self.vox,
            gain=self.gain[idx],
            spacing_mm=self.spacing_mm,
            description=dict(self.description),
            hash=_util.stable_hash(self.hash, [self.ch_names[i] for i in idx]),
        )
