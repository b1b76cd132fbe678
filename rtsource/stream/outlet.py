"""LSL outlets: region activations (data) and status/problem markers.

Conventions (DESIGN.md, "LSL conventions for the outlet"):

* type ``"SourceActivation"`` (never ``"EEG"``), float32, one channel per region with
  ``desc/channels/channel/{label,type,unit}``;
* provenance in ``desc/rtsource`` (one child per key, nested for dicts);
* a ``source_id`` derived from the input stream's source_id and the configuration hash,
  so consumers recover after a restart;
* every sample stamped with the capture time of the EEG sample it represents;
* problems and state changes on a separate irregular string stream of type ``"Markers"``
  (never NaN or silent zeros in the data stream).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

from .._util import logger, stable_hash

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def region_source_id(input_source_id: str, config_hash: str) -> str:
    """Stable ``source_id`` of the region outlet for an input stream and configuration."""
    return f"rtsource-{stable_hash('region-outlet', input_source_id, config_hash)}"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=str)


def write_desc(elem: Any, mapping: Mapping[str, Any], where: str = "desc") -> None:
    """Append ``mapping`` under an LSL XML element: nested dicts become child elements,
    other values text (numbers in full precision, lists as JSON).

    Raises
    ------
    ValueError
        When a key is not a valid XML element name.
    """
    for key, value in mapping.items():
        key = str(key)
        if not _XML_NAME.match(key):
            raise ValueError(
                f"Metadata key {where}/{key!r} is not a valid XML element name; use letters, "
                "digits, '_', '-' or '.' and start with a letter or '_'."
            )
        if isinstance(value, Mapping):
            write_desc(elem.append_child(key), value, f"{where}/{key}")
        else:
            elem.append_child_value(key, _value_text(value))


def read_desc(elem: Any) -> dict[str, Any]:
    """Read an XML element written by :func:`write_desc` back as nested dicts of text."""
    out: dict[str, Any] = {}
    child = elem.first_child()
    while not child.empty():
        grand = child.first_child()
        if grand.empty() or (grand.is_text() and grand.next_sibling().empty()):
            out[child.name()] = child.child_value() if not grand.empty() else ""
        else:
            out[child.name()] = read_desc(child)
        child = child.next_sibling()
    return out


class RegionOutlet:
    """LSL outlet publishing one float32 channel per brain region.

    Parameters
    ----------
    name : str
        Stream name.
    region_names : sequence of str
        Channel labels (atlas region names), in output order. Fixed for the outlet's life.
    srate : float
        Output rate actually produced (Hz); 0 for irregular output.
    provenance : mapping
        Everything a consumer needs to interpret the data (atlas and version, source
        grid, head model and hash, inverse method and λ², weights hash and backend,
        window and hop, filters, reference, processing delay...). Written under
        ``desc/rtsource``, one child element per key (nested for dicts).
    input_source_id : str
        ``source_id`` of the EEG input stream (also written to the provenance).
    config_hash : str
        Hash of the configuration that produced the output.
    unit : str
        Unit of every channel (``desc/channels/channel/unit``).
    channel_type : str
        Type of every channel (``desc/channels/channel/type``).
    chunk_size, max_buffered : int
        Passed to ``pylsl.StreamOutlet``.

    Attributes
    ----------
    source_id : str
        See :func:`region_source_id`.
    n_pushed : int
        Samples published so far.
    """

    stream_type = "SourceActivation"

    def __init__(
        self,
        name: str,
        region_names: Sequence[str],
        srate: float,
        provenance: Mapping[str, Any],
        input_source_id: str,
        config_hash: str,
        unit: str = "a.u.",
        channel_type: str = "region",
        chunk_size: int = 0,
        max_buffered: int = 360,
    ) -> None:
        names = [str(r) for r in region_names]
        if not names:
            raise ValueError("RegionOutlet needs at least one region name.")
        if len(set(names)) != len(names):
            dup = sorted({r for r in names if names.count(r) > 1})
            raise ValueError(f"Region names must be unique; repeated: {dup[:10]}.")
        if srate < 0 or not math.isfinite(srate):
            raise ValueError(f"srate must be a finite rate >= 0 Hz (0 = irregular), got {srate}.")
        self.name = name
        self.region_names = names
        self.n_regions = len(names)
        self.srate = float(srate)
        self.source_id = region_source_id(input_source_id, config_hash)
        info = pylsl.StreamInfo(
            name, self.stream_type, self.n_regions, self.srate, pylsl.cf_float32, self.source_id
        )
        desc = info.desc()
        chans = desc.append_child("channels")
        for r in names:
            ch = chans.append_child("channel")
            ch.append_child_value("label", r)
            ch.append_child_value("type", channel_type)
            ch.append_child_value("unit", unit)
        meta = dict(provenance)
        meta.setdefault("input_source_id", input_source_id)
        meta.setdefault("config_hash", config_hash)
        write_desc(desc.append_child("rtsource"), meta, "desc/rtsource")
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
            info, chunk_size=chunk_size, max_buffered=max_buffered
        )
        self.n_pushed = 0
        logger.info(
            "Publishing %d regions on LSL stream %r (type %s, source_id %s, %g Hz).",
            self.n_regions,
            name,
            self.stream_type,
            self.source_id,
            self.srate,
        )

    @property
    def outlet(self) -> pylsl.StreamOutlet:
        if self._outlet is None:
            raise RuntimeError(f"RegionOutlet {self.name!r} is closed.")
        return self._outlet

    @property
    def info(self) -> pylsl.StreamInfo:
        """The outlet's stream info (with ``desc``)."""
        return self.outlet.get_info()

    def have_consumers(self) -> bool:
        """True when at least one inlet is connected."""
        return self.outlet.have_consumers()

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an inlet; True if one connected."""
        return self.outlet.wait_for_consumers(timeout)

    def push(self, chunk: NDArray, timestamps: NDArray) -> None:
        """Publish samples, each with its own capture timestamp.

        Parameters
        ----------
        chunk : array, shape (n_samples, n_regions)
            Region activations (cast to float32).
        timestamps : array, shape (n_samples,)
            Capture time of the EEG sample each output sample represents (seconds,
            ``pylsl.local_clock`` domain of this machine).

        Raises
        ------
        ValueError
            On a shape mismatch, or when any value is NaN/Inf: the whole chunk is
            refused (nothing is published), and the message names the rows and regions.
            Report the problem on the :class:`MarkerOutlet` instead.
        """
        x = np.ascontiguousarray(chunk, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_regions:
            raise ValueError(
                f"chunk must have shape (n_samples, {self.n_regions}), got {np.shape(chunk)}."
            )
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if ts.shape[0] != x.shape[0]:
            raise ValueError(
                f"Got {ts.shape[0]} timestamps for {x.shape[0]} samples; give one per sample."
            )
        if x.shape[0] == 0:
            return
        if not np.isfinite(ts).all() or (ts <= 0).any():
            raise ValueError("Timestamps must be finite positive LSL clock times; chunk refused.")
        finite = np.isfinite(x)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            cols = np.flatnonzero(~finite.all(axis=0))
            regions = [self.region_names[c] for c in cols[:8]]
            raise ValueError(
                f"Refusing to publish NaN/Inf: {len(rows)} of {x.shape[0]} samples (rows "
                f"{rows[:8].tolist()}{'...' if len(rows) > 8 else ''}) in {len(cols)} regions "
                f"({', '.join(regions)}{'...' if len(cols) > 8 else ''}). Nothing from this "
                "chunk was published."
            )
        self.outlet.push_chunk(x, ts.tolist())
        self.n_pushed += x.shape[0]

    def close(self) -> None:
        """Destroy the outlet (consumers see the stream end). Idempotent."""
        self._outlet = None

    def __enter__(self) -> RegionOutlet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MarkerOutlet:
    """Irregular-rate string stream (type ``"Markers"``) for status and problems.

    Each marker is one JSON object: ``{"kind": ..., "message": ..., **fields}``.

    Parameters
    ----------
    name : str
        Stream name (e.g. ``"rtsource-status"``).
    source_id : str
        Stable identifier (e.g. the region outlet's source_id + ``"-markers"``).
    """

    stream_type = "Markers"

    def __init__(self, name: str, source_id: str) -> None:
        self.name = name
        self.source_id = source_id
        info = pylsl.StreamInfo(
            name, self.stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id
        )
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "event")
        ch.append_child_value("type", "Markers")
        ch.append_child_value("format", "json")
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        self.n_pushed = 0

    @property
    def outlet(self) -> pylsl.StreamOutlet:
        if self._outlet is None:
            raise RuntimeError(f"MarkerOutlet {self.name!r} is closed.")
        return self._outlet

    def have_consumers(self) -> bool:
        return self.outlet.have_consumers()

    def wait_for_consumers(self, timeout: float) -> bool:
        return self.outlet.wait_for_consumers(timeout)

    def push(
        self,
        message: str,
        kind: str = "status",
        timestamp: float | None = None,
        **fields: Any,
    ) -> str:
        """Publish one marker.

        Parameters
        ----------
        message : str
            Human-readable sentence.
        kind : str
            Category, e.g. ``"status"``, ``"warning"``, ``"error"``, ``"stream_lost"``,
            ``"bad_data"``, ``"model_reload"``.
        timestamp : float | None
            LSL time of the event (now when None).
        **fields
            Extra JSON-serialisable details (channel names, sample indices...).

        Returns
        -------
        payload : str
            The JSON text published.
        """
        payload = json.dumps({"kind": kind, "message": message, **fields}, default=str)
        self.outlet.push_sample([payload], 0.0 if timestamp is None else float(timestamp))
        self.n_pushed += 1
        return payload

    def close(self) -> None:
        """Destroy the outlet. Idempotent."""
        self._outlet = None

    def __enter__(self) -> MarkerOutlet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
