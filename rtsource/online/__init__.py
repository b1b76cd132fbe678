"""The online stages and the offline API on the same stages.

Each stage is a constructor that precomputes everything and a pure call:
:class:`~rtsource.online.preprocess.ChannelMapper`, :class:`~.preprocess.CausalFilter`,
:class:`~.quality.SignalCheck` (the same rule live and offline), the inverse (:mod:`rtsource.inverse`),
:class:`~.refine.Refiner` (a network on an engine handed in), the regions
(:mod:`rtsource.regions`); :class:`~.processing.SourceProcessor` chains them and
:class:`~.scheduler.HopScheduler` decides, without threads or sockets, what to publish.
:class:`~.pipeline.Pipeline` is the thin threaded shell (inlet, outlets, markers) and
:mod:`~.localize` the offline API (:class:`~.localize.Localizer`, :func:`~.localize.localize`).
"""
