"""LSL outlet of the source volume (``rtsource run --publish-volume``).

One sample is the whole source volume at one instant: the current density magnitude |J|
at every voxel of the source grid's box (``nx * ny * nz`` float32 channels, C order), so
a consumer gets the volume with ``sample.reshape(nx, ny, nz)``; voxels that hold no source
point are 0 and typed ``empty`` (the grid points are typed ``source``).

Metadata (besides the provenance in ``desc/rtsource``, as on the region stream):
``desc/volume/{shape, order, spacing_mm, affine_mni152, affine_mri, mri_frame, n_sources,
source_index, value}`` — the box, the 4x4 voxel -> MNI152 millimetre affine (and voxel ->
fsaverage MRI/MNI305), the flat index of every source point, and what the value is.
Channel labels are ``v<i>_<j>_<k>`` (voxel indices).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

from .._util import logger
from .outlet import write_desc

__all__ = ["VolumeOutlet", "read_volume_layout"]


class VolumeOutlet:
    """LSL outlet publishing one source volume per sample (type ``"SourceVolume"``).

    Parameters
    ----------
    name : str
        Stream name (the pipeline uses ``"<output>-volume"``).
    shape : (nx, ny, nz)
        The box of the source grid; the stream has ``nx * ny * nz`` channels.
    source_index : sequence of int, length n_sources
        Flat C-order index in the box of each source point, in the order of the values
        given to :meth:`push`.
    srate : float
        The rate of volumes actually produced (Hz, > 0).
    layout : mapping
        Written under ``desc/volume`` (affines, spacing...; see the module docstring).
    provenance : mapping
        Written under ``desc/rtsource``.
    source_id : str
        Stable source_id (the pipeline derives it from the region stream's).
    unit : str
        Unit of every channel.

    Raises
    ------
    ValueError
        For an empty or inconsistent layout, or a rate that is not finite and positive.
    """

    stream_type = "SourceVolume"

    def __init__(self, name: str, shape: Sequence[int], source_index: Sequence[int],
                 srate: float, layout: Mapping[str, Any], provenance: Mapping[str, Any],
                 source_id: str, unit: str = "a.u.") -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be three positive sizes (nx, ny, nz), got {shape}.")
        n_ch = int(np.prod(shape))
        idx = np.asarray(source_index, np.int64)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= n_ch or (
                len(np.unique(idx)) != len(idx)):
            raise ValueError(f"source_index must hold distinct flat indices in [0, {n_ch}) "
                             "(one per source point).")
        if not (math.isfinite(srate) and srate > 0):
            raise ValueError(f"srate = {srate!r} must be a finite rate > 0 Hz (volumes are "
                             "published at a regular, declared rate).")
        self.name, self.shape, self.n_channels = name, shape, n_ch
        self.source_index = idx
        self.n_sources = len(idx)
        self.srate = float(srate)
        self.source_id = source_id
        info = pylsl.StreamInfo(name, self.stream_type, n_ch, self.srate, pylsl.cf_float32,
                                source_id)
        desc = info.desc()
        mask = np.zeros(n_ch, bool)
        mask[idx] = True
        chans = desc.append_child("channels")
        for flat in range(n_ch):
            i, j, k = np.unravel_index(flat, shape)
            ch = chans.append_child("channel")
            ch.append_child_value("label", f"v{i}_{j}_{k}")
            ch.append_child_value("type", "source" if mask[flat] else "empty")
            ch.append_child_value("unit", unit)
        vol = {"shape": json.dumps(list(shape)), "order": "C", **dict(layout),
               "source_index": json.dumps(idx.tolist())}
        vol.setdefault("value", "current density magnitude |J| at each grid point")
        write_desc(desc.append_child("volume"), vol, "desc/volume")
        write_desc(desc.append_child("rtsource"), dict(provenance), "desc/rtsource")
        self._buf = np.zeros((1, n_ch), np.float32)
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info, max_buffered=30)
        self.n_pushed = 0
        logger.info("Publishing the source volume %s on LSL stream %r (type %s, %g Hz).",
                    "x".join(map(str, shape)), name, self.stream_type, self.srate)

    @property
    def outlet(self) -> pylsl.StreamOutlet:
        if self._outlet is None:
            raise RuntimeError(f"VolumeOutlet {self.name!r} is closed.")
        return self._outlet

    def have_consumers(self) -> bool:
        return self.outlet.have_consumers()

    def push(self, values: NDArray, timestamps: NDArray) -> None:
        """Publish volumes.

        Parameters
        ----------
        values : (n_volumes, n_sources) float
            The value at each source point (in ``source_index`` order).
        timestamps : (n_volumes,) float64
            Capture time (LSL clock) of the EEG sample each volume represents.

        Raises
        ------
        ValueError
            On a shape mismatch or non-finite values (nothing is published).
        """
        v = np.asarray(values, np.float32)
        if v.ndim == 1:
            v = v[None]
        ts = np.asarray(timestamps, np.float64).reshape(-1)
        if v.ndim != 2 or v.shape[1] != self.n_sources or len(ts) != v.shape[0]:
            raise ValueError(f"values must have shape (n_volumes, {self.n_sources}) with one "
                             f"timestamp each; got {np.shape(values)} and {ts.shape[0]} stamps.")
        if not np.isfinite(v).all():
            raise ValueError("Refusing to publish a volume with NaN/Inf values.")
        if len(ts) == 0:
            return
        if self._buf.shape[0] < len(ts):
            self._buf = np.zeros((len(ts), self.n_channels), np.float32)
        buf = self._buf[: len(ts)]
        buf[:, self.source_index] = v
        self.outlet.push_chunk(buf, ts.tolist())
        self.n_pushed += len(ts)

    def close(self) -> None:
        """Destroy the outlet. Idempotent."""
        self._outlet = None


def read_volume_layout(info: pylsl.StreamInfo) -> dict[str, Any]:
    """The layout of a ``SourceVolume`` stream from its full info (``inlet.info()``).

    Returns
    -------
    dict with ``shape`` (tuple), ``affine_mni152`` and ``affine_mri`` ((4, 4) arrays, voxel
    -> millimetres), ``source_index`` ((n_sources,) int array), ``spacing_mm`` (float),
    ``n_sources`` (int) and the other ``desc/volume`` entries as text.

    Raises
    ------
    ValueError
        When the stream carries no volume layout or one whose size disagrees with its
        channel count.
    """
    from .outlet import read_desc

    vol = read_desc(info.desc().child("volume"))
    if "shape" not in vol:
        raise ValueError(f"Stream {info.name()!r} has no desc/volume/shape: it is not an "
                         "rtsource source-volume stream (rtsource run --publish-volume).")
    out: dict[str, Any] = dict(vol)
    out["shape"] = tuple(json.loads(vol["shape"]))
    for key in ("affine_mni152", "affine_mri"):
        if key in vol:
            out[key] = np.array(json.loads(vol[key]), float)
    if "source_index" in vol:
        out["source_index"] = np.array(json.loads(vol["source_index"]), np.int64)
    for key, kind in (("spacing_mm", float), ("n_sources", int)):
        if key in vol:
            out[key] = kind(float(vol[key]))
    if int(np.prod(out["shape"])) != info.channel_count():
        raise ValueError(f"Stream {info.name()!r} declares a volume of shape {out['shape']} "
                         f"but has {info.channel_count()} channels.")
    return out
