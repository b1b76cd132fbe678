"""The live amplifier driven by the brain model (``rtsource simulate-stream --dynamics``).

:class:`DynamicSignal` integrates a :class:`~rtsource.simulate.dynamics.regimes.RegimeSimulation`
chunk by chunk at the stream's rate (the model runs about ten times faster than real time on
one core) and projects every node through a head model (a three-shell sphere by default, as
the static simulated amplifier: not the pipeline's BEM). The background is scaled to
``background_uv`` scalp RMS once, from a calibration second; the regime's truth regions (and,
with ``spread_mm``, their neighbours) are multiplied by ``focus_gain``. White sensor noise of
``noise_uv`` is added.

:class:`DynamicAmplifier` sends it with rtsource's LSL sender, in the same stream layout as
:class:`~rtsource.simulate.amplifier.SimulatedAmplifier` (``sample_index`` channel, electrode
``loc``), with JSON truth markers on ``<name>-truth``: a ``truth`` marker every
``truth_every_s`` seconds naming the regime, its truth regions (``active``) and, for the
epileptic regimes, the onset regions (``onset_regions``); for ``evoked``, a ``stimulus``
marker at each stimulus onset.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pylsl
from numpy.typing import NDArray

from ..._util import stable_hash
from ...config import HeadModelConfig
from ...headmodel import build_headmodel
from ...stream.lslio import INDEX_MODULO
from ...stream.sender import LiveSender, check_dtype, eeg_stream_info
from .compose import RegionProjector, spread_weights
from .regimes import DynamicsConfig, RegimeSimulation

__all__ = ["DynamicAmplifier", "DynamicSignal"]


class DynamicSignal:
    """EEG of the brain model in a regime, generated in consecutive chunks (no LSL).

    Parameters
    ----------
    regime : str
        ``spontaneous``, ``evoked``, ``interictal`` or ``ictal``.
    montage : str
        Montage of the generated channels.
    sfreq : float
        Rate (Hz; must divide 2000: 2000, 1000, 500, 400, 250, ...).
    conductor : ``"sphere"`` | ``"bem"``
        Forward model.
    foci : list of str | None
        Focus regions (interictal/ictal) or stimulated nucleus (evoked); drawn when None.
    background_uv, noise_uv : float
        Scalp RMS of the background activity and sensor noise SD (µV).
    focus_gain : float
        Factor on the activity of the truth regions.
    spread_mm : float
        Half-amplitude distance of the Gaussian spread of the foci over neighbouring nodes
        (0: none).
    seed : int
    config : DynamicsConfig | None
    headmodel_config : HeadModelConfig | None

    Attributes
    ----------
    sim : RegimeSimulation
    ch_names, ch_pos, n_eeg, n_channels, headmodel, sfreq
        As :class:`~rtsource.simulate.amplifier.AmplifierSignal`.
    """

    def __init__(self, regime: str, montage: str = "biosemi128", sfreq: float = 1000.0, *,
                 conductor: str = "sphere", foci: list[str] | None = None,
                 background_uv: float = 10.0, noise_uv: float = 1.0, focus_gain: float = 3.0,
                 spread_mm: float = 15.0, seed: int = 0, config: DynamicsConfig | None = None,
                 headmodel_config: HeadModelConfig | None = None) -> None:
        self.sim = RegimeSimulation(regime, sfreq, seed, foci=foci, config=config)
        self.regime, self.sfreq, self.seed, self.montage = regime, float(sfreq), int(seed), montage
        hcfg = dataclasses.replace(headmodel_config or HeadModelConfig(), montage=montage,
                                   conductor=conductor)
        self.headmodel_config = hcfg
        self.headmodel = hm = build_headmodel(hcfg, progress=False)
        self.ch_names, self.ch_pos = list(hm.ch_names), np.asarray(hm.ch_pos, float)
        self.n_eeg = len(self.ch_names)
        self.n_channels = self.n_eeg + 1
        nodes = self.sim.nodes
        proj = RegionProjector(hm, nodes)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        n_free = int((~nodes.cortical).sum())
        u = rng.standard_normal((n_free, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        L = proj.leadfield(u)  # (n_ch, n_nodes) V per mV
        truth = [nodes.index(t) for t in self.sim.truth_regions]
        gain = np.ones(nodes.n_nodes)
        if truth:
            S = spread_weights(nodes, truth, spread_mm).max(1)
            gain = 1.0 + (focus_gain - 1.0) * S
        self.truth_regions = list(self.sim.truth_regions)
        self.onset_regions = list(self.sim.foci) if regime in ("interictal", "ictal") else []
        # calibration: one second of the background (after a transient) -> background_uv
        calib = RegimeSimulation("spontaneous", sfreq, seed, config=config, nodes=nodes,
                                 connectome=self.sim.connectome)
        calib.run(round(0.5 * sfreq))
        v = calib.run(round(sfreq))
        v = v - v.mean(0)
        eeg = v @ L.T
        eeg -= eeg.mean(1, keepdims=True)
        rms = float(np.sqrt(np.mean(eeg**2)))
        self._L = L * (background_uv * 1e-6 / max(rms, 1e-30)) * gain[None, :]
        self.noise_uv = float(noise_uv)
        self._rng_noise = np.random.default_rng(np.random.SeedSequence([self.seed, 8]))
        # settle the regime's own transient; its mean is each node's resting offset
        self._offset = self.sim.run(round(0.5 * sfreq)).mean(0).astype(np.float64)
        self.n_generated = 0

    @property
    def onsets(self) -> list[int]:
        """Stimulus onsets (evoked), in this signal's sample indices."""
        lag = round(0.5 * self.sfreq)
        return [o - lag for o in self.sim.onsets if o >= lag]

    def generate(self, n: int, out: NDArray | None = None) -> NDArray:
        """The next ``n`` samples, shape (n, n_eeg + 1): EEG (V) and the sample index."""
        n = int(n)
        if out is None:
            out = np.empty((n, self.n_channels))
        v = self.sim.run(n).astype(np.float64)
        eeg = (v - self._offset) @ self._L.T
        eeg += self._rng_noise.standard_normal(eeg.shape) * (self.noise_uv * 1e-6)
        out[:, :self.n_eeg] = eeg
        out[:, self.n_eeg] = (np.arange(self.n_generated, self.n_generated + n)) % INDEX_MODULO
        self.n_generated += n
        return out

    def truth_json(self, sample: int, timestamp: float | None = None) -> str:
        """The truth marker (JSON) for sample ``sample``."""
        nodes = self.sim.nodes
        payload = {
            "kind": "truth", "regime": self.regime,
            "message": f"{self.regime}: " + (", ".join(self.truth_regions) or "background only"),
            "active": self.truth_regions, "onset_regions": self.onset_regions,
            "region_kinds": {r: str(nodes.kinds[nodes.index(r)]) for r in self.truth_regions},
            "start_sample": int(sample), "model": "Jansen-Rit/Wendling on BN246",
        }
        if timestamp is not None:
            payload["timestamp"] = timestamp
        return json.dumps(payload)


class DynamicAmplifier(LiveSender):
    """:class:`DynamicSignal` sent live on LSL, with truth markers on ``<name>-truth``.

    Parameters
    ----------
    regime, montage, sfreq : see :class:`DynamicSignal`.
    name : str
        LSL stream name.
    source_id : str | None
        Default: derived from name, regime, montage, rate and seed.
    chunk_size : int | None
        Samples per push (default about 10 ms).
    truth_every_s : float
        Interval of the repeated truth markers (s).
    dtype : ``"float32"`` | ``"double64"``
    **kwargs
        The other :class:`DynamicSignal` settings.
    """

    _what = "Dynamic simulated amplifier"

    def __init__(self, regime: str, montage: str = "biosemi128", sfreq: float = 1000.0,
                 name: str = "rtsource-sim", source_id: str | None = None, *,
                 chunk_size: int | None = None, truth_every_s: float = 4.0,
                 dtype: str = "float32", **kwargs) -> None:
        check_dtype(dtype)
        if not truth_every_s > 0:
            raise ValueError(f"truth_every_s = {truth_every_s} must be positive (default 4 s).")
        self.signal = sig = DynamicSignal(regime, montage, sfreq, **kwargs)
        source_id = source_id or ("rtsource-dyn-" + stable_hash(
            "dynamp", name, regime, montage, sig.sfreq, sig.seed))
        super().__init__(name, sig.sfreq, sig.n_channels, source_id,
                         chunk_size=chunk_size or None, dtype=dtype)
        self.truth_name = f"{name}-truth"
        self.sfreq = sig.sfreq
        self._truth_len = max(1, round(truth_every_s * sig.sfreq))

    def generate(self, n: int, out: NDArray) -> NDArray:
        return self.signal.generate(n, out)

    def stream_info(self) -> pylsl.StreamInfo:
        sig = self.signal
        info = eeg_stream_info(self.name, sig.ch_names, sig.sfreq, self.source_id,
                               ch_pos=sig.ch_pos, dtype=self.dtype,
                               manufacturer="rtsource simulated amplifier (brain dynamics)")
        sim = info.desc().append_child("simulation")
        for key, value in (("dynamics", sig.regime), ("montage", sig.montage),
                           ("conductor", sig.headmodel_config.conductor),
                           ("headmodel_hash", sig.headmodel.hash), ("atlas", "bn246"),
                           ("truth_regions", ",".join(sig.truth_regions)),
                           ("onset_regions", ",".join(sig.onset_regions)),
                           ("connectome", sig.sim.connectome.source), ("seed", str(sig.seed)),
                           ("index_modulo", str(INDEX_MODULO)), ("truth_stream", self.truth_name)):
            sim.append_child_value(key, value)
        return info

    def marker_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(self.truth_name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                pylsl.cf_string, f"{self.source_id}-truth")
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "truth")
        ch.append_child_value("type", "Markers")
        ch.append_child_value("format", "json")
        return info

    def markers(self, start: int, stop: int) -> list[tuple[str, int]]:
        out = []
        L = self._truth_len
        for j in range(-(-start // L), (stop - 1) // L + 1):
            out.append((self.signal.truth_json(j * L, self.sample_time(j * L)), j * L))
        for o in self.signal.onsets:
            if start <= o < stop:
                out.append((json.dumps({"kind": "stimulus", "region": self.signal.sim.foci[0],
                                        "start_sample": o,
                                        "timestamp": self.sample_time(o)}), o))
        return sorted(out, key=lambda m: m[1])
