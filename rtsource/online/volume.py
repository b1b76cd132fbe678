"""The source volume published beside the regions (``rtsource run --publish-volume HZ``).

:class:`VolumePublisher` picks one output sample in ``every`` (``every = round(output rate
/ HZ)``, at least 1, so the declared rate ``output rate / every`` is exact), computes |J| at
every source point for it (:meth:`SourceProcessor.source_magnitude`: the refined sources
for piunet, one inverse product on the fused path) and publishes it on a
:class:`~rtsource.stream.volume_outlet.VolumeOutlet` stamped with that sample's capture
time. Called by the pipeline right after each published piece, before the next one is
processed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..headmodel.grid import SourceGrid
from ..stream.volume_outlet import VolumeOutlet
from .processing import SourceProcessor

__all__ = ["VolumePublisher", "volume_every", "volume_unit"]


def volume_unit(method: str) -> str:
    """Unit of |J| for a method (dSPM and sLORETA are noise-normalised)."""
    return "dimensionless (noise-normalised)" if method in ("dspm", "sloreta") else "A*m"


def volume_every(out_rate_hz: float, volume_hz: float) -> int:
    """Publish one volume per this many output samples (``round(out_rate / volume_hz)``,
    at least 1).

    Raises
    ------
    ValueError
        When ``volume_hz`` is not a positive number.
    """
    if not (volume_hz > 0 and np.isfinite(volume_hz)):
        raise ValueError(f"Setting stream.volume_hz = {volume_hz!r} must be a positive rate "
                         "in Hz (--publish-volume HZ), or false to publish no volume.")
    return max(1, int(round(out_rate_hz / volume_hz)))


class VolumePublisher:
    """Publishes one source volume every ``every`` output samples.

    Parameters
    ----------
    processor : the chain (for its grid; the source values come from the processor given
        to :meth:`publish`, which may be a rebuilt one).
    name : stream name (``"<output>-volume"``).
    out_rate_hz : the region stream's rate.
    volume_hz : the rate asked for.
    provenance : written under ``desc/rtsource`` (with the volume's own rate).
    source_id : the volume stream's source_id.
    unit : unit of the values.
    """

    def __init__(self, processor: SourceProcessor, name: str, out_rate_hz: float,
                 volume_hz: float, provenance: Mapping[str, Any], source_id: str,
                 unit: str) -> None:
        self.every = volume_every(out_rate_hz, volume_hz)
        self.rate_hz = out_rate_hz / self.every
        grid = SourceGrid.from_headmodel(processor.headmodel)
        layout = grid.describe()
        layout.pop("shape"), layout.pop("source_index"), layout.pop("order")
        prov = {**provenance, "volume_rate_hz": repr(self.rate_hz),
                "volume_every": f"one volume per {self.every} output samples of the region "
                "stream (those whose count since the start is a multiple), stamped with "
                "that sample's capture time"}
        self.outlet = VolumeOutlet(name, grid.shape, grid.flat_index, self.rate_hz, layout,
                                   prov, source_id, unit=unit)
        self.grid = grid
        self._count = 0  # output samples seen

    def publish(self, processor: SourceProcessor, stamps: NDArray, skipped: int = 0) -> int:
        """Publish the volumes due among the last processed piece's output samples.

        Parameters
        ----------
        processor : the chain that just processed the piece (its last call's outputs are
            the rows stamped ``stamps``).
        stamps : (n_out,) capture stamps of that piece's published rows.
        skipped : leading rows of the processor's last call that were not published (the
            first sample after a filter start; ``HopScheduler.skipped_rows``).

        Returns
        -------
        Volumes published.
        """
        n = len(stamps)
        if n == 0:
            return 0
        if processor.n_last != n + skipped:
            raise RuntimeError(f"The processor's last call produced {processor.n_last} samples "
                               f"but {n} were published and {skipped} skipped; the volume "
                               "would be misattributed.")
        first = (-(self._count + 1)) % self.every  # rows r with (count + r + 1) % every == 0
        self._count += n
        rows = np.arange(first, n, self.every)
        if len(rows) == 0:
            return 0
        self.outlet.push(processor.source_magnitude(rows + skipped), np.asarray(stamps)[rows])
        return len(rows)

    def close(self) -> None:
        self.outlet.close()
