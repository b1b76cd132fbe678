"""Results out as MNE objects: source estimates on a volume source space, region signals.

* :func:`to_stc` — ``mne.VolSourceEstimate`` (|J|, or ``VolVectorSourceEstimate`` with
  ``vector=True``) on :func:`source_spaces` (the rtsource grid as one MNE volume source
  space in the fsaverage MRI frame). MNE's volume tools work on it offline:
  ``stc.as_volume(src)``, ``stc.plot(src, bg_img=template_image())`` (nilearn), ``stc.crop``,
  ``stc.get_peak``...
* :func:`regions_to_mne` — region time courses as an MNE object whose channels are the
  regions (type ``misc``): ``RawArray`` for continuous data (annotations, ``first_samp``,
  measurement date and stim channels of a Raw kept), ``EpochsArray`` for epochs (events,
  ``event_id``, ``tmin`` kept), ``EvokedArray`` for an evoked response (``nave``, comment,
  ``tmin`` kept). Region channels are ``misc``: pass ``picks="misc"`` (or ``"all"``) where
  MNE defaults to data channels, e.g. ``epochs.average(picks="misc")``.
* :func:`mne_context` — what of an MNE input is kept for the above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..headmodel.grid import SourceGrid

if TYPE_CHECKING:
    import mne

    from .localize import LocalizeResult

__all__ = ["mne_context", "regions_to_mne", "source_spaces", "template_image", "to_stc"]


def mne_context(inst: Any) -> dict[str, Any]:
    """What :func:`regions_to_mne` keeps of an MNE Raw, Epochs or Evoked given to localize.

    Returns
    -------
    dict with ``kind`` (``"raw"``, ``"epochs"`` or ``"evoked"``) and, by kind: events,
    event_id, tmin (epochs); nave, comment (evoked); first_samp, meas_date, annotations and
    the stim channels' names and data (raw).
    """
    import mne

    if isinstance(inst, mne.BaseEpochs):
        return {"kind": "epochs", "events": inst.events.copy(),
                "event_id": dict(inst.event_id), "tmin": float(inst.tmin)}
    if isinstance(inst, mne.Evoked):
        return {"kind": "evoked", "nave": int(inst.nave), "comment": inst.comment,
                "tmin": float(inst.tmin)}
    ctx: dict[str, Any] = {"kind": "raw", "first_samp": int(inst.first_samp),
                           "meas_date": inst.info["meas_date"],
                           "annotations": inst.annotations.copy()}
    stim = mne.pick_types(inst.info, meg=False, stim=True)
    if len(stim):
        ctx["stim_names"] = [inst.ch_names[i] for i in stim]
        ctx["stim_data"] = inst.get_data(picks=stim)
    return ctx


def _grid(res: LocalizeResult) -> SourceGrid:
    if res.grid is None:
        raise ValueError("This LocalizeResult carries no source grid (it was not made by "
                         "rtsource.localize or Localizer.apply); localize the data again.")
    return res.grid


def _sfreq(res: LocalizeResult) -> float:
    if res.sfreq:
        return float(res.sfreq)
    if len(res.times) > 1:
        return float(1.0 / np.median(np.diff(res.times)))
    raise ValueError("The result has one sample and no sampling rate; cannot build an MNE "
                     "object (set res.sfreq).")


def source_spaces(res: LocalizeResult) -> mne.SourceSpaces:
    """The result's source grid as an ``mne.SourceSpaces`` (one volume, fsaverage MRI)."""
    return _grid(res).source_spaces()


def to_stc(res: LocalizeResult, *, vector: bool = False, subject: str = "fsaverage"
           ) -> mne.VolSourceEstimate | mne.VolVectorSourceEstimate | list:
    """The result as an MNE volume source estimate (a list of them for epochs).

    Parameters
    ----------
    res : LocalizeResult
        From :func:`rtsource.localize` or :meth:`Localizer.apply`.
    vector : False (default): ``VolSourceEstimate`` of the current density magnitude |J|
        (n_sources, n_times), A·m for eLORETA/MNE (unitless for dSPM/sLORETA). True:
        ``VolVectorSourceEstimate`` (n_sources, 3, n_times), orientations in the head frame.
    subject : the subject name the estimate carries (the template is fsaverage).

    Returns
    -------
    VolSourceEstimate | VolVectorSourceEstimate, or a list of them (one per epoch) for
    epochs. Vertices are those of :func:`source_spaces` (sorted); rows follow them, so
    ``stc.data[i]`` is source ``order[i]`` of ``res.sources`` with
    ``order = np.argsort(res.grid.mne_vertno)``.

    Raises
    ------
    ValueError
        When the result has no grid or no sampling rate.
    """
    import mne

    grid = _grid(res)
    tstep = 1.0 / _sfreq(res)
    order = np.argsort(grid.mne_vertno)
    vertices = [grid.mne_vertno[order]]
    tmin = float(res.times[0]) if len(res.times) else 0.0

    def one(src: np.ndarray):  # (n_times, n_sources, 3)
        src = src[:, order].astype(np.float64)
        if vector:
            return mne.VolVectorSourceEstimate(src.transpose(1, 2, 0), vertices, tmin, tstep,
                                               subject=subject)
        mag = np.linalg.norm(src, axis=-1).T
        return mne.VolSourceEstimate(mag, vertices, tmin, tstep, subject=subject)

    if res.sources.ndim == 4:
        return [one(s) for s in res.sources]
    return one(res.sources)


def template_image(atlas: str = "bn246") -> Any:
    """A brain-mask image of the template for ``stc.plot(..., bg_img=...)``: the atlas's
    labelled voxels (1 mm, values 0/1) with their affine moved into the fsaverage MRI
    (MNI305) frame that :func:`source_spaces` uses. From installed files only."""
    import nibabel as nib

    from ..headmodel.coords import MNI152_TO_MNI305
    from ..regions import load_atlas

    atlas_obj = load_atlas(atlas)
    mask = (atlas_obj.labels > 0).astype(np.float32)
    return nib.Nifti1Image(mask, MNI152_TO_MNI305 @ atlas_obj.affine)


def regions_to_mne(res: LocalizeResult) -> mne.io.RawArray | mne.EpochsArray | mne.EvokedArray:
    """Region time courses as an MNE object (one ``misc`` channel per region).

    Returns
    -------
    RawArray
        For continuous input (an array or a Raw): (n_regions, n_times); from a Raw, its
        ``first_samp``, measurement date, annotations and stim channels are kept, so
        ``mne.find_events`` / ``mne.events_from_annotations`` and ``mne.Epochs`` work on it.
    EpochsArray
        For epochs (Epochs or a 3-D array): (n_epochs, n_regions, n_times), with the input's
        events, ``event_id`` and ``tmin`` (an array's epochs get events 0, n_times, ... of id 1).
    EvokedArray
        For an Evoked: its ``nave``, comment and ``tmin``.

    Region values keep rtsource's units (A·m for eLORETA/MNE magnitudes); the channels are
    type ``misc``: use ``picks="misc"`` where MNE picks data channels by default
    (``epochs.average(picks="misc")``, ``evoked.plot(picks="misc")``).

    Raises
    ------
    ValueError
        When the result has one sample and no sampling rate.
    """
    import mne

    sfreq = _sfreq(res)
    ctx = res.mne_context or {}
    names, types = list(res.region_names), ["misc"] * len(res.region_names)
    if np.ndim(res.regions) == 2 and "stim_names" in ctx and ctx.get("kind") == "raw":
        names, types = names + list(ctx["stim_names"]), types + ["stim"] * len(ctx["stim_names"])
    info = mne.create_info(names, sfreq, types)
    tmin = float(res.times[0]) if len(res.times) else 0.0
    regions = np.asarray(res.regions, np.float64)
    if regions.ndim == 3:
        n_ep, n_t = regions.shape[0], regions.shape[1]
        events = ctx.get("events")
        if events is None or len(events) != n_ep:
            events = np.c_[np.arange(n_ep) * n_t, np.zeros(n_ep, int), np.ones(n_ep, int)]
        event_id = ctx.get("event_id") or None
        return mne.EpochsArray(regions.transpose(0, 2, 1), info, events=events, tmin=tmin,
                               event_id=event_id, verbose=False)
    if ctx.get("kind") == "evoked":
        return mne.EvokedArray(regions.T, info, tmin=tmin, nave=ctx.get("nave", 1),
                               comment=ctx.get("comment", ""), verbose=False)
    data = regions.T
    if "stim_names" in ctx:
        data = np.vstack([data, ctx["stim_data"]])
    raw = mne.io.RawArray(data, info, first_samp=ctx.get("first_samp", 0), verbose=False)
    if ctx.get("meas_date") is not None:
        raw.set_meas_date(ctx["meas_date"])
    if ctx.get("annotations") is not None and len(ctx["annotations"]):
        raw.set_annotations(ctx["annotations"])
    return raw
