"""The chain of online stages, without threads or sockets.

``SourceProcessor`` is what both ``rtsource run`` (through :mod:`rtsource.online.pipeline`) and
:func:`rtsource.localize` execute, so the two give the same numbers for the same data:

channel mapping -> causal filters -> inverse kernel (average reference folded in)
-> [3D-PIUNet refinement] -> atlas regions, or, for the temporal method, eLORETA node
vectors -> the temporal network -> node time courses (:mod:`.temporal`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._util import logger
from ..config import Config, check_value
from ..headmodel import HeadModel, build_headmodel
from ..headmodel.montage import MontageSpec
from ..inverse import InverseOperator, make_inverse
from ..regions import RegionMap, RegionReducer, region_map
from .fused import FusedRegions
from .preprocess import CausalFilter, ChannelMapper

if TYPE_CHECKING:  # torch is imported only when the network is used
    from .refine import Refiner
    from .temporal import TemporalStage


@dataclass
class StageTimes:
    """Seconds spent in each stage by the last ``process`` call."""

    preprocess: float = 0.0
    inverse: float = 0.0
    refine: float = 0.0
    regions: float = 0.0


#: Fewest EEG channels a chain is built for (the live path excludes no channel below it).
MIN_CHANNELS = 3
#: Below this many channels a chain is built with a warning: the maps are too coarse to
#: tell neighbouring regions apart (the pipeline works well from about 32).
FEW_CHANNELS = 16


class SourceProcessor:
    """Precomputes every stage for one input layout; ``process`` maps chunks to regions.

    Parameters
    ----------
    cfg : the configuration (head model, inverse, regions, filters).
    ch_names, ch_types : the input's channel labels and types (None: all EEG).
    sfreq : sampling rate in Hz.
    montage : electrode positions (a standard name, a file, a DigMontage or labels and
        positions in metres); defaults to ``cfg.headmodel.montage``.
    on_missing : ``"raise"`` when EEG channels of the input are not in the montage, or
        ``"drop"`` to ignore them (with a warning naming them).
    refine_batch_sizes : batch sizes the refinement engine prepares (default (1,)).

    Raises
    ------
    ValueError
        For EEG channels missing from the montage (``on_missing="raise"``), a bad sampling
        rate, or settings the stages reject.
    """

    def __init__(self, cfg: Config, ch_names: Sequence[str], sfreq: float,
                 ch_types: Sequence[str | None] | None = None,
                 montage: MontageSpec | None = None, on_missing: str = "raise",
                 progress: bool = True,
                 refine_batch_sizes: Sequence[int] | None = None) -> None:
        check_value(on_missing, ("raise", "drop"), "on_missing")
        if not sfreq > 0:
            raise ValueError(f"sfreq = {sfreq!r} must be a positive sampling rate in Hz.")
        self.cfg, self.sfreq = cfg, float(sfreq)
        self.ch_names = list(ch_names)
        types = list(ch_types) if ch_types is not None else ["eeg"] * len(self.ch_names)
        full = build_headmodel(cfg.headmodel, montage, progress=progress)
        self.mapper = ChannelMapper(self.ch_names, types, full.ch_names)
        m = self.mapper.mapping
        if self.mapper.n_used < MIN_CHANNELS:
            raise ValueError(
                f"Only {self.mapper.n_used} channel(s) ({', '.join(m.used_labels)}) match the "
                f"montage {full.description.get('montage')}; source imaging needs at least "
                f"{MIN_CHANNELS} (and works well from about 32). Give the montage the "
                "recording used (--montage, montage=...), or fix the channel labels.")
        if self.mapper.n_used < FEW_CHANNELS:
            logger.warning(
                "Only %d EEG channels (%s): source imaging this sparse cannot tell neighbouring "
                "regions apart, so read the top regions as a coarse guess (it works well from "
                "about 32 channels).", self.mapper.n_used, ", ".join(m.used_labels))
        if m.unmapped_eeg and on_missing == "raise":
            raise ValueError(
                f"EEG channels {m.unmapped_eeg} are not in the montage "
                f"({full.description.get('montage')}). Give a montage that contains them, "
                "or pass on_missing='drop' to leave them out.")
        self.headmodel: HeadModel = (full.pick_channels(m.used_labels) if m.missing_model
                                     else full)
        self.inverse: InverseOperator = make_inverse(self.headmodel, cfg.inverse)
        self.filter = CausalFilter.from_config(cfg.stream, self.sfreq, self.mapper.n_used)
        self.temporal: TemporalStage | None = None
        if cfg.refine.refiner == "temporal":
            from .temporal import TemporalStage, temporal_runtime

            if cfg.regions.atlas != "bn246":
                raise ValueError(
                    f"Method temporal estimates BN246 regions (210 cortical, 16 thalamic); "
                    f"regions.atlas = {cfg.regions.atlas!r} is not available with it. Use "
                    "--atlas bn246, or a linear method for other atlases.")
            backend, precision = temporal_runtime(cfg.refine.backend, cfg.refine.precision)
            self.temporal = TemporalStage(
                self.headmodel, self.inverse.kernel, self.sfreq, cfg.refine.checkpoint,
                precision=precision, backend=backend)
            self.regions: RegionMap = self.temporal.regions
        else:
            self.regions = region_map(self.headmodel, cfg.regions.atlas, cfg.regions.sigma_mm)
        self.reducer = RegionReducer(self.regions, cfg.regions.mode)
        self.refiner: Refiner | None = None
        if cfg.refine.refiner == "piunet":
            # imported here: torch loads only when a network is used (optional heavy dep.)
            from .refine import make_refiner

            self.refiner = make_refiner(self.headmodel, cfg.refine,
                                        batch_sizes=tuple(refine_batch_sizes or (1,)))
        # inverse + regions in one pass when only regions are asked for (no refiner)
        self.fused: FusedRegions | None = (
            FusedRegions(self.inverse, self.regions, cfg.regions.mode)
            if self.refiner is None and self.temporal is None and cfg.inverse.fused else None)
        self.times = StageTimes()
        # the last call's filtered, kept samples and sources (views; source_magnitude)
        self._last_x: np.ndarray | None = None
        self._last_src: np.ndarray | None = None
        self._src_buf = np.empty((0, self.headmodel.n_sources, 3), np.float32)
        self._reg_buf = np.empty((0, self.regions.n_regions), np.float32)
        logger.info("Processor ready: %d channels, %d sources, %d regions (%s), method %s",
                    self.mapper.n_used, self.headmodel.n_sources, self.regions.n_regions,
                    self.regions.atlas, cfg.method)

    @property
    def method(self) -> str:
        """The user-facing method (``"eloreta"``, ..., ``"piunet"``)."""
        return self.cfg.method

    def reset(self) -> None:
        """Forget filter state (a new recording or a gap in the stream) and, for the
        temporal method, the network's state."""
        self.filter.reset()
        if self.temporal is not None:
            self.temporal.reset()

    @property
    def restarted(self) -> str:
        """What :meth:`reset` restarts, in words (for the markers)."""
        return ("filters and the temporal network's state restarted" if self.temporal is not None
                else "filters restarted")

    @property
    def decimate(self) -> int:
        """Input samples per output sample that the method itself requires (the temporal
        network runs at its own rate; 1 otherwise)."""
        return self.temporal.decimate if self.temporal is not None else 1

    def process(self, chunk: np.ndarray, keep: np.ndarray | slice | None = None,
                sources: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Process consecutive samples (filter state carries over to the next call).

        Parameters
        ----------
        chunk : (n_times, n_input_channels) float, volts, in the input's channel order.
        keep : which samples to output (indices, mask or slice; all when None). Every
            sample is filtered; only kept samples are refined and reduced to regions —
            how a refinement slower than the input rate is decimated.
        sources : False when only regions are needed: without a refiner the inverse and
            the regions then run fused (:class:`~.fused.FusedRegions`, fewer passes, the
            same values to float32 rounding) and ``sources`` is None.

        Returns
        -------
        sources : (n_times, n_sources, 3) float32 current density vectors, or None.
        regions : (n_times, n_regions) float32 region activations.

        Both are views of buffers reused by the next call: copy what you keep.
        """
        n_t = chunk.shape[0]
        fused = self.fused if not sources else None
        if n_t > self._reg_buf.shape[0]:
            self._reg_buf = np.empty((n_t, self.regions.n_regions), np.float32)
        if fused is None and n_t > self._src_buf.shape[0]:  # the fused path needs none
            self._src_buf = np.empty((n_t, self.headmodel.n_sources, 3), np.float32)
        t0 = time.perf_counter()
        x = self.mapper(np.asarray(chunk))
        x = self.filter(x)
        if self.temporal is not None:
            x = self.temporal.condition(x)
        t1 = time.perf_counter()
        if keep is not None:
            x = x[keep]
            n_t = x.shape[0]
            if n_t == 0:  # nothing kept: the filters advanced, nothing else to compute
                self._last_x, self._last_src = x, None
                self.times = StageTimes(t1 - t0)
                return (self._src_buf[:0] if sources else None), self._reg_buf[:0]
        self._last_x, self._last_src = x, None
        if fused is not None:
            prod = fused.product(x)
            t2 = time.perf_counter()
            regions = fused.reduce(prod, out=self._reg_buf[:n_t])
            self.times = StageTimes(t1 - t0, t2 - t1, 0.0, time.perf_counter() - t2)
            return None, regions
        if self.temporal is not None:
            src = self.inverse.apply_samples(x, out=self._src_buf[:n_t]) if sources else None
            t2 = time.perf_counter()
            regions = self._reg_buf[:n_t]
            regions[...] = self.temporal(x)
            self._last_src = src
            self.times = StageTimes(t1 - t0, t2 - t1, time.perf_counter() - t2, 0.0)
            return src, regions
        src = self.inverse.apply_samples(x, out=self._src_buf[:n_t])
        t2 = time.perf_counter()
        if self.refiner is not None:
            src = self.refiner(src)
        t3 = time.perf_counter()
        self._last_src = src
        regions = self.reducer(src, out=self._reg_buf[:n_t])
        t4 = time.perf_counter()
        self.times = StageTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        return src, regions

    def source_magnitude(self, rows: np.ndarray | slice) -> np.ndarray:
        """|J| at every source for output samples of the last :meth:`process` call.

        Parameters
        ----------
        rows : indices (or a slice) of that call's output samples (its ``regions`` rows).

        Returns
        -------
        (n_rows, n_sources) float32: the current density magnitude (refined for piunet;
        on the fused path the inverse is applied to those samples now).

        Raises
        ------
        RuntimeError
            Before any call to :meth:`process`.
        """
        if self._last_x is None:
            raise RuntimeError("source_magnitude needs a process() call first.")
        if self._last_src is not None:
            src = self._last_src[rows]
        else:
            src = self.inverse.apply_samples(np.ascontiguousarray(self._last_x[rows]))
        return np.sqrt(np.einsum("tsk,tsk->ts", src, src))

    @property
    def n_last(self) -> int:
        """Output samples of the last :meth:`process` call (0 before the first)."""
        return 0 if self._last_x is None else int(self._last_x.shape[0])

    def provenance(self) -> dict[str, str]:
        """Metadata describing every stage (for the LSL outlet and result objects)."""
        hm, inv, f = self.headmodel, self.inverse, self.filter
        return {
            "atlas": self.regions.atlas, "atlas_version": self.regions.atlas_version,
            "region_mode": self.cfg.regions.mode,
            "unresolved_regions": ",".join(self.regions.unresolved),
            "source_grid": f"{hm.n_sources} points, {hm.spacing_mm:g} mm lattice in 32^3",
            "headmodel": f"{hm.description.get('conductor')} "
                         f"{hm.description.get('conductivity_S_per_m')} S/m, "
                         f"{hm.description.get('template')}",
            "headmodel_hash": hm.hash, "montage": hm.description.get("montage", ""),
            "channels_used": str(self.mapper.n_used),
            "method": self.method, "inverse_method": inv.method,
            "lambda2": f"{inv.lambda2:g}",
            "inverse_hash": inv.hash,
            "filters": (f"highpass {f.highpass} Hz, lowpass {f.lowpass} Hz, notch {f.notch} Hz "
                        "(causal Butterworth/IIR, started in the first sample's steady state)"
                        if len(f.sos) else "none"),
            "filter_delay_s": f"{f.delay_s:.4f}",
            "reference": "average (projector folded into the inverse kernel)",
            **(self.refiner.provenance() if self.refiner is not None else {}),
            **(self.temporal.provenance() if self.temporal is not None else {}),
        }
