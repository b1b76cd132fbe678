"""Live viewers (pyqtgraph) and glass-brain plots.

* :class:`BrainViewer` (:mod:`.brain`): glass brain of the source-volume stream, top
  regions, time courses, status — ``rtsource view`` when ``rtsource run --publish-volume``
  publishes a volume;
* :class:`RegionViewer` (:mod:`.regions`): bars and time courses of the region stream;
* :mod:`.glass`: the projections and template outline both use, and
  :func:`~.glass.plot_glass_brain` (matplotlib); :mod:`.plot`: ``rtsource localize --plot``.

pyqtgraph and a Qt binding are imported when a viewer is created (``rtsource[viewer]``).
"""

from .regions import RegionViewer

__all__ = ["BrainViewer", "RegionViewer"]


def __getattr__(name: str):
    if name == "BrainViewer":
        from .brain import BrainViewer

        return BrainViewer
    raise AttributeError(name)
